"""The estimators' output layers: scikit-learn's ``out_activation_``, its loss, and its scores, on the device.

=========== ========================== ================================ =======================
output      used for                   loss (``xpmlp.losses``)          prediction
=========== ========================== ================================ =======================
softmax     more than two classes      ``softmax_cross_entropy``        argmax of the logits
logistic    two classes, multilabel    ``sigmoid_cross_entropy``        z > 0 (σ(z) > ½)
identity    regression                 ``squared_error``                the outputs
exp         Poisson regression         ``poisson_deviance``             e^z
=========== ========================== ================================ =======================

Each pairs an output activation with its canonical loss, so dL/dz = w·(activation(z) − y)/Σw
in every case, as scikit-learn's backpropagation assumes. The loss values are scikit-learn's
(``squared_error`` reports the mean over outputs, see its docstring).
"""

from __future__ import annotations

import functools
from typing import Any

from ..layers import sigmoid
from ..losses import poisson_deviance, sigmoid_cross_entropy, softmax, softmax_cross_entropy, squared_error

Array = Any

LOSSES = {
    "softmax": softmax_cross_entropy,
    "logistic": sigmoid_cross_entropy,
    "identity": functools.partial(squared_error, mean_over_outputs=True),
    "exp": poisson_deviance,
}


def activate(out_activation: str, z: Array, xp: Any) -> Array:
    """The output activation of logits ``z``: softmax, σ, identity or exp.

    Parameters
    ----------
    out_activation : str
        'softmax', 'logistic', 'identity' or 'exp' (``out_activation_``).
    z : array
        (N, K) logits on the device.
    xp : namespace
        Their Array API namespace.

    Returns
    -------
    array
        (N, K) outputs: probabilities, or the regression predictions.
    """
    if out_activation == "softmax":
        return softmax(z, xp)
    if out_activation == "logistic":
        return sigmoid(xp, z)
    if out_activation == "exp":
        return xp.exp(z)
    return z


def decisions(out_activation: str, z: Array, xp: Any) -> Array:
    """A classifier's decisions from its logits.

    Parameters
    ----------
    out_activation : str
        'softmax' or 'logistic'.
    z : array
        (N, K) logits on the device.
    xp : namespace
        Their Array API namespace.

    Returns
    -------
    array
        Class indices (N,) for softmax (argmax), booleans (N, K) for logistic (z > 0, i.e. σ(z) > ½).
    """
    if out_activation == "softmax":
        return xp.argmax(z, axis=1)
    return z > 0


def accuracy(out_activation: str, z: Array, targets: Array, w: Array | None, xp: Any, dtype: Any) -> Array:
    """(Weighted) accuracy of logits against encoded targets.

    Softmax targets are class indices; logistic targets (N, K) in {0, 1}: a sample counts as right
    when every one of its K outputs is (scikit-learn's subset accuracy for multilabel).

    Parameters
    ----------
    out_activation : str
        'softmax' or 'logistic'.
    z : array
        (N, K) logits.
    targets : array
        (N,) class indices or (N, K) 0/1 targets.
    w : array or None
        (N,) sample weights.
    xp : namespace
        The arrays' Array API namespace.
    dtype : dtype
        The floating dtype to count in.

    Returns
    -------
    array
        0-d accuracy on the device.
    """
    predicted = decisions(out_activation, z, xp)
    right = predicted == targets if out_activation == "softmax" else xp.all(predicted == (targets > 0.5), axis=1)
    right = xp.astype(right, dtype)
    return xp.mean(right) if w is None else xp.sum(right * w) / xp.sum(w)


def r2(predicted: Array, targets: Array, w: Array | None, xp: Any) -> Array:
    """Coefficient of determination R² = 1 − Σ w (y − ŷ)² / Σ w (y − ȳ)², averaged over outputs.

    scikit-learn's ``r2_score`` with ``multioutput='uniform_average'``: an output whose targets are
    constant scores 1 when predicted exactly, else 0.

    Parameters
    ----------
    predicted, targets : array
        (N, K) predictions ŷ and targets y.
    w : array or None
        (N,) sample weights.
    xp : namespace
        The arrays' Array API namespace.

    Returns
    -------
    array
        0-d R² on the device.
    """
    weights = 1.0 if w is None else w[:, None]
    total = xp.sum(weights * xp.ones_like(targets), axis=0)
    mean = xp.sum(weights * targets, axis=0) / total
    residual = xp.sum(weights * (targets - predicted) ** 2, axis=0)
    spread = xp.sum(weights * (targets - mean) ** 2, axis=0)
    exact = xp.astype(residual == 0, targets.dtype)
    score = xp.where(spread > 0, 1.0 - residual / xp.where(spread > 0, spread, 1.0), exact)
    return xp.mean(score)
