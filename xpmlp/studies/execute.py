"""Training a study's runs: an engine runs them, a driver hands them out and collects how each ended.

What a run folder holds and how a task is resumed is ``runfolders``. Here:

* an **engine** is where runs train: ``LocalEngine(jobs)`` (this process, or ``jobs`` worker
  processes) or ``dask_engine.DaskEngine`` (a Dask cluster). ``engine.open(context)`` gives a
  **runner**: ``submit(task)``, ``poll(stop)`` (the outcomes of runs that ended), ``stop(signal)``
  (the first Ctrl-C or SIGTERM) and ``abort()`` (a second Ctrl-C, or an error);
* a **source** hands out tasks and takes their outcomes: a fixed list (``BatchSource``, the
  sweep and compare studies) or an Optuna study asking for the next trial (``search``);
* ``drive`` keeps each runner as busy as its ``capacity()`` allows until the source is empty.

Ctrl-C stops the whole study: the run in progress finishes its step and writes its
checkpoint, no further run starts (pending ones are cancelled, running ones checkpoint: local
workers get the same SIGINT, Dask workers are told through the cluster), and each row says
whether its run finished, was interrupted, never started, or failed. A second Ctrl-C aborts at once.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..callbacks import extra_callbacks
from ..errors import CheckpointError, DivergenceError, InputError
from ..io import atomic_write_json
from ..runs import load_data, train_config, train_run
from ..train import Interrupt
from .runfolders import (
    PLACE_KEYS,
    Log,
    Outcome,
    StudyInterrupted,
    Task,
    finished_metrics,
    inside,
    outcome_of,
    prepare_task,
    read_json,
    resumable,
    row,
    run_key,
    safe_name,
    unfinished,
)

__all__ = ["PLACE_KEYS", "DATA_KEYS", "Engine", "LocalEngine", "Log", "Outcome", "RunContext", "Runner",
           "StudyInterrupted", "Task", "check_data", "drive", "finished_metrics", "inside", "plan", "resumable",
           "row", "run_key", "run_many", "run_tasks", "safe_name", "train_one", "unfinished"]

#: The settings that decide the prepared data; runs sharing them share one loaded data set.
DATA_KEYS = ("dataset", "data_dir", "val_size", "subset", "preprocess", "seed", "download")


def plan(configs: list[dict[str, Any]], out: Path, log: Log) -> tuple[list[dict[str, Any] | None], list[Task]]:
    """Rows of the runs already finished, and a task for each of the others."""
    rows: list[dict[str, Any] | None] = [None] * len(configs)
    tasks = []
    for i, cfg in enumerate(configs):
        task = Task(i, cfg, inside(out, "runs", run_key(cfg)))
        done = prepare_task(task)
        if done is not None:
            log(f"[{i + 1}/{len(configs)}] {task.run_dir.name}: already finished, skipped")
            rows[i] = row(task, done, "finished", skipped=True)
            continue
        tasks.append(task)
    return rows, tasks


def data_key(cfg: dict[str, Any]) -> str:
    return json.dumps({k: cfg[k] for k in DATA_KEYS}, default=str)


def check_data(tasks: list[Task], log: Log) -> dict[str, Any]:
    """Load each data set the tasks need once and check every task's batch size against it.

    Runs before the first run starts, so a missing data set or a batch larger than the training
    set fails at once. Returns a cache holding the last data set loaded (one in memory at a time).
    """
    cache: dict[str, Any] = {}
    for key in dict.fromkeys(data_key(t.cfg) for t in tasks):
        group = [t for t in tasks if data_key(t.cfg) == key]
        cache = {key: load_data(group[0].cfg, log)}
        n_train = cache[key].x_train.shape[0]
        for t in group:
            try:
                train_config(t.cfg).validate(n_train)
            except InputError as exc:
                raise InputError(f"configuration {t.index + 1} ({t.run_dir.name}): {exc}") from None
    return cache


# ---------------------------------------------------------------------------
# engines, runners, sources and the driver
# ---------------------------------------------------------------------------

@dataclass
class RunContext:
    """What an engine is told when it opens: how many runs (None: a search decides as it goes; ``total``
    numbers the log lines), the devices they ask for, the data already loaded, where lines go."""

    total: int
    tasks: int | None
    devices: frozenset[str] = frozenset()
    cache: dict[str, Any] = field(default_factory=dict)
    log: Log = print
    progress: str = "lines"


class Runner(Protocol):
    """Trains tasks somewhere; see the module docstring."""

    remote: bool  # the runs' own lines are not shown here: the driver logs each outcome

    def capacity(self) -> int: ...

    def submit(self, task: Task) -> None: ...

    def poll(self, stop: Interrupt) -> list[tuple[Task, Outcome]]: ...

    def stop(self, signal_name: str) -> list[tuple[Task, Outcome]]: ...

    def abort(self) -> list[Task]: ...


class Engine(Protocol):
    """Where a study's runs train; ``open`` starts it (processes, a cluster) for one study."""

    name: str

    def open(self, context: RunContext) -> contextlib.AbstractContextManager[Runner]: ...


class Source(Protocol):
    """Hands out tasks (None: no more for now) and takes their outcomes."""

    def next(self) -> Task | None: ...

    def done(self, task: Task, outcome: Outcome) -> None: ...


class BatchSource:
    """A fixed list of tasks; each outcome becomes the task's row."""

    def __init__(self, tasks: list[Task], rows: list[dict[str, Any] | None]) -> None:
        self.queue, self.rows = list(tasks), rows

    def next(self) -> Task | None:
        return self.queue.pop(0) if self.queue else None

    def done(self, task: Task, outcome: Outcome) -> None:
        self.rows[task.index] = row(task, outcome.metrics, outcome.status, signal_name=outcome.signal,
                                    error=outcome.error)


def drive(runner: Runner, source: Source, log: Log) -> str:
    """Keep ``runner`` busy with ``source``'s tasks until there are none; returns the name of the
    signal that stopped the study ("" when it ran to the end). Ctrl-C (or a run that reports one)
    stops handing out tasks and stops the runner; a second one, or an error, aborts it."""
    inflight: list[Task] = []
    stopping = False
    with Interrupt() as stop:  # Ctrl-C between runs; during an in-process run, the trainer's own handler takes it
        try:
            while True:
                while not stop.requested and len(inflight) < runner.capacity():
                    task = source.next()
                    if task is None:
                        break
                    runner.submit(task)
                    inflight.append(task)
                if not inflight:
                    break
                ended = runner.poll(stop)
                for task, outcome in ended:
                    _settle(task, outcome, inflight, source, stop, log if runner.remote else None)
                if stop.requested and not stopping:
                    stopping = True
                    for task, outcome in runner.stop(stop.signal_name or "SIGINT"):
                        _settle(task, outcome, inflight, source, stop, None)
        except BaseException as exc:  # a second Ctrl-C, or a run that failed here: start nothing more
            for task in runner.abort():
                source.done(task, Outcome("interrupted", read_json(task.run_dir / "metrics.json"),
                                          signal=stop.signal_name or "SIGINT"))
            if not isinstance(exc, KeyboardInterrupt):
                raise
    return stop.signal_name


def _settle(task: Task, outcome: Outcome, inflight: list[Task], source: Source, stop: Interrupt,
            log: Log | None) -> None:
    """One run has ended: its outcome goes to the source; an unfinished one stops the study."""
    inflight.remove(task)
    if outcome.status in ("interrupted", "not started"):
        stop.request(outcome.signal or (outcome.metrics or {}).get("interrupted_by") or "SIGINT")
        outcome.signal = outcome.signal or stop.signal_name
    source.done(task, outcome)
    if log is not None:
        _log_outcome(task, outcome, log)


def run_tasks(source: Source, engine: Engine, context: RunContext) -> str:
    """Open ``engine`` and drive ``source`` through it; the name of the signal that stopped it, or ""."""
    with engine.open(context) as runner:
        return drive(runner, source, context.log)


def uses_gpu(cfg: dict[str, Any]) -> bool:
    """Whether a run asks for a CUDA device (``cuda``, ``cuda:N``, ``torch:cuda[:N]``)."""
    device = str(cfg.get("device", ""))
    return device.split(":")[0] == "cuda" or device.startswith("torch:cuda")


def run_many(configs: list[dict[str, Any]], out: Path, *, jobs: int | Engine = 1, log: Log = print,
             progress: str = "lines") -> list[dict[str, Any]]:
    """Train each config into ``out/runs/<key>`` (skipping finished ones); returns one row per config.

    ``jobs``: a number of local worker processes (1: in this process), or an Engine
    (``engines.make_engine``: local or Dask). Each row holds ``status``: ``finished``,
    ``interrupted`` (Ctrl-C; resumed by the next call), ``not started`` or ``failed`` (an error in
    the run on a Dask worker; trained again by the next call).
    """
    out = Path(out)
    rows, tasks = plan(configs, out, log)
    cache = check_data(tasks, log)
    engine = LocalEngine(jobs) if isinstance(jobs, int) else jobs
    stopped_by = ""
    if tasks:  # nothing to train: no worker or cluster is started
        devices = frozenset(str(t.cfg["device"]) for t in tasks)
        context = RunContext(len(configs), len(tasks), devices, cache, log, progress)
        stopped_by = run_tasks(BatchSource(tasks, rows), engine, context)
    for task in tasks:
        if rows[task.index] is None:
            rows[task.index] = row(task, None, "not started", signal_name=stopped_by or "SIGINT")
    return [r for r in rows if r is not None]


def announce(task: Task, total: int, log: Log, verb: str = "training") -> None:
    how = f"resuming {task.run_dir.name} from its checkpoint" if task.resume else f"{verb} {task.run_dir.name}"
    log(f"[{task.index + 1}/{total}] {how}")


def _log_outcome(task: Task, outcome: Outcome, log: Log) -> None:
    name, m = task.run_dir.name, outcome.metrics
    if outcome.status == "not started":
        return
    if outcome.status == "failed":
        log(f"{name}: failed: {outcome.error}")
    elif m is None:
        log(f"{name}: {outcome.status}")
    else:
        val, test = m.get("best_val_acc"), m.get("test_acc")
        log(f"{name}: val acc {'–' if val is None else f'{val:.4f}'}, test acc "
            f"{'–' if test is None else f'{test:.4f}'} ({m.get('stopped')})")


# ---------------------------------------------------------------------------
# the local engine: this process, or a pool of worker processes
# ---------------------------------------------------------------------------

@dataclass
class LocalEngine:
    """Runs in this process (``jobs`` 1), or in ``jobs`` spawned worker processes, each on the
    configured device and with the CPU's BLAS threads divided between them."""

    jobs: int = 1
    name: str = "local"

    @contextlib.contextmanager
    def open(self, context: RunContext) -> Iterator[Runner]:
        if self.jobs <= 1 or context.tasks == 1:
            yield InProcessRunner(context)
            return
        context.cache.clear()  # the workers load their own
        with PoolRunner(self.jobs, context) as runner:
            yield runner


class InProcessRunner:
    """One run at a time in this process, with its log lines and progress; the trainer takes Ctrl-C."""

    remote = False

    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.queue: list[Task] = []
        self.current: Task | None = None

    def capacity(self) -> int:
        return 1

    def submit(self, task: Task) -> None:
        self.queue.append(task)

    def poll(self, stop: Interrupt) -> list[tuple[Task, Outcome]]:
        task, c = self.queue.pop(0), self.context
        self.current = task
        key = data_key(task.cfg)
        if key not in c.cache:
            c.cache.clear()  # one data set in memory at a time
            c.cache[key] = load_data(task.cfg, c.log)
        if stop.requested:
            self.current = None
            return [(task, Outcome("not started", signal=stop.signal_name))]
        announce(task, c.total, c.log)
        metrics = train_one(task, c.log, c.progress, c.cache[key])
        self.current = None
        return [(task, outcome_of(metrics))]

    def stop(self, signal_name: str) -> list[tuple[Task, Outcome]]:
        return []

    def abort(self) -> list[Task]:
        return [self.current] if self.current is not None else []


class PoolRunner:
    """``jobs`` spawned worker processes; a Ctrl-C reaches them too (same process group) and each run
    checkpoints; ``stop`` cancels what has not started."""

    remote = True

    def __init__(self, jobs: int, context: RunContext) -> None:
        self.jobs, self.context = jobs, context
        ctx = mp.get_context("spawn")
        self.stop_event = ctx.Event()
        threads = max(1, (os.cpu_count() or 1) // jobs)
        self.pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                                        initargs=(threads, self.stop_event))
        self.futures: dict[Future, Task] = {}

    def __enter__(self) -> PoolRunner:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.pool.shutdown(wait=True)

    def capacity(self) -> int:
        return self.jobs

    def submit(self, task: Task) -> None:
        announce(task, self.context.total, self.context.log, "queued")
        with _sigint_blocked():  # a worker may start here: a Ctrl-C while it imports must not kill it
            self.futures[self.pool.submit(work, task)] = task

    def poll(self, stop: Interrupt) -> list[tuple[Task, Outcome]]:
        done, _ = wait(list(self.futures), timeout=0.2, return_when=FIRST_COMPLETED)
        stopping = stop.requested or self.stop_event.is_set()
        ended = [(fut, self.futures.pop(fut)) for fut in done]
        return [(task, _pool_outcome(fut, task, stopping)) for fut, task in ended]

    def stop(self, signal_name: str) -> list[tuple[Task, Outcome]]:
        self.stop_event.set()
        cancelled = [fut for fut in list(self.futures) if fut.cancel()]
        return [(self.futures.pop(fut), Outcome("not started")) for fut in cancelled]

    def abort(self) -> list[Task]:
        self.stop_event.set()
        self.pool.shutdown(wait=False, cancel_futures=True)
        return [task for fut, task in self.futures.items() if fut.running()]


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


def _pool_outcome(fut: Future, task: Task, stopping: bool) -> Outcome:
    try:
        return outcome_of(fut.result())
    except KeyboardInterrupt:
        pass
    except BrokenProcessPool:
        if not stopping:
            raise
    return Outcome("interrupted", read_json(task.run_dir / "metrics.json"))


# ---------------------------------------------------------------------------
# one run, in this process, in a worker process or on a Dask worker
# ---------------------------------------------------------------------------

_WORKER: dict[str, Any] = {"event": None, "signalled": False, "data": {}}


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


def worker_data(cfg: dict[str, Any]) -> Any:
    """The prepared data of ``cfg`` in a worker process, loaded once per data set (one kept at a time)."""
    cache, key = _WORKER["data"], data_key(cfg)
    if key not in cache:
        cache.clear()
        cache[key] = load_data(cfg, lambda line: None)
    return cache[key]


def work(task: Task) -> dict[str, Any] | None:
    """A worker's run: its data, then the run; None when the study was stopped before it began."""
    if _stopping():
        return None
    prepared = worker_data(task.cfg)
    if _stopping():
        return None
    return train_one(task, None, "lines", prepared)


def train_one(task: Task, log: Log | None, progress: str, prepared: Any) -> dict[str, Any]:
    """Train (or resume) one run, with its hooks' callbacks; a diverged run is a result (its metrics say
    so), not an error. A checkpoint that cannot be resumed after all (damaged) is said once and trained
    over afresh."""
    callbacks = [cb for hook in task.hooks for cb in hook.callbacks()]
    try:
        with extra_callbacks(*callbacks):
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
