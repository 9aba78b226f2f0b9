"""C ← β·C + α·Aᵀ·B in one call of NumPy's own BLAS (``cblas_sgemm`` / ``cblas_dgemm`` through ctypes).

NumPy's ``matmul`` has no β, so without this the fused weight update on NumPy costs a GEMM into a
temporary and two more passes over C. SciPy's BLAS wrappers have β, but SciPy's wheels bundle a
second OpenBLAS with its own thread pool, which fought NumPy's for the cores (measured 6× slower per
step on two cores). This module calls the very library NumPy's ``matmul`` uses, so its threads are
NumPy's threads: ``threadpoolctl`` sees no new pool (tested).

Only the OpenBLAS builds that NumPy's wheels bundle are used (``numpy.libs/`` on Linux,
``numpy/.dylibs/`` on macOS) and only through the
symbols whose integer width is known from their name: ``scipy_cblas_?gemm64_`` (64-bit
integers) and ``scipy_cblas_?gemm`` (32-bit). A NumPy built against another BLAS (conda's MKL,
a distribution's libblas) gets ``None`` from :func:`numpy_gemm` and the portable path.
``XPMLP_NUMPY_BLAS=0`` turns this off.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

CblasRowMajor, CblasNoTrans, CblasTrans = 101, 111, 112

#: (symbol stem, integer type) tried in order; the stem takes "s" or "d" after "cblas_".
_SYMBOLS = (("scipy_cblas_{}gemm64_", ctypes.c_int64), ("scipy_cblas_{}gemm", ctypes.c_int32))


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
def _gemm_functions() -> dict[type, Callable[..., None]] | None:
    """{np.float32: sgemm, np.float64: dgemm} bound from NumPy's bundled OpenBLAS, or None."""
    if os.environ.get("XPMLP_NUMPY_BLAS", "1") == "0":
        return None
    for path in _bundled_openblas():
        try:
            lib = ctypes.CDLL(str(path))  # already loaded by NumPy: the same handle and thread pool
        except OSError:
            continue
        for stem, int_type in _SYMBOLS:
            funcs = {}
            for letter, dtype, c_scalar in (("s", np.float32, ctypes.c_float), ("d", np.float64, ctypes.c_double)):
                fn = getattr(lib, stem.format(letter), None)
                if fn is None:
                    break
                fn.restype = None
                fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, int_type, int_type, int_type, c_scalar,
                               ctypes.c_void_p, int_type, ctypes.c_void_p, int_type, c_scalar, ctypes.c_void_p,
                               int_type]
                funcs[dtype] = fn
            if len(funcs) == 2:
                return funcs
    return None


def numpy_gemm() -> str | None:
    """The library and symbol family :func:`gemm_at_b` calls, or None where it falls back."""
    funcs = _gemm_functions()
    return None if funcs is None else funcs[np.float32].__name__


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
    funcs = _gemm_functions()
    if funcs is None or not (C.dtype == A.dtype == B.dtype) or C.dtype.type not in funcs:
        return False
    (k, m), n = A.shape, B.shape[1]
    if min(k, m, n) == 0 or B.shape[0] != k or C.shape != (m, n):
        return False
    if not (C.flags.writeable and _row_major(A) and _row_major(B) and _row_major(C)):
        return False
    if np.may_share_memory(C, A) or np.may_share_memory(C, B):
        return False
    size = C.itemsize
    funcs[C.dtype.type](CblasRowMajor, CblasTrans, CblasNoTrans, m, n, k, alpha,
                        A.ctypes.data, A.strides[0] // size, B.ctypes.data, B.strides[0] // size,
                        beta, C.ctypes.data, C.strides[0] // size)
    return True
