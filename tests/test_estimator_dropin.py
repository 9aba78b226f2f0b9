"""What scikit-learn's users read and set on MLPClassifier: multilabel targets, weights set by hand
before partial_fit, the current learning rate, partial_fit only for stochastic solvers, and the
logistic and Poisson losses against scikit-learn's definitions."""

from __future__ import annotations

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.datasets import make_multilabel_classification  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkMLPRegressor  # noqa: E402

from xpmlp import MLPClassifier, MLPRegressor  # noqa: E402
from xpmlp.backend import get_backend  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _multilabel(n: int = 150) -> tuple[np.ndarray, np.ndarray]:
    X, Y = make_multilabel_classification(n_samples=n, n_features=8, n_classes=4, random_state=0)
    return X / X.max(), Y


@pytest.mark.parametrize("params", [dict(solver="adam", learning_rate_init=0.01),
                                    dict(solver="sgd", learning_rate_init=0.1),
                                    dict(solver="adam", early_stopping=True)])
def test_multilabel_trains_as_scikit_learn(params):
    X, Y = _multilabel()
    common = dict(hidden_layer_sizes=(10,), max_iter=10, random_state=0, **params)
    ours, theirs = MLPClassifier(**common, device="cpu").fit(X, Y), SkMLPClassifier(**common).fit(X, Y)
    assert ours.out_activation_ == theirs.out_activation_ == "logistic" and ours.n_outputs_ == 4
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-10)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    assert ours.score(X, Y) == theirs.score(X, Y)
    if theirs.validation_scores_ is not None:
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, atol=1e-12)


def test_a_sparse_indicator_y_trains_and_predicts_sparse_as_scikit_learn():
    from scipy.sparse import csr_matrix, issparse

    X, Y = _multilabel()
    common = dict(hidden_layer_sizes=(10,), max_iter=10, random_state=0)
    with pytest.warns(Warning):
        ours = MLPClassifier(**common, device="cpu").fit(X, csr_matrix(Y))
        theirs = SkMLPClassifier(**common).fit(X, csr_matrix(Y))
        dense = MLPClassifier(**common, device="cpu").fit(X, Y)
    assert ours.loss_curve_ == dense.loss_curve_
    got, want = ours.predict(X), theirs.predict(X)
    assert issparse(got) and issparse(want) and got.dtype == want.dtype
    np.testing.assert_array_equal(got.toarray(), want.toarray())
    assert not issparse(dense.predict(X))
    assert ours.score(X, csr_matrix(Y)) == theirs.score(X, csr_matrix(Y)) == ours.score(X, Y)


def test_multilabel_partial_fit_and_refusals():
    X, Y = _multilabel()
    ours = MLPClassifier(hidden_layer_sizes=(6,), random_state=0, device="cpu")
    theirs = SkMLPClassifier(hidden_layer_sizes=(6,), random_state=0)
    for _ in range(3):
        ours.partial_fit(X, Y, classes=np.arange(4))
        theirs.partial_fit(X, Y, classes=np.arange(4))
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    with pytest.raises(ValueError, match="multilabel"):
        ours.partial_fit(X, Y.argmax(axis=1))
    with pytest.raises(ValueError, match="class_weight"):
        MLPClassifier(class_weight="balanced").fit(X, Y)


def test_weights_set_before_partial_fit_are_used():
    X, y = np.array([[0.6, 0.8, 0.7]]), np.array([0])
    common = dict(solver="sgd", learning_rate_init=0.1, alpha=0.1, activation="logistic", random_state=1,
                  max_iter=1, hidden_layer_sizes=2, momentum=0)
    W = [np.array([[0.1, 0.2], [0.3, 0.1], [0.5, 0]]), np.array([[0.1], [0.2]])]
    b = [np.array([0.1, 0.1]), np.array([1.0])]
    ours, theirs = MLPClassifier(**common, device="cpu"), SkMLPClassifier(**common)
    theirs.partial_fit(X, y, classes=[0, 1])  # scikit-learn's own state, then its weights replaced
    theirs.coefs_, theirs.intercepts_ = [w.copy() for w in W], [v.copy() for v in b]
    del theirs._optimizer  # scikit-learn makes a new optimizer when it has none
    theirs.partial_fit(X, y)
    ours.coefs_ = [0, 0]
    ours.coefs_[0], ours.coefs_[1] = W  # item assignment on the list, as scikit-learn's tests do
    ours.intercepts_ = list(b)
    assert ours.coefs_[0] is W[0]
    ours.partial_fit(X, y, classes=[0, 1])
    # one step of plain SGD from the same weights: both start from W, b
    for a, c in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True):
        np.testing.assert_allclose(a, c, atol=1e-12)
    np.testing.assert_allclose(ours.coefs_[1][:, 0], [0.04706, 0.154089], atol=1e-3)  # the worked example
    half = MLPClassifier(**common, device="cpu")
    half.coefs_ = list(W)
    with pytest.raises(ValueError, match="set both"):
        half.partial_fit(X, y, classes=[0, 1])
    assert half.coefs_[0] is W[0]  # kept, to be completed with intercepts_
    bad = MLPClassifier(**common, device="cpu")
    bad.coefs_, bad.intercepts_ = [W[0][:2], W[1]], list(b)
    with pytest.raises(ValueError, match="layer 1"):
        bad.partial_fit(X, y, classes=[0, 1])
    assert bad.coefs_[0].shape == (2, 2)  # still the user's, to be fixed


def test_fitted_weights_edited_in_place_or_by_item_change_the_model_as_scikit_learns():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((80, 4)), rng.integers(0, 3, 80)
    common = dict(hidden_layer_sizes=(6,), max_iter=5, random_state=0)
    with pytest.warns(Warning):
        ours, theirs = MLPClassifier(**common, device="cpu").fit(X, y), SkMLPClassifier(**common).fit(X, y)
    for clf in (ours, theirs):
        clf.coefs_[0][:2] = 0.0  # pruning in place
        clf.intercepts_[1] = np.arange(3.0)  # one item replaced
    assert ours.coefs_[0] is ours.coefs_[0]
    np.testing.assert_array_equal(ours.intercepts_[1], np.arange(3.0))
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-12)
    before = ours.predict_proba(X)
    with pytest.raises(ValueError, match=r"coefs_\[1\] has shape \(2, 2\)"):
        ours.coefs_[1] = np.ones((2, 2))
    np.testing.assert_array_equal(ours.predict_proba(X), before)  # a refused item changes nothing
    assert ours.coefs_[1].shape == (6, 3)


def test_fit_without_warm_start_ignores_weights_set_by_hand():
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(int)
    common = dict(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    ours = MLPClassifier(**common, device="cpu")
    ours.coefs_, ours.intercepts_ = [np.zeros((3, 4)), np.zeros((4, 1))], [np.zeros(4), np.zeros(1)]
    ours.fit(X, y)
    theirs = SkMLPClassifier(**common).fit(X, y)
    np.testing.assert_allclose(ours.coefs_[0], theirs.coefs_[0], atol=1e-12)


@pytest.mark.parametrize("schedule, params", [("invscaling", dict(power_t=0.4)),
                                              ("adaptive", dict(tol=0.5, n_iter_no_change=2))])
def test_current_learning_rate_is_scikit_learns(schedule, params):
    X = np.random.default_rng(0).normal(size=(60, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    common = dict(solver="sgd", learning_rate=schedule, learning_rate_init=0.2, max_iter=40, random_state=0,
                  hidden_layer_sizes=(5,), **params)
    ours, theirs = MLPClassifier(**common, device="cpu").fit(X, y), SkMLPClassifier(**common).fit(X, y)
    assert ours._optimizer.learning_rate == pytest.approx(theirs._optimizer.learning_rate, rel=1e-12)
    assert ours.n_iter_ == theirs.n_iter_
    if schedule == "adaptive":
        assert ours._optimizer.learning_rate < 0.2


@pytest.mark.parametrize("Estimator", [MLPClassifier, MLPRegressor])
def test_partial_fit_exists_only_for_stochastic_solvers(Estimator):
    assert hasattr(Estimator(solver="adam"), "partial_fit") and hasattr(Estimator(solver="sgd"), "partial_fit")
    assert not hasattr(Estimator(solver="lbfgs"), "partial_fit")
    with pytest.raises(AttributeError, match="partial_fit"):
        _ = Estimator(solver="lbfgs").partial_fit


def test_logistic_and_poisson_losses_are_scikit_learns():
    from sklearn.neural_network._base import binary_log_loss, poisson_loss

    from xpmlp.losses import poisson_deviance, sigmoid_cross_entropy

    xp = get_backend("cpu", "float64").xp
    rng = np.random.default_rng(0)
    z, w = rng.normal(size=(9, 3)), rng.uniform(0.1, 2.0, 9)
    labels, counts = (rng.uniform(size=(9, 3)) > 0.5).astype(float), rng.poisson(2.0, size=(9, 3)).astype(float)
    for weights in (None, w):
        loss, grad = sigmoid_cross_entropy(z, labels, xp, weights)
        p = 1.0 / (1.0 + np.exp(-z))
        assert float(loss) == pytest.approx(binary_log_loss(labels, p, sample_weight=weights), rel=1e-12)
        scale = (np.ones(9) if weights is None else weights) / (9 if weights is None else weights.sum())
        np.testing.assert_allclose(grad, (p - labels) * scale[:, None], atol=1e-15)
        loss, grad = poisson_deviance(z, counts, xp, weights)
        assert float(loss) == pytest.approx(poisson_loss(counts, np.exp(z), sample_weight=weights), rel=1e-12)
        np.testing.assert_allclose(grad, (np.exp(z) - counts) * scale[:, None], atol=1e-14)
    big = np.array([[800.0, -800.0]])  # no overflow where σ saturates
    loss, grad = sigmoid_cross_entropy(big, np.array([[0.0, 1.0]]), xp)
    assert float(loss) == pytest.approx(1600.0) and np.allclose(grad, [[1.0, -1.0]])


def test_regressor_reads_scikit_learns_attributes():
    X = np.random.default_rng(0).normal(size=(50, 2))
    y = X[:, 0] - X[:, 1]
    common = dict(hidden_layer_sizes=(3, 3), max_iter=4, random_state=0, solver="sgd")
    ours, theirs = MLPRegressor(**common, device="cpu").fit(X, y), SkMLPRegressor(**common).fit(X, y)
    for name in ("n_iter_", "t_", "n_layers_", "n_outputs_", "out_activation_", "n_features_in_"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=1e-10)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-10)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("params", [dict(solver="adam"), dict(solver="sgd", learning_rate_init=0.1),
                                    dict(solver="adam", early_stopping=True)])
def test_sparse_x_trains_as_scikit_learn_without_densifying(fmt, params, monkeypatch):
    import scipy.sparse

    X = scipy.sparse.random(200, 60, density=0.05, format=fmt, random_state=0)
    y = np.random.default_rng(0).integers(0, 3, 200)
    common = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0, **params)
    theirs = SkMLPClassifier(**common).fit(X, y)
    expected = theirs.predict_proba(X)

    def refuse(*args, **kwargs):
        raise AssertionError("the sparse X was densified")

    for cls in (scipy.sparse.csr_matrix, scipy.sparse.csc_matrix):
        monkeypatch.setattr(cls, "toarray", refuse)
        monkeypatch.setattr(cls, "todense", refuse)
    ours = MLPClassifier(**common, device="cpu").fit(X, y)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(ours.predict_proba(X), expected, atol=1e-10)
    monkeypatch.undo()
    dense = MLPClassifier(**common, device="cpu").fit(X.toarray(), y)
    np.testing.assert_allclose(ours.predict_proba(X), dense.predict_proba(X.toarray()), atol=1e-12)


def test_sparse_x_on_a_backend_without_sparse_matrices_is_refused():
    import scipy.sparse

    X = scipy.sparse.random(30, 5, density=0.3, format="csr", random_state=0)
    with pytest.raises(ValueError, match="sparse input needs device 'cpu' or 'cuda'"):
        MLPRegressor(max_iter=2, device="strict").fit(X, np.arange(30.0))


def _message(estimator, *calls) -> str:
    """The ValueError message of the last of ``calls`` (method name, args, kwargs) on ``estimator``."""
    *first, last = calls
    for name, args, kwargs in first:
        getattr(estimator, name)(*args, **kwargs)
    name, args, kwargs = last
    with pytest.raises(ValueError) as info:
        getattr(estimator, name)(*args, **kwargs)
    return str(info.value)


@pytest.mark.parametrize("case", ["unseen", "classes changed", "warm start"])
def test_bad_target_messages_read_as_scikit_learns(case):
    X = np.random.default_rng(0).normal(size=(6, 2))
    y = np.array(["cat", "dog", "cat", "dog", "cat", "dog"])
    if case == "unseen":
        calls = [("partial_fit", (X, y), {"classes": ["cat", "dog"]}),
                 ("partial_fit", (X, np.array(["cat", "emu"] * 3)), {})]
    elif case == "classes changed":
        calls = [("partial_fit", (X, y), {"classes": ["cat", "dog"]}),
                 ("partial_fit", (X, y), {"classes": ["cat", "dog", "emu"]})]
    else:
        calls = [("fit", (X, y), {}), ("fit", (X, np.array(["cat", "dog", "emu"] * 2)), {})]
    common = dict(hidden_layer_sizes=(3,), max_iter=2, warm_start=case == "warm start", random_state=0)
    ours = _message(MLPClassifier(**common, device="cpu"), *calls)
    theirs = _message(SkMLPClassifier(**common), *calls)
    assert ours == theirs


def test_partial_fit_takes_scikit_learns_argument_order():
    import inspect

    ours = list(inspect.signature(MLPClassifier.partial_fit).parameters)
    theirs = list(inspect.signature(SkMLPClassifier.partial_fit).parameters)
    assert ours == theirs
    assert list(inspect.signature(MLPRegressor.partial_fit).parameters) == \
        list(inspect.signature(SkMLPRegressor.partial_fit).parameters)


def test_a_fit_refused_after_the_targets_leaves_the_fitted_labels_alone():
    X, Y = _multilabel(60)
    y = Y.argmax(axis=1)
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0, device="cpu").fit(X, y)
    before = clf.predict(X)
    with pytest.raises(ValueError, match="sample_weight"):
        clf.fit(X, Y, sample_weight=np.full(5, 1.0))  # multilabel y, then a bad weight: refused
    np.testing.assert_array_equal(clf.predict(X), before)  # still the label classifier it was
