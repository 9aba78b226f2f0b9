"""Whether each array library is usable here, and if not, why, in words a user can act on.

The probes are cached: importing CuPy or asking CUDA can take seconds. ``import cupy``
succeeds on a machine without a GPU; failures come at the first kernel (no driver, no
NVRTC to compile it) or the first matrix product (no cuBLAS), so the CuPy probe runs both.
"""

from __future__ import annotations

import ctypes.util
import functools
import importlib

CUPY_INSTALL = "pip install 'xpmlp[cuda12]' or 'xpmlp[cuda13]' (the one matching your driver's CUDA version)"
CTK_FIX = ("the CUDA toolkit libraries (NVRTC, cuBLAS) are missing: install CuPy with its [ctk] extra, "
           "pip install 'xpmlp[cuda12]' or 'xpmlp[cuda13]', or install the CUDA toolkit")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip().rstrip(":")


def explain_cupy_failure(exc: BaseException, stage: str) -> str:
    """Name what a CuPy failure at ``stage`` (``count``, ``kernel``, ``matmul``) means and the fix."""
    text = f"{type(exc).__name__} {exc}".lower()
    if "outofmemory" in text or "out of memory" in text or "memoryallocation" in text:
        return f"the GPU is out of memory ({_describe(exc)}); free it (other processes?) or pick another GPU"
    if stage == "count":
        if "insufficientdriver" in text or "driver version is insufficient" in text:
            if ctypes.util.find_library("cuda") is None:
                return f"no NVIDIA driver is installed ({_describe(exc)}); install the NVIDIA driver"
            return (f"the NVIDIA driver is too old for this CuPy's CUDA version ({_describe(exc)}); update the "
                    f"driver, or install the CuPy wheel for the driver's CUDA version ({CUPY_INSTALL})")
        if "nodevice" in text or "no cuda-capable device" in text:
            return "this machine has no CUDA GPU"
        if "libcuda" in text or "driver" in text:
            return f"no usable NVIDIA driver ({_describe(exc)}); install the NVIDIA driver"
        return f"CUDA does not answer ({_describe(exc)})"
    if "nvrtc" in text or "compile" in text or "cublas" in text or "libcu" in text or "cuda_path" in text:
        return f"{CTK_FIX} ({_describe(exc)})"
    if "insufficientdriver" in text or "unsupportedptxversion" in text or "ptx" in text:
        return (f"the NVIDIA driver is too old for this CuPy's CUDA version ({_describe(exc)}); update the "
                f"driver, or install the CuPy wheel for the driver's CUDA version ({CUPY_INSTALL})")
    what = "an elementwise kernel" if stage == "kernel" else "a matrix product"
    return f"the GPU cannot run {what} ({_describe(exc)})"


@functools.cache
def probe_cupy() -> tuple[int, str]:
    """Number of usable CUDA devices seen by CuPy (0 when unusable), and why none."""
    try:
        cupy = importlib.import_module("cupy")
    except Exception as exc:  # ImportError, or a broken CUDA install raising anything at import
        return 0, f"CuPy is not installed ({type(exc).__name__}); {CUPY_INSTALL}"
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:
        return 0, f"CuPy is installed but {explain_cupy_failure(exc, 'count')}"
    if count == 0:
        return 0, "CuPy is installed but this machine has no CUDA GPU"
    stage = "kernel"
    try:
        with cupy.cuda.Device(0):
            a = cupy.arange(8, dtype=cupy.float32)
            float((a * 2).sum().item())  # an elementwise kernel: needs the driver and NVRTC
            stage = "matmul"
            m = cupy.ones((16, 16), dtype=cupy.float32)
            float((m @ m).sum().item())  # a GEMM: needs cuBLAS, which the kernel test does not load
    except Exception as exc:
        return 0, f"CuPy sees {count} GPU(s) but {explain_cupy_failure(exc, stage)}"
    return count, ""


@functools.cache
def probe_torch() -> tuple[bool, int, str]:
    """Whether PyTorch imports, how many CUDA devices it sees, and why none."""
    try:
        torch = importlib.import_module("torch")
    except Exception as exc:
        return False, 0, f"PyTorch is not installed ({type(exc).__name__}); pip install torch"
    try:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        count = 0
    return True, count, "" if count else "PyTorch was built without CUDA or sees no GPU"


@functools.cache
def probe_strict() -> str:
    """Why array-api-strict is not usable ('' when it is)."""
    try:
        importlib.import_module("array_api_strict")
    except Exception as exc:
        return f"array-api-strict is not installed ({type(exc).__name__}); pip install array-api-strict"
    return ""


def clear_probes() -> None:
    """Forget the cached probe results (tests inject fake libraries and probe again)."""
    for probe in (probe_cupy, probe_torch, probe_strict):
        probe.cache_clear()
