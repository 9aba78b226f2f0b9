"""Tests for xpmlp.train (Trainer, TrainConfig, History, evaluate) and xpmlp.runs.train_run.

The data is a generated 4-class Gaussian-blob problem with 20 features (800 samples: 600
train, 200 validation), so every test runs in well under a second per backend. Expected
values (losses, accuracies, learning rates, step numbers) are computed here by hand or with
plain NumPy from the model's weights, never by the code under test.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import xpmlp.train as train_mod
from xpmlp import checkpoint as ckpt
from xpmlp import runs
from xpmlp.errors import DivergenceError, InputError
from xpmlp.model import MLP
from xpmlp.optim import SGD
from xpmlp.train import History, TrainConfig, Trainer, evaluate, train

N_TRAIN, N_VAL, D, K = 600, 200, 20, 4
LINE_RE = re.compile(r"^iteration \d+ / \d+: loss \d+\.\d{6}")


def blobs(seed: int = 0, scale: float = 0.9):
    """600 training and 200 validation samples of 4 overlapping Gaussian blobs in 20-D."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 1.0, (K, D)) * scale
    y = rng.integers(0, K, N_TRAIN + N_VAL)
    X = centers[y] + rng.normal(0.0, 1.0, (N_TRAIN + N_VAL, D))
    return X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:]


DATA = blobs()


def make_model(backend="cpu", dtype="float64", hidden=(16,), seed=0, activation="relu") -> MLP:
    return MLP([D, *hidden, K], activation, backend=backend, dtype=dtype, seed=seed)


# -- plain NumPy reference math --------------------------------------------------------

def np_logits(state: dict, X: np.ndarray) -> np.ndarray:
    """Forward pass of a ReLU MLP from its host weights (W1, b1, W2, b2, ...)."""
    n_layers = len([k for k in state if k.startswith("W")])
    h = np.asarray(X, dtype=np.float64)
    for i in range(1, n_layers + 1):
        h = h @ state[f"W{i}"].astype(np.float64) + state[f"b{i}"].astype(np.float64)
        if i < n_layers:
            h = np.maximum(h, 0.0)
    return h


def np_cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    z = logits - logits.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(y)), y].mean())


def np_accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == y).mean())


def states_equal(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)


class RecordingSGD(SGD):
    """Plain SGD that records the learning rate of every step it takes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lrs: list[float] = []

    def step(self, params, grads):
        self.lrs.append(float(self.lr))
        super().step(params, grads)


class CtrlCAt(SGD):
    """SGD (with momentum) that sends the process a real SIGINT right after its step number ``at``."""

    def __init__(self, at: int, lr: float, momentum: float = 0.9, times: int = 1):
        super().__init__(lr, momentum=momentum)
        self.at, self.times = at, times

    def step(self, params, grads):
        super().step(params, grads)
        if self.t == self.at:
            for _ in range(self.times):
                os.kill(os.getpid(), signal.SIGINT)


# -- TrainConfig -----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, words", [
    ({}, "exactly one of epochs or iterations"),
    ({"epochs": 2, "iterations": 10}, "exactly one of epochs or iterations"),
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"iterations": -3}, "iterations must be a positive integer"),
    ({"epochs": 1, "batch_size": 0}, "batch size"),
    ({"epochs": 1, "lr": -0.1}, "learning rate"),
    ({"epochs": 1, "lr": float("nan")}, "learning rate"),
    ({"epochs": 1, "reg": -1e-3}, "reg"),
    ({"epochs": 1, "early_stopping": 0}, "patience"),
    ({"epochs": 1, "early_stopping_metric": "train_acc"}, "val_acc"),
])
def test_config_validation_names_the_problem(kwargs, words) -> None:
    with pytest.raises(InputError, match=re.escape(words)):
        TrainConfig(**kwargs).validate()


def test_batch_larger_than_training_set_is_refused_by_fit() -> None:
    X, y, _, _ = DATA
    trainer = Trainer(make_model(), TrainConfig(epochs=1, batch_size=601), log=None)
    with pytest.raises(InputError, match=r"batch size 601 is larger than the training set \(600 samples\)"):
        trainer.fit(X, y)
    assert trainer.step == 0


def test_regime_property() -> None:
    assert TrainConfig(epochs=2).regime == "epochs"
    assert TrainConfig(iterations=2).regime == "iterations"


# -- reaching high accuracy on every backend ---------------------------------------------

@pytest.mark.parametrize("regime", [{"iterations": 120, "log_every": 40}, {"epochs": 3}], ids=["iterations", "epochs"])
def test_both_regimes_reach_high_validation_accuracy(backend, regime) -> None:
    X, y, Xv, yv = DATA
    model = make_model(backend, dtype="float32", hidden=(32,))
    before = np_accuracy(np_logits(model.state_dict(), Xv), yv)
    history = Trainer(model, TrainConfig(batch_size=32, optimizer="momentum", lr=0.05, **regime),
                      log=None).fit(X, y, Xv, yv)
    # checked independently of the trainer: from the final weights, in plain NumPy
    after = np_accuracy(np_logits(model.state_dict(), Xv), yv)
    assert before < 0.5
    assert after >= 0.9
    assert history.eval[-1]["val_acc"] == pytest.approx(after, abs=1e-12)
    assert all(p.dtype == model.backend.float_dtype("float32") for p in model.params.values())


def test_train_function_is_trainer_fit() -> None:
    X, y, Xv, yv = DATA
    lines: list[str] = []
    a, b = make_model(), make_model()
    h1 = train(a, X, y, Xv, yv, epochs=2, batch_size=50, lr=0.05, log=lines.append, progress="lines")
    h2 = Trainer(b, TrainConfig(epochs=2, batch_size=50, lr=0.05), log=None).fit(X, y, Xv, yv)
    assert h1.iteration_loss == h2.iteration_loss
    assert states_equal(a.state_dict(), b.state_dict())
    assert len(lines) == 2 and lines[0].startswith("epoch 1 / 2: loss ")


# -- iteration regime --------------------------------------------------------------------

def test_iteration_regime_log_lines_and_eval_points() -> None:
    X, y, Xv, yv = DATA
    lines: list[str] = []
    model = make_model()
    snapshots: dict[int, dict] = {}
    cfg = TrainConfig(iterations=130, log_every=50, batch_size=20, lr=0.05, sync_every=7)
    trainer = Trainer(model, cfg, log=lines.append, progress="lines",
                      on_checkpoint=lambda t: snapshots.setdefault(t.step, t.model.state_dict()))
    history = trainer.fit(X, y, Xv, yv)

    assert trainer.step == 130
    assert len(history.iteration_loss) == 130  # one entry per step
    assert all(math.isfinite(v) for v in history.iteration_loss)
    assert [e["iteration"] for e in history.eval] == [50, 100, 130]
    assert [e["epoch"] for e in history.eval] == [pytest.approx(s * 20 / 600) for s in (50, 100, 130)]
    assert history.regime == "iterations" and history.stopped == "completed"

    assert len(lines) == 3
    for line, point, step in zip(lines, history.eval, (50, 100, 130)):
        assert LINE_RE.match(line), line
        assert line.startswith(f"iteration {step} / 130: loss {history.iteration_loss[step - 1]:.6f}")
        assert point["train_loss"] == history.iteration_loss[step - 1]
        # the validation accuracy at each log point, checked from that point's weights
        want = np_accuracy(np_logits(snapshots[step], Xv), yv)
        assert point["val_acc"] == pytest.approx(want, abs=1e-12)
        assert f"val acc {want:.4f}" in line
        want_loss = np_cross_entropy(np_logits(snapshots[step], Xv), yv)
        assert point["val_loss"] == pytest.approx(want_loss, rel=1e-10)


def test_iteration_regime_exact_log_line_format() -> None:
    X, y, Xv, yv = DATA
    lines: list[str] = []
    Trainer(make_model(), TrainConfig(iterations=2000, log_every=100, batch_size=8, lr=0.01),
            log=lines.append, progress="lines").fit(X, y, Xv, yv)
    assert len(lines) == 20
    assert [int(line.split()[1]) for line in lines] == list(range(100, 2001, 100))
    for line in lines:
        assert re.match(r"^iteration \d+ / 2000: loss \d+\.\d{6}, train acc \d\.\d{4}, val acc \d\.\d{4}$", line), line


def test_iteration_regime_without_validation_data() -> None:
    X, y, _, _ = DATA
    lines: list[str] = []
    history = Trainer(make_model(), TrainConfig(iterations=20, log_every=10, batch_size=10, lr=0.05),
                      log=lines.append, progress="lines").fit(X, y)
    assert len(lines) == 2 and all(LINE_RE.match(line) and "val acc" not in line for line in lines)
    assert [e["val_acc"] for e in history.eval] == [None, None]
    assert history.best == {}


def test_iteration_regime_batches_are_seeded_and_drawn_with_replacement() -> None:
    cfg = TrainConfig(iterations=130, log_every=50, batch_size=20, seed=3)
    t = Trainer(make_model(), cfg, log=None)
    plans = [t._batch_plan(N_TRAIN, b) for b in range(3)]
    assert [first for _, first in plans] == [0, 50, 100]
    assert [len(p) for p, _ in plans] == [50 * 20, 50 * 20, 30 * 20]  # the last window is short
    for p, _ in plans:
        assert p.min() >= 0 and p.max() < N_TRAIN
    assert len(np.unique(plans[0][0])) < len(plans[0][0])  # with replacement: 1000 draws of 600
    assert not np.array_equal(plans[0][0][:1000], plans[1][0][:1000])
    again = Trainer(make_model(), TrainConfig(iterations=130, log_every=50, batch_size=20, seed=3), log=None)
    assert np.array_equal(again._batch_plan(N_TRAIN, 1)[0], plans[1][0])
    other = Trainer(make_model(), TrainConfig(iterations=130, log_every=50, batch_size=20, seed=4), log=None)
    assert not np.array_equal(other._batch_plan(N_TRAIN, 1)[0], plans[1][0])


# -- epoch regime --------------------------------------------------------------------------

def test_epoch_regime_one_eval_per_epoch() -> None:
    X, y, Xv, yv = DATA
    lines: list[str] = []
    snapshots: dict[int, dict] = {}
    model = make_model()
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.05, train_eval_size=1000, sync_every=5)
    trainer = Trainer(model, cfg, log=lines.append, progress="lines",
                      on_checkpoint=lambda t: snapshots.setdefault(t.step, t.model.state_dict()))
    history = trainer.fit(X, y, Xv, yv)

    spe = 19  # ceil(600 / 32): the last batch of an epoch holds 600 - 18 * 32 = 24 samples
    assert trainer.step == 3 * spe
    assert len(history.iteration_loss) == 3 * spe
    assert [e["epoch"] for e in history.eval] == [1, 2, 3]
    assert [e["iteration"] for e in history.eval] == [spe, 2 * spe, 3 * spe]
    assert history.regime == "epochs" and history.stopped == "completed"
    assert len(lines) == 3
    for i, (line, point) in enumerate(zip(lines, history.eval), start=1):
        assert line.startswith(f"epoch {i} / 3: loss ")
        losses = history.iteration_loss[(i - 1) * spe:i * spe]
        assert point["train_loss"] == pytest.approx(sum(losses) / spe, rel=1e-12)
        w = snapshots[i * spe]
        # train_eval_size >= 600: the training accuracy is over the whole training set
        assert point["train_acc"] == pytest.approx(np_accuracy(np_logits(w, X), y), abs=1e-12)
        assert point["val_acc"] == pytest.approx(np_accuracy(np_logits(w, Xv), yv), abs=1e-12)
        assert point["val_loss"] == pytest.approx(np_cross_entropy(np_logits(w, Xv), yv), rel=1e-10)
        assert f"val acc {point['val_acc']:.4f}" in line and f"val loss {point['val_loss']:.4f}" in line
        assert point["time"] >= 0
    assert history.iteration_loss[-1] < history.iteration_loss[0]


def _row_index(X: np.ndarray):
    table = {X[i].tobytes(): i for i in range(len(X))}
    return lambda rows: [table[r.tobytes()] for r in rows]


def test_epoch_regime_visits_every_sample_once_per_epoch_in_a_fresh_order() -> None:
    X, y, _, _ = DATA
    model = make_model()
    seen: list[np.ndarray] = []
    real_step = model.fused_step  # plain SGD trains through the fused step

    def spy(xb, yb, reg, optimizer):
        seen.append(model.backend.to_numpy(xb).copy())
        return real_step(xb, yb, reg, optimizer)

    model.fused_step = spy
    Trainer(model, TrainConfig(epochs=2, batch_size=64, lr=0.01), log=None).fit(X, y)
    lookup = _row_index(X)
    spe = 10  # ceil(600 / 64)
    assert len(seen) == 2 * spe
    assert [len(b) for b in seen[:spe]] == [64] * 9 + [24]
    order0 = [i for b in seen[:spe] for i in lookup(b)]
    order1 = [i for b in seen[spe:] for i in lookup(b)]
    assert sorted(order0) == list(range(600)) and sorted(order1) == list(range(600))
    assert order0 != order1
    assert order0 != list(range(600))  # shuffled, not in file order


def test_epoch_batch_plan_is_fresh_each_epoch_and_deterministic_for_a_seed() -> None:
    t = Trainer(make_model(), TrainConfig(epochs=3, batch_size=32, seed=5), log=None)
    p0, f0 = t._batch_plan(N_TRAIN, 0)
    p1, f1 = t._batch_plan(N_TRAIN, 1)
    assert (f0, f1) == (0, 19)
    assert sorted(p0.tolist()) == list(range(600)) == sorted(p1.tolist())
    assert not np.array_equal(p0, p1)
    assert not np.array_equal(p0[:32], p1[:32])  # different first batches
    same = Trainer(make_model(), TrainConfig(epochs=3, batch_size=32, seed=5), log=None)
    assert np.array_equal(same._batch_plan(N_TRAIN, 1)[0], p1)
    other = Trainer(make_model(), TrainConfig(epochs=3, batch_size=32, seed=6), log=None)
    assert not np.array_equal(other._batch_plan(N_TRAIN, 1)[0], p1)


def test_same_seed_same_run_different_seed_different_run() -> None:
    X, y, Xv, yv = DATA

    def run(seed):
        m = make_model()
        h = Trainer(m, TrainConfig(epochs=2, batch_size=32, lr=0.05, seed=seed), log=None).fit(X, y, Xv, yv)
        return m.state_dict(), h.iteration_loss

    w1, l1 = run(1)
    w2, l2 = run(1)
    w3, l3 = run(2)
    assert states_equal(w1, w2) and l1 == l2
    assert not states_equal(w1, w3) and l1 != l3


# -- learning-rate schedules ----------------------------------------------------------------

def test_exp_schedule_in_epoch_regime() -> None:
    X, y, Xv, yv = DATA
    base = 0.2
    opt = RecordingSGD(base)
    cfg = TrainConfig(epochs=4, batch_size=60, lr=base, lr_schedule="exp:0.5", optimizer="sgd")
    history = Trainer(make_model(), cfg, log=None, optimizer=opt).fit(X, y, Xv, yv)
    # the recorded lr at each epoch's evaluation: base * 0.5 ** floor(epoch)
    assert [e["epoch"] for e in history.eval] == [1, 2, 3, 4]
    assert [e["lr"] for e in history.eval] == [pytest.approx(base * 0.5 ** e) for e in (1, 2, 3, 4)]
    # the lr actually applied: 10 steps per epoch, epoch e (from 0) at base * 0.5 ** e
    assert opt.lrs == [pytest.approx(base * 0.5 ** (s // 10)) for s in range(40)]


def test_exp_schedule_in_iteration_regime_follows_fractional_epochs() -> None:
    X, y, _, _ = DATA
    opt = RecordingSGD(0.1)
    cfg = TrainConfig(iterations=45, log_every=15, batch_size=40, lr=0.1, lr_schedule="exp:0.5")
    Trainer(make_model(), cfg, log=None, optimizer=opt).fit(X, y)
    # step s (from 0) starts at epoch s * 40 / 600: 15 steps an epoch
    assert opt.lrs == [pytest.approx(0.1 * 0.5 ** math.floor(s * 40 / 600)) for s in range(45)]


def test_step_schedule_applied() -> None:
    X, y, _, _ = DATA
    opt = RecordingSGD(0.3)
    cfg = TrainConfig(epochs=4, batch_size=100, lr=0.3, lr_schedule="step:2:0.1")
    Trainer(make_model(), cfg, log=None, optimizer=opt).fit(X, y)
    assert opt.lrs == [pytest.approx(0.3 * 0.1 ** (s // 12)) for s in range(24)]


def test_bad_schedule_is_refused() -> None:
    X, y, _, _ = DATA
    with pytest.raises(InputError, match="schedule"):
        Trainer(make_model(), TrainConfig(epochs=1, lr_schedule="exp:2"), log=None).fit(X, y)


# -- L2 penalty in the logged loss --------------------------------------------------------------

@pytest.mark.parametrize("reg", [0.0, 0.05])
def test_first_logged_loss_includes_l2_penalty(reg: float) -> None:
    X, y, Xv, yv = DATA
    model = make_model(hidden=(16, 12))
    w0 = model.state_dict()
    # one full batch: the first step's loss is over all 600 samples, whatever their order
    cfg = TrainConfig(epochs=2, batch_size=N_TRAIN, lr=0.05, reg=reg)
    history = Trainer(model, cfg, log=None).fit(X, y, Xv, yv)
    ce = np_cross_entropy(np_logits(w0, X), y)
    penalty = 0.5 * reg * sum(float((w0[k] ** 2).sum()) for k in ("W1", "W2", "W3"))
    assert history.iteration_loss[0] == pytest.approx(ce + penalty, rel=1e-12)
    if reg:
        assert penalty > 0.1  # the check tells a penalised loss from a plain one
    # the validation loss at the evaluation is plain cross-entropy (no penalty)
    assert history.eval[0]["val_loss"] == pytest.approx(
        np_cross_entropy(np_logits(model_state_after_first(X, y, reg), Xv), yv), rel=1e-10)


def model_state_after_first(X, y, reg) -> dict:
    """Weights after one full-batch plain SGD step, computed in NumPy by hand."""
    w = make_model(hidden=(16, 12)).state_dict()
    h1 = np.maximum(X @ w["W1"] + w["b1"], 0)
    h2 = np.maximum(h1 @ w["W2"] + w["b2"], 0)
    z = h2 @ w["W3"] + w["b3"]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    dz = p / len(y)
    g = {"W3": h2.T @ dz + reg * w["W3"], "b3": dz.sum(0)}
    dh2 = (dz @ w["W3"].T) * (h2 > 0)
    g.update({"W2": h1.T @ dh2 + reg * w["W2"], "b2": dh2.sum(0)})
    dh1 = (dh2 @ w["W2"].T) * (h1 > 0)
    g.update({"W1": X.T @ dh1 + reg * w["W1"], "b1": dh1.sum(0)})
    return {k: w[k] - 0.05 * g[k] for k in w}


# -- evaluate -------------------------------------------------------------------------------------

def test_evaluate_matches_numpy_in_batches(backend) -> None:
    _, _, Xv, yv = DATA
    model = make_model(backend)
    Xd, yd = model.check_x(Xv), model.check_y(yv, len(yv))
    want_loss = np_cross_entropy(np_logits(model.state_dict(), Xv), yv)
    want_acc = np_accuracy(np_logits(model.state_dict(), Xv), yv)
    for bs in (7, 200, 8192):
        loss, acc = evaluate(model, Xd, yd, batch_size=bs)
        assert isinstance(loss, float) and isinstance(acc, float)
        assert loss == pytest.approx(want_loss, rel=1e-10)
        assert acc == pytest.approx(want_acc, abs=1e-12)


def test_evaluate_on_empty_set_is_nan() -> None:
    model = make_model()
    loss, acc = evaluate(model, model.check_x(np.zeros((0, D))), model.check_y(np.zeros(0, dtype=np.int64), 0))
    assert math.isnan(loss) and math.isnan(acc)


# -- History ------------------------------------------------------------------------------------

def test_history_contents_and_json_round_trip() -> None:
    X, y, Xv, yv = DATA
    history = Trainer(make_model(), TrainConfig(epochs=3, batch_size=50, lr=0.05), log=None).fit(X, y, Xv, yv)
    d = history.to_dict()
    assert set(d) == {"regime", "iteration_loss", "eval", "best", "stopped"}
    assert len(d["iteration_loss"]) == 36
    keys = {"iteration", "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "time"}
    assert all(set(e) == keys for e in d["eval"])
    best = max(d["eval"], key=lambda e: e["val_acc"])  # first maximum: ties do not replace the best
    assert d["best"] == best
    text = json.dumps(d)
    back = History.from_dict(json.loads(text))
    assert back == history
    assert back.to_dict() == d
    assert json.loads(json.dumps(back.to_dict())) == d


def test_history_from_dict_ignores_unknown_keys() -> None:
    h = History.from_dict({"regime": "iterations", "iteration_loss": [1.0, 0.5], "eval": [], "best": {},
                           "stopped": "completed", "extra": 1})
    assert h.regime == "iterations" and h.iteration_loss == [1.0, 0.5] and h.stopped == "completed"


# -- early stopping ----------------------------------------------------------------------------

def _scripted_evaluate(monkeypatch, val_values: list[tuple[float, float]]) -> None:
    """Replace xpmlp.train.evaluate: the real one for the training subset, a script for validation."""
    real = train_mod.evaluate
    script = iter(val_values)

    def fake(model, X, y, batch_size=8192):
        if X.shape[0] == N_VAL:
            return next(script)
        return real(model, X, y, batch_size)

    monkeypatch.setattr(train_mod, "evaluate", fake)


def _early_stopping_run(monkeypatch, val_values, **config):
    X, y, Xv, yv = DATA
    _scripted_evaluate(monkeypatch, val_values)
    snapshots: dict[int, dict] = {}
    lines: list[str] = []
    model = make_model()
    cfg = TrainConfig(epochs=10, batch_size=32, lr=0.05, train_eval_size=100, **config)
    trainer = Trainer(model, cfg, log=lines.append, progress="lines",
                      on_checkpoint=lambda t: snapshots.__setitem__(t.step, t.model.state_dict()))
    history = trainer.fit(X, y, Xv, yv)
    return trainer, history, snapshots, lines


def test_early_stopping_on_val_acc_restores_best_weights(monkeypatch) -> None:
    values = [(1.0, 0.50), (0.9, 0.70), (0.95, 0.60), (0.8, 0.65), (0.7, 0.55), (0.6, 0.99), (0.5, 0.99)]
    trainer, history, snapshots, lines = _early_stopping_run(monkeypatch, values, early_stopping=3)
    spe = 19
    assert trainer.step == 5 * spe  # stopped after the 3rd evaluation without improvement
    assert len(history.eval) == 5
    assert [e["val_acc"] for e in history.eval] == [0.50, 0.70, 0.60, 0.65, 0.55]
    assert history.best["iteration"] == 2 * spe and history.best["val_acc"] == 0.70
    assert history.stopped.startswith(f"early stopping at step {5 * spe}")
    assert "val_acc" in history.stopped and "3 evaluations" in history.stopped
    assert f"best 0.7000 at step {2 * spe}" in history.stopped
    assert lines[-1] == history.stopped
    assert sorted(snapshots) == [spe * i for i in range(1, 6)]
    final = trainer.model.state_dict()
    assert states_equal(final, snapshots[2 * spe])
    assert not states_equal(final, snapshots[5 * spe])


def test_early_stopping_on_val_loss_with_min_delta(monkeypatch) -> None:
    # 0.79 improves on 0.8 by less than min_delta: not an improvement
    values = [(1.0, 0.1), (0.8, 0.1), (0.85, 0.1), (0.79, 0.1), (0.1, 0.1)]
    trainer, history, snapshots, _ = _early_stopping_run(
        monkeypatch, values, early_stopping=2, early_stopping_metric="val_loss", min_delta=0.05)
    spe = 19
    assert trainer.step == 4 * spe
    assert history.best["iteration"] == 2 * spe and history.best["val_loss"] == 0.8
    assert "val_loss" in history.stopped and f"step {2 * spe}" in history.stopped
    assert states_equal(trainer.model.state_dict(), snapshots[2 * spe])


def test_early_stopping_without_restore_keeps_last_weights(monkeypatch) -> None:
    values = [(1.0, 0.9), (1.0, 0.5), (1.0, 0.5)]
    trainer, history, snapshots, _ = _early_stopping_run(monkeypatch, values, early_stopping=2, restore_best=False)
    assert trainer.step == 3 * 19
    assert history.best["iteration"] == 19
    assert states_equal(trainer.model.state_dict(), snapshots[3 * 19])
    assert not states_equal(trainer.model.state_dict(), snapshots[19])


def test_without_early_stopping_best_is_tracked_but_training_runs_on(monkeypatch) -> None:
    values = [(1.0, 0.9)] + [(1.0, 0.5)] * 9
    trainer, history, snapshots, _ = _early_stopping_run(monkeypatch, values)
    assert trainer.step == 10 * 19 and history.stopped == "completed"
    assert history.best["iteration"] == 19
    assert states_equal(trainer.model.state_dict(), snapshots[10 * 19])


# -- divergence --------------------------------------------------------------------------------

def test_huge_learning_rate_raises_divergence_error(backend) -> None:
    X, y, Xv, yv = DATA
    model = make_model(backend, dtype="float32")
    losses: list[float] = []
    real_step = model.fused_step

    def spy(*args, **kwargs):
        loss = real_step(*args, **kwargs)
        losses.append(float(loss))
        return loss

    model.fused_step = spy
    trainer = Trainer(model, TrainConfig(iterations=100, log_every=50, batch_size=32, lr=1e6, sync_every=3),
                      log=None)
    handler_before = signal.getsignal(signal.SIGINT)
    with np.errstate(all="ignore"), pytest.raises(DivergenceError) as info:
        trainer.fit(X, y, Xv, yv)
    bad = next(i for i, v in enumerate(losses) if not math.isfinite(v)) + 1  # first bad step, from 1
    assert bad < 50  # the error came before the first evaluation
    msg = str(info.value)
    assert f"at step {bad} " in msg
    assert "learning rate 1e+06" in msg
    assert "lower --lr" in msg
    assert trainer.history.stopped == f"diverged at step {bad}"
    assert len(trainer.history.iteration_loss) == bad
    assert not math.isfinite(trainer.history.iteration_loss[-1])
    assert all(math.isfinite(v) for v in trainer.history.iteration_loss[:-1])
    assert signal.getsignal(signal.SIGINT) is handler_before  # the Ctrl-C handler was put back


# -- Ctrl-C and resume -----------------------------------------------------------------------

def _save_trainer(path: Path, t: Trainer) -> None:
    ckpt.save(path, runs.trainer_state(t))


def _resume(path: Path, backend, cfg: TrainConfig, X, y, Xv, yv, hidden=(16,)) -> Trainer:
    tree = ckpt.load(path)
    model = make_model(backend, hidden=hidden, seed=123)  # other initial weights: all come from the file
    t = Trainer(model, cfg, log=None)
    runs.restore_trainer(t, tree)
    t.fit(X, y, Xv, yv)
    return t


def _strip_time(history: History) -> dict:
    d = history.to_dict()
    for e in d["eval"]:
        e.pop("time")
    d["best"].pop("time", None)
    return d


def _assert_same_run(a: Trainer, b: Trainer, exact: bool) -> None:
    assert a.step == b.step
    wa, wb = a.model.state_dict(), b.model.state_dict()
    assert set(wa) == set(wb)
    for k in wa:
        if exact:
            assert np.array_equal(wa[k], wb[k]), k
        else:
            np.testing.assert_allclose(wa[k], wb[k], rtol=0, atol=1e-10, err_msg=k)
    ha, hb = _strip_time(a.history), _strip_time(b.history)
    ha.pop("stopped")
    hb.pop("stopped")
    if exact:
        assert ha == hb
    else:
        np.testing.assert_allclose(ha["iteration_loss"], hb["iteration_loss"], rtol=1e-10, atol=1e-12)
        assert [e["iteration"] for e in ha["eval"]] == [e["iteration"] for e in hb["eval"]]


RESUME_CASES = [
    # iteration regime interrupted mid-window (windows of 10 steps), epoch regime mid-epoch (19 steps an epoch)
    pytest.param({"iterations": 40, "log_every": 10}, 17, id="iterations-mid-window"),
    pytest.param({"epochs": 3}, 25, id="epochs-mid-epoch"),
    # Ctrl-C on the last step of a window / an epoch: its evaluation must still happen
    pytest.param({"iterations": 40, "log_every": 10}, 20, id="iterations-window-end"),
    pytest.param({"epochs": 3}, 19, id="epochs-epoch-end"),
]


@pytest.mark.parametrize("regime, k", RESUME_CASES)
def test_resume_after_ctrl_c_equals_uninterrupted_run(backend, tmp_path, regime, k) -> None:
    X, y, Xv, yv = DATA
    base = dict(batch_size=32, optimizer="momentum", lr=0.05, momentum=0.9, reg=1e-3, sync_every=4,
                early_stopping=50, **regime)

    full = Trainer(make_model(backend), TrainConfig(**base), log=None)
    full.fit(X, y, Xv, yv)

    path = tmp_path / "ckpt.npz"
    part = Trainer(make_model(backend), TrainConfig(**base), log=None,
                   optimizer=CtrlCAt(k, 0.05, momentum=0.9), on_checkpoint=lambda t: _save_trainer(path, t))
    part.fit(X, y, Xv, yv)
    assert part.step == k and part.interrupted
    assert part.history.stopped == f"interrupted at step {k}"
    assert full.step > k

    resumed = _resume(path, backend, TrainConfig(**base), X, y, Xv, yv)
    _assert_same_run(resumed, full, exact=backend.name == "numpy")


def test_resumed_run_that_completes_is_recorded_as_completed(tmp_path) -> None:
    X, y, Xv, yv = DATA
    cfg = dict(epochs=2, batch_size=32, optimizer="momentum", lr=0.05)
    path = tmp_path / "ckpt.npz"
    part = Trainer(make_model(), TrainConfig(**cfg), log=None, optimizer=CtrlCAt(10, 0.05),
                   on_checkpoint=lambda t: _save_trainer(path, t))
    part.fit(X, y, Xv, yv)
    assert part.history.stopped == "interrupted at step 10"
    resumed = _resume(path, "cpu", TrainConfig(**cfg), X, y, Xv, yv)
    assert resumed.step == 38 and not resumed.interrupted
    # the run went to its end: its history must not still say it was interrupted at step 10
    assert resumed.history.stopped == "completed"


def test_ctrl_c_stops_cleanly_after_the_step(tmp_path) -> None:
    X, y, Xv, yv = DATA
    calls: list[tuple[int, str]] = []
    handler_before = signal.getsignal(signal.SIGINT)
    model = make_model()
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.05, optimizer="momentum", sync_every=10)
    trainer = Trainer(model, cfg, log=None, optimizer=CtrlCAt(25, 0.05),
                      on_checkpoint=lambda t: calls.append((t.step, t.history.stopped)))
    history = trainer.fit(X, y, Xv, yv)
    assert trainer.step == 25
    assert trainer.interrupted
    assert len(history.iteration_loss) == 25  # the losses still on the device were read
    assert "interrupted" in history.stopped and "25" in history.stopped
    assert [e["iteration"] for e in history.eval] == [19]  # no evaluation at the interrupt
    # called at the epoch-1 evaluation, then once at the clean stop
    assert calls == [(19, ""), (25, "interrupted at step 25")]
    assert signal.getsignal(signal.SIGINT) is handler_before


def test_second_ctrl_c_aborts_at_once() -> None:
    X, y, _, _ = DATA
    handler_before = signal.getsignal(signal.SIGINT)
    trainer = Trainer(make_model(), TrainConfig(epochs=3, batch_size=32, lr=0.05, optimizer="momentum"),
                      log=None, optimizer=CtrlCAt(5, 0.05, times=2))
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(X, y)
    assert trainer.step == 4  # the abort came inside step 5, before it was counted
    assert signal.getsignal(signal.SIGINT) is handler_before


def test_fit_on_finished_trainer_says_nothing_to_do() -> None:
    X, y, _, _ = DATA
    lines: list[str] = []
    model = make_model()
    trainer = Trainer(model, TrainConfig(iterations=20, log_every=10, batch_size=10, lr=0.05), log=lines.append,
                      progress="lines")
    trainer.fit(X, y)
    before = model.state_dict()
    lines.clear()
    trainer.fit(X, y)
    assert trainer.step == 20
    assert len(lines) == 1 and "nothing to do" in lines[0] and "20 of 20" in lines[0]
    assert states_equal(model.state_dict(), before)


# -- train_run: the run folder --------------------------------------------------------------------

class _IdentityPreprocessor:
    def state_dict(self) -> dict:
        return {"kind": "identity"}


def fake_prepared() -> SimpleNamespace:
    X, y, Xv, yv = DATA
    Xt, yt = blobs(seed=0)[2], blobs(seed=0)[3]
    return SimpleNamespace(x_train=X, y_train=y, x_val=Xv, y_val=yv, x_test=Xt, y_test=yt,
                           preprocessor=_IdentityPreprocessor(), classes=["a", "b", "c", "d"], image_shape=(20,),
                           source="generated blobs", config={"name": "blobs"})


def run_cfg(**kw):
    base = dict(dataset="blobs", hidden=[16], batch_size=32, lr=0.05, optimizer="momentum", device="cpu",
                dtype="float64", train_eval_size=200)
    base.update(kw)
    return runs.make_config(**base)


def test_train_run_writes_the_run_folder(tmp_path) -> None:
    out = tmp_path / "run"
    lines: list[str] = []
    metrics = runs.train_run(run_cfg(epochs=2), out, log=lines.append, progress="lines", prepared=fake_prepared())
    for name in ("config.json", "history.json", "metrics.json", "checkpoint.npz", "loss.png", "accuracy.png"):
        assert (out / name).is_file(), name
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    history = json.loads((out / "history.json").read_text())
    assert len(history["iteration_loss"]) == 2 * 19 and len(history["eval"]) == 2
    # epoch regime: the final loss is the last epoch's mean minibatch loss
    assert metrics["final_loss"] == pytest.approx(sum(history["iteration_loss"][-19:]) / 19, rel=1e-12)
    assert metrics["final_val_acc"] == history["eval"][-1]["val_acc"]
    assert metrics["steps"] == 38 and metrics["stopped"] == "completed"
    tree = ckpt.load(out / "checkpoint.npz")
    assert tree["trainer"]["step"] == 38
    Xt, yt = fake_prepared().x_test, fake_prepared().y_test
    assert metrics["test_acc"] == pytest.approx(np_accuracy(np_logits(tree["model"], Xt), yt), abs=1e-12)
    assert metrics["test_loss"] == pytest.approx(np_cross_entropy(np_logits(tree["model"], Xt), yt), rel=1e-10)
    config = json.loads((out / "config.json").read_text())
    assert config["sizes"] == [20, 16, 4] and config["backend"] == "cpu" and config["epochs"] == 2
    assert any(line.startswith("test accuracy") for line in lines)


def test_train_run_divergence_keeps_last_good_checkpoint(tmp_path, monkeypatch) -> None:
    """A run that blows up at step 13 keeps the checkpoint of its evaluation at step 10."""

    class PoisonAt(SGD):
        def step(self, params, grads):
            super().step(params, grads)
            if self.t == 12:  # the weights go bad after step 12: the loss of step 13 is NaN
                for p in params.values():
                    p *= float("nan")

    monkeypatch.setattr(train_mod, "make_optimizer", lambda name, lr, **kw: PoisonAt(lr))
    out = tmp_path / "run"
    with np.errstate(all="ignore"), pytest.raises(DivergenceError, match="step 13"):
        runs.train_run(run_cfg(iterations=40, log_every=5, optimizer="sgd"), out, log=None,
                       prepared=fake_prepared())
    tree = ckpt.load(out / "checkpoint.npz")
    assert tree["trainer"]["step"] == 10
    assert all(np.isfinite(v).all() for v in tree["model"].values())
    assert tree["trainer"]["history"]["stopped"] == ""
    history = json.loads((out / "history.json").read_text())
    assert history["stopped"] == "diverged at step 13"
    model, _ = runs.load_model(out / "checkpoint.npz", "cpu")
    assert np.isfinite(model.backend.to_numpy(model.forward(DATA[2]))).all()


def test_train_run_resume_after_interrupt_equals_uninterrupted(tmp_path, monkeypatch) -> None:
    prepared = fake_prepared()
    full = runs.train_run(run_cfg(epochs=3), tmp_path / "full", log=None, prepared=prepared)

    with monkeypatch.context() as m:
        m.setattr(train_mod, "make_optimizer", lambda name, lr, momentum=0.9, **kw: CtrlCAt(30, lr, momentum))
        part = runs.train_run(run_cfg(epochs=3), tmp_path / "part", log=None, prepared=prepared)
    assert part["steps"] == 30 and "interrupted" in part["stopped"]
    assert ckpt.load(tmp_path / "part" / "checkpoint.npz")["trainer"]["step"] == 30

    lines: list[str] = []
    resumed = runs.train_run({"device": "cpu"}, tmp_path / "part", resume=tmp_path / "part" / "checkpoint.npz",
                             log=lines.append, progress="lines", prepared=prepared)
    assert any("resuming" in line and "step 30" in line for line in lines)
    assert resumed["steps"] == full["steps"] == 57
    a = ckpt.load(tmp_path / "full" / "checkpoint.npz")
    b = ckpt.load(tmp_path / "part" / "checkpoint.npz")
    assert states_equal(a["model"], b["model"])
    assert a["trainer"]["history"]["iteration_loss"] == b["trainer"]["history"]["iteration_loss"]
    assert resumed["test_acc"] == full["test_acc"] and resumed["final_val_acc"] == full["final_val_acc"]


def test_train_run_resumed_to_the_end_reports_completed(tmp_path, monkeypatch) -> None:
    prepared = fake_prepared()
    out = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(train_mod, "make_optimizer", lambda name, lr, momentum=0.9, **kw: CtrlCAt(10, lr, momentum))
        part = runs.train_run(run_cfg(epochs=1), out, log=None, prepared=prepared)
    assert part["stopped"] == "interrupted at step 10"
    resumed = runs.train_run({"device": "cpu"}, out, resume=out / "checkpoint.npz", log=None, prepared=prepared)
    assert resumed["steps"] == 19
    # the resumed run went to its end: metrics.json and history.json must not say "interrupted at step 10"
    assert resumed["stopped"] == "completed"
    assert json.loads((out / "history.json").read_text())["stopped"] == "completed"


def test_train_run_resume_of_a_finished_run_does_nothing(tmp_path) -> None:
    prepared = fake_prepared()
    out = tmp_path / "run"
    runs.train_run(run_cfg(iterations=30, log_every=10), out, log=None, prepared=prepared)
    before = ckpt.load(out / "checkpoint.npz")
    lines: list[str] = []
    metrics = runs.train_run({"device": "cpu"}, out, resume=out / "checkpoint.npz", log=lines.append,
                             progress="lines", prepared=prepared)
    assert any("nothing to do" in line for line in lines)
    after = ckpt.load(out / "checkpoint.npz")
    assert after["trainer"]["step"] == 30 and metrics["steps"] == 30
    assert states_equal(before["model"], after["model"])


def test_train_run_resume_of_an_early_stopped_run_does_nothing(tmp_path, monkeypatch) -> None:
    """An early-stopped run is finished: resuming it must not train it further."""
    prepared = fake_prepared()
    out = tmp_path / "run"
    _scripted_evaluate(monkeypatch, [(1.0, 0.9), (1.0, 0.5), (1.0, 0.5)] + [(1.0, 0.95)] * 20)
    first = runs.train_run(run_cfg(epochs=10, early_stopping=2, train_eval_size=100), out, log=None,
                           prepared=prepared)
    assert first["steps"] == 3 * 19 and first["stopped"].startswith("early stopping")
    before = ckpt.load(out / "checkpoint.npz")
    assert states_equal(before["model"], before["best"])  # the best weights were restored

    metrics = runs.train_run({"device": "cpu"}, out, resume=out / "checkpoint.npz", log=None, prepared=prepared)
    after = ckpt.load(out / "checkpoint.npz")
    assert after["trainer"]["step"] == 3 * 19
    assert metrics["steps"] == 3 * 19
    assert states_equal(before["model"], after["model"])
    assert metrics["stopped"].startswith("early stopping")


def test_early_stopping_without_validation_data_is_an_error() -> None:
    X, y, _, _ = DATA
    trainer = Trainer(make_model(), TrainConfig(epochs=2, batch_size=32, early_stopping=2), log=None)
    with pytest.raises(InputError, match="--val-size"):
        trainer.fit(X, y)


def test_resume_keeps_the_checkpoint_device_unless_one_is_given(tmp_path) -> None:
    out = tmp_path / "run"
    runs.train_run(run_cfg(epochs=1, device="strict"), out, log=None, prepared=fake_prepared())
    lines: list[str] = []
    runs.train_run({"device": None}, out, resume=out / "checkpoint.npz", log=lines.append,
                   prepared=fake_prepared())
    assert json.loads((out / "metrics.json").read_text())["backend"] == "strict"
