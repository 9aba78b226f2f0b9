"""``MLPClassifier``: scikit-learn's multi-layer perceptron classifier, trained by xpmlp on any device.

A drop-in for ``sklearn.neural_network.MLPClassifier``: the same parameters mean the same
training (initialisation, shuffling, minibatches, L2 penalty, learning rates, stopping rules and
L-BFGS follow scikit-learn's; see :mod:`xpmlp.estimator.loop` and :mod:`xpmlp.estimator.lbfgs_fit`)
and the same output layers (:mod:`xpmlp.estimator.outputs`), plus ``device``, ``dtype``,
``class_weight``, ``dropout`` and xpmlp's activations and solvers. Device arrays stay on their
device.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils import column_or_1d
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels

from ..backend import Backend
from ..errors import InputError
from ..layers import sigmoid
from ..model import MLP
from ..sparse import is_sparse
from .arrays import host
from .base import BaseMLP, all_logits, build_model, glorot_uniform
from .outputs import accuracy, decisions

Array = Any


class MLPClassifier(ClassifierMixin, BaseMLP):
    """Multi-layer perceptron classifier with scikit-learn's interface, trained by xpmlp on any device.

    A drop-in for ``sklearn.neural_network.MLPClassifier``: the parameters it shares with it have
    the same names, defaults and meaning, and the same output layers: a softmax for more than two
    classes, one logistic unit for two (``n_outputs_ == 1``; ``predict_proba`` has two columns) and
    one logistic unit per label for a multilabel indicator matrix y. Arrays stay
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
        'lbfgs', 'sgd', 'adam', and xpmlp's 'momentum', 'nesterov', 'adamw'. 'sgd' is Nesterov SGD
        when ``nesterovs_momentum`` (default), classic momentum otherwise, plain SGD at
        ``momentum=0``. 'lbfgs' is full-batch L-BFGS on the device (:mod:`xpmlp.estimator.lbfgs_fit`);
        ``partial_fit`` then does not exist, as in scikit-learn.
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
        Epochs at most (iterations for 'lbfgs').
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
    max_fun : int, default 15000
        'lbfgs' only: loss evaluations at most.
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
        The class labels (``arange(K)`` for a multilabel y of K columns).
    n_outputs_, n_layers_, out_activation_ : int, int, str
        Output units, layers (input and output included), and 'softmax' or 'logistic'.
    loss_curve_ : list of float
        The loss after each epoch (Python floats on the host, on every backend; ``loss_`` the last).
    validation_scores_ : list of float or None
        With ``early_stopping``, the held-out accuracy after each epoch; ``best_validation_score_``
        its best, ``best_loss_`` None then (the least loss without early stopping).
    n_iter_ : int
        Epochs run (L-BFGS iterations for 'lbfgs', which records no ``loss_curve_``).
    t_ : int
        Training samples seen by the stochastic solvers.

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
                 epsilon: float = 1e-8, n_iter_no_change: int = 10, max_fun: int = 15000, device: str = "auto",
                 dtype: str = "auto", dropout: float = 0.0, class_weight: Any = None,
                 weight_decay: float | None = None) -> None:
        self._base_params(locals())

    # -- fitting ---------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPClassifier:
        """Train on (X, y) for up to ``max_iter`` epochs (from the current weights with ``warm_start``).

        y: labels (n_samples,), or a multilabel indicator matrix (n_samples, n_labels) of 0/1.
        """
        return self._fit(X, y, sample_weight, incremental=False, classes=None)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None) -> MLPClassifier:
        """One epoch over (X, y) from the current weights; ``classes`` (every label) on the first call.

        The arguments in scikit-learn's (>= 1.7) order. Only the stochastic solvers have it
        (``hasattr(clf, "partial_fit")`` is False for 'lbfgs').
        """
        if not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
        elif classes is not None and not np.array_equal(unique_labels(classes), host(self.classes_)):
            raise ValueError(f"`classes={classes!r}` is not the same as on last call to partial_fit, "
                             f"was: {host(self.classes_)!r}")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _check_incremental(self, incremental: bool) -> None:
        if incremental and self.class_weight == "balanced":
            raise ValueError("class_weight='balanced' needs the whole training set: use fit, or pass a dict")

    def _encode_targets(self, y: np.ndarray, first: bool, incremental: bool,
                        classes: Any) -> tuple[np.ndarray, int, str, tuple[np.ndarray, bool]]:
        """What the loss reads (class indices, or 0/1 floats (n, K)), the output units, the output layer, and
        the labels: (classes, multilabel), recorded by ``_fitted_labels`` only once the fit goes ahead."""
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        kind = type_of_target(y)
        fresh = first or not hasattr(self, "classes_")
        if kind == "multilabel-indicator":
            return self._multilabel_targets(y, fresh)
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"y is {kind}: xpmlp's MLPClassifier predicts one label per sample, or a 0/1 "
                             "indicator matrix for several labels; for several multiclass outputs use "
                             "sklearn.multioutput.MultiOutputClassifier")
        present = unique_labels(y)
        if fresh:
            known = unique_labels(classes) if incremental else present
        else:
            if getattr(self, "_multilabel", False):
                raise ValueError("this classifier was fitted on a multilabel indicator matrix; y must be one too "
                                 "(or fit afresh with warm_start=False)")
            known = host(self.classes_)
            if self.warm_start and not incremental and set(present) != set(known):
                raise ValueError("warm_start can only be used where `y` has the same classes as in the previous "
                                 f"call to fit. Previously got {known}, `y` has {present}")
        idx = np.clip(np.searchsorted(known, y), 0, len(known) - 1)
        if not np.all(known[idx] == y):
            raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {known}. "
                             f"'y' has {present}.")
        labels = (known, False)
        if len(known) <= 2:  # one logistic unit, as scikit-learn: the target is "is it classes_[1]" (never, for
            return (idx == 1).astype(np.float64)[:, None], 1, "logistic", labels  # one class: always predicted)
        return idx.astype(np.int64), len(known), "softmax", labels

    def _multilabel_targets(self, y: np.ndarray, fresh: bool) -> tuple[np.ndarray, int, str, tuple[np.ndarray, bool]]:
        labels = y.shape[1]
        if not fresh and (not getattr(self, "_multilabel", False) or len(host(self.classes_)) != labels):
            raise ValueError(f"y is a multilabel indicator matrix of {labels} labels but this classifier was fitted "
                             f"on {len(host(self.classes_))} classes of another kind; fit afresh (warm_start=False)")
        if self.class_weight is not None:
            raise ValueError("class_weight is not supported for multilabel y; weight the samples with "
                             "sample_weight instead")
        sparse = is_sparse(y)  # scikit-learn's LabelBinarizer answers a sparse y with a sparse predict
        dense = y.toarray() if sparse else y
        return np.asarray(dense, dtype=np.float64), labels, "logistic", (np.arange(labels), True, sparse)

    def _fit_weights(self, sample_weight: Any, y: np.ndarray, n: int, labels: Any) -> np.ndarray | None:
        """Sample weights times class weights, host float64 (None: every sample counts once)."""
        w = super()._fit_weights(sample_weight, y, n, labels)
        if self.class_weight is None:
            return w
        y = column_or_1d(y) if y.ndim == 2 else y
        classes = labels[0]
        per_class = compute_class_weight(self.class_weight, classes=classes, y=y)
        per_sample = per_class[np.searchsorted(classes, y)]
        return per_sample if w is None else w * per_sample

    def _fitted_labels(self, labels: tuple[np.ndarray, bool], backend: Backend | None) -> None:
        self.classes_, self._multilabel = self._place_classes(labels[0], backend), labels[1]
        self._sparse_labels = bool(labels[2]) if len(labels) > 2 else False

    def _stratified_split(self, data: Any) -> bool:
        return self.n_outputs_ == 1

    def _validation_score(self, model: MLP, X: Array, y: Array, w: Array | None) -> float:
        """Accuracy on the held-out rows (subset accuracy for multilabel), one read."""
        z = all_logits(model, X)
        with model.backend.context():
            return float(accuracy(self.out_activation_, z, y, w, model.xp, model.backend.float_dtype()))

    # -- prediction -------------------------------------------------------------------------------
    def predict(self, X: Any) -> Array:
        """Predicted labels (n_samples,), or the 0/1 indicator matrix (n_samples, n_labels) for multilabel.

        NumPy for host X, X's library and device for a device array.
        """
        model, z, out = self._logits(X, "predict")
        xp = model.xp
        with model.backend.context():
            decided = decisions(self.out_activation_, z, xp)
            if self._multilabel:
                indicator = xp.astype(decided, xp.int64)
                if out is not None:
                    return indicator
                host_indicator = model.backend.to_numpy(indicator)
                if getattr(self, "_sparse_labels", False):
                    from scipy.sparse import csr_matrix

                    return csr_matrix(host_indicator)
                return host_indicator
            indices = decided if self.out_activation_ == "softmax" else xp.astype(decided[:, 0], xp.int64)
            if len(host(self.classes_)) == 1:  # fitted on one class: scikit-learn predicts it whatever z says
                indices = xp.zeros_like(indices)
        if out is not None:
            classes = self.classes_ if out.owns(self.classes_) else self._place_classes(host(self.classes_), out)
            if not isinstance(classes, np.ndarray):  # labels that are numbers: answered on X's device
                with out.context():
                    return out.xp.take(classes, indices)
        return host(self.classes_)[model.backend.to_numpy(indices)]

    def predict_proba(self, X: Any) -> Array:
        """Class probabilities (n_samples, n_classes) in the order of ``classes_`` (per label for multilabel).

        Softmax of the logits; for two classes [1 − σ(z), σ(z)] of the one logistic unit.
        """
        return self._probabilities(X, "predict_proba", log=False)

    def predict_log_proba(self, X: Any) -> Array:
        """log of ``predict_proba``: log-softmax computed stably (log-sum-exp); for logistic outputs the log
        of the probabilities, as scikit-learn (−inf where one rounds to 0)."""
        return self._probabilities(X, "predict_log_proba", log=True)

    def _probabilities(self, X: Any, method: str, log: bool) -> Array:
        model, z, out = self._logits(X, method)
        xp = model.xp
        with model.backend.context():
            if self.out_activation_ == "softmax":
                z = z - xp.max(z, axis=1, keepdims=True)
                total = xp.sum(xp.exp(z), axis=1, keepdims=True)
                result = z - xp.log(total) if log else xp.exp(z) / total
            else:
                if not self._multilabel:  # [1 − σ(z), σ(z)] = [σ(−z), σ(z)]
                    z = xp.concat([-z, z], axis=1)
                # log of the probabilities themselves, as scikit-learn: where σ rounds to 1 for several
                # labels their log-probabilities tie as the probabilities do (argmax agrees)
                result = sigmoid(xp, z)
                if log:
                    result = xp.log(result)
        return result if out is not None else model.backend.to_numpy(result)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean (weighted) accuracy of ``predict(X)`` against y (subset accuracy for multilabel), a Python float."""
        from sklearn.metrics import accuracy_score

        weights = None if sample_weight is None else host(sample_weight)
        def dense(a: Any) -> np.ndarray:  # a sparse indicator matrix (y, or predict's for a sparse fit)
            return a.toarray() if is_sparse(a) else host(a)

        return float(accuracy_score(dense(y), dense(self.predict(X)), sample_weight=weights))

    # -- scikit-learn's protocols ------------------------------------------------------------------
    def _softmax_model(self) -> MLP:
        """A network whose softmax is ``predict_proba``: the network itself, or for two classes one whose
        logits are [0, z] (softmax([0, z]) = [1 − σ(z), σ(z)])."""
        model = self._get_model()
        if self.out_activation_ == "softmax":
            return model
        if self._multilabel:  # the callers take _onnx_network's sigmoid head for it
            raise InputError("a multilabel MLPClassifier has no softmax network: its labels are independent "
                             "sigmoids; export it with to_onnx")
        sizes = self._arch["sizes"]
        state, last = model.state_dict(), len(sizes) - 1
        state[f"W{last}"] = np.concatenate([np.zeros_like(state[f"W{last}"]), state[f"W{last}"]], axis=1)
        state[f"b{last}"] = np.concatenate([np.zeros_like(state[f"b{last}"]), state[f"b{last}"]])
        two = build_model(model.backend, dict(self._arch, sizes=[*sizes[:-1], 2]))
        two.load_state_dict(state)
        return two

    def _onnx_network(self) -> tuple[MLP, str]:
        """The network to export and its head: the logistic units as 'sigmoid' for a multilabel y, else
        :meth:`_softmax_model` as 'softmax'."""
        model, _ = super()._onnx_network()
        return (model, "sigmoid") if self._multilabel else (self._softmax_model(), "softmax")

    def to_onnx(self, path: Any) -> Any:
        """Write the fitted network as an ONNX file (``xpmlp.export.onnx``; needs ``pip install 'xpmlp[onnx]'``).

        Input ``x`` (batch, ``n_features_in_``) of the fit's dtype. One label per sample: outputs ``logits``,
        ``probabilities`` (batch, n_classes) in the order of ``classes_`` (= ``predict_proba``), and
        ``label`` (batch,) = ``predict``'s labels; for two classes the logits are [0, z] of the one
        logistic unit z. Multilabel (fitted on an indicator matrix of K columns): ``logits`` (batch, K),
        ``probabilities`` (batch, K) the per-label σ(z) (= ``predict_proba``), and ``label``
        (batch, K) int64, the indicator matrix ``predict`` returns (z > 0, as ``predict`` decides).
        For a whole Pipeline use ``skl2onnx.to_onnx`` after
        :func:`xpmlp.export.sklearn_onnx.register_skl2onnx`.

        Parameters
        ----------
        path : str or Path
            The file to write, atomically.

        Returns
        -------
        Path
            The file written.

        Raises
        ------
        AttributeError
            If the classifier is not fitted.
        InputError
            If the onnx extra is missing (the line says what to install) or the folder does not exist.
        """
        from ..export.onnx import export_onnx

        model, head = self._onnx_network()
        return export_onnx(model, path, classes=host(self.classes_).tolist(), head=head)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


def expected_failed_checks(estimator: MLPClassifier) -> dict[str, str]:
    """scikit-learn's estimator checks that xpmlp's MLPClassifier is known to fail, with the reason.

    For ``parametrize_with_checks(..., expected_failed_checks=expected_failed_checks)``.
    """
    return {}


__all__ = ["MLPClassifier", "expected_failed_checks", "glorot_uniform", "build_model"]
