"""Device selection: the one package that knows about NumPy, CuPy, PyTorch and array-api-strict.

``get_backend(spec)`` turns a device spec into a :class:`Backend` carrying the Array API
namespace ``xp``, the device and the default dtype; everything else in xpmlp does its math
through ``backend.xp`` and its device work inside ``backend.context()``.

Specs::

    cpu | numpy        NumPy on the host
    cuda | cuda:N      CuPy on CUDA device N (default 0)
    torch              PyTorch on the CPU
    torch:cuda[:N]     PyTorch on CUDA device N
    strict[:NAME]      array-api-strict (default device, or a named one: strict:device1, strict:device2)
    auto               CuPy if a CUDA GPU is actually usable, else NumPy (it says which)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DeviceError, InputError
from .base import FLOAT_DTYPES, Backend, DeviceRandom, check_dtype, host_rng, on_device
from .cpu import NumpyBackend, StrictBackend
from .gpu import CupyBackend, TorchBackend
from .probes import clear_probes, probe_cupy, probe_strict, probe_torch

__all__ = [
    "FLOAT_DTYPES", "SPEC_HELP", "Backend", "DeviceRandom",
    "NumpyBackend", "StrictBackend", "TorchBackend", "CupyBackend",
    "get_backend", "check_dtype", "host_rng", "on_device", "to_numpy", "describe_devices", "available_specs",
    "backend_unavailable", "clear_probes", "is_device_array",
]

SPEC_HELP = "cpu, numpy, cuda, cuda:N, torch, torch:cuda, torch:cuda:N, strict, strict:NAME or auto"

# The order in which an array of unknown origin is recognised (NumPy first: the common case).
BACKEND_CLASSES: tuple[type[Backend], ...] = (NumpyBackend, CupyBackend, TorchBackend, StrictBackend)


def to_numpy(a: Any) -> np.ndarray:
    """Any supported array (NumPy, CuPy, PyTorch, array-api-strict) or Python number/list as host NumPy.

    Device arrays are copied to the host; a NumPy array is returned as it is (no copy).

    Parameters
    ----------
    a : array, number or list
        An array of any library xpmlp knows, on any device, or plain Python data.

    Returns
    -------
    numpy.ndarray
        The values on the host.

    Examples
    --------
    >>> from xpmlp.backend import get_backend, to_numpy
    >>> be = get_backend("strict")
    >>> to_numpy(be.asarray([1.0, 2.0])).tolist()
    [1.0, 2.0]
    """
    if isinstance(a, np.ndarray):
        return a
    for cls in BACKEND_CLASSES:
        if cls.is_array(a):
            return cls.host_array(a)
    if isinstance(a, (int, float, bool, list, tuple, np.generic)):
        return np.asarray(a)
    raise InputError(f"cannot read an array of type {type(a).__module__}.{type(a).__name__}; "
                     "pass a NumPy, CuPy, PyTorch or array-api-strict array")


def is_device_array(a: Any) -> bool:
    """Whether ``a`` is an array of any library xpmlp knows (NumPy included).

    Parameters
    ----------
    a : object
        Anything.

    Returns
    -------
    bool
        True for a NumPy, CuPy, PyTorch or array-api-strict array.
    """
    return any(cls.is_array(a) for cls in BACKEND_CLASSES)


def _parse_index(spec: str, text: str) -> int:
    if not text.isdigit():
        raise DeviceError(f"device spec {spec!r} has a bad device number {text!r}; use e.g. cuda:0")
    return int(text)


def _cuda_backend(spec: str, index: int, dtype: str) -> Backend:
    count, why = probe_cupy()
    if count == 0:
        raise DeviceError(f"device {spec!r} is not usable: {why}; or use --device cpu")
    if index >= count:
        raise DeviceError(f"device {spec!r} does not exist: this machine has {count} CUDA GPU(s), "
                          f"cuda:0 to cuda:{count - 1}")
    return CupyBackend(index, dtype)


def _torch_backend(spec: str, rest: list[str], dtype: str) -> Backend:
    # the spec's spelling first: a typo is told as a typo whether or not PyTorch is here
    if rest and (rest[0] != "cuda" or len(rest) > 2):
        raise DeviceError(f"unknown device spec {spec!r}; use torch, torch:cuda or torch:cuda:N")
    index = _parse_index(spec, rest[1]) if len(rest) == 2 else 0
    ok, count, why = probe_torch()
    if not ok:
        raise DeviceError(f"device {spec!r} is not usable: {why}")
    if not rest:
        return TorchBackend(None, dtype)
    if count == 0:
        raise DeviceError(f"device {spec!r} is not usable: {why}; "
                          "install a CUDA build of PyTorch or use --device torch")
    if index >= count:
        raise DeviceError(f"device {spec!r} does not exist: PyTorch sees {count} CUDA GPU(s), "
                          f"torch:cuda:0 to torch:cuda:{count - 1}")
    return TorchBackend(index, dtype)


def _strict_backend(spec: str, rest: list[str], dtype: str) -> Backend:
    why = probe_strict()
    if why:
        raise DeviceError(f"device {spec!r} is not usable: {why}")
    if not rest:
        return StrictBackend("CPU_DEVICE", dtype)
    names = [n for n in StrictBackend.device_names() if not n.startswith("no_")]  # skip its test-only devices
    match = [n for n in names if n.lower() == ":".join(rest)]
    if len(rest) > 1 or not match:
        raise DeviceError(f"array-api-strict has no device {':'.join(rest)!r}; use one of: "
                          + ", ".join("strict" if n == "CPU_DEVICE" else f"strict:{n}" for n in names))
    return StrictBackend(match[0], dtype)


def get_backend(spec: str | Backend = "auto", dtype: str = "float32") -> Backend:
    """Turn a device spec into a Backend; see the module docstring for the specs.

    A Backend passed in is returned as it is (with ``dtype`` as its default dtype).

    Parameters
    ----------
    spec : str or Backend, default "auto"
        ``"cpu"``, ``"cuda"``/``"cuda:N"``, ``"torch"``, ``"torch:cuda[:N]"``, ``"strict"``/``"strict:NAME"``,
        or ``"auto"`` (a CUDA GPU through CuPy when usable, else the CPU; ``note`` says why).
    dtype : {"float32", "float64"}, default "float32"
        The default floating dtype of the arrays the backend makes.

    Returns
    -------
    Backend
        The backend, bound to its device.

    Raises
    ------
    DeviceError
        The spec is unknown or cannot be used on this machine; the message says what to install or
        what to type instead.

    Examples
    --------
    >>> from xpmlp.backend import get_backend
    >>> be = get_backend("cpu", dtype="float64")
    >>> be.spec, be.dtype
    ('cpu', 'float64')
    """
    if isinstance(spec, Backend):
        return spec if spec.dtype == check_dtype(dtype) else spec.with_dtype(dtype)
    dtype = check_dtype(dtype)
    text = str(spec).strip().lower()
    head, *rest = text.split(":")
    if text in ("cpu", "numpy"):
        return NumpyBackend(dtype)
    if head == "strict":
        return _strict_backend(text, rest, dtype)
    if head == "cuda" and len(rest) <= 1:
        return _cuda_backend(text, _parse_index(text, rest[0]) if rest else 0, dtype)
    if head == "torch":
        return _torch_backend(text, rest, dtype)
    if text == "auto":
        count, why = probe_cupy()
        if count:
            backend = _cuda_backend("cuda:0", 0, dtype)
            backend.note = "auto: using CUDA GPU cuda:0 through CuPy"
        else:
            backend = NumpyBackend(dtype)
            backend.note = f"auto: using the CPU (NumPy); no CUDA GPU: {why}"
        return backend
    raise DeviceError(f"unknown device spec {spec!r}; use one of: {SPEC_HELP}")


def backend_unavailable(spec: str) -> str:
    """Why ``get_backend(spec)`` would fail here ('' when it works); the one skip test of the suite."""
    try:
        get_backend(spec, "float64")
    except DeviceError as exc:
        return str(exc)
    return ""


def describe_devices() -> list[tuple[str, bool, str]]:
    """Every backend xpmlp knows, whether it is usable here, and why not (for ``xpmlp devices``).

    Returns
    -------
    list of (str, bool, str)
        One ``(spec, usable, detail)`` row per backend kind: what it is when usable,
        else why not and the fix.
    """
    rows: list[tuple[str, bool, str]] = [("cpu", True, "NumPy " + np.__version__)]
    why = probe_strict()
    rows.append(("strict", not why, why or "array-api-strict (also strict:device1, strict:device2)"))
    count, why = probe_cupy()
    if count:
        rows.extend((f"cuda:{i}", True, "CuPy") for i in range(count))
    else:
        rows.append(("cuda", False, why))
    ok, tcount, twhy = probe_torch()
    rows.append(("torch", ok, "PyTorch " + __import__("torch").__version__ if ok else twhy))
    if ok and tcount:
        rows.extend((f"torch:cuda:{i}", True, "PyTorch CUDA") for i in range(tcount))
    else:
        rows.append(("torch:cuda", False, twhy))
    return rows


def available_specs(include_gpu: bool = True) -> list[str]:
    """Specs usable on this machine, one per backend kind (used by tests, parity and benchmarks).

    Parameters
    ----------
    include_gpu : bool, default True
        Include ``cuda`` (CuPy) and ``torch:cuda`` when a GPU is usable through them.

    Returns
    -------
    list of str
        ``["cpu", ...]``: always ``cpu``, then those of ``strict``, ``torch``, ``cuda``, ``torch:cuda`` that work here.
    """
    specs = ["cpu"]
    if not probe_strict():
        specs.append("strict")
    ok, tcount, _ = probe_torch()
    if ok:
        specs.append("torch")
    if include_gpu and probe_cupy()[0]:
        specs.append("cuda")
    if include_gpu and ok and tcount:
        specs.append("torch:cuda")
    return specs
