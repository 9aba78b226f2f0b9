"""C ← β·C + α·Aᵀ·B and y ← y + α·x in one call of NumPy's own BLAS (``cblas_?gemm``, ``cblas_?axpy``, ctypes).

NumPy's ``matmul`` has no β, so without this the fused weight update on NumPy costs a GEMM into a
temporary and two more passes over C. SciPy's BLAS wrappers have β, but SciPy's wheels bundle a
second OpenBLAS with its own thread pool, which fought NumPy's for the cores (measured 6× slower per
step on two cores). This module calls the very library NumPy's ``matmul`` uses, so its threads are
NumPy's threads: ``threadpoolctl`` sees no new pool (tested).

Only the OpenBLAS builds that NumPy's wheels bundle are used (``numpy.libs/`` on Linux,
``numpy/.dylibs/`` on macOS) and only through the symbols whose integer width is known from their
name: ``scipy_cblas_?gemm64_`` / ``?axpy64_`` (64-bit integers) and ``scipy_cblas_?gemm`` / ``?axpy``
(32-bit). A NumPy built against another BLAS (conda's MKL, a distribution's libblas) gets ``None``
from :func:`numpy_gemm` and the portable path. ``XPMLP_NUMPY_BLAS=0`` turns this off.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

CblasRowMajor, CblasNoTrans, CblasTrans = 101, 111, 112

#: (symbol pattern, integer type) tried in order; "{}" takes "sgemm", "dgemm", "saxpy", "daxpy".
_SYMBOLS = (("scipy_cblas_{}64_", ctypes.c_int64), ("scipy_cblas_{}", ctypes.c_int32))


def _argtypes(routine: str, int_type: Any, c_scalar: Any) -> list[Any]:
    """ctypes argument types of cblas_?gemm (row-major form) and cblas_?axpy."""
    if routine == "gemm":  # order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc
        return [ctypes.c_int, ctypes.c_int, ctypes.c_int, int_type, int_type, int_type, c_scalar,
                ctypes.c_void_p, int_type, ctypes.c_void_p, int_type, c_scalar, ctypes.c_void_p, int_type]
    return [int_type, c_scalar, ctypes.c_void_p, int_type, ctypes.c_void_p, int_type]  # n, alpha, x, incx, y, incy


def _bundled_openblas() -> list[Path]:
    """The OpenBLAS libraries shipped inside NumPy's wheel (empty for other builds)."""
    here = Path(np.__file__).resolve().parent
    folders = (here.parent / "numpy.libs", here / ".dylibs")
    found: list[Path] = []
    for folder in folders:
        if folder.is_dir():
            found += sorted(p for p in folder.iterdir() if p.name.startswith("libscipy_openblas"))
    return found


@functools.cache
def _blas_functions() -> dict[tuple[str, type], Callable[..., None]] | None:
    """{("gemm" | "axpy", np.float32 | np.float64): function} bound from NumPy's bundled OpenBLAS, or None."""
    if os.environ.get("XPMLP_NUMPY_BLAS", "1") == "0":
        return None
    for path in _bundled_openblas():
        try:
            lib = ctypes.CDLL(str(path))  # already loaded by NumPy: the same handle and thread pool
        except OSError:
            continue
        for pattern, int_type in _SYMBOLS:
            funcs = {}
            for routine in ("gemm", "axpy"):
                for letter, dtype, c_scalar in (("s", np.float32, ctypes.c_float), ("d", np.float64, ctypes.c_double)):
                    fn = getattr(lib, pattern.format(letter + routine), None)
                    if fn is not None:
                        fn.restype = None
                        fn.argtypes = _argtypes(routine, int_type, c_scalar)
                        funcs[routine, dtype] = fn
            if len(funcs) == 4:
                return funcs
    return None


def numpy_gemm() -> str | None:
    """The library and symbol family :func:`gemm_at_b` calls, or None where it falls back."""
    funcs = _blas_functions()
    return None if funcs is None else funcs["gemm", np.float32].__name__


def _row_major(a: np.ndarray) -> bool:
    """Rows of unit-stride elements at a positive row stride: what a row-major BLAS operand needs."""
    return (a.ndim == 2 and a.flags.aligned and a.strides[1] == a.itemsize
            and a.strides[0] >= a.itemsize * max(a.shape[1], 1) and a.strides[0] % a.itemsize == 0)


def gemm_at_b(C: np.ndarray, A: np.ndarray, B: np.ndarray, alpha: float, beta: float) -> bool:
    """C ← β·C + α·Aᵀ·B in place through NumPy's BLAS; False (C untouched) when it cannot.

    Shapes: A (k, m), B (k, n), C (m, n), one floating dtype. It declines rather than guesses:
    no bundled BLAS, another dtype, an empty dimension, an operand that is not row-major with
    unit inner stride, a read-only C, or C overlapping A or B.
    """
    funcs = _blas_functions()
    if funcs is None or not (C.dtype == A.dtype == B.dtype) or ("gemm", C.dtype.type) not in funcs:
        return False
    (k, m), n = A.shape, B.shape[1]
    if min(k, m, n) == 0 or B.shape[0] != k or C.shape != (m, n):
        return False
    if not (C.flags.writeable and _row_major(A) and _row_major(B) and _row_major(C)):
        return False
    if np.may_share_memory(C, A) or np.may_share_memory(C, B):
        return False
    size = C.itemsize
    funcs["gemm", C.dtype.type](CblasRowMajor, CblasTrans, CblasNoTrans, m, n, k, alpha,
                        A.ctypes.data, A.strides[0] // size, B.ctypes.data, B.strides[0] // size,
                        beta, C.ctypes.data, C.strides[0] // size)
    return True


def axpy(y: np.ndarray, alpha: float, x: np.ndarray) -> bool:
    """y ← y + α·x in place through NumPy's BLAS (one pass, no temporary); False (y untouched) when it cannot.

    It declines for: no bundled BLAS, another dtype, different shapes or dtypes, an empty array, an
    operand that is not C-contiguous, a read-only y, or y overlapping x.
    """
    funcs = _blas_functions()
    if funcs is None or y.dtype != x.dtype or ("axpy", y.dtype.type) not in funcs or y.shape != x.shape:
        return False
    if y.size == 0 or not (y.flags.c_contiguous and x.flags.c_contiguous and y.flags.aligned and x.flags.aligned):
        return False
    if not y.flags.writeable or np.may_share_memory(y, x):
        return False
    funcs["axpy", y.dtype.type](y.size, alpha, x.ctypes.data, 1, y.ctypes.data, 1)
    return True
