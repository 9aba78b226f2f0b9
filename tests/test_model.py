"""Tests for xpmlp.model: the MLP against a plain NumPy forward/backward written here, the L2 term,
prediction, summary, state dicts, moving between backends, dtypes, parity, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xpmlp.backend import available_specs, get_backend
from xpmlp.errors import InputError
from xpmlp.layers import Linear, ReLU, Sigmoid, Tanh
from xpmlp.model import MLP
from xpmlp.network import LayerStack

# -- a plain NumPy reference MLP --------------------------------------------------------------------

ACT = {
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(float)),
    "tanh": (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
    "sigmoid": (lambda z: 1.0 / (1.0 + np.exp(-z)), lambda z: np.exp(-z) / (1.0 + np.exp(-z)) ** 2),
}


def random_state(sizes, seed=0):
    rng = np.random.default_rng(seed)
    state = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True), start=1):
        state[f"W{i}"] = rng.standard_normal((a, b)) / math.sqrt(a)
        state[f"b{i}"] = rng.standard_normal(b) * 0.1
    return state


def reference(state, X, y, act, reg=0.0):
    """Logits, loss and gradients of the MLP by hand (float64 NumPy)."""
    f, df = ACT[act]
    depth = len(state) // 2
    hs, zs = [X], []
    for i in range(1, depth + 1):
        z = hs[-1] @ state[f"W{i}"] + state[f"b{i}"]
        zs.append(z)
        if i < depth:
            hs.append(f(z))
    logits = zs[-1]
    n = len(X)
    shifted = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    loss = float(np.mean(-np.log(p[np.arange(n), y])))
    loss += 0.5 * reg * sum(float((state[f"W{i}"] ** 2).sum()) for i in range(1, depth + 1))
    d = p.copy()
    d[np.arange(n), y] -= 1.0
    d /= n
    grads = {}
    for i in range(depth, 0, -1):
        grads[f"W{i}"] = hs[i - 1].T @ d + reg * state[f"W{i}"]
        grads[f"b{i}"] = d.sum(axis=0)
        if i > 1:
            d = (d @ state[f"W{i}"].T) * df(zs[i - 2])
    return logits, loss, grads


def data(n, d, c, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.integers(0, c, n)


def test_reference_loss_at_zero_weights():
    # All-zero weights: uniform softmax, loss ln C, zero hidden-layer weight gradients for tanh.
    sizes = [3, 4, 5]
    state = {k: np.zeros_like(v) for k, v in random_state(sizes).items()}
    X, y = data(6, 3, 5)
    _, loss, grads = reference(state, X, y, "tanh")
    assert loss == pytest.approx(math.log(5), rel=1e-15)
    np.testing.assert_array_equal(grads["W1"], 0.0)


# -- forward / backward / loss ------------------------------------------------------------------------

@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid"])
def test_forward_matches_numpy(backend, act):
    sizes = [6, 5, 4, 3]
    state = random_state(sizes)
    model = MLP(sizes, activation=act, backend=backend, dtype="float64")
    model.load_state_dict(state)
    X, y = data(7, 6, 3)
    logits = model.forward(X)
    expected, _, _ = reference(state, X, y, act)
    assert tuple(logits.shape) == (7, 3)
    np.testing.assert_allclose(backend.to_numpy(logits), expected, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("reg", [0.0, 0.05])
@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid"])
def test_loss_and_grads_match_numpy(backend, act, reg):
    sizes = [6, 5, 4, 3]
    state = random_state(sizes, seed=2)
    model = MLP(sizes, activation=act, backend=backend, dtype="float64")
    model.load_state_dict(state)
    X, y = data(8, 6, 3, seed=3)
    loss, grads = model.loss(backend.asarray(X), backend.asarray(y), reg)
    _, ref_loss, ref_grads = reference(state, X, y, act, reg)
    assert tuple(loss.shape) == ()
    assert float(loss) == pytest.approx(ref_loss, rel=1e-12)
    assert set(grads) == set(ref_grads)
    for k in ref_grads:
        np.testing.assert_allclose(backend.to_numpy(grads[k]), ref_grads[k], rtol=1e-11, atol=1e-13, err_msg=k)


def test_backward_returns_and_fills_grads(backend):
    sizes = [4, 3, 2]
    state = random_state(sizes, seed=4)
    model = MLP(sizes, activation="tanh", backend=backend, dtype="float64")
    model.load_state_dict(state)
    X, y = data(5, 4, 2)
    model.forward(X, train=True)
    _, _, ref_grads = reference(state, X, y, "tanh")
    # dL/dlogits of the mean cross-entropy, by hand
    logits, _, _ = reference(state, X, y, "tanh")
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(5), y] -= 1.0
    grads = model.backward(backend.asarray(p / 5))
    assert list(grads) == ["W1", "b1", "W2", "b2"]
    for k, g in ref_grads.items():
        np.testing.assert_allclose(backend.to_numpy(grads[k]), g, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(backend.to_numpy(model.grads[k]), g, rtol=1e-12, atol=1e-14)


def test_grads_have_the_keys_of_state_dict(backend):
    model = MLP([5, 4, 4, 3], backend=backend, dtype="float64")
    X, y = data(4, 5, 3)
    _, grads = model.loss(X, y, reg=0.1)
    assert list(grads) == list(model.state_dict()) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    for k, v in model.state_dict().items():
        assert tuple(grads[k].shape) == v.shape


def test_biases_are_not_penalised(backend):
    model = MLP([5, 4, 3], activation="tanh", backend=backend, dtype="float64", seed=5)
    X, y = data(6, 5, 3)
    reg = 0.3
    loss0, g0 = model.loss(X, y, 0.0)
    g0 = {k: np.array(backend.to_numpy(v), copy=True) for k, v in g0.items()}
    loss0 = float(loss0)
    loss1, g1 = model.loss(X, y, reg)
    state = model.state_dict()
    for k in ("b1", "b2"):
        np.testing.assert_array_equal(backend.to_numpy(g1[k]), g0[k])
    for k in ("W1", "W2"):
        np.testing.assert_allclose(backend.to_numpy(g1[k]) - g0[k], reg * state[k], rtol=1e-10, atol=1e-15)
    penalty = 0.5 * reg * ((state["W1"] ** 2).sum() + (state["W2"] ** 2).sum())
    assert float(loss1) == pytest.approx(loss0 + penalty, rel=1e-12)


@pytest.mark.parametrize("act", ["relu", "leaky_relu", "tanh"])
def test_model_does_not_modify_the_callers_arrays(backend, act):
    model = MLP([4, 5, 5, 3], activation=act, backend=backend, dtype="float64", seed=0)
    X_host, y_host = data(6, 4, 3)
    X, y = backend.asarray(X_host), backend.asarray(y_host)
    model.forward(X, train=True)
    logits, grads = model.loss(X, y, reg=0.1)
    model.predict_proba(X)
    model.predict(X)
    np.testing.assert_array_equal(backend.to_numpy(X), X_host)
    np.testing.assert_array_equal(backend.to_numpy(y), y_host)
    dlogits_host = np.full((6, 3), 0.1)
    dlogits = backend.asarray(dlogits_host)
    model.forward(X, train=True)
    model.backward(dlogits)
    np.testing.assert_array_equal(backend.to_numpy(dlogits), dlogits_host)


def test_first_layer_skips_the_input_gradient():
    model = MLP([4, 3, 2], backend="cpu", dtype="float64")
    linears = [layer for layer in model.net.layers if isinstance(layer, Linear)]
    assert [lin.input_grad for lin in linears] == [False, True]
    assert [type(layer) for layer in model.net.layers] == [Linear, ReLU, Linear]


def test_layers_follow_the_activation():
    model = MLP([4, 3, 3, 2], activation="sigmoid", backend="cpu")
    assert [type(layer) for layer in model.net.layers] == [Linear, Sigmoid, Linear, Sigmoid, Linear]
    model = MLP([4, 2], activation="tanh", backend="cpu")
    assert [type(layer) for layer in model.net.layers] == [Linear]


def test_leaky_relu_kwargs_reach_the_layers():
    model = MLP([3, 4, 2], activation="leaky_relu", backend="cpu", slope=0.2)
    assert model.net.layers[1].slope == 0.2
    assert model.config()["activation_kwargs"] == {"slope": 0.2}


def test_layer_stack_names_and_set_param():
    backend = get_backend("cpu", "float64")
    rng = backend.rng(0)
    seq = LayerStack([Linear(3, 2, backend, rng=rng), Tanh(backend), Linear(2, 2, backend, rng=rng)])
    assert list(seq.params) == ["W1", "b1", "W2", "b2"]
    seq.set_param("b2", backend.asarray([1.0, 2.0]))
    np.testing.assert_array_equal(seq.layers[2].params["b"], [1.0, 2.0])
    with pytest.raises(KeyError):
        seq.set_param("W9", backend.asarray([1.0]))


# -- prediction -----------------------------------------------------------------------------------------

def test_predict_proba_and_predict(backend):
    sizes = [6, 8, 4]
    state = random_state(sizes, seed=6)
    model = MLP(sizes, backend=backend, dtype="float64")
    model.load_state_dict(state)
    X, y = data(11, 6, 4)
    proba = backend.to_numpy(model.predict_proba(X))
    logits, _, _ = reference(state, X, y, "relu")
    e = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(proba, e / e.sum(1, keepdims=True), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-14)
    assert np.all(proba >= 0)
    pred = backend.to_numpy(model.predict(X))
    np.testing.assert_array_equal(pred, proba.argmax(axis=1))
    np.testing.assert_array_equal(pred, logits.argmax(axis=1))


def test_batched_prediction_equals_one_batch(backend):
    model = MLP([6, 5, 3], backend=backend, dtype="float64", seed=7)
    X, _ = data(10, 6, 3)
    full = backend.to_numpy(model.predict_proba(X))
    parts = backend.to_numpy(model.predict_proba(X, batch_size=3))
    assert parts.shape == (10, 3)
    np.testing.assert_allclose(parts, full, rtol=1e-14, atol=1e-16)
    np.testing.assert_array_equal(backend.to_numpy(model.predict(X, batch_size=4)),
                                  backend.to_numpy(model.predict(X)))


def test_prediction_does_not_disturb_a_pending_backward():
    model = MLP([4, 5, 3], activation="tanh", backend="cpu", dtype="float64")
    X, y = data(6, 4, 3)
    _, g_ref = model.loss(X, y)
    g_ref = {k: v.copy() for k, v in g_ref.items()}
    logits = model.forward(X, train=True)
    model.predict_proba(np.ones((2, 4)))  # inference in between
    e = np.exp(logits - logits.max(1, keepdims=True))
    p = e / e.sum(1, keepdims=True)
    p[np.arange(6), y] -= 1.0
    grads = model.backward(p / 6)
    for k in g_ref:
        np.testing.assert_allclose(grads[k], g_ref[k], rtol=1e-12, atol=1e-15)


# -- summary, state ------------------------------------------------------------------------------------

def test_summary_lists_the_parameter_count():
    model = MLP([784, 500, 500, 10], activation="sigmoid", backend="cpu")
    expected = 784 * 500 + 500 + 500 * 500 + 500 + 500 * 10 + 10
    assert expected == 648010
    assert model.num_params() == 648010
    text = model.summary()
    total = [line for line in text.splitlines() if line.startswith("total params:")]
    assert len(total) == 1
    assert total[0].split()[2].replace(",", "") == "648010"
    assert "hidden activations: sigmoid, sigmoid" in text
    assert "392,500" in text and "250,500" in text and "5,010" in text  # per Linear layer
    assert "Linear(784, 500" in text and "Sigmoid()" in text
    assert "cpu" in text


def test_state_dict_round_trip(backend):
    a = MLP([5, 4, 3], backend=backend, dtype="float64", seed=1)
    b = MLP([5, 4, 3], backend=backend, dtype="float64", seed=2)
    X, _ = data(6, 5, 3)
    assert not np.allclose(backend.to_numpy(a.forward(X)), backend.to_numpy(b.forward(X)))
    state = a.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    b.load_state_dict(state)
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(v, state[k])
    np.testing.assert_array_equal(backend.to_numpy(b.forward(X)), backend.to_numpy(a.forward(X)))


def test_state_dict_is_a_copy(backend):
    model = MLP([3, 2], backend=backend, dtype="float64")
    state = model.state_dict()
    before = state["W1"].copy()
    state["W1"][...] = 99.0
    np.testing.assert_array_equal(model.state_dict()["W1"], before)


def test_load_state_dict_casts_to_the_model_dtype(backend):
    model = MLP([3, 2], backend=backend, dtype="float32")
    state = {k: v.astype(np.float64) for k, v in random_state([3, 2]).items()}
    model.load_state_dict(state)
    assert all(v.dtype == backend.xp.float32 for v in model.params.values())
    np.testing.assert_array_equal(model.state_dict()["W1"], state["W1"].astype(np.float32))


@pytest.mark.parametrize("change,words", [
    (lambda s: s.pop("b2"), ["missing", "b2"]),
    (lambda s: s.update(W3=np.zeros((3, 3))), ["unexpected", "W3"]),
    (lambda s: s.update(W1=np.zeros((4, 5))), ["W1", "(4, 5)", "(5, 4)"]),
    (lambda s: s.update(b1=np.zeros(3)), ["b1", "(3,)", "(4,)"]),
])
def test_load_state_dict_mismatch(change, words):
    model = MLP([5, 4, 3], backend="cpu", dtype="float64")
    state = model.state_dict()
    before = {k: v.copy() for k, v in state.items()}
    change(state)
    with pytest.raises(InputError) as info:
        model.load_state_dict(state)
    msg = str(info.value)
    for w in words:
        assert w in msg, (w, msg)
    assert "architecture" in msg and "[5, 4, 3]" in msg
    for k, v in model.state_dict().items():  # nothing was half-loaded
        np.testing.assert_array_equal(v, before[k])


def test_load_state_dict_from_another_architecture():
    small = MLP([5, 3, 3], backend="cpu")
    with pytest.raises(InputError, match="architecture"):
        MLP([5, 4, 3], backend="cpu").load_state_dict(small.state_dict())


@pytest.mark.parametrize("spec", ["strict", "strict:device1",
                                  pytest.param("torch", marks=pytest.mark.needs_backend("torch"))])
def test_to_another_backend_gives_the_same_predictions(spec):
    model = MLP([6, 7, 4], activation="tanh", backend="cpu", dtype="float64", seed=3)
    X, _ = data(9, 6, 4)
    other = model.to(spec)
    assert other.backend.name == get_backend(spec).name
    assert other.dtype == "float64" and other.sizes == model.sizes and other.activation == "tanh"
    np.testing.assert_array_equal(other.backend.to_numpy(other.predict(X)), model.predict(X))
    np.testing.assert_allclose(other.backend.to_numpy(other.predict_proba(X)), model.predict_proba(X),
                               rtol=1e-12, atol=1e-15)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[k], v)


def test_to_another_dtype(backend):
    model = MLP([4, 3, 2], backend="cpu", dtype="float64", seed=0)
    m32 = model.to(backend, dtype="float32")
    assert m32.dtype == "float32"
    np.testing.assert_array_equal(m32.state_dict()["W1"], model.state_dict()["W1"].astype(np.float32))
    assert model.to("cpu").dtype == "float64"


def test_inputs_from_another_backend_are_moved(backend):
    model = MLP([4, 3, 2], backend="cpu", dtype="float64", seed=0)
    X, y = data(5, 4, 2)
    loss_t, _ = model.loss(backend.asarray(X), backend.asarray(y))
    loss_h, _ = model.loss(X, y)
    assert float(loss_t) == float(loss_h)


# -- dtypes and parity ----------------------------------------------------------------------------------

@pytest.mark.parametrize("x_dtype", ["float32", "float64"])
def test_float32_stays_float32(backend, x_dtype):
    xp = backend.xp
    model = MLP([6, 5, 4, 3], activation="swish", backend=backend, dtype="float32")
    assert model.dtype == "float32"
    assert all(p.dtype == xp.float32 for p in model.params.values())
    X, y = data(7, 6, 3)
    Xd = backend.asarray(X, dtype=x_dtype)
    logits = model.forward(Xd)
    assert logits.dtype == xp.float32
    loss, grads = model.loss(Xd, backend.asarray(y), reg=1e-3)
    assert loss.dtype == xp.float32
    assert set(grads) == {"W1", "b1", "W2", "b2", "W3", "b3"}
    for k, g in grads.items():
        assert g.dtype == xp.float32, k
    assert model.predict_proba(Xd).dtype == xp.float32
    assert model.predict(Xd).dtype == xp.int64


def test_cross_backend_parity_float64():
    sizes = [20, 16, 12, 5]
    X, y = data(13, 20, 5, seed=9)
    results = {}
    specs = available_specs()
    for spec in specs:
        model = MLP(sizes, activation="relu", backend=spec, dtype="float64", seed=123)
        b = model.backend
        logits = b.to_numpy(model.forward(b.asarray(X)))
        loss, grads = model.loss(b.asarray(X), b.asarray(y), reg=1e-2)
        results[spec] = (logits, float(loss), {k: np.array(b.to_numpy(g), copy=True) for k, g in grads.items()})
    ref_logits, ref_loss, ref_grads = results["cpu"]
    assert sorted(ref_grads) == ["W1", "W2", "W3", "b1", "b2", "b3"]
    assert len(specs) >= 2
    for spec in specs[1:]:
        logits, loss, grads = results[spec]
        np.testing.assert_allclose(logits, ref_logits, rtol=1e-12, atol=1e-12, err_msg=spec)
        assert loss == pytest.approx(ref_loss, rel=1e-12, abs=1e-12)
        for k in ref_grads:
            np.testing.assert_allclose(grads[k], ref_grads[k], rtol=1e-12, atol=1e-12, err_msg=f"{spec} {k}")


def test_same_seed_same_model_and_different_seed_differs():
    a = MLP([4, 3, 2], backend="cpu", seed=5).state_dict()
    b = MLP([4, 3, 2], backend="strict", seed=5).state_dict()
    c = MLP([4, 3, 2], backend="cpu", seed=6).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["W1"], c["W1"])


def test_config_and_repr():
    model = MLP([4, 3, 2], activation="tanh", backend="cpu", dtype="float64", seed=9, init="xavier")
    assert model.config() == {"sizes": [4, 3, 2], "activation": "tanh", "init": "xavier", "dtype": "float64",
                              "seed": 9, "dropout": 0.0, "activation_kwargs": {}}
    assert model.num_classes == 2
    assert "[4, 3, 2]" in repr(model) and "'tanh'" in repr(model)


# -- bad input ---------------------------------------------------------------------------------------

@pytest.fixture
def small(backend):
    return MLP([4, 3, 3], backend=backend, dtype="float64", seed=0)


def _error(fn, *args, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("shape", [(4,), (2, 2, 4), ()])
def test_x_not_2d(small, shape):
    X = np.ones(shape)
    for fn in (small.forward, small.predict, small.predict_proba):
        msg = _error(fn, X)
        assert "2-D" in msg and "reshape" in msg
    msg = _error(small.loss, X, np.zeros(1, dtype=np.int64))
    assert "2-D" in msg


def test_wrong_feature_count(small):
    msg = _error(small.forward, np.ones((2, 5)))
    assert "5 features" in msg and "input size is 4" in msg and "sizes[0]" in msg


def test_integer_x(small):
    msg = _error(small.forward, np.ones((2, 4), dtype=np.int64))
    assert "floating" in msg and "astype" in msg
    msg = _error(small.loss, np.ones((2, 4), dtype=np.uint8), np.array([0, 1]))
    assert "floating" in msg


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_in_x(small, bad):
    X = np.ones((3, 4))
    X[1, 2] = bad
    for fn in (small.forward, small.predict):
        msg = _error(fn, X)
        assert "NaN or inf" in msg and "clean" in msg
    msg = _error(small.loss, X, np.array([0, 1, 2]))
    assert "NaN or inf" in msg


def test_check_x_assume_finite_skips_only_the_nan_scan(small):
    X = np.ones((3, 4))
    X[1, 2] = np.nan
    assert "NaN or inf" in _error(small.check_x, X)
    checked = small.check_x(X, assume_finite=True)  # the caller vouches for X: no scan, same conversion
    assert checked.shape == (3, 4) and checked.dtype == small.backend.float_dtype()
    assert "features" in _error(lambda a: small.check_x(a, assume_finite=True), np.ones((3, 5)))


@pytest.mark.parametrize("y", [np.array([0.0, 1.0]), np.array([True, False]), np.array([0.5, 1.0])])
def test_labels_not_integer(small, y):
    msg = _error(small.loss, np.ones((2, 4)), y)
    assert "integer" in msg and "astype('int64')" in msg


@pytest.mark.parametrize("y,shown", [([0, -1, 2], "-1"), ([0, 3, 1], "3"), ([7, 0, 0], "7")])
def test_labels_out_of_range(small, y, shown):
    msg = _error(small.loss, np.ones((3, 4)), np.array(y))
    assert shown in msg and "3 classes" in msg and "[0, 2]" in msg


@pytest.mark.parametrize("y", [[0, 1], [0, 1, 2, 0], [[0, 1, 2]]])
def test_labels_length_mismatch(small, y):
    msg = _error(small.loss, np.ones((3, 4)), np.array(y))
    assert "(3,)" in msg and "one integer class per row" in msg


def test_negative_reg(small):
    msg = _error(small.loss, np.ones((2, 4)), np.array([0, 1]), reg=-0.1)
    assert "negative" in msg and ">= 0" in msg


def test_small_integer_labels_are_accepted(small, backend):
    loss, _ = small.loss(np.ones((3, 4)), np.array([0, 1, 2], dtype=np.int8))
    assert math.isfinite(float(loss))


@pytest.mark.parametrize("sizes,words", [
    ([5], ["at least", "[784, 500, 500, 10]"]),
    ([], ["at least"]),
    ([5, 0, 3], ["positive"]),
    ([0, 3], ["positive"]),
    ([5, -2, 3], ["positive"]),
    ([5, 4, 1], ["at least 2", "got 1"]),
])
def test_invalid_sizes(sizes, words):
    msg = _error(MLP, sizes, backend="cpu")
    for w in words:
        assert w in msg, (w, msg)


def test_unknown_activation_in_mlp():
    msg = _error(MLP, [4, 3, 2], activation="softsign", backend="cpu")
    assert "relu" in msg and "softsign" in msg


def test_unknown_activation_without_hidden_layers():
    # No hidden layer uses the activation, but a typo must still be reported, not stored in config().
    msg = _error(MLP, [4, 2], activation="softsign", backend="cpu")
    assert "softsign" in msg and "relu" in msg


def test_predict_on_an_empty_batch(small, backend):
    # forward() already gives (0, C) for an empty X; predict and predict_proba must agree with it.
    X = np.ones((0, 4))
    assert tuple(small.forward(X).shape) == (0, 3)
    proba = small.predict_proba(X)
    assert tuple(proba.shape) == (0, 3) and proba.dtype == backend.xp.float64
    assert tuple(small.predict(X).shape) == (0,)


def test_loss_on_an_empty_batch(small):
    msg = _error(small.loss, np.ones((0, 4)), np.zeros(0, dtype=np.int64))
    assert "empty" in msg or "no rows" in msg or "at least one" in msg
