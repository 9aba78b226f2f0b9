"""``coefs_`` and ``intercepts_``: the network's weights as scikit-learn's users read and set them.

Fitted, they are the network's parameters (for a NumPy fit on the CPU the network's own arrays,
so edits in place change the model; host copies for another backend, device copies for device
input); assigning a list, or one item of it, loads it into the network. Before any fit, a list
assigned to them is kept as it is (the very list object, so ``clf.coefs_[0] = W`` after
``clf.coefs_ = [0, 0]`` works as on scikit-learn's estimator) and becomes the starting weights of
the next ``partial_fit`` or warm-started ``fit``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .arrays import host

Array = Any


class LayerArrays(list):
    """The list ``coefs_`` / ``intercepts_`` return once fitted: assigning one item
    (``clf.coefs_[1] = W``) loads it into the network, as the list of scikit-learn's estimator does."""

    def __init__(self, arrays: list[Array], owner: PendingWeights, kind: str) -> None:
        super().__init__(arrays)
        self._owner, self._kind = owner, kind

    def __setitem__(self, index: Any, value: Any) -> None:
        items = list(self)
        items[index] = value
        self._owner._set_layer_arrays(self._kind, items)  # checked first: a bad array changes nothing
        super().__setitem__(index, value)

    def __reduce__(self) -> Any:  # pickled (deep-copied) as the plain list it holds
        return list, (list(self),)


def _layer_property(kind: str, doc: str) -> property:
    """A fitted attribute read from (and written to) the network's parameters ``kind``1, ``kind``2, ..."""
    def get(self: PendingWeights) -> list[Array]:
        return self._layer_arrays(kind)

    def put(self: PendingWeights, values: list[Any]) -> None:
        self._set_layer_arrays(kind, values)

    return property(get, put, doc=doc)


class PendingWeights:
    """The ``coefs_`` / ``intercepts_`` properties, mixed into the estimators."""

    _arch: dict[str, Any]
    _io_spec: str | None

    coefs_ = _layer_property("W", "Weight matrices, ``coefs_[k]`` of shape (units of layer k, units of layer k+1).")
    intercepts_ = _layer_property("b", "Bias vectors, ``intercepts_[k]`` of shape (units of layer k+1,).")

    def _layer_arrays(self, kind: str) -> list[Array]:
        if not self._has_model():
            pending = self.__dict__.get(f"_pending_{kind}")
            if pending is not None:
                return pending
            raise AttributeError(f"{type(self).__name__} is not fitted yet: it has no weights; call fit first")
        model = self._get_model()
        arrays = [model.params[f"{kind}{k}"] for k in range(1, len(self._arch["sizes"]))]
        if self._io_spec is None and model.backend.name == "numpy":
            live = arrays  # the network's own arrays: an edit in place (pruning) changes the model
        elif self._io_spec is None:
            live = [model.backend.to_numpy(a) for a in arrays]  # host copies of another library's arrays
        else:
            with model.backend.context():
                live = [a * 1.0 for a in arrays]  # copies on the device
        return LayerArrays(live, self, kind)

    def _set_layer_arrays(self, kind: str, values: list[Any]) -> None:
        if not self._has_model():
            if not isinstance(values, list):
                raise ValueError(f"set {'coefs_' if kind == 'W' else 'intercepts_'} to a list of arrays, one per "
                                 f"layer, got {type(values).__name__}")
            self.__dict__[f"_pending_{kind}"] = values
            return
        model = self._get_model()
        state = model.state_dict()
        count = len(self._arch["sizes"]) - 1
        if len(values) != count:
            raise ValueError(f"expected {count} arrays, one per layer, got {len(values)}")
        for k, v in enumerate(values, start=1):
            value = np.asarray(host(v), dtype=np.float64)
            if value.shape != tuple(state[f"{kind}{k}"].shape):
                raise ValueError(f"{'coefs_' if kind == 'W' else 'intercepts_'}[{k - 1}] has shape {value.shape}; "
                                 f"the network's is {tuple(state[f'{kind}{k}'].shape)}")
            state[f"{kind}{k}"] = value
        model.load_state_dict(state)

    def _pending_weights(self) -> dict[str, list[Any]] | None:
        """The weights set before the first fit (both lists; the network built from them drops them)."""
        coefs, intercepts = self.__dict__.get("_pending_W"), self.__dict__.get("_pending_b")
        if coefs is None and intercepts is None:
            return None
        if coefs is None or intercepts is None:
            raise ValueError("set both coefs_ and intercepts_ (one array per layer each) before fitting from "
                             "your own weights")
        return {"W": coefs, "b": intercepts}

    @staticmethod
    def _check_pending(pending: dict[str, list[Any]], sizes: list[int]) -> dict[str, np.ndarray]:
        """The user's weights as the network's state, checked against the layer sizes of this fit."""
        state = {}
        if len(pending["W"]) != len(sizes) - 1 or len(pending["b"]) != len(sizes) - 1:
            raise ValueError(f"coefs_ and intercepts_ must hold {len(sizes) - 1} arrays each (one per layer of "
                             f"{sizes}), got {len(pending['W'])} and {len(pending['b'])}")
        for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            W = np.asarray(host(pending["W"][k - 1]), dtype=np.float64)
            b = np.asarray(host(pending["b"][k - 1]), dtype=np.float64).reshape(-1)
            if W.shape != (fan_in, fan_out) or b.shape != (fan_out,):
                raise ValueError(f"layer {k}: coefs_ has shape {W.shape} and intercepts_ {b.shape}; this fit needs "
                                 f"{(fan_in, fan_out)} and {(fan_out,)} (layer sizes {sizes})")
            state[f"W{k}"], state[f"b{k}"] = W, b
        return state

    def _has_model(self) -> bool:  # defined by the estimator
        raise NotImplementedError

    def _get_model(self) -> Any:  # defined by the estimator
        raise NotImplementedError
