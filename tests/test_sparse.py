"""Sparse X: the first Linear multiplies a SciPy CSR/CSC matrix (cupyx on CuPy) and nothing densifies it.

Every number is compared with the same model fed the dense ``X.toarray()``.
"""

from __future__ import annotations

import numpy as np
import pytest

sparse = pytest.importorskip("scipy.sparse")

from xpmlp.errors import InputError  # noqa: E402
from xpmlp.model import MLP  # noqa: E402
from xpmlp.optim import make_optimizer  # noqa: E402
from xpmlp.sparse import is_sparse, sparse_is_finite, take_rows, to_backend_sparse  # noqa: E402

N, D, H, C = 60, 40, 16, 3
TOL = {"float64": 1e-12, "float32": 1e-5}
FORMATS = ["csr", "csc", "csr_array"]


def _sparse_x(fmt: str, seed: int = 0, n: int = N, d: int = D):
    """A ~5% dense matrix of the format asked, with every row holding something (a real sparse set)."""
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((n, d)) < 0.05, rng.standard_normal((n, d)), 0.0)
    dense[np.arange(n), rng.integers(0, d, n)] = 1.0
    if fmt == "csr_array":
        return sparse.csr_array(dense)
    return sparse.csr_matrix(dense) if fmt == "csr" else sparse.csc_matrix(dense)


def _labels(n: int = N):
    return np.arange(n) % C


def _pair(dtype: str, backend: str = "cpu"):
    """Two models with bit-identical weights: one for the sparse X, one for the dense."""
    return (MLP([D, H, H, C], activation="tanh", backend=backend, dtype=dtype, seed=3),
            MLP([D, H, H, C], activation="tanh", backend=backend, dtype=dtype, seed=3))


def _close(a, b, dtype):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_loss_and_gradients_equal_the_dense_ones(dtype, fmt):
    X, y = _sparse_x(fmt), _labels()
    model, dense = _pair(dtype)
    assert model.net.layers[0].input_grad is False  # the first Linear forms no dL/dx (none exists for sparse)
    loss, grads = model.loss(X, y, reg=0.01)
    loss_d, grads_d = dense.loss(X.toarray(), y, reg=0.01)
    _close(float(loss), float(loss_d), dtype)
    assert grads.keys() == grads_d.keys()
    for k in grads:
        assert isinstance(grads[k], np.ndarray) and grads[k].dtype == grads_d[k].dtype, k
        _close(grads[k], grads_d[k], dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_forward_predict_and_probabilities_equal_the_dense_ones(dtype, fmt):
    X = _sparse_x(fmt, seed=1)
    model, dense = _pair(dtype)
    _close(model.forward(X), dense.forward(X.toarray()), dtype)
    np.testing.assert_array_equal(model.predict(X, batch_size=7), dense.predict(X.toarray(), batch_size=7))
    _close(model.predict_proba(X, batch_size=7), dense.predict_proba(X.toarray()), dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov"])
def test_fused_steps_on_sparse_x_equal_the_dense_ones(dtype, fmt, name):
    X, y = _sparse_x(fmt, seed=2), _labels()
    model, dense = _pair(dtype)
    opt = make_optimizer(name, 0.2, backend=model.backend, weight_decay=0.001)
    opt_d = make_optimizer(name, 0.2, backend=dense.backend, weight_decay=0.001)
    Xs, Xd, yd = model.check_x(X), dense.check_x(X.toarray()), dense.check_y(y, N)
    assert is_sparse(Xs)
    for _ in range(4):
        _close(float(model.fused_step(Xs, yd, 0.01, opt)), float(dense.fused_step(Xd, yd, 0.01, opt_d)), dtype)
    for k in dense.params:
        _close(model.params[k], dense.params[k], dtype)
    assert all(layer.weight_update is None for layer in model.net.layers if hasattr(layer, "weight_update"))
    assert np.abs(model.params["W1"] - MLP([D, H, H, C], backend="cpu", dtype=dtype, seed=3,
                                            activation="tanh").params["W1"]).max() > 1e-3  # it did learn


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("name", ["momentum", "adam"])
def test_loss_then_step_on_sparse_x_equals_the_dense_one(dtype, fmt, name):
    X, y = _sparse_x(fmt, seed=4), _labels()
    model, dense = _pair(dtype)
    opt = make_optimizer(name, 0.05, backend=model.backend)
    opt_d = make_optimizer(name, 0.05, backend=dense.backend)
    for _ in range(3):
        _, grads = model.loss(X, y, reg=0.001)
        opt.step(model.params, grads)
        _, grads_d = dense.loss(X.toarray(), y, reg=0.001)
        opt_d.step(dense.params, grads_d)
    for k in dense.params:
        _close(model.params[k], dense.params[k], dtype)


def test_the_fused_and_the_plain_step_agree_on_sparse_x():
    X, y = _sparse_x("csr", seed=5), _labels()
    fused, plain = _pair("float64")
    opt_f = make_optimizer("nesterov", 0.1, backend=fused.backend)
    opt_p = make_optimizer("nesterov", 0.1, backend=plain.backend)
    fused.fused_step(fused.check_x(X), fused.check_y(y, N), 0.01, opt_f)
    _, grads = plain.loss(X, y, reg=0.01)
    opt_p.step(plain.params, grads)
    for k in plain.params:
        _close(fused.params[k], plain.params[k], "float64")


@pytest.fixture
def no_densifying(monkeypatch):
    """Every sparse class's toarray / todense raises, for the duration of the test."""
    def refuse(self, *args, **kwargs):
        raise AssertionError(f"{type(self).__name__} was densified")

    classes = {cls for base in (sparse.csr_matrix, sparse.csc_matrix, sparse.csr_array, sparse.csc_array,
                                sparse.coo_matrix) for cls in base.__mro__}
    for cls in classes:
        for method in ("toarray", "todense"):
            if method in vars(cls):
                monkeypatch.setattr(cls, method, refuse)
    return refuse


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_a_loss_and_steps_on_sparse_x_never_densify_it(no_densifying, fmt):
    dense_copy = _sparse_x(fmt, seed=6)
    X, y = _sparse_x(fmt, seed=6), _labels()
    with pytest.raises(AssertionError, match="densified"):
        X.toarray()  # the patch is in force
    with pytest.raises(AssertionError, match="densified"):
        X.T.todense()
    model = MLP([D, H, C], backend="cpu", dtype="float32", seed=0)
    opt = make_optimizer("momentum", 0.1, backend=model.backend)
    _, grads = model.loss(X, y, reg=0.01)
    opt.step(model.params, grads)
    model.fused_step(model.check_x(X), model.check_y(y, N), 0.01, opt)
    rows = take_rows(model.check_x(X), np.array([5, 1, 5]))
    assert model.predict(rows).shape == (3,) and model.predict_proba(X).shape == (N, C)
    assert (X != dense_copy).nnz == 0  # X itself is untouched


def test_check_x_keeps_the_format_and_indices_and_casts_the_dtype():
    model = MLP([D, H, C], backend="cpu", dtype="float32")
    for fmt in ("csr", "csc"):
        X = _sparse_x(fmt, seed=7)
        got = model.check_x(X)
        assert got.format == fmt and got.dtype == np.float32
        np.testing.assert_array_equal(got.indices, X.indices)
        np.testing.assert_array_equal(got.indptr, X.indptr)
        np.testing.assert_array_equal(got.data, X.data.astype(np.float32))
    X32 = _sparse_x("csr", seed=7).astype(np.float32)
    assert model.check_x(X32) is X32  # already right: no copy, as for a dense NumPy X
    coo = _sparse_x("csr", seed=7).tocoo()
    assert model.check_x(coo).format == "csr"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_check_x_refuses_non_finite_stored_values(bad):
    model = MLP([D, H, C], backend="cpu", dtype="float64")
    X = _sparse_x("csr", seed=8)
    X.data[3] = bad
    with pytest.raises(InputError, match="NaN or inf") as exc:
        model.check_x(X)
    assert "\n" not in str(exc.value)
    with pytest.raises(InputError, match="NaN or inf"):
        model.loss(X, _labels())
    assert is_sparse(model.check_x(X, assume_finite=True))  # the caller vouched for it


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_sparse_is_finite_reads_the_stored_values_even_when_their_sum_overflows():
    X = sparse.csr_matrix(np.array([[3e38, 0.0, 3e38]], dtype=np.float32))
    assert not np.isfinite(X.data.sum()) and sparse_is_finite(X)
    X.data[0] = np.nan
    assert not sparse_is_finite(X)


def test_check_x_refuses_a_wrong_shape_or_dtype_in_one_line():
    model = MLP([D, H, C], backend="cpu")
    with pytest.raises(InputError, match=f"has {D + 1} features but the model's input size is {D}") as exc:
        model.check_x(_sparse_x("csr", d=D + 1))
    assert "\n" not in str(exc.value)
    counts = sparse.csr_matrix((np.ones(3, dtype=np.int64), ([0, 1, 2], [0, 5, 9])), shape=(3, D))
    with pytest.raises(InputError, match="dtype int64; it must be floating"):
        model.check_x(counts)


@pytest.mark.parametrize("spec", ["strict", pytest.param("torch", marks=pytest.mark.needs_backend("torch"))])
def test_backends_without_sparse_support_refuse_it_in_one_line(spec):
    model = MLP([D, H, C], backend=spec)
    with pytest.raises(InputError, match=r"sparse input needs device 'cpu' or 'cuda' \(CuPy\).*X\.toarray\(\)") as exc:
        model.check_x(_sparse_x("csr"))
    assert "\n" not in str(exc.value)
    with pytest.raises(InputError, match="sparse input needs device"):
        model.loss(_sparse_x("csc"), _labels())
    with pytest.raises(InputError, match="sparse input needs device"):
        to_backend_sparse(_sparse_x("csr"), model.backend)


@pytest.mark.parametrize("fmt", FORMATS)
def test_take_rows_returns_the_rows_in_the_order_given(fmt):
    X = _sparse_x(fmt, seed=9)
    rows = np.array([7, 0, 59, 7, 3])
    got = take_rows(X, rows)
    assert got.format == "csr" and got.shape == (5, D)
    np.testing.assert_array_equal(got.toarray(), X.toarray()[rows])
    np.testing.assert_array_equal(take_rows(X, rows[::-1].astype(np.int32)).toarray(), X.toarray()[rows[::-1]])


def test_is_sparse_tells_sparse_matrices_from_everything_else():
    from scipy.sparse.linalg import aslinearoperator

    X = _sparse_x("csr")
    assert all(is_sparse(a) for a in (X, X.tocsc(), X.tocoo(), sparse.csr_array(X)))
    assert not any(is_sparse(a) for a in (X.toarray(), [[1.0]], None, 3.0, aslinearoperator(X)))


@pytest.mark.gpu
@pytest.mark.needs_backend("cuda")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_cupy_sparse_x_equals_the_dense_numpy_numbers(dtype, fmt):
    import cupy
    import cupyx.scipy.sparse

    X, y = _sparse_x(fmt, seed=10), _labels()
    model, dense = MLP([D, H, H, C], activation="tanh", backend="cuda", dtype=dtype, seed=3), _pair(dtype)[1]
    Xs = model.check_x(X)
    assert isinstance(Xs, cupyx.scipy.sparse.csr_matrix) and Xs.dtype == np.dtype(dtype)
    loss, grads = model.loss(X, y, reg=0.01)
    loss_d, grads_d = dense.loss(X.toarray(), y, reg=0.01)
    _close(float(loss), float(loss_d), dtype)
    for k in grads_d:
        _close(cupy.asnumpy(grads[k]), grads_d[k], dtype)
    opt = make_optimizer("nesterov", 0.1, backend=model.backend)
    opt_d = make_optimizer("nesterov", 0.1, backend=dense.backend)
    for _ in range(3):
        model.fused_step(Xs, model.check_y(y, N), 0.01, opt)
        dense.fused_step(dense.check_x(X.toarray()), dense.check_y(y, N), 0.01, opt_d)
    for k in dense.params:
        _close(cupy.asnumpy(model.params[k]), dense.params[k], dtype)
    rows = np.array([4, 2, 4])
    for index in (rows, cupy.asarray(rows)):
        np.testing.assert_array_equal(take_rows(Xs, index).get().toarray(), X.toarray()[rows].astype(dtype))
    np.testing.assert_array_equal(cupy.asnumpy(model.predict(X)), dense.predict(X.toarray()))
