"""solver='lbfgs' of xpmlp's estimators against scikit-learn's (SciPy's L-BFGS-B): the final loss, the
accuracy on the digits, the limits and their warnings, the gradient over the flattened parameters,
the same answer on every backend, and one host read per loss evaluation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.datasets import load_digits, load_iris, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkMLPRegressor  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from xpmlp import MLPClassifier, MLPRegressor  # noqa: E402
from xpmlp.backend import get_backend, to_numpy  # noqa: E402
from xpmlp.estimator.lbfgs_fit import pack, parameter_layout  # noqa: E402


def _iris() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _regression(targets: int = 1) -> tuple[np.ndarray, np.ndarray]:
    X, y = make_regression(n_samples=100, n_features=5, n_targets=targets, noise=10.0, random_state=0)
    return X, y / np.std(y)


SMALL = dict(hidden_layer_sizes=(5,), solver="lbfgs", max_iter=2000, random_state=0, alpha=1.0, tol=1e-9)


@pytest.mark.parametrize("activation", ["tanh", "logistic", "identity"])
@pytest.mark.parametrize("problem", ["multiclass", "binary", "regression"])
def test_final_loss_is_scikit_learns(problem, activation):
    # smooth, regularised problems, where both solvers reach the same minimum from the same start
    if problem == "regression":
        X, y = _regression()
        ours, theirs = MLPRegressor(**SMALL, activation=activation, device="cpu"), SkMLPRegressor(**SMALL,
                                                                                                 activation=activation)
    else:
        X, y = _iris()
        y = y == 1 if problem == "binary" else y
        ours = MLPClassifier(**SMALL, activation=activation, device="cpu")
        theirs = SkMLPClassifier(**SMALL, activation=activation)
    ours.fit(X, y)
    theirs.fit(X, y)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-6)
    assert ours.n_iter_ < SMALL["max_iter"] and not hasattr(ours, "loss_curve_") and ours.t_ == 0


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic"])
def test_digits_accuracy_within_a_point_of_scikit_learn(activation):
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    common = dict(solver="lbfgs", hidden_layer_sizes=(50,), max_iter=200, random_state=0, activation=activation)
    ours = MLPClassifier(**common, device="cpu").fit(X[:1200], y[:1200])
    theirs = SkMLPClassifier(**common).fit(X[:1200], y[:1200])
    assert abs(ours.score(X[1200:], y[1200:]) - theirs.score(X[1200:], y[1200:])) <= 0.01
    assert ours.score(X[:1200], y[:1200]) > 0.99


def test_limits_warn_as_scikit_learns():
    X, y = _iris()
    with pytest.warns(ConvergenceWarning, match=r"lbfgs failed to converge after 5 iteration\(s\) \(status=1\)"):
        clf = MLPClassifier(solver="lbfgs", max_iter=5, random_state=0, device="cpu").fit(X, y)
    assert clf.n_iter_ == 5 and clf._lbfgs_result.message == "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT"
    with pytest.warns(ConvergenceWarning, match="F,G EVALUATIONS EXCEEDS LIMIT"):
        clf = MLPClassifier(solver="lbfgs", max_fun=10, random_state=0, device="cpu").fit(X, y)
    assert clf.n_iter_ <= 10 and clf._lbfgs_result.n_fun <= 10 + 20
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        MLPClassifier(solver="lbfgs", hidden_layer_sizes=(5,), alpha=1.0, random_state=0, device="cpu").fit(X, y)
    with pytest.raises(ValueError, match="max_fun"):
        MLPClassifier(solver="lbfgs", max_fun=0).fit(X, y)


def test_warm_start_continues_from_the_weights():
    X, y = _iris()
    common = dict(solver="lbfgs", hidden_layer_sizes=(5,), max_iter=10, random_state=0, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warm = MLPClassifier(**common, warm_start=True).fit(X, y)
        first = warm.loss_
        warm.fit(X, y)
        cold = MLPClassifier(**common).fit(X, y)
    assert warm.loss_ < first and cold.loss_ == pytest.approx(first, rel=1e-12)


def test_gradient_over_the_flattened_parameters():
    X, y = _iris()
    for activation in ("relu", "tanh", "logistic", "identity"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = MLPClassifier(solver="lbfgs", hidden_layer_sizes=(4,), max_iter=1, alpha=0.1, random_state=0,
                                activation=activation, device="cpu").fit(X, y)
        model = clf._get_model()
        theta = to_numpy(pack(model, parameter_layout(model)))
        Y = np.eye(3)[y]
        value, grad = clf._loss_grad_lbfgs(theta, X, Y, None)
        numeric = np.array([(clf._loss_grad_lbfgs(theta + e, X, Y)[0] - clf._loss_grad_lbfgs(theta - e, X, Y)[0])
                            / 2e-6 for e in np.eye(len(theta)) * 1e-6])
        np.testing.assert_allclose(grad, numeric, atol=1e-7, err_msg=activation)
        assert value == pytest.approx(clf.loss_, rel=1e-12)  # the weights were left as they were


@pytest.mark.parametrize("spec", [
    "strict:device1", pytest.param("torch", marks=pytest.mark.needs_backend("torch")),
    pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.needs_backend("cuda")]),
    pytest.param("torch:cuda", marks=[pytest.mark.gpu, pytest.mark.needs_backend("torch:cuda")])])
def test_every_backend_gives_the_numpy_answer(spec):
    X, y = _iris()
    backend = get_backend(spec, "float64")
    common = dict(solver="lbfgs", hidden_layer_sizes=(5,), alpha=1.0, random_state=0)
    host = MLPClassifier(**common, device="cpu").fit(X, y)
    device = MLPClassifier(**common).fit(backend.asarray(X), backend.asarray(y))
    # array-api-strict computes with NumPy: the same numbers; PyTorch's own kernels round differently, so its
    # iterates part by rounding and the convergence test may fire an iteration apart
    exact = spec.startswith("strict")
    assert abs(device.n_iter_ - host.n_iter_) <= (0 if exact else 3)
    assert device.loss_ == pytest.approx(host.loss_, rel=1e-12 if exact else 1e-5)
    assert backend.owns(device.coefs_[0])
    np.testing.assert_allclose(to_numpy(device.predict_proba(backend.asarray(X))), host.predict_proba(X),
                               atol=1e-12 if exact else 1e-3)


@pytest.mark.needs_backend("torch")
def test_one_host_read_per_loss_evaluation(monkeypatch):
    import torch

    X, y = _regression()
    backend = get_backend("torch", "float64")
    Xd, yd = backend.asarray(X), backend.asarray(y)
    reads: list[str] = []
    for name in ("__float__", "__bool__", "__int__", "__index__", "item", "tolist", "numpy", "cpu"):
        original = getattr(torch.Tensor, name)

        def counting(self, *args, __name=name, __original=original, **kwargs):
            reads.append(__name)
            return __original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    reg = MLPRegressor(solver="lbfgs", hidden_layer_sizes=(8,), max_iter=60, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(Xd, yd)
    result = reg._lbfgs_result
    assert result.reads == result.n_fun and result.n_fun >= result.n_iter > 10
    # the evaluations' reads, plus a few to check and place the input once per fit
    assert result.n_fun <= len(reads) <= result.n_fun + 12, sorted(set(reads))


def test_dropout_is_refused_and_partial_fit_hidden():
    X, y = _iris()
    with pytest.raises(ValueError, match="dropout"):
        MLPClassifier(solver="lbfgs", dropout=0.3).fit(X, y)
    clf = MLPClassifier(solver="lbfgs", hidden_layer_sizes=(5,), alpha=1.0, random_state=0, device="cpu").fit(X, y)
    assert not hasattr(clf, "partial_fit")
    clf.set_params(solver="adam")
    assert hasattr(clf, "partial_fit")


def test_callbacks_see_one_fit_task_without_epochs():
    callback = pytest.importorskip("sklearn.callback")
    X, y = _iris()
    monitor = callback.ScoringMonitor(scoring=["accuracy"])
    clf = MLPClassifier(solver="lbfgs", hidden_layer_sizes=(5,), alpha=1.0, random_state=0, device="cpu")
    clf.set_callbacks(monitor).fit(X, y)
    rows = monitor.get_logs().data
    assert [row["task_name"] for row in rows] == ["fit"] and rows[0]["accuracy"] == clf.score(X, y)


def test_ctrl_c_stops_the_caller_and_keeps_the_starting_weights(monkeypatch):
    import xpmlp.lbfgs

    X, y = _iris()
    common = dict(solver="lbfgs", hidden_layer_sizes=(5,), random_state=0, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(**common, max_iter=5, warm_start=True).fit(X, y)
    before = [w.copy() for w in clf.coefs_ + clf.intercepts_]
    calls = []

    def interrupted(fun_and_grad, x0, xp, **kwargs):
        fun_and_grad(x0 * 1.5)  # a trial point: the parameters become views of it
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(xpmlp.lbfgs, "minimize_lbfgs", interrupted)
    with pytest.raises(KeyboardInterrupt):  # it stops the caller too (a grid search), as scikit-learn's
        clf.fit(X, y)
    assert calls and clf.n_iter_ == 0
    for a, b in zip(clf.coefs_ + clf.intercepts_, before, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_non_finite_loss_at_the_start_is_scikit_learns_value_error():
    rng = np.random.RandomState(0)
    X = np.finfo(np.float64).max * rng.uniform(size=(10, 2))
    with pytest.raises(ValueError, match="Solver produced non-finite parameter weights.*StandardScaler"):
        MLPRegressor(solver="lbfgs", device="cpu").fit(X, rng.standard_normal(10))
