"""The CPU backends: NumPy (the reference) and array-api-strict (the proof of pure Array API)."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from .base import Backend, check_dtype
from .blas import axpy, gemm_at_b

#: Outputs smaller than this take NumPy's own path in ``gemm_update`` and ``axpy_``: the direct
#: BLAS call costs ~5-10 µs of checks and ctypes conversion, which its saved passes over C repay
#: only from a few hundred KiB (measured, float32: C of 1000 elements 17 vs 12 µs, 16k 24 vs 20,
#: 78k 207 vs 213, 392k 567 vs 1193; axpy: 100 elements 4 vs 1 µs, 30k 5.7 vs 5.4, 78k 8 vs 15).
_BLAS_MIN_SIZE = 32768

#: ReLU reads its zeros from a preallocated array for inputs up to this many elements: NumPy's
#: ``maximum`` runs its SIMD loop when both operands are arrays but an element-by-element loop for
#: ``maximum(x, 0.0)`` (measured, float32: 64k elements 6.9 vs 24.1 µs, 1M 104 vs 386; float64 64k
#: 11.6 vs 29.0). Beyond the cap the two cost the same (memory-bound: float64 4M 3.38 ms both).
_ZEROS_MAX = 1 << 20
_ZEROS: dict[np.dtype, np.ndarray] = {}  # per dtype, grown to the largest input seen, never written


def zeros_like_shape(x: np.ndarray) -> np.ndarray:
    """A read-only array of zeros with x's shape and dtype, a view of the shared buffer (x.size ≤ _ZEROS_MAX)."""
    zeros = _ZEROS.get(x.dtype)
    if zeros is None or zeros.size < x.size:
        zeros = np.zeros(max(x.size, 4096), dtype=x.dtype)
        zeros.flags.writeable = False  # never written, so a large one stays on the kernel's shared zero page
        _ZEROS[x.dtype] = zeros
    return zeros[: x.size].reshape(x.shape)


class NumpyBackend(Backend):
    """NumPy on the host, through array-api-compat's NumPy namespace; spec ``cpu``.

    Parameters
    ----------
    dtype : {"float32", "float64"}, default "float32"
        The default floating dtype.
    """

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
        return np.maximum(x, zeros_like_shape(x) if x.size <= _ZEROS_MAX else 0.0, out=x)

    def mask_(self, d: Any, keep: Any) -> Any:
        return np.multiply(d, keep, out=d)

    def uniform(self, shape: tuple[int, ...], key: tuple[int, int], dtype: str | None = None) -> Any:
        return np.random.default_rng(list(key)).random(shape, dtype=np.dtype(check_dtype(dtype or self.dtype)))

    def gemm_update(self, C: Any, A: Any, B: Any, alpha: float, beta: float) -> Any:
        # One call of NumPy's own BLAS with β (see backend/blas.py): no temporary, one pass over C.
        if C.size >= _BLAS_MIN_SIZE and gemm_at_b(C, A, B, alpha, beta):
            return C
        # Small C, another BLAS, odd strides: a GEMM into a temporary, then in-place passes.
        product = np.matmul(A.T, B)
        product *= alpha
        if beta != 1.0:
            C *= beta
        C += product
        return C

    def axpy_(self, y: Any, alpha: float, x: Any) -> Any:
        # NumPy's own BLAS: one pass, no temporary (small y: NumPy's two passes, see _BLAS_MIN_SIZE)
        if y.size >= _BLAS_MIN_SIZE and axpy(y, alpha, x):
            return y
        return np.add(y, np.multiply(x, alpha), out=y)


    def sparse_matrix(self, X: Any) -> Any:
        """A SciPy CSR or CSC ``X`` kept as it is, cast only when its dtype differs; other formats
        (and a cupyx matrix, copied to the host) become CSR."""
        if type(X).__module__.startswith("cupyx."):
            X = X.get()  # a device matrix given to the host backend: one device-to-host copy
        if X.format not in ("csr", "csc"):
            X = X.tocsr()
        dtype = self.float_dtype()
        return X if X.dtype == dtype else X.astype(dtype)


class StrictBackend(Backend):
    """array-api-strict on one of its named devices; specs ``strict`` and ``strict:NAME``.

    array-api-strict refuses anything outside the standard and refuses to combine arrays
    of two devices (``strict:device1``, ``strict:device2``): the CPU proof that xpmlp keeps
    every array on its backend's device.

    Parameters
    ----------
    device_name : str, default "CPU_DEVICE"
        The array-api-strict device: ``"CPU_DEVICE"``, ``"device1"`` or ``"device2"``.
    dtype : {"float32", "float64"}, default "float32"
        The default floating dtype.
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
