"""The training loop: both regimes of the experiments, History, callbacks, evaluation.

Regimes:
  * ``epochs``: a fresh seeded shuffle of the training set each epoch; train and validation
    loss and accuracy after every epoch.
  * ``iterations``: minibatches drawn at random with replacement (as the CIFAR-10 homework
    does); a log line and a validation accuracy every ``log_every`` iterations.

What stays off the hot path: the training set moves to the
device once; minibatch indices are drawn on the host once per epoch (or once per log window)
and moved in one transfer; each step gathers its batch with ``xp.take``; the per-step losses
stay on the device and are read in one synchronising transfer every ``sync_every`` steps.

Every random draw is a function of (seed, epoch or window), so a run resumed from a
checkpoint at any step replays exactly the same batches as an uninterrupted run.

Early stopping, the progress bar and the checkpoint are callbacks (``xpmlp.callbacks``; the
contract is ``Callback``'s docstring); ``Trainer(..., callbacks=[...])`` adds others.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .augment import Augmenter, parse_augment
from .backend import Backend, host_rng, on_device
from .callbacks import Callback, CheckpointCallback, EarlyStopping, ProgressBar, ambient_callbacks, call_all, wants_bar
from .errors import DivergenceError, InputError
from .losses import softmax_cross_entropy
from .model import MLP
from .optim import Optimizer, make_optimizer
from .train_config import TrainConfig, cli  # noqa: F401 (re-exported: xpmlp.train.TrainConfig, .cli)

Array = Any


@dataclass
class History:
    """What a run records; JSON-serialisable through ``to_dict``.

    Parameters
    ----------
    regime : {"epochs", "iterations"}, default "epochs"
        What the run counted in.
    iteration_loss : list of float
        The regularised training loss of every step.
    eval : list of dict
        One dict per evaluation point with iteration, epoch, train_loss, train_acc, val_loss,
        val_acc, lr, time.
    best : dict
        The best evaluation record so far (what early stopping and the best checkpoint keep).
    stopped : str, default ""
        How the run ended: "completed", "early stopping ...", "interrupted at step N",
        "diverged at step N", or a callback's reason.
    """

    regime: str = "epochs"
    iteration_loss: list[float] = field(default_factory=list)
    eval: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)
    stopped: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The history as a JSON-able dict (what ``history.json`` holds)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        """The History a ``to_dict`` dict describes (unknown keys are ignored)."""
        return cls(**{k: d[k] for k in ("regime", "iteration_loss", "eval", "best", "stopped") if k in d})


def per_class_accuracy(pred: Any, y: Any, num_classes: int) -> list[float]:
    """Accuracy within each true class (NaN for a class with no example), from host arrays of labels.

    Parameters
    ----------
    pred : numpy.ndarray
        (N,) predicted labels.
    y : numpy.ndarray
        (N,) true labels.
    num_classes : int
        The number of classes C.

    Returns
    -------
    list of float
        C accuracies, class by class.

    Examples
    --------
    >>> import numpy as np
    >>> from xpmlp.train import per_class_accuracy
    >>> per_class_accuracy(np.array([0, 1, 1]), np.array([0, 1, 0]), 3)
    [0.5, 1.0, nan]
    """
    return [float((pred[y == c] == c).mean()) if (y == c).any() else float("nan") for c in range(num_classes)]


def evaluate(model: MLP, X: Array, y: Array, batch_size: int = 8192) -> tuple[float, float]:
    """Mean cross-entropy (no penalty) and accuracy of ``model`` on device arrays X, y.

    Sums are kept on the device; the two numbers are read once at the end.

    Parameters
    ----------
    model : MLP or Sequential
        The network.
    X : array
        (N, features) inputs on the model's backend (host NumPy arrays work on ``cpu``).
    y : array
        (N,) integer labels.
    batch_size : int, default 8192
        Rows scored at a time (bounds the memory the logits take).

    Returns
    -------
    loss : float
        The mean softmax cross-entropy.
    accuracy : float
        The fraction classified right.
    """
    xp = model.xp
    n = X.shape[0]
    if n == 0:
        return float("nan"), float("nan")
    total_loss, correct = 0.0, 0
    with model.backend.context():
        for start, stop, logits in model.batched_logits(X, batch_size):
            yb = y[start:stop]
            loss, _ = softmax_cross_entropy(logits, yb, xp)
            total_loss = total_loss + loss * yb.shape[0]
            correct = correct + xp.sum(xp.astype(xp.argmax(logits, axis=1) == yb, xp.int64))
        return float(total_loss) / n, int(correct) / n


class Interrupt:
    """Turns the first SIGINT (Ctrl-C) or SIGTERM (docker stop, SLURM, systemd) into a flag the loop
    checks after each step, so the run stops at a step boundary and checkpoints; a second one aborts."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Interrupt:
        if threading.current_thread() is threading.main_thread():
            self._old = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.request(signal.Signals(signum).name)

    def request(self, signal_name: str = "SIGINT") -> None:
        """Act as if ``signal_name`` had come (from another thread: a study engine stopping its runs)."""
        self.signal_name = self.signal_name or signal_name
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


@dataclass
class _FitData:
    """What one ``fit`` call works on, checked and on the device."""

    X: Array
    y: Array
    n: int
    X_val: Array | None
    y_val: Array | None
    X_scored: Array  # the fixed training subset whose accuracy is reported at each evaluation
    y_scored: Array
    schedule: Callable[[float], float]
    augment: Augmenter | None = None  # random flips/shifts of each training batch (config.augment)


class Trainer:
    """Trains a model with a config; ``fit`` returns a History.

    Parameters
    ----------
    model : MLP or Sequential
        The network, trained in place.
    config : TrainConfig
        The run's settings.
    log : callable or None, default print
        Where log lines go; None for silence.
    progress : {"auto", "bar", "lines", "none"}, default "auto"
        "auto": a tqdm bar on an interactive terminal, else log lines.
    on_checkpoint : callable, optional
        Called with the trainer at each evaluation point, at a clean Ctrl-C stop and at the end
        (the run folder writes its checkpoint there); it runs as the last callback
        (``CheckpointCallback``).
    optimizer : Optimizer, optional
        An optimizer to use instead of the one ``config`` names.
    callbacks : sequence of Callback, default ()
        :class:`xpmlp.callbacks.Callback` objects (the contract is in its docstring).
    image_shape : tuple of int, optional
        (H, W, C) of the images the rows flatten, which ``config.augment`` needs.

    Examples
    --------
    >>> import numpy as np
    >>> from xpmlp.model import MLP
    >>> from xpmlp.train import TrainConfig, Trainer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(256, 8)).astype(np.float32)
    >>> y = (X[:, 0] > 0).astype(np.int64)
    >>> model = MLP([8, 16, 2], backend="cpu", seed=0)
    >>> history = Trainer(model, TrainConfig(epochs=3, lr=0.1), log=None, progress="none").fit(X, y)
    >>> len(history.eval), history.stopped
    (3, 'completed')
    """

    def __init__(self, model: MLP, config: TrainConfig, *, log: Callable[[str], None] | None = print,
                 progress: str = "auto", on_checkpoint: Callable[[Trainer], None] | None = None,
                 optimizer: Optimizer | None = None, callbacks: Sequence[Callback] = (),
                 image_shape: tuple[int, int, int] | None = None) -> None:
        self.model, self.config = model, config
        self.image_shape = image_shape
        self.log = log or (lambda line: None)
        self.progress = progress
        self.on_checkpoint = on_checkpoint
        self.callbacks = self._callbacks(callbacks)
        self.optimizer = optimizer or make_optimizer(config.optimizer, config.lr, momentum=config.momentum,
                                                     weight_decay=config.weight_decay, backend=model.backend)
        self.optimizer.bind(model.backend)
        self.history = History(regime=config.regime)
        self.step = 0  # optimizer steps done
        self.samples_seen = 0  # training examples consumed (the last batch of an epoch may be short)
        self.planned_steps = 0  # the steps of the whole run, known once fit has seen the data
        self.best_state: dict[str, Array] | None = None
        self.best_value: float | None = None
        self.bad_evals = 0
        self.interrupted = False
        self.interrupted_by = ""  # "SIGINT" or "SIGTERM" when a signal stopped the run
        self.stop_requested = False  # set by a callback (or returned from on_evaluation): stop after this point
        self.error: BaseException | None = None  # the exception ending fit, while on_train_end runs
        self.train_seconds = 0.0
        self._pending: list[Array] = []  # per-step losses still on the device
        self._window_start = 0.0
        self._interrupt: Interrupt | None = None
        self._early_interrupt = ""  # request_interrupt before fit began

    def _callbacks(self, given: Sequence[Callback]) -> list[Callback]:
        """The callbacks in the order of the contract (see ``Callback``)."""
        c = self.config
        built: list[Callback] = [EarlyStopping(c.early_stopping, c.early_stopping_metric, c.restore_best)] \
            if c.early_stopping else []
        if wants_bar(self.progress):
            built.append(ProgressBar())
        built += [*given, *ambient_callbacks()]
        if self.on_checkpoint is not None:
            built.append(CheckpointCallback(self.on_checkpoint))
        return built

    def request_interrupt(self, signal_name: str = "SIGINT") -> None:
        """Stop at the next step boundary as a Ctrl-C does: checkpoint, history says "interrupted at step N",
        a later fit resumes. Safe from another thread (a study engine stopping its runs)."""
        if self._interrupt is not None:
            self._interrupt.request(signal_name)
        else:
            self._early_interrupt = signal_name

    @property
    def backend(self) -> Backend:
        """The model's backend: everything the trainer computes lives there."""
        return self.model.backend

    # -- schedule and sizes ------------------------------------------------------
    def steps_per_epoch(self, n: int) -> int:
        """Minibatch steps in one epoch over ``n`` training examples."""
        return self.config.steps_per_epoch(n)

    def total_steps(self, n: int) -> int:
        """All the steps the run takes on ``n`` training examples."""
        return self.config.total_steps(n)

    def epoch_at(self, step: int, n: int) -> float:
        """Fractional epoch after ``step`` steps (iteration regime: n / batch size steps an epoch)."""
        return self.config.epoch_at(step, n)

    # -- the batches: a pure function of (seed, epoch or window) -------------------
    def _batch_plan(self, n: int, block: int) -> tuple[Any, int]:
        """Host indices for block ``block`` (an epoch or a log window) and its first step."""
        c = self.config
        if c.regime == "epochs":
            return host_rng([c.seed, 1, block]).permutation(n), block * self.steps_per_epoch(n)
        count = min(c.log_every, c.iterations - block * c.log_every)
        return host_rng([c.seed, 2, block]).integers(0, n, (count * c.batch_size,)), block * c.log_every

    def _block_of(self, step: int, n: int) -> int:
        c = self.config
        return step // (self.steps_per_epoch(n) if c.regime == "epochs" else c.log_every)

    # -- state for checkpoints -----------------------------------------------------
    def state(self) -> dict[str, Any]:
        """JSON-able trainer state (the arrays go separately: model, optimizer, best)."""
        return {"step": self.step, "samples_seen": self.samples_seen, "best_value": self.best_value,
                "bad_evals": self.bad_evals, "train_seconds": self.train_seconds, "history": self.history.to_dict(),
                "rng": {"seed": self.config.seed, "scheme": "host_rng([seed, regime, block])"},
                "dropout_random": self.model.random.state()}

    @on_device
    def load_state(self, state: dict[str, Any], best: dict[str, Any] | None) -> None:
        """Restore what :meth:`state` saved, and the best weights ``best`` (a resumed run goes on exactly)."""
        self.step = int(state["step"])
        self.samples_seen = int(state.get("samples_seen", 0))
        self.best_value = state.get("best_value")
        self.bad_evals = int(state.get("bad_evals", 0))
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.history = History.from_dict(state["history"])
        if "dropout_random" in state:  # the masks go on where they stopped: a resumed run draws the same ones
            self.model.random.load_state(state["dropout_random"])
        if best:
            self.best_state = {k: self.model.backend.asarray(v) for k, v in best.items()}

    # -- the loop --------------------------------------------------------------
    @on_device
    def fit(self, X_train: Any, y_train: Any, X_val: Any = None, y_val: Any = None) -> History:
        """Train on (X_train, y_train), evaluating on (X_val, y_val) when given.

        Inputs may be host NumPy arrays or arrays of the model's backend; they are checked
        once and moved to the device once. The loop: one block (an epoch, or a log window of
        iterations) after another; each block ends at an evaluation point (``_end_of_block``),
        where the callbacks may stop it.
        """
        data = self._prepare(X_train, y_train, X_val, y_val)
        total = self.total_steps(data.n)
        if self.step >= total or _final_stop(self.history.stopped):
            self.log(f"nothing to do: the run already has {self.step} of {total} steps ({self.history.stopped})")
            return self.history
        self.history.stopped = ""  # a resumed run is no longer 'interrupted'
        self.planned_steps, self.stop_requested, self.error = total, False, None
        self._window_start = time.perf_counter()
        try:
            with Interrupt() as interrupt:
                self._interrupt = interrupt
                if self._early_interrupt:
                    interrupt.request(self._early_interrupt)
                    self._early_interrupt = ""
                call_all(self.callbacks, "on_train_begin", self)
                self._loop(data, total, interrupt)
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self._interrupt = None
            self._finish()
        return self.history

    def _loop(self, data: _FitData, total: int, interrupt: Interrupt) -> None:
        """Blocks until the run is done, a callback stops it, or a signal interrupts it."""
        while self.step < total and not self.interrupted and not self.stop_requested:
            block_start, block_steps = self._run_block(data, total, interrupt)
            # an evaluation belongs to the end of each epoch / log window, even when Ctrl-C came
            # on its last step: a resumed run starts in the next block and would never make it
            if self.step == block_start + block_steps:
                self._end_of_block(data)
        if self.interrupted:
            self.train_seconds += time.perf_counter() - self._window_start
            self.history.stopped = f"interrupted at step {self.step}"

    def _prepare(self, X_train: Any, y_train: Any, X_val: Any, y_val: Any) -> _FitData:
        """Check and move the inputs once; build the schedule and the fixed train-accuracy subset."""
        model, config = self.model, self.config
        X = model.check_x(X_train)
        y = model.check_y(y_train, X.shape[0])
        n = X.shape[0]
        config.validate(n)
        X_val_dev = y_val_dev = None
        if X_val is not None and y_val is not None:
            X_val_dev = model.check_x(X_val)
            y_val_dev = model.check_y(y_val, X_val_dev.shape[0])
            if X_val_dev.shape[0] == 0:
                X_val_dev = y_val_dev = None
        if config.early_stopping and X_val_dev is None:
            raise InputError("early stopping watches the validation set, but there is none; "
                             "give validation data (--val-size N) or drop --early-stopping")
        schedule = config.schedule(n)
        # a fixed subset of the training set for the train accuracy, the same at every evaluation
        scored = model.backend.asarray(host_rng([config.seed, 3]).permutation(n)[:min(config.train_eval_size, n)])
        return _FitData(X, y, n, X_val_dev, y_val_dev, model.xp.take(X, scored, axis=0),
                        model.xp.take(y, scored, axis=0), schedule, self._augmenter())

    def _augmenter(self) -> Augmenter | None:
        """The augmentation ``config.augment`` asks for (None for none), its draws keyed by (seed, step)."""
        spec = parse_augment(self.config.augment)
        if not spec.active:
            return None
        if self.image_shape is None:
            raise InputError(f"augment {self.config.augment!r} needs the images' shape: give "
                             "Trainer(..., image_shape=(H, W, C)) (xpmlp train passes its data set's)")
        return Augmenter(spec, self.image_shape, self.model.backend, self.config.seed)

    def _run_block(self, data: _FitData, total: int, interrupt: Interrupt) -> tuple[int, int]:
        """The steps of the current block, from wherever the run stands in it; returns its (start, length)."""
        config, xp = self.config, self.model.xp
        block_start, indices = self._block_indices(data.n)
        batch = config.batch_size
        block_steps = self.steps_per_epoch(data.n) if config.regime == "epochs" else indices.shape[0] // batch
        labels = xp.take(data.y, indices, axis=0)  # the block's labels in one gather, not one per step
        for k in range(self.step - block_start, block_steps):
            rows = slice(k * batch, min((k + 1) * batch, indices.shape[0]))
            X_batch = xp.take(data.X, indices[rows], axis=0)
            if data.augment is not None:
                X_batch = data.augment(X_batch, self.step)
            self._step(X_batch, labels[rows], data)
            if len(self._pending) >= config.sync_every:
                self._flush(self._pending)
            if interrupt.requested:
                self.interrupted = True
                self.interrupted_by = interrupt.signal_name
                break
            if config.regime == "iterations" and (self.step % config.log_every == 0 or self.step == total):
                break
        self._flush(self._pending)
        return block_start, block_steps

    def _block_indices(self, n: int) -> tuple[int, Array]:
        """The first step of the block the run is in, and its sample indices on the device (one transfer)."""
        host_indices, block_start = self._batch_plan(n, self._block_of(self.step, n))
        return block_start, self.model.backend.asarray(host_indices)

    def _step(self, X_batch: Array, y_batch: Array, data: _FitData) -> None:
        """One optimizer step on one minibatch; the loss stays on the device until the next flush.

        SGD, momentum and Nesterov take the fused path (the update folded into each weight
        gradient's GEMM) unless ``config.fused`` is off; Adam forms the gradients first.
        """
        self.optimizer.lr = data.schedule(self.epoch_at(self.step, data.n))
        if self.config.fused and self.optimizer.can_fuse:
            loss = self.model.fused_step(X_batch, y_batch, self.config.reg, self.optimizer)
        else:
            loss, grads = self.model.loss(X_batch, y_batch, self.config.reg, check=False)
            self.optimizer.step(self.model.params, grads)
        self._pending.append(loss)
        self.step += 1
        self.samples_seen += X_batch.shape[0]

    def _end_of_block(self, data: _FitData) -> None:
        """The evaluation point after each epoch or log window: evaluate, then every callback's
        ``on_evaluation`` (early stopping, a pruner, ..., the checkpoint last), which may stop the run."""
        self.train_seconds += time.perf_counter() - self._window_start
        record = self._evaluate(data)
        self._window_start = time.perf_counter()
        for callback in self.callbacks:
            if callback.on_evaluation(self, record) or self.stop_requested:
                self.stop_requested = True
                if not self.history.stopped:
                    self.history.stopped = f"stopped by {type(callback).__name__} at step {self.step}"

    def _finish(self) -> None:
        """Name how the run ended, then every callback's ``on_train_end`` (the bar closes, early stopping
        restores the best weights, an interrupted run checkpoints)."""
        if not self.history.stopped:
            self.history.stopped = "completed"
        call_all(self.callbacks, "on_train_end", self)

    def _flush(self, pending: list[Array]) -> None:
        """Read the pending losses in one transfer, record them, stop on NaN/inf."""
        if not pending:
            return
        xp = self.model.xp
        values = self.model.backend.to_numpy(xp.stack([xp.asarray(v) for v in pending])).tolist()
        first = self.step - len(values)
        pending.clear()
        for i, v in enumerate(values):
            if not math.isfinite(v):
                step = first + i + 1
                self.history.iteration_loss.extend(values[:i + 1])
                self.history.stopped = f"diverged at step {step}"
                raise DivergenceError(
                    f"training diverged: the loss is {v} at step {step} (learning rate {self.optimizer.lr:g}); "
                    "lower --lr (e.g. by 10x), add --reg, or standardise the inputs")
        self.history.iteration_loss.extend(values)
        call_all(self.callbacks, "on_losses", self, values)

    def _evaluate(self, data: _FitData) -> dict[str, Any]:
        """Record one evaluation point, log it, keep the best weights; returns the record."""
        c, model = self.config, self.model
        _, train_acc = evaluate(model, data.X_scored, data.y_scored)
        val_loss, val_acc = evaluate(model, data.X_val, data.y_val) if data.X_val is not None else (None, None)
        epoch = self.epoch_at(self.step, data.n)
        if c.regime == "epochs":
            losses = self.history.iteration_loss[-self.steps_per_epoch(data.n):]
            train_loss = sum(losses) / len(losses)
        else:
            train_loss = self.history.iteration_loss[-1]
        point = {"iteration": self.step, "epoch": round(epoch, 6), "train_loss": train_loss,
                 "train_acc": train_acc, "val_loss": val_loss, "val_acc": val_acc,
                 "lr": data.schedule(epoch), "time": round(self.train_seconds, 4)}
        self.history.eval.append(point)
        if c.regime == "iterations":
            line = f"iteration {self.step} / {c.iterations}: loss {train_loss:.6f}"
            line += f", train acc {train_acc:.4f}" + (f", val acc {val_acc:.4f}" if val_acc is not None else "")
        else:
            line = (f"epoch {round(epoch)} / {c.epochs}: loss {train_loss:.6f}, train acc {train_acc:.4f}"
                    + (f", val loss {val_loss:.4f}, val acc {val_acc:.4f}" if val_acc is not None else "")
                    + f", lr {point['lr']:.3g}, {self.train_seconds:.1f}s")
        self.log(line)  # above the progress bar while one shows (ProgressBar swaps the log)
        self._track_best(point)
        return point

    def _track_best(self, point: dict[str, Any]) -> None:
        """Keep the best-validation weights and count the evaluations without improvement (``bad_evals``,
        which ``EarlyStopping`` watches)."""
        c = self.config
        if point["val_acc"] is None:
            return
        value = point[c.early_stopping_metric]
        sign = 1.0 if c.early_stopping_metric == "val_acc" else -1.0
        if self.best_value is None or sign * (value - self.best_value) > c.min_delta:
            self.best_value = value
            self.bad_evals = 0
            self.best_state = {k: v * 1.0 for k, v in self.model.params.items()}  # a device copy
            self.history.best = dict(point)
        else:
            self.bad_evals += 1


def _final_stop(stopped: str) -> bool:
    """Whether a run that ended this way is over for good (early stopping, a callback's stop)."""
    return bool(stopped) and stopped != "completed" and not stopped.startswith(("interrupted", "diverged"))


def train(model: MLP, X_train: Any, y_train: Any, X_val: Any = None, y_val: Any = None,
          **config: Any) -> History:
    """One-call training: ``train(model, X, y, Xv, yv, epochs=5, lr=0.1)`` -> History.

    Parameters
    ----------
    model : MLP or Sequential
        The network, trained in place.
    X_train, y_train : array
        Training inputs (N, features) and integer labels (N,), host NumPy or the model's backend.
    X_val, y_val : array, optional
        Validation data, evaluated at every evaluation point.
    **config
        ``log``, ``progress``, ``callbacks`` and ``image_shape`` go to the :class:`Trainer`, the
        other keywords to :class:`TrainConfig`.

    Returns
    -------
    History
        What the run recorded.

    Raises
    ------
    InputError
        A bad setting or bad data, before the first step.

    Examples
    --------
    >>> import numpy as np
    >>> from xpmlp.model import MLP
    >>> from xpmlp.train import evaluate, train
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(512, 4)).astype(np.float32)
    >>> y = (X.sum(axis=1) > 0).astype(np.int64)
    >>> model = MLP([4, 32, 2], backend="cpu", seed=0)
    >>> history = train(model, X, y, epochs=5, lr=0.1, log=None, progress="none")
    >>> evaluate(model, X, y)[1] > 0.9
    True
    """
    log = config.pop("log", print)
    progress = config.pop("progress", "auto")
    callbacks = config.pop("callbacks", ())
    image_shape = config.pop("image_shape", None)
    return Trainer(model, TrainConfig(**config), log=log, progress=progress, callbacks=callbacks,
                   image_shape=image_shape).fit(X_train, y_train, X_val, y_val)
