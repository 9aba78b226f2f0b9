"""Tests for xpmlp.MLPRegressor: scikit-learn's estimator checks, the same training as scikit-learn's
MLPRegressor in float64 (loss curves, weights, R² early stopping, Poisson, several targets, sample
weights), device arrays, and the squared error's own gradient."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.datasets import make_regression  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkMLPRegressor  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from xpmlp import MLPRegressor  # noqa: E402
from xpmlp.backend import get_backend, to_numpy  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(n: int = 200, targets: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    X, y = make_regression(n_samples=n, n_features=6, n_targets=targets, noise=5.0, random_state=seed)
    return X, y / np.std(y)


@parametrize_with_checks([MLPRegressor(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=200,
                                       random_state=0)])
def test_sklearn_estimator_checks(estimator, check, monkeypatch):
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check(estimator)


PARITY = {
    "sgd": dict(solver="sgd", learning_rate_init=0.01),
    "sgd-invscaling": dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.05, momentum=0.0),
    "adam": dict(solver="adam", learning_rate_init=0.01),
    "adam-early-stopping": dict(solver="adam", early_stopping=True, learning_rate_init=0.01),
    "adam-tanh-alpha": dict(solver="adam", activation="tanh", alpha=0.1, learning_rate_init=0.01),
    "poisson": dict(solver="adam", loss="poisson", learning_rate_init=0.01),
}


def _both(params: dict, X: np.ndarray, y: np.ndarray, **fit) -> tuple[MLPRegressor, SkMLPRegressor]:
    common = {"hidden_layer_sizes": (12, 6), "max_iter": 12, "random_state": 0, **params}
    return MLPRegressor(**common, device="cpu").fit(X, y, **fit), SkMLPRegressor(**common).fit(X, y, **fit)


def _assert_same(ours: MLPRegressor, theirs: SkMLPRegressor, X: np.ndarray, rtol: float = 1e-6) -> None:
    assert ours.n_iter_ == theirs.n_iter_ and ours.t_ == theirs.t_ and ours.n_outputs_ == theirs.n_outputs_
    assert ours.out_activation_ == theirs.out_activation_ and ours.n_layers_ == theirs.n_layers_
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=rtol)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-9)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), atol=1e-9)
    assert ours.predict(X).shape == theirs.predict(X).shape
    if theirs.validation_scores_ is not None:
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, atol=1e-12)
        assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_, abs=1e-12)
    else:
        assert ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=rtol)


@pytest.mark.parametrize("targets", [1, 3])
@pytest.mark.parametrize("name", list(PARITY))
def test_training_matches_scikit_learn(name, targets):
    X, y = _data(targets=targets)
    if PARITY[name].get("loss") == "poisson":
        y = np.abs(y)
    ours, theirs = _both(PARITY[name], X, y)
    _assert_same(ours, theirs, X)
    assert ours.score(X, y) == pytest.approx(theirs.score(X, y), abs=1e-9)


def test_weighted_training_matches_scikit_learn():
    X, y = _data()
    w = np.random.default_rng(1).uniform(0.0, 3.0, len(y))
    for name in ("sgd", "adam-early-stopping"):
        ours, theirs = _both(PARITY[name], X, y, sample_weight=w)
        _assert_same(ours, theirs, X)


def test_partial_fit_and_warm_start_match_scikit_learn():
    X, y = _data()
    common = dict(hidden_layer_sizes=(10,), solver="sgd", learning_rate_init=0.01, random_state=0)
    ours, theirs = MLPRegressor(**common, device="cpu"), SkMLPRegressor(**common)
    for part in np.array_split(np.arange(len(y)), 3):
        ours.partial_fit(X[part], y[part])
        theirs.partial_fit(X[part], y[part])
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    warm = dict(common, max_iter=3, warm_start=True)
    ours, theirs = MLPRegressor(**warm, device="cpu"), SkMLPRegressor(**warm)
    for _ in range(2):
        ours.fit(X, y)
        theirs.fit(X, y)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    assert len(ours.loss_curve_) == 6


def test_squared_error_gradient_and_scikit_learns_value():
    from sklearn.neural_network._base import squared_loss

    from xpmlp.losses import squared_error

    xp = get_backend("cpu", "float64").xp
    rng = np.random.default_rng(0)
    out, target, w = rng.normal(size=(7, 3)), rng.normal(size=(7, 3)), rng.uniform(0.1, 2.0, 7)
    for weights in (None, w):
        loss, grad = squared_error(out, target, xp, weights)
        reported, same_grad = squared_error(out, target, xp, weights, mean_over_outputs=True)
        # scikit-learn reports the mean over the 3 outputs; the gradient is that of the sum
        assert float(reported) == pytest.approx(squared_loss(target, out, sample_weight=weights), rel=1e-12)
        assert float(loss) == pytest.approx(3 * float(reported), rel=1e-12)
        np.testing.assert_array_equal(grad, same_grad)
        numeric = np.zeros_like(out)
        for i in np.ndindex(out.shape):
            step = np.zeros_like(out)
            step[i] = 1e-6
            numeric[i] = (float(squared_error(out + step, target, xp, weights)[0])
                          - float(squared_error(out - step, target, xp, weights)[0])) / 2e-6
        np.testing.assert_allclose(grad, numeric, atol=1e-8)


def test_device_arrays_stay_on_their_device():
    X, y = _data(120, targets=2)
    backend = get_backend("strict:device1", "float64")
    reg = MLPRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(backend.asarray(X),
                                                                                backend.asarray(y))
    host = MLPRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0, device="cpu").fit(X, y)
    predicted = reg.predict(backend.asarray(X))
    assert backend.owns(predicted) and backend.owns(reg.coefs_[0])
    np.testing.assert_allclose(to_numpy(predicted), host.predict(X), atol=1e-12)
    assert all(isinstance(v, float) for v in reg.loss_curve_)


def test_pickle_continue_and_bad_targets():
    X, y = _data(80)
    reg = MLPRegressor(hidden_layer_sizes=(6,), max_iter=3, random_state=0, device="cpu").fit(X, y)
    copy = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(copy.predict(X), reg.predict(X))
    copy.partial_fit(X, y)
    reg.partial_fit(X, y)
    np.testing.assert_array_equal(copy.predict(X), reg.predict(X))
    with pytest.raises(ValueError, match="target column"):
        reg.partial_fit(X, np.stack([y, y], axis=1))
    with pytest.raises(ValueError, match="poisson"):
        MLPRegressor(loss="poisson").fit(X, y - 100)
    with pytest.raises(ValueError, match="unknown loss"):
        MLPRegressor(loss="absolute").fit(X, y)


def test_column_target_predicts_one_dimension():
    X, y = _data(60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=0, device="cpu").fit(X, y[:, None])
    assert reg.predict(X).shape == (60,) and reg.n_outputs_ == 1
