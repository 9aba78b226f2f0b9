"""xpmlp: a multi-layer perceptron written by hand against the Python Array API.

``from xpmlp import MLPClassifier`` gives the scikit-learn estimator (``pip install 'xpmlp[sklearn]'``);
it is imported on first use, so ``import xpmlp`` works without scikit-learn.
"""

from typing import Any

from .backend import Backend, get_backend, to_numpy
from .errors import CheckpointError, DataError, DeviceError, DivergenceError, InputError, XpmlpError

__version__ = "0.1.0"

__all__ = [
    "Backend", "get_backend", "to_numpy",
    "XpmlpError", "DeviceError", "InputError", "DataError", "DivergenceError", "CheckpointError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """Lazy exports: ``MLPClassifier`` imports scikit-learn only when asked for."""
    if name == "MLPClassifier":
        from .estimator import MLPClassifier

        return MLPClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
