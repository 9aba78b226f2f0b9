"""The search space of an Optuna sweep (a spec's ``space``), checked and read without Optuna.

Each entry names a setting a sweep may vary and gives either a range or choices::

    space:
      lr: {low: 1.0e-3, high: 0.3, log: true}     # a float range, sampled on a log scale
      batch_size: {low: 32, high: 256, step: 32}  # an integer setting gives an integer range
      dropout: {low: 0, high: 0.5}
      hidden: {choices: [[256], [512, 256]]}      # any setting: a list of values
      activation: {choices: [relu, tanh]}

A range needs a numeric setting (``low <= high``; ``log: true`` needs ``low > 0`` and no
``step``). Every bound and choice is checked as the setting itself is; ``corners`` gives the
configurations that hold every bound and every choice once, which a study checks completely
(values, data, batch size) before the first trial.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from .checks import RULES, check_setting, one_line, show

MAX_CHOICES = 100
ENTRY_KEYS = ("low", "high", "log", "step", "choices")
EXAMPLE = "e.g. space: {lr: {low: 1.0e-3, high: 0.3, log: true}, hidden: {choices: [[256], [512, 256]]}}"
_INTEGER_KINDS = ("positive_int", "int")


@dataclass(frozen=True)
class Dimension:
    """One setting of the space: ``choices``, or a ``low``..``high`` range (``integer`` for integer settings)."""

    key: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False

    def ends(self) -> list[Any]:
        """The values a check must see: every choice, or both bounds."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]

    def encoded_choices(self) -> list[Any]:
        """The choices as Optuna can store them (lists, e.g. hidden widths, as their JSON text)."""
        return [json.dumps(c) if isinstance(c, list) else c for c in self.choices or ()]

    def decode(self, value: Any) -> Any:
        """The choice an encoded value stands for (a list's JSON text back to the list; a name stays a name,
        so choices may mix them, e.g. activation: [relu, [tanh, relu]])."""
        for choice, encoded in zip(self.choices or (), self.encoded_choices(), strict=True):
            if isinstance(choice, list) and encoded == value:
                return list(choice)
        return value


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _entry_error(where: str, key: str, problem: str) -> InputError:
    return InputError(one_line(f"{where}: space {key}: {problem}"))


def _range(key: str, entry: dict[str, Any], where: str) -> Dimension:
    integer = RULES[key].kind in _INTEGER_KINDS
    if RULES[key].kind not in (*_INTEGER_KINDS, "number"):
        raise _entry_error(where, key, f"a range needs a numeric setting; give choices, e.g. {key}: {{choices: [...]}}")
    if "low" not in entry or "high" not in entry:
        raise _entry_error(where, key, "give both low and high, e.g. {low: 1.0e-3, high: 0.3}")
    low, high, log, step = entry["low"], entry["high"], entry.get("log", False), entry.get("step")
    for name, value in (("low", low), ("high", high)):
        check_setting(key, value, f"{where}: space {key} {name}")
    if not low <= high:
        raise _entry_error(where, key, f"low {show(low)} is above high {show(high)}")
    if not isinstance(log, bool):
        raise _entry_error(where, key, f"log must be true or false, got {show(log)}")
    if log and low <= 0:
        raise _entry_error(where, key, f"a log scale needs low > 0, got {show(low)}")
    if step is not None:
        if log:
            raise _entry_error(where, key, "give log or step, not both")
        if not _is_number(step) or step <= 0 or (integer and not isinstance(step, int)):
            raise _entry_error(where, key, f"step must be a positive {'integer' if integer else 'number'}, "
                                           f"got {show(step)}")
    return Dimension(key, None, low, high, log, step, integer)


def _choices(key: str, choices: Any, where: str) -> Dimension:
    if not isinstance(choices, list) or not choices:
        raise _entry_error(where, key, f"choices must be a non-empty list of values, got {show(choices)}")
    if len(choices) > MAX_CHOICES:
        raise _entry_error(where, key, f"{len(choices)} choices (at most {MAX_CHOICES}); give a range or fewer")
    for i, value in enumerate(choices):
        check_setting(key, value, f"{where}: space {key} choices[{i}]")
    if len({json.dumps(c, sort_keys=True) for c in choices}) < len(choices):
        raise _entry_error(where, key, "a value is listed twice; list each once")
    return Dimension(key, tuple(choices))


def parse_space(space: Any, where: str, allowed: tuple[str, ...]) -> list[Dimension]:
    """The dimensions of a spec's ``space``, or a one-line InputError naming the entry and the fix."""
    if not isinstance(space, dict) or not space:
        raise InputError(f"{where}: space must be a mapping of settings to ranges or choices; {EXAMPLE}")
    unknown = sorted(str(k) for k in set(space) - set(allowed))
    if unknown:
        raise InputError(one_line(f"{where}: space: unknown setting(s) {show(unknown, 120)}; a search varies "
                                  + ", ".join(allowed)))
    dims = []
    for key, entry in space.items():
        if not isinstance(entry, dict):
            raise _entry_error(where, key, f"give {{low: A, high: B}} (log: true or step: S optional) or "
                                           f"{{choices: [...]}}, got {show(entry)}")
        extra = sorted(set(entry) - set(ENTRY_KEYS))
        if extra:
            raise _entry_error(where, key, f"unknown key(s) {show(extra)}; an entry holds {', '.join(ENTRY_KEYS)}")
        if "choices" in entry:
            if set(entry) != {"choices"}:
                raise _entry_error(where, key, "give choices, or a range (low, high), not both")
            dims.append(_choices(key, entry["choices"], where))
        else:
            dims.append(_range(key, entry, where))
    return dims


def corners(dims: list[Dimension]) -> list[dict[str, Any]]:
    """Settings that hold each bound and each choice at least once (the others at their first value)."""
    first = {d.key: d.ends()[0] for d in dims}
    combos = [first]
    for d in dims:
        combos += [{**first, d.key: value} for value in d.ends()[1:]]
    return combos
