"""xpmlp.MLPClassifier and scikit-learn's callback API (``sklearn.callback``, scikit-learn >= 1.9):
each public callback attached and what it records checked against independently trained models;
the task tree (one ``epoch`` subtask per epoch), stop requests, ``partial_fit``, no host read per
step; and the training records (``loss_curve_``, ``validation_scores_``...) as Python floats on
every backend."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
callback = pytest.importorskip("sklearn.callback", reason="scikit-learn < 1.9 has no callback API")

from sklearn.datasets import make_classification  # noqa: E402
from sklearn.metrics import accuracy_score, log_loss  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from xpmlp import MLPClassifier  # noqa: E402
from xpmlp.errors import DivergenceError  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# tol=0 and a large n_iter_no_change: every fit runs its max_iter epochs, so a fit of k epochs is
# the state of a longer fit after its k-th epoch (same seed, same shuffles)
PARAMS = dict(hidden_layer_sizes=(8,), batch_size=32, learning_rate_init=0.01, tol=0.0, n_iter_no_change=100,
              random_state=0, device="cpu")


def _data(n: int = 160) -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(n_samples=n, n_features=6, n_informative=4, n_classes=3, random_state=1)
    return StandardScaler().fit_transform(X), y


class Recorder(callback.FitCallback):
    """Records every hook: (hook, task_name, task_id, parent's task_name, max_subtasks)."""

    def __init__(self, stop_after: int | None = None, keep_fitted: bool = False) -> None:
        self.calls: list[tuple] = []
        self.seen: list[tuple] = []       # (type of X, type of y, metadata) at each begin
        self.fitted: list = []            # fitted_estimator at each epoch end (keep_fitted)
        self.stop_after, self.keep_fitted = stop_after, keep_fitted

    def setup(self, estimator, context):
        self.calls.append(("setup", context.task_name))

    def teardown(self, estimator, context):
        self.calls.append(("teardown", context.task_name))

    def _record(self, hook, context):
        parent = None if context.parent is None else context.parent.task_name
        self.calls.append((hook, context.task_name, context.task_id, parent, context.max_subtasks))

    def on_fit_task_begin(self, estimator, context, *, X=None, y=None, metadata=None):
        self._record("begin", context)
        self.seen.append((type(X), type(y), metadata))

    def on_fit_task_end(self, estimator, context, *, X=None, y=None, metadata=None, fitted_estimator=None):
        self._record("end", context)
        if context.task_name != "epoch":
            return False
        if self.keep_fitted:
            self.fitted.append(fitted_estimator)
        return self.stop_after is not None and context.task_id + 1 >= self.stop_after

    def epochs(self, hook: str) -> list[int]:
        return [c[2] for c in self.calls if c[0] == hook and c[1] == "epoch"]


class LeanRecorder(callback.FitCallback):
    """Asks for nothing but the context: the estimator copies no weights for it."""

    def __init__(self) -> None:
        self.ends = 0

    def setup(self, estimator, context):
        pass

    def teardown(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context):
        pass

    def on_fit_task_end(self, estimator, context):
        self.ends += 1


# -- the task tree ------------------------------------------------------------------------------

def test_a_fit_callback_sees_one_begin_and_end_per_epoch():
    X, y = _data()
    rec = Recorder()
    # a tolerance that stops the fit well before max_iter: the epochs counted are the ones that ran
    clf = MLPClassifier(**{**PARAMS, "tol": 0.5, "n_iter_no_change": 2}, max_iter=50).set_callbacks(rec)
    clf.fit(X, y)
    assert 0 < clf.n_iter_ < 50
    assert rec.epochs("begin") == rec.epochs("end") == list(range(clf.n_iter_))
    assert rec.calls[0] == ("setup", "fit") and rec.calls[-1] == ("teardown", "fit")
    assert rec.calls[1] == ("begin", "fit", 0, None, 50) and rec.calls[-2] == ("end", "fit", 0, None, 50)
    epoch_calls = [c for c in rec.calls if c[1] == "epoch"]
    assert {(c[3], c[4]) for c in epoch_calls} == {("fit", 0)}  # leaves under the fit
    assert [c[0] for c in epoch_calls] == ["begin", "end"] * clf.n_iter_  # begin, end, begin, end...
    assert not hasattr(clf, "_callback_fit_ctx")  # torn down


def test_hooks_get_the_fit_data_and_sample_weight():
    X, y = _data()
    w = np.linspace(0.5, 2.0, len(y))
    rec = Recorder()
    MLPClassifier(**PARAMS, max_iter=2).set_callbacks(rec).fit(X, y, sample_weight=w)
    assert {(x, t) for x, t, _ in rec.seen} == {(np.ndarray, np.ndarray)}
    assert all(m["sample_weight"] is w for _, _, m in rec.seen)


def test_a_callback_that_asks_to_stop_ends_the_fit():
    X, y = _data()
    rec = Recorder(stop_after=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # stopped on request: no ConvergenceWarning
        clf = MLPClassifier(**PARAMS, max_iter=20).set_callbacks(rec).fit(X, y)
    assert clf.n_iter_ == 3 and len(clf.loss_curve_) == 3
    assert rec.epochs("end") == [0, 1, 2] and rec.calls[-2][:2] == ("end", "fit")
    three = MLPClassifier(**PARAMS, max_iter=3).fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), three.predict_proba(X))


def test_partial_fit_is_one_task_with_one_epoch():
    X, y = _data()
    rec = Recorder()
    clf = MLPClassifier(**PARAMS).set_callbacks(rec)
    for _ in range(2):
        clf.partial_fit(X, y, classes=np.unique(y))
    assert clf.n_iter_ == 1 and len(clf.loss_curve_) == 2  # n_iter_ counts one call's epochs, as scikit-learn's
    one_call = [("setup", "partial_fit"), ("begin", "partial_fit", 0, None, 1), ("begin", "epoch", 0, "partial_fit", 0),
                ("end", "epoch", 0, "partial_fit", 0), ("end", "partial_fit", 0, None, 1), ("teardown", "partial_fit")]
    assert rec.calls == one_call * 2


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow that makes the fit fail
def test_teardown_runs_when_fit_fails():
    X, y = _data()
    rec = Recorder()
    clf = MLPClassifier(**{**PARAMS, "learning_rate_init": 1e12, "solver": "sgd"}, max_iter=5).set_callbacks(rec)
    with pytest.raises(DivergenceError):
        clf.fit(X * 1e6, y)
    assert rec.calls[-1] == ("teardown", "fit") and not hasattr(clf, "_callback_fit_ctx")


def test_fitted_estimator_predicts_as_the_fit_stood_at_that_epoch():
    X, y = _data()
    rec = Recorder(keep_fitted=True)
    clf = MLPClassifier(**PARAMS, max_iter=4).set_callbacks(rec).fit(X, y)
    assert len(rec.fitted) == 4
    for k, snapshot in enumerate(rec.fitted, start=1):
        shorter = MLPClassifier(**PARAMS, max_iter=k).fit(X, y)
        # kept after the fit went on: its weights were copied, not shared with the training network
        np.testing.assert_array_equal(snapshot.predict_proba(X), shorter.predict_proba(X))
        assert snapshot.loss_curve_ == shorter.loss_curve_ and snapshot is not clf


# -- scikit-learn's callbacks ----------------------------------------------------------------------

def test_scoring_monitor_logs_each_epochs_score():
    X, y = _data()
    monitor = callback.ScoringMonitor(scoring=["accuracy", "neg_log_loss"])
    clf = MLPClassifier(**PARAMS, max_iter=4).set_callbacks(monitor).fit(X, y)
    log = monitor.get_logs()
    assert isinstance(log, callback.ScoringMonitorLog) and log.estimator_name == "MLPClassifier"
    rows = {row["task_id_path"]: row for row in log.data}
    assert set(rows) == {(0,), (0, 0), (0, 1), (0, 2), (0, 3)}
    for k in range(1, 5):  # epoch k's score: that of a model trained k epochs, scored here
        shorter = MLPClassifier(**PARAMS, max_iter=k).fit(X, y)
        row = rows[(0, k - 1)]
        assert row["task_name"] == "epoch" and row["parent_task_id_path"] == (0,)
        assert row["accuracy"] == accuracy_score(y, shorter.predict(X))
        assert row["neg_log_loss"] == pytest.approx(-log_loss(y, shorter.predict_proba(X)), rel=1e-12)
    assert rows[(0,)]["accuracy"] == clf.score(X, y) == rows[(0, 3)]["accuracy"]


def test_scoring_monitor_scores_with_the_fits_sample_weight():
    X, y = _data()
    w = np.where(y == 0, 3.0, 1.0)
    # scoring=None (the estimator's own score) fails in scikit-learn 1.9.1 for every estimator: its
    # monitor gets a float where it expects a dict of scores; a named scorer works
    monitor = callback.ScoringMonitor(scoring="accuracy")
    clf = MLPClassifier(**PARAMS, max_iter=3).set_callbacks(monitor).fit(X, y, sample_weight=w)
    final = next(row for row in monitor.get_logs().data if row["task_id_path"] == (0,))
    assert final["accuracy"] == clf.score(X, y, sample_weight=w) != clf.score(X, y)


def test_scoring_monitor_keeps_one_log_per_fit():
    X, y = _data()
    monitor = callback.ScoringMonitor(scoring="accuracy")
    clf = MLPClassifier(**PARAMS, max_iter=2).set_callbacks(monitor)
    clf.fit(X, y)
    clf.set_params(max_iter=3).fit(X, y)
    logs = monitor.get_logs(select="all")
    assert [len(log.data) for log in logs] == [3, 4]  # the fit and its epochs
    assert logs[0].run_id != logs[1].run_id and monitor.get_logs().run_id == logs[1].run_id


def test_callbacks_inside_a_pipeline_and_a_search():
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    X, y = _data()
    monitor = callback.ScoringMonitor(scoring="accuracy")
    pipe = make_pipeline(StandardScaler(), MLPClassifier(**PARAMS, max_iter=3).set_callbacks(monitor)).fit(X, y)
    log = monitor.get_logs()
    assert log.estimator_name == "Pipeline"  # the run is the outermost fit; the epochs hang below it
    epochs = [row for row in log.data if row["task_name"] == "epoch"]
    assert [row["task_id"] for row in epochs] == [0, 1, 2] and pipe[-1].n_iter_ == 3
    rec = Recorder()
    GridSearchCV(MLPClassifier(**PARAMS, max_iter=2).set_callbacks(rec), {"alpha": [1e-4, 1e-2]}, cv=2).fit(X, y)
    assert len(rec.epochs("end")) == 2 * 5  # 2 epochs in each of 4 candidate fits and the refit


def test_scoring_monitor_on_device_input():
    xps = pytest.importorskip("array_api_strict")
    X, y = _data()
    monitor = callback.ScoringMonitor(scoring="accuracy")
    clf = MLPClassifier(**PARAMS, max_iter=3).set_callbacks(monitor)  # device input trains on its device
    clf.fit(xps.asarray(X), xps.asarray(y))
    scores = [row["accuracy"] for row in monitor.get_logs().data if row["task_name"] == "epoch"]
    reference = [accuracy_score(y, MLPClassifier(**PARAMS, max_iter=k).fit(X, y).predict(X)) for k in (1, 2, 3)]
    assert scores == reference


def test_progress_bar_draws_the_fit(capsys):
    pytest.importorskip("rich")
    X, y = _data()
    clf = MLPClassifier(**PARAMS, max_iter=3).set_callbacks(callback.ProgressBar())
    clf.fit(X, y)
    fit_out = capsys.readouterr().out
    clf.partial_fit(X, y)
    partial_out = capsys.readouterr().out
    assert "MLPClassifier - fit" in fit_out and "MLPClassifier - partial_fit" in partial_out
    # a bar for the fit only (the epochs are its leaves), full when the fit ends
    assert "epoch" not in fit_out and "100%" in fit_out and "100%" in partial_out


# -- no host read per step ---------------------------------------------------------------------------

@pytest.mark.needs_backend("torch")
@pytest.mark.parametrize("make_callback", [LeanRecorder, lambda: callback.ScoringMonitor(scoring="accuracy")],
                         ids=["lean", "scoring-monitor"])
def test_callbacks_add_no_host_read_per_step(monkeypatch, make_callback):
    import torch

    reads: list[str] = []
    for name in ("item", "__float__", "__bool__", "__int__", "cpu", "numpy", "tolist"):
        original = getattr(torch.Tensor, name)

        def counting(self, *args, __name=name, __original=original, **kwargs):
            reads.append(__name)
            return __original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    X, y = _data(400)
    X_dev, y_dev = torch.asarray(X, dtype=torch.float32), torch.asarray(y)
    counts = {}
    for cb, batch in ((None, 10), (make_callback(), 10), (make_callback(), 100)):
        reads.clear()
        clf = MLPClassifier(**{**PARAMS, "batch_size": batch}, max_iter=3)
        if cb is not None:
            clf.set_callbacks(cb)
        clf.fit(X_dev, y_dev)
        counts[(cb is not None, batch)] = len(reads)
    # 40 steps an epoch at batch 10, 4 at batch 100: reads that do not follow the step count
    assert counts[(True, 10)] == counts[(True, 100)], counts
    if make_callback is LeanRecorder:
        assert counts[(True, 10)] == counts[(False, 10)], counts


# -- the training records are Python floats on every backend ------------------------------------------

def _convert(name: str):
    if name == "numpy":
        return lambda a: a
    if name == "array_api_strict":
        return pytest.importorskip("array_api_strict").asarray
    if name == "cupy":
        return pytest.importorskip("cupy").asarray
    torch = pytest.importorskip("torch")
    return (lambda a: torch.asarray(a, device="cuda")) if name == "torch-cuda" else torch.asarray


@pytest.mark.parametrize("early_stopping", [False, True], ids=["loss", "early-stopping"])
@pytest.mark.parametrize("library", ["numpy", "array_api_strict",
                                     pytest.param("torch", marks=pytest.mark.needs_backend("torch")),
                                     pytest.param("cupy", marks=[pytest.mark.gpu, pytest.mark.needs_backend("cuda")]),
                                     pytest.param("torch-cuda", marks=[pytest.mark.gpu,
                                                                       pytest.mark.needs_backend("torch:cuda")])])
def test_records_are_host_floats_equal_to_the_numpy_fit(library, early_stopping):
    convert = _convert(library)
    X, y = _data()
    params = {**PARAMS, "max_iter": 6, "early_stopping": early_stopping, "validation_fraction": 0.2,
              "dtype": "float64"}
    fitted = MLPClassifier(**params).fit(convert(X), convert(y))
    reference = MLPClassifier(**params).fit(X, y)
    assert fitted.n_iter_ == reference.n_iter_ == 6
    assert type(fitted.loss_curve_) is list and all(type(v) is float for v in fitted.loss_curve_)
    assert type(fitted.loss_) is float
    np.testing.assert_allclose(fitted.loss_curve_, reference.loss_curve_, rtol=1e-6)
    if early_stopping:
        assert fitted.best_loss_ is None
        assert type(fitted.validation_scores_) is list and all(type(v) is float for v in fitted.validation_scores_)
        assert type(fitted.best_validation_score_) is float
        np.testing.assert_allclose(fitted.validation_scores_, reference.validation_scores_, rtol=1e-6)
        assert fitted.best_validation_score_ == max(fitted.validation_scores_)
    else:
        assert fitted.validation_scores_ is None and fitted.best_validation_score_ is None
        assert type(fitted.best_loss_) is float and fitted.best_loss_ == min(fitted.loss_curve_)
