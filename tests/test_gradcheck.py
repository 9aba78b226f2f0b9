"""Tests for xpmlp.gradcheck: every analytic gradient passes on every backend, and the checker
catches a wrong backward (and says by how much)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xpmlp.backend import get_backend
from xpmlp.gradcheck import (
    _entries,
    check_arrays,
    check_layer,
    check_loss,
    check_model,
    relative_error,
    run_all,
    trainer_path_checks,
)
from xpmlp.layers import ACTIVATIONS, Dropout, Linear, ReLU, Tanh, get_activation
from xpmlp.model import MLP

TOL = 1e-7


class OffByTenPercentReLU(ReLU):
    """A deliberately wrong ReLU: its backward returns 1.1x the correct gradient."""

    def backward(self, dout):
        return 1.1 * super().backward(dout)


class DoubledBiasLinear(Linear):
    """A deliberately wrong Linear: db is twice the correct value, dW and dx are right."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["b"] = 2.0 * self.grads["b"]
        return dx


def _kink_free(backend, shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    return backend.asarray(x + 0.1 * np.sign(x), dtype="float64")


def test_run_all_passes_on_every_backend(backend):
    rows = run_all(backend.spec)
    names = [r["check"] for r in rows]
    activations = [n for n in ACTIVATIONS if n != "silu"]
    assert names[0] == "softmax_cross_entropy"
    assert names[1].startswith("Linear")
    assert names[2:2 + len(activations)] == activations
    assert len([n for n in names if n.startswith("MLP[6, 8, 7, 4] ") and "dropout" not in n]) == len(activations)
    assert names[2 + len(activations)] == "dropout (fixed mask)"
    assert names[-4:] == ["MLP[6, 8, 7, 5, 4] tanh+relu+sigmoid + L2",  # one activation per hidden layer
                          "MLP[6, 8, 7, 4] tanh + dropout 0.3 (fixed masks) + L2",
                          "MLP[16, 8, 4] tanh on an augmented batch (flip, shift:1) + L2",
                          "fused momentum step vs unfused update (3 steps)"]
    assert len(rows) == 7 + 2 * len(activations)
    for r in rows:
        assert "direction" in r["errors"] or r["check"].startswith("fused")  # the fused row compares updates
        assert r["max_error"] == max(r["errors"].values())
        assert 0.0 <= r["max_error"] < TOL, (r["check"], r["errors"])
    mlp_errors = [r["errors"] for r in rows if r["check"].startswith("MLP[6, 8, 7, 4]")]
    assert all({"W1", "b1", "W2", "b2", "W3", "b3"} <= set(e) for e in mlp_errors)


def test_check_layer_linear():
    backend = get_backend("cpu", "float64")
    layer = Linear(5, 4, backend, init="xavier", rng=backend.rng(0))
    layer.params["b"] = backend.asarray(np.random.default_rng(1).standard_normal(4))
    errors = check_layer(layer, _kink_free(backend, (3, 5), 2))
    assert set(errors) == {"x", "W", "b", "direction"}
    assert max(errors.values()) < TOL


@pytest.mark.parametrize("name", ["relu", "leaky_relu:0.2", "sigmoid", "tanh", "swish", "selu", "elu", "gelu"])
def test_check_layer_activations(backend, name):
    errors = check_layer(get_activation(name, backend), _kink_free(backend, (3, 4), 3))
    assert set(errors) == {"x", "direction"}
    assert max(errors.values()) < TOL


def test_check_layer_leaves_the_input_and_params_unchanged():
    backend = get_backend("cpu", "float64")
    layer = Linear(4, 3, backend, rng=backend.rng(0))
    x = _kink_free(backend, (2, 4), 4)
    x0, w0 = x.copy(), layer.params["W"].copy()
    check_layer(layer, x)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(layer.params["W"], w0)


@pytest.mark.parametrize("reg", [0.0, 0.1])
def test_check_model(backend, reg):
    model = MLP([5, 6, 3], activation="tanh", backend=backend, dtype="float64", seed=1)
    X = np.random.default_rng(5).standard_normal((4, 5))
    y = np.array([0, 2, 1, 2])
    before = model.state_dict()
    errors = check_model(model, X, y, reg)
    assert set(errors) == {"W1", "b1", "W2", "b2", "direction"}
    assert max(errors.values()) < TOL
    for k, v in model.state_dict().items():  # every perturbation was undone
        np.testing.assert_array_equal(v, before[k])


def test_check_loss():
    backend = get_backend("strict", "float64")
    rng = np.random.default_rng(6)
    errors = check_loss(backend.asarray(rng.standard_normal((3, 4))), backend.asarray(np.array([3, 0, 1])), backend)
    assert set(errors) == {"logits", "direction"}
    assert max(errors.values()) < TOL


# -- the checker can fail ----------------------------------------------------------------------------

def test_wrong_relu_backward_is_caught():
    backend = get_backend("cpu", "float64")
    errors = check_layer(OffByTenPercentReLU(backend), _kink_free(backend, (4, 6), 7))
    assert errors["x"] > 1e-3
    assert errors["direction"] > 1e-3
    # analytic = 1.1 x numeric: the relative error is 0.1 / 1.1
    assert errors["x"] == pytest.approx(0.1 / 1.1, rel=1e-6)
    assert errors["direction"] == pytest.approx(0.1 / 1.1, rel=1e-6)


def test_correct_relu_passes_on_the_same_input():
    backend = get_backend("cpu", "float64")
    assert max(check_layer(ReLU(backend), _kink_free(backend, (4, 6), 7)).values()) < TOL


def test_wrong_relu_inside_a_model_is_caught_where_it_acts():
    model = MLP([5, 6, 3], activation="relu", backend="cpu", dtype="float64", seed=2)
    layers = model.net.layers
    assert isinstance(layers[1], ReLU)
    layers[1] = OffByTenPercentReLU(model.backend)
    X = np.random.default_rng(8).standard_normal((6, 5))
    errors = check_model(model, X, np.array([0, 1, 2, 0, 1, 2]))
    # gradients below the wrong layer are off by 10%; those above it are still right
    assert errors["W1"] > 1e-3 and errors["b1"] > 1e-3 and errors["direction"] > 1e-3
    assert errors["W2"] < TOL and errors["b2"] < TOL


def test_wrong_bias_gradient_is_caught():
    backend = get_backend("cpu", "float64")
    layer = DoubledBiasLinear(4, 3, backend, rng=backend.rng(0))
    errors = check_layer(layer, _kink_free(backend, (5, 4), 9))
    assert errors["b"] == pytest.approx(0.5, rel=1e-6)  # |2g - g| / |2g|
    assert errors["W"] < TOL and errors["x"] < TOL


def test_check_arrays_on_a_plain_function():
    a = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])

    def f():
        return float(np.sum(a ** 3) + np.sum(np.sin(a)))

    right = {"a": 3 * a ** 2 + np.cos(a)}
    wrong = {"a": 3 * a ** 2}
    cpu = get_backend("cpu", "float64")
    assert max(check_arrays(f, {"a": a}, right, cpu).values()) < TOL
    assert check_arrays(f, {"a": a}, wrong, cpu)["a"] > 1e-3


# -- pieces -------------------------------------------------------------------------------------------

def test_relative_error_hand_values():
    assert relative_error([1.0, 2.0], [1.0, 2.2]) == pytest.approx(0.2 / 2.2, rel=1e-15)
    assert relative_error([-4.0], [-3.0]) == pytest.approx(0.25, rel=1e-15)
    assert relative_error([0.0, 0.0], [0.0, 0.0]) == 0.0
    assert relative_error([1e-20, 1.0], [2e-20, 1.0]) < 1e-19  # tiny entries next to large ones


def test_entries_all_or_sampled():
    rng = np.random.default_rng(0)
    assert _entries((2, 3), 10, rng) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert _entries((4,), 10, rng) == [(0,), (1,), (2,), (3,)]
    sampled = _entries((30, 20), 50, rng)
    assert len(sampled) == 50 == len(set(sampled))
    assert all(0 <= i < 30 and 0 <= j < 20 for i, j in sampled)


def test_large_layer_is_sampled_and_still_passes():
    backend = get_backend("cpu", "float64")
    layer = Linear(40, 30, backend, rng=backend.rng(1))
    errors = check_layer(layer, _kink_free(backend, (3, 40), 10), max_entries=25)
    assert max(errors.values()) < TOL


def test_tanh_layer_known_tolerance_scale():
    # A fourth-order stencil with h = 1e-4 on a smooth function lands many orders below the 1e-7 bar.
    backend = get_backend("cpu", "float64")
    errors = check_layer(Tanh(backend), _kink_free(backend, (3, 3), 11))
    assert max(errors.values()) < 1e-9
    assert math.isfinite(errors["direction"])


# -- the Trainer's path: each check fails when what it guards is broken --------------------------------

def _trainer_rows(backend) -> dict:
    return dict(trainer_path_checks(backend))


def test_trainer_path_checks_pass(backend):
    rows = _trainer_rows(backend)
    assert len(rows) == 3 and all(max(e.values()) < TOL for e in rows.values()), rows


def test_a_dropout_backward_that_ignores_its_mask_is_caught(monkeypatch):
    monkeypatch.setattr(Dropout, "backward", lambda self, dout: dout)
    rows = _trainer_rows(get_backend("cpu", "float64"))
    assert max(rows["MLP[6, 8, 7, 4] tanh + dropout 0.3 (fixed masks) + L2"].values()) > 1e-2


def test_a_wrong_fused_update_is_caught(monkeypatch):
    from xpmlp.optim import SGD

    real = SGD.fused_weight_update

    def off_by_a_little(self, name, W, A, B, decay):
        real(self, name, W, A, B, decay)
        W[0, 0] += 1e-4  # an update one entry wrong by 1e-4

    monkeypatch.setattr(SGD, "fused_weight_update", off_by_a_little)
    errors = _trainer_rows(get_backend("cpu", "float64"))["fused momentum step vs unfused update (3 steps)"]
    assert max(errors.values()) > 1e-4


def test_an_augmentation_that_changes_nothing_fails_its_check(monkeypatch):
    from xpmlp.augment import Augmenter

    monkeypatch.setattr(Augmenter, "__call__", lambda self, X, step: X * 1.0)
    rows = _trainer_rows(get_backend("cpu", "float64"))
    errors = rows["MLP[16, 8, 4] tanh on an augmented batch (flip, shift:1) + L2"]
    assert errors["augmented"] == 1.0
