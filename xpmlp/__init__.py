"""xpmlp: a multi-layer perceptron written by hand against the Python Array API.

``from xpmlp import MLPClassifier`` (or ``MLPRegressor``) gives the scikit-learn estimators
(``pip install 'xpmlp[sklearn]'``); they are imported on first use, so ``import xpmlp`` works
without scikit-learn. ``Backend``,
``get_backend``, ``to_numpy``, the models (``MLP``, ``Sequential``), the layers and ``Trainer`` load
NumPy and the backends on first use too, so that the
command's entry point (:mod:`xpmlp.entry`) starts before any heavy import and can catch a Ctrl-C.
"""

from __future__ import annotations

from .errors import CheckpointError, DataError, DeviceError, DivergenceError, InputError, XpmlpError

TYPE_CHECKING = False  # not typing's: importing typing alone takes ~10 ms of the entry point's start
if TYPE_CHECKING:
    from typing import Any

    from .backend import Backend, get_backend, to_numpy

__version__ = "0.1.0"

__all__ = [
    "Backend", "get_backend", "to_numpy", "MLP", "Sequential", "Linear", "ReLU", "LeakyReLU", "Tanh", "Sigmoid",
    "Dropout", "Trainer", "TrainConfig",
    "XpmlpError", "DeviceError", "InputError", "DataError", "DivergenceError", "CheckpointError",
    "__version__",
]


#: The exports loaded on first use, and their modules.
_LAZY = {"Backend": "backend", "get_backend": "backend", "to_numpy": "backend", "MLPClassifier": "estimator",
         "MLPRegressor": "estimator",
         "MLP": "model", "Sequential": "model", "Trainer": "train", "TrainConfig": "train",
         **{name: "layers" for name in ("Linear", "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "Dropout")}}


def __getattr__(name: str) -> Any:
    """Lazy exports: the backends (NumPy) and the estimators (scikit-learn) load when asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
