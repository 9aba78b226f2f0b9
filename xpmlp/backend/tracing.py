"""A backend whose arrays record an ONNX graph instead of computing: export by tracing the model's own code.

``NdonnxBackend`` carries ndonnx, an Array-API library whose operations build an ONNX graph.
A model placed on it runs the very ``forward`` it trains with — every layer, every activation,
per-layer lists, dropout as the identity of evaluation mode — and the arrays that come out are
the graph's outputs (``xpmlp.export.onnx`` turns them into a model file). Nothing is computed:
weights become constants, the input an argument with a dynamic batch dimension.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from .base import Backend, DeviceRandom, host_copy

ONNX_EXTRA = "pip install 'xpmlp[onnx]'"


def import_onnx_extra(name: str) -> Any:
    """A package of the onnx extra (``ndonnx``, ``onnx``, ``skl2onnx``), or one line saying what to install.

    Parameters
    ----------
    name : str
        The package's import name.

    Returns
    -------
    module
        The package.

    Raises
    ------
    InputError
        If it (or a package it needs) is not installed.
    """
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or name
        raise InputError(f"ONNX export needs the onnx extra ({missing} is not installed): {ONNX_EXTRA}") from None


def import_ndonnx() -> Any:
    """The ndonnx namespace, or one line saying what to install (:func:`import_onnx_extra`).

    Returns
    -------
    module
        ``ndonnx``.
    """
    return import_onnx_extra("ndonnx")


class _NoRandom(DeviceRandom):
    """A traced graph has no random numbers: only evaluation mode (dropout as identity) is exported."""

    def uniform(self, shape: tuple[int, ...], dtype: str | None = None) -> Any:
        raise InputError("an ONNX graph is traced in evaluation mode; dropout draws no masks there "
                         "(call forward with train=False)")


class NdonnxBackend(Backend):
    """The Array-API default of every operation, on ndonnx arrays (graph nodes, not numbers).

    Parameters
    ----------
    dtype : {"float32", "float64"}, default "float32"
        The floating dtype of the traced graph (the model's).

    Raises
    ------
    InputError
        If ndonnx is not installed (the message says what to install).
    """

    name = "ndonnx"
    array_class = ("ndonnx._array", "Array")

    def __init__(self, dtype: str = "float32") -> None:
        super().__init__("ndonnx", import_ndonnx(), None, dtype, note="records an ONNX graph")

    def asarray(self, a: Any, dtype: str | None = None) -> Any:
        """A graph constant holding a copy of host data (floats as ``dtype``, integers as int64)."""
        return self.xp.asarray(host_copy(a, dtype, self.dtype))

    def same_device(self, a: Any) -> bool:
        return True  # a graph has no devices

    @classmethod
    def host_array(cls, a: Any) -> np.ndarray:
        """The values of a constant (an argument or a node depending on one has none)."""
        try:
            return np.array(a.unwrap_numpy(), copy=True)
        except ValueError:
            raise InputError("a traced ONNX value has no numbers until the graph runs; run the exported model "
                             "with onnxruntime to see them") from None

    def device_random(self, seed: int) -> DeviceRandom:
        return _NoRandom(self, seed)
