"""Preprocessor: flatten images to float32 rows and normalise them with training-split statistics."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..errors import InputError

PREPROCESS_METHODS: tuple[str, ...] = ("scale", "standardize", "mean-image")

# Rows per chunk when accumulating statistics, so CIFAR-10 does not need a float64 copy of the whole set.
_STATS_CHUNK = 4096


def _as_array(images: Any) -> np.ndarray:
    """Images as a plain ndarray: NumPy arrays (subclasses such as np.matrix become plain) and nested lists."""
    if images is None:
        raise InputError("images are None; give a NumPy array of shape (N, ...) with one row per image")
    if isinstance(images, (str, bytes)):
        raise InputError(f"images must be a NumPy array of shape (N, ...), got {type(images).__name__}")
    try:
        return np.asarray(images)
    except ValueError as exc:  # nested lists of different lengths: NumPy >= 1.24 refuses them
        raise InputError(f"images are ragged (rows of different lengths: {' '.join(str(exc).split())[:200]}); "
                         "give a NumPy array of shape (N, ...) whose rows all have one shape") from None
    except TypeError as exc:
        raise InputError(f"images must be a NumPy array of shape (N, ...), not {type(images).__name__} "
                         f"({' '.join(str(exc).split())[:200]})") from None


def _rows(images: Any) -> np.ndarray:
    """Images (N, ...) -> rows (N, features), without copying when possible; refuses non-numbers and NaN/inf."""
    images = _as_array(images)
    if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
        raise InputError(f"images must hold numbers, got dtype {images.dtype}")
    if images.ndim < 2:
        raise InputError(f"images must be an array of shape (N, ...) with one row per image, got shape {images.shape}")
    features = math.prod(images.shape[1:])
    if features == 0:
        raise InputError(f"images of shape {images.shape} have no features; each image needs at least one value")
    if np.issubdtype(images.dtype, np.floating) and not np.isfinite(images).all():
        raise InputError("images contain NaN or infinite values; clean the data first")
    # An explicit feature count, not -1: reshape cannot infer it for zero rows (an empty val split).
    return images.reshape(images.shape[0], features)


class Preprocessor:
    """Flatten images to float32 rows and normalise them, with statistics from the training split only.

    Fit on the training split after the validation split is taken, then transform every split.
    ``state_dict()``/``from_state_dict()`` save and restore it exactly. ``mean`` and ``std`` are
    float32 (features,) once fitted, where the method uses them.

    Parameters
    ----------
    method : {"scale", "standardize", "mean-image"}, default "scale"
        ``scale``: pixels / 255, in [0, 1]. ``standardize``: per feature, subtract the training mean
        and divide by the training standard deviation (1 where a feature never varies, e.g. MNIST's
        empty corners). ``mean-image``: subtract the training mean image from the raw 0-255 pixels
        (the CIFAR-10 homework).

    Raises
    ------
    InputError
        An unknown method.
    """

    def __init__(self, method: str = "scale") -> None:
        if method not in PREPROCESS_METHODS:
            raise InputError(f"unknown preprocessing method {method!r}; known: {', '.join(PREPROCESS_METHODS)}")
        self.method = method
        self.n_features: int | None = None
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"Preprocessor(method={self.method!r}, n_features={self.n_features})"

    def fit(self, x_train: ArrayLike) -> Preprocessor:
        """Learn the statistics of the training images (uint8, any (N, ...) shape, or nested lists); returns self."""
        rows = _rows(x_train)
        if rows.shape[0] == 0:
            raise InputError("cannot fit a Preprocessor on zero images")
        self.n_features = int(rows.shape[1])
        if self.method == "scale":
            return self
        # Accumulate in float64 in chunks: exact enough for 0-255 data, and bounded memory.
        total = np.zeros(rows.shape[1], dtype=np.float64)
        total_sq = np.zeros(rows.shape[1], dtype=np.float64)
        for start in range(0, rows.shape[0], _STATS_CHUNK):
            chunk = rows[start:start + _STATS_CHUNK].astype(np.float64)
            total += chunk.sum(axis=0)
            total_sq += np.einsum("ij,ij->j", chunk, chunk)
        mean = total / rows.shape[0]
        self.mean = mean.astype(np.float32)
        if self.method == "standardize":
            std = np.sqrt(np.maximum(total_sq / rows.shape[0] - mean * mean, 0.0))
            # A constant feature would divide by zero; dividing by 1 leaves it at 0 after centring.
            std[std < 1e-6] = 1.0
            self.std = std.astype(np.float32)
        return self

    def transform(self, images: ArrayLike) -> np.ndarray:
        """Images (N, ...) -> float32 (N, H*W*C), normalised with the fitted statistics."""
        rows = _rows(images)
        if self.n_features is not None and rows.shape[1] != self.n_features:
            raise InputError(f"images have {rows.shape[1]} features per example but the Preprocessor was fitted on "
                             f"{self.n_features}; use the same data set and image shape")
        out = rows.astype(np.float32)  # always a fresh array, so the in-place steps below are safe
        if self.method == "scale":
            out *= np.float32(1.0 / 255.0)
            return out
        if self.mean is None:
            raise InputError(f"Preprocessor({self.method!r}) must be fitted on the training images before transform")
        out -= self.mean
        if self.method == "standardize":
            assert self.std is not None
            out /= self.std
        return out

    def state_dict(self) -> dict[str, np.ndarray | str]:
        """Everything needed to rebuild this Preprocessor, as str and NumPy arrays (npz/JSON friendly)."""
        state: dict[str, np.ndarray | str] = {"method": self.method}
        if self.n_features is not None:
            state["n_features"] = np.asarray(self.n_features, dtype=np.int64)
        if self.mean is not None:
            state["mean"] = self.mean.copy()
        if self.std is not None:
            state["std"] = self.std.copy()
        return state

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> Preprocessor:
        """Rebuild a Preprocessor from ``state_dict()`` output (values may come back as 0-d arrays from npz)."""
        if "method" not in state:
            raise InputError(f"Preprocessor state lacks 'method' (keys: {sorted(state)})")
        pre = cls(str(np.asarray(state["method"]).item()) if isinstance(state["method"], np.ndarray)
                  else str(state["method"]))
        if "n_features" in state:
            pre.n_features = int(np.asarray(state["n_features"]))
        for key in ("mean", "std"):
            if key in state:
                value = np.asarray(state[key], dtype=np.float32).reshape(-1)
                if pre.n_features is not None and value.shape[0] != pre.n_features:
                    raise InputError(f"Preprocessor state {key!r} has {value.shape[0]} values, expected "
                                     f"{pre.n_features}; the state is damaged")
                setattr(pre, key, value)
        needed = {"standardize": ("mean", "std"), "mean-image": ("mean",)}.get(pre.method, ())
        missing = [k for k in needed if getattr(pre, k) is None]
        if missing:
            raise InputError(f"Preprocessor state for {pre.method!r} lacks {', '.join(missing)}; the state is damaged")
        return pre
