"""Layers: each forward next to its hand-derived backward.

A layer has ``params`` and ``grads`` (dicts of arrays; empty for activations),
``forward(x, train=True)`` which caches exactly what the backward needs when
``train`` is true, and ``backward(dout)`` which returns dL/dx and fills ``grads``.
Shapes: x is (N, D) for a batch of N rows; dout has the shape of the forward output.

A layer is made with or without a Backend (``Linear(784, 500)``, ``Tanh()``): one made without
is placed on a backend when the network is built (``place``), and takes its namespace ``xp``
from it then, once; only the Array API is used, plus the backend's in-place fast paths.
``config()`` describes a layer as JSON and ``network.layer_from_config`` rebuilds it (checkpoints of
networks built layer by layer).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

from .backend import Backend
from .errors import InputError
from .sparse import is_sparse

Array = Any


class _Unplaced:
    """A layer's ``xp`` and parameters until it is placed: any use says what to do, in one line."""

    def __init__(self, layer: Layer) -> None:
        self.layer = layer

    def _refuse(self, *_: Any) -> Any:
        raise InputError(f"{self.layer!r} is not on a backend yet; build it into a network "
                         "(Sequential([...], backend='cpu')) or make it with one (e.g. Linear(784, 500, backend))")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and friends probe for these: not a use
            raise AttributeError(name)
        return self._refuse()

    __getitem__ = _refuse


class _UnplacedParams(dict):
    """The (empty) parameters of a layer not yet placed: asking for one says what to do."""

    def __init__(self, layer: Layer) -> None:
        super().__init__()
        self.layer = layer

    def __missing__(self, key: str) -> Any:
        return _Unplaced(self.layer)._refuse()


class Layer:
    """Base class of the layers: the contract of the module docstring.

    A subclass fills ``params`` (and ``grads``, same keys) when it has parameters and overrides
    ``forward`` and ``backward``; one with parameters draws them in ``_on_place``.

    Parameters
    ----------
    backend : Backend, optional
        The backend whose arrays the layer computes on; ``xp`` is its namespace. Without one the
        layer waits to be placed by the network that holds it (``Sequential``, ``MLP``).

    Attributes
    ----------
    params, grads : dict of str to array
        The parameters and their gradients after the last ``backward`` (empty for activations).
    """

    params: dict[str, Array]
    grads: dict[str, Array]

    def __init__(self, backend: Backend | None = None) -> None:
        self.backend: Backend | None = None
        self.xp: Any = _Unplaced(self)
        self.ops: Any = self.xp  # the backend's fast paths (relu_, mask_, ...), once placed
        self.params = {}
        self.grads = {}
        if backend is not None:
            self.place(backend)

    def place(self, backend: Backend, *, rng: Any = None, random: Any = None) -> Layer:
        """Put the layer on ``backend`` (once): parameters are drawn now, from ``rng`` if given.

        Parameters
        ----------
        backend : Backend
            Where the layer's arrays live.
        rng : numpy.random.Generator, optional
            Host generator for initial weights (layers with parameters).
        random : DeviceRandom, optional
            Device generator for per-step randomness (dropout masks).

        Returns
        -------
        Layer
            ``self``.

        Raises
        ------
        InputError
            If ``backend`` is not a Backend, or the layer already lives on another one.
        """
        if not isinstance(backend, Backend):
            raise InputError(f"a layer needs a Backend, got {backend!r}; pass get_backend('cpu') or nothing "
                             "(the network places its layers), and options by keyword, e.g. LeakyReLU(slope=0.1)")
        if self.backend is not None and self.backend is not backend:
            raise InputError(f"{self!r} already lives on {self.backend.spec}; build a new layer for each network")
        first = self.backend is None
        self.backend, self.xp, self.ops = backend, backend.xp, backend
        if first:
            self._on_place(rng, random)
        return self

    def _on_place(self, rng: Any, random: Any) -> None:
        """What a layer does when it gets its backend (draw weights, take a generator)."""

    def config(self) -> dict[str, Any]:
        """The layer as JSON: its class name and constructor arguments (``network.layer_from_config`` inverts it)."""
        return {"type": type(self).__name__}

    def forward(self, x: Array, train: bool = True) -> Array:
        """The layer's output for a batch ``x`` (N, D); with ``train`` it caches what ``backward`` needs.

        Parameters
        ----------
        x : array
            (N, D) input on the layer's backend.
        train : bool, default True
            Training mode: cache for the backward pass (and draw dropout masks).

        Returns
        -------
        array
            The output, (N, D_out).
        """
        raise NotImplementedError

    def backward(self, dout: Array) -> Array:
        """dL/dx from ``dout`` = dL/d(output) of the last training ``forward``; fills ``grads``.

        Parameters
        ----------
        dout : array
            The gradient of the loss with respect to the layer's output.

        Returns
        -------
        array
            The gradient with respect to the layer's input.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


# ---------------------------------------------------------------------------
# Linear
# ---------------------------------------------------------------------------

def init_std(init: str | float, fan_in: int, fan_out: int) -> float:
    """Standard deviation of the normal initialisation named by ``init``.

    Parameters
    ----------
    init : str or float
        ``"he"``: sqrt(2 / fan_in) (for ReLU-like units); ``"xavier"``: sqrt(2 / (fan_in + fan_out))
        (Glorot normal); ``"std:S"`` or a number S: the fixed S (the CIFAR-10 homework uses 1e-4).
    fan_in, fan_out : int
        The layer's input and output widths.

    Returns
    -------
    float
        The standard deviation.

    Raises
    ------
    InputError
        An unknown name or a non-positive standard deviation.

    Examples
    --------
    >>> from xpmlp.layers import init_std
    >>> init_std("he", 50, 10), init_std("std:1e-4", 3072, 50)
    (0.2, 0.0001)
    """
    if isinstance(init, (int, float)) and not isinstance(init, bool):
        std = float(init)
    elif init == "he":
        return math.sqrt(2.0 / fan_in)
    elif init == "xavier":
        return math.sqrt(2.0 / (fan_in + fan_out))
    elif isinstance(init, str) and init.startswith("std:"):
        try:
            std = float(init[4:])
        except ValueError:
            raise InputError(f"bad init {init!r}: the part after 'std:' must be a number, e.g. std:1e-4") from None
    else:
        raise InputError(f"unknown init {init!r}; use 'he', 'xavier' or 'std:S' (e.g. std:1e-4)")
    if not std > 0 or not math.isfinite(std):
        raise InputError(f"bad init {init!r}: the standard deviation must be a positive number")
    return std


class Linear(Layer):
    """Affine layer: out = x @ W + b, with W of shape (in_features, out_features).

    Backward: dW = xᵀ @ dout, db = Σ_rows dout, dx = dout @ Wᵀ. x may be a sparse matrix
    (:mod:`xpmlp.sparse`): both products with it are dense. Weights are drawn on the host
    in float64 and moved with ``backend.asarray``, so every backend starts from bit-identical
    weights for the same seed; the bias starts at zero.

    Parameters
    ----------
    in_features, out_features : int
        The input and output widths.
    backend : Backend, optional
        The backend to place the layer on now; without one the network places it when built.
    init : str or float, default "he"
        The initialisation (:func:`init_std`).
    rng : numpy.random.Generator, optional
        The host generator the weights are drawn from (default ``backend.rng(0)``).
    """

    def __init__(self, in_features: int, out_features: int, backend: Backend | None = None, *,
                 init: str | float = "he", rng: Any = None) -> None:
        try:
            sizes = operator.index(in_features), operator.index(out_features)
        except TypeError:
            sizes = (0, 0)
        if min(sizes) < 1:
            raise InputError(f"Linear({in_features!r}, {out_features!r}): sizes must be positive integers")
        self.in_features, self.out_features = sizes
        init_std(init, self.in_features, self.out_features)  # a bad init fails here, not when placed
        self.init = init
        # The first layer of a network never needs dL/dx: skipping it saves one GEMM per step.
        self.input_grad = True
        # Set by a fused training step: weight_update(W, x, dout) updates W from the factors of its
        # gradient (xᵀ·dout) in one GEMM, and grads["W"] is not formed (see MLP.fused_step); a sparse x
        # (xpmlp.sparse) is handed over as weight_update(W, None, xᵀ·dout), the product formed.
        self.weight_update: Callable[[Array, Array, Array], None] | None = None
        self.x: Array = None
        super().__init__()
        self.params = _UnplacedParams(self)
        if backend is not None:
            self.place(backend, rng=rng)

    def _on_place(self, rng: Any, random: Any) -> None:
        backend = self.backend
        rng = backend.rng(0) if rng is None else rng
        std = init_std(self.init, self.in_features, self.out_features)
        w = rng.standard_normal((self.in_features, self.out_features)) * std
        self.params = {"W": backend.asarray(w), "b": backend.asarray([0.0] * self.out_features)}

    def config(self) -> dict[str, Any]:
        return {"type": "Linear", "in_features": self.in_features, "out_features": self.out_features,
                "init": self.init}

    def forward(self, x: Array, train: bool = True) -> Array:
        out = x @ self.params["W"]
        out += self.params["b"]  # in place: one temporary fewer than x @ W + b
        if train:
            self.x = x
        return out

    def backward(self, dout: Array) -> Array:
        dx = dout @ self.params["W"].T if self.input_grad else None  # before any update of W
        if self.weight_update is not None:
            if self.input_grad or not is_sparse(self.x):  # only the first layer sees X, sparse or not
                self.weight_update(self.params["W"], self.x, dout)  # dL/dW = xᵀ·dout folded into W's update
            else:
                # the fused GEMM takes dense factors only: form xᵀ·dout (dense (in, out)); None says so
                self.weight_update(self.params["W"], None, self.x.T @ dout)
        else:
            self.grads["W"] = self.x.T @ dout
        self.grads["b"] = self.xp.sum(dout, axis=0)
        return dx

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features}, init={self.init!r})"


# ---------------------------------------------------------------------------
# Activations (elementwise; derivatives written from the forward output where cheaper)
# ---------------------------------------------------------------------------

def sigmoid(xp: Any, x: Array) -> Array:
    """σ(x) = 1 / (1 + e^-x), computed from e = e^-|x| ≤ 1 so nothing overflows."""
    e = xp.exp(-xp.abs(x))
    r = 1.0 / (1.0 + e)
    return xp.where(x >= 0, r, e * r)


class ReLU(Layer):
    """out = max(x, 0); dx = dout · [out > 0].

    Parameters
    ----------
    backend : Backend, optional
        The backend to place the layer on now; without one the network places it when built.
    inplace : bool, default False
        Let forward overwrite x and backward overwrite dout (saving two allocations per layer and
        step); MLP uses it, since it owns both arrays.
    """

    def __init__(self, backend: Backend | None = None, inplace: bool = False) -> None:
        super().__init__(backend)
        self.inplace = inplace

    def forward(self, x, train=True):
        # the plain path copies first, so both paths give the backend's one ReLU (see backend.base)
        out = self.ops.relu_(x if self.inplace else x * 1.0)
        if train:
            self.out = out
        return out

    def backward(self, dout):
        return self.ops.mask_(dout if self.inplace else dout * 1.0, self.out > 0)


class LeakyReLU(Layer):
    """out = x if x > 0 else c·x (c > 0, default 0.01); dx = dout · (1 if out > 0 else c).

    Parameters
    ----------
    backend : Backend, optional
        The backend to place the layer on now; without one the network places it when built.
    slope : float, default 0.01
        c, the slope for negative inputs.
    """

    def __init__(self, backend: Backend | None = None, slope: float = 0.01) -> None:
        if not 0 < slope < 1:
            raise InputError(f"LeakyReLU slope {slope} must lie in (0, 1); the usual value is 0.01")
        self.slope = float(slope)
        super().__init__(backend)

    def config(self) -> dict[str, Any]:
        return {"type": "LeakyReLU", "slope": self.slope}

    def forward(self, x, train=True):
        # max(x, c·x) is x where x > 0 and c·x elsewhere (0 < c < 1), bit for bit the same as
        # where(x > 0, x, c·x), and one fused loop in NumPy (float32 128×500: 14 vs 92 µs)
        out = self.xp.maximum(x, self.slope * x)
        if train:
            self.out = out  # for c > 0 the sign of out is the sign of x
        return out

    def backward(self, dout):
        xp = self.xp
        return xp.where(self.out > 0, dout, self.slope * dout)

    def __repr__(self):
        return f"LeakyReLU(slope={self.slope})"


class Sigmoid(Layer):
    """out = σ(x), in a form stable for large ``|x|``; dx = dout · out · (1 − out)."""

    def forward(self, x, train=True):
        out = sigmoid(self.xp, x)
        if train:
            self.out = out
        return out

    def backward(self, dout):
        return dout * self.out * (1.0 - self.out)


class Tanh(Layer):
    """out = tanh(x); dx = dout · (1 − out²)."""

    def forward(self, x, train=True):
        out = self.xp.tanh(x)
        if train:
            self.out = out
        return out

    def backward(self, dout):
        return dout * (1.0 - self.out * self.out)


class Swish(Layer):
    """Swish / SiLU: out = x · σ(x); dx = dout · (σ + out · (1 − σ))."""

    def forward(self, x, train=True):
        s = sigmoid(self.xp, x)
        out = x * s
        if train:
            self.s, self.out = s, out
        return out

    def backward(self, dout):
        return dout * (self.s + self.out * (1.0 - self.s))


class ELU(Layer):
    """out = x if x > 0 else α(eˣ − 1); dx = dout · (1 if out > 0 else out + α).

    exp is taken of min(x, 0) so a large positive x cannot overflow the unused branch.

    Parameters
    ----------
    backend : Backend, optional
        The backend to place the layer on now; without one the network places it when built.
    alpha : float, default 1.0
        α, the saturation value for large negative inputs is −α.
    scale : float, default 1.0
        A factor on the whole output (SELU's λ).
    """

    def __init__(self, backend: Backend | None = None, alpha: float = 1.0, scale: float = 1.0) -> None:
        if not alpha > 0:
            raise InputError(f"ELU alpha {alpha} must be positive; the usual value is 1.0")
        self.alpha, self.scale = float(alpha), float(scale)
        super().__init__(backend)

    def config(self) -> dict[str, Any]:
        return {"type": "ELU", "alpha": self.alpha, "scale": self.scale}

    def forward(self, x, train=True):
        xp = self.xp
        neg = (self.scale * self.alpha) * xp.expm1(xp.minimum(x, 0.0))
        out = xp.where(x > 0, self.scale * x, neg) if self.scale != 1.0 else xp.where(x > 0, x, neg)
        if train:
            self.out = out
        return out

    def backward(self, dout):
        xp = self.xp
        # for x ≤ 0: d/dx λα(eˣ − 1) = λαeˣ = out + λα
        return xp.where(self.out > 0, self.scale * dout, dout * (self.out + self.scale * self.alpha))

    def __repr__(self):
        return f"ELU(alpha={self.alpha})"


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


class SELU(ELU):
    """SELU: λ·ELU_α(x) with λ ≈ 1.0507, α ≈ 1.6733 (Klambauer et al., 2017).

    Parameters
    ----------
    backend : Backend, optional
        The backend to place the layer on now; without one the network places it when built.
    """

    def __init__(self, backend: Backend | None = None) -> None:
        super().__init__(backend, alpha=SELU_ALPHA, scale=SELU_SCALE)

    def config(self) -> dict[str, Any]:
        return {"type": "SELU"}

    def __repr__(self):
        return "SELU()"


GELU_K = math.sqrt(2.0 / math.pi)


class GELU(Layer):
    """GELU, tanh form: out = ½x(1 + tanh(u)), u = √(2/π)(x + 0.044715x³).

    dx = dout · (½(1 + t) + ½x(1 − t²)·√(2/π)(1 + 3·0.044715x²)), t = tanh(u).
    (The Array API has no erf, so the exact form is not available on every backend.)
    """

    def forward(self, x, train=True):
        xp = self.xp
        t = xp.tanh(GELU_K * (x + 0.044715 * (x * x * x)))
        out = 0.5 * x * (1.0 + t)
        if train:
            self.x, self.t = x, t
        return out

    def backward(self, dout):
        x, t = self.x, self.t
        du = GELU_K * (1.0 + (3 * 0.044715) * (x * x))
        return dout * (0.5 * (1.0 + t) + (0.5 * x) * ((1.0 - t * t) * du))


class Dropout(Layer):
    """Inverted dropout: out = x · m / (1 − p) while training, m ~ Bernoulli(1 − p); out = x at evaluation.

    dx = dout · m / (1 − p). ``fix_mask`` pins a mask (and applies it at evaluation too), which the
    gradient check uses. ``Dropout(0.2)`` waits for its network's backend and generator;
    ``Dropout(backend, 0.2)`` is placed at once.

    Parameters
    ----------
    backend : Backend or float, optional
        The backend to place the layer on now, or (``Dropout(0.2)``) the probability itself.
    p : float
        The probability of dropping a unit, in [0, 1).
    random : DeviceRandom, optional
        The seeded device generator the masks are drawn from (no host transfer per step, and its
        state resumes exactly); default the network's generator, or one of ``backend``'s seeded with 0.
    """

    def __init__(self, backend: Backend | float | None = None, p: float | None = None, random: Any = None) -> None:
        if p is None and not isinstance(backend, Backend):
            backend, p = None, backend  # Dropout(0.2): the probability alone
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
            raise InputError(f"dropout probability {p!r} must be in [0, 1), e.g. --dropout 0.2 (0 turns it off)")
        self.p = float(p)
        self.random = random if random is not None else _Unplaced(self)
        self.mask: Array = None  # m / (1 − p) of the last training forward
        self.fixed: Array = None
        super().__init__()
        if backend is not None:
            self.place(backend, random=random)

    def _on_place(self, rng: Any, random: Any) -> None:
        if isinstance(self.random, _Unplaced):
            self.random = random if random is not None else self.backend.device_random(0)

    def config(self) -> dict[str, Any]:
        return {"type": "Dropout", "p": self.p}

    def fix_mask(self, keep: Array) -> None:
        """Use this boolean mask for every forward (train or not) from now on."""
        self.fixed = self.xp.astype(keep, self.backend.float_dtype()) * (1.0 / (1.0 - self.p))

    def forward(self, x, train=True):
        if self.fixed is not None:
            scaled_mask = self.fixed
        elif not train or self.p == 0.0:
            return x
        else:
            keep = self.random.uniform(tuple(x.shape), dtype=str(self.backend.dtype)) >= self.p
            scaled_mask = self.xp.astype(keep, x.dtype) * (1.0 / (1.0 - self.p))
        if train:
            self.mask = scaled_mask
        return x * scaled_mask

    def backward(self, dout):
        return dout * self.mask if self.p or self.fixed is not None else dout

    def __repr__(self):
        return f"Dropout(p={self.p})"


ACTIVATIONS: dict[str, type[Layer]] = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "swish": Swish,
    "silu": Swish,
    "selu": SELU,
    "elu": ELU,
    "gelu": GELU,
}


def get_activation(name: str, backend: Backend | None = None, **kwargs: Any) -> Layer:
    """A new activation layer by name on ``backend`` (or unplaced, without one).

    Parameters
    ----------
    name : str
        ``"relu"``, ``"leaky_relu"`` (``"leaky_relu:0.1"`` sets the slope), ``"sigmoid"``, ``"tanh"``,
        ``"swish"``/``"silu"``, ``"selu"``, ``"elu"``, ``"gelu"``.
    backend : Backend, optional
        The backend to place the layer on; without one the network places it when built.
    **kwargs
        Passed to the layer (e.g. ``inplace=True`` for ReLU).

    Returns
    -------
    Layer
        The activation layer.

    Raises
    ------
    InputError
        An unknown name or a bad argument; the message lists the names.
    """
    key = str(name).strip().lower().replace("-", "_")
    if key.startswith("leaky_relu:"):
        try:
            kwargs["slope"] = float(key.split(":", 1)[1])
        except ValueError:
            raise InputError(f"bad activation {name!r}; write the slope as a number, e.g. leaky_relu:0.01") from None
        key = "leaky_relu"
    if key not in ACTIVATIONS:
        raise InputError(f"unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[key](backend, **kwargs)
