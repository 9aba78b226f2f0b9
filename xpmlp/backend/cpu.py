"""The CPU backends: NumPy (the reference) and array-api-strict (the proof of pure Array API)."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from .base import Backend, check_dtype

try:  # SciPy's BLAS wrappers give the fused GEMM update (C = αAᵀB + βC) in place; without SciPy, the default
    from scipy.linalg import blas as _scipy_blas
except ImportError:  # pragma: no cover - SciPy is a dependency; this keeps a broken install usable
    _scipy_blas = None


class NumpyBackend(Backend):
    """NumPy on the host, through array-api-compat's NumPy namespace; spec ``cpu``."""

    name = "numpy"
    array_class = ("numpy", "ndarray")

    def __init__(self, dtype: str = "float32") -> None:
        super().__init__("cpu", importlib.import_module("array_api_compat.numpy"), "cpu", dtype)

    @classmethod
    def host_array(cls, a: Any) -> np.ndarray:
        return np.array(a, copy=True)

    def same_device(self, a: Any) -> bool:
        return True

    def relu_(self, x: Any) -> Any:
        # np.maximum gives +0.0 for −0.0 and keeps NaN, as the definition asks (tested on every backend)
        return np.maximum(x, 0.0, out=x)

    def mask_(self, d: Any, keep: Any) -> Any:
        return np.multiply(d, keep, out=d)

    def uniform(self, shape: tuple[int, ...], key: tuple[int, int], dtype: str | None = None) -> Any:
        return np.random.default_rng(list(key)).random(shape, dtype=np.dtype(check_dtype(dtype or self.dtype)))

    def gemm_update(self, C: Any, A: Any, B: Any, alpha: float, beta: float) -> Any:
        gemm = _blas("gemm", C)
        if gemm is None or not (A.flags.c_contiguous and B.flags.c_contiguous and C.flags.c_contiguous):
            return super().gemm_update(C, A, B, alpha, beta)
        # BLAS is column-major: the C-ordered C (m, n) is a column-major Cᵀ (n, m), and
        # Cᵀ ← β·Cᵀ + α·Bᵀ·A is the same update; A.T and B.T are column-major views, no copies.
        out = gemm(alpha, B.T, A.T, beta, C.T, trans_a=0, trans_b=1, overwrite_c=1)
        if not np.shares_memory(out, C):  # SciPy had to copy (it never should here): keep the contract
            C[...] = out.T
        return C

    def axpy_(self, y: Any, alpha: float, x: Any) -> Any:
        axpy = _blas("axpy", y)
        if axpy is None or not (x.flags.c_contiguous and y.flags.c_contiguous) or x.dtype != y.dtype:
            return super().axpy_(y, alpha, x)
        axpy(x.reshape(-1), y.reshape(-1), a=alpha)  # in place on y's memory: no temporary α·x
        return y


def _blas(name: str, like: Any) -> Any:
    """SciPy's BLAS routine ``name`` for the dtype of ``like`` (sgemm, daxpy, ...), or None without SciPy."""
    prefix = {np.dtype(np.float32): "s", np.dtype(np.float64): "d"}.get(like.dtype)
    if prefix is None or _scipy_blas is None:
        return None
    return getattr(_scipy_blas, prefix + name)


class StrictBackend(Backend):
    """array-api-strict on one of its named devices; specs ``strict`` and ``strict:NAME``.

    array-api-strict refuses anything outside the standard and refuses to combine arrays
    of two devices (``strict:device1``, ``strict:device2``): the CPU proof that xpmlp keeps
    every array on its backend's device.
    """

    name = "strict"
    array_class = ("array_api_strict._array_object", "Array")

    def __init__(self, device_name: str = "CPU_DEVICE", dtype: str = "float32") -> None:
        strict = importlib.import_module("array_api_strict")
        spec = "strict" if device_name == "CPU_DEVICE" else f"strict:{device_name}"
        super().__init__(spec, strict, strict.Device(device_name), dtype)

    @classmethod
    def device_names(cls) -> list[str]:
        """The device names array-api-strict offers (``CPU_DEVICE``, ``device1``, ...)."""
        strict = importlib.import_module("array_api_strict")
        return [str(d).split("'")[1] for d in strict.__array_namespace_info__().devices()]

    @classmethod
    def host_array(cls, a: Any) -> np.ndarray:
        return np.array(np.from_dlpack(a), copy=True)
