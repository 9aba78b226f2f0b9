"""Pickling a fitted estimator trained on any device: host copies out, the device back where it is usable."""

from __future__ import annotations

import warnings
from typing import Any

from ..backend import backend_unavailable, get_backend
from .arrays import host


class PicklableOnDevice:
    """``__getstate__`` / ``__setstate__`` of ``MLPClassifier``: a GPU-trained model unpickles anywhere.

    The network, optimizer state and best weights go out as host arrays; on unpickling, the
    classes return to the device the estimator was trained on when it is usable there, else the
    estimator answers in NumPy (with a warning).
    """

    _io_spec: str | None
    _arch: dict[str, Any]

    def __getstate__(self) -> dict[str, Any]:
        """Host copies of everything on a device, so a GPU-trained model unpickles anywhere."""
        state = dict(super().__getstate__())
        model = state.pop("_model", None)
        optimizer = state.pop("_optimizer", None)
        best = state.pop("_best_params", None)
        if model is not None:
            state["_model_state"], state["_model_spec"] = model.state_dict(), model.backend.spec
            state["_dropout_state"] = model.random.state()
            if optimizer is not None:
                state["_optimizer_state"] = optimizer.state_dict()
            if best is not None:
                state["_best_state"] = {k: model.backend.to_numpy(v) for k, v in best.items()}
        if "classes_" in state:
            state["classes_"] = host(state["classes_"])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._model, self._optimizer, self._best_params = None, None, None
        spec = state.get("_io_spec")
        if spec is None or "classes_" not in state:
            return
        why = backend_unavailable(spec)
        if why:
            warnings.warn(f"{type(self).__name__} was trained on {spec}, which is not usable here ({why}); "
                          "its arrays are NumPy arrays now", stacklevel=2)
            self._io_spec = None
        else:
            self.classes_ = self._place_classes(self.classes_, get_backend(spec, self._arch["dtype"]))
