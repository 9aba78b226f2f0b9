"""The run: set every contender up, warm it up, time interleaved rounds, score, measure the ceilings."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from ..backend import Backend, get_backend
from .config import BenchConfig, BenchData, Log, load_data
from .contenders import Contender, Unavailable, XpmlpContender
from .gemm import measure_gemm_rates
from .lineup import default_contenders, lineup, xpmlp_backends
from .machine import ThreadLimit, gpu_name, interrupt_stops, load_note, machine_info
from .memory import MIB, measure_in_child
from .report import build_result, flops_per_epoch

#: Seconds to wait, untimed, before timing a contender whose library's threads differ from the last
#: one's. An idle thread pool keeps spinning on the cores for a while after its last job (OpenBLAS:
#: 2^28 cycles, about 0.1 s), and slowed the next library's threads: PyTorch's GEMMs ran at 74-124
#: GFLOP/s right after 200 of NumPy's, 142-172 after a 0.5 s pause (2 cores, float32).
SETTLE_SECONDS = 0.25


def run_benchmark(cfg: BenchConfig, log: Log = print) -> dict[str, Any]:
    """Run the benchmark described by ``cfg``; returns the JSON-able result (see ``report.SCHEMA``)."""
    cfg.resolve()
    backend = get_backend(cfg.device, cfg.dtype)
    if backend.note:
        log(backend.note)
    names = cfg.contenders or default_contenders(backend)
    xpmlp = xpmlp_backends(backend, cfg.xpmlp_devices) if "xpmlp" in names else []
    busy = load_note()
    data = load_data(cfg, log)
    race = Race(cfg, data, log)
    if busy:
        log(f"warning: {busy}")
        race.notes.append(busy)
    # torch's threads matter when it is a contender or already loaded (a torch backend)
    limit_torch = "torch" in names or "torch" in sys.modules
    with ThreadLimit(cfg.threads, limit_torch) as limit, backend.context():
        if limit.note:
            race.notes.append(limit.note)
        for contender in lineup(cfg, data, names, backend, xpmlp):
            race.set_up(contender)
        race.warm_up()
        race.score(race.time_rounds())
        race.measure_input_checks()
        primary, profile = race.running("xpmlp"), None
        if isinstance(primary, XpmlpContender) and cfg.profile:
            profile = primary.profile_epoch(cfg.profile)
        gpu = next((gpu_name(each) for each in [backend, *xpmlp] if each.on_gpu), None)
        measured = {"gemm_ceiling": gemm_ceilings(cfg, backend), "profile": profile,
                    "machine": machine_info(cfg.threads, gpu)}
    if cfg.memory:
        race.measure_memory()
    return build_result(cfg, backend, data, race.results, measured, race.notes)


def gemm_ceilings(cfg: BenchConfig, backend: Backend) -> dict[str, Any]:
    """The GEMM rate with NumPy on the CPU, and on the GPU when the run uses one."""
    ceilings = {"cpu": measure_gemm_rates(cfg.sizes, cfg.batch_size, cfg.dtype, cfg.gemm_seconds)}
    if backend.on_gpu:
        ceilings["gpu"] = measure_gemm_rates(cfg.sizes, cfg.batch_size, cfg.dtype, cfg.gemm_seconds, backend)
    return ceilings


def summary(values: list[float]) -> dict[str, Any]:
    """Median, min, max, quartiles and every value."""
    ordered = sorted(values)
    quartiles = statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) > 1 else [ordered[0]] * 3
    return {"median": statistics.median(ordered), "min": ordered[0], "max": ordered[-1], "q1": quartiles[0],
            "q3": quartiles[2], "all": values}


class Race:
    """The contenders of one run: their results, the ones still running, the notes for the report.

    A contender that raises is reported (status "error", the stage and the exception) and leaves
    the race; the others go on. ``log`` gets the progress lines.
    """

    def __init__(self, cfg: BenchConfig, data: BenchData, log: Log) -> None:
        self.cfg, self.log = cfg, log
        self.n_train = int(data.x_train.shape[0])
        self.results: dict[str, dict[str, Any]] = {}
        self.active: list[Contender] = []
        self.ran: list[Contender] = []  # every contender set up, in race order
        self.notes: list[str] = []

    def running(self, key: str) -> Contender | None:
        return next((contender for contender in self.active if contender.key == key), None)

    def _fail(self, contender: Contender, stage: str, exc: BaseException) -> None:
        self.results[contender.key].update(status="error", reason=f"{stage}: {type(exc).__name__}: {exc}")
        self.log(f"error: {contender.title} failed during {stage}: {type(exc).__name__}: {exc}")
        self.active.remove(contender)

    def _attempt(self, contender: Contender, stage: str, action: Callable[..., Any], *args: Any) -> bool:
        """Run ``action(*args)``; on an exception, report ``contender`` as failed at ``stage`` and return False."""
        try:
            with interrupt_stops():  # a Ctrl-C a library swallows still ends the run, not the epoch's timing
                action(*args)
        except Exception as exc:  # report the contender, keep the benchmark running
            self._fail(contender, stage, exc)
            return False
        return True

    def set_up(self, contender: Contender) -> None:
        """Set ``contender`` up; one that cannot run here is reported and stays out."""
        self.results[contender.key] = {"name": contender.key, "kind": contender.kind, "label": contender.label,
                                       "device": contender.device, "status": "ok", "reason": ""}
        self.active.append(contender)
        self.ran.append(contender)
        try:
            contender.setup()
        except Unavailable as exc:
            self.results[contender.key].update(status=exc.status, reason=exc.reason)
            self.log(f"{contender.title}: {exc.status} ({exc.reason})")
            self.active.remove(contender)
        except Exception as exc:  # report the contender, keep the benchmark running
            self._fail(contender, "setup", exc)

    def warm_up(self) -> None:
        for contender in list(self.active):
            self._attempt(contender, "warm-up", self._warm_up, contender)

    @staticmethod
    def _warm_up(contender: Contender) -> None:
        contender.warmup()
        contender.sync()

    def _timed_epoch(self, contender: Contender, seconds: list[float]) -> None:
        contender.sync()
        start = time.perf_counter()
        contender.epoch()
        contender.sync()
        seconds.append(time.perf_counter() - start)

    def time_rounds(self) -> dict[str, list[float]]:
        """Seconds per epoch of every contender, interleaved: A B C, A B C, ... for ``cfg.rounds`` rounds.

        Between two contenders of different libraries' threads it waits :data:`SETTLE_SECONDS`, untimed.
        """
        cfg = self.cfg
        seconds: dict[str, list[float]] = {contender.key: [] for contender in self.active}
        self.log(f"timing {', '.join(contender.title for contender in self.active)}: {cfg.rounds} rounds x "
                 f"{cfg.epochs} epoch(s) of {self.n_train:,} samples each, interleaved")
        last_pool = None
        for round_index in range(1, cfg.rounds + 1):
            for contender in list(self.active):
                if last_pool is not None and contender.thread_pool != last_pool:
                    time.sleep(SETTLE_SECONDS)  # the last library's threads stop spinning first
                last_pool = contender.thread_pool
                for _ in range(cfg.epochs):
                    if not self._attempt(contender, f"round {round_index}", self._timed_epoch, contender,
                                         seconds[contender.key]):
                        break
            self.log(f"round {round_index}/{cfg.rounds}: " + ", ".join(
                f"{contender.title} {seconds[contender.key][-1]:.3f}s"
                for contender in self.active if seconds[contender.key]))
        return seconds

    def score(self, seconds: dict[str, list[float]], accuracy: bool = True) -> None:
        """Speed statistics and (with ``accuracy``) the test accuracy of every contender still running."""
        for contender in list(self.active):
            self._attempt(contender, "test evaluation", self._score_one, contender, seconds[contender.key], accuracy)

    def _score_one(self, contender: Contender, times: list[float], accuracy: bool) -> None:
        speed = summary([self.n_train / elapsed for elapsed in times])
        gflops = flops_per_epoch(self.cfg, self.n_train) / 1e9 * speed["median"] / self.n_train
        self.results[contender.key].update(
            samples_per_second=speed, seconds_per_epoch=statistics.median(times), seconds_per_epoch_all=times,
            gflops=gflops, epochs_trained=len(times), test_acc=contender.test_accuracy() if accuracy else None,
            **contender.extra)

    def measure_input_checks(self) -> None:
        """How much of an xpmlp epoch ``Trainer.fit``'s re-check of its inputs takes: numbers, and a note."""
        shares = []
        for xpmlp in [contender for contender in self.active if isinstance(contender, XpmlpContender)]:
            check = xpmlp.measure_input_check()
            per_epoch = self.results[xpmlp.key]["seconds_per_epoch"]
            self.results[xpmlp.key].update(input_check_seconds=check, input_check_share=check / per_epoch)
            shares.append(f"{check * 1e3:.1f} ms = {100 * check / per_epoch:.1f}% of an epoch on {xpmlp.device}")
        if shares:
            self.notes.append("Trainer.fit re-checks its inputs (NaN scan, label range) on every call: "
                              f"{'; '.join(shares)} (timed, as users run it)")

    def measure_memory(self) -> None:
        """Each contender that ran, again in a fresh child process: its peak memory (``memory.py``)."""
        for contender in self.ran:
            result = self.results[contender.key]
            if result["status"] != "ok":
                result["memory"] = None
                continue
            self.log(f"memory: {contender.title} in a child process ...")
            timeout = 120 + 10 * result["seconds_per_epoch"]
            memory = result["memory"] = measure_in_child(self.cfg, contender.kind, contender.origin_spec, timeout)
            if memory.get("status") == "ok":
                self.log(f"memory: {contender.title} peak {memory['peak_bytes'] / MIB:,.1f} MiB "
                         f"(set-up {memory['setup_bytes'] / MIB:,.1f}, epoch {memory['epoch_bytes'] / MIB:,.1f})")
            else:
                self.log(f"memory: {contender.title}: {memory.get('status')}: {memory.get('reason')}")
