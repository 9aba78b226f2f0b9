"""CIFAR-10 python batches, from a batches folder or read in place from the tar.gz.

The pickles are read by :mod:`~xpmlp.data.unpickle`'s restricted unpickler; each batch must then have the
known layout: ``data`` uint8 rows of 3,072 (an (N, 3072) array, or N * 3072 raw bytes), ``labels`` N
integers, N at most 10,000 (the real batches have exactly 10,000; tests use smaller copies).
"""

from __future__ import annotations

import gzip
import os
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .messages import CORRUPT, check_labels, one_line, unreadable
from .registry import CIFAR_META, CIFAR_TEST, CIFAR_TRAIN, CLASS_NAMES
from .unpickle import unpickle_dict

# Rows per batch file in the real data set; a batch claiming more is not CIFAR-10 (smaller copies are fine).
CIFAR_BATCH_ROWS = 10_000
CIFAR_ROW = 3072  # 32 x 32 pixels x 3 channels, channel-major


def _batch_rows(data: Any, where: str) -> np.ndarray:
    """A batch's ``data`` as uint8 (N, 3072) rows: an (N, 3072) uint8 array or N * 3072 raw bytes, N <= 10,000."""
    if isinstance(data, (bytes, bytearray)) and len(data) % CIFAR_ROW == 0:
        data = np.frombuffer(data, dtype=np.uint8).reshape(-1, CIFAR_ROW)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR_ROW:
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else f"{type(data).__name__}"
        if isinstance(data, (bytes, bytearray)):
            desc += f" of {len(data)} bytes, not a multiple of {CIFAR_ROW}"
        raise DataError(f"{where}: 'data' is {desc}, expected uint8 (N, {CIFAR_ROW}); {CORRUPT}")
    if data.shape[0] > CIFAR_BATCH_ROWS:
        raise DataError(f"{where}: 'data' has {data.shape[0]} rows but a CIFAR-10 batch has {CIFAR_BATCH_ROWS}; "
                        f"the file is not a CIFAR-10 batch — delete it and run again to fetch a fresh copy")
    return data


def _batch_labels(labels: Any, n: int, where: str) -> np.ndarray:
    """A batch's ``labels``: n integers (a list, as in the real files, or a 1-D integer array) -> int64 (n,)."""
    if isinstance(labels, np.ndarray):
        ok = labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer)
    else:
        ok = isinstance(labels, (list, tuple)) and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in labels)
    if not ok:
        raise DataError(f"{where}: 'labels' is not a list of integers; {CORRUPT}")
    if len(labels) != n:
        raise DataError(f"{where}: {n} images but {len(labels)} labels; {CORRUPT}")
    try:
        return np.asarray(labels, dtype=np.int64)
    except OverflowError:
        raise DataError(f"{where}: 'labels' holds integers too large for a class index; {CORRUPT}") from None


def _parse_batch(blob: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch -> (uint8 images (N, 32, 32, 3), int64 labels (N,))."""
    batch = unpickle_dict(blob, where)
    if "data" not in batch or "labels" not in batch:
        raise DataError(f"{where}: batch lacks 'data' or 'labels' (keys: {sorted(batch)}); {CORRUPT}")
    data = _batch_rows(batch["data"], where)
    labels = _batch_labels(batch["labels"], data.shape[0], where)
    # Rows are channel-major (all red, then green, then blue, each 32x32 row-major); make them HWC.
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return images, labels


def _parse_meta(blob: bytes, where: str) -> list[str]:
    """Class names from batches.meta."""
    meta = unpickle_dict(blob, where)
    names = meta.get("label_names")
    if not isinstance(names, list) or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataError(f"{where}: no 'label_names' list; {CORRUPT}")
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names]


_WANTED = (*CIFAR_TRAIN, CIFAR_TEST, CIFAR_META)


def _read_folder(folder: Path) -> dict[str, bytes]:
    """Raw bytes of the batch files present in a batches folder."""
    blobs: dict[str, bytes] = {}
    for fname in _WANTED:
        path = folder / fname
        if path.is_file():
            try:
                blobs[fname] = path.read_bytes()
            except OSError as exc:
                raise unreadable(path, exc) from None
    return blobs


def _read_archive(archive: Path) -> dict[str, bytes]:
    """Raw bytes of the batch files in the tar.gz archive, read in place (nothing is extracted)."""
    blobs: dict[str, bytes] = {}
    try:
        # Iterate in archive order: a gzip stream cannot seek back cheaply, so one pass reads everything.
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if base in _WANTED and member.isfile() and base not in blobs:
                    handle = tar.extractfile(member)
                    if handle is not None:
                        blobs[base] = handle.read()
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{archive}: truncated or corrupt archive ({one_line(exc)}); {CORRUPT}") from None
    except OSError as exc:
        raise unreadable(archive, exc, "the archive") from None
    return blobs


def load_cifar(location: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """All of CIFAR-10 from a batches folder or the archive.

    Returns:
        (x_train uint8 (50000, 32, 32, 3), y_train int64 (50000,), x_test, y_test, class names)
        for the real data; smaller batches give smaller N.
    """
    blobs = _read_folder(location) if location.is_dir() else _read_archive(location)
    missing = [f for f in (*CIFAR_TRAIN, CIFAR_TEST) if f not in blobs]
    if missing:
        raise DataError(f"{location}: missing CIFAR-10 batch file(s) {', '.join(missing)}; "
                        f"the copy is incomplete — delete it and run again to fetch a fresh copy")
    sep = "!" if location.is_file() else os.sep  # name the member inside an archive as archive!member
    parts = [_parse_batch(blobs[f], f"{location}{sep}{f}") for f in CIFAR_TRAIN]
    x_test, y_test = _parse_batch(blobs[CIFAR_TEST], f"{location}{sep}{CIFAR_TEST}")
    classes = list(CLASS_NAMES["cifar10"])
    if CIFAR_META in blobs:
        classes = _parse_meta(blobs[CIFAR_META], f"{location}{sep}{CIFAR_META}")
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    check_labels(y_train, len(classes), f"{location} (training batches)")
    check_labels(y_test, len(classes), f"{location}{sep}{CIFAR_TEST}")
    return x_train, y_train, x_test, y_test, classes
