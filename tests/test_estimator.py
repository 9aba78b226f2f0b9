"""Tests for xpmlp.MLPClassifier: scikit-learn's estimator checks, step-for-step parity with
scikit-learn's MLPClassifier in float64, the weighted loss (repetition, gradient check, class
weights), arrays that stay on their device, pickling, and scikit-learn's model-selection tools."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from xpmlp import MLPClassifier  # noqa: E402
from xpmlp.backend import get_backend, to_numpy  # noqa: E402
from xpmlp.estimator import backend_of, expected_failed_checks  # noqa: E402
from xpmlp.gradcheck import check_arrays  # noqa: E402
from xpmlp.model import MLP  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(n: int = 300, classes: int = 3, features: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(n_samples=n, n_features=features, n_informative=6, n_classes=classes,
                               random_state=seed)
    return StandardScaler().fit_transform(X), y


# -- scikit-learn's own checks ----------------------------------------------------------------------

CHECKED = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=100, random_state=0)


@parametrize_with_checks([CHECKED], expected_failed_checks=expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check, monkeypatch):
    # scikit-learn runs its Array API checks (array-api-strict devices, PyTorch) only with this set
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check(estimator)


# -- the same training as scikit-learn's MLPClassifier ------------------------------------------------

PARITY = {
    "sgd-nesterov": dict(solver="sgd", learning_rate_init=0.1),
    "sgd-momentum": dict(solver="sgd", nesterovs_momentum=False, learning_rate_init=0.1),
    "sgd-momentum-1": dict(solver="sgd", momentum=1.0, learning_rate_init=0.01),  # [0, 1] as scikit-learn's
    "sgd-invscaling": dict(solver="sgd", momentum=0.0, learning_rate="invscaling", learning_rate_init=0.5),
    "sgd-adaptive": dict(solver="sgd", learning_rate="adaptive", learning_rate_init=0.3, tol=0.05,
                         n_iter_no_change=2, max_iter=40),
    "adam": dict(solver="adam", learning_rate_init=0.01),
    "adam-early-stopping": dict(solver="adam", early_stopping=True, validation_fraction=0.2, n_iter_no_change=3),
    "adam-logistic-alpha": dict(solver="adam", activation="logistic", alpha=0.05),
    "sgd-identity": dict(solver="sgd", activation="identity", learning_rate_init=0.01),
    "adam-tanh-batch32-noshuffle": dict(solver="adam", activation="tanh", batch_size=32, shuffle=False),
}


def _both(params: dict, X: np.ndarray, y: np.ndarray, **fit) -> tuple[MLPClassifier, SkMLPClassifier]:
    common = {"hidden_layer_sizes": (16, 8), "max_iter": 15, "random_state": 0, **params}
    ours = MLPClassifier(**common, device="cpu").fit(X, y, **fit)
    theirs = SkMLPClassifier(**common).fit(X, y, **fit)
    return ours, theirs


def _assert_same_training(ours: MLPClassifier, theirs: SkMLPClassifier, X: np.ndarray, tol: float = 1e-10) -> None:
    assert ours.n_iter_ == theirs.n_iter_ and ours.t_ == theirs.t_
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=tol)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True):
        np.testing.assert_allclose(a, b, atol=tol, rtol=0)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=tol)
    if theirs.validation_scores_ is not None:
        assert ours.validation_scores_ == pytest.approx(theirs.validation_scores_)
        assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_)


@pytest.mark.parametrize("name", list(PARITY))
def test_multiclass_training_matches_scikit_learn(name):
    # float64, three classes (both softmax): the same initial weights, shuffles, batches, penalty and
    # updates as scikit-learn's code, so the weights agree to rounding
    X, y = _data()
    ours, theirs = _both(PARITY[name], X, y)
    _assert_same_training(ours, theirs, X)


@pytest.mark.skipif(tuple(int(v) for v in sklearn.__version__.split(".")[:2]) < (1, 7),
                    reason="scikit-learn's MLPClassifier takes sample_weight from 1.7 on")
@pytest.mark.parametrize("name", ["sgd-nesterov", "adam", "adam-early-stopping"])
def test_weighted_training_matches_scikit_learn(name):
    # scikit-learn >= 1.7's sample_weight convention: Σ w ℓ / Σ w, and α / (2 Σ_batch w) ‖W‖²
    X, y = _data()
    w = np.random.default_rng(1).uniform(0.0, 3.0, len(y))
    ours, theirs = _both(PARITY[name], X, y, sample_weight=w)
    _assert_same_training(ours, theirs, X)


def test_partial_fit_and_warm_start_match_scikit_learn():
    X, y = _data()
    common = dict(hidden_layer_sizes=(10,), solver="adam", learning_rate_init=0.01, random_state=0)
    ours, theirs = MLPClassifier(**common, device="cpu"), SkMLPClassifier(**common)
    for part in np.array_split(np.arange(len(y)), 3):
        ours.partial_fit(X[part], y[part], classes=np.unique(y))
        theirs.partial_fit(X[part], y[part], classes=np.unique(y))
    _assert_same_training(ours, theirs, X)
    warm = dict(common, max_iter=4, warm_start=True)
    ours, theirs = MLPClassifier(**warm, device="cpu"), SkMLPClassifier(**warm)
    for _ in range(2):
        ours.fit(X, y)
        theirs.fit(X, y)
    _assert_same_training(ours, theirs, X)
    assert len(ours.loss_curve_) == 8


@pytest.mark.parametrize("name", ["sgd-nesterov", "adam", "adam-early-stopping", "adam-logistic-alpha"])
def test_binary_is_one_logistic_unit_trained_as_scikit_learns(name):
    X, y = _data(400, classes=2)
    ours, theirs = _both(PARITY[name], X, y)
    assert ours.n_outputs_ == theirs.n_outputs_ == 1 and ours.out_activation_ == "logistic"
    assert ours.coefs_[-1].shape == (8, 1) and ours.predict_proba(X).shape == (400, 2)
    _assert_same_training(ours, theirs, X)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_allclose(ours.predict_log_proba(X), theirs.predict_log_proba(X), atol=1e-10)


@pytest.fixture(scope="module")
def fashion_subset():
    """8,000 training and 2,000 test images of the real Fashion-MNIST, pixels / 255 in float32."""
    try:
        from xpmlp.data import load_dataset

        ds = load_dataset("fashion-mnist", download=False)
    except Exception as exc:  # no data here, or the data package is unusable
        pytest.skip(f"Fashion-MNIST is not available: {exc}")
    scale = np.float32(1 / 255)
    X, Xt = ds.x_train[:8000].reshape(8000, -1) * scale, ds.x_test[:2000].reshape(2000, -1) * scale
    return X.astype(np.float32), ds.y_train[:8000], Xt.astype(np.float32), ds.y_test[:2000]


@pytest.mark.parametrize("solver, params", [("sgd", dict(learning_rate_init=0.05)), ("adam", {})])
def test_fashion_mnist_accuracy_within_a_point_of_scikit_learn(fashion_subset, solver, params):
    X, y, Xt, yt = fashion_subset
    common = dict(hidden_layer_sizes=(64,), solver=solver, max_iter=8, random_state=0, **params)
    ours = MLPClassifier(**common, device="cpu").fit(X, y)
    theirs = SkMLPClassifier(**common).fit(X, y)
    assert ours.coefs_[0].dtype == np.float32  # float32 input trains in float32, as scikit-learn
    ours_acc, theirs_acc = ours.score(Xt, yt), theirs.score(Xt, yt)
    assert ours_acc > 0.75
    assert abs(ours_acc - theirs_acc) <= 0.01, (ours_acc, theirs_acc)


# -- the weighted loss --------------------------------------------------------------------------------

def _weighted_problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((12, 5))
    y = rng.integers(0, 3, 12)
    w = rng.integers(0, 4, 12)
    w[0] = 2  # at least one positive weight
    return X, y, w


def test_integer_weights_equal_repeated_samples_in_the_loss(backend):
    X, y, w = _weighted_problem()
    model = MLP([5, 7, 3], "tanh", backend=backend, dtype="float64", seed=0)
    loss_w, grads_w = model.loss(X, y, 0.01, sample_weight=w)
    grads_w = {k: backend.to_numpy(g) for k, g in grads_w.items()}
    loss_r, grads_r = model.loss(np.repeat(X, w, axis=0), np.repeat(y, w), 0.01)
    assert float(loss_w) == pytest.approx(float(loss_r), rel=1e-13)
    for k, g in grads_w.items():
        np.testing.assert_allclose(g, backend.to_numpy(grads_r[k]), rtol=1e-11, atol=1e-14)


def test_equal_weights_are_the_unweighted_loss(backend):
    X, y, _ = _weighted_problem(1)
    model = MLP([5, 4, 3], "relu", backend=backend, dtype="float64", seed=1)
    plain, _ = model.loss(X, y)
    weighted, _ = model.loss(X, y, sample_weight=np.full(12, 0.3))
    assert float(weighted) == pytest.approx(float(plain), rel=1e-14)


def test_weighted_loss_gradient_check(backend):
    X, y, w = _weighted_problem(2)
    model = MLP([5, 6, 4, 3], "tanh", backend=backend, dtype="float64", seed=2)
    Xd, yd = model.check_x(X), model.check_y(y, 12)
    wd = model.check_weights(w * 0.7, 12)
    _, grads = model.loss(Xd, yd, 0.05, check=False, sample_weight=wd)
    grads = {k: g * 1.0 for k, g in grads.items()}

    def f() -> float:
        return float(model.loss(Xd, yd, 0.05, check=False, sample_weight=wd)[0])

    errors = check_arrays(f, model.params, grads, model.backend)
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("optimizer", ["sgd", "nesterov"])
def test_weighted_fused_step_equals_loss_then_step(backend, optimizer):
    from xpmlp.optim import make_optimizer

    X, y, w = _weighted_problem(4)
    models = [MLP([5, 6, 3], "relu", backend=backend, dtype="float64", seed=4) for _ in range(2)]
    opts = [make_optimizer(optimizer, 0.1, backend=backend) for _ in range(2)]
    Xd, yd, wd = models[0].check_x(X), models[0].check_y(y, 12), models[0].check_weights(w, 12)
    for _ in range(5):
        fused_loss = models[0].fused_step(Xd, yd, 0.01, opts[0], sample_weight=wd)
        loss, grads = models[1].loss(Xd, yd, 0.01, check=False, sample_weight=wd)
        opts[1].step(models[1].params, grads)
        assert float(fused_loss) == pytest.approx(float(loss), rel=1e-12)
    for k, p in models[0].state_dict().items():
        np.testing.assert_allclose(p, models[1].state_dict()[k], atol=1e-12)


@pytest.mark.parametrize("bad", [[-1.0] + [1.0] * 11, [0.0] * 12, [np.nan] + [1.0] * 11, [1.0] * 11])
def test_model_refuses_bad_weights(bad):
    X, y, _ = _weighted_problem()
    model = MLP([5, 3], backend="cpu", dtype="float64")
    with pytest.raises(ValueError, match="sample_weight"):
        model.loss(X, y, sample_weight=np.array(bad))


def test_estimator_weights_equal_repetition_full_batch():
    X, y, w = _weighted_problem(3)
    X, y, w = np.vstack([X] * 4), np.concatenate([y] * 4), np.concatenate([w] * 4)  # 48 rows, full batch
    common = dict(hidden_layer_sizes=(6,), solver="sgd", learning_rate_init=0.1, shuffle=False, max_iter=30,
                  alpha=0.01, random_state=0, device="cpu", dtype="float64")
    weighted = MLPClassifier(**common).fit(X, y, sample_weight=w)
    repeated = MLPClassifier(**common).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    for a, b in zip(weighted.coefs_ + weighted.intercepts_, repeated.coefs_ + repeated.intercepts_, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-10, rtol=0)


def test_balanced_class_weight_raises_the_minority_recall():
    from sklearn.metrics import recall_score

    X, y = make_classification(n_samples=600, n_features=8, n_informative=3, weights=[0.92, 0.08], flip_y=0.05,
                               class_sep=0.5, random_state=3)
    common = dict(hidden_layer_sizes=(8,), max_iter=60, learning_rate_init=0.01, random_state=0)
    plain = MLPClassifier(**common).fit(X, y)
    balanced = MLPClassifier(**common, class_weight="balanced").fit(X, y)
    assert recall_score(y, balanced.predict(X)) > recall_score(y, plain.predict(X)) + 0.1


def test_class_weight_dict_is_a_sample_weight():
    X, y = _data(120)
    common = dict(hidden_layer_sizes=(5,), max_iter=5, random_state=0, device="cpu")
    by_class = MLPClassifier(**common, class_weight={0: 2.0, 2: 0.5}).fit(X, y)
    by_sample = MLPClassifier(**common).fit(X, y, sample_weight=np.choose(y, [2.0, 1.0, 0.5]))
    np.testing.assert_allclose(by_class.coefs_[0], by_sample.coefs_[0], atol=1e-12)


# -- arrays stay where they are ---------------------------------------------------------------------

def _fit_pair(X_dev, y_dev, X, y):
    common = dict(hidden_layer_sizes=(8,), max_iter=10, random_state=0, learning_rate_init=0.01)
    return MLPClassifier(**common).fit(X_dev, y_dev), MLPClassifier(**common, device="cpu").fit(X, y)


def _assert_stays_on(backend, clf, X_dev):
    for result in (clf.predict(X_dev), clf.predict_proba(X_dev), clf.predict_log_proba(X_dev), clf.classes_,
                   *clf.coefs_, *clf.intercepts_):
        assert backend.owns(result), type(result)
    assert isinstance(clf.score(X_dev, clf.predict(X_dev)), float)


def test_strict_device_round_trip():
    X, y = _data(150)
    backend = get_backend("strict:device1", "float64")
    X_dev, y_dev = backend.asarray(X), backend.asarray(y)
    clf, reference = _fit_pair(X_dev, y_dev, X, y)
    assert backend_of(X_dev).spec == "strict:device1"
    _assert_stays_on(backend, clf, X_dev)
    np.testing.assert_allclose(to_numpy(clf.predict_proba(X_dev)), reference.predict_proba(X), atol=1e-12)
    # NumPy input to a model fitted on a device: computed there, answered in NumPy
    assert isinstance(clf.predict(X), np.ndarray)
    np.testing.assert_array_equal(clf.predict(X), reference.predict(X))
    # another device of the same library: answered on that device
    other = get_backend("strict:device2", "float64")
    assert other.owns(clf.predict_proba(other.asarray(X)))


def test_device_x_with_host_string_labels():
    X, y = _data(90)
    names = np.array(["cat", "dog", "emu"])[y]
    backend = get_backend("strict:device1", "float32")
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(backend.asarray(X), names)
    assert clf.coefs_[0].dtype == backend.xp.float32  # X's dtype decides (dtype='auto')
    assert backend.owns(clf.predict_proba(backend.asarray(X)))
    labels = clf.predict(backend.asarray(X))  # strings cannot live on a device: NumPy
    assert isinstance(labels, np.ndarray) and set(labels) <= {"cat", "dog", "emu"}


def test_device_parameter_for_host_input():
    X, y = _data(90)
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0, device="strict:device1").fit(X, y)
    assert isinstance(clf.predict_proba(X), np.ndarray) and isinstance(clf.coefs_[0], np.ndarray)
    ref = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0, device="cpu").fit(X, y)
    np.testing.assert_allclose(clf.predict_proba(X), ref.predict_proba(X), atol=1e-12)


@pytest.mark.needs_backend("torch")
def test_torch_round_trip():
    import torch

    X, y = _data(150)
    backend = get_backend("torch", "float64")
    X_dev, y_dev = torch.asarray(X), torch.asarray(y)
    clf, reference = _fit_pair(X_dev, y_dev, X, y)
    assert backend_of(X_dev, "float64") == backend
    _assert_stays_on(backend, clf, X_dev)
    assert clf.predict(X_dev).dtype == torch.int64
    np.testing.assert_allclose(to_numpy(clf.predict_proba(X_dev)), reference.predict_proba(X), atol=1e-9)


@pytest.mark.needs_backend("torch")
def test_no_host_read_per_step(monkeypatch):
    import torch

    reads: list[str] = []
    for name in ("item", "__float__", "__bool__", "__int__", "cpu", "numpy"):
        original = getattr(torch.Tensor, name)

        def counting(self, *args, __name=name, __original=original, **kwargs):
            reads.append(__name)
            return __original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    X, y = _data(400)
    counts = []
    for epochs in (1, 3):
        reads.clear()
        MLPClassifier(hidden_layer_sizes=(8,), batch_size=10, max_iter=epochs, tol=0.0, random_state=0).fit(
            torch.asarray(X, dtype=torch.float32), torch.asarray(y))
        counts.append(len(reads))
    assert counts[1] - counts[0] == 2, counts  # 40 steps an epoch, one read of its losses


# -- pickling, clone, scikit-learn's tools -------------------------------------------------------

def test_pickle_and_continue_training():
    X, y = _data()
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0, device="cpu").fit(X, y)
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    clf.partial_fit(X, y)
    copy.partial_fit(X, y)  # the optimizer's moments travelled with it
    np.testing.assert_array_equal(copy.coefs_[0], clf.coefs_[0])
    assert clone(clf).get_params() == clf.get_params() and not hasattr(clone(clf), "coefs_")


def test_device_model_unpickles_where_the_device_is_missing(monkeypatch):
    X, y = _data(100)
    backend = get_backend("strict:device1", "float64")
    clf = MLPClassifier(hidden_layer_sizes=(6,), max_iter=4, random_state=0).fit(backend.asarray(X),
                                                                                  backend.asarray(y))
    blob = pickle.dumps(clf)
    restored = pickle.loads(blob)
    assert backend.owns(restored.classes_) and backend.owns(restored.predict(backend.asarray(X)))
    import xpmlp.estimator.base as module
    import xpmlp.estimator.pickling as pickling

    for where in (module, pickling):
        monkeypatch.setattr(where, "backend_unavailable", lambda spec: "" if spec in ("cpu", "auto") else "no GPU")
    with pytest.warns(UserWarning, match="not usable here"):
        elsewhere = pickle.loads(blob)
    assert isinstance(elsewhere.classes_, np.ndarray) and isinstance(elsewhere.coefs_[0], np.ndarray)
    np.testing.assert_allclose(elsewhere.predict_proba(X), to_numpy(clf.predict_proba(backend.asarray(X))),
                               atol=1e-12)


def test_model_selection_tools():
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import GridSearchCV, HalvingRandomSearchCV, cross_val_score
    from sklearn.pipeline import make_pipeline

    X, y = make_classification(n_samples=240, n_features=10, n_informative=5, n_classes=3, random_state=0)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0))
    assert cross_val_score(pipe, X, y, cv=3).mean() > 0.5
    grid = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-1], "mlpclassifier__solver": ["adam", "sgd"]},
                        cv=3).fit(X, y)
    assert grid.best_score_ > 0.5 and grid.predict(X).shape == (240,)
    search = HalvingRandomSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(4,), (8,), (16,)],
                                          "mlpclassifier__learning_rate_init": [1e-3, 1e-2]},
                                   resource="mlpclassifier__max_iter", min_resources=5, max_resources=20,
                                   random_state=0, cv=3).fit(X, y)
    assert search.best_estimator_.score(X, y) > 0.5


# -- labels, parameters, errors ---------------------------------------------------------------------

def test_string_and_non_contiguous_labels():
    X, y = _data(120)
    for labels in (np.array([-7, 3, 42])[y], np.array(["b", "a", "c"])[y]):
        clf = MLPClassifier(hidden_layer_sizes=(6,), max_iter=100, learning_rate_init=0.05, random_state=0)
        clf.fit(X, labels)
        assert list(clf.classes_) == sorted(set(labels))
        assert set(clf.predict(X)) <= set(labels) and clf.score(X, labels) > 0.6


def test_partial_fit_accepts_classes_absent_from_the_first_batch():
    X, y = _data(120)
    clf = MLPClassifier(hidden_layer_sizes=(4,), random_state=0)
    clf.partial_fit(X[y != 2], y[y != 2], classes=[0, 1, 2])
    assert clf.n_outputs_ == 3 and clf.n_iter_ == 1 and clf.predict_proba(X).shape == (120, 3)
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier().partial_fit(X, y)


def test_fitted_attributes_and_verbose(capsys):
    X, y = _data(100)
    clf = MLPClassifier(hidden_layer_sizes=(7, 5), max_iter=3, random_state=0, verbose=True).fit(X, y)
    assert "Iteration 1, loss = " in capsys.readouterr().out
    assert clf.n_layers_ == 4 and clf.n_features_in_ == 12 and clf.n_iter_ == 3 and clf.t_ == 300
    assert [c.shape for c in clf.coefs_] == [(12, 7), (7, 5), (5, 3)]
    assert clf.loss_ == clf.loss_curve_[-1] and clf.best_loss_ == min(clf.loss_curve_)
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None
    with pytest.warns(ConvergenceWarning):
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)


def test_coefs_can_be_set():
    X, y = _data(100)
    ours = MLPClassifier(hidden_layer_sizes=(5,), max_iter=2, random_state=0, device="cpu").fit(X, y)
    theirs = SkMLPClassifier(hidden_layer_sizes=(5,), max_iter=20, random_state=1).fit(X, y)
    ours.coefs_, ours.intercepts_ = theirs.coefs_, theirs.intercepts_
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-12)


@pytest.mark.parametrize("params, words", [
    (dict(solver="lbfgs", dropout=0.2), "dropout"),
    (dict(dropout=1.0), "dropout"),
    (dict(activation="softplus"), "unknown activation"),
    (dict(solver="adam", weight_decay=0.1), "adamw"),
    (dict(momentum=1.5), "momentum"),
    (dict(dtype="float16"), "dtype"),
    (dict(batch_size=0), "batch_size"),
    (dict(class_weight="some"), "class_weight"),
])
def test_bad_parameters_say_what_to_do(params, words):
    X, y = _data(60)
    with pytest.raises(ValueError, match=words):
        MLPClassifier(**params).fit(X, y)


def test_parameter_errors_are_value_and_type_errors_as_scikit_learns():
    X, y = _data(60)
    for bad in (dict(alpha=-1.0), dict(shuffle="yes")):
        with pytest.raises(ValueError) as ours:
            MLPClassifier(**bad).fit(X, y)
        with pytest.raises(ValueError) as theirs:
            SkMLPClassifier(**bad).fit(X, y)
        assert isinstance(theirs.value, TypeError) and isinstance(ours.value, TypeError)


def test_numpy_booleans_are_accepted_as_flags():
    # a grid such as {"early_stopping": np.array([True, False])} hands the estimator np.bool_
    X, y = _data(100)
    flags = dict(shuffle=np.True_, warm_start=np.False_, early_stopping=np.True_, nesterovs_momentum=np.True_)
    common = dict(solver="sgd", hidden_layer_sizes=(5,), max_iter=3, random_state=0, validation_fraction=0.2)
    ours = MLPClassifier(**common, **flags, device="cpu").fit(X, y)
    plain = MLPClassifier(**common, **{k: bool(v) for k, v in flags.items()}, device="cpu").fit(X, y)
    assert ours.loss_curve_ == plain.loss_curve_ and ours.validation_scores_ == plain.validation_scores_


def test_multioutput_multiclass_is_refused_and_one_class_predicted():
    X, y = _data(60)
    with pytest.raises(ValueError, match="one label per sample"):
        MLPClassifier().fit(X, np.stack([y, (y + 1) % 3], axis=1))  # two multiclass outputs
    one = MLPClassifier(max_iter=5, device="cpu").fit(X, np.full(60, 7))  # as scikit-learn: it predicts that class
    theirs = SkMLPClassifier(max_iter=5).fit(X, np.full(60, 7))
    np.testing.assert_array_equal(one.predict(X), theirs.predict(X))
    assert one.predict_proba(X).shape == theirs.predict_proba(X).shape == (60, 2)


def test_other_solvers_and_activations_train():
    X, y = _data(150)
    for params in (dict(solver="nesterov"), dict(solver="adamw", learning_rate_init=0.02),
                   dict(solver="momentum"), dict(activation="gelu", learning_rate_init=0.02),
                   dict(activation="leaky_relu:0.1", solver="sgd")):
        clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=60, random_state=0, **{"learning_rate_init": 0.05,
                                                                                      **params}).fit(X, y)
        assert clf.score(X, y) > 0.6, params


def test_import_without_scikit_learn_says_what_to_install():
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "import xpmlp\n"
            "try:\n    from xpmlp import MLPClassifier\n"
            "except ImportError as exc:\n    print('ERR', exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ERR xpmlp.MLPClassifier and MLPRegressor need scikit-learn: pip install 'xpmlp[sklearn]'" in out.stdout


def test_no_warnings_on_a_converging_fit():
    X, y = _data(100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MLPClassifier(hidden_layer_sizes=(6,), max_iter=500, tol=1e-2, random_state=0).fit(X, y)


def test_backend_of_names_the_device():
    assert backend_of(np.zeros(3), "float64") == get_backend("cpu", "float64")
    strict = get_backend("strict:device2", "float32")
    assert backend_of(strict.asarray(np.zeros(3)), "float32") == strict
    with pytest.raises(ValueError, match="cannot tell the device"):
        backend_of([1.0, 2.0])


def test_a_batch_of_zero_weights_is_skipped():
    X, y = _data(100)
    w = np.r_[np.zeros(50), np.ones(50)]
    common = dict(hidden_layer_sizes=(5,), batch_size=50, shuffle=False, max_iter=3, random_state=0, device="cpu")
    weighted = MLPClassifier(**common).fit(X, y, sample_weight=w)
    assert np.isfinite(weighted.loss_) and weighted.t_ == 300
    # the second half alone, in batches of 50, is the same training
    alone = MLPClassifier(**common).fit(X[50:], y[50:])
    np.testing.assert_allclose(weighted.coefs_[0], alone.coefs_[0], atol=1e-12)


@pytest.mark.parametrize("activation", ["relu", "identity"])
def test_dropout_trains_reproducibly(activation):
    X, y = _data(200)
    common = dict(hidden_layer_sizes=(32,), activation=activation, max_iter=30, learning_rate_init=0.01,
                  random_state=0, device="cpu")
    dropped = MLPClassifier(**common, dropout=0.3).fit(X, y)
    again = MLPClassifier(**common, dropout=0.3).fit(X, y)
    plain = MLPClassifier(**common).fit(X, y)
    np.testing.assert_array_equal(dropped.coefs_[0], again.coefs_[0])  # the masks follow random_state
    assert not np.allclose(dropped.coefs_[0], plain.coefs_[0])
    np.testing.assert_array_equal(dropped.predict_proba(X), dropped.predict_proba(X))  # no masks at prediction
    assert dropped.score(X, y) > 0.6
    copy = pickle.loads(pickle.dumps(dropped))
    dropped.partial_fit(X, y)
    copy.partial_fit(X, y)  # the mask stream continues where it was
    np.testing.assert_array_equal(copy.coefs_[0], dropped.coefs_[0])
