"""Learning-rate schedules: the learning rate as a function of the (fractional) epoch.

``parse_schedule`` reads the CLI strings ``constant``, ``exp:GAMMA``, ``step:EPOCHS:GAMMA``,
``cosine`` and ``cosine:MIN_LR``; ``Schedule.spec`` gives the string back.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from .argchecks import check_lr, check_number
from .errors import InputError

SCHEDULE_FORMS = "constant, exp:GAMMA, step:EPOCHS:GAMMA, cosine or cosine:MIN_LR"


def _fmt(x: float) -> str:
    """A number as it round-trips through float(): "10" for 10.0, repr otherwise."""
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


class Schedule:
    """Learning rate as a function of the (fractional) epoch: ``schedule(epoch) -> lr``.

    In the iteration regime the trainer passes ``iteration / iterations_per_epoch``.
    ``spec`` is the string that ``parse_schedule(spec, base_lr, total_epochs)`` turns back
    into the same schedule; this base class is the constant one (``lr = base_lr``).

    Parameters
    ----------
    base_lr : float
        The learning rate at epoch 0.
    """

    def __init__(self, base_lr: float) -> None:
        self.base_lr = check_lr(base_lr, "base_lr")

    @property
    def spec(self) -> str:
        """The string that :func:`parse_schedule` turns back into this schedule."""
        return "constant"

    def _lr(self, epoch: float) -> float:
        return self.base_lr

    def __call__(self, epoch: float) -> float:
        e = float(epoch)
        if not e >= 0.0:  # also catches NaN
            raise InputError(f"schedule epoch must be >= 0, got {epoch!r}")
        return self._lr(e)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(spec={self.spec!r}, base_lr={self.base_lr!r})"


class ExponentialSchedule(Schedule):
    """``lr = base_lr * gamma ** floor(epoch)``: multiplied by gamma at the end of each epoch.

    Parameters
    ----------
    base_lr : float
        The learning rate at epoch 0.
    gamma : float
        The factor per epoch, in (0, 1].
    """

    def __init__(self, base_lr: float, gamma: float) -> None:
        super().__init__(base_lr)
        self.gamma = _check_gamma(gamma)

    @property
    def spec(self) -> str:
        return f"exp:{_fmt(self.gamma)}"

    def _lr(self, epoch: float) -> float:
        return self.base_lr * self.gamma ** math.floor(epoch)


class StepSchedule(Schedule):
    """``lr = base_lr * gamma ** floor(epoch / every)``: multiplied by gamma every ``every`` epochs.

    Parameters
    ----------
    base_lr : float
        The learning rate at epoch 0.
    every : float
        Epochs between two decays.
    gamma : float
        The factor at each decay.
    """

    def __init__(self, base_lr: float, every: float, gamma: float) -> None:
        super().__init__(base_lr)
        self.every = check_number("EPOCHS", every, "use a positive number of epochs such as 10")
        if self.every <= 0.0:
            raise InputError(f"EPOCHS must be > 0, got {self.every!r}; use a positive number of epochs such as 10")
        self.gamma = _check_gamma(gamma)

    @property
    def spec(self) -> str:
        return f"step:{_fmt(self.every)}:{_fmt(self.gamma)}"

    def _lr(self, epoch: float) -> float:
        return self.base_lr * self.gamma ** math.floor(epoch / self.every)


class CosineSchedule(Schedule):
    """``lr = min_lr + 0.5 * (base_lr - min_lr) * (1 + cos(pi * min(epoch, T) / T))``, T = total_epochs.

    Evaluated continuously on fractional epochs; it stays at ``min_lr`` after ``T``.
    With ``min_lr = 0`` this is ``0.5 * base_lr * (1 + cos(pi * epoch / T))``.

    Parameters
    ----------
    base_lr : float
        The learning rate at epoch 0.
    total_epochs : float
        T, the length of the decay.
    min_lr : float, default 0.0
        The learning rate from epoch T on.
    """

    def __init__(self, base_lr: float, total_epochs: float, min_lr: float = 0.0) -> None:
        super().__init__(base_lr)
        if isinstance(total_epochs, bool) or not isinstance(total_epochs, numbers.Real) or not total_epochs > 0:
            raise InputError(f"the cosine schedule needs total_epochs > 0, got {total_epochs!r}; "
                             f"pass the number of training epochs")
        self.total_epochs = float(total_epochs)
        self.min_lr = check_number("MIN_LR", min_lr, "use a learning rate between 0 and base_lr")
        if not 0.0 <= self.min_lr <= self.base_lr:
            raise InputError(f"MIN_LR must be in [0, base_lr={self.base_lr!r}], got {self.min_lr!r}; "
                             f"use a learning rate between 0 and base_lr")

    @property
    def spec(self) -> str:
        return "cosine" if self.min_lr == 0.0 else f"cosine:{_fmt(self.min_lr)}"

    def _lr(self, epoch: float) -> float:
        horizon = self.total_epochs
        return self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (
            1.0 + math.cos(math.pi * min(epoch, horizon) / horizon))


def _check_gamma(gamma: Any) -> float:
    x = check_number("GAMMA", gamma, "use a decay factor in (0, 1] such as 0.95")
    if not 0.0 < x <= 1.0:
        raise InputError(f"GAMMA must be in (0, 1], got {x!r}; use a decay factor such as 0.95")
    return x


def _schedule_number(text: str, field: str) -> float:
    try:
        return float(field)
    except ValueError:
        raise InputError(f"bad learning-rate schedule {text!r}: {field!r} is not a number; "
                         f"use one of: {SCHEDULE_FORMS}") from None


def parse_schedule(text: str, base_lr: float, total_epochs: float | None = None) -> Schedule:
    """Turn a CLI schedule string into a :class:`Schedule`.

    Forms (case-insensitive):

    - ``constant``: ``lr = base_lr``.
    - ``exp:GAMMA``: ``lr = base_lr * GAMMA ** floor(epoch)``, 0 < GAMMA <= 1 (e.g. ``exp:0.95``).
    - ``step:EPOCHS:GAMMA``: ``lr = base_lr * GAMMA ** floor(epoch / EPOCHS)`` (e.g. ``step:10:0.5``).
    - ``cosine`` / ``cosine:MIN_LR``: ``lr = MIN_LR + 0.5 * (base_lr - MIN_LR) * (1 + cos(pi * min(epoch, T) / T))``
      with ``T = total_epochs`` (required), ``0 <= MIN_LR <= base_lr``.

    Parameters
    ----------
    text : str
        The schedule, in one of the forms above.
    base_lr : float
        The learning rate at epoch 0.
    total_epochs : float, optional
        T of the cosine schedule (required for it).

    Returns
    -------
    Schedule
        The schedule; ``schedule(epoch)`` is the learning rate.

    Raises
    ------
    InputError
        A malformed string or value; the message names the accepted forms.

    Examples
    --------
    >>> from xpmlp.schedules import parse_schedule
    >>> parse_schedule("step:10:0.5", 0.1)(25.0)
    0.025
    """
    if not isinstance(text, str):
        raise InputError(f"the learning-rate schedule must be a string, got {text!r}; use one of: {SCHEDULE_FORMS}")
    parts = [s.strip() for s in text.strip().lower().split(":")]
    kind, args = parts[0], parts[1:]
    nums = [_schedule_number(text, a) for a in args]
    try:
        if kind == "constant" and not args:
            return Schedule(base_lr)
        if kind == "exp" and len(args) == 1:
            return ExponentialSchedule(base_lr, nums[0])
        if kind == "step" and len(args) == 2:
            return StepSchedule(base_lr, nums[0], nums[1])
        if kind == "cosine" and len(args) <= 1:
            return CosineSchedule(base_lr, total_epochs, *nums)  # type: ignore[arg-type]
    except InputError as exc:
        # the constructors' messages name the bad value; add the schedule string and the forms
        raise InputError(f"bad learning-rate schedule {text!r}: {exc}. Accepted forms: {SCHEDULE_FORMS}") from None
    known = ("constant", "exp", "step", "cosine")
    why = f"wrong number of ':' fields for {kind!r}" if kind in known else f"unknown schedule {kind!r}"
    raise InputError(f"bad learning-rate schedule {text!r} ({why}); use one of: {SCHEDULE_FORMS}")
