"""The Dask engine: a study's runs on a Dask cluster, embedded on loopback or reached by its address.

* No address: a ``distributed.LocalCluster`` on 127.0.0.1, one single-threaded worker process
  per ``--workers``, no dashboard. With ``--device cuda`` each worker offers the resource
  ``GPU=1`` and, on a machine with several GPUs, sees one of them (``CUDA_VISIBLE_DEVICES`` per
  worker, round robin). Its start-up time is logged.
* ``--scheduler tcp://host:8786``: an existing cluster through the same code path (a
  ``distributed.Client``); its workers must see ``--out`` and the data at the same paths.

Each run is ``client.submit(run_on_worker, task, ...)``, asking for ``GPU=1`` when the runs use
CUDA. Faults: a worker that dies mid-run is replaced by the scheduler, which runs the task again
(``retries``) elsewhere, and the task resumes from the run folder's last checkpoint
(``runfolders.prepare_task`` decides resume or overwrite, as for a rerun of the study). An
exception raised by the run itself is returned as a ``failed`` outcome and never retried; a run
that kills every worker it lands on (``KilledWorker``) fails too. Ctrl-C sets a cluster-wide
``distributed.Event``: runs not yet begun return "not started", running ones are interrupted at
their next step by a watcher thread (``trainer.request_interrupt``) and checkpoint. The embedded
workers ignore SIGINT themselves, so the terminal's Ctrl-C reaches only the driver.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..callbacks import Callback, extra_callbacks
from ..errors import InputError
from ..train import Interrupt
from .checks import one_line
from .execute import RunContext, Runner, announce, train_one, uses_gpu, worker_data
from .runfolders import Outcome, Task, outcome_of, prepare_task, read_json

#: Extra attempts Dask gives a task whose worker died (on top of the scheduler's own reassignment).
RETRIES = 3
POLL_SECONDS = 0.1
WATCH_SECONDS = 0.2
CONNECT_TIMEOUT = "10s"
#: The embedded cluster's workers: no profiler (with no dashboard to show it, its 10 ms stack sampling
#: only slows training), and glibc's own malloc thresholds: Dask's MALLOC_TRIM_THRESHOLD_=65536 turns off
#: the dynamic mmap threshold, so every activation-sized array is mmapped and unmapped again (measured:
#: 1.6x the training time of a local worker process, a third of it system time; without it, the same).
WORKER_CONFIG = {"distributed.worker.profile.enabled": False,
                 "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
INSTALL = "pip install 'xpmlp[dask]'"


def import_distributed() -> Any:
    """``distributed``, or a one-line InputError saying what to install."""
    try:
        import distributed
    except ImportError:
        raise InputError(f"--engine dask needs Dask's distributed scheduler; install it with: {INSTALL}") from None
    return distributed


@dataclass
class DaskEngine:
    """Runs on a Dask cluster: the embedded LocalCluster (``scheduler`` None) or the one at ``scheduler``.

    ``workers``: the embedded cluster's size (default: one per GPU with CUDA runs, else one per
    core). ``gpus``: how many GPUs the embedded cluster shares out (default: probed).
    """

    workers: int | None = None
    scheduler: str | None = None
    gpus: int | None = None
    name: str = "dask"
    startup_seconds: float | None = None

    @contextlib.contextmanager
    def open(self, context: RunContext) -> Iterator[Runner]:
        distributed = import_distributed()
        devices = {t for t in context.devices if uses_gpu({"device": t})}
        t0 = time.perf_counter()
        if self.scheduler:
            cluster, client = None, _connect(distributed, self.scheduler, bool(devices))
            threads = None
            n = len(cluster_workers(client))
            where = f"connected to {self.scheduler} ({n} workers{'; waiting for some' if not n else ''})"
        else:
            cluster, client, workers = self._start(distributed, devices)
            threads = max(1, (os.cpu_count() or 1) // workers)
            where = (f"started a LocalCluster of {workers} worker{'s' * (workers > 1)} "
                     f"({client.scheduler_info()['address']})")
        self.startup_seconds = time.perf_counter() - t0
        context.log(f"dask: {where} in {self.startup_seconds:.1f}s")
        try:
            yield DaskRunner(client, context, gpu=bool(devices), threads=threads)
        finally:
            client.close()
            if cluster is not None:
                with _sigint_ignored():
                    cluster.close()

    def _start(self, distributed: Any, devices: set[str]) -> tuple[Any, Any, int]:
        """The embedded cluster and a client of it; the number of workers."""
        gpus = 0
        if devices:
            gpus = self.gpus if self.gpus is not None else _gpu_count(devices)
        workers = self.workers or (gpus or os.cpu_count() or 1)
        pin = gpus > 1 and devices <= {"cuda", "torch:cuda"}  # an explicit index (cuda:1) is the user's choice
        import dask

        # the workers inherit SIG_IGN (the terminal's Ctrl-C is the driver's alone) and WORKER_CONFIG
        with _sigint_ignored(), dask.config.set(WORKER_CONFIG):
            if pin:
                cluster = _pinned_cluster(distributed, workers, gpus)
            else:
                extra = {"resources": {"GPU": 1}} if devices else {}
                cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                   dashboard_address=None, host="127.0.0.1",
                                                   silence_logs=logging.ERROR, **extra)
            client = distributed.Client(cluster)
        client.register_plugin(_ignore_sigint_plugin(distributed), name="xpmlp-ignore-sigint")  # restarted workers
        return cluster, client, workers


def _gpu_count(devices: set[str]) -> int:
    from ..backend.probes import probe_cupy, probe_torch

    if any(d.startswith("torch") for d in devices):
        return probe_torch()[1]
    return probe_cupy()[0]


def visible_gpus(count: int) -> list[str]:
    """The GPU ids this process may hand out: ``CUDA_VISIBLE_DEVICES``'s entries, else 0..count-1."""
    given = [g.strip() for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    return given[:count] if given else [str(i) for i in range(count)]


def _pinned_cluster(distributed: Any, workers: int, gpus: int) -> Any:
    """A LocalCluster-like SpecCluster whose worker i sees GPU i (round robin) and offers GPU=1."""
    ids = visible_gpus(gpus)
    scheduler = {"cls": distributed.Scheduler, "options": {"host": "127.0.0.1", "dashboard_address": None}}
    spec = {f"gpu-worker-{i}": {"cls": distributed.Nanny,
                                "options": {"nthreads": 1, "host": "127.0.0.1", "resources": {"GPU": 1},
                                            "env": {"CUDA_VISIBLE_DEVICES": ids[i % len(ids)]}, "dashboard": False,
                                            "silence_logs": logging.ERROR}}
            for i in range(workers)}
    return distributed.SpecCluster(workers=spec, scheduler=scheduler, silence_logs=logging.ERROR, name="xpmlp")


def _connect(distributed: Any, address: str, gpu: bool) -> Any:
    """A client of the cluster at ``address``; with CUDA runs, some worker must offer the resource GPU."""
    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(one_line(f"cannot reach the Dask scheduler at {address} ({type(exc).__name__}: {exc}); "
                                  "start one with `dask scheduler` and workers with `dask worker ADDRESS "
                                  "--nthreads 1`, or check --scheduler")) from None
    workers = cluster_workers(client)
    if gpu and workers and not any(w.get("resources", {}).get("GPU") for w in workers.values()):
        client.close()
        raise InputError(f"none of the {len(workers)} workers at {address} offers the resource GPU, which every "
                         f"CUDA run asks for; start them with: dask worker {address} --nthreads 1 --resources GPU=1")
    return client


def cluster_workers(client: Any) -> dict[str, Any]:
    """Every worker of the client's cluster: {address: its info (nthreads, resources, ...)}."""
    try:
        info = client.scheduler_info(n_workers=-1)  # newer Dask lists only a few workers unless asked for all
    except TypeError:
        info = client.scheduler_info()
    return info["workers"]


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while the block runs (main thread only): processes started in it inherit SIG_IGN."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _ignore_sigint_plugin(distributed: Any) -> Any:
    """A worker plugin making each embedded worker, restarted ones too, ignore SIGINT."""

    class IgnoreSigint(distributed.WorkerPlugin):
        def setup(self, worker: Any) -> None:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return IgnoreSigint()


class DaskRunner:
    """Submits tasks to a cluster, keeps about one per worker thread (or GPU) in flight, collects outcomes."""

    remote = True

    def __init__(self, client: Any, context: RunContext, *, gpu: bool, threads: int | None) -> None:
        distributed = import_distributed()
        self.client, self.context, self.gpu, self.threads = client, context, gpu, threads
        self.stop_name = f"xpmlp-stop-{uuid.uuid4().hex}"
        self.stop_event = distributed.Event(self.stop_name, client=client)
        self.futures: dict[Any, Task] = {}
        self.lost: dict[int, int] = {}  # task index -> times the cluster lost it
        self._slots, self._slots_at = 1, -1.0

    def capacity(self) -> int:
        """Worker threads (GPUs with CUDA runs) of the cluster now, at least 1; asked at most once a second."""
        if time.monotonic() - self._slots_at > 1.0:
            workers = cluster_workers(self.client).values()
            if self.gpu:
                slots = sum(int(w.get("resources", {}).get("GPU", 0)) for w in workers)
            else:
                slots = sum(int(w.get("nthreads", 1)) for w in workers)
            self._slots, self._slots_at = max(1, slots), time.monotonic()
        return self._slots

    def submit(self, task: Task) -> None:
        announce(task, self.context.total, self.context.log, "submitted")
        self.submit_call(run_on_worker, task, self.stop_name, self.threads, task=task)

    def submit_call(self, fn: Callable[..., Any], *args: Any, task: Task) -> Any:
        """``client.submit(fn, *args)`` as every run is submitted (GPU=1 with CUDA runs, retries); its future."""
        future = self.client.submit(fn, *args, key=f"xpmlp-{task.run_dir.name}-{uuid.uuid4().hex[:8]}", pure=False,
                                    retries=RETRIES, resources={"GPU": 1} if self.gpu else None)
        self.futures[future] = task
        return future

    def poll(self, stop: Interrupt) -> list[tuple[Task, Outcome]]:
        done = [f for f in self.futures if f.done()]
        if not done:
            time.sleep(POLL_SECONDS)
            return []
        ended = []
        for future in done:
            task = self.futures.pop(future)
            outcome = self._outcome(future, task)
            if outcome is not None:
                ended.append((task, outcome))
        return ended

    def _outcome(self, future: Any, task: Task) -> Outcome | None:
        """A finished future's outcome; None when the cluster lost the task and it was submitted again."""
        if future.status == "finished":
            return future.result()
        if future.status == "error":
            exc = future.exception()
            why = "its worker died each time it ran it" if type(exc).__name__ == "KilledWorker" else "Dask failed"
            return Outcome("failed", read_json(task.run_dir / "metrics.json"),
                           error=one_line(f"{why} ({type(exc).__name__}: {exc}); its last checkpoint is kept: run "
                                          "the study again to resume it"))
        lost = self.lost[task.index] = self.lost.get(task.index, 0) + 1  # cancelled or lost by the scheduler
        if lost <= RETRIES:
            self.submit_call(run_on_worker, task, self.stop_name, self.threads, task=task)
            return None
        return Outcome("failed", error=f"the cluster lost the run {lost} times ({future.status})")

    def stop(self, signal_name: str) -> list[tuple[Task, Outcome]]:
        """Tell every worker: runs not begun return "not started", running ones checkpoint and return (their
        metrics name ``signal_name``, so a SIGTERM study still exits 143)."""
        import_distributed().Variable(self.stop_name, client=self.client).set(signal_name)
        self.stop_event.set()
        return []

    def abort(self) -> list[Task]:
        with contextlib.suppress(Exception):
            self.stop_event.set()
            self.client.cancel(list(self.futures), force=True)
        return [task for task in self.futures.values() if task.run_dir.exists()]


class StopWatcher(Callback):
    """Interrupts the running trainer (at its next step, as Ctrl-C would) once ``is_set()`` says so;
    a thread asks every ``period`` seconds while the ``with`` block runs."""

    def __init__(self, is_set: Callable[[], bool], period: float = WATCH_SECONDS,
                 signal_name: Callable[[], str] = lambda: "SIGINT") -> None:
        self.is_set, self.period, self.signal_name = is_set, period, signal_name
        self.trainer: Any = None
        self.fired = ""  # the signal the study was stopped by, once it was
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="xpmlp-stop-watcher", daemon=True)

    def __enter__(self) -> StopWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done.set()
        self._thread.join()

    def on_train_begin(self, trainer: Any) -> None:
        self.trainer = trainer
        if self.fired:
            trainer.request_interrupt(self.fired)

    def on_train_end(self, trainer: Any) -> None:
        self.trainer = None

    def _watch(self) -> None:
        while not self._done.wait(self.period):
            try:
                fired = self.is_set()
            except Exception:  # the scheduler went away: the run goes on (its checkpoints are what count)
                continue
            if fired:
                try:
                    self.fired = self.signal_name() or "SIGINT"
                except Exception:
                    self.fired = "SIGINT"
                trainer = self.trainer
                if trainer is not None:
                    trainer.request_interrupt(self.fired)
                return


@contextlib.contextmanager
def _blas_threads(threads: int | None) -> Iterator[None]:
    if threads is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(threads):
        yield


def run_on_worker(task: Task, stop_name: str, threads: int | None) -> Outcome:
    """One run on a Dask worker: resumed from its folder's checkpoint when there is one; the run's own
    error is a ``failed`` outcome (returned, so Dask never retries it)."""
    from distributed import Event, Variable, get_client

    client = get_client()
    stop = Event(stop_name, client=client)
    if stop.is_set():
        return Outcome("not started")
    try:
        done = prepare_task(task)  # a retried run: finished after all, resumable, or to train afresh
        if done is not None:
            return outcome_of(done)
        signal_name = Variable(stop_name, client=client)
        with _blas_threads(threads), StopWatcher(stop.is_set, signal_name=lambda: signal_name.get(timeout=5)) \
                as watcher, extra_callbacks(watcher):
            prepared = worker_data(task.cfg)
            if stop.is_set():
                return Outcome("not started")
            metrics = train_one(task, None, "lines", prepared)
    except Exception as exc:
        return Outcome("failed", read_json(task.run_dir / "metrics.json"),
                       error=one_line(f"{type(exc).__name__}: {exc}"))
    return outcome_of(metrics)
