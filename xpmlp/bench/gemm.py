"""The GEMM-only contender and the GEMM rate: the matrix products of training alone, the ceiling.

Both run through a :class:`~xpmlp.backend.Backend`. GEMM-only runs on the library of each backend
xpmlp runs on (NumPy, PyTorch, CuPy; array-api-strict's products on NumPy), so each xpmlp row is
measured against its own library's products; the GEMM rate is NumPy's on the CPU and the run's
library on a GPU. The Array API's ``matmul`` has no ``out=``, so products
into preallocated outputs go through :func:`matmul_into_for`, the one place that knows each
library's own ``matmul(a, b, out=...)``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..backend import Backend, CupyBackend, NumpyBackend, TorchBackend, get_backend
from .config import BenchConfig, BenchData, batch_sizes
from .contenders import Contender, pool_of

MatmulInto = Callable[..., Any]  # matmul_into(a, b, out=c) writes a @ b into c


def matmul_into_for(backend: Backend) -> MatmulInto:
    """``matmul_into(a, b, out=c)``: ``a @ b`` written into the preallocated ``c`` on ``backend``.

    NumPy, CuPy and PyTorch take ``out=`` in their own ``matmul``; any other library gets the
    Array API product copied into ``c``. (A ``Backend.matmul_into`` method would own this.)
    """
    if isinstance(backend, NumpyBackend):
        return np.matmul
    if isinstance(backend, CupyBackend):
        import cupy  # optional: loaded already by the CupyBackend

        return cupy.matmul
    if isinstance(backend, TorchBackend):
        import torch  # optional and slow: loaded already by the TorchBackend

        return torch.matmul

    def copy_into(a: Any, b: Any, *, out: Any) -> Any:
        out[...] = backend.xp.matmul(a, b)
        return out
    return copy_into


def gemm_backend_for(backend: Backend) -> Backend:
    """Where the GEMM-only contender of ``backend`` runs: its own library and device, except
    array-api-strict (a correctness check, not a fast library), whose products run on NumPy."""
    return backend if backend.on_gpu or isinstance(backend, TorchBackend) else get_backend("cpu", backend.dtype)


def library_label(backend: Backend) -> str:
    """The library in words, with the device where the spec names both: numpy, cupy, torch:cuda:0."""
    return backend.spec if backend.spec.startswith(backend.name) else backend.name


def empty(backend: Backend, shape: tuple[int, ...]) -> Any:
    """An uninitialised array of the backend's dtype on its device."""
    with backend.context():
        return backend.xp.empty(shape, dtype=backend.float_dtype(), device=backend.device)


def gemm_flops_per_sample(sizes: Sequence[int]) -> int:
    """FLOPs of one sample's products: forward and dW for every layer, dh for all but the first."""
    products = sum(fan_in * fan_out for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=False))
    return 2 * (3 * products - sizes[0] * sizes[1])


class GemmContender(Contender):
    """The matrix products of each training step alone, into preallocated outputs."""

    kind = "gemm"

    def __init__(self, cfg: BenchConfig, data: BenchData, backend: Backend | None = None,
                 key: str | None = None) -> None:
        super().__init__(cfg, data, key)
        self.backend = get_backend(backend or "cpu", cfg.dtype)
        self.origin_spec = self.backend.spec
        self.thread_pool = pool_of(self.backend)
        on_gpu = self.backend.on_gpu
        self.device = library_label(self.backend) if on_gpu else f"{self.backend.spec} ({self.backend.name})"

    def setup(self) -> None:
        backend, sizes = self.backend, self.cfg.sizes
        self.matmul_into = matmul_into_for(backend)
        rng = np.random.default_rng([self.cfg.seed, 5])
        # fixed weights of a sensible scale: nothing here may overflow or go denormal
        self.W = [backend.asarray(rng.standard_normal((fan_in, fan_out)) / math.sqrt(fan_in))
                  for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=False)]
        self.WT = [weights.T for weights in self.W]
        self.X = backend.asarray(self.data.x_train)
        self.dW = [empty(backend, tuple(weights.shape)) for weights in self.W]
        self.buffers: dict[int, tuple[list[Any], list[Any]]] = {}
        for rows in set(batch_sizes(self.n, self.cfg.batch_size)) | {min(self.cfg.batch_size, self.warm_n)}:
            outputs = [empty(backend, (rows, width)) for width in sizes[1:]]          # z_i of the forward pass
            hidden_grads = [empty(backend, (rows, width)) for width in sizes[1:-1]]  # dh of the hidden layers
            self.buffers[rows] = (outputs, hidden_grads)
        self.extra["gemm_flops_per_sample"] = gemm_flops_per_sample(sizes)

    def _step(self, x: Any) -> None:
        matmul_into, W, WT, dW = self.matmul_into, self.W, self.WT, self.dW
        outputs, hidden_grads = self.buffers[x.shape[0]]
        h = x
        for i in range(len(W)):           # forward: h_{i+1} = h_i @ W_i
            matmul_into(h, W[i], out=outputs[i])
            h = outputs[i]
        d = outputs[-1]                   # stands in for dlogits
        for i in range(len(W) - 1, -1, -1):
            layer_input = x if i == 0 else outputs[i - 1]
            matmul_into(layer_input.T, d, out=dW[i])      # dW_i = h_iᵀ @ d_i
            if i:                                         # dh_i = d_i @ W_iᵀ (no dx for the first layer)
                matmul_into(d, WT[i], out=hidden_grads[i - 1])
                d = hidden_grads[i - 1]

    def _run(self, n: int) -> None:
        start = 0
        for rows in batch_sizes(n, self.cfg.batch_size):
            self._step(self.X[start:start + rows, ...])
            start += rows

    def warmup(self) -> None:
        self._run(self.warm_n - self.warm_n % min(self.cfg.batch_size, self.warm_n))

    def epoch(self) -> None:
        self._run(self.n)

    def sync(self) -> None:
        self.backend.synchronize()


def measure_gemm_rates(sizes: Sequence[int], batch: int, dtype: str = "float32", seconds: float = 0.5,
                       backend: Backend | str = "cpu") -> dict[str, Any]:
    """GFLOP/s of the forward GEMM shapes (batch x a) @ (a x b), each in a short timed loop.

    Returns ``{"library", "dtype", "shapes": [{"m", "k", "n", "gflops"}], "gflops"}`` where the
    last is the total FLOPs over the total time (the rate of the forward pass's products).
    """
    backend = get_backend(backend, dtype)
    matmul_into = matmul_into_for(backend)
    rng = np.random.default_rng(3)
    shapes, total_flops, total_seconds = [], 0.0, 0.0
    for k, n in zip(sizes[:-1], sizes[1:], strict=False):
        a = backend.asarray(rng.standard_normal((batch, k)))
        b = backend.asarray(rng.standard_normal((k, n)) / math.sqrt(k))
        reps, elapsed = _time_products(backend, matmul_into, a, b, empty(backend, (batch, n)), seconds)
        flops = 2.0 * batch * k * n * reps
        shapes.append({"m": batch, "k": k, "n": n, "gflops": flops / elapsed / 1e9})
        total_flops += flops
        total_seconds += elapsed
    return {"library": library_label(backend), "dtype": dtype, "shapes": shapes,
            "gflops": total_flops / total_seconds / 1e9}


def _time_products(backend: Backend, matmul_into: MatmulInto, a: Any, b: Any, out: Any,
                   seconds: float) -> tuple[int, float]:
    """(repetitions, seconds) of ``a @ b`` into ``out``, repeated for at least ``seconds`` after 3 untimed."""
    for _ in range(3):
        matmul_into(a, b, out=out)
    backend.synchronize()
    reps, elapsed, start = 0, 0.0, time.perf_counter()
    while elapsed < seconds or reps < 5:
        for _ in range(5):
            matmul_into(a, b, out=out)
        backend.synchronize()
        reps += 5
        elapsed = time.perf_counter() - start
    return reps, elapsed
