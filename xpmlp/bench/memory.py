"""Peak memory of a training run, per contender, each measured in a fresh child process.

Why a child: in the benchmark's own process every contender's model and data are resident at
once, and freed memory often stays with the allocator (glibc keeps freed heap, PyTorch and
CuPy cache blocks), so in-process numbers would depend on who ran before. Instead, after the
timed rounds, ``python -m xpmlp.bench.memory_child`` is started once per contender that ran.
It loads the same data (the host arrays every contender shares), imports the contender's
library, returns the C heap's free memory to the system (``malloc_trim``), notes its resident
set size (RSS) -- the *baseline* -- and then

1. sets the contender up (model, its own copy of the training data on its device), and
2. trains one epoch, the same epoch the benchmark times (no warm-up before: a first epoch is
   what a user's run pays).

For each stage it reads the peak RSS: the kernel's high-water mark ``VmHWM`` of
``/proc/self/status``, reset at the start of the stage by writing ``5`` to
``/proc/self/clear_refs`` (Linux 4.0+). Where that file is not writable, a thread samples
``/proc/self/statm`` every millisecond instead (``method: "sampled"``; it can miss spikes
shorter than that). Reported, in bytes:

* ``peak_bytes``: the highest RSS of either stage minus the baseline -- the memory a training
  run adds to the loaded data (the table's "peak MiB");
* ``setup_bytes``: RSS after setting up minus the baseline (model, data copy, library state);
* ``epoch_bytes``: the peak RSS of the epoch minus the RSS after setting up -- the working
  memory of training (activations, gradients, temporaries, BLAS buffers);
* ``device``: on a GPU, the device memory as the library's allocator counts it (host RSS
  excludes it): ``setup_bytes`` in use after setting up, ``peak_bytes`` -- CuPy: what its
  memory pool holds after the epoch (the pool keeps freed blocks, so this is its high-water
  mark, at least the peak in use); PyTorch: ``torch.cuda.max_memory_allocated`` (peak in use;
  ``reserved_bytes`` is ``max_memory_reserved``, what its caching allocator held) -- and
  ``epoch_bytes``, the peak minus the setup.

Without ``/proc/self`` (not Linux) the result is ``status: "unavailable"``. A child that fails
or times out gives ``status: "error"`` and a reason; it never fails the benchmark.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..backend import Backend, CupyBackend, TorchBackend
from .config import BenchConfig
from .contenders import Contender

CHILD_MODULE = "xpmlp.bench.memory_child"
MIB = 2**20
SAMPLE_SECONDS = 0.001
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int | None:
    """This process's resident set size now (None without ``/proc/self/statm``)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def _vmhwm_bytes() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _reset_hwm() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS; False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return _vmhwm_bytes() is not None


class PeakRss:
    """The peak RSS over a ``with`` block (``.peak``, bytes); ``.method`` says how it was measured."""

    def __init__(self) -> None:
        self.method, self.peak = "", 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakRss:
        self.peak = rss_bytes() or 0
        if _reset_hwm():
            self.method = "vmhwm"
        else:
            self.method = "sampled"
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.peak = max(self.peak, rss_bytes() or 0)

    def __exit__(self, *exc: Any) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, rss_bytes() or 0)
        else:
            self.peak = max(self.peak, _vmhwm_bytes() or 0)


DeviceCounters = tuple[str, Callable[[], int], Callable[[], dict[str, int]]]


def device_counters(backend: Backend | None) -> DeviceCounters | None:
    """(library, bytes in use now, peak counters) of a GPU backend's allocator; None off the GPU.

    (A ``Backend.memory_stats`` method would own this, as ``matmul_into_for`` notes in gemm.py.)
    """
    if backend is None or not backend.on_gpu:
        return None
    if isinstance(backend, CupyBackend):
        import cupy  # optional: loaded already by the CupyBackend

        pool = cupy.get_default_memory_pool()

        def on_device(read: Callable[[], int]) -> Callable[[], int]:
            # the pool's counts are the *current* device's: make the benchmarked device current
            def read_there() -> int:
                with backend.context():
                    return int(read())
            return read_there

        used, total = on_device(pool.used_bytes), on_device(pool.total_bytes)
        return "cupy", used, lambda: {"peak_bytes": total()}
    if isinstance(backend, TorchBackend):
        import torch  # optional and slow: loaded already by the TorchBackend

        device = backend.device
        return "torch", lambda: torch.cuda.memory_allocated(device), lambda: {
            "peak_bytes": torch.cuda.max_memory_allocated(device),
            "reserved_bytes": torch.cuda.max_memory_reserved(device)}
    return None


def release_free_memory() -> None:
    """Collect garbage and hand the C heap's free memory back to the system (glibc's ``malloc_trim``).

    Otherwise memory freed while loading the data stays resident, and a contender that reuses it
    would seem to need less than it does.
    """
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def measure_contender(contender: Contender) -> dict[str, Any]:
    """Set ``contender`` up and train it one epoch in this process; its memory (see the module docstring)."""
    release_free_memory()
    baseline = rss_bytes()
    if baseline is None:
        return {"status": "unavailable", "reason": "needs Linux's /proc/self to read the resident set size"}
    with PeakRss() as setup:
        contender.setup()
        contender.sync()
    after_setup = rss_bytes() or setup.peak
    counters = device_counters(getattr(contender, "backend", None))
    device_setup = counters[1]() if counters else 0
    with PeakRss() as epoch:
        contender.epoch()
        contender.sync()
    result: dict[str, Any] = {
        "status": "ok", "method": epoch.method, "baseline_bytes": baseline,
        "peak_bytes": max(setup.peak, epoch.peak) - baseline, "setup_bytes": after_setup - baseline,
        "epoch_bytes": max(0, epoch.peak - after_setup), "samples": contender.n, "device": None}
    if counters:
        library, _, peaks = counters
        device = {"library": library, "setup_bytes": device_setup, **peaks()}
        result["device"] = device | {"epoch_bytes": max(0, device["peak_bytes"] - device_setup)}
    return result


def _child_env() -> dict[str, str]:
    """This environment, with the folder holding this xpmlp first on the child's import path."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return os.environ | {"PYTHONPATH": root + (os.pathsep + path if path else "")}


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def measure_in_child(cfg: BenchConfig, kind: str, spec: str, timeout: float) -> dict[str, Any]:
    """:func:`measure_contender` for the contender ``kind`` made on backend ``spec``, in a fresh process."""
    request = json.dumps({"config": asdict(cfg), "kind": kind, "spec": spec})
    try:
        proc = subprocess.run([sys.executable, "-m", CHILD_MODULE], input=request, capture_output=True,
                              text=True, timeout=timeout, env=_child_env())
    except subprocess.TimeoutExpired:
        return {"status": "error", "reason": f"the child process ran past {timeout:.0f} s"}
    except OSError as exc:
        return {"status": "error", "reason": f"could not start the child process: {exc}"}
    if proc.returncode != 0:
        return {"status": "error", "reason": f"the child process exited {proc.returncode}: {_last_line(proc.stderr)}"}
    try:
        return dict(json.loads(_last_line(proc.stdout)))
    except (ValueError, TypeError):
        return {"status": "error", "reason": f"the child process printed no result: {_last_line(proc.stdout)}"}
