"""Tests for xpmlp.optim: optimizers against hand-computed updates, state round trips, schedules.

Expected values are computed here element by element with Python floats from the
update formulas, never by calling the code under test.
"""

from __future__ import annotations

import math

import array_api_compat
import numpy as np
import pytest

from xpmlp.backend import available_specs, get_backend
from xpmlp.errors import InputError
from xpmlp.optim import OPTIMIZER_NAMES, SGD, Adam, AdamW, make_optimizer
from xpmlp.schedules import Schedule, parse_schedule


def _specs() -> list:
    """numpy and array-api-strict always, torch when it imports, CuPy when a CUDA GPU is usable."""
    return [pytest.param(s, marks=pytest.mark.gpu) if s == "cuda" else s for s in available_specs()]


@pytest.fixture(params=_specs())
def opt_backend(request: pytest.FixtureRequest) -> str:
    """A backend spec; tests build the Backend with the dtype they need."""
    return request.param


# -- hand computation helpers --------------------------------------------------------

W0 = [[1.0, -2.0], [0.5, 3.0]]
G1 = [[0.5, -1.0], [2.0, 0.25]]
G2 = [[-0.3, 0.8], [1.5, -2.0]]
ZERO = [[0.0, 0.0], [0.0, 0.0]]


def ew(f, *mats):
    """Apply f element-wise to 2x2 nested lists of Python floats."""
    return [[f(*vals) for vals in zip(*rows, strict=True)] for rows in zip(*mats, strict=True)]


def tol(dtype: str) -> dict:
    return {"rtol": 0, "atol": 1e-12} if dtype == "float64" else {"rtol": 1e-6, "atol": 1e-6}


def run_two_steps(spec: str, dtype: str, opt, grads=(G1, G2)) -> list[np.ndarray]:
    """Step ``opt`` on W0 with the given gradients; check in-place, dtype and change each step."""
    be = get_backend(spec, dtype)
    opt.bind(be)
    W = be.asarray(W0)
    params = {"W": W}
    out = []
    for G in grads:
        before = be.to_numpy(W).copy()
        opt.step(params, {"W": be.asarray(G)})
        assert params["W"] is W, "the parameter must be updated in place"
        assert W.dtype == be.float_dtype(), f"dtype changed to {W.dtype}"
        after = be.to_numpy(W).copy()
        assert not np.array_equal(before, after), "the step did not change the parameter"
        out.append(after)
    return out


DTYPES = pytest.mark.parametrize("dtype", ["float64", "float32"])


# -- SGD family ------------------------------------------------------------------------

@DTYPES
def test_sgd_two_steps(opt_backend, dtype):
    lr = 0.1
    w1 = ew(lambda w, g: w - lr * g, W0, G1)
    w2 = ew(lambda w, g: w - lr * g, w1, G2)
    got = run_two_steps(opt_backend, dtype, SGD(lr))
    np.testing.assert_allclose(got[0], w1, **tol(dtype))
    np.testing.assert_allclose(got[1], w2, **tol(dtype))


@DTYPES
def test_sgd_coupled_weight_decay(opt_backend, dtype):
    lr, wd = 0.1, 0.2
    w1 = ew(lambda w, g: w - lr * (g + wd * w), W0, G1)
    w2 = ew(lambda w, g: w - lr * (g + wd * w), w1, G2)
    got = run_two_steps(opt_backend, dtype, SGD(lr, weight_decay=wd))
    np.testing.assert_allclose(got[0], w1, **tol(dtype))
    np.testing.assert_allclose(got[1], w2, **tol(dtype))


@DTYPES
def test_momentum_two_steps(opt_backend, dtype):
    lr, mu = 0.1, 0.9
    v1 = ew(lambda g: mu * 0.0 - lr * g, G1)
    w1 = ew(lambda w, v: w + v, W0, v1)
    v2 = ew(lambda v, g: mu * v - lr * g, v1, G2)
    w2 = ew(lambda w, v: w + v, w1, v2)
    opt = SGD(lr, momentum=mu)
    got = run_two_steps(opt_backend, dtype, opt)
    np.testing.assert_allclose(got[0], w1, **tol(dtype))
    np.testing.assert_allclose(got[1], w2, **tol(dtype))
    np.testing.assert_allclose(get_backend(opt_backend).to_numpy(opt.state["velocity"]["W"]), v2, **tol(dtype))


@DTYPES
def test_nesterov_two_steps(opt_backend, dtype):
    lr, mu = 0.1, 0.9
    # cs231n / Sutskever: v_prev = v; v = mu*v - lr*g; p += -mu*v_prev + (1+mu)*v
    v1 = ew(lambda g: mu * 0.0 - lr * g, G1)
    w1 = ew(lambda w, vp, v: w - mu * vp + (1 + mu) * v, W0, ZERO, v1)
    v2 = ew(lambda v, g: mu * v - lr * g, v1, G2)
    w2 = ew(lambda w, vp, v: w - mu * vp + (1 + mu) * v, w1, v1, v2)
    got = run_two_steps(opt_backend, dtype, SGD(lr, momentum=mu, nesterov=True))
    np.testing.assert_allclose(got[0], w1, **tol(dtype))
    np.testing.assert_allclose(got[1], w2, **tol(dtype))


def test_nesterov_differs_from_momentum(opt_backend):
    classic = run_two_steps(opt_backend, "float64", SGD(0.1, momentum=0.9))
    nesterov = run_two_steps(opt_backend, "float64", SGD(0.1, momentum=0.9, nesterov=True))
    for a, b in zip(classic, nesterov, strict=True):
        assert np.max(np.abs(a - b)) > 1e-3


def test_plain_sgd_keeps_no_state():
    opt = SGD(0.1)
    run_two_steps("cpu", "float64", opt)
    assert opt.state == {}
    assert opt.t == 2


# -- Adam family -----------------------------------------------------------------------

def adam_reference(w0, grads, lr, b1, b2, eps, wd=0.0, decoupled=False):
    """Textbook Adam with Python floats; returns the parameters after each step."""
    w, m, v, out = w0, ZERO, ZERO, []
    for t, G in enumerate(grads, start=1):
        if decoupled:
            w = ew(lambda p: p - lr * wd * p, w)
            g = G
        else:
            g = ew(lambda gg, p: gg + wd * p, G, w)
        m = ew(lambda mm, gg: b1 * mm + (1 - b1) * gg, m, g)
        v = ew(lambda vv, gg: b2 * vv + (1 - b2) * gg * gg, v, g)
        c1, c2 = 1 - b1**t, 1 - b2**t  # bias corrections
        w = ew(lambda p, mm, vv, c1=c1, c2=c2: p - lr * (mm / c1) / (math.sqrt(vv / c2) + eps), w, m, v)
        out.append(w)
    return out


@DTYPES
def test_adam_two_steps(opt_backend, dtype):
    lr, b1, b2, eps = 0.1, 0.8, 0.99, 1e-3  # a large eps makes it matter in the check
    expected = adam_reference(W0, [G1, G2], lr, b1, b2, eps)
    opt = Adam(lr, beta1=b1, beta2=b2, eps=eps)
    got = run_two_steps(opt_backend, dtype, opt)
    np.testing.assert_allclose(got[0], expected[0], **tol(dtype))
    np.testing.assert_allclose(got[1], expected[1], **tol(dtype))
    assert opt.t == 2


@DTYPES
def test_adam_coupled_weight_decay(opt_backend, dtype):
    lr, wd = 0.1, 0.5
    expected = adam_reference(W0, [G1, G2], lr, 0.9, 0.999, 1e-8, wd=wd)
    got = run_two_steps(opt_backend, dtype, Adam(lr, weight_decay=wd))
    np.testing.assert_allclose(got[0], expected[0], **tol(dtype))
    np.testing.assert_allclose(got[1], expected[1], **tol(dtype))


@DTYPES
def test_adamw_decoupled_weight_decay(opt_backend, dtype):
    lr, wd = 0.1, 0.5
    expected = adam_reference(W0, [G1, G2], lr, 0.9, 0.999, 1e-8, wd=wd, decoupled=True)
    got = run_two_steps(opt_backend, dtype, AdamW(lr, weight_decay=wd))
    np.testing.assert_allclose(got[0], expected[0], **tol(dtype))
    np.testing.assert_allclose(got[1], expected[1], **tol(dtype))
    coupled = adam_reference(W0, [G1, G2], lr, 0.9, 0.999, 1e-8, wd=wd)
    assert np.max(np.abs(got[1] - np.array(coupled[1]))) > 1e-3, "decoupled decay must differ from L2"


def test_adamw_with_zero_gradient_only_decays():
    lr, wd = 0.1, 0.5
    be = get_backend("cpu", "float64")
    W = be.asarray(W0)
    AdamW(lr, weight_decay=wd).bind(be).step({"W": W}, {"W": be.asarray(ZERO)})
    np.testing.assert_allclose(be.to_numpy(W), ew(lambda w: w * (1 - lr * wd), W0), rtol=0, atol=1e-15)


def test_adam_first_step_is_lr_times_sign(opt_backend):
    lr = 0.01
    g = [[1e-3, -5.0], [200.0, -0.02]]  # magnitudes over five decades: bias correction cancels them
    be = get_backend(opt_backend, "float64")
    W = be.asarray(W0)
    Adam(lr).bind(be).step({"W": W}, {"W": be.asarray(g)})
    expected = ew(lambda w, gg: w - lr * math.copysign(1.0, gg), W0, g)
    np.testing.assert_allclose(be.to_numpy(W), expected, rtol=0, atol=lr * 1e-4)


def test_adam_state_is_lazy_and_matches_param(opt_backend):
    be = get_backend(opt_backend, "float32")
    W = be.asarray(W0)
    opt = Adam(0.1).bind(be)
    assert opt.state == {"m": {}, "v": {}}
    opt.step({"W": W}, {"W": be.asarray(G1)})
    for slot in ("m", "v"):
        s = opt.state[slot]["W"]
        assert s is not W
        assert s.dtype == W.dtype
        assert array_api_compat.device(s) == array_api_compat.device(W)
        assert tuple(s.shape) == tuple(W.shape)
    # m after one step is (1 - beta1) * g
    np.testing.assert_allclose(be.to_numpy(opt.state["m"]["W"]), ew(lambda g: 0.1 * g, G1), rtol=1e-6)


# -- the lr attribute and hot-path hygiene ---------------------------------------------

@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_numpy_scalar_lr_keeps_float32(opt_backend, name):
    be = get_backend(opt_backend, "float32")
    W = be.asarray(W0)
    opt = make_optimizer(name, 0.1, backend=be)
    opt.lr = np.float64(0.05)  # what a careless schedule might set: must not promote or break strict
    opt.step({"W": W}, {"W": be.asarray(G1)})
    opt.step({"W": W}, {"W": be.asarray(G2)})
    assert W.dtype == be.float_dtype("float32")
    assert not np.array_equal(be.to_numpy(W), np.array(W0, dtype=np.float32))


def test_lr_attribute_is_read_every_step():
    be = get_backend("cpu", "float64")
    W = be.asarray(W0)
    opt = SGD(0.1).bind(be)
    opt.lr = 0.5
    opt.step({"W": W}, {"W": be.asarray(G1)})
    np.testing.assert_allclose(be.to_numpy(W), ew(lambda w, g: w - 0.5 * g, W0, G1), rtol=0, atol=1e-15)


def test_missing_gradient_is_input_error_and_changes_nothing():
    be = get_backend("cpu", "float64")
    params = {"W": be.asarray(W0), "b": be.asarray([1.0, 2.0])}
    with pytest.raises(InputError, match="no gradient for parameter 'b'"):
        SGD(0.1).bind(be).step(params, {"W": be.asarray(G1)})
    np.testing.assert_array_equal(be.to_numpy(params["W"]), W0)


def test_gradient_shape_mismatch_is_input_error():
    be = get_backend("cpu", "float64")
    W = be.asarray(W0)
    with pytest.raises(InputError, match=r"shape \(1, 2\)"):
        SGD(0.1).bind(be).step({"W": W}, {"W": be.asarray([[1.0, 2.0]])})  # would broadcast silently
    np.testing.assert_array_equal(be.to_numpy(W), W0)


# -- state_dict round trip -------------------------------------------------------------

GRADS = [
    {"W": [[0.5, -1.0], [2.0, 0.25]], "b": [0.1, -0.2]},
    {"W": [[-0.3, 0.8], [1.5, -2.0]], "b": [0.3, 0.05]},
    {"W": [[1.1, 0.4], [-0.7, 0.9]], "b": [-0.4, 0.6]},
    {"W": [[0.2, -0.6], [0.35, 1.7]], "b": [0.25, -0.15]},
    {"W": [[-1.2, 0.15], [0.45, -0.05]], "b": [-0.1, 0.8]},
]


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_state_dict_round_trip_continues_identically(opt_backend, name):
    be = get_backend(opt_backend, "float64")
    kw = {"weight_decay": 0.01}
    a = make_optimizer(name, 0.05, momentum=0.8, **kw, backend=be)
    pa = {"W": be.asarray(W0), "b": be.asarray([0.5, -0.5])}
    for g in GRADS[:3]:
        a.step(pa, {k: be.asarray(v) for k, v in g.items()})
    sd = a.state_dict(be.to_numpy)

    assert sd["step"] == 3 and type(sd["step"]) is int
    assert all(type(v) in (float, bool) for v in sd["hyperparams"].values()), sd["hyperparams"]
    for table in sd["state"].values():
        for arr in table.values():
            assert isinstance(arr, np.ndarray) and arr.dtype == np.float64
    snapshot = {s: {k: v.copy() for k, v in t.items()} for s, t in sd["state"].items()}

    # different settings on purpose: loading must restore the saved hyper-parameters
    b = make_optimizer(name, 0.9, momentum=0.5, backend=be)
    b.load_state_dict(sd, be.asarray)
    assert b.hyperparams() == a.hyperparams() and b.t == 3 and b.name == a.name
    pb = {k: be.asarray(be.to_numpy(v).copy()) for k, v in pa.items()}
    for g in GRADS[3:]:
        a.step(pa, {k: be.asarray(v) for k, v in g.items()})
        b.step(pb, {k: be.asarray(v) for k, v in g.items()})
    for k in pa:
        np.testing.assert_array_equal(be.to_numpy(pa[k]), be.to_numpy(pb[k]))  # bit-identical
    # the snapshot aliases neither optimizer's live state
    for s, t in snapshot.items():
        for k, v in t.items():
            np.testing.assert_array_equal(sd["state"][s][k], v)
    if name != "sgd":
        assert sd["state"], "a stateful optimizer must save its state"


def test_loading_float64_state_onto_float32_params_casts(opt_backend):
    be64, be32 = get_backend(opt_backend, "float64"), get_backend(opt_backend, "float32")
    a = Adam(0.1).bind(be64)
    a.step({"W": be64.asarray(W0)}, {"W": be64.asarray(G1)})
    b = Adam(0.1).bind(be32)
    b.load_state_dict(a.state_dict(be64.to_numpy), be64.asarray)
    W = be32.asarray(W0)
    b.step({"W": W}, {"W": be32.asarray(G2)})
    assert W.dtype == be32.float_dtype() and b.state["m"]["W"].dtype == W.dtype


def test_an_unbound_optimizer_says_how_to_bind_it():
    be = get_backend("cpu", "float64")
    W = be.asarray(W0)
    with pytest.raises(InputError, match=r"bind\(model.backend\)"):
        SGD(0.1).step({"W": W}, {"W": be.asarray(G1)})
    np.testing.assert_array_equal(be.to_numpy(W), W0)
    with pytest.raises(InputError, match="Backend"):
        SGD(0.1).bind("cpu")


def test_state_moves_when_the_optimizer_is_bound_to_another_device():
    one, two = get_backend("strict:device1", "float64"), get_backend("strict:device2", "float64")
    opt = SGD(0.1, momentum=0.9).bind(one)
    opt.step({"W": one.asarray(W0)}, {"W": one.asarray(G1)})
    W = two.asarray(W0)
    opt.bind(two).step({"W": W}, {"W": two.asarray(G1)})  # mixing devices would raise in strict
    assert two.owns(opt.state["velocity"]["W"])
    # v = 0.9 * (-0.1 G1) - 0.1 G1; W = W0 + v
    np.testing.assert_allclose(two.to_numpy(W), ew(lambda w, g: w - 0.19 * g, W0, G1), rtol=0, atol=1e-15)


def test_load_state_of_another_family_is_input_error():
    sd = Adam(0.1).state_dict(lambda a: a)
    with pytest.raises(InputError, match="'Adam'"):
        SGD(0.1, momentum=0.9).load_state_dict(sd, lambda a: a)
    with pytest.raises(InputError, match="not an optimizer state dict"):
        SGD(0.1).load_state_dict({"W": 1}, lambda a: a)


def test_load_state_with_bad_hyperparameter_is_input_error_and_keeps_settings():
    be = get_backend("cpu", "float64")
    sd = SGD(0.1, momentum=0.9).state_dict(be.to_numpy)
    sd["hyperparams"]["momentum"] = 1.5
    opt = SGD(0.2, momentum=0.5).bind(be)
    with pytest.raises(InputError, match="momentum"):
        opt.load_state_dict(sd, be.asarray)
    assert opt.lr == 0.2 and opt.momentum == 0.5


def test_loaded_state_of_wrong_shape_is_input_error():
    be = get_backend("cpu", "float64")
    a = SGD(0.1, momentum=0.9).bind(be)
    a.step({"W": be.asarray(W0)}, {"W": be.asarray(G1)})
    b = SGD(0.1, momentum=0.9).bind(be)
    b.load_state_dict(a.state_dict(be.to_numpy), be.asarray)
    with pytest.raises(InputError, match="another model"):
        b.step({"W": be.asarray([[1.0, 2.0, 3.0]])}, {"W": be.asarray([[1.0, 2.0, 3.0]])})


# -- make_optimizer and validation -----------------------------------------------------

@pytest.mark.parametrize("name, cls, momentum, nesterov, decoupled", [
    ("sgd", SGD, 0.0, False, None),
    ("momentum", SGD, 0.7, False, None),
    ("nesterov", SGD, 0.7, True, None),
    ("adam", Adam, None, None, False),
    ("adamw", AdamW, None, None, True),
])
def test_make_optimizer_names(name, cls, momentum, nesterov, decoupled):
    opt = make_optimizer(f"  {name.upper()} ", 0.03, momentum=0.7)
    assert type(opt) is cls and opt.lr == 0.03 and opt.name == name
    if momentum is not None:
        assert opt.momentum == momentum and opt.nesterov is nesterov
    if decoupled is not None:
        assert opt.decoupled is decoupled


def test_make_optimizer_passes_keywords():
    opt = make_optimizer("adam", 0.01, beta1=0.5, beta2=0.9, eps=1e-6, weight_decay=0.1)
    assert (opt.beta1, opt.beta2, opt.eps, opt.weight_decay, opt.decoupled) == (0.5, 0.9, 1e-6, 0.1, False)
    assert AdamW(0.01).weight_decay == 0.01


def test_unknown_optimizer_lists_known_names():
    with pytest.raises(InputError) as info:
        make_optimizer("rmsprop", 0.1)
    for known in OPTIMIZER_NAMES:
        assert known in str(info.value)


def test_make_optimizer_rejects_foreign_keyword():
    with pytest.raises(InputError, match="does not take beta1"):
        make_optimizer("sgd", 0.1, beta1=0.9)


@pytest.mark.parametrize("build, word", [
    (lambda: SGD(0.0), "lr"),
    (lambda: SGD(-0.1), "lr"),
    (lambda: SGD(float("nan")), "lr"),
    (lambda: SGD("0.1"), "lr"),
    (lambda: SGD(True), "lr"),
    (lambda: SGD(0.1, momentum=-0.1), "momentum"),
    (lambda: SGD(0.1, momentum=1.01), "momentum"),
    (lambda: SGD(0.1, momentum=0.0, nesterov=True), "nesterov"),
    (lambda: SGD(0.1, weight_decay=-1e-4), "weight_decay"),
    (lambda: Adam(0.1, beta1=1.0), "beta1"),
    (lambda: Adam(0.1, beta1=-0.1), "beta1"),
    (lambda: Adam(0.1, beta2=1.0), "beta2"),
    (lambda: Adam(0.1, eps=0.0), "eps"),
    (lambda: Adam(0.1, eps=-1e-8), "eps"),
    (lambda: Adam(0.1, weight_decay=-0.5), "weight_decay"),
    (lambda: Adam(-1e-3), "lr"),
    (lambda: make_optimizer("momentum", 0.1, momentum=1.5), "momentum"),
    (lambda: make_optimizer("adamw", 0.0), "lr"),
])
def test_bad_arguments_are_one_line_input_errors(build, word):
    with pytest.raises(InputError) as info:
        build()
    msg = str(info.value)
    assert word in msg and "\n" not in msg
    assert any(fix in msg for fix in ("use", "pass")), f"message names no fix: {msg}"


# -- schedules -------------------------------------------------------------------------

BASE, T = 0.1, 30
EPOCHS = [0, 0.5, 1, 9.99, 10, 25, T]


def test_constant_schedule():
    s = parse_schedule("constant", BASE, T)
    assert [s(e) for e in EPOCHS] == [BASE] * len(EPOCHS)
    assert s.spec == "constant"


def test_exp_schedule():
    s = parse_schedule("exp:0.95", BASE, T)
    floors = {0: 0, 0.5: 0, 1: 1, 9.99: 9, 10: 10, 25: 25, T: 30}  # floor(epoch), written out
    for e in EPOCHS:
        assert s(e) == pytest.approx(BASE * 0.95 ** floors[e], rel=1e-14), e
    assert s(0.999) == BASE and s(1.0) < BASE


def test_step_schedule():
    s = parse_schedule("step:10:0.5", BASE, T)
    expected = {0: BASE, 0.5: BASE, 1: BASE, 9.99: BASE, 10: BASE / 2, 25: BASE / 4, T: BASE / 8}
    for e in EPOCHS:
        assert s(e) == pytest.approx(expected[e], rel=1e-14), e


def test_cosine_schedule():
    s = parse_schedule("cosine", BASE, T)
    for e in EPOCHS:
        assert s(e) == pytest.approx(0.5 * BASE * (1 + math.cos(math.pi * e / T)), rel=1e-12, abs=1e-15), e
    assert s(0) == pytest.approx(BASE)
    assert s(T / 2) == pytest.approx(BASE / 2)
    assert s(T) == pytest.approx(0.0, abs=1e-15)
    assert s(T + 10) == pytest.approx(0.0, abs=1e-15)  # held at the end
    assert s(0) > s(0.5) > s(1)  # continuous on fractional epochs


def test_cosine_schedule_with_min_lr():
    lo = 0.001
    s = parse_schedule("cosine:0.001", BASE, T)
    for e in EPOCHS:
        assert s(e) == pytest.approx(lo + 0.5 * (BASE - lo) * (1 + math.cos(math.pi * e / T)), rel=1e-12), e
    assert s(T + 5) == pytest.approx(lo)


@pytest.mark.parametrize("text, spec", [
    ("constant", "constant"),
    ("exp:0.95", "exp:0.95"),
    (" EXP:0.95 ", "exp:0.95"),
    ("step:10:0.5", "step:10:0.5"),
    ("step:2.5:0.1", "step:2.5:0.1"),
    ("cosine", "cosine"),
    ("cosine:0", "cosine"),
    ("cosine:1e-05", "cosine:1e-05"),
])
def test_schedule_spec_round_trips(text, spec):
    s = parse_schedule(text, BASE, T)
    assert isinstance(s, Schedule) and s.spec == spec
    again = parse_schedule(s.spec, BASE, T)
    assert again.spec == spec
    assert [again(e) for e in EPOCHS + [3.7, 41]] == [s(e) for e in EPOCHS + [3.7, 41]]


@pytest.mark.parametrize("text", [
    "", "linear", "exp", "exp:", "exp:abc", "exp:0", "exp:1.5", "exp:-0.5", "exp:nan", "exp:inf",
    "step:10", "step:0:0.5", "step:10:0", "step:10:0.5:1", "cosine:-1", "cosine:1", "cosine:a:b",
    "constant:1", "exp:0.9:", 0.95,
])
def test_bad_schedule_strings_name_the_forms(text):
    with pytest.raises(InputError) as info:
        parse_schedule(text, BASE, T)
    msg = str(info.value)
    assert "exp:GAMMA" in msg and "step:EPOCHS:GAMMA" in msg and "cosine" in msg and "\n" not in msg


@pytest.mark.parametrize("total", [None, 0, -5])
def test_cosine_needs_total_epochs(total):
    with pytest.raises(InputError, match="total_epochs"):
        parse_schedule("cosine", BASE, total)


def test_schedule_rejects_negative_epoch_and_bad_base_lr():
    with pytest.raises(InputError, match="epoch"):
        parse_schedule("exp:0.9", BASE, T)(-1)
    with pytest.raises(InputError, match="base_lr"):
        parse_schedule("constant", 0.0, T)
