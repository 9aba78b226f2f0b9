"""The layer stack under every model, and the checks that a list of layers is a network.

``LayerStack`` runs layers in order and back; ``check_stack`` refuses an ill-formed list before
anything is placed, naming the layer at fault; ``hidden_activations`` reads back the activation
of each hidden layer, as ``MLP``'s ``activation`` argument would name it; ``layer_from_config``
rebuilds a layer from the JSON its ``config()`` gives (checkpoints of networks built from layers).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .errors import InputError
from .layers import ACTIVATIONS, Dropout, Layer, LeakyReLU, Linear

Array = Any


class LayerStack:
    """Layers applied in order; backward runs them in reverse, down to the first layer with parameters.

    Parameters are named by the Linear layers' order: W1, b1, W2, b2, ...

    Parameters
    ----------
    layers : iterable of Layer
        The layers, input side first, all placed on one backend.
    """

    def __init__(self, layers: Iterable[Layer]) -> None:
        self.layers = list(layers)
        # (name, layer, key) of every parameter: W1, b1 of the first layer with parameters, W2, b2, ...
        self.named = [(f"{key}{i}", layer, key)
                      for i, layer in enumerate((l for l in self.layers if l.params), start=1)
                      for key in layer.params]
        # layers before the first one with parameters (an input Dropout) need no backward
        self.first = next((i for i, l in enumerate(self.layers) if l.params), 0)

    def forward(self, x: Array, train: bool = True) -> Array:
        """Run ``x`` (N, D) through every layer in order; ``train`` caches for the backward pass."""
        for layer in self.layers:
            x = layer.forward(x, train=train)
        return x

    def backward(self, dout: Array) -> Array:
        """Run dL/d(output) back through the layers; each fills its ``grads``. Returns dL/dx."""
        for layer in reversed(self.layers[self.first:]):
            dout = layer.backward(dout)
        return dout

    @property
    def params(self) -> dict[str, Array]:
        """Name -> parameter array (the layers' own arrays: updating them in place trains the model)."""
        return {name: layer.params[key] for name, layer, key in self.named}

    @property
    def grads(self) -> dict[str, Array]:
        """Name -> gradient array from the last backward."""
        return {name: layer.grads[key] for name, layer, key in self.named}

    def set_param(self, name: str, value: Array) -> None:
        """Replace the parameter called ``name`` (``"W1"``, ``"b2"``, ...); KeyError if none has it."""
        for n, layer, key in self.named:
            if n == name:
                layer.params[key] = value
                return
        raise KeyError(name)


def is_activation(layer: Layer) -> bool:
    return not isinstance(layer, (Linear, Dropout))


def _check_items(layers: Sequence[Any]) -> None:
    if not layers:
        raise InputError("the network has no layers; pass a list such as [Linear(784, 500), ReLU(), Linear(500, 10)]")
    seen: dict[int, int] = {}
    for i, layer in enumerate(layers, start=1):
        if not isinstance(layer, Layer):
            raise InputError(f"layer {i} is {layer!r}, not a layer object; pass layers such as Linear(784, 500) "
                             "or ReLU() (or use MLP(sizes, activation=...) for names)")
        if id(layer) in seen:
            raise InputError(f"layer {i} ({layer!r}) is the same object as layer {seen[id(layer)]}; "
                             "make a new layer object for each position")
        seen[id(layer)] = i


def check_stack(layers: Sequence[Any], allow_stacked_activations: bool = False, min_outputs: int = 2) -> list[int]:
    """Refuse an ill-formed list of layers in one line naming the layer; return the widths.

    Parameters
    ----------
    layers : sequence of Layer
        The network's layers, input side first.
    allow_stacked_activations : bool, default False
        Accept two activations in a row (refused by default: almost always a mistake).
    min_outputs : int, default 2
        The fewest outputs accepted: 2 classes for softmax cross-entropy (1 for the estimators'
        logistic and regression outputs).

    Returns
    -------
    list of int
        The widths ``[in of the first Linear, out of each Linear...]`` (the ``sizes`` of an MLP).

    Raises
    ------
    InputError
        Not layer objects, a layer twice, widths that do not chain, two activations in a row
        (unless ``allow_stacked_activations``), no final Linear, or fewer than 2 classes.
    """
    _check_items(layers)
    sizes: list[int] = []
    last = None  # the last layer that is not a Dropout, and its position
    for i, layer in enumerate(layers, start=1):
        if isinstance(layer, Linear):
            if sizes and layer.in_features != sizes[-1]:
                raise InputError(f"layer {i} {layer!r} takes {layer.in_features} inputs but the layer before gives "
                                 f"{sizes[-1]}; make it Linear({sizes[-1]}, {layer.out_features})")
            sizes = sizes or [layer.in_features]
            sizes.append(layer.out_features)
        elif is_activation(layer) and last is not None and is_activation(last[1]) and not allow_stacked_activations:
            raise InputError(f"layers {last[0]} and {i} ({last[1]!r}, {layer!r}) are two activations in a row, "
                             "almost always a mistake; remove one, or pass allow_stacked_activations=True if meant")
        if not isinstance(layer, Dropout):
            last = (i, layer)
    if not isinstance(layers[-1], Linear):
        raise InputError(f"the last layer is {layers[-1]!r}; a network must end in a Linear that gives the class "
                         "scores (the loss applies the softmax)")
    if sizes[-1] < min_outputs:
        raise InputError(f"the last Linear gives {sizes[-1]} output; the number of classes must be at least 2")
    return sizes


def hidden_activations(layers: Sequence[Layer]) -> list[str]:
    """The activation after each hidden Linear, by name.

    Parameters
    ----------
    layers : sequence of Layer
        A network's layers.

    Returns
    -------
    list of str
        One name per hidden layer (``get_activation``'s name; ``"identity"`` where there is none,
        ``"relu>tanh"`` for two in a row).
    """
    names: list[list[str]] = []
    for layer in layers:
        if isinstance(layer, Linear):
            names.append([])
        elif is_activation(layer) and names:
            names[-1].append(activation_name(layer))
    return [">".join(n) or "identity" for n in names[:-1]]


def activation_list(activation: Any, n_hidden: int, **kwargs: Any) -> list[str]:
    """One activation name per hidden layer from one name (used for all) or a list of them.

    A one-name list counts as the name alone. Every name is checked (``get_activation``).

    Parameters
    ----------
    activation : str or list of str
        One name, or one per hidden layer.
    n_hidden : int
        The number of hidden layers.
    **kwargs
        Options of the activation layers (e.g. ``slope``), checked with the names.

    Returns
    -------
    list of str
        ``n_hidden`` names.

    Raises
    ------
    InputError
        If a name is unknown, or the list's length is not 1 or ``n_hidden``.
    """

    if isinstance(activation, (list, tuple)):
        names = list(activation)
        if not names or not all(isinstance(a, str) for a in names):
            raise InputError(f"activation {activation!r} must be a name or a list of names, e.g. [tanh, relu]")
        if len(names) == 1:
            names = names * n_hidden
        elif len(names) != n_hidden:
            raise InputError(f"activation lists {len(names)} names ({', '.join(names)}) but the network has "
                             f"{n_hidden} hidden layer{'s' * (n_hidden != 1)}; give one name, or one per hidden layer")
        _check_names(names, kwargs)
        return names
    if not isinstance(activation, str):
        raise InputError(f"activation {activation!r} must be a name or a list of names, e.g. relu or [tanh, relu]")
    _check_names([activation], kwargs)  # a typo fails here even with no hidden layer
    return [activation] * n_hidden


def _check_names(names: list[str], kwargs: dict[str, Any]) -> None:
    """Build each activation once with its options; refuse an option that none of them takes."""
    from .layers import get_activation

    used: set[str] = set()
    for name in dict.fromkeys(names):
        options = activation_options(name, kwargs)
        get_activation(name, **options)
        used.update(options)
    unused = sorted(set(kwargs) - used)
    if unused:
        raise InputError(f"{', '.join(unused)} is an option of none of this network's activations "
                         f"({', '.join(dict.fromkeys(names))}); drop it, or use an activation that takes it "
                         "(slope: leaky_relu)")


def activation_options(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The options in ``kwargs`` that the layer of activation ``name`` takes.

    So ``slope=0.1`` for a network of ``["selu", "leaky_relu"]`` goes to the leaky ReLU only.

    Parameters
    ----------
    name : str
        An activation name (``leaky_relu:0.1`` included).
    kwargs : dict
        The network's activation options.

    Returns
    -------
    dict
        The subset of ``kwargs`` that the layer's constructor accepts (all of it for an unknown
        name, which ``get_activation`` then refuses).
    """
    import inspect

    from .layers import ACTIVATIONS

    layer = ACTIVATIONS.get(str(name).strip().lower().replace("-", "_").split(":", 1)[0])
    if layer is None:
        return dict(kwargs)
    params = inspect.signature(layer).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(kwargs)
    return {k: v for k, v in kwargs.items() if k in params}


def normalize_activation(activation: Any) -> Any:
    """An activation setting in its recorded form.

    Parameters
    ----------
    activation : str or sequence of str
        A name or a list of names.

    Returns
    -------
    str or list of str
        A one-name list as the name alone (``["relu"]`` -> ``"relu"``), a tuple as a list, a name as is.
    """
    if isinstance(activation, (list, tuple)):
        return activation[0] if len(activation) == 1 else list(activation)
    return activation


def activation_label(activation: Any) -> str:
    """An activation setting as text for run names, tables and legends.

    Parameters
    ----------
    activation : str or sequence of str
        A name or a per-hidden-layer list.

    Returns
    -------
    str
        The name, or the list joined by ``+`` (``tanh+relu``).
    """
    activation = normalize_activation(activation)
    return "+".join(map(str, activation)) if isinstance(activation, list) else str(activation)


#: Every layer class by the name ``Layer.config()`` records.
LAYER_TYPES: dict[str, type[Layer]] = {cls.__name__: cls for cls in (Linear, Dropout, *ACTIVATIONS.values())}


def layer_from_config(config: dict[str, Any]) -> Layer:
    """A new, unplaced layer from ``Layer.config()``'s dict.

    Parameters
    ----------
    config : dict
        ``{"type": class name, **constructor arguments}`` as ``Layer.config()`` writes it; only
        the classes of :data:`LAYER_TYPES` are built.

    Returns
    -------
    Layer
        The layer, without a backend.

    Raises
    ------
    InputError
        If the dict names no known layer type or holds arguments that type does not take.
    """
    if not isinstance(config, dict) or config.get("type") not in LAYER_TYPES:
        raise InputError(f"unknown layer {config!r}; a layer config names one of: {', '.join(LAYER_TYPES)}")
    args = {k: v for k, v in config.items() if k != "type"}
    try:
        return LAYER_TYPES[config["type"]](**args)
    except TypeError as exc:
        raise InputError(f"bad layer config {config!r} ({exc}); it was not written by xpmlp") from None


def activation_name(layer: Layer) -> str:
    """The name ``get_activation`` takes for an activation layer.

    Parameters
    ----------
    layer : Layer
        An activation layer.

    Returns
    -------
    str
        Its name (``"tanh"``; ``"leaky_relu:0.2"`` keeps a slope other than 0.01).
    """
    for name, cls in ACTIVATIONS.items():
        if type(layer) is cls:
            if isinstance(layer, LeakyReLU) and layer.slope != 0.01:
                return f"leaky_relu:{layer.slope:g}"
            return name
    return type(layer).__name__.lower()
