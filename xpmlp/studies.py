"""The homework studies as one command each: ``compare`` (activations) and ``sweep`` (tuning).

Each study writes to its output folder ``report.md`` (the command, the settings, the
tables and the plots), ``results.json``, and one run folder per configuration exactly as
``xpmlp train`` writes it. A run whose folder already holds a ``metrics.json`` for the same
configuration is not trained again, so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing as mp
import os
import shlex
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import yaml

from . import checkpoint, plots
from .backend import host_rng
from .errors import DivergenceError, InputError
from .io import atomic_write_json, atomic_write_text
from .runs import load_data, make_config, train_run

#: The two activation studies of the homework. ``cifar10``: the two-layer network of the
#: CIFAR-10 assignment (iteration regime, std-1e-4 init, mean-image subtraction, lr decay
#: 0.95 per epoch); ``mnist``: the 784-500-500-10 network of the second study.
PRESETS: dict[str, dict[str, Any]] = {
    "cifar10": {
        "dataset": "cifar10", "hidden": [200], "activations": ["relu", "leaky_relu", "swish", "selu"],
        "iterations": 2000, "batch_size": 200, "log_every": 100, "lr": 1e-3, "lr_schedule": "exp:0.95",
        "optimizer": "sgd", "reg": 0.25, "init": "std:1e-4", "preprocess": "mean-image", "val_size": 1000,
    },
    "mnist": {
        "dataset": "mnist", "hidden": [500, 500], "activations": ["sigmoid", "relu", "tanh"],
        "epochs": 100, "batch_size": 128, "lr": 1e-3, "optimizer": "adam", "reg": 1e-8,
        "init": "xavier", "preprocess": "scale", "val_size": 5000,
    },
}


def _command_line() -> str:
    return "xpmlp " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else "xpmlp"


#: Settings that do not change what a run computes (where the data or the device is).
_PLACE_KEYS = ("device", "data_dir", "download")


def _run_key(cfg: dict[str, Any]) -> str:
    """A stable folder name for a run config: readable, plus a hash of every setting that matters,
    so two configurations never share a folder."""
    hidden = "-".join(str(h) for h in cfg["hidden"]) or "linear"
    length = f"e{cfg['epochs']}" if cfg.get("epochs") else f"i{cfg['iterations']}"
    digest = hashlib.sha256(json.dumps({k: v for k, v in cfg.items() if k not in _PLACE_KEYS},
                                       sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{hidden}_{cfg['activation']}_{cfg['optimizer']}_lr{cfg['lr']:g}_reg{cfg['reg']:g}_{length}_{digest}"


def finished_metrics(run_dir: Path, cfg: dict[str, Any]) -> dict[str, Any] | None:
    """The metrics of a finished run with the same settings, or None (then it must be trained)."""
    metrics, config = run_dir / "metrics.json", run_dir / "config.json"
    if not metrics.is_file() or not config.is_file():
        return None
    try:
        done = json.loads(config.read_text())
        result = json.loads(metrics.read_text())
    except (OSError, ValueError):
        return None
    same = all(done.get(k) == v for k, v in cfg.items() if k not in _PLACE_KEYS)
    # completed, early-stopped and diverged runs are results; only an interrupted one is trained on
    ended = not str(result.get("stopped", "interrupted")).startswith("interrupted")
    return result if same and ended else None


def run_many(configs: list[dict[str, Any]], out: Path, *, jobs: int = 1, log: Callable[[str], None] = print,
             progress: str = "lines") -> list[dict[str, Any]]:
    """Train each config into ``out/runs/<key>`` (skipping finished ones); returns one row per config.

    With ``jobs > 1`` the runs go to that many worker processes, each on the configured device
    and with the CPU's BLAS threads divided between them.
    """
    rows: list[dict[str, Any] | None] = [None] * len(configs)
    todo = []
    for i, cfg in enumerate(configs):
        run_dir = out / "runs" / _run_key(cfg)
        done = finished_metrics(run_dir, cfg)
        if done is not None:
            log(f"[{i + 1}/{len(configs)}] {run_dir.name}: already finished, skipped")
            rows[i] = {"config": cfg, "run_dir": str(run_dir), "metrics": done, "skipped": True}
        else:
            todo.append((i, cfg, run_dir))
    if jobs <= 1 or len(todo) <= 1:
        prepared_cache: dict[str, Any] = {}
        for i, cfg, run_dir in todo:
            log(f"[{i + 1}/{len(configs)}] training {run_dir.name}")
            key = json.dumps({k: cfg[k] for k in ("dataset", "data_dir", "val_size", "subset", "preprocess", "seed")})
            if key not in prepared_cache:
                prepared_cache = {key: load_data(cfg, log)}  # one dataset in memory at a time
            metrics = _train_one(cfg, run_dir, log, progress, prepared_cache[key])
            rows[i] = {"config": cfg, "run_dir": str(run_dir), "metrics": metrics, "skipped": False}
    else:

        threads = max(1, (os.cpu_count() or 1) // jobs)
        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"),
                                 initializer=_init_worker, initargs=(threads,)) as pool:
            futures = {pool.submit(_train_one, cfg, run_dir, None, "lines", None): (i, cfg, run_dir)
                       for i, cfg, run_dir in todo}
            for fut in as_completed(futures):
                i, cfg, run_dir = futures[fut]
                metrics = fut.result()
                log(f"[{i + 1}/{len(configs)}] {run_dir.name}: val acc {_fmt(metrics['best_val_acc'])}, "
                    f"test acc {_fmt(metrics['test_acc'])} ({metrics['stopped']})")
                rows[i] = {"config": cfg, "run_dir": str(run_dir), "metrics": metrics, "skipped": False}
    return [r for r in rows if r is not None]


def _init_worker(threads: int) -> None:
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(threads)
    except ImportError:  # without threadpoolctl the workers share the cores as the OS sees fit
        pass


def _train_one(cfg: dict[str, Any], run_dir: Path, log: Callable[[str], None] | None, progress: str,
               prepared: Any) -> dict[str, Any]:
    try:
        return train_run(cfg, run_dir, log=log, progress=progress, prepared=prepared)
    except DivergenceError as exc:
        # one diverged configuration is a result of the study, not the end of it
        metrics = {"stopped": f"diverged: {exc}", "best_val_acc": None, "final_val_acc": None, "test_acc": None,
                   "final_loss": None, "train_seconds": None, "params": None,
                   "sizes": None, "backend": cfg["device"]}
        atomic_write_json(run_dir / "metrics.json", metrics)
        if log:
            log(f"{run_dir.name}: {exc}")
        return metrics


def _history(run_dir: str) -> dict[str, Any] | None:
    """A run's history, or None when it has no evaluation to plot (it diverged before the first)."""
    path = Path(run_dir) / "history.json"
    history = json.loads(path.read_text()) if path.is_file() else None
    return history if history and history.get("eval") else None


def _plottable(histories: dict[str, Any]) -> dict[str, Any]:
    return {k: h for k, h in histories.items() if h is not None}


def _fmt(v: Any, spec: str = ".4f") -> str:
    return "–" if v is None else format(v, spec)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*r) for r in rows])


# ---------------------------------------------------------------------------
# compare: one network, several activations
# ---------------------------------------------------------------------------

def compare(settings: dict[str, Any], out: str | Path, *, jobs: int = 1, log: Callable[[str], None] = print,
            command: str | None = None) -> dict[str, Any]:
    """Train the same network once per activation; write curves, weight grids, tables, report.

    ``settings``: run settings (see ``runs.DEFAULTS``) plus ``activations`` (a list).
    """

    out = Path(out)
    settings = dict(settings)
    activations = settings.pop("activations")
    if not activations:
        raise InputError("give at least one activation, e.g. --activations relu tanh")
    configs = [make_config(**settings, activation=a) for a in activations]
    out.mkdir(parents=True, exist_ok=True)
    rows = run_many(configs, out, jobs=jobs, log=log)
    histories = _plottable({r["config"]["activation"]: _history(r["run_dir"]) for r in rows})
    if histories:
        plots.plot_loss(histories, out / "loss.png", title="Training loss per activation")
        plots.plot_accuracy(histories, out / "accuracy.png", title="Accuracy per activation")
    grids = {}
    for r in rows:
        if not (Path(r["run_dir"]) / "checkpoint.npz").is_file():
            continue
        W1, shape = _first_layer(Path(r["run_dir"]))
        path = out / f"W1_{r['config']['activation']}.png"
        plots.weight_grid(W1, shape, path, title=f"First-layer weights ({r['config']['activation']})")
        grids[r["config"]["activation"]] = path.name
    header = ["activation", "final loss", "best val acc", "final val acc", "test acc", "train s"]
    table = [[r["config"]["activation"], _fmt(r["metrics"]["final_loss"], ".6f"),
              _fmt(r["metrics"]["best_val_acc"]), _fmt(r["metrics"]["final_val_acc"]),
              _fmt(r["metrics"]["test_acc"]), _fmt(r["metrics"]["train_seconds"], ".1f")] for r in rows]
    log(text_table(header, table))
    results = {"study": "compare", "command": command or _command_line(), "settings": settings,
               "activations": activations, "runs": rows, "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    atomic_write_json(out / "results.json", results)
    base = configs[0]
    sizes = next((r["metrics"]["params"] for r in rows if r["metrics"].get("params")), None)
    report = [
        f"# Activation comparison on {base['dataset']}", "",
        f"Command: `{results['command']}`", "",
        "Settings: " + ", ".join(f"{k} = {v}" for k, v in settings.items() if v is not None), "",
        f"Network: hidden {base['hidden']}, {_fmt(sizes, ',')} parameters; device {base['device']}; "
        f"date {results['date']}.", "",
        markdown_table(header, table), "",
        "## Training loss", "", "![loss](loss.png)", "",
        "## Accuracy (dashed: train subset, solid: validation)", "", "![accuracy](accuracy.png)", "",
        "## First-layer weights", "",
    ]
    report += [f"### {a}\n\n![W1 {a}]({p})\n" for a, p in grids.items()]
    atomic_write_text(out / "report.md", "\n".join(report) + "\n")
    log(f"report: {out / 'report.md'}")
    return results


def _first_layer(run_dir: Path) -> tuple[Any, tuple[int, ...]]:
    tree = checkpoint.load(run_dir / "checkpoint.npz")
    return tree["model"]["W1"], tuple(tree["data"]["image_shape"])


# ---------------------------------------------------------------------------
# sweep: a hyper-parameter search, selected by validation accuracy only
# ---------------------------------------------------------------------------

SWEEP_KEYS = ("hidden", "activation", "optimizer", "lr", "momentum", "reg", "epochs", "batch_size",
              "lr_schedule", "weight_decay", "init", "preprocess")


def load_spec(path: str | Path) -> dict[str, Any]:
    """Read a sweep spec (YAML or JSON) and check its keys."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read sweep spec {path}: {exc.strerror}; "
                         "give the path of a .yaml or .json file") from None
    try:
        if path.suffix == ".json":
            spec = json.loads(text)
        else:
            spec = yaml.safe_load(text)
    except Exception as exc:
        raise InputError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'} ({exc}); "
                         "fix the syntax") from None
    return check_spec(spec, str(path))


def check_spec(spec: Any, where: str = "sweep spec") -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise InputError(f"{where}: the spec must be a mapping with 'base' and 'grid' or 'candidates'")
    known = {"name", "dataset", "base", "grid", "candidates", "search", "samples", "seed", "select_top"}
    unknown = set(spec) - known
    if unknown:
        raise InputError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    if not any(k in spec for k in ("grid", "candidates")):
        raise InputError(f"{where}: give 'grid' (values to combine) or 'candidates' (a list of settings)")
    for block in [spec.get("grid", {})] + list(spec.get("candidates", [])):
        bad = set(block) - set(SWEEP_KEYS)
        if bad:
            raise InputError(f"{where}: unknown setting(s) {sorted(bad)}; a sweep varies {', '.join(SWEEP_KEYS)}")
    if spec.get("search", "grid") not in ("grid", "random"):
        raise InputError(f"{where}: search must be 'grid' or 'random'")
    return spec


def expand_spec(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The list of settings a spec asks for: explicit candidates, a full grid, or a random sample of it."""
    if "candidates" in spec:
        return [dict(c) for c in spec["candidates"]]
    grid = spec["grid"]
    keys = list(grid)
    values = [v if isinstance(v, list) and not (k == "hidden" and v and isinstance(v[0], int)) else [v]
              for k, v in ((k, grid[k]) for k in keys)]
    combos = [dict(zip(keys, combo)) for combo in itertools.product(*values)]
    if spec.get("search", "grid") == "random":
        rng = host_rng(spec.get("seed", 0))
        n = min(int(spec.get("samples", 10)), len(combos))
        combos = [combos[i] for i in sorted(rng.choice(len(combos), n, replace=False))]
    return combos


def sweep(spec: dict[str, Any], out: str | Path, *, overrides: dict[str, Any] | None = None, jobs: int = 1,
          log: Callable[[str], None] = print, command: str | None = None) -> dict[str, Any]:
    """Train every configuration of ``spec``; rank by best validation accuracy; report test accuracy.

    Selection never looks at the test set: the ranking and the chosen model use validation
    accuracy only; test accuracy is reported for the selected model(s) afterwards.
    """

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = {**spec.get("base", {}), **({"dataset": spec["dataset"]} if "dataset" in spec else {})}
    # the command line wins over the spec (e.g. --epochs 1 for a quick version)
    configs = [make_config(**{**base, **c, **(overrides or {})}) for c in expand_spec(spec)]
    if not configs:
        raise InputError("the sweep spec yields no configuration")
    rows = run_many(configs, out, jobs=jobs, log=log)
    ranked = rank_by_validation(rows)
    top = int(spec.get("select_top", 1))
    header = ["rank", "structure", "activation", "optimizer", "epochs", "lr", "λ", "best val acc",
              "final test acc", "selected"]
    table = []
    for i, r in enumerate(ranked, 1):
        c, m = r["config"], r["metrics"]
        structure = "-".join(str(s) for s in m["sizes"]) if m.get("sizes") else "-".join(map(str, c["hidden"]))
        table.append([str(i), structure, c["activation"], c["optimizer"], str(c["epochs"] or c["iterations"]),
                      f"{c['lr']:g}", f"{c['reg']:g}", _fmt(m["best_val_acc"]), _fmt(m["test_acc"]),
                      "yes" if i <= top else ""])
    log(text_table(header, table))
    histories = _plottable({f"#{i} " + _run_key(r["config"]): _history(r["run_dir"])
                            for i, r in enumerate(ranked, 1)})
    if histories:
        plots.plot_accuracy(histories, out / "accuracy.png", title="Accuracy per candidate")
    selected = ranked[:top]
    results = {"study": "sweep", "command": command or _command_line(), "spec": spec,
               "ranking": [{"rank": i, **r} for i, r in enumerate(ranked, 1)],
               "selected": [{"run_dir": r["run_dir"], "config": r["config"],
                             "best_val_acc": r["metrics"]["best_val_acc"], "test_acc": r["metrics"]["test_acc"]}
                            for r in selected],
               "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    atomic_write_json(out / "results.json", results)
    best = selected[0]
    report = [
        f"# Hyper-parameter sweep{': ' + spec['name'] if spec.get('name') else ''} on {configs[0]['dataset']}", "",
        f"Command: `{results['command']}`", "",
        f"{len(configs)} configurations, ranked by best validation accuracy (the test set is not used to "
        f"choose: the test column is reported, never used); the top {top} selected. Date {results['date']}, device "
        f"{configs[0]['device']}.", "",
        markdown_table(header, table), "",
        f"Selected: `{Path(best['run_dir']).name}` — validation {_fmt(best['metrics']['best_val_acc'])}, "
        f"test {_fmt(best['metrics']['test_acc'])}.", "",
        "## Accuracy per candidate (dashed: train subset, solid: validation)", "", "![accuracy](accuracy.png)", "",
    ]
    atomic_write_text(out / "report.md", "\n".join(report) + "\n")
    log(f"report: {out / 'report.md'}")
    return results


def rank_by_validation(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows sorted by best validation accuracy, highest first (ties: fewer parameters first)."""
    def key(r: dict[str, Any]) -> tuple[float, int]:
        val = r["metrics"].get("best_val_acc")
        return (-(val if val is not None else -1.0), r["metrics"].get("params") or 0)
    return sorted(rows, key=key)
