"""``sweep``: a hyper-parameter search, selected by validation accuracy only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import plots
from ..network import activation_label
from ..runfolder import check_out
from .checks import make_configs
from .execute import Engine, Log, inside, run_key, run_many
from .ranking import rank_by_validation, ranking_header, ranking_row, structure, varying_settings
from .report import finish, finished, fmt, histories, results_of, table_or_note, text_table, unfinished_section
from .search import search
from .spec import check_spec, expand_spec, is_search

__all__ = ["rank_by_validation", "sweep"]


def _distinct(configs: list[dict[str, Any]], log: Log) -> list[dict[str, Any]]:
    """The configs with repeats dropped (e.g. candidates that only differed in what the command line set)."""
    seen: dict[str, int] = {}
    for i, cfg in enumerate(configs, 1):
        first = seen.setdefault(run_key(cfg), i)
        if first != i:
            log(f"configuration {i} is the same as configuration {first}; it is trained once")
    return [configs[i - 1] for i in seen.values()]


def sweep(spec: dict[str, Any], out: str | Path, *, overrides: dict[str, Any] | None = None,
          jobs: int | Engine = 1, log: Log = print, command: str | None = None) -> dict[str, Any]:
    """Train every configuration of ``spec``; rank by best validation accuracy; report test accuracy.

    A spec with a ``space`` is an Optuna search: its trials are chosen as it goes. Selection never
    looks at the test set: the ranking and the chosen model use validation accuracy only; test
    accuracy is reported for the selected model(s) afterwards. Every configuration is checked
    before the first run starts and before anything is written.

    Parameters
    ----------
    spec : dict
        A sweep spec (as :func:`load_spec` reads it): ``base`` and ``candidates``, ``grid`` or
        ``space``.
    out : str or path
        The study's folder.
    overrides : dict, optional
        Settings that win over the spec's (the command line's flags).
    jobs : int or Engine, default 1
        Local worker processes, or an engine (``xpmlp.studies.engines.make_engine``: Dask).
    log : callable, default print
        Called with each line of progress.
    command : str, optional
        The command line to record in the report.

    Returns
    -------
    dict
        What ``results.json`` holds: ``ranking`` (finished runs, best first, each with ``rank``,
        ``config``, ``metrics``), ``selected`` and ``unfinished``; a search adds ``pruned``,
        ``failed`` and ``search``.

    Raises
    ------
    InputError
        A bad spec or setting, before anything is written.
    StudyInterrupted
        Ctrl-C stopped the study; unfinished runs are listed apart, never ranked.
    """
    spec = check_spec(spec)
    if is_search(spec):
        return search(spec, out, overrides=overrides, jobs=jobs, log=log, command=command)
    out = Path(out)
    base = {**spec.get("base", {}), **({"dataset": spec["dataset"]} if "dataset" in spec else {})}
    # the command line wins over the spec (e.g. --epochs 1 for a quick version)
    configs = _distinct(make_configs(base, expand_spec(spec), overrides), log)
    check_out(out)
    rows = run_many(configs, out, jobs=jobs, log=log)
    ranked = rank_by_validation(finished(rows))
    top = min(int(spec.get("select_top", 1)), len(ranked))
    extra = varying_settings(ranked)
    header = ranking_header(extra)
    table = [ranking_row(i, r, top, extra) for i, r in enumerate(ranked, 1)]
    if table:
        log(text_table(header, table))
    curves = histories({_legend(i, r): r["run_dir"] for i, r in enumerate(ranked, 1)})
    if curves:
        plots.plot_accuracy(curves, inside(out, "accuracy.png"), title="Accuracy per candidate")
    selected = ranked[:top]
    results = results_of("sweep", command, rows, spec=spec,
                         ranking=[{"rank": i, **r} for i, r in enumerate(ranked, 1)],
                         selected=[{"run_dir": r["run_dir"], "config": r["config"],
                                    "best_val_acc": r["metrics"]["best_val_acc"], "test_acc": r["metrics"]["test_acc"]}
                                   for r in selected])
    return finish(out, results, _report(spec, configs, results, header, table, rows), rows, log)


def _report(spec: dict[str, Any], configs: list[dict[str, Any]], results: dict[str, Any], header: list[str],
            table: list[list[str]], rows: list[dict[str, Any]]) -> list[str]:
    """report.md's lines."""
    top = len(results["selected"])
    if results["selected"]:
        best = results["selected"][0]
        chosen = (f"Selected: `{Path(best['run_dir']).name}` — validation {fmt(best['best_val_acc'])}, "
                  f"test {fmt(best['test_acc'])}.")
    else:
        chosen = "No run has finished yet: nothing is selected."
    return [
        f"# Hyper-parameter sweep{': ' + spec['name'] if spec.get('name') else ''} on {configs[0]['dataset']}", "",
        f"Command: `{results['command']}`", "",
        f"{len(configs)} configurations, ranked by best validation accuracy (the test set is not used to "
        f"choose: the test column is reported, never used); the top {top} selected. Date {results['date']}, device "
        f"{configs[0]['device']}.", "",
        table_or_note(header, table), "",
        chosen, "",
        *unfinished_section(rows),
        "## Accuracy per candidate (dashed: train subset, solid: validation)", "", "![accuracy](accuracy.png)", "",
    ]


def _legend(rank: int, row: dict[str, Any]) -> str:
    """A curve's legend: ``#3 784-500-500-10 tanh+relu lr 0.001 λ 0.001 e200`` (the rank keeps it unique)."""
    c = row["config"]
    length = f"e{c['epochs']}" if c.get("epochs") else f"i{c['iterations']}"
    return f"#{rank} {structure(row)} {activation_label(c['activation'])} lr {c['lr']:g} λ {c['reg']:g} {length}"
