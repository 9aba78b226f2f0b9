"""Trainer callbacks: what happens around the loop without being the loop.

The contract is the docstring of :class:`Callback`. The trainer builds the built-in ones from
its arguments (early stopping from the config, the progress bar from ``progress``, the
checkpoint from ``on_checkpoint``); a study adds its own (an Optuna pruner, a stop watcher).
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

#: ``xpmlp.train.Trainer`` (not imported here: train imports this module).
Trainer = Any


class Callback:
    """Hooks into ``Trainer.fit``; every method is optional (the base class does nothing).

    Calls, for one ``fit`` that has training to do (a fit with nothing left to do calls none):

    1. ``on_train_begin(trainer)``: once, after the inputs are checked and before the first step.
    2. ``on_losses(trainer, values)``: after each flush of the per-step losses (a list of host
       floats, one per step, already appended to ``trainer.history.iteration_loss``).
    3. ``on_evaluation(trainer, record) -> bool | None``: at every evaluation point (the end of
       an epoch or of a log window), with ``record`` the dict just appended to
       ``trainer.history.eval`` (iteration, epoch, train_loss, train_acc, val_loss, val_acc, lr,
       time). Return True, or set ``trainer.stop_requested = True``, to stop training after this
       point; a callback that stops should say why in ``trainer.history.stopped`` (else the trainer
       writes "stopped by <class> at step N"). Such a stop is final: fitting again does nothing.
       Every callback is called at every point, also after an earlier one asked to stop.
    4. ``on_train_end(trainer)``: once, however the loop ended; ``trainer.history.stopped`` says
       how ("completed", "early stopping ...", "interrupted at step N", "diverged at step N", a
       callback's reason) and ``trainer.error`` holds the exception on its way out (None when
       fit returns normally).

    Callbacks run in list order: early stopping (when the config asks for it), the progress bar,
    the ``callbacks=`` given to the trainer, those of an enclosing ``extra_callbacks`` block, and
    last the checkpoint (``on_checkpoint``), so the checkpoint records every callback's decision.
    They run on the host at evaluation points only: a callback must not read device arrays per
    step. A trainer that another thread must stop is told so by ``trainer.request_interrupt()``.
    """

    def on_train_begin(self, trainer: Trainer) -> None:
        """Training starts (or resumes) at ``trainer.step``."""

    def on_losses(self, trainer: Trainer, values: list[float]) -> None:
        """The losses of the last steps were read from the device."""

    def on_evaluation(self, trainer: Trainer, record: dict[str, Any]) -> bool | None:
        """An evaluation point; True asks the trainer to stop."""
        return None

    def on_train_end(self, trainer: Trainer) -> None:
        """The loop ended (``trainer.history.stopped`` says how, ``trainer.error`` whether by an exception)."""


_EXTRA: contextvars.ContextVar[tuple[Callback, ...]] = contextvars.ContextVar("xpmlp_extra_callbacks", default=())


@contextlib.contextmanager
def extra_callbacks(*callbacks: Callback) -> Iterator[None]:
    """Add ``callbacks`` to every Trainer built inside the block (in this thread or task).

    How code that builds its own trainer (``runs.train_run``) gets a study's callbacks (an Optuna
    pruner, the Dask engine's stop watcher) without passing them through every call.

    Parameters
    ----------
    *callbacks : Callback
        The callbacks to add, after the trainer's own.

    Yields
    ------
    None
        A context manager: the callbacks apply until the block ends.

    Examples
    --------
    >>> from xpmlp.callbacks import Callback, ambient_callbacks, extra_callbacks
    >>> with extra_callbacks(Callback()):
    ...     len(ambient_callbacks())
    1
    """
    token = _EXTRA.set(_EXTRA.get() + tuple(callbacks))
    try:
        yield
    finally:
        _EXTRA.reset(token)


def ambient_callbacks() -> tuple[Callback, ...]:
    """The callbacks of the enclosing ``extra_callbacks`` blocks."""
    return _EXTRA.get()


class EarlyStopping(Callback):
    """Stop when the watched metric has not improved for ``patience`` evaluations; restore the best weights.

    The trainer keeps the best weights and counts the evaluations without improvement
    (``trainer.bad_evals``, saved in checkpoints); this callback decides when that is enough.
    ``TrainConfig(early_stopping=PATIENCE)`` adds one.

    Parameters
    ----------
    patience : int
        Evaluations without improvement before training stops.
    metric : {"val_acc", "val_loss"}, default "val_acc"
        What is watched (named in the stop message).
    restore_best : bool, default True
        Put the best weights back into the model when training ends.
    """

    def __init__(self, patience: int, metric: str = "val_acc", restore_best: bool = True) -> None:
        self.patience, self.metric, self.restore_best = patience, metric, restore_best

    def on_evaluation(self, trainer: Trainer, record: dict[str, Any]) -> bool:
        if record.get("val_acc") is None or trainer.bad_evals < self.patience:
            return False
        trainer.history.stopped = (f"early stopping at step {trainer.step}: {self.metric} has not improved for "
                                   f"{trainer.bad_evals} evaluations; best {trainer.best_value:.4f} at step "
                                   f"{trainer.history.best['iteration']}")
        trainer.log(trainer.history.stopped)
        return True

    def on_train_end(self, trainer: Trainer) -> None:
        if self.restore_best and trainer.best_state is not None and not trainer.interrupted and trainer.error is None:
            for name, value in trainer.best_state.items():
                trainer.model.net.set_param(name, value * 1.0)


class ProgressBar(Callback):
    """A tqdm bar of the steps; while it shows, the trainer's log lines are written above it.

    The trainer adds one when ``progress="bar"``, or ``"auto"`` on an interactive terminal.
    """

    def __init__(self) -> None:
        self.bar: Any = None
        self._log: Callable[[str], None] | None = None

    def on_train_begin(self, trainer: Trainer) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=trainer.planned_steps, initial=trainer.step, unit="step", dynamic_ncols=True, leave=True)
        self._log, trainer.log = trainer.log, self.bar.write

    def on_losses(self, trainer: Trainer, values: list[float]) -> None:
        self.bar.update(len(values))
        self.bar.set_postfix_str(_postfix(trainer), refresh=False)

    def on_evaluation(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self.bar.set_postfix_str(_postfix(trainer))

    def on_train_end(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self._log is not None:
            trainer.log, self._log = self._log, None


def _postfix(trainer: Trainer) -> str:
    history = trainer.history
    loss = history.iteration_loss[-1] if history.iteration_loss else float("nan")
    last = history.eval[-1]["val_acc"] if history.eval else None
    return f"loss {loss:.4f}" + (f", val acc {last:.4f}" if last is not None else "")


def wants_bar(progress: str) -> bool:
    """``progress`` "bar", or "auto" on an interactive terminal."""
    return progress == "bar" or (progress == "auto" and sys.stderr.isatty())


class CheckpointCallback(Callback):
    """The trainer's ``on_checkpoint(trainer)`` as a callback.

    Called at every evaluation point and once more when a Ctrl-C (or ``request_interrupt``)
    stopped the run cleanly.

    Parameters
    ----------
    on_checkpoint : callable
        ``on_checkpoint(trainer)``, which writes the checkpoint.
    """

    def __init__(self, on_checkpoint: Callable[[Trainer], None]) -> None:
        self.on_checkpoint = on_checkpoint

    def on_evaluation(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self.on_checkpoint(trainer)

    def on_train_end(self, trainer: Trainer) -> None:
        if trainer.interrupted and trainer.error is None:
            self.on_checkpoint(trainer)


def call_all(callbacks: Sequence[Callback], hook: str, *args: Any) -> list[Any]:
    """Call ``hook`` on every callback in order; their return values."""
    return [getattr(cb, hook)(*args) for cb in callbacks]
