"""Trainer callbacks: the order of calls, stopping, the built-in ones (early stopping, checkpoint, progress
bar), ``extra_callbacks`` and ``request_interrupt`` from another thread."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from test_train import DATA, make_model

from xpmlp.callbacks import Callback, extra_callbacks
from xpmlp.errors import DivergenceError
from xpmlp.train import TrainConfig, Trainer, train

SPE = 19  # steps per epoch: 600 training samples, batch 32


class Recorder(Callback):
    """Writes every call into a shared list as (name, hook, step)."""

    def __init__(self, name: str, calls: list, stop_at: int | None = None) -> None:
        self.name, self.calls, self.stop_at = name, calls, stop_at

    def on_train_begin(self, trainer):
        self.calls.append((self.name, "begin", trainer.step))

    def on_losses(self, trainer, values):
        self.calls.append((self.name, "losses", trainer.step))
        assert len(trainer.history.iteration_loss) == trainer.step and len(values) >= 1

    def on_evaluation(self, trainer, record):
        assert record is trainer.history.eval[-1]
        self.calls.append((self.name, "evaluation", record["iteration"]))
        return self.stop_at is not None and len(trainer.history.eval) >= self.stop_at

    def on_train_end(self, trainer):
        self.calls.append((self.name, "end", trainer.history.stopped))


def fit(callbacks=(), on_checkpoint=None, **config):
    X, y, Xv, yv = DATA
    cfg = {"epochs": 3, "batch_size": 32, "lr": 0.05, "sync_every": 100, **config}
    trainer = Trainer(make_model(), TrainConfig(**cfg), log=None, progress="lines", callbacks=list(callbacks),
                      on_checkpoint=on_checkpoint)
    trainer.fit(X, y, Xv, yv)
    return trainer


def test_calls_come_in_order_each_callback_in_list_order_and_the_checkpoint_last():
    calls: list = []
    trainer = fit([Recorder("a", calls), Recorder("b", calls)],
                  on_checkpoint=lambda t: calls.append(("checkpoint", "evaluation", t.step)))
    assert trainer.history.stopped == "completed"
    hooks = [(who, hook) for who, hook, _ in calls]
    assert hooks[:2] == [("a", "begin"), ("b", "begin")] and hooks[-2:] == [("a", "end"), ("b", "end")]
    evaluations = [c for c in calls if c[1] == "evaluation"]
    assert evaluations == [(who, "evaluation", k * SPE) for k in (1, 2, 3) for who in ("a", "b", "checkpoint")]
    # the losses of each epoch come (one flush an epoch here) before its evaluation
    middle = [(who, hook, step) for who, hook, step in calls[2:-2] if who == "a"]
    assert middle == [("a", hook, k * SPE) for k in (1, 2, 3) for hook in ("losses", "evaluation")]
    assert calls[-1] == ("b", "end", "completed")


def test_a_callback_that_returns_true_stops_the_run_for_good():
    calls: list = []
    later: list = []
    trainer = fit([Recorder("stopper", calls, stop_at=2), Recorder("later", later)],
                  on_checkpoint=lambda t: later.append(("checkpoint", t.history.stopped)))
    assert trainer.step == 2 * SPE and len(trainer.history.eval) == 2
    assert trainer.history.stopped == f"stopped by Recorder at step {2 * SPE}"
    # every callback still sees the point where the stop was asked; the checkpoint records the reason
    assert ("later", "evaluation", 2 * SPE) in later and ("checkpoint", trainer.history.stopped) in later
    assert calls[-1] == ("stopper", "end", trainer.history.stopped)
    calls.clear()
    X, y, Xv, yv = DATA
    trainer.fit(X, y, Xv, yv)  # a stop asked by a callback is final: nothing more to do
    assert trainer.step == 2 * SPE and calls == []


def test_stop_requested_with_a_reason():
    class Enough(Callback):
        def on_evaluation(self, trainer, record):
            if record["val_acc"] > 0.5:
                trainer.history.stopped = f"good enough at step {trainer.step}"
                trainer.stop_requested = True

    trainer = fit([Enough()], epochs=5)
    assert trainer.history.stopped.startswith("good enough at step ") and trainer.step < 5 * SPE


def test_early_stopping_is_a_callback_before_the_others_and_restores_the_best_weights():
    calls: list = []
    trainer = fit([Recorder("after", calls)], epochs=30, early_stopping=1, lr=0.5)
    assert trainer.history.stopped.startswith("early stopping at step ")
    assert calls[-2] == ("after", "evaluation", trainer.step)  # it saw the point early stopping stopped at
    assert calls[-1][2].startswith("early stopping")
    best = trainer.best_state
    assert all((trainer.model.params[k] == v).all() for k, v in best.items())


def test_on_train_end_sees_a_divergence_and_the_error_goes_on():
    calls: list = []
    ends = []

    class End(Callback):
        def on_train_end(self, trainer):
            ends.append((trainer.history.stopped, type(trainer.error).__name__))

    with pytest.raises(DivergenceError), np.errstate(all="ignore"):
        fit([Recorder("r", calls), End()], lr=1e6, on_checkpoint=lambda t: calls.append(("checkpoint",)))
    assert ends and ends[0][0].startswith("diverged at step") and ends[0][1] == "DivergenceError"
    # the checkpoint came at the evaluation point before the divergence, never after it
    assert calls.count(("checkpoint",)) == sum(c[1:2] == ("evaluation",) for c in calls) == 1
    assert calls[-1] == ("r", "end", ends[0][0])


def test_train_function_and_extra_callbacks_block():
    X, y, Xv, yv = DATA
    calls: list = []
    train(make_model(), X, y, Xv, yv, epochs=1, batch_size=32, lr=0.05, log=None, callbacks=[Recorder("given", calls)])
    assert ("given", "evaluation", SPE) in calls
    calls.clear()
    with extra_callbacks(Recorder("ambient", calls)):
        trainer = Trainer(make_model(), TrainConfig(epochs=1, batch_size=32, lr=0.05), log=None,
                          callbacks=[Recorder("given", calls)])
    Trainer(make_model(), TrainConfig(epochs=1, batch_size=32, lr=0.05), log=None).fit(X, y)  # outside: none
    trainer.fit(X, y, Xv, yv)
    assert [who for who, hook, _ in calls if hook == "evaluation"] == ["given", "ambient"]


def test_request_interrupt_from_another_thread_stops_like_ctrl_c_and_checkpoints():
    X, y, Xv, yv = DATA
    checkpoints: list = []

    class InterruptFromThread(Callback):
        def on_losses(self, trainer, values):
            if trainer.step >= 25 and not trainer.interrupted:
                t = threading.Thread(target=trainer.request_interrupt, args=("SIGTERM",))
                t.start()
                t.join()

    trainer = Trainer(make_model(), TrainConfig(epochs=3, batch_size=32, lr=0.05, sync_every=1), log=None,
                      callbacks=[InterruptFromThread()], on_checkpoint=lambda t: checkpoints.append(t.history.stopped))
    trainer.fit(X, y, Xv, yv)
    assert trainer.interrupted and trainer.interrupted_by == "SIGTERM" and trainer.step == 25
    assert trainer.history.stopped == "interrupted at step 25"
    assert checkpoints == ["", "interrupted at step 25"]  # the epoch-1 point, then the clean stop
    early = Trainer(make_model(), TrainConfig(epochs=3, batch_size=32, lr=0.05), log=None)
    early.request_interrupt()  # before fit: the first step is the last
    early.fit(X, y)
    assert early.interrupted and early.step == 1


def test_the_progress_bar_writes_log_lines_above_it_and_gives_the_log_back(capsys):
    X, y, Xv, yv = DATA
    lines: list[str] = []
    trainer = Trainer(make_model(), TrainConfig(epochs=2, batch_size=32, lr=0.05), log=lines.append, progress="bar")
    trainer.fit(X, y, Xv, yv)
    assert lines == []  # during training the lines went through the bar, to the terminal
    out = capsys.readouterr()
    assert "epoch 2 / 2: loss" in out.out + out.err
    assert trainer.log == lines.append  # restored after fit
