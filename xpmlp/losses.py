"""Losses: softmax cross-entropy and the L2 weight penalty, each returning its gradient.

Each function takes the namespace ``xp`` of the arrays' backend (``backend.xp``) from its
caller; new arrays are created on the current device, so call them inside
``backend.context()`` (the model's methods do).
"""

from __future__ import annotations

from typing import Any

Array = Any


def one_hot_mask(labels: Array, num_classes: int, xp: Any) -> Array:
    """Boolean (N, C) mask with True at [i, labels[i]] (no fancy indexing needed)."""
    return labels[:, None] == xp.arange(num_classes, device=labels.device)


def softmax_cross_entropy(logits: Array, labels: Array, xp: Any) -> tuple[Array, Array]:
    """Mean softmax cross-entropy and its gradient.

    Args:
        logits: (N, C) floating scores.
        labels: (N,) integer class indices in [0, C).

    Returns:
        ``(loss, dlogits)``: loss is a 0-d array on the device (read it with ``float()``
        only when you need it), L = (1/N) Σᵢ [log Σⱼ exp(zᵢⱼ) − z_{i,yᵢ}];
        dlogits = (softmax(z) − onehot(y)) / N, shape (N, C).

    The row maximum is subtracted first (log-sum-exp), so logits of 1e4 stay finite.
    """
    n, c = logits.shape
    shifted = logits - xp.max(logits, axis=1, keepdims=True)
    exp = xp.exp(shifted)
    total = xp.sum(exp, axis=1, keepdims=True)
    mask = one_hot_mask(labels, c, xp)
    # whole-array sums rather than a per-row mean: the same number, fewer small calls per step
    loss = (xp.sum(xp.log(total)) - xp.sum(xp.where(mask, shifted, 0.0))) * (1.0 / n)
    exp /= total  # exp is ours: it becomes the softmax in place
    dlogits = xp.where(mask, exp - 1.0, exp)
    dlogits *= 1.0 / n
    return loss, dlogits


def l2_penalty(weights: list[Array], reg: float, xp: Any) -> tuple[Array | float, list[Array]]:
    """L2 penalty ½·λ·Σ_k ‖W_k‖²_F over weight matrices only (biases are not penalised).

    Returns ``(penalty, [λ·W_k])``. The penalty is not divided by the batch size and uses
    the Frobenius norm (sum of squared entries), the convention of cs231n and scikit-learn's
    ``alpha`` up to its 1/n. With λ = 0 it returns ``(0.0, [])`` and costs nothing.
    """
    if reg == 0.0:
        return 0.0, []
    penalty = 0.5 * reg * sum(xp.sum(w * w) for w in weights)
    return penalty, [reg * w for w in weights]
