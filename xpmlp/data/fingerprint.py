"""A fingerprint of the data a model trains on, so that resuming on other data is caught.

``data_fingerprint`` is ``"sha256:<64 hex digits>"``, the SHA-256 of

1. one ASCII header line, ``xpmlp-data-v1 <name> <preprocess> <shapes and dtypes of the four arrays>``,
2. then the raw bytes of the training images, the training labels (int64 little-endian), the
   validation images and the validation labels, exactly as split (row order included), before
   preprocessing (the uint8 pixels as stored).

So it changes with the files' contents, ``subset``, ``val_size``, ``seed`` and the preprocessing method
(the statistics follow from the training split and the method), and it does not change with where the
files lie, how they were found (root, cache, system folder, download), the test set or ``test_subset``.
Hashing the 60,000 Fashion-MNIST training images (47 MB) takes a few hundredths of a second.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import numpy as np

from ..errors import DataError, InputError

FINGERPRINT_VERSION = "xpmlp-data-v1"
_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}")


def _array_bytes(array: Any, what: str, labels: bool) -> np.ndarray:
    """A C-contiguous array with a platform-independent byte layout (labels as int64 little-endian)."""
    if not isinstance(array, np.ndarray):
        raise InputError(f"{what} must be a NumPy array to fingerprint, got {type(array).__name__}")
    if labels:
        return np.ascontiguousarray(array, dtype="<i8")
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return np.ascontiguousarray(array)


def data_fingerprint(name: str, preprocess: str, x_train: np.ndarray, y_train: np.ndarray,
                     x_val: np.ndarray, y_val: np.ndarray) -> str:
    """``"sha256:..."`` of the training and validation split (see the module docstring for what it covers)."""
    parts = [_array_bytes(x_train, "x_train", False), _array_bytes(y_train, "y_train", True),
             _array_bytes(x_val, "x_val", False), _array_bytes(y_val, "y_val", True)]
    shapes = " ".join(f"{a.dtype.str}{list(a.shape)}".replace(" ", "") for a in parts)
    digest = hashlib.sha256(f"{FINGERPRINT_VERSION} {name} {preprocess} {shapes}\n".encode())
    for part in parts:
        digest.update(memoryview(part).cast("B"))
    return "sha256:" + digest.hexdigest()


def check_fingerprint(expected: str, prepared: Any, where: str) -> None:
    """Raise a one-line DataError unless ``prepared`` (a Prepared, or a fingerprint string) matches ``expected``.

    ``where`` names what ``expected`` came from (a checkpoint's path), for the message.
    """
    actual = prepared if isinstance(prepared, str) else prepared.fingerprint
    for value in (expected, actual):
        if not isinstance(value, str) or not _FINGERPRINT.fullmatch(value):
            raise DataError(f"{where}: {value!r} is not an xpmlp data fingerprint ('sha256:' and 64 hex digits); "
                            "the checkpoint is damaged or was not written by xpmlp")
    if actual != expected:
        source = "" if isinstance(prepared, str) else f" from {prepared.source}"
        raise DataError(f"{where}: the training data differ from those the checkpoint was trained on (data "
                        f"fingerprint {actual}{source}, checkpoint {expected}); resume with the same data files, "
                        "subset, val_size, seed and preprocessing, or start a new run")
