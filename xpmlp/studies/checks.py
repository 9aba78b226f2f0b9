"""A study's run settings checked before the first run starts: types, values and limits.

Types come from the one source of run settings (``xpmlp.settings``): a field annotated
``int | None`` whose flag type is ``positive_int`` must be a positive integer or null, and so
on. Values go through the same functions the run itself calls (``TrainConfig.validate``,
``make_optimizer``, ``parse_schedule``, ``get_activation``, ``init_std``, ``get_backend``), so a
study fails with one line naming the key and the fix before anything is trained or written.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..augment import check_augment
from ..backend import Backend, get_backend
from ..data.preprocess import PREPROCESS_METHODS
from ..data.registry import canonical_name
from ..errors import InputError, XpmlpError
from ..layers import Dropout, init_std
from ..network import activation_label, activation_list
from ..optim import make_optimizer
from ..runs import make_config, train_config
from ..schedules import parse_schedule
from ..settings import DEFAULTS, setting_fields

#: The widest hidden layer and the deepest network a study accepts (a typo such as
#: ``hidden: [5000000]`` would otherwise ask for gigabytes before failing).
MAX_WIDTH = 100_000
MAX_LAYERS = 100


@dataclass(frozen=True)
class _Rule:
    """What one setting may hold: its kind, whether null is allowed, and its choices."""

    kind: str
    optional: bool
    choices: tuple[Any, ...] | None


def _rule(f: dataclasses.Field) -> _Rule:
    annotation = str(f.type)
    optional = annotation.endswith("| None")
    base = annotation.removesuffix("| None").strip()
    kind = {"str": "text", "bool": "flag", "list[int]": "widths"}.get(base) or f.metadata.get("type", "any")
    choices = f.metadata.get("choices")
    return _Rule("text" if kind == "str" else kind, optional, tuple(choices) if choices else None)


RULES: dict[str, _Rule] = {f.name: _rule(f) for f in setting_fields()}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return _is_int(v) or (isinstance(v, float) and math.isfinite(v))


def _widths_ok(v: Any) -> bool:
    return isinstance(v, list) and len(v) <= MAX_LAYERS and all(_is_int(h) and 1 <= h <= MAX_WIDTH for h in v)


_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "text": (lambda v: isinstance(v, str), "a string"),
    "flag": (lambda v: isinstance(v, bool), "true or false"),
    "widths": (_widths_ok, f"a list of at most {MAX_LAYERS} integer widths from 1 to {MAX_WIDTH}"),
    "positive_int": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "int": (lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
    "number": (_is_number, "a finite number"),
    "activation": (lambda v: isinstance(v, str) or (isinstance(v, list) and bool(v)
                                                    and all(isinstance(a, str) for a in v)),
                   "a name or a list of names, one per hidden layer"),
    "any": (lambda v: True, "a value"),
}
_EXAMPLES = {"positive_int": 10, "int": 0, "number": 0.1, "text": "...", "flag": True, "widths": [500, 500]}


def show(value: Any, limit: int = 60) -> str:
    """``repr(value)`` on one line, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def one_line(text: str) -> str:
    """A message on one line (a value may hold newlines)."""
    return " ".join(str(text).split())


def _example(key: str) -> str:
    value = DEFAULTS.get(key)
    value = value if value is not None else _EXAMPLES.get(RULES[key].kind, 1)
    return value if isinstance(value, str) else json.dumps(value)


def check_setting(key: str, value: Any, where: str) -> None:
    """Raise InputError unless ``value`` has the type (and is one of the choices) of setting ``key``."""
    rule = RULES[key]
    if value is None and rule.optional:
        return
    test, what = _CHECKS.get(rule.kind, _CHECKS["any"])
    if rule.choices:
        test, what = (lambda v: isinstance(v, str) and v in rule.choices), "one of " + ", ".join(rule.choices)
    if not test(value):
        null = " or null" if rule.optional else ""
        raise InputError(one_line(f"{where}: {key} must be {what}{null}, got {show(value)}{_text_hint(rule, value)}; "
                                  f"e.g. {key}: {_example(key)}"))


def _text_hint(rule: _Rule, value: Any) -> str:
    """Why a number came as text: YAML 1.1 reads ``1e-3`` (no dot) as a string."""
    if rule.kind not in ("number", "positive_int", "int") or not isinstance(value, str):
        return ""
    try:
        float(value)
    except ValueError:
        return ""
    return " (text, not a number: YAML reads 1e-3 as text; write 1.0e-3, or drop the quotes)"


def check_block(block: Any, where: str, allowed: Iterable[str], known: str) -> dict[str, Any]:
    """A mapping of run settings: every key allowed, every value of the right type; returns it."""
    if not isinstance(block, dict):
        raise InputError(f"{where} must be a mapping of settings, e.g. {{lr: 0.1, epochs: 10}}; got {show(block)}")
    unknown = sorted(str(k) for k in set(block) - set(allowed))
    if unknown:
        raise InputError(one_line(f"{where}: unknown setting(s) {show(unknown, 120)}; {known}"))
    for key, value in block.items():
        check_setting(key, value, where)
    return block


def _check_preprocess(cfg: dict[str, Any]) -> None:
    if cfg["preprocess"] not in PREPROCESS_METHODS:
        raise InputError(f"unknown preprocess method {cfg['preprocess']!r}; use one of: "
                         + ", ".join(PREPROCESS_METHODS))


def _check_early_stopping(cfg: dict[str, Any]) -> None:
    if cfg["early_stopping"] and cfg["val_size"] == 0:
        raise InputError("early_stopping watches the validation set, but val_size is 0; give val_size > 0 or drop "
                         "early_stopping")


#: What a run calls with its settings, each under the key it checks (each raises an XpmlpError
#: naming the problem and the fix); ``check_values`` runs them all before the first run. None: the
#: check covers many settings and each of its messages names its own (TrainConfig.validate).
VALUE_CHECKS: tuple[tuple[str | None, Callable[[dict[str, Any]], object]], ...] = (
    ("augment", lambda c: check_augment(c["augment"], c["dataset"])),  # before validate, which parses it too
    (None, lambda c: train_config(c).validate()),  # epochs, iterations, batch_size, lr, reg, seed, ...
    ("dataset", lambda c: canonical_name(c["dataset"])),
    ("activation", lambda c: activation_list(c["activation"], len(c["hidden"]))),
    ("init", lambda c: init_std(c["init"], 1, 1)),
    # the optimizer, and its lr, momentum and weight_decay, each named by its own message
    (None, lambda c: make_optimizer(c["optimizer"], c["lr"], momentum=c["momentum"],
                                    weight_decay=c["weight_decay"])),
    ("lr_schedule", lambda c: parse_schedule(c["lr_schedule"], c["lr"], 1)),
    ("preprocess", _check_preprocess),
    ("early_stopping", _check_early_stopping),
    ("dropout", lambda c: Dropout(get_backend("cpu"), c["dropout"])),
)


def check_values(cfg: dict[str, Any], where: str, backends: dict[tuple[str, str], Backend] | None = None) -> None:
    """Check a whole run config through the functions the run calls; one-line InputError naming ``where``
    and the key. ``backends`` caches ``get_backend`` per (device, dtype) across the configs of one study."""
    backends = {} if backends is None else backends

    def device(c: dict[str, Any]) -> None:
        if (c["device"], c["dtype"]) not in backends:
            backends[c["device"], c["dtype"]] = get_backend(c["device"], c["dtype"])

    for key, check in (*VALUE_CHECKS, ("device", device)):
        try:
            check(cfg)
        except XpmlpError as exc:
            named = str(exc) if key is None or key.replace("_", " ") in str(exc) or key in str(exc) \
                else f"{key}: {exc}"
            raise InputError(one_line(f"{where}: {named}")) from None


def describe(combo: dict[str, Any], limit: int = 100) -> str:
    """`` (lr 0.05, hidden [8])``: what sets one configuration apart, cut to ``limit`` characters."""
    if not combo:
        return ""
    text = ", ".join(f"{k} {activation_label(v) if k == 'activation' else v}" for k, v in combo.items())
    return f" ({text if len(text) <= limit else text[:limit - 3] + '...'})"


def make_configs(base: dict[str, Any], combos: list[dict[str, Any]],
                 overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One checked run config per combination: base, then the combination, then ``overrides`` (which win).

    ``base`` and each combination must already be type-checked (``check_block``); the overrides
    (the command line's settings) are checked here.
    """
    overrides = check_block(dict(overrides or {}), "command-line settings", DEFAULTS,
                            "known: " + ", ".join(DEFAULTS))
    backends: dict[tuple[str, str], Backend] = {}
    configs = []
    for i, combo in enumerate(combos, 1):
        cfg = make_config(**{**base, **combo, **overrides})
        check_values(cfg, f"configuration {i} of {len(combos)}{describe(combo)}", backends)
        configs.append(cfg)
    if not configs:
        raise InputError("the study yields no configuration; give at least one candidate or grid value")
    return configs
