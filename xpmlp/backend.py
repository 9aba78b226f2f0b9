"""Device selection: one place that knows about NumPy, CuPy, PyTorch and array-api-strict.

``get_backend(spec)`` turns a device spec into a :class:`Backend` that carries the
array-api-compat namespace ``xp`` and the device; everything else in xpmlp does its
math through ``backend.xp`` and never imports an array library itself.

Specs::

    cpu | numpy        NumPy on the host
    cuda | cuda:N      CuPy on CUDA device N (default 0)
    torch              PyTorch on the CPU
    torch:cuda[:N]     PyTorch on CUDA device N
    strict             array-api-strict (the proof that the math is pure Array API)
    auto               CuPy if a CUDA GPU is actually usable, else NumPy (it says which)
"""

from __future__ import annotations

import functools
import importlib
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from array_api_compat import array_namespace

from .errors import DeviceError

FLOAT_DTYPES = ("float32", "float64")

SPEC_HELP = "cpu, numpy, cuda, cuda:N, torch, torch:cuda, torch:cuda:N, strict or auto"


@dataclass
class Backend:
    """An array namespace bound to one device.

    Attributes:
        name: ``"numpy"``, ``"cupy"``, ``"torch"`` or ``"strict"``.
        spec: the canonical spec that rebuilds this backend (``"cuda:0"``, ...).
        xp: the array-api-compat namespace (``array_api_compat.numpy``, ...).
        device: the device object arrays are created on.
        dtype: the default floating dtype name, ``"float32"`` or ``"float64"``.
        note: how the backend was chosen (set by ``auto``), for the user to read.
    """

    name: str
    spec: str
    xp: Any
    device: Any
    dtype: str = "float32"
    note: str = ""
    _sync: Any = field(default=None, repr=False)

    # -- dtypes -------------------------------------------------------------
    def float_dtype(self, dtype: str | None = None) -> Any:
        """The namespace's floating dtype object for ``"float32"``/``"float64"``."""
        name = check_dtype(dtype or self.dtype)
        return getattr(self.xp, name)

    # -- host <-> device ----------------------------------------------------
    def asarray(self, a: Any, dtype: str | None = None) -> Any:
        """Move a host array (or nested list) to this device.

        Floating input is cast to ``dtype`` (default: the backend's dtype); integer
        input is kept as int64 so labels compare equal on every backend.
        """
        host = np.asarray(a)
        if host.dtype.kind == "f" or dtype is not None:
            host = host.astype(check_dtype(dtype or self.dtype), copy=False)
            target = self.float_dtype(dtype)
        elif host.dtype.kind in "iub":
            host = host.astype(np.int64, copy=False) if host.dtype.kind != "b" else host
            target = self.xp.int64 if host.dtype.kind != "b" else self.xp.bool
        else:
            raise TypeError(f"cannot move an array of dtype {host.dtype} to a device; use a number dtype")
        return self.xp.asarray(np.asarray(host, order="C"), dtype=target, device=self.device)

    def to_numpy(self, a: Any) -> np.ndarray:
        """Bring an array of this backend back to the host as a NumPy array."""
        return to_numpy(a)

    def owns_device(self, other: Any) -> bool:
        """Whether ``other`` (an array's device) is this backend's device; CUDA devices by number."""
        return other == self.device or getattr(other, "id", None) == getattr(self.device, "id", False)

    def synchronize(self) -> None:
        """Wait until queued device work is done (a no-op on the CPU); use it when timing."""
        if self._sync is not None:
            self._sync()

    def rng(self, seed: int | None) -> np.random.Generator:
        """A host-side generator: every backend draws the same numbers for the same seed."""
        return host_rng(seed)

    def with_dtype(self, dtype: str) -> Backend:
        """The same backend with another default floating dtype."""
        return Backend(self.name, self.spec, self.xp, self.device, check_dtype(dtype), self.note, self._sync)

    def __str__(self) -> str:
        return f"{self.spec} ({self.name}, {self.device}, {self.dtype})"


def check_dtype(dtype: str) -> str:
    """Validate a floating dtype name."""
    name = str(dtype).replace("numpy.", "").replace("torch.", "")
    if name not in FLOAT_DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported; use 'float32' (default) or 'float64'")
    return name


def host_rng(seed: int | None) -> np.random.Generator:
    """The seeded host generator all initialisation and sampling draws from."""
    return np.random.default_rng(seed)


def to_numpy(a: Any) -> np.ndarray:
    """Any supported array (NumPy, CuPy, PyTorch, array-api-strict) as a host NumPy array.

    Device arrays are copied; a NumPy array is returned as it is and CPU torch or strict
    arrays may share memory with the result: copy it before changing it.
    """
    if isinstance(a, np.ndarray):
        return a
    if isinstance(a, (int, float, bool, list, tuple, np.generic)):
        return np.asarray(a)
    module = type(a).__module__.split(".")[0]
    if module == "cupy":
        return a.get()
    if module == "torch":
        return a.detach().cpu().numpy()
    if module == "array_api_strict":
        return np.from_dlpack(a)
    return np.asarray(a)


# -- availability probes (cached: importing cupy or asking CUDA can take seconds) --

@functools.cache
def _probe_cupy() -> tuple[int, str]:
    """Number of usable CUDA devices seen by CuPy, and why none when zero."""
    try:
        cupy = importlib.import_module("cupy")
    except Exception as exc:  # ImportError, or a broken CUDA install raising anything
        return 0, (f"CuPy is not installed ({type(exc).__name__}); "
                   "pip install 'xpmlp[cuda12]' or 'xpmlp[cuda13]' to match your CUDA driver")
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:
        return 0, f"CuPy is installed but finds no usable CUDA GPU ({exc.__class__.__name__}: {exc})"
    if count == 0:
        return 0, "CuPy is installed but this machine has no CUDA GPU"
    try:  # a real kernel launch: catches driver/toolkit mismatches that getDeviceCount misses
        (cupy.arange(3, dtype=cupy.float32) * 2).sum().item()
    except Exception as exc:
        return 0, f"CuPy sees {count} GPU(s) but cannot run on them ({exc.__class__.__name__}: {exc})"
    return count, ""


@functools.cache
def _probe_torch() -> tuple[bool, int, str]:
    """Whether PyTorch imports, how many CUDA devices it sees, and why not."""
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
def _probe_strict() -> str:
    try:
        importlib.import_module("array_api_strict")
    except Exception as exc:
        return f"array-api-strict is not installed ({type(exc).__name__}); pip install array-api-strict"
    return ""


def _parse_index(spec: str, text: str) -> int:
    if not text.isdigit():
        raise DeviceError(f"device spec {spec!r} has a bad device number {text!r}; use e.g. cuda:0")
    return int(text)


def _cuda_backend(spec: str, index: int, dtype: str) -> Backend:
    count, why = _probe_cupy()
    if count == 0:
        raise DeviceError(f"device {spec!r} is not usable: {why}; or use --device cpu")
    if index >= count:
        raise DeviceError(f"device {spec!r} does not exist: this machine has {count} CUDA GPU(s), "
                          f"cuda:0 to cuda:{count - 1}")
    cupy = importlib.import_module("cupy")
    xp = importlib.import_module("array_api_compat.cupy")
    device = cupy.cuda.Device(index)
    device.use()

    def sync() -> None:
        cupy.cuda.Device(index).synchronize()

    return Backend("cupy", f"cuda:{index}", xp, device, dtype, _sync=sync)


def _torch_backend(spec: str, rest: list[str], dtype: str) -> Backend:
    ok, count, why = _probe_torch()
    if not ok:
        raise DeviceError(f"device {spec!r} is not usable: {why}")
    torch = importlib.import_module("torch")
    xp = importlib.import_module("array_api_compat.torch")
    if not rest:
        return Backend("torch", "torch", xp, torch.device("cpu"), dtype)
    if rest[0] != "cuda" or len(rest) > 2:
        raise DeviceError(f"unknown device spec {spec!r}; use torch, torch:cuda or torch:cuda:N")
    index = _parse_index(spec, rest[1]) if len(rest) == 2 else 0
    if count == 0:
        raise DeviceError(f"device {spec!r} is not usable: {why}; "
                          "install a CUDA build of PyTorch or use --device torch")
    if index >= count:
        raise DeviceError(f"device {spec!r} does not exist: PyTorch sees {count} CUDA GPU(s)")
    device = torch.device("cuda", index)

    def sync() -> None:
        torch.cuda.synchronize(device)

    return Backend("torch", f"torch:cuda:{index}", xp, device, dtype, _sync=sync)


def get_backend(spec: str | Backend = "auto", dtype: str = "float32") -> Backend:
    """Turn a device spec into a Backend; see the module docstring for the specs.

    Raises:
        DeviceError: the spec is unknown or cannot be used on this machine; the
            message says what to install or what to type instead.
    """
    if isinstance(spec, Backend):
        return spec if spec.dtype == dtype else spec.with_dtype(dtype)
    dtype = check_dtype(dtype)
    text = str(spec).strip().lower()
    parts = text.split(":")
    head = parts[0]
    if text in ("cpu", "numpy"):
        xp = importlib.import_module("array_api_compat.numpy")
        return Backend("numpy", "cpu", xp, "cpu", dtype)
    if text == "strict":
        why = _probe_strict()
        if why:
            raise DeviceError(f"device 'strict' is not usable: {why}")
        strict = importlib.import_module("array_api_strict")
        return Backend("strict", "strict", strict, strict.Device("CPU_DEVICE"), dtype)
    if head == "cuda" and len(parts) <= 2:
        return _cuda_backend(text, _parse_index(text, parts[1]) if len(parts) == 2 else 0, dtype)
    if head == "torch":
        return _torch_backend(text, parts[1:], dtype)
    if text == "auto":
        count, why = _probe_cupy()
        if count:
            backend = _cuda_backend("cuda:0", 0, dtype)
            backend.note = "auto: using CUDA GPU cuda:0 through CuPy"
        else:
            backend = get_backend("cpu", dtype)
            backend.note = f"auto: using the CPU (NumPy); no CUDA GPU: {why}"
        return backend
    raise DeviceError(f"unknown device spec {spec!r}; use one of: {SPEC_HELP}")


def describe_devices() -> list[tuple[str, bool, str]]:
    """Every backend xpmlp knows, whether it is usable here, and why not (for ``xpmlp devices``)."""
    rows: list[tuple[str, bool, str]] = [("cpu", True, "NumPy " + np.__version__)]
    why = _probe_strict()
    rows.append(("strict", not why, why or "array-api-strict"))
    count, why = _probe_cupy()
    if count:
        for i in range(count):
            rows.append((f"cuda:{i}", True, "CuPy"))
    else:
        rows.append(("cuda", False, why))
    ok, tcount, twhy = _probe_torch()
    rows.append(("torch", ok, "PyTorch " + importlib.import_module("torch").__version__ if ok else twhy))
    if ok and tcount:
        for i in range(tcount):
            rows.append((f"torch:cuda:{i}", True, "PyTorch CUDA"))
    else:
        rows.append(("torch:cuda", False, twhy))
    return rows


def available_specs(include_gpu: bool = True) -> list[str]:
    """Specs usable on this machine, one per backend kind (used by tests and benchmarks)."""
    specs = ["cpu"]
    if not _probe_strict():
        specs.append("strict")
    if _probe_torch()[0]:
        specs.append("torch")
    if include_gpu and _probe_cupy()[0]:
        specs.append("cuda")
    return specs


# -- in-place fast paths for the hot loop ------------------------------------------------
# The Array API has no ``out=`` argument, so ``maximum(x, 0)`` and ``where(mask, d, 0)``
# allocate a new array on every call. For the libraries that can write in place these two
# helpers do; any other namespace gets the plain Array API expression (a new array).
# Callers use the returned array and must own the input (it may be overwritten).

def relu_inplace(x: Any) -> Any:
    """max(x, 0), overwriting ``x`` where the library allows it."""
    module = type(x).__module__
    if module == "numpy":
        # x *= (x > 0) measures ~35% faster than np.maximum(x, 0, out=x) here (maximum's NaN handling)
        return np.multiply(x, x > 0, out=x)
    if module.startswith("cupy"):
        return sys.modules["cupy"].maximum(x, 0, out=x)
    if module == "torch":
        return x.clamp_(min=0)
    xp = array_namespace(x)
    return xp.maximum(x, 0.0)


def mask_inplace(d: Any, keep: Any) -> Any:
    """``d`` where ``keep`` is true, else 0 — overwriting ``d`` where the library allows it."""
    module = type(d).__module__
    if module == "numpy":
        return np.multiply(d, keep, out=d)
    if module.startswith("cupy"):
        return sys.modules["cupy"].multiply(d, keep, out=d)
    if module == "torch":
        return d.mul_(keep)
    xp = array_namespace(d)
    return xp.where(keep, d, 0.0)
