"""The wording shared by every one-line DataError in xpmlp.data, and the label-range check."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError

CORRUPT = "the file is corrupt — delete it and run again to fetch a fresh copy"


def one_line(text: object) -> str:
    """Collapse whitespace so that every message stays on one line, as the error contract promises."""
    return " ".join(str(text).split())


def unreadable(path: Path | str, exc: OSError, what: str = "the file") -> DataError:
    """The DataError for an OSError while reading ``path`` (missing, a folder, no permission)."""
    return DataError(f"{path}: cannot read {what} ({one_line(exc.strerror or exc)}); "
                     "check that it exists and is readable")


def check_labels(labels: np.ndarray, n_classes: int, where: str) -> None:
    """Labels (N,) must be class indices 0..n_classes-1; otherwise a DataError naming ``where``."""
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        bad = int(labels.min()) if labels.min() < 0 else int(labels.max())
        raise DataError(f"{where}: label {bad} out of range 0..{n_classes - 1}; {CORRUPT}")
