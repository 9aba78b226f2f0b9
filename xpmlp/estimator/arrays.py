"""Where the estimator's arrays live: the backend of an input array, device copies, sample weights.

scikit-learn's Array API convention, which ``MLPClassifier`` follows: *everything follows X*.
A device array (CuPy, PyTorch, array-api-strict) is trained on and predicted on its own device,
and the results come back in its library on that device; ``y`` and ``sample_weight`` are moved
to X's device. Host input (NumPy, lists, pandas) trains on the estimator's ``device`` and comes
back as NumPy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..backend import (
    BACKEND_CLASSES,
    Backend,
    CupyBackend,
    NumpyBackend,
    StrictBackend,
    TorchBackend,
    is_device_array,
    to_numpy,
)
from ..errors import DeviceError, InputError

Array = Any


def _torch_backend(a: Any, dtype: str) -> Backend:
    kind = a.device.type
    if kind == "cpu":
        return TorchBackend(None, dtype)
    if kind == "cuda":
        return TorchBackend(a.device.index or 0, dtype)
    raise DeviceError(f"PyTorch tensors on {a.device} are not supported; move them to the CPU or a CUDA GPU "
                      "first, e.g. X.to('cpu')")


def _strict_backend(a: Any, dtype: str) -> Backend:
    return StrictBackend(str(a.device).split("'")[1], dtype)


# How to rebuild the Backend of an array of each library (the array's device, the given dtype).
_BUILDERS: dict[type[Backend], Callable[[Any, str], Backend]] = {
    NumpyBackend: lambda a, dtype: NumpyBackend(dtype),
    CupyBackend: lambda a, dtype: CupyBackend(int(a.device.id), dtype),
    TorchBackend: _torch_backend,
    StrictBackend: _strict_backend,
}


def backend_of(array: Any, dtype: str = "float32") -> Backend:
    """The Backend whose device holds ``array``, with default floating dtype ``dtype``.

    NumPy arrays give the host backend (``cpu``); a CuPy array on GPU k gives ``cuda:k``, a
    PyTorch tensor ``torch`` or ``torch:cuda:k``, an array-api-strict array ``strict[:NAME]``.

    Raises:
        InputError: ``array`` is not an array of a library xpmlp knows.
    """
    for cls in BACKEND_CLASSES:
        if cls.is_array(array):
            return _BUILDERS[cls](array, dtype)
    raise InputError(f"cannot tell the device of a {type(array).__module__}.{type(array).__name__}; "
                     "pass a NumPy, CuPy, PyTorch or array-api-strict array")


def is_on_device(a: Any) -> bool:
    """Whether ``a`` is an array of a device library (anything but NumPy that xpmlp knows)."""
    return not isinstance(a, np.ndarray) and is_device_array(a)


def input_spec(a: Any) -> str | None:
    """The device spec of a device array (``"torch"``, ``"strict:device1"``, ...), None for host input."""
    return backend_of(a).spec if is_on_device(a) else None


def host(a: Any) -> np.ndarray:
    """Any array-like (device arrays included) as a host NumPy array (no copy for NumPy input)."""
    return to_numpy(a) if is_device_array(a) else np.asarray(a)


def device_copy(backend: Backend, values: np.ndarray) -> Array:
    """A copy of host ``values`` on ``backend``'s device keeping their dtype (labels: int32 stays int32)."""
    with backend.context():
        return backend.xp.asarray(np.array(values, copy=True), device=backend.device)


def on_backend(backend: Backend, a: Array) -> Array:
    """``a`` itself if ``backend`` owns it, else a copy there (through the host), dtype kept."""
    return a if backend.owns(a) else device_copy(backend, host(a))


def check_same_namespace(X: Any, fit_spec: str | None, owner: str, method: str) -> None:
    """Under ``sklearn.set_config(array_api_dispatch=True)``: X must come from fit's library and device.

    The rule of scikit-learn's Array API support; the message says what fit used and what came.
    """
    from sklearn import get_config

    if not get_config().get("array_api_dispatch", False):
        return
    spec = input_spec(X)
    if spec != fit_spec:
        raise ValueError(f"Inputs passed to {owner}.{method}() must use the same namespace and the same device "
                         f"as those passed to fit(): fit got {fit_spec or 'NumPy'} arrays, {method} got "
                         f"{spec or 'NumPy'}; move X to fit's device first")


def sample_weights(sample_weight: Any, n: int) -> np.ndarray | None:
    """Validate ``sample_weight`` (array-like of n, or a scalar) as host float64, None when not given.

    Weights must be finite, >= 0, and not all zero.
    """
    if sample_weight is None:
        return None
    try:
        w = np.array(host(sample_weight), dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("sample_weight must be numbers, one per sample") from None
    if w.ndim == 0:
        w = np.full(n, float(w))
    if w.shape != (n,):
        raise ValueError(f"sample_weight.shape == {w.shape}, expected {(n,)}!")
    if not np.all(np.isfinite(w)):
        raise ValueError("sample_weight contains NaN or infinity; pass finite weights")
    if np.any(w < 0):
        raise ValueError("Negative values in data passed to `sample_weight`; weights must be >= 0")
    if n and not np.any(w > 0):
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return w
