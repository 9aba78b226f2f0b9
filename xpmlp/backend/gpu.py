"""The backends that can reach a GPU: PyTorch (CPU or CUDA) and CuPy (CUDA).

Both libraries run their kernels on the *current* CUDA device, so ``context()`` makes the
backend's device current; every public entry point of xpmlp runs inside it.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any

import numpy as np

from .base import Backend, check_dtype, mixed_seed

#: Element i of a draw keyed k: SplitMix64 of k + (i + 1)·φ·2⁶⁴, its top 24 (float32) or 53 (float64)
#: bits scaled into [0, 1). ``counter_uniform`` below is the same function on the host.
COUNTER_UNIFORM_CUDA = """
unsigned long long z = key + (unsigned long long)(i + 1) * 0x9E3779B97F4A7C15ULL;
z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
z ^= z >> 31;
u = (sizeof(T) == 4) ? (T)((float)(z >> 40) * (1.0f / 16777216.0f))
                     : (T)((double)(z >> 11) * (1.0 / 9007199254740992.0));
"""


def counter_uniform(n: int, key: int, dtype: str) -> np.ndarray:
    """The host reference of the CuPy backend's uniform kernel: n numbers in [0, 1) for a 64-bit key."""
    with np.errstate(over="ignore"):
        z = np.uint64(key) + (np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    if check_dtype(dtype) == "float32":
        return (z >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


class TorchBackend(Backend):
    """PyTorch tensors through array-api-compat; specs ``torch`` (CPU) and ``torch:cuda:N``.

    Parameters
    ----------
    index : int or None, default None
        The CUDA device index; None for PyTorch's CPU.
    dtype : {"float32", "float64"}, default "float32"
        The default floating dtype.
    """

    name = "torch"
    array_class = ("torch", "Tensor")

    def __init__(self, index: int | None = None, dtype: str = "float32") -> None:
        torch = importlib.import_module("torch")
        self._torch = torch
        device = torch.device("cpu") if index is None else torch.device("cuda", index)
        spec = "torch" if index is None else f"torch:cuda:{index}"
        super().__init__(spec, importlib.import_module("array_api_compat.torch"), device, dtype)
        self.on_gpu = index is not None

    @classmethod
    def host_array(cls, a: Any) -> np.ndarray:
        # one counted transfer (``numpy``); copy=True so a CPU tensor's memory is never shared
        return a.detach().to("cpu", copy=True).numpy()

    def same_device(self, a: Any) -> bool:
        return a.device.type == self.device.type and (a.device.index or 0) == (self.device.index or 0)

    def context(self) -> contextlib.AbstractContextManager[Any]:
        if self.on_gpu:
            return self._torch.cuda.device(self.device.index)
        return contextlib.nullcontext()

    def synchronize(self) -> None:
        if self.on_gpu:
            self._torch.cuda.synchronize(self.device)

    def relu_(self, x: Any) -> Any:
        # clamp keeps −0.0; adding +0.0 turns it into +0.0 as the definition asks (NaN stays NaN)
        return x.clamp_(min=0.0).add_(0.0)

    def mask_(self, d: Any, keep: Any) -> Any:
        return d.mul_(keep)

    def gemm_update(self, C: Any, A: Any, B: Any, alpha: float, beta: float) -> Any:
        return C.addmm_(A.T, B, beta=beta, alpha=alpha)

    def axpy_(self, y: Any, alpha: float, x: Any) -> Any:
        return y.add_(x, alpha=alpha)

    def uniform(self, shape: tuple[int, ...], key: tuple[int, int], dtype: str | None = None) -> Any:
        generator = self._torch.Generator(device=self.device)
        generator.manual_seed(mixed_seed(key))
        return self._torch.rand(shape, generator=generator, dtype=self.float_dtype(dtype), device=self.device)

    def torch_device(self) -> str:
        return str(self.device)

    def device_description(self) -> str:
        if self.on_gpu:
            return str(self._torch.cuda.get_device_name(self.device))
        return "cpu"


class CupyBackend(Backend):
    """CuPy arrays on CUDA device N through array-api-compat; spec ``cuda:N``.

    Parameters
    ----------
    index : int, default 0
        The CUDA device index.
    dtype : {"float32", "float64"}, default "float32"
        The default floating dtype.
    """

    name = "cupy"
    array_class = ("cupy", "ndarray")
    on_gpu = True

    def __init__(self, index: int = 0, dtype: str = "float32") -> None:
        cupy = importlib.import_module("cupy")
        self._cupy = cupy
        # `import cupy` leaves the submodule unloaded (CuPy imports it lazily, in linalg.solve only):
        # without this the fused step's first call fails with "module 'cupy' has no attribute 'cublas'"
        self._cublas = importlib.import_module("cupy.cublas")
        self.index = index
        super().__init__(f"cuda:{index}", importlib.import_module("array_api_compat.cupy"),
                         cupy.cuda.Device(index), dtype)
        self._relu_kernel: Any = None
        self._uniform_kernel: Any = None

    @classmethod
    def host_array(cls, a: Any) -> np.ndarray:
        return a.get()  # a device-to-host copy, made on the array's own device

    def sparse_matrix(self, X: Any) -> Any:
        """A ``cupyx.scipy.sparse.csr_matrix`` on this GPU in the backend's dtype (a SciPy X: one copy up)."""
        sparse = importlib.import_module("cupyx.scipy.sparse")
        dtype = self.float_dtype()
        with self.context():  # CuPy's current-device rule: made on this backend's GPU
            if type(X).__module__.startswith("cupyx.") and not self.owns(X.data):
                X = X.get()  # on another GPU: through the host, as dense arrays of another device go
            if not type(X).__module__.startswith("cupyx."):
                X = X.tocsr()
                X = sparse.csr_matrix(X.astype(dtype) if X.dtype != dtype else X)
            elif X.format != "csr":
                X = X.tocsr()
            return X if X.dtype == dtype else X.astype(dtype)

    def same_device(self, a: Any) -> bool:
        return int(a.device.id) == self.index

    def context(self) -> contextlib.AbstractContextManager[Any]:
        return self._cupy.cuda.Device(self.index)

    def synchronize(self) -> None:
        self._cupy.cuda.Device(self.index).synchronize()

    def relu_(self, x: Any) -> Any:
        if self._relu_kernel is None:
            # one pass with the definition written out: cupy.maximum's −0.0 is not documented
            self._relu_kernel = self._cupy.ElementwiseKernel("T x", "T y", "y = (x <= (T)0) ? (T)0 : x",
                                                             "xpmlp_relu")
        return self._relu_kernel(x, x)

    def mask_(self, d: Any, keep: Any) -> Any:
        return self._cupy.multiply(d, keep, out=d)

    def gemm_update(self, C: Any, A: Any, B: Any, alpha: float, beta: float) -> Any:
        # cuBLAS through cupy.cublas.gemm writes into C: C = alpha * op(A) @ op(B) + beta * C
        self._cublas.gemm("T", "N", A, B, out=C, alpha=alpha, beta=beta)
        return C

    def axpy_(self, y: Any, alpha: float, x: Any) -> Any:
        if not (y.flags.c_contiguous and x.flags.c_contiguous):
            # reshape(-1) of a strided array is a copy: cuBLAS would update the copy and lose it
            y += alpha * x
            return y
        self._cublas.axpy(alpha, x.reshape(-1), y.reshape(-1))  # cuBLAS axpy takes vectors: flat views
        return y

    def uniform(self, shape: tuple[int, ...], key: tuple[int, int], dtype: str | None = None) -> Any:
        # A counter-based kernel keyed by (seed, draw), compiled once: no cuRAND generator is made per
        # draw, and draw k is a pure function of its key, so a resumed run draws the same numbers.
        if self._uniform_kernel is None:
            self._uniform_kernel = self._cupy.ElementwiseKernel("uint64 key", "T u", COUNTER_UNIFORM_CUDA,
                                                                "xpmlp_uniform")
        with self.context():
            out = self._cupy.empty(shape, dtype=check_dtype(dtype or self.dtype))
            return self._uniform_kernel(np.uint64(mixed_seed(key)), out)

    def torch_device(self) -> str:
        return f"cuda:{self.index}"

    def device_description(self) -> str:
        name = self._cupy.cuda.runtime.getDeviceProperties(self.index)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
