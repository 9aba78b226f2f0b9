"""What ``MLPClassifier`` and ``MLPRegressor`` share: fitting on any device, the network, its weights.

scikit-learn's ``BaseMultilayerPerceptron`` on xpmlp: :class:`BaseMLP` checks the input, keeps
the network on the device the data lives on, runs the stochastic solvers
(:mod:`~xpmlp.estimator.loop`) or L-BFGS (:mod:`~xpmlp.estimator.lbfgs_fit`), and exposes the
fitted weights as ``coefs_`` / ``intercepts_``. The subclasses say how targets are encoded, which
output layer (:mod:`~xpmlp.estimator.outputs`) scores them, and how predictions read.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_array, check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from ..backend import Backend, backend_unavailable, get_backend
from ..layers import Dropout, Linear
from ..model import MLP
from ..sparse import is_sparse
from .arrays import backend_of, check_same_namespace, device_copy, host, is_on_device, on_backend, sample_weights
from .hooks import CallbackSupportMixin, EpochHooks, with_callbacks
from .lbfgs_fit import LbfgsLoop
from .loop import FitData, StochasticLoop, make_solver
from .outputs import LOSSES
from .params import Settings, resolve
from .pickling import PicklableOnDevice
from .weights import PendingWeights

Array = Any
SPARSE_FORMATS = ["csr", "csc"]  # SciPy sparse X: multiplied as it is by the first layer (xpmlp.sparse)


def _on_device(X: Any) -> bool:
    """Whether X lives on a device: a device array, or a ``cupyx.scipy.sparse`` matrix."""
    return is_on_device(X) or (is_sparse(X) and type(X).__module__.startswith("cupyx."))


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


def all_logits(model: MLP, X: Array) -> Array:
    """The logits (N, outputs) of an already checked X, computed in batches, on the model's device."""
    parts = [z for _, _, z in model.batched_logits(X)]
    with model.backend.context():
        return model.xp.concat(parts, axis=0) if len(parts) != 1 else parts[0]


class EstimatorMLP(MLP):
    """The estimators' network: an MLP whose output may be one unit (a logistic unit, one regression target).

    Its output layer and loss are the estimator's (:mod:`xpmlp.estimator.outputs`).
    """

    min_outputs = 1


def build_model(backend: Backend, arch: dict[str, Any]) -> MLP:
    """xpmlp's MLP for the estimator's architecture (sizes, activation, dropout and its seed).

    ``activation`` is one name or one per hidden layer; ``'identity'`` keeps that layer's Linear
    (and Dropout) only.
    """
    n_hidden = len(arch["sizes"]) - 2
    names = arch["activation"] if isinstance(arch["activation"], list) else [arch["activation"]] * n_hidden
    model = EstimatorMLP(arch["sizes"], [n if n != "identity" else "relu" for n in names] or "relu", backend=backend,
                dtype=backend.dtype, seed=arch["seed"], dropout=arch["dropout"])
    if "identity" in names:
        kept, hidden = [], -1
        for layer in model.net.layers:
            hidden += isinstance(layer, Linear)
            if layer.params or isinstance(layer, Dropout) or names[hidden] != "identity":
                kept.append(layer)
        model.net.layers = kept
    return model


class BaseMLP(CallbackSupportMixin, PendingWeights, StochasticLoop, LbfgsLoop, PicklableOnDevice, BaseEstimator):
    """The shared machinery of xpmlp's scikit-learn estimators (not used directly).

    Subclasses implement ``_encode_targets`` (host targets -> what the loss reads, the output
    layer, and the labels that ``_fitted_labels`` records once the fit goes ahead),
    ``_validation_score`` and the prediction methods.
    """

    out_activation_: str

    def _base_params(self, kw: dict[str, Any]) -> None:
        """Store the constructor's parameters untouched, as scikit-learn requires."""
        for name, value in kw.items():
            if name not in ("self", "__class__"):
                setattr(self, name, value)

    # -- fitting ---------------------------------------------------------------------------------
    def _check_solver(self) -> bool:
        """True for the stochastic solvers; for L-BFGS the AttributeError that hides ``partial_fit``."""
        if self.solver == "lbfgs":
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} is not "
                                 "stochastic.")
        return True

    @with_callbacks  # the callbacks' teardown, however fit ends
    def _fit(self, X: Any, y: Any, sample_weight: Any, incremental: bool, classes: Any) -> BaseMLP:
        s = resolve(self)
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        self._check_incremental(incremental)
        pending = None if self._has_model() else self._pending_weights()  # weights set on coefs_ before a fit
        first = (not self._has_model() and pending is None) or (not self.warm_start and not incremental)
        X, y_host, device_input = self._check_fit_input(X, y, first)
        targets, n_outputs, out, labels = self._encode_targets(y_host, first, incremental, classes)
        w = self._fit_weights(sample_weight, y_host, len(targets), labels)
        self._random_state = check_random_state(self.random_state)
        new = first or pending is not None
        backend = self._fit_backend(X, device_input, new)
        if new:  # scikit-learn ignores weights set by hand when a fit starts afresh
            self._start(backend, int(X.shape[1]), n_outputs, out, s, None if first else pending)
        model = self._model_on(backend)
        if model is not self._model and self._best_params:  # warm start on another device: the best goes along
            self._best_params = {k: on_backend(backend, v) for k, v in self._best_params.items()}
        self._model = model
        self._fitted_labels(labels, backend if device_input else None)
        self._io_spec = backend.spec if device_input else None
        data = self._device_data(model, X, targets, w, n_outputs)
        self._prepare_records(first, s)
        if self.verbose and backend.note:
            print(backend.note)
        stochastic = s.optimizer != "lbfgs"
        ctx = self._init_callback_context(task_name="partial_fit" if incremental else "fit",
                                          max_subtasks=(1 if incremental else s.max_iter) if stochastic else 0)
        hooks = EpochHooks(self, ctx, self._snapshot, X=X, y=y_host,
                           metadata=None if sample_weight is None else {"sample_weight": sample_weight})
        hooks.begin_fit()
        if stochastic:
            self._fit_stochastic(model, data, s, incremental, self.early_stopping and not incremental, hooks)
        else:
            self._fit_lbfgs(model, data, s)
        hooks.end_fit()
        return self

    def _prepare_records(self, fresh: bool, s: Settings) -> None:
        if s.optimizer == "lbfgs":  # scikit-learn's L-BFGS keeps no curve or best scores
            self.n_iter_, self.t_ = 0, 0
            for name in ("loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_"):
                self.__dict__.pop(name, None)
        elif fresh or not hasattr(self, "loss_curve_"):
            self._init_records(self.early_stopping)
        elif self.early_stopping and self.validation_scores_ is None:  # warm start switched early stopping on
            self.validation_scores_, self.best_validation_score_ = [], -math.inf

    def _check_incremental(self, incremental: bool) -> None:
        """Refuse what a subclass cannot do one batch at a time (nothing here)."""

    def _loss(self) -> Any:
        """The loss of the output layer (``outputs.LOSSES``)."""
        return LOSSES[self.out_activation_]

    def _fit_weights(self, sample_weight: Any, y: np.ndarray, n: int, labels: Any) -> np.ndarray | None:
        """Host float64 sample weights (None: every sample counts once)."""
        return sample_weights(sample_weight, n)

    def _check_fit_input(self, X: Any, y: Any, reset: bool) -> tuple[Any, np.ndarray, bool]:
        """Validate X (kept on its device when it is a device array) and y (on the host)."""
        if y is not None and is_on_device(y) and not _on_device(X):
            y = host(y)  # everything follows X
        if not _on_device(X):
            dtype = (np.float64, np.float32) if self.dtype == "auto" else np.dtype(self.dtype)
            X, y = validate_data(self, X, y, reset=reset, dtype=dtype, multi_output=True,
                                 y_numeric=self._y_numeric, accept_sparse=SPARSE_FORMATS)
            return X, y, False
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        self._check_device_x(X, reset)
        y = check_array(host(y), ensure_2d=False, dtype="numeric" if self._y_numeric else None, input_name="y")
        if y.shape[0] != X.shape[0]:
            raise ValueError("Found input variables with inconsistent numbers of samples: "
                             f"[{X.shape[0]}, {y.shape[0]}]")
        return X, y, True

    _y_numeric = False

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

    def _fit_backend(self, X: Any, device_input: bool, new: bool) -> Backend:
        """The device of this fit: X's for a device array, else ``device`` (a new network) or the model's."""
        if new:
            dtype = self.dtype if self.dtype != "auto" else self._input_dtype(X)
        else:
            dtype = self._arch["dtype"]
        if device_input:
            return backend_of(X.data if is_sparse(X) else X, dtype)  # a cupyx matrix: its data's device
        if new:
            return get_backend(self.device, dtype)
        return self._get_model().backend

    @staticmethod
    def _input_dtype(X: Any) -> str:
        if is_sparse(X):
            return "float32" if str(X.dtype) == "float32" else "float64"
        if is_on_device(X):
            return "float32" if X.dtype == backend_of(X).xp.float32 else "float64"
        return "float32" if X.dtype == np.float32 else "float64"

    def _start(self, backend: Backend, n_features: int, n_outputs: int, out: str, s: Settings,
               pending: dict[str, np.ndarray] | None) -> None:
        """A new network: scikit-learn's initial weights (drawn from ``self._random_state``), or the weights
        the user set on ``coefs_`` / ``intercepts_`` before this fit."""
        sizes = [n_features, *s.hidden, n_outputs]
        if pending is not None:
            weights = self._check_pending(pending, sizes)
        else:
            weights = glorot_uniform(self._random_state, sizes, s.init_factor)
        seed = int(self._random_state.randint(2**31 - 1)) if s.dropout else 0  # no draw: scikit-learn's sequence
        self._arch = {"sizes": sizes, "activation": s.activation, "dtype": backend.dtype, "dropout": s.dropout,
                      "seed": seed}
        model = build_model(backend, self._arch)
        model.load_state_dict(weights)
        self._model, self._optimizer = model, None
        self.__dict__.pop("_pending_W", None)  # weights set by hand are the network's now, or were overruled
        self.__dict__.pop("_pending_b", None)
        self.n_layers_, self.n_outputs_, self.out_activation_ = len(sizes), n_outputs, out

    def _device_data(self, model: MLP, X: Any, targets: np.ndarray, w: np.ndarray | None, n_outputs: int) -> FitData:
        """X, targets and weights on the model's device (host input: one copy each)."""
        backend = model.backend
        with backend.context():
            if is_on_device(X) and not is_sparse(X) and not backend.xp.isdtype(X.dtype, "real floating"):
                X = backend.xp.astype(X, backend.float_dtype())
            y = backend.asarray(targets) if targets.dtype.kind == "i" else backend.asarray(targets.astype(
                np.float64 if model.dtype == "float64" else np.float32))
            # host input was scanned for NaN/inf by validate_data already; a device array was not
            return FitData(X=model.check_x(X, assume_finite=not _on_device(X)), y=y,
                           w=None if w is None else backend.asarray(w),
                           w_host=w, y_host=targets, n_classes=n_outputs)

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
        scores = getattr(self, "validation_scores_", None)
        return {"_model": frozen, "_optimizer": None, "_best_params": None,
                "loss_curve_": list(getattr(self, "loss_curve_", [])),
                "validation_scores_": None if scores is None else list(scores)}

    def _fitted_labels(self, labels: Any, backend: Backend | None) -> None:
        """Record ``_encode_targets``'s labels (classifiers: on the input's device); nothing for regressors."""

    def _place_classes(self, classes: np.ndarray, backend: Backend | None) -> Array:
        """``classes_`` on the input's device when it is one and the labels are numbers, else on the host."""
        if backend is None or classes.dtype.kind not in "biuf":
            return classes
        return device_copy(backend, classes)

    # -- prediction -------------------------------------------------------------------------------
    def _checked_input(self, X: Any, method: str) -> tuple[MLP, Array, Backend | None]:
        """The network on X's device, X checked there, and the backend to answer on (None: NumPy)."""
        check_is_fitted(self, "n_layers_")
        check_same_namespace(X, self._io_spec, type(self).__name__, method)
        model = self._get_model()
        if _on_device(X):
            self._check_device_x(X, reset=False)
            backend = backend_of(X.data if is_sparse(X) else X, model.dtype)
            model = self._model_on(backend)
            with backend.context():
                if not is_sparse(X) and not backend.xp.isdtype(X.dtype, "real floating"):
                    X = backend.xp.astype(X, backend.float_dtype())
            return model, model.check_x(X), backend
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32), accept_sparse=SPARSE_FORMATS)
        return model, model.check_x(X), None

    def _logits(self, X: Any, method: str) -> tuple[MLP, Array, Backend | None]:
        """The network, its logits of X (N, n_outputs_) on the network's device, and the answering backend."""
        model, X, out = self._checked_input(X, method)
        return model, all_logits(model, X), out

    def _onnx_network(self) -> tuple[MLP, str]:
        """The fitted network to export and its ONNX head (``xpmlp.export.onnx.HEADS``): here the output
        activation itself, 'identity' or 'exp' (classifiers override it)."""
        if not self._has_model():
            raise AttributeError(f"{type(self).__name__} is not fitted yet: it has no weights; call fit first")
        return self._get_model(), self.out_activation_

    # -- scikit-learn's protocols ------------------------------------------------------------------
    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = True
        tags.array_api_support = True
        return tags

    def __copy__(self) -> BaseMLP:
        """A shallow copy: it shares the network on its device (pickling's state would copy it to the host)."""
        other = type(self).__new__(type(self))
        other.__dict__.update(self.__dict__)
        return other
