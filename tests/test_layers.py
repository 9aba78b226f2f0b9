"""Tests for xpmlp.layers: activations and their derivatives at hand-computed points, stability at
|x| = 1e4, the activation registry, and the Linear layer (forward, backward, initialisation).

Expected values come from plain ``math`` formulas written out here, never from the code under test.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xpmlp.backend import available_specs, get_backend
from xpmlp.errors import InputError
from xpmlp.layers import (
    ACTIVATIONS,
    ELU,
    GELU,
    SELU,
    Dropout,
    LeakyReLU,
    Linear,
    ReLU,
    Sigmoid,
    Swish,
    Tanh,
    get_activation,
    init_std,
)

X_POINTS = [-2.0, -0.5, 0.5, 3.0]
CPU = get_backend("cpu", "float64")

# SELU constants (Klambauer et al., 2017), typed in by hand.
LAMBDA = 1.0507009873554805
ALPHA = 1.6732632423543772
K = math.sqrt(2.0 / math.pi)


def _sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _gelu(v: float) -> float:
    return 0.5 * v * (1.0 + math.tanh(K * (v + 0.044715 * v ** 3)))


def _gelu_d(v: float) -> float:
    t = math.tanh(K * (v + 0.044715 * v ** 3))
    return 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * K * (1.0 + 3.0 * 0.044715 * v * v)


# name -> (constructor, f(v), f'(v)), all written from the textbook definitions.
REFERENCE = {
    "relu": (ReLU, lambda v: max(v, 0.0), lambda v: 1.0 if v > 0 else 0.0),
    "leaky_relu": (LeakyReLU, lambda v: v if v > 0 else 0.01 * v, lambda v: 1.0 if v > 0 else 0.01),
    "leaky_relu_0.2": (lambda b: LeakyReLU(b, 0.2), lambda v: v if v > 0 else 0.2 * v, lambda v: 1.0 if v > 0 else 0.2),
    "sigmoid": (Sigmoid, _sig, lambda v: _sig(v) * (1.0 - _sig(v))),
    "tanh": (Tanh, math.tanh, lambda v: 1.0 - math.tanh(v) ** 2),
    "swish": (Swish, lambda v: v * _sig(v), lambda v: _sig(v) + v * _sig(v) * (1.0 - _sig(v))),
    "selu": (SELU, lambda v: LAMBDA * v if v > 0 else LAMBDA * ALPHA * (math.exp(v) - 1.0),
             lambda v: LAMBDA if v > 0 else LAMBDA * ALPHA * math.exp(v)),
    "elu": (ELU, lambda v: v if v > 0 else math.exp(v) - 1.0, lambda v: 1.0 if v > 0 else math.exp(v)),
    "elu_0.5": (lambda b: ELU(b, alpha=0.5), lambda v: v if v > 0 else 0.5 * (math.exp(v) - 1.0),
                lambda v: 1.0 if v > 0 else 0.5 * math.exp(v)),
    "gelu": (GELU, _gelu, _gelu_d),
}

# A few values typed in by hand as a sanity anchor for the formulas above.
HAND_VALUES = {
    ("sigmoid", 0.5): 0.6224593312018546,
    ("tanh", 0.5): 0.46211715726000974,
    ("swish", -2.0): -0.2384058440442351,
    ("elu", -0.5): -0.3934693402873666,
}


def test_reference_formulas_match_hand_values():
    for (name, v), expected in HAND_VALUES.items():
        assert REFERENCE[name][1](v) == pytest.approx(expected, rel=1e-15, abs=1e-16)
    assert LAMBDA * ALPHA == pytest.approx(1.7580993408473766, rel=1e-15)


def _forward_backward(backend, layer, values, dout=None, dtype="float64"):
    x = backend.asarray(np.array(values), dtype=dtype)
    out = layer.forward(x, train=True)
    d = backend.asarray(np.ones(len(values)) if dout is None else np.array(dout), dtype=dtype)
    dx = layer.backward(d)
    return x, out, dx


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_activation_values_and_derivatives(backend, name):
    make, f, df = REFERENCE[name]
    x, out, dx = _forward_backward(backend, make(backend), X_POINTS)
    xp = backend.xp
    assert out.dtype == xp.float64 and dx.dtype == xp.float64
    assert tuple(out.shape) == (4,) and tuple(dx.shape) == (4,)
    np.testing.assert_allclose(backend.to_numpy(out), [f(v) for v in X_POINTS], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(backend.to_numpy(dx), [df(v) for v in X_POINTS], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_backward_applies_the_chain_rule(backend, name):
    make, _, df = REFERENCE[name]
    dout = [2.0, -3.0, 0.25, -1.5]
    _, _, dx = _forward_backward(backend, make(backend), X_POINTS, dout)
    expected = [g * df(v) for g, v in zip(dout, X_POINTS, strict=True)]
    np.testing.assert_allclose(backend.to_numpy(dx), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_activation_on_a_2d_batch(name):
    backend = get_backend("cpu", "float64")
    make, f, df = REFERENCE[name]
    values = np.array([[-2.0, -0.5, 0.5], [3.0, 1.25, -4.0]])
    layer = make(backend)
    out = layer.forward(backend.asarray(values), train=True)
    dx = layer.backward(backend.asarray(np.ones_like(values)))
    assert out.shape == (2, 3) and dx.shape == (2, 3)
    np.testing.assert_allclose(out, np.vectorize(f)(values), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, np.vectorize(df)(values), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "swish", "selu", "gelu", "relu"])
def test_inference_forward_does_not_overwrite_the_cache(name):
    backend = get_backend("cpu", "float64")
    make, _, df = REFERENCE[name]
    layer = make(backend)
    layer.forward(backend.asarray(X_POINTS), train=True)
    layer.forward(backend.asarray([5.0, -5.0, 1.0, -1.0]), train=False)
    dx = layer.backward(backend.asarray(np.ones(4)))
    np.testing.assert_allclose(dx, [df(v) for v in X_POINTS], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_default_activations_leave_their_input_and_gradient_alone(backend, name):
    x_host, d_host = np.array(X_POINTS), np.array([2.0, -3.0, 0.25, -1.5])
    x, d = backend.asarray(x_host), backend.asarray(d_host)
    layer = REFERENCE[name][0](backend)
    layer.forward(x, train=True)
    layer.backward(d)
    np.testing.assert_array_equal(backend.to_numpy(x), x_host)
    np.testing.assert_array_equal(backend.to_numpy(d), d_host)


def test_inplace_relu_gives_the_same_values(backend):
    values = np.array([[-2.0, -0.5, 0.5], [3.0, 0.0, -1e4]])
    dout = np.array([[1.5, -2.0, 0.5], [-3.0, 4.0, 2.0]])
    layer = ReLU(backend, inplace=True)
    out = backend.to_numpy(layer.forward(backend.asarray(values), train=True)).copy()
    dx = backend.to_numpy(layer.backward(backend.asarray(dout)))
    np.testing.assert_array_equal(out, np.maximum(values, 0.0))
    np.testing.assert_array_equal(dx, np.where(values > 0, dout, 0.0))


def test_activations_have_no_params():
    for name in ACTIVATIONS:
        layer = get_activation(name, CPU)
        assert layer.params == {} and layer.grads == {}


# -- |x| = 1e4: no overflow, no NaN, no warning, the right limits ----------------------------------

BIG = [-1e4, 1e4]
# name -> (f(-1e4), f(1e4)), (f'(-1e4), f'(1e4))
LIMITS = {
    "relu": ([0.0, 1e4], [0.0, 1.0]),
    "leaky_relu": ([-100.0, 1e4], [0.01, 1.0]),
    "sigmoid": ([0.0, 1.0], [0.0, 0.0]),
    "tanh": ([-1.0, 1.0], [0.0, 0.0]),
    "swish": ([0.0, 1e4], [0.0, 1.0]),
    "selu": ([-LAMBDA * ALPHA, LAMBDA * 1e4], [0.0, LAMBDA]),
    "elu": ([-1.0, 1e4], [0.0, 1.0]),
    "gelu": ([0.0, 1e4], [0.0, 1.0]),
}


@contextmanager
def _strict_floats(backend):
    """Every warning is an error; NumPy raises on overflow, division by zero and invalid values.

    Underflow is left at NumPy's default (ignore): e^-1e4 rounding to 0 is the correct result of the
    stable forms (and of any implementation that evaluates exp on a large negative number).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if backend.name == "numpy":
            with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
                yield
        else:
            yield


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(LIMITS))
def test_large_inputs_are_finite_with_correct_limits(backend, name, dtype):
    f_lim, df_lim = LIMITS[name]
    layer = get_activation(name, backend)
    with _strict_floats(backend):
        x, out, dx = _forward_backward(backend, layer, BIG, dtype=dtype)
        out_h, dx_h = backend.to_numpy(out), backend.to_numpy(dx)
    assert out.dtype == getattr(backend.xp, dtype) and dx.dtype == getattr(backend.xp, dtype)
    assert np.all(np.isfinite(out_h)) and np.all(np.isfinite(dx_h))
    rtol = 1e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(out_h, f_lim, rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(dx_h, df_lim, rtol=rtol, atol=1e-12)


def test_sigmoid_large_inputs_exact_limits_float64():
    backend = get_backend("cpu", "float64")
    out = Sigmoid(backend).forward(backend.asarray([-1e4, -800.0, 800.0, 1e4]))
    assert out[0] == 0.0 and out[-1] == 1.0 and out[2] == 1.0
    assert 0.0 <= out[1] < 1e-300


# -- the registry ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name,cls", [("relu", ReLU), ("leaky_relu", LeakyReLU), ("sigmoid", Sigmoid),
                                      ("tanh", Tanh), ("swish", Swish), ("silu", Swish), ("selu", SELU),
                                      ("elu", ELU), ("gelu", GELU)])
def test_get_activation_by_name(name, cls):
    layer = get_activation(name, CPU)
    assert type(layer) is cls
    assert get_activation(name.upper(), CPU).__class__ is cls
    assert get_activation(f"  {name} ", CPU).__class__ is cls


def test_every_registered_name_is_reachable():
    assert set(ACTIVATIONS) == {"relu", "leaky_relu", "sigmoid", "tanh", "swish", "silu", "selu", "elu", "gelu"}


def test_silu_is_swish():
    backend = get_backend("cpu", "float64")
    x = backend.asarray(X_POINTS)
    np.testing.assert_array_equal(get_activation("silu", CPU).forward(x), get_activation("swish", CPU).forward(x))


def test_leaky_relu_slope_in_the_name():
    layer = get_activation("leaky_relu:0.2", CPU)
    assert isinstance(layer, LeakyReLU) and layer.slope == 0.2
    assert get_activation("Leaky-ReLU:0.05", CPU).slope == 0.05
    assert get_activation("leaky_relu", CPU).slope == 0.01
    assert get_activation("leaky_relu", CPU, slope=0.3).slope == 0.3
    backend = get_backend("cpu", "float64")
    out = layer.forward(backend.asarray([-2.0, 3.0]))
    np.testing.assert_allclose(out, [-0.4, 3.0], rtol=1e-15)


def test_elu_kwargs_through_the_registry():
    layer = get_activation("elu", CPU, alpha=0.5)
    assert isinstance(layer, ELU) and layer.alpha == 0.5


def test_unknown_activation_lists_the_names():
    with pytest.raises(InputError) as info:
        get_activation("softplus", CPU)
    msg = str(info.value)
    assert "softplus" in msg
    for name in ACTIVATIONS:
        assert name in msg


@pytest.mark.parametrize("name", ["leaky_relu:abc", "leaky_relu:"])
def test_bad_leaky_slope_text(name):
    with pytest.raises(InputError, match="leaky_relu:0.01"):
        get_activation(name, CPU)


@pytest.mark.parametrize("slope", [0.0, -0.1, 1.0, 2.0])
def test_leaky_relu_slope_out_of_range(slope):
    with pytest.raises(InputError, match="0.01"):
        LeakyReLU(CPU, slope)
    with pytest.raises(InputError):
        get_activation(f"leaky_relu:{slope}", CPU)


@pytest.mark.parametrize("alpha", [0.0, -1.0])
def test_elu_alpha_must_be_positive(alpha):
    with pytest.raises(InputError, match="positive"):
        ELU(CPU, alpha=alpha)


def test_input_error_is_a_value_error():
    with pytest.raises(ValueError):
        get_activation("nope", CPU)


# -- Linear ------------------------------------------------------------------------------------------

def _linear(backend, n_in, n_out, seed=0, init="he"):
    return Linear(n_in, n_out, backend, init=init, rng=backend.rng(seed))


def test_linear_forward_is_x_at_w_plus_b(backend):
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)
    layer = _linear(backend, 4, 3)
    layer.params["W"], layer.params["b"] = backend.asarray(w), backend.asarray(b)
    out = layer.forward(backend.asarray(x))
    assert tuple(out.shape) == (5, 3) and out.dtype == backend.xp.float64
    expected = np.array([[sum(x[i, k] * w[k, j] for k in range(4)) + b[j] for j in range(3)] for i in range(5)])
    np.testing.assert_allclose(backend.to_numpy(out), expected, rtol=1e-12, atol=1e-13)


def test_linear_forward_leaves_bias_untouched(backend):
    layer = _linear(backend, 3, 2)
    b = np.array([0.5, -1.0])
    layer.params["b"] = backend.asarray(b)
    layer.forward(backend.asarray(np.ones((2, 3))))
    np.testing.assert_array_equal(backend.to_numpy(layer.params["b"]), b)


def test_linear_backward_hand_formulas(backend):
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((6, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)
    dout = rng.standard_normal((6, 3))
    layer = _linear(backend, 4, 3)
    layer.params["W"], layer.params["b"] = backend.asarray(w), backend.asarray(b)
    layer.forward(backend.asarray(x), train=True)
    dx = layer.backward(backend.asarray(dout))
    dW = np.array([[sum(x[n, i] * dout[n, j] for n in range(6)) for j in range(3)] for i in range(4)])
    db = np.array([sum(dout[n, j] for n in range(6)) for j in range(3)])
    dx_ref = np.array([[sum(dout[n, j] * w[i, j] for j in range(3)) for i in range(4)] for n in range(6)])
    assert set(layer.grads) == {"W", "b"}
    np.testing.assert_allclose(backend.to_numpy(layer.grads["W"]), dW, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(backend.to_numpy(layer.grads["b"]), db, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(backend.to_numpy(dx), dx_ref, rtol=1e-12, atol=1e-13)


def test_linear_input_grad_false_returns_none_but_fills_grads(backend):
    rng = np.random.default_rng(3)
    x, dout = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    layer = _linear(backend, 3, 2)
    layer.input_grad = False
    layer.forward(backend.asarray(x))
    assert layer.backward(backend.asarray(dout)) is None
    np.testing.assert_allclose(backend.to_numpy(layer.grads["W"]), x.T @ dout, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(backend.to_numpy(layer.grads["b"]), dout.sum(axis=0), rtol=1e-12, atol=1e-13)


def test_linear_initial_bias_is_zero_and_shapes(backend):
    layer = _linear(backend, 5, 7)
    assert tuple(layer.params["W"].shape) == (5, 7)
    assert tuple(layer.params["b"].shape) == (7,)
    np.testing.assert_array_equal(backend.to_numpy(layer.params["b"]), np.zeros(7))
    assert layer.params["W"].dtype == backend.xp.float64
    assert (layer.in_features, layer.out_features) == (5, 7)
    assert layer.input_grad is True
    assert repr(layer) == "Linear(5, 7, init='he')"


@pytest.mark.parametrize("init,fan_in,fan_out,std", [
    ("he", 2000, 500, math.sqrt(2.0 / 2000)),
    ("xavier", 1200, 800, math.sqrt(2.0 / (1200 + 800))),
    ("std:1e-4", 1000, 1000, 1e-4),
    (0.05, 1000, 1000, 0.05),
])
def test_init_statistics(init, fan_in, fan_out, std):
    backend = get_backend("cpu", "float64")
    w = _linear(backend, fan_in, fan_out, seed=11, init=init).params["W"]
    n = w.size  # one million draws: the sample std is within 0.1% (1 SE) of the true one
    assert abs(float(np.std(w)) / std - 1.0) < 0.01
    assert abs(float(np.mean(w))) < 5 * std / math.sqrt(n)


def test_init_std_values():
    assert init_std("he", 8, 3) == math.sqrt(2.0 / 8)
    assert init_std("xavier", 8, 2) == math.sqrt(2.0 / 10)
    assert init_std("std:1e-4", 8, 3) == 1e-4
    assert init_std("std:0.25", 8, 3) == 0.25
    assert init_std(0.5, 8, 3) == 0.5
    assert init_std(2, 8, 3) == 2.0


@pytest.mark.parametrize("init", ["glorot", "HE", "std:", "std:abc", "std:-1", "std:0", "std:nan", "std:inf",
                                  "", 0, -0.5, float("nan"), True, None])
def test_bad_init_raises(init):
    with pytest.raises(InputError) as info:
        Linear(3, 2, CPU, init=init, rng=np.random.default_rng(0))
    msg = str(info.value)
    assert "std" in msg or "positive" in msg
    assert "\n" not in msg


def test_unknown_init_names_the_choices():
    with pytest.raises(InputError, match="'he', 'xavier' or 'std:S'"):
        init_std("glorot", 3, 2)


@pytest.mark.parametrize("sizes", [(0, 3), (3, 0), (-1, 2)])
def test_linear_sizes_must_be_positive(sizes):
    with pytest.raises(InputError, match="positive"):
        Linear(*sizes, CPU, rng=np.random.default_rng(0))


@pytest.mark.parametrize("not_a_backend", ["cpu", np])
def test_layers_need_a_backend_object(not_a_backend):
    with pytest.raises(InputError, match="Backend"):
        Linear(3, 2, not_a_backend)
    with pytest.raises(InputError, match="Backend"):
        ReLU(not_a_backend)


@pytest.mark.parametrize("layer", [Linear(3, 2), ReLU(), Dropout(0.2), Tanh()], ids=repr)
def test_a_layer_without_a_backend_says_how_to_place_it_when_used(layer):
    assert layer.backend is None
    with pytest.raises(InputError, match="not on a backend yet.*Sequential"):
        layer.forward(np.ones((2, 3)))


def test_linear_default_rng_is_seed_zero():
    np.testing.assert_array_equal(Linear(3, 2, CPU).params["W"], Linear(3, 2, CPU, rng=CPU.rng(0)).params["W"])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_same_seed_gives_bit_identical_weights_on_every_backend(dtype):
    expected = (np.random.default_rng(42).standard_normal((13, 7)) * math.sqrt(2.0 / 13)).astype(dtype)
    for spec in available_specs():
        b = get_backend(spec, dtype)
        w = b.to_numpy(_linear(b, 13, 7, seed=42).params["W"])
        assert w.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(w, expected, err_msg=spec)


def test_different_seeds_give_different_weights():
    b = get_backend("cpu", "float64")
    assert not np.array_equal(_linear(b, 4, 4, seed=1).params["W"], _linear(b, 4, 4, seed=2).params["W"])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=1, max_size=8))
def test_sigmoid_bounds_and_symmetry(values):
    backend = get_backend("cpu", "float64")
    x = np.array(values)
    with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
        s_pos = Sigmoid(backend).forward(backend.asarray(x))
        s_neg = Sigmoid(backend).forward(backend.asarray(-x))
    assert np.all((s_pos >= 0.0) & (s_pos <= 1.0))
    moderate = np.abs(x) <= 30.0  # beyond that 1 - σ rounds to 0 in float64
    assert np.all((s_pos[moderate] > 0.0) & (s_pos[moderate] < 1.0))
    np.testing.assert_allclose(s_neg, 1.0 - s_pos, rtol=0, atol=5e-16)  # a few ulps of 1
    np.testing.assert_allclose(s_pos, [_sig(v) if v > -700 else 0.0 for v in values], rtol=1e-15, atol=1e-300)
