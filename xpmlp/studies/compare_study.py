"""``compare``: one network trained once per activation; curves, weight grids, table, report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import checkpoint, plots
from ..errors import InputError
from ..runfolder import check_out
from ..settings import DEFAULTS
from .checks import check_block, check_setting, make_configs, show
from .execute import Log, inside, run_many, safe_name
from .report import finish, finished, fmt, histories, results_of, table_or_note, text_table, unfinished_section

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

MAX_ACTIVATIONS = 100


def _check_activations(activations: Any) -> list[str]:
    if not isinstance(activations, list) or not activations:
        raise InputError(f"give at least one activation, e.g. --activations relu tanh; got {show(activations)}")
    if len(activations) > MAX_ACTIVATIONS:
        raise InputError(f"{len(activations)} activations (at most {MAX_ACTIVATIONS}); compare fewer at once")
    for a in activations:
        check_setting("activation", a, "activations")
    twice = sorted({a for a in activations if activations.count(a) > 1})
    if twice:
        raise InputError(f"activations: {', '.join(twice)} listed more than once; list each once")
    return activations


def compare(settings: dict[str, Any], out: str | Path, *, jobs: int = 1, log: Log = print,
            command: str | None = None) -> dict[str, Any]:
    """Train the same network once per activation; write curves, weight grids, tables, report.

    ``settings``: run settings (see ``xpmlp.settings.DEFAULTS``) plus ``activations`` (a list).
    Everything is checked before the first run. Ctrl-C stops the study after the current run
    checkpoints: the report lists the unfinished runs apart and ``StudyInterrupted`` is raised.
    """
    out = Path(out)
    settings = dict(settings)
    activations = _check_activations(settings.pop("activations", None))
    check_block(settings, "settings", DEFAULTS, "known: " + ", ".join(DEFAULTS))
    configs = make_configs(settings, [{"activation": a} for a in activations])
    check_out(out)
    rows = run_many(configs, out, jobs=jobs, log=log)
    done = finished(rows)
    grids = _plots(done, out)
    header = ["activation", "final loss", "best val acc", "final val acc", "test acc", "train s"]
    table = [[r["config"]["activation"], fmt(r["metrics"]["final_loss"], ".6f"),
              fmt(r["metrics"]["best_val_acc"]), fmt(r["metrics"]["final_val_acc"]),
              fmt(r["metrics"]["test_acc"]), fmt(r["metrics"]["train_seconds"], ".1f")] for r in done]
    if table:
        log(text_table(header, table))
    results = results_of("compare", command, rows, settings=settings, activations=activations, runs=rows)
    base = configs[0]
    sizes = next((r["metrics"]["params"] for r in done if r["metrics"].get("params")), None)
    report = [
        f"# Activation comparison on {base['dataset']}", "",
        f"Command: `{results['command']}`", "",
        "Settings: " + ", ".join(f"{k} = {v}" for k, v in settings.items() if v is not None), "",
        f"Network: hidden {base['hidden']}, {fmt(sizes, ',')} parameters; device {base['device']}; "
        f"date {results['date']}.", "",
        table_or_note(header, table), "",
        *unfinished_section(rows),
        "## Training loss", "", "![loss](loss.png)", "",
        "## Accuracy (dashed: train subset, solid: validation)", "", "![accuracy](accuracy.png)", "",
        "## First-layer weights", "",
    ]
    report += [f"### {a}\n\n![W1 {a}]({p})\n" for a, p in grids.items()]
    return finish(out, results, report, rows, log)


def _plots(done: list[dict[str, Any]], out: Path) -> dict[str, str]:
    """Loss and accuracy curves of the finished runs and their first-layer weight grids; {activation: file}."""
    curves = histories({r["config"]["activation"]: r["run_dir"] for r in done})
    if curves:
        plots.plot_loss(curves, inside(out, "loss.png"), title="Training loss per activation")
        plots.plot_accuracy(curves, inside(out, "accuracy.png"), title="Accuracy per activation")
    grids = {}
    for r in done:
        if not (Path(r["run_dir"]) / "checkpoint.npz").is_file():
            continue
        activation = r["config"]["activation"]
        tree = checkpoint.load(Path(r["run_dir"]) / "checkpoint.npz")
        path = inside(out, f"W1_{safe_name(activation)}.png")
        plots.weight_grid(tree["model"]["W1"], tuple(tree["data"]["image_shape"]), path,
                          title=f"First-layer weights ({activation})")
        grids[activation] = path.name
    return grids
