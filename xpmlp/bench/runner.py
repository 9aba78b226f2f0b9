"""The run: set every contender up, warm it up, time interleaved rounds, score, measure the ceilings."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from ..backend import Backend, get_backend
from .config import CONTENDERS, LABELS, BenchConfig, BenchData, Log, load_data
from .contenders import Contender, SklearnContender, TorchContender, Unavailable, XpmlpContender
from .gemm import GemmContender, gemm_backend_for, measure_gemm_rates
from .machine import ThreadLimit, gpu_name, machine_info
from .report import build_result, flops_per_epoch


def run_benchmark(cfg: BenchConfig, log: Log = print) -> dict[str, Any]:
    """Run the benchmark described by ``cfg``; returns the JSON-able result (see ``report.SCHEMA``)."""
    cfg.resolve()
    backend = get_backend(cfg.device, cfg.dtype)
    if backend.note:
        log(backend.note)
    names = cfg.contenders or default_contenders(backend)
    data = load_data(cfg, log)
    race = Race(cfg, data, log)
    # torch's threads matter when it is a contender or already loaded (a torch backend)
    limit_torch = "torch" in names or "torch" in sys.modules
    with ThreadLimit(cfg.threads, limit_torch) as limit, backend.context():
        if limit.note:
            race.notes.append(limit.note)
        for name in names:
            race.set_up(make_contender(name, cfg, data, backend))
        race.warm_up()
        race.score(race.time_rounds())
        xpmlp, profile = race.running("xpmlp"), None
        if isinstance(xpmlp, XpmlpContender):
            race.measure_input_check(xpmlp)
            if cfg.profile:
                profile = xpmlp.profile_epoch(cfg.profile)
        measured = {"gemm_ceiling": gemm_ceilings(cfg, backend), "profile": profile,
                    "machine": machine_info(cfg.threads, gpu_name(backend))}
    return build_result(cfg, backend, data, race.results, measured, race.notes)


def default_contenders(backend: Backend) -> list[str]:
    """Every contender on the CPU; on a GPU, those that can run there (not scikit-learn)."""
    return ["xpmlp", "torch", "gemm"] if backend.on_gpu else list(CONTENDERS)


def make_contender(name: str, cfg: BenchConfig, data: BenchData, backend: Backend) -> Contender:
    """The contender ``name`` on the hardware of xpmlp's ``backend``."""
    makers: dict[str, Callable[[], Contender]] = {
        "xpmlp": lambda: XpmlpContender(cfg, data, backend),
        "torch": lambda: TorchContender(cfg, data, backend),
        "sklearn": lambda: SklearnContender(cfg, data),
        "gemm": lambda: GemmContender(cfg, data, gemm_backend_for(backend)),
    }
    return makers[name]()


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
    the race; the others go on.
    """

    def __init__(self, cfg: BenchConfig, data: BenchData, log: Log) -> None:
        self.cfg, self.log = cfg, log
        self.n_train = int(data.x_train.shape[0])
        self.results: dict[str, dict[str, Any]] = {}
        self.active: list[Contender] = []
        self.notes: list[str] = []

    def running(self, key: str) -> Contender | None:
        return next((contender for contender in self.active if contender.key == key), None)

    def _fail(self, contender: Contender, stage: str, exc: BaseException) -> None:
        self.results[contender.key].update(status="error", reason=f"{stage}: {type(exc).__name__}: {exc}")
        self.log(f"error: {LABELS[contender.key]} failed during {stage}: {type(exc).__name__}: {exc}")
        self.active.remove(contender)

    def _attempt(self, contender: Contender, stage: str, action: Callable[..., Any], *args: Any) -> bool:
        """Run ``action(*args)``; on an exception, report ``contender`` as failed at ``stage`` and return False."""
        try:
            action(*args)
        except Exception as exc:  # report the contender, keep the benchmark running
            self._fail(contender, stage, exc)
            return False
        return True

    def set_up(self, contender: Contender) -> None:
        """Set ``contender`` up; one that cannot run here is reported and stays out."""
        label = LABELS[contender.key]
        self.results[contender.key] = {"name": contender.key, "label": label, "device": contender.device,
                                       "status": "ok", "reason": ""}
        self.active.append(contender)
        try:
            contender.setup()
        except Unavailable as exc:
            self.results[contender.key].update(status=exc.status, reason=exc.reason)
            self.log(f"{label}: {exc.status} ({exc.reason})")
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
        """Seconds per epoch of every contender, interleaved: A B C, A B C, ... for ``cfg.rounds`` rounds."""
        cfg = self.cfg
        seconds: dict[str, list[float]] = {contender.key: [] for contender in self.active}
        self.log(f"timing {', '.join(LABELS[contender.key] for contender in self.active)}: {cfg.rounds} rounds x "
                 f"{cfg.epochs} epoch(s) of {self.n_train:,} samples each, interleaved")
        for round_index in range(1, cfg.rounds + 1):
            for contender in list(self.active):
                for _ in range(cfg.epochs):
                    if not self._attempt(contender, f"round {round_index}", self._timed_epoch, contender,
                                         seconds[contender.key]):
                        break
            self.log(f"round {round_index}/{cfg.rounds}: " + ", ".join(
                f"{LABELS[contender.key]} {seconds[contender.key][-1]:.3f}s"
                for contender in self.active if seconds[contender.key]))
        return seconds

    def score(self, seconds: dict[str, list[float]]) -> None:
        """Test accuracy and speed statistics of every contender still running."""
        for contender in list(self.active):
            self._attempt(contender, "test evaluation", self._score_one, contender, seconds[contender.key])

    def _score_one(self, contender: Contender, times: list[float]) -> None:
        accuracy = contender.test_accuracy()
        speed = summary([self.n_train / elapsed for elapsed in times])
        gflops = flops_per_epoch(self.cfg, self.n_train) / 1e9 * speed["median"] / self.n_train
        self.results[contender.key].update(
            samples_per_second=speed, seconds_per_epoch=statistics.median(times), seconds_per_epoch_all=times,
            gflops=gflops, epochs_trained=len(times), test_acc=accuracy, **contender.extra)

    def measure_input_check(self, xpmlp: XpmlpContender) -> None:
        """How much of an xpmlp epoch ``Trainer.fit``'s re-check of its inputs takes: a number and a note."""
        check = xpmlp.measure_input_check()
        per_epoch = self.results["xpmlp"]["seconds_per_epoch"]
        self.results["xpmlp"].update(input_check_seconds=check, input_check_share=check / per_epoch)
        self.notes.append(f"Trainer.fit re-checks its inputs (NaN scan, label range) on every call: "
                          f"{check * 1e3:.1f} ms = {100 * check / per_epoch:.1f}% of an xpmlp epoch (timed, "
                          f"as users run it)")
