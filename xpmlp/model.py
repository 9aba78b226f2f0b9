"""Models: a Sequential of layers and the MLP builder on top of it."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .backend import Backend, get_backend, is_device_array, on_device, to_numpy
from .errors import CheckpointError, InputError
from .layers import Dropout, Layer, Linear, get_activation
from .losses import l2_penalty, l2_value, softmax, softmax_cross_entropy
from .network import (
    LayerStack,
    activation_list,
    activation_options,
    check_stack,
    hidden_activations,
    layer_from_config,
    normalize_activation,
)
from .sparse import is_sparse, sparse_is_finite, to_backend_sparse

Array = Any
# (logits, targets, xp, sample weights or None) -> (0-d loss, dL/dlogits): see xpmlp.losses
LossFn = Callable[[Array, Array, Any, Any], tuple[Array, Array]]


class MLP:
    """A multi-layer perceptron: Linear, activation, ..., Linear, scored by softmax cross-entropy.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths from input to classes, e.g. ``[784, 500, 500, 10]``.
    activation : str or list of str, default "relu"
        One activation name for every hidden layer, or one per hidden layer (``["tanh", "relu"]``;
        see ``layers.ACTIVATIONS`` and :func:`xpmlp.layers.get_activation`).
    backend : Backend or str, default "auto"
        A Backend or a device spec (``"cpu"``, ``"cuda"``, ``"torch"``, ...; :func:`xpmlp.backend.get_backend`).
    dtype : {"float32", "float64"}, default "float32"
        The parameters' dtype.
    seed : int or None, default 0
        Seed of the host generator that draws the initial weights; the same seed gives
        bit-identical weights on every backend.
    init : str or float, default "he"
        ``"he"``, ``"xavier"`` or ``"std:S"`` (fixed standard deviation S; :func:`xpmlp.layers.init_std`).
    dropout : float, default 0.0
        Probability of dropping a hidden unit while training (inverted dropout after each hidden
        activation; 0 = none). Masks come from ``self.random`` on the device.
    **activation_kwargs
        Options of the activation layers, each given to the layers that take it (e.g. ``slope=0.1``
        to the leaky ReLUs); one that no activation takes is refused.

    Raises
    ------
    InputError
        Sizes, activation, init or dropout that cannot build a network (an activation list of the
        wrong length says how many hidden layers there are); the message says why.
    DeviceError
        A device spec that cannot be used here.

    Examples
    --------
    >>> from xpmlp.model import MLP
    >>> model = MLP([784, 500, 500, 10], activation="relu", backend="cpu", seed=0)
    >>> model.num_params()
    648010
    >>> model.predict(model.backend.asarray([[0.0] * 784])).shape
    (1,)
    >>> MLP([784, 500, 500, 10], activation=["tanh", "relu"], backend="cpu").activation
    ['tanh', 'relu']
    """

    # softmax cross-entropy needs two classes; the estimators' networks (logistic, regression) allow one
    min_outputs = 2

    def __init__(self, sizes: Sequence[int], activation: str | Sequence[str] = "relu",
                 backend: Backend | str = "auto", dtype: str = "float32", seed: int | None = 0,
                 init: str | float = "he", dropout: float = 0.0, **activation_kwargs: Any) -> None:
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or any(s < 1 for s in sizes):
            raise InputError(f"sizes {sizes} must list at least an input and an output width, all positive, "
                             "e.g. [784, 500, 500, 10]")
        if sizes[-1] < self.min_outputs:
            raise InputError(f"the last size is the number of classes and must be at least 2, got {sizes[-1]}")
        names = activation_list(activation, len(sizes) - 2, **activation_kwargs)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise InputError(f"dropout {dropout!r} must be a number in [0, 1), e.g. 0.2 (0 turns it off)")
        layers: list[Layer] = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
            if i:
                layers.append(get_activation(names[i - 1], **activation_options(names[i - 1], activation_kwargs)))
                if dropout:
                    layers.append(Dropout(float(dropout)))
            layers.append(Linear(fan_in, fan_out, init=init))
        self.activation = normalize_activation(activation if isinstance(activation, str) else list(activation))
        self.init, self.activation_kwargs, self.dropout = init, activation_kwargs, float(dropout)
        self._place(layers, backend, dtype, seed)

    def _place(self, layers: list[Layer], backend: Backend | str, dtype: str, seed: int | None) -> None:
        """Put the checked ``layers`` on the backend: weights from the seeded host generator, in order."""
        self.sizes = check_stack(layers, allow_stacked_activations=True, min_outputs=self.min_outputs)
        self.backend = get_backend(backend, dtype)
        self.seed = seed
        rng = self.backend.rng(seed)
        # the dropout masks' source: seeded from the model's seed, on the device, one state for all layers
        self.random = self.backend.device_random(0 if seed is None else seed)
        for i, layer in enumerate(layers):
            layer.place(self.backend, rng=rng, random=self.random)
            if hasattr(layer, "inplace") and i and isinstance(layers[i - 1], (Linear, Dropout)):
                layer.inplace = True  # its input and gradient are fresh arrays no one else holds
        first_linear = next(layer for layer in layers if isinstance(layer, Linear))
        first_linear.input_grad = False  # nothing before it needs dL/dx: one GEMM fewer per step
        self.net = LayerStack(layers)

    @classmethod
    def from_layers(cls, layers: Sequence[Layer], backend: Backend | str | None = None, dtype: str = "float32",
                    seed: int | None = 0, allow_stacked_activations: bool = False) -> Sequential:
        """A model from layer objects, as ``Sequential(layers, ...)`` builds it."""
        return Sequential(layers, backend=backend, dtype=dtype, seed=seed,
                          allow_stacked_activations=allow_stacked_activations)

    # -- properties ----------------------------------------------------------
    @property
    def xp(self) -> Any:
        """The Array API namespace of the model's backend."""
        return self.backend.xp

    @property
    def dtype(self) -> str:
        """The parameters' dtype name, ``"float32"`` or ``"float64"``."""
        return self.backend.dtype

    @property
    def num_classes(self) -> int:
        """The number of classes (the last width)."""
        return self.sizes[-1]

    @property
    def layers(self) -> list[Layer]:
        """The layers in order (Linear, activation, Dropout, ...)."""
        return self.net.layers

    @property
    def hidden_activations(self) -> list[str]:
        """The activation of each hidden layer by name."""
        return hidden_activations(self.net.layers)

    @property
    def params(self) -> dict[str, Array]:
        """Name -> parameter array (``W1``, ``b1``, ...): the layers' own arrays."""
        return self.net.params

    @property
    def grads(self) -> dict[str, Array]:
        """Name -> gradient array from the last backward pass."""
        return self.net.grads

    def set_param(self, name: str, value: Array) -> None:
        """Replace parameter ``name`` (``W1``, ``b1``, ...) by ``value``, an array of this backend."""
        self.net.set_param(name, value)

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this model (weights aside), JSON-serialisable."""
        return {"sizes": self.sizes, "activation": self.activation, "init": self.init, "dtype": self.dtype,
                "seed": self.seed, "dropout": self.dropout, "activation_kwargs": dict(self.activation_kwargs)}

    # -- input checks --------------------------------------------------------
    def _on_backend(self, a: Any, what: str) -> Array:
        """``a`` itself if it already lives on this backend's device, else a copy moved here.

        Arrays of another library or device go through the host (one copy each way).
        """
        if self.backend.owns(a):
            return a
        if not is_device_array(a) and a is not None and not isinstance(a, (list, tuple)):
            raise InputError(f"{what} is a {type(a).__module__}.{type(a).__name__}; pass a NumPy array, "
                             f"an array of the model's backend ({self.backend.spec}) or a nested list")
        try:
            return self.backend.asarray(to_numpy(a) if is_device_array(a) else a)
        except ValueError as exc:  # ragged nested lists and the like
            raise InputError(f"{what} cannot be read as an array ({exc}); pass a rectangular NumPy array") from None

    @on_device
    def check_x(self, X: Any, *, assume_finite: bool = False) -> Array:
        """Validate X and return it as a device array of the model's dtype.

        A host NumPy array (or one from another backend) is moved to this backend.
        ``assume_finite=True`` skips the scan for NaN and inf (one pass over X), for a caller that
        has just made that check itself (as scikit-learn's ``validate_data`` does).
        A sparse X (SciPy CSR/CSC; cupyx on CuPy) stays sparse: ``xpmlp.sparse.to_backend_sparse``.
        """
        if X is None:
            raise InputError("X is None; pass the samples as a 2-D array (samples, features)")
        sparse = is_sparse(X)
        if not sparse:
            X = self._on_backend(X, "X")
        xp = self.xp
        if X.ndim != 2:
            raise InputError(f"X has shape {tuple(X.shape)}; it must be 2-D (samples, features): "
                             "flatten images first, e.g. X.reshape(len(X), -1)")
        if X.shape[1] != self.sizes[0]:
            raise InputError(f"X has {X.shape[1]} features but the model's input size is {self.sizes[0]}; "
                             "build the MLP with sizes[0] equal to the feature count")
        if not (X.dtype.kind == "f" if sparse else xp.isdtype(X.dtype, "real floating")):
            raise InputError(f"X has dtype {X.dtype}; it must be floating: scale the data, "
                             "e.g. X.astype('float32') / 255")
        if sparse:  # the stored values only: the implicit zeros are finite
            X = to_backend_sparse(X, self.backend)
            if not assume_finite and not sparse_is_finite(X):
                raise InputError("X contains NaN or inf; clean or impute the data before training")
            return X
        if X.dtype != self.backend.float_dtype():
            X = xp.astype(X, self.backend.float_dtype())
        # One reduction instead of an elementwise mask: a NaN or inf anywhere makes the sum non-finite;
        # only then (or if finite values overflow the sum) is the exact elementwise test run.
        if not assume_finite and not bool(xp.isfinite(xp.sum(X))) and not bool(xp.all(xp.isfinite(X))):
            raise InputError("X contains NaN or inf; clean or impute the data before training")
        return X

    @on_device
    def check_y(self, y: Any, n: int) -> Array:
        """Validate labels: 1-D integers in [0, classes), one per row of X."""
        if y is None:
            raise InputError("labels are None; pass one integer class per row of X")
        try:
            y = self._on_backend(y, "labels")
        except TypeError:
            raise InputError("labels must be integer class indices, e.g. y.astype('int64')") from None
        xp = self.xp
        if y.ndim != 1 or y.shape[0] != n:
            raise InputError(f"labels have shape {tuple(y.shape)}; expected ({n},): one integer class per row of X")
        if not xp.isdtype(y.dtype, "integral"):
            raise InputError(f"labels have dtype {y.dtype}; they must be integer class indices, "
                             "e.g. y.astype('int64')")
        if n and (int(xp.min(y)) < 0 or int(xp.max(y)) >= self.num_classes):
            raise InputError(f"labels range over [{int(xp.min(y))}, {int(xp.max(y))}] but the model has "
                             f"{self.num_classes} classes; labels must lie in [0, {self.num_classes - 1}]")
        if y.dtype != xp.int64:
            y = xp.astype(y, xp.int64)
        return y

    # -- forward / backward ----------------------------------------------------
    @on_device
    def forward(self, X: Array, train: bool = False, check: bool = True) -> Array:
        """Logits (N, C). ``train=True`` caches what backward needs."""
        if check:
            X = self.check_x(X)
        return self.net.forward(X, train=train)

    @on_device
    def backward(self, dlogits: Array) -> dict[str, Array]:
        """Back-propagate dL/dlogits; fills and returns the gradients by parameter name."""
        self.net.backward(dlogits)
        return self.grads

    @on_device
    def check_weights(self, sample_weight: Any, n: int) -> Array:
        """Validate sample weights: 1-D, one per row of X, finite, >= 0, not all zero.

        Returns them as a device array of the model's floating dtype.
        """
        xp = self.xp
        try:  # a floating copy, whatever the caller passed (integer counts included)
            w = xp.astype(self._on_backend(sample_weight, "sample_weight"), self.backend.float_dtype())
        except TypeError:
            raise InputError("sample_weight must be numbers, e.g. w.astype('float64')") from None
        if tuple(w.shape) != (n,):
            raise InputError(f"sample_weight has shape {tuple(w.shape)}; expected ({n},): one weight per row of X")
        if n and not (bool(xp.all(xp.isfinite(w))) and float(xp.min(w)) >= 0.0 and float(xp.sum(w)) > 0.0):
            raise InputError("sample_weight must be finite and >= 0 with at least one positive weight; "
                             "fix or drop the bad weights")
        return w

    @on_device
    def loss(self, X: Array, y: Array, reg: float = 0.0, check: bool = True,
             sample_weight: Array | None = None, loss_fn: LossFn | None = None) -> tuple[Array, dict[str, Array]]:
        """Regularised loss and gradients of one batch.

        L = mean softmax cross-entropy + ½·λ·Σ‖W‖²_F (weights only, see ``losses.l2_penalty``).
        With ``sample_weight`` w the mean becomes Σᵢ wᵢ ℓᵢ / Σᵢ wᵢ (``losses.softmax_cross_entropy``);
        the penalty is unchanged (scikit-learn's ``alpha`` is λ·Σᵢ wᵢ of the batch).
        ``loss_fn(logits, targets, xp, weights) -> (loss, dlogits)`` replaces the cross-entropy
        (e.g. ``losses.squared_error`` with float targets y (N, K), checked by the caller: ``check``
        then validates X only).

        Returns:
            ``(loss, grads)``: loss a 0-d device array; grads a dict keyed like ``state_dict()``.
        """
        if check:
            X = self.check_x(X)
            y = self.check_y(y, X.shape[0]) if loss_fn is None else y
            if X.shape[0] == 0:
                raise InputError("X has no rows; the loss needs at least one sample")
            if reg < 0:
                raise InputError(f"reg {reg} is negative; the L2 strength must be >= 0")
            if sample_weight is not None:
                sample_weight = self.check_weights(sample_weight, X.shape[0])
        logits = self.net.forward(X, train=True)
        loss, dlogits = (loss_fn or softmax_cross_entropy)(logits, y, self.xp, sample_weight)
        grads = self.backward(dlogits)
        if reg:
            names = [k for k in grads if k.startswith("W")]
            penalty, dweights = l2_penalty([self.params[k] for k in names], reg, self.xp)
            loss = loss + penalty
            for k, dw in zip(names, dweights, strict=False):
                grads[k] += dw
        return loss, grads

    @on_device
    def fused_step(self, X: Array, y: Array, reg: float, optimizer: Any, sample_weight: Array | None = None,
                   loss_fn: LossFn | None = None) -> Array:
        """One training step of an SGD-family optimizer with each weight update folded into its GEMM.

        The same step as ``loss(X, y, reg, check=False, sample_weight)`` then ``optimizer.step(params, grads)``,
        to float rounding: each Linear's backward hands xᵀ·dout to ``optimizer.fused_weight_update``
        (W ← β·W + α·xᵀ·dout in one GEMM, the L2 term λ·W folded into β) instead of forming dL/dW;
        the biases then take an ordinary ``optimizer.step``. X, y: a checked batch on this device.

        Returns:
            The regularised loss of the batch (0-d device array), from the weights before the step.
        """
        xp = self.xp
        optimizer.begin_fused_step(self.params)
        logits = self.net.forward(X, train=True)
        loss, dlogits = (loss_fn or softmax_cross_entropy)(logits, y, xp, sample_weight)
        weights = [(name, layer) for name, layer, key in self.net.named if key == "W"]
        if reg:  # the penalty of the weights this step starts from
            loss = loss + l2_value([layer.params["W"] for _, layer in weights], reg, xp)
        for name, layer in weights:
            layer.weight_update = functools.partial(optimizer.fused_weight_update, name, decay=reg)
        try:
            self.net.backward(dlogits)
        finally:
            for _, layer in weights:
                layer.weight_update = None
        biases = {name: layer.params[key] for name, layer, key in self.net.named if key != "W"}
        optimizer.step(biases, {name: layer.grads[key] for name, layer, key in self.net.named if key != "W"})
        return loss

    def batched_logits(self, X: Array, batch_size: int = 8192) -> Iterator[tuple[int, int, Array]]:
        """Yield ``(start, stop, logits of X[start:stop])`` over an already checked X, bounding memory.

        An empty X yields one empty batch, so callers always get (0, C)-shaped results.
        """
        n = X.shape[0]
        for start in range(0, max(n, 1), batch_size):
            stop = min(start + batch_size, n)  # the Array API leaves out-of-bounds slice stops unspecified
            with self.backend.context():  # per batch: a generator cannot hold a context across its yields
                logits = self.net.forward(X[start:stop, ...], train=False)
            yield start, stop, logits

    def _concat(self, parts: list[Array]) -> Array:
        return self.xp.concat(parts, axis=0) if len(parts) != 1 else parts[0]

    @on_device
    def predict_proba(self, X: Array, batch_size: int = 8192) -> Array:
        """Class probabilities (N, C) on the device: softmax of the logits, computed in batches."""
        return self._concat([softmax(z, self.xp) for _, _, z in self.batched_logits(self.check_x(X), batch_size)])

    @on_device
    def predict(self, X: Array, batch_size: int = 8192) -> Array:
        """Predicted class indices (N,) on the device."""
        return self._concat([self.xp.argmax(z, axis=1) for _, _, z in self.batched_logits(self.check_x(X), batch_size)])

    # -- inspection and state ----------------------------------------------------
    def summary(self) -> str:
        """A table of the layers (Keras/torchinfo style): output shape and parameter count per layer,
        the totals, the hidden activations, dtype and device.

        Returns
        -------
        str
            The table, one row per layer.
        """
        rows = [("#", "layer", "output shape", "params"), ("", "input", f"(batch, {self.sizes[0]})", "0")]
        width = self.sizes[0]
        for i, layer in enumerate(self.net.layers, start=1):
            if isinstance(layer, Linear):
                width = layer.out_features
            count = sum(math.prod(p.shape) for p in layer.params.values())
            rows.append((str(i), repr(layer), f"(batch, {width})", f"{count:,}"))
        widths = [max(len(r[k]) for r in rows) for k in range(4)]
        lines = [f"{a:>{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d:>{widths[3]}}" for a, b, c, d in rows]
        rule = "=" * len(lines[0])
        total = self.num_params()
        itemsize = 4 if self.dtype == "float32" else 8
        foot = [f"total params: {total:,} ({total * itemsize / 2**20:.2f} MiB), all trainable",
                f"layers: {' -> '.join(map(str, self.sizes))}; hidden activations: "
                f"{', '.join(self.hidden_activations) or 'none'}",
                f"dtype: {self.dtype}; backend: {self.backend}"]
        return "\n".join([rule, lines[0], rule.replace("=", "-"), *lines[1:], rule, *foot])

    def num_params(self) -> int:
        """The number of trainable parameters (weights and biases)."""
        return sum(math.prod(p.shape) for p in self.params.values())

    def state_dict(self) -> dict[str, Any]:
        """Parameters as host NumPy arrays, keyed W1, b1, W2, ... (device-neutral)."""
        return {k: self.backend.to_numpy(v) for k, v in self.params.items()}

    @on_device
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load parameters from host arrays (as ``state_dict()`` returns), checking names and shapes.

        The arrays are copied: training afterwards never changes ``state``.
        """
        own = self.params
        missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or extra:
            raise InputError(f"state dict does not match this model: missing {missing}, unexpected {extra}; "
                             f"it was saved from another architecture than {self.sizes}")
        for k, v in own.items():
            shape = tuple(getattr(state[k], "shape", ()))
            if shape != tuple(v.shape):
                raise InputError(f"state dict entry {k} has shape {shape}, the model expects {tuple(v.shape)}; "
                                 f"it was saved from another architecture than {self.sizes}")
        for k in own:
            self.net.set_param(k, self.backend.asarray(to_numpy(state[k])))

    @classmethod
    def from_config(cls, config: dict[str, Any], backend: Backend | str = "auto", dtype: str | None = None) -> MLP:
        """Rebuild a model from ``config()`` (initial weights of its seed) on ``backend``.

        A model built from layer objects (its config lists ``layers``) comes back as a ``Sequential``.
        """
        dtype = dtype or config["dtype"]
        if "layers" in config:
            layers = config["layers"]
            if not isinstance(layers, list):
                raise InputError(f"the model config's layers is {type(layers).__name__}, not a list; "
                                 "it was not written by xpmlp")
            return Sequential([layer_from_config(c) for c in layers], backend=backend, dtype=dtype,
                              seed=config["seed"], allow_stacked_activations=True)
        return MLP(config["sizes"], config["activation"], backend=backend, dtype=dtype,
                   seed=config["seed"], init=config["init"], dropout=config.get("dropout", 0.0),
                   **config.get("activation_kwargs", {}))

    def to_onnx(self, path: str | Any, *, preprocessor: Any = None) -> Any:
        """Write this model as an ONNX file, traced through its own forward code (``xpmlp.export.onnx``).

        Input ``x`` (batch, features) of the model's dtype; outputs ``logits`` and ``probabilities``
        (batch, classes). Needs the onnx extra (``pip install 'xpmlp[onnx]'``).

        Parameters
        ----------
        path : str or Path
            The file to write, atomically.
        preprocessor : Preprocessor, optional
            Traced in front of the network, so ``x`` is the raw features.

        Returns
        -------
        Path
            The file written.
        """
        from .export.onnx import export_onnx

        return export_onnx(self, path, preprocessor=preprocessor)

    def to_safetensors(self, path: str | Any) -> Any:
        """Write the weights (W1, b1, ...) and config as a safetensors file (``xpmlp.export.safetensors``).

        Parameters
        ----------
        path : str or Path
            The file to write, atomically.

        Returns
        -------
        Path
            The file written.
        """
        from .export.safetensors import save_safetensors

        return save_safetensors(self, path)

    @classmethod
    def from_safetensors(cls, path: str | Any, *, device: Backend | str = "auto", dtype: str | None = None) -> MLP:
        """A model from a safetensors file ``to_safetensors`` wrote: the same network, bit-identical weights.

        Parameters
        ----------
        path : str or Path
            The file.
        device : Backend or str, default "auto"
            Where to put the model (a device spec).
        dtype : {"float32", "float64"}, optional
            Cast to this dtype (default: the file's, which keeps the weights bit for bit).

        Returns
        -------
        MLP
            An ``MLP``, or a ``Sequential`` for a network built from layers.

        Raises
        ------
        CheckpointError
            A file that is not an xpmlp safetensors file, or is damaged or altered (one line).
        """
        from .export.safetensors import read_safetensors

        config, state = read_safetensors(path)
        try:
            model = MLP.from_config(config, device, dtype)
        except (InputError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{path}: its network cannot be rebuilt ({exc}); the file was altered") from None
        model.load_state_dict(state)
        return model

    def to(self, backend: Backend | str, dtype: str | None = None) -> MLP:
        """A copy of this model on another backend (and optionally dtype), with the same weights."""
        other = MLP.from_config(self.config(), backend, dtype)
        other.load_state_dict(self.state_dict())
        return other

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sizes={self.sizes}, activation={self.activation!r}, " \
               f"backend={self.backend.spec!r}, dtype={self.dtype!r})"


class Sequential(MLP):
    """A network of layer objects, placed on one backend: the homework's way of building a model.

    ``Sequential([Linear(784, 500), Tanh(), Linear(500, 500), ReLU(), Linear(500, 10)], backend="cpu")``
    is a model like ``MLP`` for the Trainer, checkpoints, ``evaluate`` and every backend.

    Parameters
    ----------
    layers : sequence of Layer
        Layers made without a backend (or all already on one); they must chain: each Linear takes
        the width the one before gives, and the last layer is a Linear with at least 2 outputs.
    backend : Backend or str, optional
        Where to place them (default: the layers' own backend if they have one, else ``"auto"``).
    dtype : str
        ``"float32"`` (default) or ``"float64"``.
    seed : int or None
        Seed of the host generator that draws the Linear layers' weights, in order.
    allow_stacked_activations : bool
        Accept two activations in a row (refused by default: it is almost always a mistake).

    Raises
    ------
    InputError
        One line naming the layer at fault (widths that do not chain, two activations in a row,
        no final Linear, fewer than 2 classes, a layer object used twice).

    Examples
    --------
    >>> from xpmlp.layers import Linear, ReLU, Tanh
    >>> from xpmlp.model import Sequential
    >>> net = Sequential([Linear(784, 500), Tanh(), Linear(500, 500), ReLU(), Linear(500, 10)], backend="cpu")
    >>> net.sizes, net.activation
    ([784, 500, 500, 10], ['tanh', 'relu'])
    """

    def __init__(self, layers: Sequence[Layer], backend: Backend | str | None = None, dtype: str = "float32",
                 seed: int | None = 0, allow_stacked_activations: bool = False) -> None:
        layers = list(layers)
        check_stack(layers, allow_stacked_activations)
        placed = {id(layer.backend): layer.backend for layer in layers if layer.backend is not None}
        if backend is None:
            backend = next(iter(placed.values())) if len(placed) == 1 else "auto"
        self.init, self.activation_kwargs = None, {}
        self._place(layers, backend, dtype if not placed else next(iter(placed.values())).dtype, seed)
        self.activation = normalize_activation(self.hidden_activations) if len(self.sizes) > 2 else "identity"
        self.dropout = max((layer.p for layer in layers if isinstance(layer, Dropout)), default=0.0)
        self.allow_stacked_activations = allow_stacked_activations

    def config(self) -> dict[str, Any]:
        """``MLP.config()`` plus ``layers``: each layer's ``config()``, from which ``from_config`` rebuilds it."""
        return {**super().config(), "layers": [layer.config() for layer in self.net.layers]}
