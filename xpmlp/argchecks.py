"""Checks of numeric arguments shared by the optimizers and the learning-rate schedules: each
returns a plain Python float or raises a one-line ``InputError`` that says what to pass instead.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from .errors import InputError


def check_number(name: str, value: Any, fix: str) -> float:
    """``value`` as a finite Python float (never a NumPy scalar).

    Parameters
    ----------
    name : str
        The argument's name, for the message.
    value : object
        What was given.
    fix : str
        What the message tells the user to do instead.

    Returns
    -------
    float
        ``float(value)``.

    Raises
    ------
    InputError
        ``value`` is not a real number (a bool counts as a mistake) or is not finite.
    """
    # bool is an int subclass: lr=True is a mistake, not 1.0
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{name} must be a number, got {value!r}; {fix}")
    x = float(value)
    if not math.isfinite(x):
        raise InputError(f"{name} must be finite, got {x!r}; {fix}")
    return x


def check_lr(lr: Any, name: str = "lr") -> float:
    """A learning rate as a positive finite Python float.

    Parameters
    ----------
    lr : object
        The learning rate given.
    name : str, default "lr"
        The argument's name, for the message.

    Returns
    -------
    float
        ``float(lr)``.

    Raises
    ------
    InputError
        ``lr`` is not a number, not finite, or not positive.
    """
    x = check_number(name, lr, "pass a positive learning rate such as 0.01")
    if x <= 0.0:
        raise InputError(f"{name} must be > 0, got {x!r}; pass a positive learning rate such as 0.01")
    return x


def _check_unit(name: str, value: Any, example: str, closed: bool = False) -> float:
    """A coefficient in [0, 1) (the Adam betas), or in [0, 1] with ``closed`` (SGD's momentum:
    1 is undamped momentum, which scikit-learn accepts too)."""
    interval = "[0, 1]" if closed else "[0, 1)"
    x = check_number(name, value, f"use a value in {interval} such as {example}")
    if not (0.0 <= x <= 1.0 if closed else 0.0 <= x < 1.0):
        raise InputError(f"{name} must be in {interval}, got {x!r}; use a value such as {example}")
    return x


def _check_eps(eps: Any) -> float:
    x = check_number("eps", eps, "use a small positive number such as 1e-8")
    if x <= 0.0:
        raise InputError(f"eps must be > 0, got {x!r}; use a small positive number such as 1e-8")
    return x


def _check_weight_decay(wd: Any) -> float:
    x = check_number("weight_decay", wd, "use 0 (off) or a small positive number such as 5e-4")
    if x < 0.0:
        raise InputError(f"weight_decay must be >= 0, got {x!r}; use 0 (off) or a small positive number such as 5e-4")
    return x
