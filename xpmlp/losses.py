"""Losses: softmax cross-entropy (optionally sample-weighted) and the L2 weight penalty, each with its gradient.

Each function takes the namespace ``xp`` of the arrays' backend (``backend.xp``) from its
caller; new arrays are created on the current device, so call them inside
``backend.context()`` (the model's methods do).
"""

from __future__ import annotations

from typing import Any

Array = Any


def one_hot_mask(labels: Array, num_classes: int, xp: Any) -> Array:
    """Boolean (N, C) mask with True at ``[i, labels[i]]`` (no fancy indexing needed).

    Parameters
    ----------
    labels : array
        (N,) integer class indices in [0, C), on the device.
    num_classes : int
        C, the number of classes.
    xp : namespace
        The arrays' Array API namespace (``backend.xp``).

    Returns
    -------
    array
        (N, C) boolean mask on the labels' device.
    """
    return labels[:, None] == xp.arange(num_classes, device=labels.device)


def softmax(logits: Array, xp: Any) -> Array:
    """Row-wise softmax pᵢⱼ = exp(zᵢⱼ − maxₖ zᵢₖ) / Σₗ exp(zᵢₗ − maxₖ zᵢₖ): the class probabilities.

    The row maximum is subtracted first, so large logits cannot overflow. This is the one
    definition behind ``predict_proba`` on every backend and the exported ONNX graph.

    Parameters
    ----------
    logits : array
        (N, C) floating scores.
    xp : namespace
        The arrays' Array API namespace (``backend.xp``).

    Returns
    -------
    array
        (N, C) probabilities, each row summing to 1.
    """
    z = xp.exp(logits - xp.max(logits, axis=1, keepdims=True))
    return z / xp.sum(z, axis=1, keepdims=True)


def softmax_cross_entropy(logits: Array, labels: Array, xp: Any,
                          weights: Array | None = None) -> tuple[Array, Array]:
    """Mean (or weighted mean) softmax cross-entropy and its gradient.

    With ℓᵢ = log Σⱼ exp(zᵢⱼ) − z_{i,yᵢ} and pᵢ = softmax(zᵢ):

    * unweighted: L = (1/N) Σᵢ ℓᵢ, dlogits = (p − onehot(y)) / N;
    * weighted: L = Σᵢ wᵢ ℓᵢ / Σᵢ wᵢ, dlogits = wᵢ (pᵢ − onehot(yᵢ)) / Σₖ wₖ
      (scikit-learn's convention since 1.7: an integer weight k counts a sample k times,
      and weights all equal give the unweighted loss).

    The row maximum is subtracted first (log-sum-exp), so logits of 1e4 stay finite. The
    weights' sum is taken on the device: nothing here synchronises with the host.

    Parameters
    ----------
    logits : array
        (N, C) floating scores.
    labels : array
        (N,) integer class indices in [0, C).
    xp : namespace
        The arrays' Array API namespace (``backend.xp``).
    weights : array, optional
        (N,) non-negative sample weights w (not all zero), on the device.

    Returns
    -------
    loss : array
        0-d array on the device (read it with ``float()`` only when you need it).
    dlogits : array
        (N, C) gradient of the loss with respect to ``logits``.
    """
    n, c = logits.shape
    shifted = logits - xp.max(logits, axis=1, keepdims=True)
    exp = xp.exp(shifted)
    total = xp.sum(exp, axis=1, keepdims=True)
    mask = one_hot_mask(labels, c, xp)
    if weights is None:
        # one whole-array sum of ℓᵢ = log Σⱼ exp − z_{i,yᵢ} (in each row's true-class cell): the
        # same number as a per-row mean, in fewer small calls per step
        loss = xp.sum(xp.where(mask, xp.log(total) - shifted, 0.0)) * (1.0 / n)
        scale: Any = 1.0 / n
    else:
        if weights.dtype != logits.dtype:
            weights = xp.astype(weights, logits.dtype)
        scale = weights / xp.sum(weights)  # wᵢ / Σw, (N,)
        per_sample = xp.log(total[:, 0]) - xp.sum(xp.where(mask, shifted, 0.0), axis=1)
        loss = xp.sum(scale * per_sample)
        scale = scale[:, None]
    exp /= total  # exp is ours: it becomes the softmax in place
    dlogits = xp.where(mask, exp - 1.0, exp)
    dlogits *= scale
    return loss, dlogits


def l2_penalty(weights: list[Array], reg: float, xp: Any) -> tuple[Array | float, list[Array]]:
    """L2 penalty ½·λ·Σ_k ‖W_k‖²_F over weight matrices only (biases are not penalised).

    The penalty is not divided by the batch size and uses the Frobenius norm (sum of squared
    entries), the convention of cs231n and scikit-learn's ``alpha`` up to its 1/n.

    Parameters
    ----------
    weights : list of array
        The weight matrices W_k.
    reg : float
        λ, the L2 strength.
    xp : namespace
        The arrays' Array API namespace.

    Returns
    -------
    penalty : array or float
        ½·λ·Σ_k ‖W_k‖²_F (0-d, on the device); ``0.0`` when λ = 0, which costs nothing.
    grads : list of array
        λ·W_k for each matrix (``[]`` when λ = 0).
    """
    if reg == 0.0:
        return 0.0, []
    return l2_value(weights, reg, xp), [reg * w for w in weights]


def l2_value(weights: list[Array], reg: float, xp: Any) -> Array:
    """½·λ·Σ_k ‖W_k‖²_F alone (see :func:`l2_penalty`).

    Parameters
    ----------
    weights : list of array
        The weight matrices W_k.
    reg : float
        λ, the L2 strength.
    xp : namespace
        The arrays' Array API namespace.

    Returns
    -------
    array
        A 0-d array on the weights' device.
    """
    # ‖W‖²_F as the inner product of the flattened matrix with itself (matmul of two vectors, in the
    # standard): one pass, no (W ⊙ W) temporary. NumPy runs it as BLAS dot, as fast as vecdot was and
    # 5× faster than xp.sum(W * W) (784×100 float32: 10.7 vs 48.9 µs). Not vecdot: array-api-compat's
    # vecdot conjugates a copy and runs a GEMM per parameter on CuPy. Few array calls: this runs every step.
    total: Array | float = 0.0
    for i, w in enumerate(weights):
        flat = xp.reshape(w, (-1,))
        squares = flat @ flat
        total = squares if i == 0 else total + squares
    return total * (0.5 * reg)
