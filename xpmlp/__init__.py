"""xpmlp: a multi-layer perceptron written by hand against the Python Array API."""

from .backend import Backend, get_backend, to_numpy
from .errors import CheckpointError, DataError, DeviceError, DivergenceError, InputError, XpmlpError

__version__ = "0.1.0"

__all__ = [
    "Backend", "get_backend", "to_numpy",
    "XpmlpError", "DeviceError", "InputError", "DataError", "DivergenceError", "CheckpointError",
    "__version__",
]
