"""Training a study's runs: one folder per configuration, skipped when finished, resumed when interrupted.

A run folder is ``<out>/runs/<key>``, the key built from validated settings only (characters
``[A-Za-z0-9._-]``) and checked to stay under ``<out>``. Before a run starts, its folder is
read: a finished run with the same settings is skipped; an unfinished one (Ctrl-C, a killed
process) whose checkpoint has the same settings is resumed from it; anything else is
trained afresh over the stale files.

Ctrl-C stops the whole study: the run in progress finishes its step and writes its
checkpoint, no further run starts (with ``jobs > 1`` the pending ones are cancelled and the
running ones checkpoint, since the workers get the same SIGINT), and each row says whether
its run finished, was interrupted, or never started. A second Ctrl-C aborts at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import checkpoint
from ..errors import CheckpointError, DivergenceError, InputError
from ..io import atomic_write_json
from ..runs import load_data, train_config, train_run
from ..train import Interrupt

Log = Callable[[str], None]

#: Settings that do not change what a run computes (where the data or the device is).
PLACE_KEYS = ("device", "data_dir", "download")
#: The settings that decide the prepared data; runs sharing them share one loaded data set.
DATA_KEYS = ("dataset", "data_dir", "val_size", "subset", "preprocess", "seed", "download")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped a study after its report was written, marking the unfinished runs.

    ``signal_name`` is ``"SIGINT"`` or ``"SIGTERM"`` (the exit status is 130 or 143); ``results``
    is what results.json holds.
    """

    def __init__(self, message: str, results: dict[str, Any] | None = None, signal_name: str = "SIGINT") -> None:
        super().__init__(message)
        self.results = results
        self.signal_name = signal_name or "SIGINT"


def run_key(cfg: dict[str, Any]) -> str:
    """A stable folder name for a run config: readable, plus a hash of every setting that matters,
    so two configurations never share a folder. Only ``[A-Za-z0-9._-]``."""
    hidden = "-".join(str(h) for h in cfg["hidden"]) or "linear"
    length = f"e{cfg['epochs']}" if cfg.get("epochs") else f"i{cfg['iterations']}"
    digest = hashlib.sha256(json.dumps({k: v for k, v in cfg.items() if k not in PLACE_KEYS},
                                       sort_keys=True, default=str).encode()).hexdigest()[:8]
    readable = f"{hidden}_{cfg['activation']}_{cfg['optimizer']}_lr{cfg['lr']:g}_reg{cfg['reg']:g}_{length}"
    return f"{safe_name(readable)}_{digest}"


def safe_name(text: str, limit: int = 120) -> str:
    """``text`` with every run of characters outside ``[A-Za-z0-9._-]`` replaced by ``_``, cut to ``limit``."""
    return _UNSAFE.sub("_", text)[:limit]


def inside(out: Path, *parts: str) -> Path:
    """``out / parts``, refusing any path that would resolve outside ``out``."""
    path = out.joinpath(*parts)
    if not path.resolve().is_relative_to(out.resolve()):
        raise InputError(f"{path} would lie outside the study folder {out}; use plain names")
    return path


def _same_settings(saved: Any, cfg: dict[str, Any]) -> bool:
    return isinstance(saved, dict) and all(saved.get(k) == v for k, v in cfg.items() if k not in PLACE_KEYS)


def unfinished(metrics: dict[str, Any] | None) -> bool:
    """True for no metrics or those of an interrupted run; completed, early-stopped and diverged runs are results."""
    return metrics is None or str(metrics.get("stopped", "interrupted")).startswith("interrupted")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def finished_metrics(run_dir: Path, cfg: dict[str, Any]) -> dict[str, Any] | None:
    """The metrics of a finished run with the same settings, or None (then it must be trained)."""
    result = _read_json(run_dir / "metrics.json")
    if not isinstance(result, dict) or not _same_settings(_read_json(run_dir / "config.json"), cfg):
        return None
    return None if unfinished(result) else result


def resumable(run_dir: Path, cfg: dict[str, Any]) -> Path | None:
    """The folder's checkpoint when it belongs to a run with the same settings, else None."""
    path = run_dir / "checkpoint.npz"
    if not path.is_file():
        return None
    try:
        tree = checkpoint.load(path)
    except CheckpointError:
        return None
    return path if _same_settings(tree.get("config"), cfg) and "trainer" in tree else None


@dataclass
class Task:
    """One run to train: where its row goes, its settings, its folder, and how to start it."""

    index: int
    cfg: dict[str, Any]
    run_dir: Path
    resume: Path | None = None
    overwrite: bool = False


def row(task: Task, metrics: dict[str, Any] | None, status: str, skipped: bool = False,
        signal_name: str | None = None) -> dict[str, Any]:
    """One result row: ``status`` is ``finished``, ``interrupted`` or ``not started``; ``signal``
    names what stopped an unfinished run (``SIGINT``, ``SIGTERM``)."""
    if status == "interrupted" and metrics and metrics.get("interrupted_by"):
        signal_name = metrics["interrupted_by"]
    return {"config": task.cfg, "run_dir": str(task.run_dir), "metrics": metrics, "skipped": skipped,
            "status": status, "signal": signal_name if status != "finished" else None}


def plan(configs: list[dict[str, Any]], out: Path, log: Log) -> tuple[list[dict[str, Any] | None], list[Task]]:
    """Rows of the runs already finished, and a task for each of the others."""
    rows: list[dict[str, Any] | None] = [None] * len(configs)
    tasks = []
    for i, cfg in enumerate(configs):
        task = Task(i, cfg, inside(out, "runs", run_key(cfg)))
        done = finished_metrics(task.run_dir, cfg)
        if done is not None:
            log(f"[{i + 1}/{len(configs)}] {task.run_dir.name}: already finished, skipped")
            rows[i] = row(task, done, "finished", skipped=True)
            continue
        task.resume = resumable(task.run_dir, cfg)
        task.overwrite = task.resume is None and (task.run_dir / "checkpoint.npz").exists()
        tasks.append(task)
    return rows, tasks


def _data_key(cfg: dict[str, Any]) -> str:
    return json.dumps({k: cfg[k] for k in DATA_KEYS}, default=str)


def check_data(tasks: list[Task], log: Log) -> dict[str, Any]:
    """Load each data set the tasks need once and check every task's batch size against it.

    Runs before the first run starts, so a missing data set or a batch larger than the training
    set fails at once. Returns a cache holding the last data set loaded (one in memory at a time).
    """
    cache: dict[str, Any] = {}
    for key in dict.fromkeys(_data_key(t.cfg) for t in tasks):
        group = [t for t in tasks if _data_key(t.cfg) == key]
        cache = {key: load_data(group[0].cfg, log)}
        n_train = cache[key].x_train.shape[0]
        for t in group:
            try:
                train_config(t.cfg).validate(n_train)
            except InputError as exc:
                raise InputError(f"configuration {t.index + 1} ({t.run_dir.name}): {exc}") from None
    return cache


def run_many(configs: list[dict[str, Any]], out: Path, *, jobs: int = 1, log: Log = print,
             progress: str = "lines") -> list[dict[str, Any]]:
    """Train each config into ``out/runs/<key>`` (skipping finished ones); returns one row per config.

    Each row holds ``status``: ``finished``, ``interrupted`` (Ctrl-C; resumed by the next call)
    or ``not started``. With ``jobs > 1`` the runs go to that many worker processes, each on
    the configured device and with the CPU's BLAS threads divided between them.
    """
    out = Path(out)
    rows, tasks = plan(configs, out, log)
    cache = check_data(tasks, log)
    if jobs <= 1 or len(tasks) <= 1:
        stopped_by = _run_here(tasks, rows, cache, log, progress)
    else:
        cache.clear()
        stopped_by = _run_pool(tasks, rows, jobs, log)
    for task in tasks:
        if rows[task.index] is None:
            rows[task.index] = row(task, None, "not started", signal_name=stopped_by or "SIGINT")
    return [r for r in rows if r is not None]


def _announce(task: Task, total: int, log: Log, verb: str = "training") -> None:
    how = f"resuming {task.run_dir.name} from its checkpoint" if task.resume else f"{verb} {task.run_dir.name}"
    log(f"[{task.index + 1}/{total}] {how}")


def _run_here(tasks: list[Task], rows: list[Any], cache: dict[str, Any], log: Log, progress: str) -> str:
    """Train the tasks one after another in this process; stop at the first Ctrl-C (returns the signal's name)."""
    total = len(rows)
    with Interrupt() as stop:  # Ctrl-C between runs; during one, the trainer's own handler takes it
        for task in tasks:
            try:
                key = _data_key(task.cfg)
                if key not in cache:
                    cache.clear()  # one data set in memory at a time
                    cache[key] = load_data(task.cfg, log)
                if stop.requested:
                    break
                _announce(task, total, log)
                metrics = train_one(task, log, progress, cache[key])
            except KeyboardInterrupt:  # a second Ctrl-C: this run ends where it is
                rows[task.index] = row(task, _read_json(task.run_dir / "metrics.json"), "interrupted",
                                       signal_name=stop.signal_name)
                break
            rows[task.index] = row(task, metrics, "interrupted" if unfinished(metrics) else "finished")
            if stop.requested or unfinished(metrics):
                break
    return stop.signal_name


def _run_pool(tasks: list[Task], rows: list[Any], jobs: int, log: Log) -> str:
    """Train the tasks in ``jobs`` worker processes; a Ctrl-C cancels the pending ones (returns the signal's name)."""
    ctx = mp.get_context("spawn")
    stop_event = ctx.Event()
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                             initargs=(threads, stop_event)) as pool, Interrupt() as stop:
        futures: dict[Future, Task] = {}
        with _sigint_blocked():  # the workers start here: a Ctrl-C while they import must not kill them
            for task in tasks:
                _announce(task, len(rows), log, "queued")
                futures[pool.submit(work, task)] = task
        return _wait_for_pool(pool, futures, rows, stop, stop_event, log)


def _wait_for_pool(pool: ProcessPoolExecutor, futures: dict[Future, Task], rows: list[Any], stop: Interrupt,
                   stop_event: Any, log: Log) -> str:
    """Collect the workers' results; at the first Ctrl-C cancel what has not started (returns the signal's name)."""
    pending = set(futures)
    try:
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for fut in done:
                task = futures[fut]
                rows[task.index] = _pool_row(fut, task, stop.requested or stop_event.is_set())
                _log_row(rows[task.index], log)
                stop.requested = stop.requested or rows[task.index]["status"] != "finished"
            if stop.requested:
                stop_event.set()
                pending = {f for f in pending if not f.cancel()}
    except BaseException as exc:  # a second Ctrl-C, or a run that failed: start nothing more
        stop_event.set()
        pool.shutdown(wait=False, cancel_futures=True)
        if not isinstance(exc, KeyboardInterrupt):
            raise
        for fut in pending:
            if fut.running():
                rows[futures[fut].index] = row(futures[fut], None, "interrupted", signal_name=stop.signal_name)
    return stop.signal_name


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT blocked (held back, not lost) in this thread while the block runs. Processes started in
    it inherit the blocked mask across exec, so a Ctrl-C cannot kill a worker that is still importing;
    the worker unblocks it once its own handler is in place (``_init_worker``)."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _pool_row(fut: Future, task: Task, stopping: bool) -> dict[str, Any]:
    try:
        metrics = fut.result()
    except KeyboardInterrupt:
        return row(task, _read_json(task.run_dir / "metrics.json"), "interrupted")
    except BrokenProcessPool:
        if not stopping:
            raise
        return row(task, _read_json(task.run_dir / "metrics.json"), "interrupted")
    if metrics is None:
        return row(task, None, "not started")
    return row(task, metrics, "interrupted" if unfinished(metrics) else "finished")


def _log_row(r: dict[str, Any], log: Log) -> None:
    name, m = Path(r["run_dir"]).name, r["metrics"]
    if r["status"] == "not started":
        return
    if m is None:
        log(f"{name}: {r['status']}")
        return
    val, test = m.get("best_val_acc"), m.get("test_acc")
    log(f"{name}: val acc {'–' if val is None else f'{val:.4f}'}, test acc "
        f"{'–' if test is None else f'{test:.4f}'} ({m.get('stopped')})")


# ---------------------------------------------------------------------------
# one run, in this process or in a worker
# ---------------------------------------------------------------------------

_WORKER: dict[str, Any] = {"event": None, "signalled": False}


def _init_worker(threads: int, stop_event: Any) -> None:
    """A worker: its share of the BLAS threads, and Ctrl-C as a flag (the trainer's handler takes it in a run)."""
    _WORKER["event"] = stop_event
    signal.signal(signal.SIGINT, _worker_sigint)
    if hasattr(signal, "pthread_sigmask"):  # blocked since the worker was started (_sigint_blocked)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(threads)
    except ImportError:  # without threadpoolctl the workers share the cores as the OS sees fit
        pass


def _worker_sigint(signum: int, frame: Any) -> None:
    _WORKER["signalled"] = True


def _stopping() -> bool:
    event = _WORKER["event"]
    return bool(_WORKER["signalled"] or (event is not None and event.is_set()))


def work(task: Task) -> dict[str, Any] | None:
    """A worker's run: its data, then the run; None when the study was stopped before it began."""
    if _stopping():
        return None
    prepared = load_data(task.cfg, lambda line: None)
    if _stopping():
        return None
    return train_one(task, None, "lines", prepared)


def train_one(task: Task, log: Log | None, progress: str, prepared: Any) -> dict[str, Any]:
    """Train (or resume) one run; a diverged run is a result (its metrics say so), not an error.

    A checkpoint that cannot be resumed after all (damaged) is said once and trained over afresh.
    """
    try:
        if task.resume is not None:
            try:
                return train_run(task.cfg, task.run_dir, resume=task.resume, log=log, progress=progress,
                                 prepared=prepared)
            except CheckpointError as exc:
                (log or print)(f"{task.run_dir.name}: cannot resume ({exc}); training it again from the start")
        # overwrite: a stale checkpoint of other settings (or a damaged one) is trained over afresh
        return train_run(task.cfg, task.run_dir, overwrite=task.overwrite or task.resume is not None, log=log,
                         progress=progress, prepared=prepared)
    except DivergenceError as exc:
        # one diverged configuration is a result of the study, not the end of it
        metrics = {"stopped": f"diverged: {exc}", "best_val_acc": None, "final_val_acc": None, "test_acc": None,
                   "final_loss": None, "train_seconds": None, "params": None,
                   "sizes": None, "backend": task.cfg["device"]}
        atomic_write_json(task.run_dir / "metrics.json", metrics)
        if log:
            log(f"{task.run_dir.name}: {exc}")
        return metrics
