"""IDX files (MNIST, Fashion-MNIST): read one file, or the four of a data set cross-checked."""

from __future__ import annotations

import gzip
import math
import os
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import DataError, InputError
from .messages import CORRUPT, check_labels, one_line, unreadable
from .registry import CLASS_NAMES, IMAGE_SHAPES

# IDX type codes -> big-endian NumPy dtypes (the format stores multi-byte numbers big-endian).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_KINDS = {"images": (0x00000803, "uint8 images"), "labels": (0x00000801, "uint8 labels")}
# Deflate cannot compress better than about 1032:1, so a header promising more than this many bytes per
# compressed byte is corrupt; checking it first avoids allocating gigabytes for a garbage header.
_MAX_GZIP_RATIO = 1100


def read_idx(path: str | os.PathLike[str], kind: str | None = None) -> np.ndarray:
    """Read one IDX file (gzipped or raw) into a native-endian NumPy array of the shape its header gives.

    The magic number, the dimensions and the length (which must equal what the header implies, no
    more and no less) are checked.

    Parameters
    ----------
    path : str or path
        The file (``.gz`` or raw).
    kind : {"images", "labels"}, optional
        Insist on images (magic 0x00000803, uint8 (N, H, W)) or labels (magic 0x00000801, uint8 (N,));
        None accepts any valid IDX file.

    Returns
    -------
    numpy.ndarray
        The array, shaped as the header says.

    Raises
    ------
    DataError
        Any problem, in one line naming the file.
    """
    path = Path(path)
    if kind is not None and kind not in _IDX_KINDS:
        raise InputError(f"unknown IDX kind {kind!r}; known: {', '.join(_IDX_KINDS)}")
    try:
        with open(path, "rb") as raw:
            size = os.fstat(raw.fileno()).st_size
            gzipped = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            if gzipped:
                with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                    return _parse_idx(stream, path, kind, max_payload=size * _MAX_GZIP_RATIO, exact=None)
            if path.suffix == ".gz":
                raise DataError(f"{path}: not gzip data (bad gzip header); {CORRUPT}")
            return _parse_idx(raw, path, kind, max_payload=size, exact=size)
    except DataError:
        raise
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        # EOFError: the gzip stream stops early; BadGzipFile/zlib.error: bad CRC, bad header, garbage.
        raise DataError(f"{path}: truncated or corrupt gzip data ({one_line(exc)}); {CORRUPT}") from None
    except OSError as exc:
        raise unreadable(path, exc) from None


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    """Read n bytes or fewer at the end of the stream (gzip streams may return short reads)."""
    chunks = []
    while n > 0:
        chunk = stream.read(n)
        if not chunk:
            break
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_header(stream: BinaryIO, path: Path, kind: str | None) -> tuple[np.dtype, tuple[int, ...]]:
    """The magic number and dimensions at the start of an IDX stream -> (big-endian dtype, dims)."""
    head = _read_exact(stream, 4)
    if len(head) < 4:
        raise DataError(f"{path}: file too short for an IDX header ({len(head)} bytes); {CORRUPT}")
    magic = int.from_bytes(head, "big")
    if kind is not None:
        expected, what = _IDX_KINDS[kind]
        if magic != expected:
            raise DataError(f"{path}: wrong magic number 0x{magic:08x} (expected 0x{expected:08x} for {what}); "
                            f"{CORRUPT}")
    elif head[:2] != b"\0\0" or head[2] not in _IDX_DTYPES or head[3] == 0:
        raise DataError(f"{path}: wrong magic number 0x{magic:08x} (not an IDX file); {CORRUPT}")
    ndim = head[3]
    raw_dims = _read_exact(stream, 4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError(f"{path}: truncated IDX header (expected {ndim} dimensions); {CORRUPT}")
    dims = tuple(int.from_bytes(raw_dims[4 * i:4 * i + 4], "big") for i in range(ndim))
    if any(d == 0 for d in dims[1:]):
        raise DataError(f"{path}: IDX header has a zero dimension {dims}; {CORRUPT}")
    return np.dtype(_IDX_DTYPES[head[2]]), dims


def _parse_idx(stream: BinaryIO, path: Path, kind: str | None, max_payload: int, exact: int | None) -> np.ndarray:
    """Parse an IDX stream: header, dimensions, then exactly the data the header promises.

    ``exact`` is the file's size when it is known (raw files), ``max_payload`` a bound on the data bytes.
    """
    dtype, dims = _read_header(stream, path, kind)
    header_len = 4 + 4 * len(dims)
    payload = math.prod(dims) * dtype.itemsize
    if exact is not None and exact != header_len + payload:
        raise DataError(f"{path}: file is {exact} bytes but its header {dims} implies {header_len + payload}; "
                        f"{'truncated' if exact < header_len + payload else 'extra bytes at the end'}, {CORRUPT}")
    if payload > max_payload:
        raise DataError(f"{path}: IDX header {dims} promises {payload} bytes, more than the file can hold; "
                        f"{CORRUPT}")
    # Read straight into the final array: no intermediate bytes object, and the result is writable.
    out = np.empty(math.prod(dims), dtype=dtype)
    view = memoryview(out.view(np.uint8))
    got = 0
    while got < payload:
        n = stream.readinto(view[got:])
        if not n:
            break
        got += n
    if got < payload:
        raise DataError(f"{path}: truncated: header {dims} implies {payload} data bytes but only {got} are there; "
                        f"{CORRUPT}")
    if stream.read(1):
        raise DataError(f"{path}: extra bytes after the {payload} data bytes its header {dims} implies; {CORRUPT}")
    out = out.reshape(dims)
    return out if dtype.isnative or dtype.itemsize == 1 else out.astype(dtype.newbyteorder("="))


def load_idx_set(name: str, files: Mapping[str, Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The four IDX files of ``name`` (keyed by base name) -> (x_train, y_train, x_test, y_test), cross-checked.

    Images come back uint8 (N, H, W, 1), labels int64 (N,).
    """
    out = []
    for split in ("train", "t10k"):
        img_path, lab_path = files[f"{split}-images-idx3-ubyte"], files[f"{split}-labels-idx1-ubyte"]
        images = read_idx(img_path, "images")
        labels = read_idx(lab_path, "labels").astype(np.int64)
        if images.shape[0] != labels.shape[0]:
            raise DataError(f"{img_path}: {images.shape[0]} images but {lab_path.name} has {labels.shape[0]} labels; "
                            "one of the two is corrupt — delete both and run again to fetch fresh copies")
        h, w, _ = IMAGE_SHAPES[name]
        if images.shape[1:] != (h, w):
            raise DataError(f"{img_path}: images are {images.shape[1]}x{images.shape[2]}, expected {h}x{w} for "
                            f"{name}; this is not {name} data — delete it and run again to fetch a fresh copy")
        check_labels(labels, len(CLASS_NAMES[name]), str(lab_path))
        out += [images[..., None], labels]
    return out[0], out[1], out[2], out[3]
