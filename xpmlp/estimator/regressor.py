"""``MLPRegressor``: scikit-learn's multi-layer perceptron regressor, trained by xpmlp on any device.

A drop-in for ``sklearn.neural_network.MLPRegressor``: identity outputs scored by the half
squared error (``loss='squared_error'``, :func:`xpmlp.losses.squared_error`) or exponential
outputs scored by the half Poisson deviance (``loss='poisson'``), one output per target column,
every solver of :class:`~xpmlp.estimator.MLPClassifier` (L-BFGS included), ``score`` = R².
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils.metaestimators import available_if

from ..errors import InputError
from ..model import MLP
from .arrays import host
from .base import BaseMLP, all_logits
from .outputs import activate, r2

Array = Any

REGRESSION_LOSSES = {"squared_error": "identity", "poisson": "exp"}


class MLPRegressor(RegressorMixin, BaseMLP):
    """Multi-layer perceptron regressor with scikit-learn's interface, trained by xpmlp on any device.

    The parameters it shares with ``sklearn.neural_network.MLPRegressor`` have the same names,
    defaults and meaning; the others (``device``, ``dtype``, ``dropout``, ``weight_decay``) and
    the solvers and activations are those of :class:`~xpmlp.estimator.MLPClassifier`, whose
    docstring describes them.

    Parameters
    ----------
    loss : {"squared_error", "poisson"}, default "squared_error"
        Half squared error with identity outputs, or half Poisson deviance with outputs e^z
        (targets must then be >= 0 with a positive sum).
    hidden_layer_sizes : tuple of int, default (100,)
        The hidden widths.
    activation : str, default "relu"
        The hidden layers' activation (one name, or one per hidden layer).
    solver : str, default "adam"
        'lbfgs', 'sgd', 'adam', and xpmlp's 'momentum', 'nesterov', 'adamw'.
    alpha, batch_size, learning_rate, learning_rate_init, power_t, max_iter, shuffle, random_state : \
see MLPClassifier
        As scikit-learn's.
    tol, verbose, warm_start, momentum, nesterovs_momentum, early_stopping, validation_fraction : \
see MLPClassifier
        As scikit-learn's; early stopping scores the held-out rows by R².
    beta_1, beta_2, epsilon, n_iter_no_change, max_fun : see MLPClassifier
        As scikit-learn's.
    device, dtype, dropout, weight_decay : see MLPClassifier
        xpmlp's.

    Attributes
    ----------
    coefs_, intercepts_ : list of array
        The fitted weights and biases, layer by layer.
    loss_, loss_curve_, best_loss_, validation_scores_, best_validation_score_ : float, list
        As scikit-learn's (host Python floats). The squared loss is reported as scikit-learn
        does: averaged over the outputs.
    n_iter_, t_, n_layers_, n_outputs_, out_activation_ : int, int, int, int, str
        Epochs (L-BFGS iterations), samples seen, layers, outputs, and 'identity' or 'exp'.

    Examples
    --------
    >>> import numpy as np
    >>> from xpmlp import MLPRegressor
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> y = X @ np.array([1.0, -2.0, 0.5])
    >>> reg = MLPRegressor(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=500, random_state=0,
    ...                    device="cpu").fit(X, y)
    >>> reg.score(X, y) > 0.99
    True
    """

    _y_numeric = True

    def __init__(self, loss: str = "squared_error", hidden_layer_sizes: Any = (100,), activation: str = "relu", *,
                 solver: str = "adam", alpha: float = 0.0001, batch_size: int | str = "auto",
                 learning_rate: str = "constant", learning_rate_init: float = 0.001, power_t: float = 0.5,
                 max_iter: int = 200, shuffle: bool = True, random_state: Any = None, tol: float = 1e-4,
                 verbose: bool = False, warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False, validation_fraction: float = 0.1,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8, n_iter_no_change: int = 10,
                 max_fun: int = 15000, device: str = "auto", dtype: str = "auto", dropout: float = 0.0,
                 weight_decay: float | None = None) -> None:
        self._base_params(locals())

    class_weight = None  # the shared checks read it; regression has no classes

    # -- fitting ---------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """Train on (X, y), y of shape (n_samples,) or (n_samples, n_targets), for up to ``max_iter`` epochs."""
        return self._fit(X, y, sample_weight, incremental=False, classes=None)

    @available_if(lambda est: est._check_solver())
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over (X, y) from the current weights (stochastic solvers only)."""
        return self._fit(X, y, sample_weight, incremental=True, classes=None)

    def _encode_targets(self, y: np.ndarray, first: bool, incremental: bool,
                        classes: Any) -> tuple[np.ndarray, int, str, None]:
        """Float targets (n, K), the output units K and the output layer of ``loss`` (no labels)."""
        if self.loss not in REGRESSION_LOSSES:
            raise InputError(f"unknown loss {self.loss!r}; use one of: {', '.join(REGRESSION_LOSSES)}")
        targets = np.asarray(y, dtype=np.float64)
        if targets.ndim == 2 and targets.shape[1] == 1:
            from sklearn.utils import column_or_1d

            targets = column_or_1d(targets, warn=True)
        targets = targets.reshape(len(targets), -1)
        if self.loss == "poisson" and (np.any(targets < 0) or not np.sum(targets) > 0):
            raise ValueError("Some value(s) of y are out of the valid range of the loss 'poisson': y must be >= 0 "
                             "with a positive sum")
        outputs = targets.shape[1]
        if not first and outputs != self.n_outputs_:
            raise ValueError(f"y has {outputs} target column(s) but this regressor was fitted with {self.n_outputs_}; "
                             "fit afresh (warm_start=False) for other targets")
        return targets, outputs, REGRESSION_LOSSES[self.loss], None

    def _validation_score(self, model: MLP, X: Array, y: Array, w: Array | None) -> float:
        """R² on the held-out rows (NaN when a prediction is not finite, as scikit-learn's), one read."""
        xp = model.xp
        z = all_logits(model, X)
        with model.backend.context():
            predicted = activate(self.out_activation_, z, xp)
            finite = xp.astype(xp.all(xp.isfinite(predicted)), predicted.dtype)
            score, ok = model.backend.to_numpy(xp.stack([r2(predicted, y, w, xp), finite]))
        return float(score) if ok else math.nan

    # -- prediction -------------------------------------------------------------------------------
    def predict(self, X: Any) -> Array:
        """Predictions (n_samples,) for one target, (n_samples, n_targets) for several.

        NumPy for host X, X's library and device for a device array.
        """
        model, z, out = self._logits(X, "predict")
        xp = model.xp
        with model.backend.context():
            result = activate(self.out_activation_, z, xp)
            if result.shape[1] == 1:
                result = xp.reshape(result, (-1,))
        return result if out is not None else model.backend.to_numpy(result)

    def to_onnx(self, path: Any) -> Any:
        """Write the fitted network as an ONNX file (``xpmlp.export.onnx``; needs ``pip install 'xpmlp[onnx]'``).

        Traced through the network's own forward code. Input ``x`` (batch, ``n_features_in_``) of the fit's
        dtype; output ``predictions`` (batch, ``n_outputs_``) of that dtype, ``predict``'s values: the
        outputs themselves for ``loss='squared_error'``, e^z for ``loss='poisson'``. For a 1-D target
        ``predict`` gives (n,) and the graph (batch, 1): the same numbers, ``predictions[:, 0]``.
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
            If the regressor is not fitted.
        InputError
            If the onnx extra is missing (the line says what to install) or the folder does not exist.
        """
        from ..export.onnx import export_onnx

        model, head = self._onnx_network()
        return export_onnx(model, path, head=head)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """R² of ``predict(X)`` against y (averaged over targets), a Python float."""
        from sklearn.metrics import r2_score

        weights = None if sample_weight is None else host(sample_weight)
        return float(r2_score(host(y), host(self.predict(X)), sample_weight=weights))


__all__ = ["MLPRegressor", "REGRESSION_LOSSES"]
