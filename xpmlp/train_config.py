"""``TrainConfig``: the single source of training settings, and ``cli``, the metadata that makes
each of its fields a command-line flag (``xpmlp.settings`` derives the CLI and the spec keys from it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .augment import parse_augment
from .errors import InputError
from .schedules import parse_schedule


def cli(help: str, **argparse_kwargs: Any) -> dict[str, Any]:
    """Field metadata that makes a setting a command-line flag (see ``xpmlp.settings``)."""
    return {"help": help, **argparse_kwargs}


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (JSON-serialisable with ``asdict``).

    Fields with ``cli`` metadata are run settings: ``xpmlp train``, ``compare`` and ``sweep``
    take them as flags and sweep specs as keys (``xpmlp.settings`` derives both from here).

    Parameters
    ----------
    epochs : int, optional
        Train this many epochs (give exactly one of ``epochs`` and ``iterations``).
    iterations : int, optional
        Train this many minibatch steps, batches drawn with replacement.
    batch_size : int, default 128
        Minibatch size.
    optimizer : {"sgd", "momentum", "nesterov", "adam", "adamw"}, default "sgd"
        The optimizer (:func:`xpmlp.optim.make_optimizer`).
    lr : float, default 0.1
        Learning rate (the schedule's base).
    momentum : float, default 0.9
        Momentum of "momentum" and "nesterov".
    weight_decay : float, default 0.0
        Decoupled (adamw) or coupled (the others) weight decay.
    lr_schedule : str, default "constant"
        ``constant``, ``exp:GAMMA``, ``step:EPOCHS:GAMMA``, ``cosine[:MIN_LR]``
        (:func:`xpmlp.schedules.parse_schedule`).
    reg : float, default 0.0
        L2 strength λ: the loss gains ½·λ·Σ‖W‖², not divided by the batch size.
    log_every : int, default 100
        Iterations between evaluations in the iteration regime.
    train_eval_size : int, default 1000
        Training examples scored for the train accuracy at each evaluation.
    early_stopping : int, optional
        Stop after this many evaluations without improvement (None: never).
    augment : str, default "none"
        ``none``, ``flip``, ``shift:N`` or ``flip,shift:N``, drawn anew each step on the device.
    early_stopping_metric : {"val_acc", "val_loss"}, default "val_acc"
        What early stopping (and the best checkpoint) watches.
    min_delta : float, default 0.0
        The improvement that counts for early stopping.
    restore_best : bool, default True
        Restore the best weights when early stopping ends the run.
    sync_every : int, default 50
        Steps between reads of the device-side losses (one host synchronisation each).
    fused : bool, default True
        Fold SGD/momentum/Nesterov updates into the weight-gradient GEMM (same numbers).
    seed : int, default 0
        Seed of the weights, the batches and the split.
    """

    epochs: int | None = field(default=None, metadata=cli("train this many epochs (one of --epochs, --iterations)",
                                                          type="positive_int"))
    iterations: int | None = field(default=None, metadata=cli("train this many minibatch steps, drawn with "
                                                              "replacement", type="positive_int"))
    batch_size: int = field(default=128, metadata=cli("minibatch size", type="positive_int"))
    optimizer: str = field(default="sgd", metadata=cli("sgd | momentum | nesterov | adam | adamw"))
    lr: float = field(default=0.1, metadata=cli("learning rate", type="number"))
    momentum: float = field(default=0.9, metadata=cli("momentum of momentum/nesterov", type="number"))
    weight_decay: float = field(default=0.0, metadata=cli("decoupled (adamw) or coupled", type="number"))
    lr_schedule: str = field(default="constant", metadata=cli("constant | exp:0.95 | step:10:0.5 | cosine"))
    reg: float = field(default=0.0, metadata=cli("L2 strength: loss += 0.5*reg*sum(W**2)", type="number"))
    log_every: int = field(default=100, metadata=cli("iterations between logs", type="positive_int"))
    train_eval_size: int = field(default=1000, metadata=cli("training examples scored for train accuracy at "
                                                            "each evaluation", type="int"))
    early_stopping: int | None = field(default=None, metadata=cli("stop after this many evaluations without "
                                                                  "improvement", type="positive_int",
                                                                  metavar="PATIENCE"))
    augment: str = field(default="none", metadata=cli("none | flip | shift:N | flip,shift:N: each training image "
                                                      "mirrored (p=1/2) and/or moved up to N pixels (zero fill), "
                                                      "a new draw each step, on the device"))
    early_stopping_metric: str = field(default="val_acc", metadata=cli("what early stopping watches",
                                                                       choices=["val_acc", "val_loss"]))
    min_delta: float = 0.0
    restore_best: bool = True
    sync_every: int = 50
    # fold SGD/momentum/Nesterov updates into the weight-gradient GEMM (MLP.fused_step); same numbers
    fused: bool = True
    seed: int = field(default=0, metadata=cli("seed of the weights, the batches and the split", type="int"))

    def validate(self, n_train: int | None = None) -> None:
        """Raise InputError naming the first bad setting and how to fix it."""
        if (self.epochs is None) == (self.iterations is None):
            raise InputError("give exactly one of epochs or iterations (--epochs N or --iterations N)")
        for name in ("epochs", "iterations"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise InputError(f"batch size must be a positive integer, got {self.batch_size!r}")
        if n_train is not None and self.batch_size > n_train:
            raise InputError(f"batch size {self.batch_size} is larger than the training set ({n_train} samples); "
                             f"use --batch-size {min(128, n_train)} or more data")
        if n_train:
            self.schedule(n_train)
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise InputError(f"lr (the learning rate) must be a positive number, got {self.lr!r} (e.g. --lr 0.1)")
        if not (isinstance(self.reg, (int, float)) and 0 <= self.reg < math.inf):
            raise InputError(f"reg must be a finite number >= 0, got {self.reg!r} (e.g. --reg 1e-4, or 0 for none)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"seed must be an integer >= 0, got {self.seed!r} (e.g. --seed 0)")
        if self.log_every < 1 or self.sync_every < 1:
            raise InputError("log_every and sync_every must be positive integers")
        if self.train_eval_size < 0:
            raise InputError("train_eval_size must be >= 0")
        if self.early_stopping is not None and self.early_stopping < 1:
            raise InputError(f"early stopping patience must be a positive integer, got {self.early_stopping}")
        parse_augment(self.augment)
        if self.early_stopping_metric not in ("val_acc", "val_loss"):
            raise InputError(f"early stopping watches 'val_acc' or 'val_loss', not {self.early_stopping_metric!r}")

    @property
    def regime(self) -> str:
        """Which of the two the run counts in: ``"epochs"`` or ``"iterations"``."""
        return "epochs" if self.epochs is not None else "iterations"

    def steps_per_epoch(self, n: int) -> int:
        """Minibatch steps in one epoch over ``n`` training examples (the last batch may be short)."""
        return math.ceil(n / self.batch_size)

    def total_steps(self, n: int) -> int:
        """All the steps the run takes on ``n`` training examples."""
        return self.iterations if self.iterations is not None else self.epochs * self.steps_per_epoch(n)

    def epoch_at(self, step: int, n: int) -> float:
        """Fractional epoch after ``step`` steps (iteration regime: n / batch size steps an epoch)."""
        if self.regime == "epochs":
            return step / self.steps_per_epoch(n)
        return step * self.batch_size / n

    def schedule(self, n: int) -> Callable[[float], float]:
        """The learning-rate schedule over this run's horizon (epochs; fractional in the iteration regime,
        so cosine ends at its minimum), refused when it decays the rate to 0 before the last step."""
        horizon = self.epochs if self.epochs is not None else self.iterations * self.batch_size / n
        schedule = parse_schedule(self.lr_schedule, self.lr, horizon)
        last_lr = schedule(self.epoch_at(max(self.total_steps(n) - 1, 0), n))
        if not last_lr > 0:
            raise InputError(f"the learning-rate schedule {self.lr_schedule!r} drives the learning rate to "
                             f"{last_lr:g} before the last step; decay more slowly (a larger EPOCHS or GAMMA)")
        return schedule
