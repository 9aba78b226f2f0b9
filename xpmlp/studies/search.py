"""Optuna search over a spec's ``space``: ``search: tpe|random|cmaes``, ``trials: N``, ``prune: median|hyperband``.

Each trial is an ordinary run folder (``runs/trial-0007_<key>``) trained by the study's engine
(this process, local worker processes, or a Dask cluster). While it trains, a callback reports
its validation accuracy at every evaluation (``trial.report(val_acc, evaluation)``) and, when
the pruner says so, asks the trainer to stop: the run ends "pruned at step N" with its
checkpoint and metrics, and the study records the trial as PRUNED. A finished trial's value is
its best validation accuracy; pruned trials are listed apart and never selected, and the test
set is never looked at to choose.

The study lives in ``<out>/optuna.journal`` (Optuna's ``JournalStorage`` on a
``JournalFileBackend``: every worker opens it, so ``--out`` must be storage they all see) or in
the database that ``storage:`` names (``sqlite:///...``, ``postgresql://...``). Running the same
command again loads the study, resumes the trials an interruption left running from their
checkpoints, and asks for new trials only until the study holds ``trials``.
"""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import plots
from ..callbacks import Callback
from ..errors import InputError
from ..network import activation_label
from ..runfolder import check_out
from .checks import make_configs
from .execute import Engine, LocalEngine, Log, RunContext, Task, check_data, inside, run_key, run_tasks
from .ranking import rank_by_validation, structure
from .report import (
    finish,
    finished,
    fmt,
    histories,
    markdown_table,
    results_of,
    table_or_note,
    text_table,
    unfinished_section,
)
from .runfolders import Outcome, prepare_task, read_json, row
from .space import Dimension, corners, parse_space
from .spec import SWEEP_KEYS

INSTALL = "pip install 'xpmlp[optuna]'"
JOURNAL = "optuna.journal"
DEFAULT_NAME = "xpmlp-search"


def import_optuna(search: str = "tpe") -> Any:
    """``optuna`` (quiet), or a one-line InputError saying what to install."""
    try:
        import optuna
    except ImportError:
        raise InputError(f"search: {search} runs on Optuna; install it with: {INSTALL} (grid and candidates "
                         "need nothing more)") from None
    if search == "cmaes" and importlib.util.find_spec("cmaes") is None:
        raise InputError("search: cmaes needs the cmaes package; install it with: pip install cmaes")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def open_storage(optuna: Any, ref: str) -> Any:
    """The study's storage: ``journal:<path>`` (a journal file) or a database URL."""
    if ref.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return JournalStorage(JournalFileBackend(ref.removeprefix("journal:")))
    return ref


def make_pruner(optuna: Any, prune: str, max_resource: int) -> Any:
    if prune == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    if prune == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(max_resource, 1), reduction_factor=3)
    return optuna.pruners.NopPruner()


def make_sampler(optuna: Any, search: str, seed: int, trials: int) -> Any:
    if search == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if search == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(1, min(10, trials // 3)))


def distribution(optuna: Any, d: Dimension) -> Any:
    """Optuna's distribution of one dimension of the space."""
    dist = optuna.distributions
    if d.choices is not None:
        return dist.CategoricalDistribution(d.encoded_choices())
    if d.integer:
        return dist.IntDistribution(int(d.low), int(d.high), log=d.log, step=int(d.step or 1))
    return dist.FloatDistribution(float(d.low), float(d.high), log=d.log, step=d.step)


def evaluations(cfg: dict[str, Any]) -> int:
    """How many evaluation points a run has (epochs, or log windows): the pruner's largest step."""
    return cfg["epochs"] or math.ceil(cfg["iterations"] / cfg["log_every"])


@dataclass(frozen=True)
class TrialHook:
    """On a task (picklable): where the trial lives, so the run reports to it and asks the pruner."""

    storage: str
    study_name: str
    trial_id: int
    prune: str
    max_resource: int

    def callbacks(self) -> list[Callback]:
        optuna = import_optuna()
        study = optuna.load_study(study_name=self.study_name, storage=open_storage(optuna, self.storage),
                                  sampler=optuna.samplers.RandomSampler(),
                                  pruner=make_pruner(optuna, self.prune, self.max_resource))
        return [PruningCallback(optuna.trial.Trial(study, self.trial_id))]


class PruningCallback(Callback):
    """Reports each evaluation's validation accuracy to the trial; stops the run when it should be pruned."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def on_evaluation(self, trainer: Any, record: dict[str, Any]) -> bool:
        value = record.get("val_acc")
        if value is None:
            return False
        step = len(trainer.history.eval)
        self.trial.report(value, step)
        if not self.trial.should_prune():
            return False
        trainer.history.stopped = f"pruned at step {trainer.step} (evaluation {step}): val acc {value:.4f}"
        trainer.log(trainer.history.stopped)
        return True


@dataclass
class _Plan:
    """A search's fixed parts: its settings, space, study and where its runs go."""

    spec: dict[str, Any]
    base: dict[str, Any]
    overrides: dict[str, Any] | None
    dims: list[Dimension]
    out: Path
    storage: str
    study_name: str
    max_resource: int

    def settings(self, params: dict[str, Any]) -> dict[str, Any]:
        return {d.key: d.decode(params[d.key]) for d in self.dims if d.key in params}

    def task(self, number: int, params: dict[str, Any], trial_id: int | None) -> Task:
        cfg = make_configs(self.base, [self.settings(params)], self.overrides)[0]
        prune = self.spec.get("prune", "none")
        hooks = (TrialHook(self.storage, self.study_name, trial_id, prune, self.max_resource),) \
            if trial_id is not None and prune != "none" else ()
        return Task(number, cfg, inside(self.out, "runs", f"trial-{number:04d}_{run_key(cfg)}"), hooks=hooks)


class TrialSource:
    """Hands out trials: first those an earlier run left running, then new ones until the study holds
    ``trials``; tells the study how each ended (finished, pruned; a diverged run fails the trial)."""

    def __init__(self, optuna: Any, study: Any, plan: _Plan, log: Log) -> None:
        self.optuna, self.study, self.plan, self.log = optuna, study, plan, log
        self.states = optuna.trial.TrialState
        self.distributions = {d.key: distribution(optuna, d) for d in plan.dims}
        self.stale = [t for t in study.get_trials(deepcopy=False, states=(self.states.RUNNING,))
                      if t.user_attrs.get("out") == str(plan.out)]
        if self.stale:
            log(f"search: resuming {len(self.stale)} trial(s) that an earlier run left unfinished")
        self.outcomes: dict[int, Outcome] = {}

    def next(self) -> Task | None:
        while True:
            if self.stale:
                t = self.stale.pop(0)
                number, trial_id, params = t.number, t._trial_id, t.params
            elif len(self.study.get_trials(deepcopy=False)) < self.plan.spec["trials"]:
                trial = self.study.ask(self.distributions)
                trial.set_user_attr("out", str(self.plan.out))
                number, trial_id, params = trial.number, trial._trial_id, trial.params
            else:
                return None
            task = self.plan.task(number, params, trial_id)
            done = prepare_task(task)
            if done is None:
                return task
            self._tell(number, done)  # it finished, but the study never heard (the driver stopped first)

    def done(self, task: Task, outcome: Outcome) -> None:
        self.outcomes[task.index] = outcome
        if outcome.status == "finished":
            self._tell(task.index, outcome.metrics or {})
        # failed, interrupted or not started: the trial stays RUNNING and the next run resumes it

    def _tell(self, number: int, metrics: dict[str, Any]) -> None:
        if str(metrics.get("stopped", "")).startswith("pruned"):
            self.study.tell(number, state=self.states.PRUNED, skip_if_finished=True)
        elif metrics.get("best_val_acc") is None:  # diverged: a result, but no value to compare
            self.study.tell(number, state=self.states.FAIL, skip_if_finished=True)
        else:
            self.study.tell(number, float(metrics["best_val_acc"]), skip_if_finished=True)

    def rows(self, stopped_by: str) -> list[dict[str, Any]]:
        """One row per trial of this ``--out``, with ``trial`` and ``state`` (complete, pruned, fail, running)."""
        result = []
        for t in sorted(self.study.get_trials(deepcopy=False), key=lambda t: t.number):
            if t.user_attrs.get("out") != str(self.plan.out):
                continue
            task = self.plan.task(t.number, t.params, None)
            metrics = read_json(task.run_dir / "metrics.json")
            outcome = self.outcomes.get(t.number)
            if t.state != self.states.RUNNING:
                status = "finished"
            elif outcome is not None and outcome.status == "failed":
                status = "failed"
            else:
                status = "interrupted" if task.run_dir.exists() else "not started"
            r = row(task, metrics, status, signal_name=stopped_by or "SIGINT",
                    error=outcome.error if outcome is not None else None)
            result.append({**r, "trial": t.number, "state": t.state.name.lower(),
                           "params": self.plan.settings(t.params)})
        return result


def _open_study(optuna: Any, spec: dict[str, Any], plan: _Plan) -> Any:
    """The study (created, or loaded to continue); refused when it was started over another space."""
    study = optuna.create_study(study_name=plan.study_name, storage=open_storage(optuna, plan.storage),
                                sampler=make_sampler(optuna, spec.get("search", "tpe"), spec.get("seed", 0),
                                                     spec["trials"]),
                                pruner=make_pruner(optuna, spec.get("prune", "none"), plan.max_resource),
                                direction="maximize", load_if_exists=True)
    space = json.dumps(spec["space"], sort_keys=True)
    saved = study.user_attrs.get("xpmlp_space")
    if saved is None:
        study.set_user_attr("xpmlp_space", space)
    elif saved != space:
        raise InputError(f"the study {plan.study_name!r} in {plan.storage.removeprefix('journal:')} was started "
                         "over another space; give another --out (or another name) for a new study")
    return study


def search(spec: dict[str, Any], out: str | Path, *, overrides: dict[str, Any] | None = None,
           jobs: int | Engine = 1, log: Log = print, command: str | None = None) -> dict[str, Any]:
    """Run (or continue) the Optuna search of ``spec`` in ``out``; rank finished trials by validation accuracy.

    Every bound and choice of the space is checked (settings, data, batch size) before the first
    trial and before anything is written. Ctrl-C stops it as it stops a sweep: the report marks
    the unfinished trials and ``StudyInterrupted`` is raised; the next run resumes them.
    """
    optuna = import_optuna(spec.get("search", "tpe"))
    out = Path(out)
    dims = parse_space(spec["space"], "sweep spec", SWEEP_KEYS)
    base = {**spec.get("base", {}), **({"dataset": spec["dataset"]} if "dataset" in spec else {})}
    try:
        edges = make_configs(base, corners(dims), overrides)
    except InputError as exc:
        raise InputError(f"space: {exc}") from None
    check_out(out)
    cache = check_data([Task(i, cfg, inside(out, "runs", run_key(cfg))) for i, cfg in enumerate(edges)], log)
    storage = spec.get("storage") or "journal:" + str((out / JOURNAL).absolute())
    plan = _Plan(spec, base, overrides, dims, out.absolute(), storage, spec.get("name") or DEFAULT_NAME,
                 max(evaluations(cfg) for cfg in edges))
    out.mkdir(parents=True, exist_ok=True)
    source = TrialSource(optuna, _open_study(optuna, spec, plan), plan, log)
    engine = LocalEngine(jobs) if isinstance(jobs, int) else jobs
    devices = frozenset(str(cfg["device"]) for cfg in edges)
    stopped_by = run_tasks(source, engine, RunContext(spec["trials"], None, devices, cache, log, "lines"))
    return _report(spec, plan, source.rows(stopped_by), log, command)


def _sampled(r: dict[str, Any]) -> str:
    def text(k: str, v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else activation_label(v) if k == "activation" else str(v)
    return ", ".join(f"{k} {text(k, v)}" for k, v in r["params"].items())


def _report(spec: dict[str, Any], plan: _Plan, rows: list[dict[str, Any]], log: Log,
            command: str | None) -> dict[str, Any]:
    """Rank the complete trials, list the pruned and failed ones apart; results.json, report.md, plot."""
    done = finished(rows)
    ranked = rank_by_validation([r for r in done if r["state"] == "complete"])
    pruned = [r for r in done if r["state"] == "pruned"]
    failed = [r for r in done if r["state"] == "fail"]
    top = min(int(spec.get("select_top", 1)), len(ranked))
    header = ["rank", "trial", "structure", "sampled settings", "best val acc", "final test acc", "selected"]
    table = [[str(i), str(r["trial"]), structure(r), _sampled(r), fmt(r["metrics"]["best_val_acc"]),
              fmt(r["metrics"]["test_acc"]), "yes" if i <= top else ""] for i, r in enumerate(ranked, 1)]
    if table:
        log(text_table(header, table))
    curves = histories({f"trial {r['trial']}": r["run_dir"] for r in ranked[:10]})
    if curves:
        plots.plot_accuracy(curves, inside(plan.out, "accuracy.png"), title="Accuracy of the best trials")
    search_info = {"sampler": spec.get("search", "tpe"), "trials": spec["trials"], "prune": spec.get("prune", "none"),
                   "storage": plan.storage, "study_name": plan.study_name}
    results = results_of("sweep", command, rows, spec=spec, search=search_info,
                         ranking=[{"rank": i, **r} for i, r in enumerate(ranked, 1)], pruned=pruned, failed=failed,
                         selected=[{"run_dir": r["run_dir"], "config": r["config"], "trial": r["trial"],
                                    "best_val_acc": r["metrics"]["best_val_acc"], "test_acc": r["metrics"]["test_acc"]}
                                   for r in ranked[:top]])
    log(f"search: {len(ranked)} complete, {len(pruned)} pruned, {len(failed)} failed of {len(rows)} trials")
    return finish(plan.out, results, _report_lines(spec, plan, results, header, table, rows), rows, log)


def _report_lines(spec: dict[str, Any], plan: _Plan, results: dict[str, Any], header: list[str],
                  table: list[list[str]], rows: list[dict[str, Any]]) -> list[str]:
    info = results["search"]
    chosen = (f"Selected: trial {results['selected'][0]['trial']} (`{Path(results['selected'][0]['run_dir']).name}`)"
              f" — validation {fmt(results['selected'][0]['best_val_acc'])}, test "
              f"{fmt(results['selected'][0]['test_acc'])}." if results["selected"]
              else "No trial has completed yet: nothing is selected.")
    pruned = [[str(r["trial"]), _sampled(r), (r["metrics"] or {}).get("stopped", "–"),
               fmt((r["metrics"] or {}).get("best_val_acc"))] for r in results["pruned"]]
    failed = [[str(r["trial"]), _sampled(r), (r["metrics"] or {}).get("stopped", "–")] for r in results["failed"]]
    first = rows[0]["config"] if rows else plan.base
    return [
        f"# Hyper-parameter search{': ' + spec['name'] if spec.get('name') else ''} on {first.get('dataset')}", "",
        f"Command: `{results['command']}`", "",
        f"Optuna {info['sampler']} sampler, {info['trials']} trials over {', '.join(d.key for d in plan.dims)}; "
        f"pruning: {info['prune']}; study `{info['study_name']}` in `{info['storage']}`. Complete trials are ranked "
        "by best validation accuracy (the test column is reported, never used to choose); pruned trials are "
        f"listed apart and never selected. Date {results['date']}, device {first.get('device')}.", "",
        table_or_note(header, table), "",
        chosen, "",
        *(["## Pruned trials", "", markdown_table(["trial", "sampled settings", "stopped", "best val acc"], pruned),
           ""] if pruned else []),
        *(["## Failed trials (diverged)", "", markdown_table(["trial", "sampled settings", "stopped"], failed), ""]
          if failed else []),
        *unfinished_section(rows),
        "## Accuracy of the best trials (dashed: train subset, solid: validation)", "",
        "![accuracy](accuracy.png)", "",
    ]
