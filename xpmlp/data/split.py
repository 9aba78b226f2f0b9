"""Seeded, stratified splits of host arrays: a validation split and a class-balanced subset."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError


def check_xy(x: np.ndarray, y: np.ndarray) -> None:
    """x (N, ...) and y (N,) must be NumPy arrays of the same length, y integer labels."""
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
        raise InputError(f"x and y must be NumPy arrays, got {type(x).__name__} and {type(y).__name__}")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"y must be a 1-D array of integer labels, got {y.dtype} of shape {y.shape}")
    if x.ndim < 1 or x.shape[0] != y.shape[0]:
        raise InputError(f"x has {x.shape[0] if x.ndim else 0} rows but y has {y.shape[0]} labels; they must match")


def check_count(value: Any, what: str) -> int:
    """A non-negative Python or NumPy integer (bools are refused: they are almost always a mistake)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InputError(f"{what} must be a non-negative integer, got {value!r}")
    return int(value)


def _stratified_pick(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices (n,), ascending, of n examples drawn per class in proportion to the class sizes.

    Class c gets floor(n * count_c / N); the few left over go to the classes with the largest
    remainders (ties to the smaller label), so the total is exactly n. Within a class the examples
    are the first ones of a seeded permutation of the whole set.
    """
    total = y.shape[0]
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    share = n * counts
    take = share // total
    leftover = n - int(take.sum())
    if leftover:
        # lexsort sorts by the last key first: remainder descending, then class order.
        order = np.lexsort((np.arange(counts.size), -(share % total)))
        take[order[:leftover]] += 1
    rng = np.random.default_rng(seed)
    perm = rng.permutation(total)
    cls = inverse[perm]
    by_class = np.argsort(cls, kind="stable")  # positions grouped by class, permutation order inside
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.empty(total, dtype=np.int64)
    rank[by_class] = np.arange(total) - np.repeat(starts, counts)
    return np.sort(perm[rank < take[cls]])


def train_val_split(x: np.ndarray, y: np.ndarray, val_size: int,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split off a stratified, seeded validation set of exactly ``val_size`` examples.

    Each class contributes ``val_size * (class share)`` examples (rounding fixed up so the total is
    exact); both parts keep the original order.

    Parameters
    ----------
    x : numpy.ndarray
        (N, ...) examples.
    y : numpy.ndarray
        (N,) labels.
    val_size : int
        Validation examples; 0 gives empty validation arrays.
    seed : int, default 0
        Seed of the draw.

    Returns
    -------
    x_train, y_train, x_val, y_val : numpy.ndarray
        (N - val_size, ...) and (val_size, ...) examples with their labels.

    Raises
    ------
    InputError
        Mismatched x/y, or ``val_size`` not in 0..len(y)-1.

    Examples
    --------
    >>> import numpy as np
    >>> from xpmlp.data import train_val_split
    >>> x, y = np.arange(10), np.array([0, 1] * 5)
    >>> [part.shape for part in train_val_split(x, y, 4)]
    [(6,), (6,), (4,), (4,)]
    """
    check_xy(x, y)
    val_size = check_count(val_size, "val_size")
    if val_size >= y.shape[0]:
        raise InputError(f"val_size {val_size} must be smaller than the {y.shape[0]} examples available "
                         "(some must remain for training); pass a smaller val_size")
    mask = np.zeros(y.shape[0], dtype=bool)
    if val_size:
        mask[_stratified_pick(y, val_size, seed)] = True
    return x[~mask], y[~mask], x[mask], y[mask]


def stratified_subset(x: np.ndarray, y: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded subset of exactly ``n`` examples with the class balance kept (for quick runs).

    Parameters
    ----------
    x : numpy.ndarray
        (N, ...) examples.
    y : numpy.ndarray
        (N,) labels.
    n : int
        How many to keep; ``n == N`` returns them all, in order.
    seed : int, default 0
        Seed of the draw.

    Returns
    -------
    x, y : numpy.ndarray
        (n, ...) examples and (n,) labels.

    Raises
    ------
    InputError
        Mismatched x/y, or ``n`` not in 1..len(y).
    """
    check_xy(x, y)
    n = check_count(n, "subset size")
    if n == 0 or n > y.shape[0]:
        raise InputError(f"subset size {n} must be between 1 and the {y.shape[0]} examples available")
    idx = _stratified_pick(y, n, seed)
    return x[idx], y[idx]
