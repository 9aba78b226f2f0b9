"""NumPy's own BLAS with β (xpmlp/backend/blas.py): right numbers, the right library, safe refusals."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import threadpoolctl

from xpmlp.backend import blas


def _operands(k, m, n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((k, m)).astype(dtype), rng.standard_normal((k, n)).astype(dtype),
            rng.standard_normal((m, n)).astype(dtype))


def test_numpy_wheels_get_the_native_call():
    # NumPy from PyPI bundles OpenBLAS: there the native call must be found (other builds fall back).
    if blas._bundled_openblas():
        assert blas.numpy_gemm() is not None and blas.numpy_gemm().startswith("scipy_cblas_sgemm")
    else:
        assert blas.numpy_gemm() is None


needs_native = pytest.mark.skipif(blas.numpy_gemm() is None, reason="this NumPy does not bundle OpenBLAS")


@needs_native
@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("k,m,n", [(128, 78, 50), (1, 3, 2), (33, 1, 17), (5, 64, 1)])
@pytest.mark.parametrize("alpha,beta", [(-0.1, 1.0), (0.5, 0.0), (-0.05, 0.9)])
def test_native_gemm_is_beta_c_plus_alpha_at_b(dtype, tol, k, m, n, alpha, beta):
    A, B, C = _operands(k, m, n, dtype)
    want = beta * C.astype(np.float64) + alpha * (A.T.astype(np.float64) @ B)
    pointer = C.ctypes.data
    assert blas.gemm_at_b(C, A, B, alpha, beta)
    assert C.ctypes.data == pointer and C.dtype == dtype
    np.testing.assert_allclose(C, want, rtol=tol, atol=tol)


@needs_native
def test_native_gemm_honours_row_strides_and_leaves_the_rest_alone():
    # views whose rows are longer than their width (leading dimension > width) in all three operands
    A_big, B_big, C_big = _operands(40, 30, 25, np.float64, seed=3)
    A, B, C = A_big[:, 5:17], B_big[:, 2:11], C_big[3:15, 4:13]
    before = C_big.copy()
    want = 0.7 * C + 0.3 * (A.T @ B)
    assert blas.gemm_at_b(C, A, B, 0.3, 0.7)
    np.testing.assert_allclose(C, want, rtol=1e-12)
    outside = np.ones_like(C_big, dtype=bool)
    outside[3:15, 4:13] = False
    np.testing.assert_array_equal(C_big[outside], before[outside])


@pytest.mark.parametrize("case", ["float16", "mixed dtypes", "empty k", "column-major A", "column stride",
                                  "read-only C", "C overlaps A", "shape mismatch"])
def test_gemm_at_b_declines_what_it_cannot_do_and_leaves_c_untouched(case):
    A, B, C = _operands(6, 4, 3, np.float64)
    if case == "float16":
        A, B, C = A.astype(np.float16), B.astype(np.float16), C.astype(np.float16)
    elif case == "mixed dtypes":
        A = A.astype(np.float32)
    elif case == "empty k":
        A, B = A[:0], B[:0]
    elif case == "column-major A":
        A = np.asfortranarray(A)
    elif case == "column stride":
        B = np.repeat(B, 2, axis=1)[:, ::2]
    elif case == "read-only C":
        C.flags.writeable = False
    elif case == "C overlaps A":
        A = np.zeros((4, 4))
        C = A[:, :3]
        B = np.ones((4, 3))
    elif case == "shape mismatch":
        C = np.zeros((4, 4))
    before = C.copy()
    assert blas.gemm_at_b(C, A, B, -0.1, 0.5) is False
    np.testing.assert_array_equal(C, before)


@needs_native
def test_the_native_call_adds_no_thread_pool():
    # the point of calling NumPy's own library: NumPy's BLAS threads, not a second pool beside them
    before = sorted(m["filepath"] for m in threadpoolctl.threadpool_info())
    A, B, C = _operands(64, 32, 16, np.float32)
    assert blas.gemm_at_b(C, A, B, 1.0, 1.0)
    after = sorted(m["filepath"] for m in threadpoolctl.threadpool_info())
    assert after == before


def test_xpmlp_numpy_blas_0_turns_the_native_call_off():
    code = ("import numpy as np; from xpmlp.backend import blas, get_backend; "
            "C = np.zeros((3, 2)); A = np.ones((4, 3)); B = np.ones((4, 2)); "
            "print(blas.numpy_gemm(), blas.gemm_at_b(C, A, B, 1.0, 0.0), "
            "get_backend('cpu', 'float64').gemm_update(C, A, B, 1.0, 0.0).sum())")
    env = dict(os.environ, XPMLP_NUMPY_BLAS="0")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["None", "False", "24.0"]  # the portable path still computes Aᵀ·B = 4·ones


@needs_native
@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-6), (np.float64, 1e-15)])
@pytest.mark.parametrize("shape", [(784, 500), (7,), (1, 1)])
def test_native_axpy_adds_alpha_x_in_place(dtype, tol, shape):
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    want = y.astype(np.float64) - 0.3 * x
    pointer = y.ctypes.data
    assert blas.axpy(y, -0.3, x)
    assert y.ctypes.data == pointer and y.dtype == dtype
    np.testing.assert_allclose(y, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("case", ["mixed dtypes", "shapes", "empty", "strided y", "read-only y", "y is x",
                                  "float16"])
def test_axpy_declines_what_it_cannot_do_and_leaves_y_untouched(case):
    x, y = np.ones((4, 6)), np.arange(24.0).reshape(4, 6)
    if case == "mixed dtypes":
        x = x.astype(np.float32)
    elif case == "shapes":
        x = np.ones((6, 4))
    elif case == "empty":
        x, y = x[:0], y[:0]
    elif case == "strided y":
        y = np.arange(48.0).reshape(4, 12)[:, ::2]
        x = np.ones_like(y)
    elif case == "read-only y":
        y.flags.writeable = False
    elif case == "y is x":
        x = y
    elif case == "float16":
        x, y = x.astype(np.float16), y.astype(np.float16)
    before = y.copy()
    assert blas.axpy(y, 2.0, x) is False
    np.testing.assert_array_equal(y, before)


def test_numpy_backend_axpy_gives_the_same_numbers_either_way():
    from xpmlp.backend import get_backend

    cpu = get_backend("cpu", "float64")
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((200, 200)), rng.standard_normal((200, 200))  # large enough for the BLAS call
    strided = np.zeros((200, 400))
    strided[:, ::2] = y
    native, fallback = cpu.axpy_(y.copy(), 0.7, x), cpu.axpy_(strided[:, ::2], 0.7, x)  # the view falls back
    np.testing.assert_allclose(native, fallback, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(strided[:, ::2], y + 0.7 * x, rtol=1e-15)


@pytest.mark.skipif(blas.numpy_gemm() is None, reason="this NumPy has no bundled OpenBLAS to call")
def test_numpy_backend_axpy_calls_blas_only_where_it_pays(monkeypatch):
    """Below ~30k elements the ctypes call's fixed cost loses to NumPy's in-place passes."""
    from xpmlp.backend import cpu as cpu_module
    from xpmlp.backend import get_backend

    calls = []
    monkeypatch.setattr(cpu_module, "axpy", lambda y, a, x: calls.append(y.size) or blas.axpy(y, a, x))
    backend = get_backend("cpu", "float32")
    small, large = cpu_module._BLAS_MIN_SIZE - 1, cpu_module._BLAS_MIN_SIZE
    for size in (small, large):
        y, x = np.ones(size, np.float32), np.full(size, 2.0, np.float32)
        np.testing.assert_array_equal(backend.axpy_(y, 0.5, x), np.full(size, 2.0, np.float32))
    assert calls == [large]
