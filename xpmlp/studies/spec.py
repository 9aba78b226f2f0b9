"""Sweep specs: read (JSON, or YAML without anchors or aliases), check, and expand into configurations.

A spec names a ``base`` configuration and one of ``candidates`` (a list of settings), a
``grid`` of values to combine (``search: random`` with ``samples: N`` draws N of them), or a
``space`` of ranges that Optuna searches (``search: tpe|random|cmaes``, ``trials: N``, optional
``prune: median|hyperband`` and ``storage: sqlite:///...``; see ``space`` and ``search``). Every
limit here exists so that a few bytes of spec cannot ask for gigabytes: the file is at most
1 MiB, YAML anchors and aliases are refused (nested aliases expand exponentially), strings
are at most 200 characters, and a study has at most 10,000 configurations.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from ..backend import host_rng
from ..errors import InputError
from ..settings import DEFAULTS
from .checks import check_block, check_setting, one_line, show
from .space import parse_space

MAX_SPEC_BYTES = 1 << 20
MAX_TEXT = 200
MAX_CONFIGS = 10_000
#: The most grid combinations a random search may draw its samples from.
MAX_POPULATION = 10**12
MAX_DEPTH = 8

SPEC_KEYS = ("name", "dataset", "base", "grid", "candidates", "space", "search", "samples", "trials", "prune",
             "storage", "seed", "select_top")
#: The settings a grid, a candidate or a search space may vary (``base`` may hold any run setting).
SWEEP_KEYS = ("hidden", "activation", "optimizer", "lr", "momentum", "reg", "epochs", "batch_size",
              "lr_schedule", "weight_decay", "init", "preprocess", "dropout", "augment")
#: ``search`` over a ``grid`` (built in) and over a ``space`` (Optuna's samplers).
GRID_SEARCHES = ("grid", "random")
SPACE_SEARCHES = ("tpe", "random", "cmaes")
PRUNERS = ("median", "hyperband", "none")
_SEARCH_ONLY = ("trials", "prune", "storage")
_STORAGE_SCHEMES = ("sqlite", "postgresql", "mysql", "oracle", "mssql")
_SWEEP_KNOWN = "a sweep varies " + ", ".join(SWEEP_KEYS)


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, refusing anchors, aliases and nesting deeper than ``MAX_DEPTH``."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        line = event.start_mark.line + 1 if event.start_mark else "?"
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise InputError(f"line {line}: YAML anchors and aliases (&name, *name) are not allowed in a sweep "
                             "spec; write each value out")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise InputError(f"line {line}: nested deeper than {MAX_DEPTH} levels; a sweep spec is a mapping "
                                 "of settings and lists of values")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _read(path: Path) -> str:
    """The spec's text: at most MAX_SPEC_BYTES of UTF-8."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise InputError(one_line(f"cannot read sweep spec {path}: {exc.strerror or exc}; "
                                  "give the path of a .yaml or .json file")) from None
    if len(data) > MAX_SPEC_BYTES:
        raise InputError(f"{path}: larger than {MAX_SPEC_BYTES >> 20} MiB; a sweep spec is a few lines of settings")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}); save the spec as UTF-8") from None


def load_spec(path: str | Path) -> dict[str, Any]:
    """Read a sweep spec (YAML or JSON) and check it (:func:`check_spec`).

    Parameters
    ----------
    path : str or path
        A ``.yaml``/``.yml`` or ``.json`` file of at most 1 MiB; YAML anchors and aliases are
        refused.

    Returns
    -------
    dict
        The spec.

    Raises
    ------
    InputError
        An unreadable, oversized or malformed file, or a spec that fails :func:`check_spec`.
    """
    path = Path(path)
    text = _read(path)
    kind = "JSON" if path.suffix == ".json" else "YAML"
    try:
        spec = json.loads(text) if kind == "JSON" else yaml.load(text, Loader=_StrictLoader)  # noqa: S506
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    except Exception as exc:  # any parser failure (syntax, bad timestamp, recursion) is one line
        raise InputError(one_line(f"{path}: not valid {kind} ({type(exc).__name__}: {show(str(exc), 200)}); "
                                  "fix the syntax")) from None
    return check_spec(spec, str(path))


def _check_tree(obj: Any, where: str, depth: int = 0) -> None:
    """Plain data only: string keys, strings of at most MAX_TEXT characters, bounded nesting."""
    if depth > MAX_DEPTH:
        raise InputError(one_line(f"{where}: nested deeper than {MAX_DEPTH} levels; a sweep spec is a mapping of "
                                  "settings"))
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str):
                raise InputError(one_line(f"{where}: key {show(key)} is not a string; name settings by their names"))
            _check_tree(key, where, depth + 1)
            _check_tree(value, f"{where}.{key}" if depth else f"{where}: {key}", depth + 1)
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            _check_tree(value, f"{where}[{i}]", depth + 1)
    elif isinstance(obj, str):
        if len(obj) > MAX_TEXT:
            raise InputError(one_line(f"{where}: a string of {len(obj):,} characters (at most {MAX_TEXT}); shorten it"))
    elif obj is not None and not isinstance(obj, (bool, int, float)):
        raise InputError(one_line(f"{where}: {show(obj)} ({type(obj).__name__}) is not a plain value; "
                                  "write a number, a string, true/false or a list"))


def _check_option(spec: dict[str, Any], where: str, key: str, ok: Any, what: str, example: str) -> None:
    if key in spec and not ok(spec[key]):
        raise InputError(one_line(f"{where}: {key} must be {what}, got {show(spec[key])}; e.g. {key}: {example}"))


def _is_int(v: Any, minimum: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= minimum


def check_spec(spec: Any, where: str = "sweep spec") -> dict[str, Any]:
    """Check a spec's keys, types and size (everything short of the run settings' values).

    Parameters
    ----------
    spec : object
        The parsed spec.
    where : str, default "sweep spec"
        What to call it in messages.

    Returns
    -------
    dict
        ``spec`` itself.

    Raises
    ------
    InputError
        An unknown key, a wrong type, or a spec past the size limits (such as 200-character strings),
        in one line naming the key and the fix.
    """
    if not isinstance(spec, dict):
        raise InputError(f"{where}: the spec must be a mapping with 'base' and 'grid' or 'candidates'")
    _check_tree(spec, where)
    unknown = set(spec) - set(SPEC_KEYS)
    if unknown:
        raise InputError(one_line(f"{where}: unknown keys {show(sorted(unknown), 120)}; known: {sorted(SPEC_KEYS)}"))
    if sum(k in spec for k in ("grid", "candidates", "space")) != 1:
        raise InputError(f"{where}: give either 'grid' (values to combine), 'candidates' (a list of settings) or "
                         "'space' (ranges for an Optuna search)")
    _check_option(spec, where, "name", lambda v: isinstance(v, str), "a string", "my-search")
    if "space" in spec:
        _check_search_options(spec, where)
    else:
        _check_option(spec, where, "search", lambda v: v in GRID_SEARCHES,
                      "'grid' or 'random' with a grid ('tpe', 'random' or 'cmaes' search a 'space')", "random")
        given = [k for k in _SEARCH_ONLY if k in spec]
        if given:
            raise InputError(f"{where}: {', '.join(given)} belong to a search over a 'space' (search: tpe); "
                             "drop them or give a space")
    _check_option(spec, where, "samples", lambda v: _is_int(v, 1), "a positive integer", "10")
    _check_option(spec, where, "seed", lambda v: _is_int(v, 0), "a non-negative integer", "0")
    _check_option(spec, where, "select_top", lambda v: _is_int(v, 1), "a positive integer", "1")
    if "dataset" in spec:
        check_setting("dataset", spec["dataset"], where)
    if spec.get("search") == "random" and "candidates" in spec:
        raise InputError(f"{where}: search: random draws from a 'grid' (or, through Optuna, a 'space'); give one, "
                         "or drop 'search'")
    check_block(spec.get("base", {}), f"{where}: base", DEFAULTS, "known: " + ", ".join(DEFAULTS))
    if "candidates" in spec:
        _check_candidates(spec["candidates"], where)
    elif "grid" in spec:
        _check_grid(spec["grid"], where)
        _grid_size(spec)
    else:
        parse_space(spec["space"], where, SWEEP_KEYS)
    return spec


def is_search(spec: dict[str, Any]) -> bool:
    """Whether the spec is an Optuna search over a ``space`` (else candidates or a grid)."""
    return "space" in spec


def _check_search_options(spec: dict[str, Any], where: str) -> None:
    """``search``, ``trials``, ``prune`` and ``storage`` of a search over a space."""
    _check_option(spec, where, "search", lambda v: v in SPACE_SEARCHES,
                  "'tpe', 'random' or 'cmaes' with a space ('grid' needs a grid)", "tpe")
    if "trials" not in spec:
        raise InputError(f"{where}: a search over a space needs trials: N (how many configurations to train)")
    _check_option(spec, where, "trials", lambda v: _is_int(v, 1) and v <= MAX_CONFIGS,
                  f"a positive integer (at most {MAX_CONFIGS:,})", "20")
    _check_option(spec, where, "prune", lambda v: v in PRUNERS, "'median', 'hyperband' or 'none'", "hyperband")
    _check_option(spec, where, "storage", _is_storage_url, "a database URL (the default is a journal file "
                  "in --out)", "sqlite:///study.db")
    if "samples" in spec:
        raise InputError(f"{where}: samples counts draws from a grid; a search over a space counts trials: N")


def _is_storage_url(value: Any) -> bool:
    return isinstance(value, str) and value.split(":", 1)[0].split("+")[0] in _STORAGE_SCHEMES and "://" in value


def _check_candidates(candidates: Any, where: str) -> None:
    if not isinstance(candidates, list) or not candidates:
        raise InputError(f"{where}: candidates must be a non-empty list of settings, e.g. [{{lr: 0.1}}, {{lr: 0.01}}]; "
                         f"got {show(candidates)}")
    if len(candidates) > MAX_CONFIGS:
        raise InputError(f"{where}: {len(candidates):,} candidates (at most {MAX_CONFIGS:,}); split the study")
    for i, candidate in enumerate(candidates, 1):
        check_block(candidate, f"{where}: candidate {i}", SWEEP_KEYS, _SWEEP_KNOWN)


def _check_grid(grid: Any, where: str) -> None:
    if not isinstance(grid, dict):
        raise InputError(f"{where}: grid must be a mapping of settings to lists of values, e.g. "
                         f"{{lr: [0.1, 0.01]}}; got {show(grid)}")
    unknown = sorted(set(grid) - set(SWEEP_KEYS))
    if unknown:
        raise InputError(one_line(f"{where}: grid: unknown setting(s) {show(unknown, 120)}; {_SWEEP_KNOWN}"))
    for key, value in grid.items():
        for i, v in enumerate(grid_values(key, value, where)):
            check_setting(key, v, f"{where}: grid {key}[{i}]")


def grid_values(key: str, value: Any, where: str = "sweep spec") -> list[Any]:
    """The values a grid entry stands for: a list of values, or one value (a list of widths is one network)."""
    if not isinstance(value, list):
        return [value]
    if not value:
        fix = "write [[]] for no hidden layer" if key == "hidden" else "give at least one value"
        raise InputError(f"{where}: grid {key}: [] gives no value; {fix}")
    if key != "hidden":
        return value
    lists = [isinstance(v, list) for v in value]
    if all(lists):
        return value
    if not any(lists):
        return [value]  # hidden: [500, 500] is one architecture
    raise InputError(f"{where}: grid hidden mixes widths and lists; write a list of architectures, "
                     "e.g. [[500, 500], [100]]")


def _grid_size(spec: dict[str, Any]) -> int:
    """The number of combinations of the spec's grid, within the limits."""
    total = math.prod(len(grid_values(k, v)) for k, v in spec["grid"].items())
    if total > (MAX_POPULATION if spec.get("search", "grid") == "random" else MAX_CONFIGS):
        raise InputError(f"the grid has {total:,} combinations (at most {MAX_CONFIGS:,}; a random search may draw "
                         f"from {MAX_POPULATION:,}); use fewer values or search: random with samples: N")
    return total


def expand_spec(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The list of settings a spec asks for: explicit candidates, a full grid, or a random sample of it.

    Parameters
    ----------
    spec : dict
        A checked spec with ``candidates`` or ``grid`` (``search: random`` with ``samples: N``
        draws N of the grid's combinations).

    Returns
    -------
    list of dict
        One dict of settings per configuration, before the ``base`` is applied.

    Raises
    ------
    InputError
        A spec with a ``space``: a search chooses its configurations as it goes.
    """
    if is_search(spec):
        raise InputError("a search over a space has no fixed list of configurations; run it with sweep")
    if "candidates" in spec:
        combos = [dict(c) for c in spec["candidates"]]
    else:
        keys = list(spec["grid"])
        values = [grid_values(k, spec["grid"][k]) for k in keys]
        total = _grid_size(spec)
        if spec.get("search", "grid") == "random":
            rng = host_rng(spec.get("seed", 0))
            n = min(int(spec.get("samples", 10)), total)
            indices = sorted(int(i) for i in rng.choice(total, n, replace=False))
        else:
            indices = list(range(total))
        combos = [_combination(keys, values, i) for i in indices]
    if len(combos) > MAX_CONFIGS:
        raise InputError(f"the spec asks for {len(combos):,} configurations (at most {MAX_CONFIGS:,}); split the study")
    return combos


def _combination(keys: list[str], values: list[list[Any]], index: int) -> dict[str, Any]:
    """The ``index``-th combination in ``itertools.product`` order (the last key varies fastest)."""
    combo: dict[str, Any] = {}
    for key, options in zip(reversed(keys), reversed(values), strict=True):
        index, digit = divmod(index, len(options))
        combo[key] = options[digit]
    return {k: combo[k] for k in keys}
