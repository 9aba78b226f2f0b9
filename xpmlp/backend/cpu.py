"""The CPU backends: NumPy (the reference) and array-api-strict (the proof of pure Array API)."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from .base import Backend, check_dtype
from .blas import axpy, gemm_at_b

#: Arrays smaller than this take NumPy's in-place passes in ``axpy_`` (see there).
_BLAS_AXPY_MIN_SIZE = 32768


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
        # One call of NumPy's own BLAS with β (see backend/blas.py): no temporary, one pass over C.
        if gemm_at_b(C, A, B, alpha, beta):
            return C
        # Elsewhere (another BLAS, odd strides): a GEMM into a temporary, then in-place passes.
        product = np.matmul(A.T, B)
        product *= alpha
        if beta != 1.0:
            C *= beta
        C += product
        return C

    def axpy_(self, y: Any, alpha: float, x: Any) -> Any:
        # NumPy's own BLAS: one pass, no temporary, but ~4 µs per ctypes call, which NumPy's two
        # passes beat below ~30k elements (measured: 1 µs at 100, 5.4 µs for both at 30k, 15 vs 8 at 78k)
        if y.size >= _BLAS_AXPY_MIN_SIZE and axpy(y, alpha, x):
            return y
        return np.add(y, np.multiply(x, alpha), out=y)


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
