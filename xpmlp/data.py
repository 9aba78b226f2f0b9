"""MNIST, Fashion-MNIST and CIFAR-10: find, download, verify, parse, split and preprocess.

Everything here works on host NumPy arrays; the Backend moves the result to a device later.

Finding the data. ``load_dataset(name)`` looks, in this order, in

1. an explicit ``root`` argument,
2. ``$XPMLP_DATA``,
3. the user cache (``pooch.os_cache("xpmlp")/<name>``, or ``cache_dir/<name>``),
4. the system dataset folders in :data:`SYSTEM_DATA_DIRS` (Debian's ``dataset-fashion-mnist``
   package puts the real files in ``/usr/share/datasets/fashion-mnist/``),
5. a download from :data:`BASE_URLS` into the cache, verified against :data:`REGISTRY` by pooch.

A folder counts if it holds the files themselves (``train-images-idx3-ubyte.gz`` ... or
``data_batch_1`` ...) or the dataset's usual folder (``fashion-mnist/``, ``mnist/``,
``cifar-10-batches-py/``) or, for CIFAR-10, the archive ``cifar-10-python.tar.gz``. Where the data
was found is logged on the ``xpmlp.data`` logger and kept in ``Dataset.source``/``Dataset.origin``.

Layout of what comes back: images are ``uint8`` arrays of shape ``(N, H, W, C)`` for every dataset
(``C == 1`` for the grey-scale ones), labels are ``int64`` of shape ``(N,)``.

Every problem with a data file is a one-line :class:`~xpmlp.errors.DataError` naming the file and
the fix; bad arguments are :class:`~xpmlp.errors.InputError`.
"""

from __future__ import annotations

import gzip
import io
import logging
import math
import os
import pickle
import sys
import tarfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pooch

from .errors import DataError, InputError

__all__ = [
    "KNOWN_DATASETS", "BASE_URLS", "REGISTRY", "SYSTEM_DATA_DIRS", "DEFAULT_VAL_SIZE", "CLASS_NAMES",
    "PREPROCESS_METHODS", "Dataset", "Prepared", "Preprocessor",
    "load_dataset", "prepare", "read_idx", "train_val_split", "stratified_subset", "default_cache_dir",
]

logger = logging.getLogger("xpmlp.data")

KNOWN_DATASETS: tuple[str, ...] = ("mnist", "fashion-mnist", "cifar10")

# Spellings people type for the same data sets (torchvision, keras, tfds); mapped before lookup.
_ALIASES = {
    "fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist",
    "cifar-10": "cifar10", "cifar_10": "cifar10",
}

# Where each data set is downloaded from; $XPMLP_DATA_URL or the base_url argument override it
# (tests point it at a server on 127.0.0.1). The MNIST entry is the widely used S3 mirror, since
# yann.lecun.com now refuses most automated downloads.
BASE_URLS: dict[str, str] = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "cifar10": "https://www.cs.toronto.edu/~kriz/",
}

# File names and hashes of the official downloads, in pooch's "alg:hex" notation.
# - mnist: SHA-256 values published by many projects (torchvision, tfds) for the original files.
# - fashion-mnist: SHA-256 computed here from the official files. Debian's package ships the same
#   deflate streams re-wrapped without the file name in the gzip header, so its files hash
#   differently; we rebuilt the official headers, checked the result against the md5 sums in the
#   upstream README (8d4fb7e6..., 25c81989..., bef4ecab..., bb300cfd...), then took the SHA-256.
# - cifar10: SHA-256 published widely for cifar-10-python.tar.gz (its md5 is
#   c58f30108f718f92721af3b95e74349a).
REGISTRY: dict[str, dict[str, str | None]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "sha256:440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "sha256:3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "sha256:8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "sha256:f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "sha256:3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "sha256:a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "sha256:346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "sha256:67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    "cifar10": {
        "cifar-10-python.tar.gz": "sha256:6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    },
}

# Parents of system-wide data set folders; a module-level tuple so tests can monkeypatch it.
SYSTEM_DATA_DIRS: tuple[str, ...] = ("/usr/share/datasets", "/usr/local/share/datasets")

# Validation sizes of the classic experiments: 55,000/5,000 for the MNISTs, 49,000/1,000 for CIFAR-10.
DEFAULT_VAL_SIZE: dict[str, int] = {"mnist": 5000, "fashion-mnist": 5000, "cifar10": 1000}

CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}

_IMAGE_SHAPES: dict[str, tuple[int, int, int]] = {
    "mnist": (28, 28, 1), "fashion-mnist": (28, 28, 1), "cifar10": (32, 32, 3),
}

# The usual folder names a parent directory may hold for each data set (ours, torchvision's, keras').
_FOLDERS: dict[str, tuple[str, ...]] = {
    "mnist": ("mnist", "MNIST/raw", "MNIST"),
    "fashion-mnist": ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw", "FashionMNIST"),
    "cifar10": ("cifar-10-batches-py", "cifar10", "cifar-10"),
}

_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = "test_batch"
_CIFAR_META = "batches.meta"

_CORRUPT = "the file is corrupt — delete it and run again to fetch a fresh copy"


def _one_line(text: object) -> str:
    """Collapse whitespace so that every message stays on one line, as the error contract promises."""
    return " ".join(str(text).split())


def _canonical_name(name: str) -> str:
    """Map a user-typed data set name onto one of KNOWN_DATASETS, or raise InputError."""
    if not isinstance(name, str):
        raise InputError(f"dataset name must be a string, got {type(name).__name__}; "
                         f"known datasets: {', '.join(KNOWN_DATASETS)}")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in KNOWN_DATASETS:
        raise InputError(f"unknown dataset {name!r}; known datasets: {', '.join(KNOWN_DATASETS)}")
    return key


def default_cache_dir() -> Path:
    """The platform's user cache folder for xpmlp (e.g. ``~/.cache/xpmlp`` on Linux)."""
    return Path(pooch.os_cache("xpmlp"))


# --------------------------------------------------------------------------------------------------
# IDX files (MNIST, Fashion-MNIST)
# --------------------------------------------------------------------------------------------------

# IDX type codes -> big-endian NumPy dtypes (the format stores multi-byte numbers big-endian).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_KINDS = {"images": (0x00000803, "uint8 images"), "labels": (0x00000801, "uint8 labels")}
# Deflate cannot compress better than about 1032:1, so a header promising more than this many bytes per
# compressed byte is corrupt; checking it first avoids allocating gigabytes for a garbage header.
_MAX_GZIP_RATIO = 1100


def read_idx(path: str | os.PathLike[str], kind: str | None = None) -> np.ndarray:
    """Read one IDX file (gzipped or raw) into a native-endian NumPy array.

    ``kind`` is ``"images"`` (magic 0x00000803, 3-D uint8) or ``"labels"`` (magic 0x00000801, 1-D uint8)
    to insist on that layout, or None to accept any valid IDX file. The magic number, the dimensions
    and the length (which must equal what the header implies, no more and no less) are checked; any
    problem is a one-line DataError naming the file.
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
                raise DataError(f"{path}: not gzip data (bad gzip header); {_CORRUPT}")
            return _parse_idx(raw, path, kind, max_payload=size, exact=size)
    except DataError:
        raise
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        # EOFError: the gzip stream stops early; BadGzipFile/zlib.error: bad CRC, bad header, garbage.
        raise DataError(f"{path}: truncated or corrupt gzip data ({_one_line(exc)}); {_CORRUPT}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({_one_line(exc.strerror or exc)}); "
                        "check that it exists and is readable") from None


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


def _parse_idx(stream: BinaryIO, path: Path, kind: str | None, max_payload: int, exact: int | None) -> np.ndarray:
    """Parse an IDX stream: header, dimensions, then exactly the data the header promises."""
    head = _read_exact(stream, 4)
    if len(head) < 4:
        raise DataError(f"{path}: file too short for an IDX header ({len(head)} bytes); {_CORRUPT}")
    magic = int.from_bytes(head, "big")
    if kind is not None:
        expected, what = _IDX_KINDS[kind]
        if magic != expected:
            raise DataError(f"{path}: wrong magic number 0x{magic:08x} (expected 0x{expected:08x} for {what}); "
                            f"{_CORRUPT}")
    elif head[:2] != b"\0\0" or head[2] not in _IDX_DTYPES or head[3] == 0:
        raise DataError(f"{path}: wrong magic number 0x{magic:08x} (not an IDX file); {_CORRUPT}")
    dtype = np.dtype(_IDX_DTYPES[head[2]])
    ndim = head[3]
    raw_dims = _read_exact(stream, 4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError(f"{path}: truncated IDX header (expected {ndim} dimensions); {_CORRUPT}")
    dims = tuple(int.from_bytes(raw_dims[4 * i:4 * i + 4], "big") for i in range(ndim))
    if any(d == 0 for d in dims[1:]):
        raise DataError(f"{path}: IDX header has a zero dimension {dims}; {_CORRUPT}")
    header_len = 4 + 4 * ndim
    payload = math.prod(dims) * dtype.itemsize
    if exact is not None and exact != header_len + payload:
        raise DataError(f"{path}: file is {exact} bytes but its header {dims} implies {header_len + payload}; "
                        f"{'truncated' if exact < header_len + payload else 'extra bytes at the end'}, {_CORRUPT}")
    if payload > max_payload:
        raise DataError(f"{path}: IDX header {dims} promises {payload} bytes, more than the file can hold; "
                        f"{_CORRUPT}")
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
                        f"{_CORRUPT}")
    if stream.read(1):
        raise DataError(f"{path}: extra bytes after the {payload} data bytes its header {dims} implies; {_CORRUPT}")
    out = out.reshape(dims)
    return out if dtype.isnative or dtype.itemsize == 1 else out.astype(dtype.newbyteorder("="))


# --------------------------------------------------------------------------------------------------
# CIFAR-10 python batches
# --------------------------------------------------------------------------------------------------


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


def _unpickle(blob: bytes, where: str) -> Any:
    """Load one pickle with _CifarUnpickler, turning every failure into a DataError naming the file."""
    try:
        return _CifarUnpickler(io.BytesIO(blob), where).load()
    except DataError:
        raise
    except Exception as exc:  # a corrupt pickle can raise almost anything (EOFError, ValueError, KeyError...)
        raise DataError(f"{where}: not a readable CIFAR-10 pickle ({type(exc).__name__}: {_one_line(exc)}); "
                        f"{_CORRUPT}") from None


def _str_keys(obj: Any, where: str) -> dict[str, Any]:
    """The batch dict with its keys as str (Python 2 batches have bytes keys, re-pickled ones str)."""
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a pickled dict, found {type(obj).__name__}; {_CORRUPT}")
    return {(k.decode("latin-1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def _parse_cifar_batch(blob: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch -> (uint8 images N x 32 x 32 x 3, int64 labels N)."""
    batch = _str_keys(_unpickle(blob, where), where)
    if "data" not in batch or "labels" not in batch:
        raise DataError(f"{where}: batch lacks 'data' or 'labels' (keys: {sorted(batch)}); {_CORRUPT}")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{where}: 'data' is {desc}, expected uint8 (N, 3072); {_CORRUPT}")
    try:
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{where}: 'labels' is not a list of integers; {_CORRUPT}") from None
    if labels.shape != (data.shape[0],):
        raise DataError(f"{where}: {data.shape[0]} images but {labels.size} labels; {_CORRUPT}")
    # Rows are channel-major (all red, then green, then blue, each 32x32 row-major); make them HWC.
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return images, labels


def _parse_cifar_meta(blob: bytes, where: str) -> list[str]:
    """Class names from batches.meta."""
    meta = _str_keys(_unpickle(blob, where), where)
    names = meta.get("label_names")
    if not isinstance(names, list) or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataError(f"{where}: no 'label_names' list; {_CORRUPT}")
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names]


def _read_cifar_blobs(location: Path) -> tuple[dict[str, bytes], str]:
    """Raw bytes of the batch files from a folder or from the tar.gz archive (read in place, not extracted)."""
    wanted = (*_CIFAR_TRAIN, _CIFAR_TEST, _CIFAR_META)
    blobs: dict[str, bytes] = {}
    if location.is_dir():
        for fname in wanted:
            path = location / fname
            if path.is_file():
                try:
                    blobs[fname] = path.read_bytes()
                except OSError as exc:
                    raise DataError(f"{path}: cannot read the file ({_one_line(exc.strerror or exc)}); "
                                    "check that it exists and is readable") from None
        return blobs, str(location)
    try:
        # Iterate in archive order: a gzip stream cannot seek back cheaply, so one pass reads everything.
        with tarfile.open(location, mode="r:*") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if base in wanted and member.isfile() and base not in blobs:
                    handle = tar.extractfile(member)
                    if handle is not None:
                        blobs[base] = handle.read()
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{location}: truncated or corrupt archive ({_one_line(exc)}); {_CORRUPT}") from None
    except OSError as exc:
        raise DataError(f"{location}: cannot read the archive ({_one_line(exc.strerror or exc)}); "
                        "check that it exists and is readable") from None
    return blobs, str(location)


def _load_cifar(location: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """All of CIFAR-10 from a batches folder or the archive."""
    blobs, where = _read_cifar_blobs(location)
    missing = [f for f in (*_CIFAR_TRAIN, _CIFAR_TEST) if f not in blobs]
    if missing:
        raise DataError(f"{where}: missing CIFAR-10 batch file(s) {', '.join(missing)}; "
                        f"the copy is incomplete — delete it and run again to fetch a fresh copy")
    sep = "!" if location.is_file() else os.sep  # name the member inside an archive as archive!member
    parts = [_parse_cifar_batch(blobs[f], f"{where}{sep}{f}") for f in _CIFAR_TRAIN]
    x_test, y_test = _parse_cifar_batch(blobs[_CIFAR_TEST], f"{where}{sep}{_CIFAR_TEST}")
    classes = list(CLASS_NAMES["cifar10"])
    if _CIFAR_META in blobs:
        classes = _parse_cifar_meta(blobs[_CIFAR_META], f"{where}{sep}{_CIFAR_META}")
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    _check_labels(y_train, len(classes), f"{where} (training batches)")
    _check_labels(y_test, len(classes), f"{where}{sep}{_CIFAR_TEST}")
    return x_train, y_train, x_test, y_test, classes


def _check_labels(labels: np.ndarray, n_classes: int, where: str) -> None:
    """Labels must be class indices 0..n_classes-1."""
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        bad = int(labels.min()) if labels.min() < 0 else int(labels.max())
        raise DataError(f"{where}: label {bad} out of range 0..{n_classes - 1}; {_CORRUPT}")


# --------------------------------------------------------------------------------------------------
# Locating a copy on disk
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Found:
    """A complete copy on disk: the folder (or CIFAR archive) and the files to read from it."""

    location: Path
    files: dict[str, Path] = field(default_factory=dict)


def _idx_files_in(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """The four IDX files in folder (gzipped or raw, '-idx' or '.idx' spelling), and the missing ones."""
    found: dict[str, Path] = {}
    missing = []
    for base in _IDX_FILES:
        for cand in (f"{base}.gz", base, f"{base.replace('-idx', '.idx')}.gz", base.replace("-idx", ".idx")):
            if (folder / cand).is_file():
                found[base] = folder / cand
                break
        else:
            missing.append(base)
    return found, missing


def _find_in(name: str, place: Path) -> tuple[_Found | None, str]:
    """Look for a complete copy of `name` at `place` or in its usual sub-folder; say what was seen."""
    if name == "cifar10":
        if place.is_file():
            return _Found(place), ""
        candidates = [place, *(place / f for f in _FOLDERS[name])]
        for folder in candidates:
            if (folder / _CIFAR_TRAIN[0]).is_file():
                return _Found(folder), ""
            if (folder / _CIFAR_ARCHIVE).is_file():
                return _Found(folder / _CIFAR_ARCHIVE), ""
        return None, "not there"
    partial = ""
    for folder in (place, *(place / f for f in _FOLDERS[name])):
        found, missing = _idx_files_in(folder)
        if not missing:
            return _Found(folder, found), ""
        if found and not partial:
            partial = f"incomplete at {folder}: missing {', '.join(missing)}"
    return None, partial or "not there"


def _verify_cached(found: _Found, registry: Mapping[str, str | None]) -> None:
    """Check cached downloads against the registry: the cache is ours, so a mismatch means corruption."""
    paths = list(found.files.values()) or [found.location]
    for path in paths:
        known = registry.get(path.name)
        if not known or not path.is_file():
            continue
        alg, _, expected = known.rpartition(":")
        alg = alg or "sha256"
        try:
            actual = pooch.file_hash(str(path), alg=alg)
        except OSError as exc:
            raise DataError(f"{path}: cannot read the file ({_one_line(exc.strerror or exc)}); "
                            "check that it exists and is readable") from None
        if actual.lower() != expected.lower():
            raise DataError(f"{path}: checksum mismatch ({alg} is {actual}, expected {expected}); the file is "
                            "corrupt or incomplete — delete it and run again to fetch a fresh copy")


def _progressbar_wanted() -> bool:
    """A progress bar only when tqdm is installed and someone is watching stderr."""
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def _download(name: str, target: Path, base_url: str, registry: Mapping[str, str | None],
              progressbar: bool) -> None:
    """Fetch every registry file into target through pooch (temp file, hash check, then rename)."""
    downloader = pooch.HTTPDownloader(progressbar=progressbar, chunk_size=1 << 16)
    for fname, known in registry.items():
        url = base_url.rstrip("/") + "/" + fname
        try:
            pooch.retrieve(url, known_hash=known, fname=fname, path=target, downloader=downloader,
                           progressbar=progressbar)
        except ValueError as exc:
            if "hash" in str(exc).lower():
                raise DataError(f"{url}: downloaded file failed its checksum check ({_one_line(exc)}); nothing "
                                f"was saved in {target} — run again to retry, or check the download URL and "
                                "registry") from None
            raise


def _how_to_get(name: str, base_url: str, registry: Mapping[str, str | None], cache: Path, download: bool) -> str:
    """The hint at the end of the not-found message."""
    urls = ", ".join(base_url.rstrip("/") + "/" + f for f in registry)
    first = "check the network and run again" if download else "allow the download (download=True)"
    hint = (f"to get it, {first}, or fetch {urls} into {cache}, "
            f"or pass root=<folder> or set $XPMLP_DATA to a folder that holds it")
    if name == "fashion-mnist":
        hint += "; on Debian/Ubuntu: sudo apt install dataset-fashion-mnist"
    return hint


def _locate(name: str, root: str | os.PathLike[str] | None, download: bool, cache_dir: str | os.PathLike[str] | None,
            base_url: str | None, registry: Mapping[str, str | None] | None,
            progressbar: bool | None) -> tuple[_Found, str]:
    """Walk the search order and return (copy, origin), or raise a DataError listing every place."""
    searched: list[str] = []
    if root is not None:
        place = Path(root).expanduser()
        found, why = _find_in(name, place)
        if found:
            return found, "root"
        searched.append(f"root {place} ({why})")
        logger.warning("%s: root %s does not hold it (%s); looking elsewhere", name, place, why)
    else:
        searched.append("root (not given)")

    env = os.environ.get("XPMLP_DATA", "").strip()
    if env:
        place = Path(env).expanduser()
        found, why = _find_in(name, place)
        if found:
            return found, "XPMLP_DATA"
        searched.append(f"$XPMLP_DATA={place} ({why})")
    else:
        searched.append("$XPMLP_DATA (not set)")

    reg: Mapping[str, str | None] = REGISTRY[name] if registry is None else registry
    cache = Path(cache_dir).expanduser() / name if cache_dir is not None else default_cache_dir() / name
    found, why = _find_in(name, cache)
    if found:
        _verify_cached(found, reg)
        return found, "cache"
    searched.append(f"cache {cache} ({why})")

    system = [Path(d) for d in SYSTEM_DATA_DIRS]
    for place in system:
        found, why = _find_in(name, place)
        if found:
            return found, "system"
    searched.append(f"system folders {', '.join(str(p / _FOLDERS[name][0]) for p in system) or '(none)'} (not there)")

    url = base_url or os.environ.get("XPMLP_DATA_URL", "").strip() or BASE_URLS[name]
    if download:
        logger.info("%s: not found locally; downloading from %s into %s", name, url, cache)
        try:
            _download(name, cache, url, reg, _progressbar_wanted() if progressbar is None else progressbar)
        except DataError:
            raise
        except Exception as exc:  # offline, DNS, HTTP errors, a dropped connection: report and list the places
            searched.append(f"download from {url} failed ({type(exc).__name__}: {_one_line(exc)[:300]})")
        else:
            found, why = _find_in(name, cache)
            if found:
                return found, "download"
            searched.append(f"download from {url} gave an unusable copy in {cache} ({why})")
    else:
        searched.append("download (disabled)")
    hint = _how_to_get(name, url, reg, cache, download)
    raise DataError(f"{name} not found; searched: {'; '.join(searched)}; {hint}")


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


@dataclass(repr=False)
class Dataset:
    """A data set as stored: uint8 images (N, H, W, C), int64 labels (N,), and where it came from.

    ``origin`` says which place in the search order supplied it: ``root``, ``XPMLP_DATA``, ``cache``,
    ``system`` or ``download``; ``source`` is the folder (or CIFAR-10 archive) read.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    image_shape: tuple[int, int, int]
    source: str
    origin: str = ""

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
                f"classes={len(self.classes)}, source={self.source!r}, origin={self.origin!r})")


def _load_idx_set(name: str, found: _Found) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The four IDX files -> (x_train, y_train, x_test, y_test), cross-checked."""
    files = found.files
    out = []
    for split in ("train", "t10k"):
        img_path, lab_path = files[f"{split}-images-idx3-ubyte"], files[f"{split}-labels-idx1-ubyte"]
        images = read_idx(img_path, "images")
        labels = read_idx(lab_path, "labels").astype(np.int64)
        if images.shape[0] != labels.shape[0]:
            raise DataError(f"{img_path}: {images.shape[0]} images but {lab_path.name} has {labels.shape[0]} labels; "
                            "one of the two is corrupt — delete both and run again to fetch fresh copies")
        h, w, _ = _IMAGE_SHAPES[name]
        if images.shape[1:] != (h, w):
            raise DataError(f"{img_path}: images are {images.shape[1]}x{images.shape[2]}, expected {h}x{w} for "
                            f"{name}; this is not {name} data — delete it and run again to fetch a fresh copy")
        _check_labels(labels, len(CLASS_NAMES[name]), str(lab_path))
        out += [images[..., None], labels]
    return out[0], out[1], out[2], out[3]


def load_dataset(name: str, root: str | os.PathLike[str] | None = None, download: bool = True, *,
                 cache_dir: str | os.PathLike[str] | None = None, base_url: str | None = None,
                 registry: Mapping[str, str | None] | None = None, progressbar: bool | None = None,
                 log: Callable[[str], object] | None = None) -> Dataset:
    """Find (or download), verify and parse a data set; see the module docstring for the search order.

    Args:
        name: one of KNOWN_DATASETS (``mnist``, ``fashion-mnist``, ``cifar10``; common spellings accepted).
        root: a folder holding the files, or a parent of the data set's usual folder; searched first.
        download: fetch into the cache when no local copy exists.
        cache_dir: the cache's parent folder (default ``pooch.os_cache("xpmlp")``); data goes in ``<cache_dir>/<name>``.
        base_url: where to download from (default ``$XPMLP_DATA_URL`` or ``BASE_URLS[name]``).
        registry: file name -> ``"sha256:..."``/``"md5:..."`` to download and verify (default ``REGISTRY[name]``).
        progressbar: show a download progress bar (default: when tqdm is installed and stderr is a terminal).
        log: optional callable that also receives the "found it here" message.

    Returns:
        A Dataset with uint8 images (N, H, W, C) and int64 labels.

    Raises:
        InputError: unknown data set name.
        DataError: not found anywhere, a failed checksum, or a corrupt, truncated or inconsistent file.
    """
    name = _canonical_name(name)
    found, origin = _locate(name, root, download, cache_dir, base_url, registry, progressbar)
    if name == "cifar10":
        x_train, y_train, x_test, y_test, classes = _load_cifar(found.location)
    else:
        x_train, y_train, x_test, y_test = _load_idx_set(name, found)
        classes = list(CLASS_NAMES[name])
    image_shape = (int(x_train.shape[1]), int(x_train.shape[2]), int(x_train.shape[3]))
    if tuple(x_test.shape[1:]) != image_shape:
        raise DataError(f"{found.location}: test images are {x_test.shape[1:]} but training images {image_shape}; "
                        f"{_CORRUPT}")
    message = (f"{name}: loaded {x_train.shape[0]} training and {x_test.shape[0]} test images from "
               f"{found.location} ({origin})")
    logger.info(message)
    if log is not None:
        log(message)
    return Dataset(name=name, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, classes=classes,
                   image_shape=image_shape, source=str(found.location), origin=origin)


# --------------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------------


def _check_xy(x: np.ndarray, y: np.ndarray) -> None:
    """x and y must be NumPy arrays of the same length, y 1-D integer labels."""
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
        raise InputError(f"x and y must be NumPy arrays, got {type(x).__name__} and {type(y).__name__}")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"y must be a 1-D array of integer labels, got {y.dtype} of shape {y.shape}")
    if x.ndim < 1 or x.shape[0] != y.shape[0]:
        raise InputError(f"x has {x.shape[0] if x.ndim else 0} rows but y has {y.shape[0]} labels; they must match")


def _check_count(value: Any, what: str) -> int:
    """A non-negative Python or NumPy integer (bools are refused: they are almost always a mistake)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InputError(f"{what} must be a non-negative integer, got {value!r}")
    return int(value)


def _stratified_pick(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices (ascending) of n examples drawn per class in proportion to the class sizes.

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
    exact); both parts keep the original order. ``val_size == 0`` gives empty validation arrays.

    Returns:
        (x_train, y_train, x_val, y_val)

    Raises:
        InputError: mismatched x/y, or val_size not in 0..len(y)-1.
    """
    _check_xy(x, y)
    val_size = _check_count(val_size, "val_size")
    if val_size >= y.shape[0]:
        raise InputError(f"val_size {val_size} must be smaller than the {y.shape[0]} examples available "
                         "(some must remain for training); pass a smaller val_size")
    mask = np.zeros(y.shape[0], dtype=bool)
    if val_size:
        mask[_stratified_pick(y, val_size, seed)] = True
    return x[~mask], y[~mask], x[mask], y[mask]


def stratified_subset(x: np.ndarray, y: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded subset of exactly ``n`` examples with the class balance kept (for quick runs).

    ``n`` equal to the number of examples returns them all (in order).

    Raises:
        InputError: mismatched x/y, or n not in 1..len(y).
    """
    _check_xy(x, y)
    n = _check_count(n, "subset size")
    if n == 0 or n > y.shape[0]:
        raise InputError(f"subset size {n} must be between 1 and the {y.shape[0]} examples available")
    idx = _stratified_pick(y, n, seed)
    return x[idx], y[idx]


# --------------------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------------------

PREPROCESS_METHODS: tuple[str, ...] = ("scale", "standardize", "mean-image")

# Rows per chunk when accumulating statistics, so CIFAR-10 does not need a float64 copy of the whole set.
_STATS_CHUNK = 4096


class Preprocessor:
    """Flatten images to float32 rows and normalise them, with statistics from the training split only.

    Methods:
        ``scale`` (default): pixels / 255, in [0, 1].
        ``standardize``: per feature, subtract the training mean and divide by the training standard
        deviation (1 where a feature never varies, e.g. MNIST's empty corners).
        ``mean-image``: subtract the training mean image from the raw 0-255 pixels (the CIFAR-10 homework).

    Fit on the training split after the validation split is taken, then transform every split.
    ``state_dict()``/``from_state_dict()`` save and restore it exactly.
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

    @staticmethod
    def _rows(images: np.ndarray) -> np.ndarray:
        """(N, ...) -> (N, features) without copying when possible."""
        if not isinstance(images, np.ndarray) or images.ndim < 2:
            shape = getattr(images, "shape", None)
            raise InputError(f"images must be a NumPy array of shape (N, ...) with N rows, got shape {shape}")
        if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
            raise InputError(f"images must hold numbers, got dtype {images.dtype}")
        if np.issubdtype(images.dtype, np.floating) and not np.isfinite(images).all():
            raise InputError("images contain NaN or infinite values; clean the data first")
        # An explicit feature count, not -1: reshape cannot infer it for zero rows (an empty val split).
        return images.reshape(images.shape[0], math.prod(images.shape[1:]))

    def fit(self, x_train: np.ndarray) -> Preprocessor:
        """Learn the statistics of the training images (uint8, any (N, ...) shape); returns self."""
        rows = self._rows(x_train)
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

    def transform(self, images: np.ndarray) -> np.ndarray:
        """Images (N, ...) -> float32 (N, H*W*C), normalised with the fitted statistics."""
        rows = self._rows(images)
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

    def fit_transform(self, x_train: np.ndarray) -> np.ndarray:
        """fit(x_train) then transform(x_train)."""
        return self.fit(x_train).transform(x_train)

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


# --------------------------------------------------------------------------------------------------
# One call from name to ready-to-train arrays
# --------------------------------------------------------------------------------------------------


@dataclass(repr=False)
class Prepared:
    """Float32 (N, H*W*C) host arrays ready for training, the fitted Preprocessor and what to record."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    preprocessor: Preprocessor
    name: str
    classes: list[str]
    image_shape: tuple[int, int, int]
    source: str
    config: dict[str, Any]

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def num_features(self) -> int:
        """Inputs per example (H*W*C)."""
        return int(self.x_train.shape[1])

    def __repr__(self) -> str:
        return (f"Prepared(name={self.name!r}, train={self.x_train.shape}, val={self.x_val.shape}, "
                f"test={self.x_test.shape}, preprocess={self.preprocessor.method!r}, source={self.source!r})")


def prepare(name: str, root: str | os.PathLike[str] | None = None, val_size: int | None = None,
            subset: int | None = None, preprocess: str = "scale", seed: int = 0, download: bool = True, *,
            test_subset: int | None = None, cache_dir: str | os.PathLike[str] | None = None,
            base_url: str | None = None, registry: Mapping[str, str | None] | None = None,
            progressbar: bool | None = None, log: Callable[[str], object] | None = None) -> Prepared:
    """Load a data set and return float32 train/val/test rows, preprocessed with training statistics.

    Steps: load (see load_dataset) -> optional stratified ``subset`` of the training pool ->
    stratified validation split of ``val_size`` (default DEFAULT_VAL_SIZE[name]; if ``subset`` is not
    larger than that, ``subset // 10`` and the config says so) -> fit the Preprocessor on the training
    part only -> transform all three. The test set stays whole unless ``test_subset`` is given.

    Raises:
        InputError: unknown data set or method, or sizes that do not fit the data.
        DataError: as load_dataset.
    """
    name = _canonical_name(name)
    pre = Preprocessor(preprocess)  # fail on a bad method before any loading
    if subset is not None:
        subset = _check_count(subset, "subset")
    if test_subset is not None:
        test_subset = _check_count(test_subset, "test_subset")
    note = None
    if val_size is None:
        val_size = DEFAULT_VAL_SIZE[name]
        if subset is not None and subset <= val_size:
            note = (f"subset {subset} is not larger than the default validation size {val_size}, "
                    f"so val_size = subset // 10 = {subset // 10}")
            val_size = subset // 10
    else:
        val_size = _check_count(val_size, "val_size")

    ds = load_dataset(name, root, download, cache_dir=cache_dir, base_url=base_url, registry=registry,
                      progressbar=progressbar, log=log)
    x_pool, y_pool = ds.x_train, ds.y_train
    if subset is not None:
        x_pool, y_pool = stratified_subset(x_pool, y_pool, subset, seed)
    x_tr, y_tr, x_val, y_val = train_val_split(x_pool, y_pool, val_size, seed)
    x_te, y_te = ds.x_test, ds.y_test
    if test_subset is not None:
        x_te, y_te = stratified_subset(x_te, y_te, test_subset, seed)
    pre.fit(x_tr)
    config: dict[str, Any] = {
        "name": name, "source": ds.source, "origin": ds.origin, "preprocess": preprocess,
        "val_size": val_size, "subset": subset, "test_subset": test_subset, "seed": seed,
        "n_train": int(y_tr.shape[0]), "n_val": int(y_val.shape[0]), "n_test": int(y_te.shape[0]),
        "image_shape": list(ds.image_shape),
    }
    if note:
        config["note"] = note
        logger.info("%s: %s", name, note)
    return Prepared(x_train=pre.transform(x_tr), y_train=y_tr, x_val=pre.transform(x_val), y_val=y_val,
                    x_test=pre.transform(x_te), y_test=y_te, preprocessor=pre, name=name, classes=list(ds.classes),
                    image_shape=ds.image_shape, source=ds.source, config=config)
