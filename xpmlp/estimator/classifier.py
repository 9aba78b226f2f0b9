"""``MLPClassifier``: scikit-learn's multi-layer perceptron classifier, trained by xpmlp on any device.

A drop-in for ``sklearn.neural_network.MLPClassifier`` (``solver='sgd'`` or ``'adam'``): the same
parameters mean the same training (initialisation, shuffling, minibatches, L2 penalty, learning
rates and stopping rules follow scikit-learn's code; see :mod:`xpmlp.estimator.loop`), plus
``device``, ``dtype``, ``class_weight``, xpmlp's activations and solvers.

Differences from scikit-learn's, all documented in the class docstring: the output layer is
always a softmax (two units for two classes, so ``coefs_[-1]`` has two columns where
scikit-learn's has one logistic unit); no L-BFGS; no multilabel targets; device arrays stay on
their device.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_array, check_random_state, column_or_1d
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, validate_data

from ..backend import Backend, backend_unavailable, get_backend
from ..layers import Dropout, Linear
from ..model import MLP
from .arrays import backend_of, check_same_namespace, device_copy, host, is_on_device, on_backend, sample_weights
from .hooks import CallbackSupportMixin, EpochHooks, with_callbacks
from .loop import FitData, StochasticLoop, class_indices, make_solver
from .params import Settings, resolve
from .pickling import PicklableOnDevice

Array = Any


def glorot_uniform(random_state: np.random.RandomState, sizes: list[int], factor: float) -> dict[str, np.ndarray]:
    """scikit-learn's initial weights: Wₖ, bₖ ~ U(−r, r), r = √(factor / (fan_in + fan_out)), drawn in its order.

    ``factor`` is 2 for a logistic (sigmoid) network and 6 otherwise (Glorot & Bengio, 2010).
    """
    state = {}
    for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        bound = math.sqrt(factor / (fan_in + fan_out))
        state[f"W{k}"] = random_state.uniform(-bound, bound, (fan_in, fan_out))
        state[f"b{k}"] = random_state.uniform(-bound, bound, fan_out)
    return state


def _layer_property(kind: str, doc: str) -> property:
    """A fitted attribute read from (and written to) the network's parameters ``kind``1, ``kind``2, ..."""
    def get(self: MLPClassifier) -> list[Array]:
        return self._layer_arrays(kind)

    def put(self: MLPClassifier, values: list[Any]) -> None:
        self._set_layer_arrays(kind, values)

    return property(get, put, doc=doc)


def build_model(backend: Backend, arch: dict[str, Any]) -> MLP:
    """xpmlp's MLP for the estimator's architecture (sizes, activation, dropout and its seed).

    ``activation`` is one name or one per hidden layer; ``'identity'`` keeps that layer's Linear
    (and Dropout) only.
    """
    n_hidden = len(arch["sizes"]) - 2
    names = arch["activation"] if isinstance(arch["activation"], list) else [arch["activation"]] * n_hidden
    model = MLP(arch["sizes"], [n if n != "identity" else "relu" for n in names] or "relu", backend=backend,
                dtype=backend.dtype, seed=arch["seed"], dropout=arch["dropout"])
    if "identity" in names:
        kept, hidden = [], -1
        for layer in model.net.layers:
            hidden += isinstance(layer, Linear)
            if layer.params or isinstance(layer, Dropout) or names[hidden] != "identity":
                kept.append(layer)
        model.net.layers = kept
    return model


class MLPClassifier(CallbackSupportMixin, ClassifierMixin, StochasticLoop, PicklableOnDevice, BaseEstimator):
    """Multi-layer perceptron classifier with scikit-learn's interface, trained by xpmlp on any device.

    A drop-in for ``sklearn.neural_network.MLPClassifier``: the parameters it shares with it have
    the same names, defaults and meaning. Binary problems use a two-unit softmax
    (``n_outputs_ == 2``): ``predict_proba`` has two columns, as scikit-learn's does. Arrays stay
    where they are: device input trains and predicts on its device and returns arrays of its library
    there; NumPy input returns NumPy. Fitted attributes are NumPy arrays, or arrays of the input's
    library for device input (``classes_`` too when the labels are numbers).

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (100,)
        The hidden widths.
    activation : str, default "relu"
        'identity', 'logistic', 'tanh', 'relu', and xpmlp's 'leaky_relu', 'swish'/'silu', 'selu',
        'elu', 'gelu'.
    solver : str, default "adam"
        'sgd', 'adam', and xpmlp's 'momentum', 'nesterov', 'adamw'; 'lbfgs' is refused. 'sgd' is
        Nesterov SGD when ``nesterovs_momentum`` (default), classic momentum otherwise, plain SGD at
        ``momentum=0``.
    alpha : float, default 1e-4
        L2 strength, scikit-learn's convention: each minibatch B minimises the (weighted) mean
        cross-entropy plus α/(2·Σ_{i∈B} wᵢ)·Σₖ‖Wₖ‖²_F, the penalty divided by the batch's sample
        count (its weight sum with ``sample_weight``). In xpmlp's ``--reg λ`` terms (½λ‖W‖², not
        divided) this is λ = α / batch size, e.g. α = 1e-4 at batch 200 is λ = 5e-7.
    batch_size : int or "auto", default "auto"
        Minibatch size; "auto" is min(200, n_samples).
    learning_rate : {"constant", "invscaling", "adaptive"}, default "constant"
        The schedule of the SGD-family solvers, as in scikit-learn.
    learning_rate_init : float, default 1e-3
        The initial learning rate.
    power_t : float, default 0.5
        The exponent of "invscaling".
    max_iter : int, default 200
        Epochs at most.
    shuffle : bool, default True
        Shuffle the samples each epoch.
    random_state : int, RandomState or None, default None
        Seed of the initial weights, the shuffles, the validation split and dropout.
    tol : float, default 1e-4
        The improvement that counts for the stopping rule.
    verbose : bool, default False
        Print the loss after each epoch.
    warm_start : bool, default False
        Continue from the last fit's weights.
    momentum : float, default 0.9
        Momentum of the SGD-family solvers.
    nesterovs_momentum : bool, default True
        Nesterov momentum for solver 'sgd'.
    early_stopping : bool, default False
        Hold out ``validation_fraction`` and stop when its score stops improving.
    validation_fraction : float, default 0.1
        The held-out share for early stopping.
    beta_1, beta_2 : float, default 0.9, 0.999
        Adam's moment decays.
    epsilon : float, default 1e-8
        Adam's epsilon.
    n_iter_no_change : int, default 10
        Epochs without ``tol`` improvement before stopping.
    device : str, default "auto"
        Where host (NumPy) input trains: 'auto' (a CUDA GPU through CuPy when usable, else the CPU),
        'cpu', 'cuda[:N]', 'torch', 'torch:cuda[:N]', 'strict[:NAME]'. Device arrays (CuPy, PyTorch,
        array-api-strict) always train on their own device.
    dtype : {"auto", "float32", "float64"}, default "auto"
        'auto': float32 input trains in float32, anything else in float64, as scikit-learn.
    dropout : float, default 0.0
        Probability of dropping a hidden unit while training (inverted dropout after each hidden
        activation, masks drawn on the device; 0.0 is scikit-learn's network). Its seed is drawn
        from ``random_state`` after the initial weights.
    class_weight : None, "balanced" or dict, default None
        'balanced' (n / (n_classes · count)) or {label: weight}; multiplies the sample weights.
    weight_decay : float, optional
        AdamW's decoupled decay (solver='adamw' only; default 0.01).

    Attributes
    ----------
    coefs_, intercepts_ : list of array
        The fitted weights and biases, layer by layer.
    classes_ : array
        The class labels.
    loss_curve_ : list of float
        The loss after each epoch (Python floats on the host, on every backend; ``loss_`` the last).
    validation_scores_ : list of float or None
        With ``early_stopping``, the held-out accuracy after each epoch; ``best_validation_score_``
        its best, ``best_loss_`` None then (the least loss without early stopping).
    n_iter_ : int
        Epochs run.

    Notes
    -----
    ``sample_weight`` (fit, partial_fit) follows scikit-learn >= 1.7: the batch loss
    Σᵢ wᵢ ℓᵢ / Σᵢ wᵢ + α/(2 Σᵢ wᵢ)·Σₖ‖Wₖ‖²_F with gradient dL/dzᵢ = wᵢ (pᵢ − onehot(yᵢ)) / Σw; an
    integer weight k counts a sample k times (exactly so when a batch holds the whole data). A
    batch whose weights are all zero is skipped. ``class_weight`` multiplies these weights.

    With scikit-learn >= 1.9, ``set_callbacks`` takes ``sklearn.callback``'s callbacks: ``fit`` is a
    task with one ``epoch`` subtask per epoch (see ``xpmlp.estimator.hooks``).

    Examples
    --------
    >>> import numpy as np
    >>> from xpmlp import MLPClassifier
    >>> X = np.random.default_rng(0).normal(size=(200, 4))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> clf = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=50, random_state=0,
    ...                     device="cpu").fit(X, y)
    >>> clf.score(X, y) > 0.9
    True
    """

    def __init__(self, hidden_layer_sizes: Any = (100,), activation: str = "relu", *, solver: str = "adam",
                 alpha: float = 0.0001, batch_size: int | str = "auto", learning_rate: str = "constant",
                 learning_rate_init: float = 0.001, power_t: float = 0.5, max_iter: int = 200, shuffle: bool = True,
                 random_state: Any = None, tol: float = 1e-4, verbose: bool = False, warm_start: bool = False,
                 momentum: float = 0.9, nesterovs_momentum: bool = True, early_stopping: bool = False,
                 validation_fraction: float = 0.1, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, n_iter_no_change: int = 10, device: str = "auto", dtype: str = "auto",
                 dropout: float = 0.0, class_weight: Any = None, weight_decay: float | None = None) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.dtype = dtype
        self.dropout = dropout
        self.class_weight = class_weight
        self.weight_decay = weight_decay

    # -- fitting ---------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPClassifier:
        """Train on (X, y) for up to ``max_iter`` epochs (from the current weights with ``warm_start``)."""
        return self._fit(X, y, sample_weight, incremental=False, classes=None)

    def partial_fit(self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None) -> MLPClassifier:
        """One epoch over (X, y) from the current weights; ``classes`` (every label) on the first call.

        Keyword arguments work as in scikit-learn >= 1.7, whose order is (X, y, sample_weight, classes).
        """
        if not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
        elif classes is not None and not np.array_equal(unique_labels(classes), host(self.classes_)):
            raise ValueError(f"`classes={classes!r}` is not the same as on last call to partial_fit, "
                             f"was: {host(self.classes_)!r}")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    @with_callbacks  # the callbacks' teardown, however fit ends
    def _fit(self, X: Any, y: Any, sample_weight: Any, incremental: bool, classes: Any) -> MLPClassifier:
        s = resolve(self)
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        if incremental and self.class_weight == "balanced":
            raise ValueError("class_weight='balanced' needs the whole training set: use fit, or pass a dict")
        first = not self._has_model() or (not self.warm_start and not incremental)
        X, y_host, device_input = self._check_fit_input(X, y, first)
        y_idx, classes_host = self._targets(y_host, first, incremental, classes)
        w = self._weights(sample_weight, y_host, classes_host, len(y_idx))
        self._random_state = check_random_state(self.random_state)
        backend = self._fit_backend(X, device_input, first)
        if first:
            self._start(backend, int(X.shape[1]), classes_host, s)
        model = self._model_on(backend)
        if model is not self._model and self._best_params:  # warm start on another device: the best goes along
            self._best_params = {k: on_backend(backend, v) for k, v in self._best_params.items()}
        self._model = model
        self.classes_ = self._place_classes(classes_host, backend if device_input else None)
        self._io_spec = backend.spec if device_input else None
        data = self._device_data(model, X, y_idx, w, len(classes_host))
        if first:
            self._init_records(self.early_stopping)
        elif self.early_stopping and self.validation_scores_ is None:  # warm start switched early stopping on
            self.validation_scores_, self.best_validation_score_ = [], -math.inf
        if self.verbose and backend.note:
            print(backend.note)
        ctx = self._init_callback_context(task_name="partial_fit" if incremental else "fit",
                                          max_subtasks=1 if incremental else s.max_iter)
        hooks = EpochHooks(self, ctx, self._snapshot, X=X, y=classes_host[y_idx],
                           metadata=None if sample_weight is None else {"sample_weight": sample_weight})
        hooks.begin_fit()
        self._fit_stochastic(model, data, s, incremental, self.early_stopping and not incremental, hooks)
        hooks.end_fit()
        return self

    def _check_fit_input(self, X: Any, y: Any, reset: bool) -> tuple[Any, np.ndarray, bool]:
        """Validate X (kept on its device when it is a device array) and y (on the host)."""
        if y is not None and is_on_device(y) and not is_on_device(X):
            y = host(y)  # everything follows X
        if not is_on_device(X):
            dtype = (np.float64, np.float32) if self.dtype == "auto" else np.dtype(self.dtype)
            X, y = validate_data(self, X, y, reset=reset, dtype=dtype, multi_output=True)
            return X, y, False
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        self._check_device_x(X, reset)
        y = check_array(host(y), ensure_2d=False, dtype=None, input_name="y")
        if y.shape[0] != X.shape[0]:
            raise ValueError("Found input variables with inconsistent numbers of samples: "
                             f"[{X.shape[0]}, {y.shape[0]}]")
        return X, y, True

    def _check_device_x(self, X: Any, reset: bool) -> None:
        """scikit-learn's shape checks and messages, for an X that stays on its device."""
        if X.ndim != 2:
            raise ValueError(f"Expected 2D array, got {X.ndim}D array instead: reshape your data, "
                             "e.g. X.reshape(-1, 1) for a single feature")
        n, features = int(X.shape[0]), int(X.shape[1])
        if n < 1 or features < 1:
            raise ValueError(f"Found array with {n} sample(s) and {features} feature(s) (shape={tuple(X.shape)}) "
                             "while a minimum of 1 is required.")
        if reset:
            self.n_features_in_ = features
            self.__dict__.pop("feature_names_in_", None)
        elif features != self.n_features_in_:
            raise ValueError(f"X has {features} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input.")

    def _targets(self, y: np.ndarray, first: bool, incremental: bool, classes: Any) -> tuple[np.ndarray, np.ndarray]:
        """Class indices of y and the classes (host), checking them against earlier fits."""
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        kind = type_of_target(y)
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"y is {kind}: xpmlp's MLPClassifier predicts one label per sample; for several "
                             "labels use sklearn.multioutput.MultiOutputClassifier")
        present = unique_labels(y)
        if incremental and first:
            known = unique_labels(classes)
        elif first:
            known = present
        else:
            known = host(self.classes_)
            if self.warm_start and not incremental and set(present) != set(known):
                raise ValueError("warm_start can only be used where `y` has the same classes as in the previous "
                                 f"call to fit. Previously got {known}, `y` has {present}")
        if len(known) < 2:
            raise ValueError(f"y has only 1 class ({known[0]!r}); a classifier needs samples of at least 2 classes")
        idx = np.clip(np.searchsorted(known, y), 0, len(known) - 1)
        if not np.all(known[idx] == y):
            raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {known}. "
                             f"'y' has {present}.")
        return idx.astype(np.int64), known

    def _weights(self, sample_weight: Any, y: np.ndarray, classes: np.ndarray, n: int) -> np.ndarray | None:
        """Sample weights times class weights, host float64 (None: every sample counts once)."""
        w = sample_weights(sample_weight, n)
        if self.class_weight is None:
            return w
        y = column_or_1d(y) if y.ndim == 2 else y
        per_class = compute_class_weight(self.class_weight, classes=classes, y=y)
        per_sample = per_class[np.searchsorted(classes, y)]
        return per_sample if w is None else w * per_sample

    def _fit_backend(self, X: Any, device_input: bool, first: bool) -> Backend:
        """The device of this fit: X's for a device array, else ``device`` (first fit) or the model's."""
        if first:
            dtype = self.dtype if self.dtype != "auto" else self._input_dtype(X)
        else:
            dtype = self._arch["dtype"]
        if device_input:
            return backend_of(X, dtype)
        if first:
            return get_backend(self.device, dtype)
        return self._get_model().backend

    @staticmethod
    def _input_dtype(X: Any) -> str:
        if is_on_device(X):
            return "float32" if X.dtype == backend_of(X).xp.float32 else "float64"
        return "float32" if X.dtype == np.float32 else "float64"

    def _start(self, backend: Backend, n_features: int, classes: np.ndarray, s: Settings) -> None:
        """A new network with scikit-learn's initial weights (drawn from ``self._random_state``)."""
        sizes = [n_features, *s.hidden, len(classes)]
        weights = glorot_uniform(self._random_state, sizes, s.init_factor)
        seed = int(self._random_state.randint(2**31 - 1)) if s.dropout else 0  # no draw: scikit-learn's sequence
        self._arch = {"sizes": sizes, "activation": s.activation, "dtype": backend.dtype, "dropout": s.dropout,
                      "seed": seed}
        model = build_model(backend, self._arch)
        model.load_state_dict(weights)
        self._model, self._optimizer = model, None
        self.n_layers_, self.n_outputs_, self.out_activation_ = len(sizes), len(classes), "softmax"

    def _device_data(self, model: MLP, X: Any, y_idx: np.ndarray, w: np.ndarray | None, n_classes: int) -> FitData:
        """X, labels and weights on the model's device (host input: one copy each)."""
        backend = model.backend
        with backend.context():
            if is_on_device(X) and not backend.xp.isdtype(X.dtype, "real floating"):
                X = backend.xp.astype(X, backend.float_dtype())
            # host input was scanned for NaN/inf by validate_data already; a device array was not
            return FitData(X=model.check_x(X, assume_finite=not is_on_device(X)), y=backend.asarray(y_idx),
                           w=None if w is None else backend.asarray(w),
                           w_host=w, y_host=y_idx, n_classes=n_classes)

    # -- the model and where it lives ----------------------------------------------------------
    def _has_model(self) -> bool:
        return getattr(self, "_model", None) is not None or "_model_state" in self.__dict__

    def _get_model(self) -> MLP:
        """The trained network; after unpickling, rebuilt on first use (on the CPU when its device is gone)."""
        if getattr(self, "_model", None) is None:
            state = self.__dict__.pop("_model_state")
            spec = self.__dict__.pop("_model_spec", "cpu")
            model = build_model(self._usable_backend(spec), self._arch)
            model.load_state_dict(state)
            model.random.load_state(self.__dict__.pop("_dropout_state", model.random.state()))
            self._model = model
            best = self.__dict__.pop("_best_state", None)
            if best is not None:
                self._best_params = {k: model.backend.asarray(v) for k, v in best.items()}
            opt_state = self.__dict__.pop("_optimizer_state", None)
            if opt_state is not None:
                self._optimizer = make_solver(resolve(self), model.backend)
                self._optimizer.load_state_dict(opt_state, model.backend.asarray)
        return self._model

    def _usable_backend(self, spec: str) -> Backend:
        dtype = self._arch["dtype"]
        for candidate in (self._io_spec or spec, spec, self.device):
            if not backend_unavailable(candidate):
                return get_backend(candidate, dtype)
        warnings.warn(f"{type(self).__name__} was trained on {spec}, which is not usable here; "
                      "it predicts on the CPU (NumPy)", stacklevel=3)
        return get_backend("cpu", dtype)

    def _model_on(self, backend: Backend) -> MLP:
        """The network on ``backend``: itself, or a copy with the same weights (moved through the host)."""
        model = self._get_model()
        if model.backend == backend:
            return model
        other = build_model(backend, self._arch)
        other.load_state_dict(model.state_dict())
        other.random.load_state(model.random.state())
        return other

    def _snapshot(self) -> dict[str, Any]:
        """What makes a shallow copy predict as this estimator does now (a callback's ``fitted_estimator``).

        The network is copied on its device (later epochs update it in place); the copy has no optimizer.
        """
        model = self._model
        frozen = build_model(model.backend, self._arch)
        with model.backend.context():
            for name, value in model.params.items():
                frozen.set_param(name, value * 1.0)
        scores = self.validation_scores_
        return {"_model": frozen, "_optimizer": None, "_best_params": None, "loss_curve_": list(self.loss_curve_),
                "validation_scores_": None if scores is None else list(scores)}

    def _place_classes(self, classes: np.ndarray, backend: Backend | None) -> Array:
        """``classes_`` on the input's device when it is one and the labels are numbers, else on the host."""
        if backend is None or classes.dtype.kind not in "biuf":
            return classes
        return device_copy(backend, classes)

    # -- prediction -------------------------------------------------------------------------------
    def _checked_input(self, X: Any, method: str) -> tuple[MLP, Array, Backend | None]:
        """The network on X's device, X checked there, and the backend to answer on (None: NumPy)."""
        check_is_fitted(self)
        check_same_namespace(X, self._io_spec, type(self).__name__, method)
        model = self._get_model()
        if is_on_device(X):
            self._check_device_x(X, reset=False)
            backend = backend_of(X, model.dtype)
            model = self._model_on(backend)
            with backend.context():
                if not backend.xp.isdtype(X.dtype, "real floating"):
                    X = backend.xp.astype(X, backend.float_dtype())
            return model, model.check_x(X), backend
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        return model, model.check_x(X), None

    def predict(self, X: Any) -> Array:
        """Predicted labels (n_samples,): NumPy for host X, X's library and device for a device array."""
        model, X, out = self._checked_input(X, "predict")
        indices = class_indices(model, X)
        if out is not None:
            classes = self.classes_ if out.owns(self.classes_) else self._place_classes(host(self.classes_), out)
            if not isinstance(classes, np.ndarray):  # labels that are numbers: answered on X's device
                with out.context():
                    return out.xp.take(classes, indices)
        return host(self.classes_)[model.backend.to_numpy(indices)]

    def predict_proba(self, X: Any) -> Array:
        """Class probabilities (n_samples, n_classes) in the order of ``classes_``: softmax of the logits."""
        return self._probabilities(X, "predict_proba", log=False)

    def predict_log_proba(self, X: Any) -> Array:
        """log of ``predict_proba``, computed stably as z − max z − log Σ exp(z − max z)."""
        return self._probabilities(X, "predict_log_proba", log=True)

    def _probabilities(self, X: Any, method: str, log: bool) -> Array:
        model, X, out = self._checked_input(X, method)
        xp = model.xp
        parts = []
        for _, _, z in model.batched_logits(X):
            with model.backend.context():
                z = z - xp.max(z, axis=1, keepdims=True)
                total = xp.sum(xp.exp(z), axis=1, keepdims=True)
                parts.append(z - xp.log(total) if log else xp.exp(z) / total)
        with model.backend.context():
            result = xp.concat(parts, axis=0) if len(parts) != 1 else parts[0]
        return result if out is not None else model.backend.to_numpy(result)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean (weighted) accuracy of ``predict(X)`` against y, a Python float."""
        from sklearn.metrics import accuracy_score

        weights = None if sample_weight is None else host(sample_weight)
        return float(accuracy_score(host(y), host(self.predict(X)), sample_weight=weights))

    # -- fitted weights -------------------------------------------------------------------------
    coefs_ = _layer_property("W", "Weight matrices, ``coefs_[k]`` of shape (units of layer k, units of layer k+1).")
    intercepts_ = _layer_property("b", "Bias vectors, ``intercepts_[k]`` of shape (units of layer k+1,).")

    def _layer_arrays(self, kind: str) -> list[Array]:
        if not self._has_model():
            raise AttributeError(f"{type(self).__name__} is not fitted yet: it has no weights; call fit first")
        model = self._get_model()
        arrays = [model.params[f"{kind}{k}"] for k in range(1, len(self._arch["sizes"]))]
        if self._io_spec is None:
            return [model.backend.to_numpy(a) for a in arrays]
        with model.backend.context():
            return [a * 1.0 for a in arrays]  # copies on the device

    def _set_layer_arrays(self, kind: str, values: list[Any]) -> None:
        model = self._get_model()
        state = model.state_dict()
        count = len(self._arch["sizes"]) - 1
        if len(values) != count:
            raise ValueError(f"expected {count} arrays, one per layer, got {len(values)}")
        state.update({f"{kind}{k}": host(v) for k, v in enumerate(values, start=1)})
        model.load_state_dict(state)

    # -- scikit-learn's protocols ------------------------------------------------------------------
    def to_onnx(self, path: Any) -> Any:
        """Write the fitted network as an ONNX file (``xpmlp.export.onnx``; needs ``pip install 'xpmlp[onnx]'``).

        Input ``x`` (batch, n_features_in_) of the fit's dtype; outputs ``logits``, ``probabilities``
        (batch, n_classes) in the order of ``classes_``, and ``label`` (batch,) = ``predict``'s labels.
        For a whole Pipeline use ``skl2onnx.to_onnx`` (xpmlp registers its converter).

        Parameters
        ----------
        path : str or Path
            The file to write, atomically.

        Returns
        -------
        Path
            The file written.
        """
        from ..export.onnx import export_onnx

        if not self._has_model():
            raise AttributeError(f"{type(self).__name__} is not fitted yet: it has no weights; call fit first")
        return export_onnx(self._get_model(), path, classes=host(self.classes_).tolist())

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        tags.array_api_support = True
        tags.classifier_tags.multi_label = False
        return tags

    def __copy__(self) -> MLPClassifier:
        """A shallow copy: it shares the network on its device (pickling's state would copy it to the host)."""
        other = type(self).__new__(type(self))
        other.__dict__.update(self.__dict__)
        return other


def expected_failed_checks(estimator: MLPClassifier) -> dict[str, str]:
    """scikit-learn's estimator checks that xpmlp's MLPClassifier is known to fail, with the reason.

    For ``parametrize_with_checks(..., expected_failed_checks=expected_failed_checks)``.
    """
    return {}


__all__ = ["MLPClassifier", "expected_failed_checks", "glorot_uniform", "build_model"]
