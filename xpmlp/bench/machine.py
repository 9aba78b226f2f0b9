"""The machine a benchmark ran on: CPU, GPU, BLAS libraries and their threads, versions, environment.

Also :class:`ThreadLimit`, which gives NumPy's BLAS and PyTorch the same thread count for a run.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import __version__
from ..backend import Backend
from ..backend.blas import numpy_gemm
from ..train import Interrupt

ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
            "MKL_NUM_THREADS")
_BLAS_KEYS = ("internal_api", "architecture", "version", "num_threads", "threading_layer", "prefix")


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average() -> list[float] | None:
    """The 1-, 5- and 15-minute load averages (None where the system does not say)."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def load_note() -> str:
    """A warning when other processes keep the CPU busy as a run starts ('' when the machine looks idle).

    A loaded machine slows every contender, and multi-threaded BLAS most (its threads wait for
    each other on every product); the 1-minute average also still counts what ran just before.
    """
    load, cores = load_average(), available_cores()
    if load is None or load[0] <= 0.5 * cores:
        return ""
    return (f"the 1-minute load average was {load[0]:.1f} on {cores} core(s) as the run started: other processes "
            "compete for the CPU and timings suffer, multi-threaded BLAS most (use an idle machine, or --threads 1)")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _threadpool_info() -> list[dict[str, Any]] | None:
    try:
        from threadpoolctl import threadpool_info  # optional: the [bench] extra
    except ImportError:
        return None
    return threadpool_info()


def _blas_entries(pools: list[dict[str, Any]] | None, package: str) -> list[dict[str, Any]]:
    """threadpoolctl's entries for the libraries shipped inside ``package`` (its wheel's folder)."""
    if pools is None:
        return []
    entries = []
    for pool in pools:
        path = pool.get("filepath", "")
        if f"{os.sep}{package}" in path:
            entry = {key: pool.get(key) for key in _BLAS_KEYS if key in pool}
            entry["user_api"] = pool.get("user_api")
            entry["file"] = os.path.basename(path)
            entries.append(entry)
    return entries


def _torch_blas(torch: Any) -> dict[str, Any]:
    """torch's BLAS: statically linked MKL is invisible to threadpoolctl, so read its build config."""
    info: dict[str, Any] = {"num_threads": torch.get_num_threads()}
    try:
        text = torch.__config__.show()
    except Exception:  # a stripped build: nothing to report
        return info
    for line in text.splitlines():
        item = line.strip().lstrip("- ")
        if "Math Kernel Library" in item:
            info["mkl"] = item
        elif "MKL-DNN" in item or "oneDNN" in item:
            info["onednn"] = item
        elif item.startswith("CPU capability usage"):
            info["cpu_capability"] = item.split(":", 1)[1].strip()
        elif "BLAS_INFO=" in item:
            info["blas_info"] = item.split("BLAS_INFO=", 1)[1].split(",", 1)[0]
    return info


def _version(module: str) -> str | None:
    try:
        loaded = __import__(module)
    except ImportError:
        return None
    return str(getattr(loaded, "__version__", "?"))


def _versions() -> dict[str, str | None]:
    versions = {"xpmlp": __version__, "numpy": np.__version__, "torch": _version("torch"),
                "sklearn": _version("sklearn"), "threadpoolctl": _version("threadpoolctl"),
                "array_api_compat": _version("array_api_compat")}
    if "cupy" in sys.modules:  # loaded by a CuPy backend; never imported just to be named
        versions["cupy"] = _version("cupy")
    return versions


def _blas() -> dict[str, Any]:
    pools = _threadpool_info()
    # scikit-learn's MLPClassifier does its products with NumPy's ``@``: the "numpy" entry is its BLAS too
    blas: dict[str, Any] = {"numpy": _blas_entries(pools, "numpy"), "scipy": _blas_entries(pools, "scipy"),
                            "sklearn": _blas_entries(pools, "scikit_learn")}
    # the fused weight update on NumPy calls this symbol of NumPy's own BLAS (None: matmul + passes)
    blas["numpy_fused_gemm"] = numpy_gemm()
    if pools is None:
        blas["note"] = "threadpoolctl is not installed: pip install threadpoolctl"
    try:
        import torch  # optional and slow
    except ImportError:
        blas["torch"] = None
    else:
        blas["torch"] = _torch_blas(torch) | {"threadpool": _blas_entries(pools, "torch")}
    return blas


def machine_info(threads: int, gpu: str | None = None) -> dict[str, Any]:
    """CPU, GPU, BLAS libraries and kernels, threads, versions, date and BLAS env vars."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cores_available": available_cores(),
        "load_average": load_average(),
        "threads": threads,
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "versions": _versions(),
        "env": {name: os.environ.get(name) for name in ENV_VARS},
        "gpu": gpu,
        "blas": _blas(),
    }


def gpu_name(backend: Backend) -> str | None:
    """The GPU's name when the run uses one (PyTorch then runs on the same GPU), else None."""
    if not backend.on_gpu:
        return None
    try:
        return backend.device_description()
    except Exception as exc:  # report, never fail the benchmark over a name
        return f"unknown ({type(exc).__name__})"


class ThreadLimit:
    """Same thread count for NumPy's BLAS (threadpoolctl) and torch (set_num_threads), restored after."""

    def __init__(self, threads: int, limit_torch: bool) -> None:
        self.threads, self.limit_torch = threads, limit_torch
        self.limiter: Any = None
        self.torch: Any = None
        self.torch_threads_before: int | None = None
        self.note = ""

    def __enter__(self) -> ThreadLimit:
        try:
            from threadpoolctl import threadpool_limits  # optional: the [bench] extra
        except ImportError:
            self.note = "threadpoolctl is not installed: NumPy's BLAS thread count is not enforced"
        else:
            self.limiter = threadpool_limits(limits=self.threads)
        if self.limit_torch:
            try:
                import torch  # optional and slow
            except ImportError:
                pass
            else:
                self.torch, self.torch_threads_before = torch, torch.get_num_threads()
                torch.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.limiter is not None:
            self.limiter.restore_original_limits()
        if self.torch is not None:
            self.torch.set_num_threads(self.torch_threads_before)


@contextlib.contextmanager
def interrupt_stops() -> Iterator[None]:
    """A Ctrl-C (or SIGTERM) while a contender trains stops the benchmark instead of being timed.

    scikit-learn's ``fit``, and xpmlp's ``MLPClassifier`` like it, catch KeyboardInterrupt and return
    as if done, so the benchmark would go on with a cut-short fit as a measurement. Inside this block
    the first signal is only noted (the fit or epoch runs to its end) and KeyboardInterrupt is raised
    after it; a second one raises at once (the rule of :class:`~xpmlp.train.Interrupt`).
    """
    with Interrupt() as interrupt:
        yield
    if interrupt.requested:
        raise KeyboardInterrupt
