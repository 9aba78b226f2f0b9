"""The fused weight update: C ← β·C + α·Aᵀ·B in one GEMM, and training that uses it.

The fused path must give the unfused path's numbers to float rounding, on every backend.
"""

from __future__ import annotations

import numpy as np
import pytest


def _factors(backend, k=7, m=5, n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((k, m)), rng.standard_normal((k, n)), rng.standard_normal((m, n))


@pytest.mark.parametrize("alpha,beta", [(-0.1, 1.0), (1.0, 0.0), (-0.05, 0.9), (2.5, -0.5)])
def test_gemm_update_is_beta_c_plus_alpha_at_b_in_place(backend_any, alpha, beta):
    A, B, C = _factors(backend_any)
    want = beta * C + alpha * (A.T @ B)
    dev_c = backend_any.asarray(C)
    out = backend_any.gemm_update(dev_c, backend_any.asarray(A), backend_any.asarray(B), alpha, beta)
    tol = 1e-13 if backend_any.dtype == "float64" else 1e-5
    np.testing.assert_allclose(backend_any.to_numpy(dev_c), want, rtol=tol, atol=tol)
    np.testing.assert_array_equal(backend_any.to_numpy(out), backend_any.to_numpy(dev_c))  # C itself was updated
    assert dev_c.dtype == backend_any.float_dtype()


def test_gemm_update_on_numpy_writes_into_the_same_memory():
    from xpmlp.backend import get_backend

    cpu = get_backend("cpu", "float32")
    A, B, C = (cpu.asarray(a) for a in _factors(cpu, k=64, m=40, n=30))
    pointer = C.__array_interface__["data"][0]
    out = cpu.gemm_update(C, A, B, -0.1, 0.5)
    assert out is C and C.__array_interface__["data"][0] == pointer


def test_gemm_update_on_a_non_contiguous_view_still_computes_it():
    from xpmlp.backend import get_backend

    cpu = get_backend("cpu", "float64")
    A, B, C = _factors(cpu, m=6)
    big = np.zeros((6, 8))
    big[:, ::2] = C
    view = big[:, ::2]
    cpu.gemm_update(view, A, B, 0.5, 2.0)
    np.testing.assert_allclose(big[:, ::2], 2.0 * C + 0.5 * (A.T @ B), rtol=1e-13)
    assert not big[:, 1::2].any()


@pytest.mark.parametrize("alpha", [1.0, -0.3, 0.0])
def test_axpy_adds_alpha_x_in_place(backend_any, alpha):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    dev_y = backend_any.asarray(y)
    backend_any.axpy_(dev_y, alpha, backend_any.asarray(x))
    tol = 1e-15 if backend_any.dtype == "float64" else 1e-6
    np.testing.assert_allclose(backend_any.to_numpy(dev_y), y + alpha * x, rtol=tol, atol=tol)
