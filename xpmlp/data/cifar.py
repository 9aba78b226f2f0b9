"""CIFAR-10 python batches, from a batches folder or read in place from the tar.gz, with a restricted unpickler."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import DataError
from .messages import CORRUPT, check_labels, one_line, unreadable
from .registry import CIFAR_META, CIFAR_TEST, CIFAR_TRAIN, CLASS_NAMES


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode`` that only does what pickle protocol 2 uses it for.

    Python 3 writes ``bytes`` under protocol 2 as ``_codecs.encode(text, "latin1")``, so batches
    re-pickled by Python 3 need it; any other codec is refused rather than run.
    """
    if not isinstance(text, str) or encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin-1", errors)


# Everything the CIFAR-10 batches need to be rebuilt: NumPy array reconstruction (under its NumPy 1 and
# NumPy 2 module names) and latin-1 bytes. No other global is ever looked up, so nothing else can run.
_NDARRAY_RECONSTRUCT = np.ndarray.__reduce__(np.empty(0))[0]
_PICKLE_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _NDARRAY_RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _NDARRAY_RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in _PICKLE_ALLOWED and refuses the rest."""

    def __init__(self, file: BinaryIO, where: str) -> None:
        # encoding="bytes": the real batches are Python 2 pickles whose str keys must stay bytes.
        super().__init__(file, encoding="bytes")
        self._where = where

    def find_class(self, module: str, name: str) -> Any:
        """Return an allowed global; anything else is a DataError (the file is not a plain batch)."""
        try:
            return _PICKLE_ALLOWED[(module, name)]
        except KeyError:
            raise DataError(f"{self._where}: refusing to unpickle {module}.{name}, which a CIFAR-10 batch never "
                            f"contains; the file is corrupt or not a CIFAR-10 batch — delete it and run again "
                            f"to fetch a fresh copy") from None


def _unpickle_dict(blob: bytes, where: str) -> dict[str, Any]:
    """Load one pickled dict with _CifarUnpickler, keys as str; every failure is a DataError naming the file.

    Python 2 batches have bytes keys, batches re-pickled by Python 3 str keys.
    """
    try:
        obj = _CifarUnpickler(io.BytesIO(blob), where).load()
    except DataError:
        raise
    except Exception as exc:  # a corrupt pickle can raise almost anything (EOFError, ValueError, KeyError...)
        raise DataError(f"{where}: not a readable CIFAR-10 pickle ({type(exc).__name__}: {one_line(exc)}); "
                        f"{CORRUPT}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a pickled dict, found {type(obj).__name__}; {CORRUPT}")
    return {(k.decode("latin-1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def _parse_batch(blob: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch -> (uint8 images (N, 32, 32, 3), int64 labels (N,))."""
    batch = _unpickle_dict(blob, where)
    if "data" not in batch or "labels" not in batch:
        raise DataError(f"{where}: batch lacks 'data' or 'labels' (keys: {sorted(batch)}); {CORRUPT}")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{where}: 'data' is {desc}, expected uint8 (N, 3072); {CORRUPT}")
    try:
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{where}: 'labels' is not a list of integers; {CORRUPT}") from None
    if labels.shape != (data.shape[0],):
        raise DataError(f"{where}: {data.shape[0]} images but {labels.size} labels; {CORRUPT}")
    # Rows are channel-major (all red, then green, then blue, each 32x32 row-major); make them HWC.
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return images, labels


def _parse_meta(blob: bytes, where: str) -> list[str]:
    """Class names from batches.meta."""
    meta = _unpickle_dict(blob, where)
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
