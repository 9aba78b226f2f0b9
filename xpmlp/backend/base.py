"""The Backend base class: the Array-API default of every operation xpmlp asks of a device.

A subclass per array library (``NumpyBackend``, ``CupyBackend``, ``TorchBackend``,
``StrictBackend``) overrides only what its library does faster or differently: in-place
ReLU and masking, host transfers, synchronisation and the current-device context. Nothing
outside this package branches on an array library's name.

Two definitions every backend gives bit for bit, so that CPU and GPU agree even when the
numbers go bad (tested on every backend):

* ``relu_(x)``: +0.0 where x <= 0 (so −0.0 and −inf become +0.0), x elsewhere (NaN stays NaN,
  so a diverged layer is still seen as diverged by the loss).
* ``mask_(d, keep)``: the IEEE product d · keep (keep as 0/1): NaN and ±inf stay NaN where
  keep is false, a negative value there becomes −0.0.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

FLOAT_DTYPES = ("float32", "float64")

F = TypeVar("F", bound=Callable[..., Any])


def check_dtype(dtype: Any) -> str:
    """Validate a floating dtype name (``"float32"``/``"float64"``, or a library's dtype object).

    Parameters
    ----------
    dtype : str or dtype object
        ``"float32"``, ``"float64"``, or e.g. ``numpy.float32`` / ``torch.float64``.

    Returns
    -------
    str
        ``"float32"`` or ``"float64"``.

    Raises
    ------
    ValueError
        Any other dtype.
    """
    name = str(dtype).replace("numpy.", "").replace("torch.", "").replace("array_api_strict.", "")
    if name not in FLOAT_DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported; use 'float32' (default) or 'float64'")
    return name


def host_rng(seed: Any) -> np.random.Generator:
    """The seeded host generator all initialisation and sampling draws from.

    Parameters
    ----------
    seed : int, sequence of int or None
        What ``numpy.random.default_rng`` takes.

    Returns
    -------
    numpy.random.Generator
        A new generator; the same seed gives the same draws on every machine.
    """
    return np.random.default_rng(seed)


def host_copy(a: Any, dtype: str | None, default: str) -> np.ndarray:
    """A fresh C-ordered host array: floats as ``dtype`` (else ``default``), integers as int64.

    Always a copy, so a device array made from it (which may share memory on a CPU
    backend) never aliases what the caller holds.
    """
    host = np.asarray(a)
    if host.dtype.kind == "f" or dtype is not None:
        if host.dtype.kind not in "fiub":
            raise TypeError(f"cannot move an array of dtype {host.dtype} to a device; use a number dtype")
        return np.array(host, dtype=check_dtype(dtype or default), order="C", copy=True)
    if host.dtype.kind in "iu":
        return np.array(host, dtype=np.int64, order="C", copy=True)
    if host.dtype.kind == "b":
        return np.array(host, order="C", copy=True)
    raise TypeError(f"cannot move an array of dtype {host.dtype} to a device; use a number dtype")


def mixed_seed(key: tuple[int, int]) -> int:
    """A 63-bit seed for a library's own generator from (seed, draw): distinct keys, unrelated streams."""
    return int(np.random.SeedSequence(list(key)).generate_state(1, np.uint64)[0] >> np.uint64(1))


class DeviceRandom:
    """Random numbers drawn on a backend's device, one draw after another, resumable exactly.

    Draw k uses the key (seed, k), so the whole state is two integers: ``state()`` goes into a
    checkpoint and ``load_state`` continues the same sequence. NumPy and array-api-strict give
    the same numbers; PyTorch and CuPy draw from their own generators, so their numbers differ.
    """

    def __init__(self, backend: Backend, seed: int) -> None:
        self.backend, self.seed, self.draws = backend, int(seed), 0

    def uniform(self, shape: tuple[int, ...], dtype: str | None = None) -> Any:
        out = self.backend.uniform(tuple(shape), (self.seed, self.draws), dtype)
        self.draws += 1
        return out

    def state(self) -> dict[str, int]:
        return {"seed": self.seed, "draws": self.draws}

    def load_state(self, state: dict[str, Any]) -> None:
        seed, draws = state.get("seed"), state.get("draws")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (seed, draws)):
            raise ValueError(f"random state {state!r} is not two counts (seed, draws); the checkpoint is damaged")
        self.seed, self.draws = seed, draws


def on_device(method: F) -> F:
    """Run a method of an object that has a ``backend`` attribute inside ``backend.context()``.

    CuPy (and array-api-compat's CuPy namespace) creates arrays and runs kernels on the
    *current* device, whatever ``device=`` says; every public entry point that touches device
    arrays therefore makes its own device current first (the current-device rule).
    """
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self.backend.context():
            return method(self, *args, **kwargs)
    return wrapper  # type: ignore[return-value]


class Backend:
    """An array namespace bound to one device and a default floating dtype.

    Made by :func:`get_backend` from a device spec; subclasses override only what their library
    does faster. Two backends are equal when their spec and dtype are.

    Parameters
    ----------
    spec : str
        The canonical spec that rebuilds this backend (``"cpu"``, ``"cuda:0"``, ``"strict:device1"``).
    xp : namespace
        The Array API namespace (``array_api_compat.numpy``, ...).
    device : object
        The device object arrays are created on.
    dtype : {"float32", "float64"}, default "float32"
        The default floating dtype name.
    note : str, default ""
        How the backend was chosen (set by ``auto``), for the user to read.

    Attributes
    ----------
    name : str
        The array library, for people to read (``"numpy"``, ``"cupy"``, ``"torch"``, ``"strict"``).
    on_gpu : bool
        Whether arrays live in GPU memory (host transfers cost a synchronisation).
    """

    name = "array-api"
    on_gpu = False
    array_class: tuple[str, str] = ("", "")  # (module, class) of the library's arrays

    def __init__(self, spec: str, xp: Any, device: Any, dtype: str = "float32", note: str = "") -> None:
        self.spec, self.xp, self.device = spec, xp, device
        self.dtype = check_dtype(dtype)
        self.note = note

    # -- identity -------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Backend) and (self.spec, self.dtype) == (other.spec, other.dtype)

    def __hash__(self) -> int:
        return hash((self.spec, self.dtype))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(spec={self.spec!r}, dtype={self.dtype!r})"

    def __str__(self) -> str:
        return f"{self.spec} ({self.name}, {self.device}, {self.dtype})"

    def with_dtype(self, dtype: str) -> Backend:
        """The same backend with another default floating dtype."""
        other = type(self).__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.dtype = check_dtype(dtype)
        return other

    # -- dtypes -------------------------------------------------------------
    def float_dtype(self, dtype: str | None = None) -> Any:
        """The namespace's floating dtype object for ``"float32"``/``"float64"``."""
        return getattr(self.xp, check_dtype(dtype or self.dtype))

    # -- the device ----------------------------------------------------------
    def context(self) -> contextlib.AbstractContextManager[Any]:
        """A context manager that makes this backend's device current (a no-op on the CPU)."""
        return contextlib.nullcontext()

    def synchronize(self) -> None:
        """Wait until queued device work is done (a no-op on the CPU); use it when timing."""

    @classmethod
    def array_type(cls) -> type | None:
        """The library's array class if the library is imported (None otherwise: no array of it exists).

        Looked up in ``sys.modules`` so that asking never imports a library (importing CuPy or
        PyTorch takes seconds).
        """
        module = sys.modules.get(cls.array_class[0])
        return None if module is None else getattr(module, cls.array_class[1])

    @classmethod
    def is_array(cls, a: Any) -> bool:
        """Whether ``a`` is an array of this backend's library (on any device)."""
        kind = cls.array_type()
        return kind is not None and isinstance(a, kind)

    @classmethod
    def host_array(cls, a: Any) -> np.ndarray:
        """A host NumPy copy of an array of this library, from any of its devices."""
        raise NotImplementedError

    def owns(self, a: Any) -> bool:
        """Whether ``a`` is an array of this backend's library on this backend's device."""
        return self.is_array(a) and self.same_device(a)

    def same_device(self, a: Any) -> bool:
        """Whether an array of this library lies on this backend's device."""
        return bool(a.device == self.device)

    # -- host <-> device ----------------------------------------------------
    def asarray(self, a: Any, dtype: str | None = None) -> Any:
        """A device copy of a host array (or nested list): nothing the caller holds is aliased.

        Floating input is cast to ``dtype`` (default: the backend's dtype); integer input
        becomes int64, so labels compare equal on every backend; booleans stay booleans.
        """
        host = host_copy(a, dtype, self.dtype)
        with self.context():
            return self.xp.asarray(host, device=self.device)

    def to_numpy(self, a: Any) -> np.ndarray:
        """A host NumPy copy of an array of this backend (later device work never changes it)."""
        return self.host_array(a)

    def rng(self, seed: Any) -> np.random.Generator:
        """A host-side generator: every backend draws the same numbers for the same seed."""
        return host_rng(seed)

    def uniform(self, shape: tuple[int, ...], key: tuple[int, int], dtype: str | None = None) -> Any:
        """Uniform [0, 1) numbers of ``shape`` on the device, a pure function of ``key`` = (seed, draw).

        The default draws with NumPy's generator on the host and moves the result (array-api-strict
        shares NumPy's numbers, bit for bit); libraries with a generator of their own override it
        and draw on the device, with no host-to-device transfer.
        """
        host = np.random.default_rng(list(key)).random(shape, dtype=np.dtype(check_dtype(dtype or self.dtype)))
        return self.asarray(host, dtype=dtype)

    def device_random(self, seed: int) -> DeviceRandom:
        """A seeded source of per-step random numbers on this device (dropout masks)."""
        return DeviceRandom(self, seed)

    # -- fast paths of the hot loop (the caller owns the argument; use the returned array) ---
    def relu_(self, x: Any) -> Any:
        """ReLU (module docstring's definition), overwriting ``x`` where the library allows it."""
        return self.xp.where(x <= 0, 0.0, x)

    def mask_(self, d: Any, keep: Any) -> Any:
        """d · keep (IEEE product, keep boolean), overwriting ``d`` where the library allows it."""
        return d * self.xp.astype(keep, d.dtype)

    def gemm_update(self, C: Any, A: Any, B: Any, alpha: float, beta: float) -> Any:
        """C ← β·C + α·(Aᵀ·B), in place where the library allows it; returns C.

        Shapes: A (k, m), B (k, n), C (m, n). This is the weight-gradient product of a Linear
        layer (A the layer's input, B the gradient of its output) with the optimizer's update
        folded in: one GEMM instead of a GEMM, a temporary and two passes over C.
        """
        product = A.T @ B
        product *= alpha
        C *= beta
        C += product
        return C

    def axpy_(self, y: Any, alpha: float, x: Any) -> Any:
        """y ← y + α·x in place (same shape and dtype); returns y."""
        y += alpha * x
        return y

    def sparse_matrix(self, X: Any) -> Any:
        """``X`` (a SciPy or cupyx sparse matrix) as the sparse matrix this backend multiplies, in its dtype.

        The Array API has no sparse arrays: by default a backend has none and refuses in one line
        (NumPy keeps SciPy's, CuPy makes ``cupyx.scipy.sparse`` ones).
        """
        from ..errors import InputError

        raise InputError(f"sparse input needs device 'cpu' or 'cuda' (CuPy), not {self.spec}: build the model on "
                         "one of those, or pass the dense X.toarray()")

    # -- what the benchmark asks ---------------------------------------------
    def torch_device(self) -> str:
        """The PyTorch device string for the same hardware (``"cpu"`` unless on a GPU)."""
        return "cpu"

    def device_description(self) -> str:
        """The device in words (the GPU's name on a GPU)."""
        return str(self.device)
