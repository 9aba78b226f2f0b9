"""Tests for xpmlp.losses: softmax cross-entropy against a plain NumPy reference, its stability for
logits of magnitude 1e4, the ln 10 first loss of the CIFAR-10 homework, and the L2 penalty."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xpmlp.backend import get_backend
from xpmlp.losses import l2_penalty, one_hot_mask, softmax_cross_entropy
from xpmlp.model import MLP


def reference_ce(z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and dL/dz by hand: log-softmax with the row max subtracted (float64)."""
    z = np.asarray(z, dtype=np.float64)
    n, c = z.shape
    loss, grad = 0.0, np.zeros_like(z)
    with np.errstate(under="ignore"):
        for i in range(n):
            m = max(z[i])
            s = sum(math.exp(v - m) for v in z[i])
            loss += math.log(s) - (z[i, y[i]] - m)  # log Σ e^z − z_y, every term of moderate size
            for j in range(c):
                grad[i, j] = (math.exp(z[i, j] - m) / s - (1.0 if j == y[i] else 0.0)) / n
    return loss / n, grad


def test_reference_on_a_hand_example():
    # Uniform logits over C classes: loss ln C, gradient (1/C - onehot) / N.
    loss, grad = reference_ce(np.zeros((2, 4)), np.array([1, 3]))
    assert loss == pytest.approx(math.log(4), rel=1e-15)
    np.testing.assert_allclose(grad, [[0.125, -0.375, 0.125, 0.125], [0.125, 0.125, 0.125, -0.375]], rtol=1e-15)


def test_softmax_cross_entropy_matches_reference(backend):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((7, 5)) * 3.0
    y = rng.integers(0, 5, 7)
    loss, dlogits = softmax_cross_entropy(backend.asarray(z), backend.asarray(y), backend.xp)
    ref_loss, ref_grad = reference_ce(z, y)
    assert tuple(loss.shape) == ()
    assert loss.dtype == backend.xp.float64 and dlogits.dtype == backend.xp.float64
    assert tuple(dlogits.shape) == (7, 5)
    assert float(loss) == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(backend.to_numpy(dlogits), ref_grad, rtol=1e-12, atol=1e-15)


def test_explicit_namespace_argument(backend):
    z, y = np.array([[1.0, 2.0, 0.5]]), np.array([2])
    loss, _ = softmax_cross_entropy(backend.asarray(z), backend.asarray(y), backend.xp)
    assert float(loss) == pytest.approx(reference_ce(z, y)[0], rel=1e-12)


def test_float32_logits_stay_float32(backend):
    z = np.random.default_rng(1).standard_normal((4, 3))
    labels = backend.asarray(np.array([0, 1, 2, 0]))
    loss, dlogits = softmax_cross_entropy(backend.asarray(z, dtype="float32"), labels, backend.xp)
    assert loss.dtype == backend.xp.float32 and dlogits.dtype == backend.xp.float32
    np.testing.assert_allclose(float(loss), reference_ce(z.astype(np.float32), [0, 1, 2, 0])[0], rtol=1e-6)


HUGE = np.array([
    [1e4, 0.0, -1e4],          # huge spread
    [-1e4, -1e4, -1e4],        # all very negative
    [1e4, 1e4, 1e4],           # all very positive
    [1e4, 1e4 - 1.0, -1e4],    # two close at the top
    [-1e4, 1e4, 0.0],
])


@pytest.mark.parametrize("labels", [[0, 0, 2, 1, 0], [2, 1, 0, 0, 1]])
@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_huge_logits_stay_finite_and_correct(backend, labels, sign, dtype):
    z = HUGE * sign
    y = np.array(labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
            loss, dlogits = softmax_cross_entropy(backend.asarray(z, dtype=dtype), backend.asarray(y), backend.xp)
            loss_h, grad_h = float(loss), backend.to_numpy(dlogits)
    assert math.isfinite(loss_h) and np.all(np.isfinite(grad_h))
    ref_loss, ref_grad = reference_ce(z, y)
    rtol = 1e-6 if dtype == "float32" else 1e-12
    assert loss_h == pytest.approx(ref_loss, rel=rtol)
    np.testing.assert_allclose(grad_h, ref_grad, rtol=rtol, atol=1e-7 if dtype == "float32" else 1e-15)


def test_huge_logit_hand_values():
    backend = get_backend("cpu", "float64")
    # Row [1e4, 0, -1e4]: loss is 0 for label 0, 1e4 for label 1 and 2e4 for label 2 (to within e^-1e4).
    z = np.array([[1e4, 0.0, -1e4]] * 3)
    for label, expected in [(0, 0.0), (1, 1e4), (2, 2e4)]:
        loss, d = softmax_cross_entropy(backend.asarray(z[:1]), backend.asarray(np.array([label])), backend.xp)
        assert float(loss) == pytest.approx(expected, abs=1e-12)
        onehot = np.eye(3)[label]
        np.testing.assert_allclose(d[0], np.array([1.0, 0.0, 0.0]) - onehot, atol=1e-15)


def test_dlogits_rows_sum_to_zero(backend):
    rng = np.random.default_rng(2)
    z = np.concatenate([rng.standard_normal((6, 10)) * 5.0, HUGE[:, [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]]])
    y = rng.integers(0, 10, len(z))
    _, dlogits = softmax_cross_entropy(backend.asarray(z), backend.asarray(y), backend.xp)
    sums = backend.to_numpy(dlogits).sum(axis=1)
    np.testing.assert_allclose(sums, 0.0, atol=1e-15)


def test_mean_over_the_batch(backend):
    # Duplicating the batch leaves the loss unchanged and halves each gradient row.
    rng = np.random.default_rng(3)
    z, y = rng.standard_normal((3, 4)), np.array([0, 3, 1])
    l1, d1 = softmax_cross_entropy(backend.asarray(z), backend.asarray(y), backend.xp)
    zz, yy = backend.asarray(np.vstack([z, z])), backend.asarray(np.concatenate([y, y]))
    l2, d2 = softmax_cross_entropy(zz, yy, backend.xp)
    assert float(l2) == pytest.approx(float(l1), rel=1e-14)
    np.testing.assert_allclose(backend.to_numpy(d2)[:3], backend.to_numpy(d1) / 2, rtol=1e-14)


def test_one_hot_mask(backend):
    y = backend.asarray(np.array([2, 0, 3]))
    mask = backend.to_numpy(one_hot_mask(y, 4, backend.xp))
    assert mask.dtype == np.bool_
    np.testing.assert_array_equal(mask, np.eye(4, dtype=bool)[[2, 0, 3]])


def test_first_loss_is_ln10_for_a_tiny_init(backend):
    # The CIFAR-10 homework: with weights ~ N(0, 1e-4^2) the logits are ~0 and the first loss is ln 10.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 3072)) * 50.0  # raw-pixel scale after mean subtraction
    y = rng.integers(0, 10, 32)
    model = MLP([3072, 50, 10], activation="relu", backend=backend, dtype="float64", seed=0, init="std:1e-4")
    loss, _ = model.loss(backend.asarray(X), backend.asarray(y))
    assert float(loss) == pytest.approx(2.302585, abs=1e-3)
    assert abs(float(loss) - math.log(10)) < 1e-3


def test_first_loss_is_ln10_float32():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((16, 3072)).astype(np.float32)
    model = MLP([3072, 50, 10], backend="cpu", seed=1, init="std:1e-4")
    loss, _ = model.loss(X, rng.integers(0, 10, 16))
    assert loss.dtype == np.float32
    assert abs(float(loss) - 2.302585) < 1e-3


# -- L2 penalty ------------------------------------------------------------------------------------

def test_l2_penalty_value_and_gradient(backend):
    w1 = np.array([[1.0, -2.0], [0.5, 3.0]])
    w2 = np.array([[0.25, -1.5, 2.0]])
    reg = 0.1
    penalty, grads = l2_penalty([backend.asarray(w1), backend.asarray(w2)], reg, backend.xp)
    # ‖w1‖² = 1 + 4 + 0.25 + 9 = 14.25;  ‖w2‖² = 0.0625 + 2.25 + 4 = 6.3125
    assert float(penalty) == pytest.approx(0.5 * 0.1 * (14.25 + 6.3125), rel=1e-14)
    assert len(grads) == 2
    np.testing.assert_allclose(backend.to_numpy(grads[0]), [[0.1, -0.2], [0.05, 0.3]], rtol=1e-14)
    np.testing.assert_allclose(backend.to_numpy(grads[1]), [[0.025, -0.15, 0.2]], rtol=1e-14)


def test_l2_penalty_random_against_formula(backend):
    rng = np.random.default_rng(4)
    ws = [rng.standard_normal((4, 3)), rng.standard_normal((3, 2))]
    penalty, grads = l2_penalty([backend.asarray(w) for w in ws], 3e-3, backend.xp)
    expected = 0.5 * 3e-3 * sum(float((w ** 2).sum()) for w in ws)
    assert float(penalty) == pytest.approx(expected, rel=1e-13)
    for g, w in zip(grads, ws, strict=True):
        np.testing.assert_allclose(backend.to_numpy(g), 3e-3 * w, rtol=1e-14)


def test_l2_penalty_float32_stays_float32(backend):
    w = backend.asarray(np.ones((2, 2)), dtype="float32")
    penalty, grads = l2_penalty([w], 0.5, backend.xp)
    assert penalty.dtype == backend.xp.float32 and grads[0].dtype == backend.xp.float32
    assert float(penalty) == pytest.approx(1.0)


class _NoVecdot:
    """A namespace without ``vecdot``: array-api-compat's CuPy vecdot conjugates a copy and runs a GEMM."""

    def __init__(self, xp) -> None:
        self._xp = xp

    def __getattr__(self, name: str):
        if name == "vecdot":
            raise AssertionError("vecdot in the L2 penalty (a conjugate copy and a GEMM per matrix on CuPy)")
        return getattr(self._xp, name)


def test_l2_penalty_needs_no_vecdot_and_keeps_its_value(backend):
    rng = np.random.default_rng(5)
    ws = [rng.standard_normal((6, 4)), rng.standard_normal((4, 3))]
    penalty, _ = l2_penalty([backend.asarray(w) for w in ws], 0.2, _NoVecdot(backend.xp))
    expected = 0.5 * 0.2 * sum(float(np.sum(w.astype(np.float64) ** 2)) for w in ws)
    assert float(penalty) == pytest.approx(expected, rel=1e-13 if backend.dtype == "float64" else 1e-6)


def test_l2_penalty_zero_reg_is_free(backend):
    w = backend.asarray(np.ones((2, 2)))
    penalty, grads = l2_penalty([w], 0.0, backend.xp)
    assert penalty == 0.0 and isinstance(penalty, float)
    assert grads == []
    assert l2_penalty([w], 0, backend.xp) == (0.0, [])


# -- properties -------------------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 5),
    c=st.integers(2, 6),
    data=st.data(),
)
def test_cross_entropy_is_invariant_to_a_row_constant(n, c, data):
    backend = get_backend("cpu", "float64")
    finite = st.floats(-50.0, 50.0, allow_nan=False)
    z = np.array(data.draw(st.lists(st.lists(finite, min_size=c, max_size=c), min_size=n, max_size=n)))
    shift = np.array(data.draw(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=n, max_size=n)))
    y = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    l1, d1 = softmax_cross_entropy(backend.asarray(z), backend.asarray(y), backend.xp)
    l2, d2 = softmax_cross_entropy(backend.asarray(z + shift[:, None]), backend.asarray(y), backend.xp)
    assert float(l2) == pytest.approx(float(l1), rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(d2, d1, atol=1e-9)
    assert float(l1) >= 0.0
    np.testing.assert_allclose(np.asarray(d1).sum(axis=1), 0.0, atol=1e-14)
