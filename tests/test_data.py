"""Tests of xpmlp.data: parsers against small files in the exact on-disk formats, the search order,
downloads against a server on 127.0.0.1, every error message, splits and preprocessing.

No test reaches the internet or the real user cache: every test runs with $XPMLP_DATA unset, the
system folder list and the default cache pointed into tmp_path (the autouse `isolated` fixture).
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import os
import pickle
import struct
import tarfile
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xpmlp import data
from xpmlp.data import (
    KNOWN_DATASETS,
    Dataset,
    Preprocessor,
    load_dataset,
    prepare,
    read_idx,
    stratified_subset,
    train_val_split,
)
from xpmlp.data import locate as locate_module  # where SYSTEM_DATA_DIRS and default_cache_dir are read
from xpmlp.errors import DataError, InputError

IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
REAL_FASHION = Path("/usr/share/datasets/fashion-mnist")


# ------------------------------------------------------------------------------------------------
# Writers for the exact on-disk formats
# ------------------------------------------------------------------------------------------------


def idx_bytes(arr: np.ndarray, magic: int | None = None) -> bytes:
    """An IDX file: 0x00 0x00 type ndim, big-endian uint32 dims, then big-endian data."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
             np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}
    if magic is None:
        magic = (codes[arr.dtype] << 8) | arr.ndim
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def make_idx_arrays(n_train: int = 30, n_test: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    """Random 28x28 images and balanced labels, keyed by IDX file base name."""
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": ((np.arange(n_test) * 3) % 10).astype(np.uint8),
    }


def write_idx_set(folder: Path, gz: bool = True, **kwargs: int) -> dict[str, np.ndarray]:
    """Write the four IDX files (gzipped like the official downloads, or raw) and return the arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = make_idx_arrays(**kwargs)
    for base, arr in arrays.items():
        blob = idx_bytes(arr)
        if gz:
            (folder / f"{base}.gz").write_bytes(gzip.compress(blob))
        else:
            (folder / base).write_bytes(blob)
    return arrays


class Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes pickles the way Python 2 wrote the real CIFAR-10 batches: every str is a byte string.

    Python 3 writes bytes under protocol 2 through `_codecs.encode`; Python 2 used the BINSTRING opcodes,
    which load as bytes with encoding="bytes". This pickler emits those opcodes for str and bytes.
    """

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def _save_py2_str(self, obj: str | bytes) -> None:
        raw = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str


def py2_pickle(obj: object) -> bytes:
    """Protocol 2, Python 2 strings, and NumPy 1's module name for the array rebuild, as in the real files."""
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n_reconstruct\n", b"cnumpy.core.multiarray\n_reconstruct\n")


CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def make_cifar_arrays(per_batch: int = 10, seed: int = 1) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """HWC images and labels per batch file."""
    rng = np.random.default_rng(seed)
    out = {}
    for i, fname in enumerate([*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]):
        images = rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8)
        labels = (np.arange(per_batch) + i) % 10
        out[fname] = (images, labels)
    return out


def cifar_blobs(arrays: dict[str, tuple[np.ndarray, np.ndarray]], str_keys: bool = False) -> dict[str, bytes]:
    """Batch files as the real ones: dict with b'batch_label', b'labels', b'data' (channel-major rows), b'filenames'."""
    blobs = {}
    for fname, (images, labels) in arrays.items():
        rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)  # R plane, G plane, B plane
        batch = {b"batch_label": f"{fname} of 6".encode(), b"labels": [int(v) for v in labels], b"data": rows,
                 b"filenames": [f"img_{j}.png".encode() for j in range(len(images))]}
        if str_keys:  # the same batch re-pickled by Python 3: str keys, bytes via _codecs.encode
            batch = {k.decode(): v for k, v in batch.items()}
            blobs[fname] = pickle.dumps(batch, protocol=2)
        else:
            blobs[fname] = py2_pickle(batch)
    meta = {b"num_cases_per_batch": 10000, b"label_names": [n.encode() for n in CIFAR_NAMES], b"num_vis": 3072}
    blobs["batches.meta"] = py2_pickle(meta)
    return blobs


def write_cifar_folder(folder: Path, str_keys: bool = False, **kwargs: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = make_cifar_arrays(**kwargs)
    for fname, blob in cifar_blobs(arrays, str_keys).items():
        (folder / fname).write_bytes(blob)
    return arrays


def cifar_tar_bytes(arrays: dict[str, tuple[np.ndarray, np.ndarray]], blobs: dict[str, bytes] | None = None) -> bytes:
    """cifar-10-python.tar.gz: the batch files under cifar-10-batches-py/, gzipped tar."""
    blobs = cifar_blobs(arrays) if blobs is None else blobs
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for fname, blob in blobs.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{fname}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buf.getvalue()


def sha256(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def assert_one_line(exc: BaseException, *parts: str) -> str:
    msg = str(exc)
    assert "\n" not in msg and "\r" not in msg, msg
    for part in parts:
        assert part in msg, f"{part!r} not in {msg!r}"
    return msg


# ------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep every test away from the real cache, $XPMLP_DATA, system folders and proxies."""
    for var in ("XPMLP_DATA", "XPMLP_DATA_URL", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(locate_module, "SYSTEM_DATA_DIRS", (str(tmp_path / "system"),))
    monkeypatch.setattr(locate_module, "default_cache_dir", lambda: tmp_path / "usercache")
    return tmp_path


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves server.files; counts GETs per path; paths in server.truncate get a short body then a hang-up."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        srv = self.server
        with srv.lock:  # type: ignore[attr-defined]
            srv.requests.append(self.path)  # type: ignore[attr-defined]
        name = self.path.rsplit("/", 1)[-1]
        blob = srv.files.get(name)  # type: ignore[attr-defined]
        if blob is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if name in srv.truncate:  # type: ignore[attr-defined]
            # Promise more than we send, then close: the client sees the connection drop mid-file.
            self.send_header("Content-Length", str(len(blob) + 100_000))
            self.end_headers()
            self.wfile.write(blob[: len(blob) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(blob)))
        self.end_headers()
        self.wfile.write(blob)

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output quiet
        pass


@pytest.fixture
def server():
    """A ThreadingHTTPServer on 127.0.0.1 (port 0) in a thread; set .files / .truncate, read .requests."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.files = {}  # type: ignore[attr-defined]
    srv.truncate = set()  # type: ignore[attr-defined]
    srv.requests = []  # type: ignore[attr-defined]
    srv.lock = threading.Lock()  # type: ignore[attr-defined]
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/data/"  # type: ignore[attr-defined]
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def served_idx_set(srv, **kwargs: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Put a gz IDX set on the server; return the arrays and a registry of their sha256."""
    arrays = make_idx_arrays(**kwargs)
    registry = {}
    for base, arr in arrays.items():
        blob = gzip.compress(idx_bytes(arr))
        srv.files[f"{base}.gz"] = blob
        registry[f"{base}.gz"] = sha256(blob)
    return arrays, registry


# ------------------------------------------------------------------------------------------------
# IDX parsing
# ------------------------------------------------------------------------------------------------


def check_idx_dataset(ds: Dataset, arrays: dict[str, np.ndarray]) -> None:
    n_train, n_test = len(arrays["train-labels-idx1-ubyte"]), len(arrays["t10k-labels-idx1-ubyte"])
    assert ds.x_train.shape == (n_train, 28, 28, 1) and ds.x_test.shape == (n_test, 28, 28, 1)
    assert ds.x_train.dtype == np.uint8 and ds.x_test.dtype == np.uint8
    assert ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    assert ds.image_shape == (28, 28, 1)
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.x_test[..., 0], arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.y_train, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])
    # One pixel by hand: image 7, row 3, column 5 comes back at the same place.
    assert ds.x_train[7, 3, 5, 0] == arrays["train-images-idx3-ubyte"][7, 3, 5]


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_idx_files_in_root_folder(tmp_path: Path, gz: bool) -> None:
    arrays = write_idx_set(tmp_path / "files", gz=gz)
    ds = load_dataset("mnist", root=tmp_path / "files", download=False)
    check_idx_dataset(ds, arrays)
    assert ds.source == str(tmp_path / "files") and ds.origin == "root"
    assert ds.classes == [str(d) for d in range(10)]


def test_idx_parent_folder_and_fashion_classes(tmp_path: Path) -> None:
    arrays = write_idx_set(tmp_path / "parent" / "fashion-mnist", gz=False)
    ds = load_dataset("Fashion_MNIST", root=tmp_path / "parent", download=False)
    check_idx_dataset(ds, arrays)
    assert ds.name == "fashion-mnist" and ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"
    assert ds.source == str(tmp_path / "parent" / "fashion-mnist")


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_read_idx_generic_dtypes(tmp_path: Path, dtype: type) -> None:
    arr = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    (tmp_path / "x.idx").write_bytes(idx_bytes(arr))
    out = read_idx(tmp_path / "x.idx")
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, arr)


# ------------------------------------------------------------------------------------------------
# CIFAR-10 parsing
# ------------------------------------------------------------------------------------------------


def check_cifar(ds: Dataset, arrays: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    per = len(arrays["test_batch"][1])
    assert ds.x_train.shape == (5 * per, 32, 32, 3) and ds.x_test.shape == (per, 32, 32, 3)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    assert ds.image_shape == (32, 32, 3) and ds.classes == CIFAR_NAMES
    train_imgs = np.concatenate([arrays[f"data_batch_{k}"][0] for k in range(1, 6)])
    train_labels = np.concatenate([arrays[f"data_batch_{k}"][1] for k in range(1, 6)])
    np.testing.assert_array_equal(ds.x_train, train_imgs)
    np.testing.assert_array_equal(ds.y_train, train_labels)
    np.testing.assert_array_equal(ds.x_test, arrays["test_batch"][0])
    np.testing.assert_array_equal(ds.y_test, arrays["test_batch"][1])
    # Channel order by hand: in the stored row, red is at r*32+c, green at 1024+..., blue at 2048+...
    img = arrays["data_batch_2"][0][4]
    row = img.transpose(2, 0, 1).reshape(3072)
    r, c = 5, 17
    assert tuple(ds.x_train[per + 4, r, c]) == (row[r * 32 + c], row[1024 + r * 32 + c], row[2048 + r * 32 + c])


def test_cifar_batches_folder_direct_and_parent(tmp_path: Path) -> None:
    arrays = write_cifar_folder(tmp_path / "parent" / "cifar-10-batches-py")
    ds = load_dataset("cifar10", root=tmp_path / "parent" / "cifar-10-batches-py", download=False)
    check_cifar(ds, arrays)
    ds2 = load_dataset("CIFAR-10", root=tmp_path / "parent", download=False)
    check_cifar(ds2, arrays)
    assert ds2.source == str(tmp_path / "parent" / "cifar-10-batches-py")


def test_cifar_archive_parent_and_file(tmp_path: Path) -> None:
    arrays = make_cifar_arrays()
    (tmp_path / "dl").mkdir()
    archive = tmp_path / "dl" / "cifar-10-python.tar.gz"
    archive.write_bytes(cifar_tar_bytes(arrays))
    ds = load_dataset("cifar10", root=tmp_path / "dl", download=False)
    check_cifar(ds, arrays)
    assert ds.source == str(archive)
    check_cifar(load_dataset("cifar10", root=archive, download=False), arrays)
    assert files_under(tmp_path / "dl") == [archive]  # read in place, nothing extracted


def test_cifar_python3_pickles_with_str_keys(tmp_path: Path) -> None:
    arrays = write_cifar_folder(tmp_path / "c", str_keys=True)
    check_cifar(load_dataset("cifar10", root=tmp_path / "c", download=False), arrays)


class _Evil:
    """Unpickling this would run a shell command; the loader must refuse before anything runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar_forbidden_pickle_class_refused(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    write_cifar_folder(folder)
    marker = tmp_path / "pwned"
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": _Evil(marker), b"labels": []}, protocol=2))
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", root=folder, download=False)
    assert_one_line(info.value, str(folder / "data_batch_3"), "refusing to unpickle", "system", "delete it")
    assert not marker.exists()


def test_cifar_codecs_other_than_latin1_refused(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    write_cifar_folder(folder)
    # A hand-made protocol-2 pickle calling _codecs.encode with a codec other than latin-1.
    blob = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x04\x00\x00\x00zlib\x86R."
    (folder / "test_batch").write_bytes(blob)
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", root=folder, download=False)
    assert_one_line(info.value, str(folder / "test_batch"), "delete it")


def test_cifar_bad_batches(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    arrays = write_cifar_folder(folder)
    (folder / "data_batch_1").write_bytes(py2_pickle({b"data": np.zeros((3, 100), np.uint8), b"labels": [0, 1, 2]}))
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", root=folder, download=False)
    assert_one_line(info.value, str(folder / "data_batch_1"), "(N, 3072)")

    write_cifar_folder(folder)
    imgs, labels = arrays["test_batch"]
    rows = imgs.transpose(0, 3, 1, 2).reshape(len(imgs), 3072)
    (folder / "test_batch").write_bytes(py2_pickle({b"data": rows, b"labels": [11] * len(imgs)}))
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", root=folder, download=False)
    assert_one_line(info.value, "label 11 out of range 0..9")

    (folder / "test_batch").write_bytes(py2_pickle({b"data": rows, b"labels": [1]}))
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", root=folder, download=False)
    assert_one_line(info.value, str(folder / "test_batch"), f"{len(imgs)} images but 1 labels")

    (folder / "test_batch").write_bytes(py2_pickle({b"data": rows, b"labels": [0] * len(imgs)})[:-40])
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", root=folder, download=False)
    assert_one_line(info.value, str(folder / "test_batch"), "delete it")


def test_cifar_truncated_archive(tmp_path: Path) -> None:
    blob = cifar_tar_bytes(make_cifar_arrays())
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", root=tmp_path, download=False)
    assert_one_line(info.value, str(tmp_path / "cifar-10-python.tar.gz"), "corrupt", "delete it")


# ------------------------------------------------------------------------------------------------
# IDX errors
# ------------------------------------------------------------------------------------------------


def test_wrong_magic_number(tmp_path: Path) -> None:
    arrays = write_idx_set(tmp_path, gz=True)
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(idx_bytes(arrays["train-images-idx3-ubyte"], magic=0)))
    with pytest.raises(DataError) as info:
        load_dataset("mnist", root=tmp_path, download=False)
    assert str(info.value) == (f"{bad}: wrong magic number 0x00000000 (expected 0x00000803 for uint8 images); "
                               "the file is corrupt — delete it and run again to fetch a fresh copy")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(bad)
    with pytest.raises(DataError, match="0x00000801 for uint8 labels"):
        read_idx(tmp_path / "t10k-images-idx3-ubyte.gz", kind="labels")


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_truncated_and_padded_idx(tmp_path: Path, gz: bool) -> None:
    arrays = write_idx_set(tmp_path, gz=gz)
    blob = idx_bytes(arrays["t10k-images-idx3-ubyte"])
    path = tmp_path / ("t10k-images-idx3-ubyte.gz" if gz else "t10k-images-idx3-ubyte")
    for broken, word in ((blob[:-10], "truncated"), (blob + b"\0\0", "extra bytes"), (blob[:6], "truncated")):
        path.write_bytes(gzip.compress(broken) if gz else broken)
        with pytest.raises(DataError) as info:
            load_dataset("mnist", root=tmp_path, download=False)
        assert_one_line(info.value, str(path), word, "delete it")


def test_count_mismatch(tmp_path: Path) -> None:
    arrays = write_idx_set(tmp_path, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(arrays["train-labels-idx1-ubyte"][:-1]))
    with pytest.raises(DataError) as info:
        load_dataset("mnist", root=tmp_path, download=False)
    assert_one_line(info.value, str(tmp_path / "train-images-idx3-ubyte"), "30 images but", "29 labels", "delete")


def test_labels_out_of_range(tmp_path: Path) -> None:
    write_idx_set(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.full(20, 12, np.uint8)))
    with pytest.raises(DataError) as info:
        load_dataset("mnist", root=tmp_path, download=False)
    assert_one_line(info.value, str(tmp_path / "t10k-labels-idx1-ubyte"), "label 12 out of range 0..9", "delete it")


def test_wrong_image_size(tmp_path: Path) -> None:
    write_idx_set(tmp_path, gz=False)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((20, 32, 32), np.uint8)))
    with pytest.raises(DataError) as info:
        load_dataset("mnist", root=tmp_path, download=False)
    assert_one_line(info.value, "32x32, expected 28x28")


def test_corrupt_gzip(tmp_path: Path) -> None:
    arrays = write_idx_set(tmp_path, gz=True)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    good = gzip.compress(idx_bytes(arrays["train-labels-idx1-ubyte"]))
    cases = {
        "cut short": good[: len(good) - 12],
        "garbage deflate": good[:10] + bytes(range(200)),
        "bad crc": good[:-8] + bytes(4) + good[-4:],
        "not gzip at all": b"PK\x03\x04 this is a zip file",
    }
    for case, blob in cases.items():
        path.write_bytes(blob)
        with pytest.raises(DataError) as info:
            load_dataset("mnist", root=tmp_path, download=False)
        assert_one_line(info.value, str(path), "delete it")
        assert "gzip" in str(info.value), case


def test_unreadable_idx_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        read_idx(tmp_path / "nope.gz")
    assert_one_line(info.value, str(tmp_path / "nope.gz"), "cannot read")


# ------------------------------------------------------------------------------------------------
# Search order and not-found
# ------------------------------------------------------------------------------------------------


def test_unknown_dataset_lists_known() -> None:
    with pytest.raises(InputError) as info:
        load_dataset("imagenet", download=False)
    assert_one_line(info.value, "imagenet", *KNOWN_DATASETS)
    with pytest.raises(InputError):
        prepare("svhn", download=False)


def test_search_order(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp = isolated
    # A different number of training images marks each place.
    write_idx_set(tmp / "system" / "fashion-mnist", n_train=11)
    write_idx_set(tmp / "cache" / "fashion-mnist", n_train=12, gz=False)
    write_idx_set(tmp / "env" / "fashion-mnist", n_train=13)
    write_idx_set(tmp / "root", n_train=14)
    monkeypatch.setenv("XPMLP_DATA", str(tmp / "env"))
    messages: list[str] = []

    def load(**kw):
        return load_dataset("fashion-mnist", download=False, cache_dir=tmp / "cache", log=messages.append, **kw)

    ds = load(root=tmp / "root")
    assert (len(ds.y_train), ds.origin, ds.source) == (14, "root", str(tmp / "root"))
    assert str(tmp / "root") in messages[-1] and "(root)" in messages[-1]
    with pytest.raises(DataError, match="does not hold it"):  # a root without the data never falls through
        load(root=tmp / "empty")
    ds = load()
    assert (len(ds.y_train), ds.origin, ds.source) == (13, "XPMLP_DATA", str(tmp / "env" / "fashion-mnist"))
    monkeypatch.delenv("XPMLP_DATA")
    ds = load()
    assert (len(ds.y_train), ds.origin, ds.source) == (12, "cache", str(tmp / "cache" / "fashion-mnist"))
    ds = load_dataset("fashion-mnist", download=False, cache_dir=tmp / "other-cache")
    assert (len(ds.y_train), ds.origin, ds.source) == (11, "system", str(tmp / "system" / "fashion-mnist"))
    # Without cache_dir, the (patched) user cache is used. Raw files: gz ones would be checked against the
    # real registry (the cache holds our downloads), and these are not the official files.
    write_idx_set(tmp / "usercache" / "fashion-mnist", n_train=15, gz=False)
    assert len(load_dataset("fashion-mnist", download=False).y_train) == 15


def test_search_is_logged(isolated: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_idx_set(isolated / "system" / "mnist")
    with caplog.at_level("INFO", logger="xpmlp.data"):
        load_dataset("mnist", download=False)
    assert any(str(isolated / "system" / "mnist") in r.getMessage() and "system" in r.getMessage()
               for r in caplog.records)


def test_not_found_lists_every_place(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XPMLP_DATA", str(isolated / "env"))
    write_idx_set(isolated / "env" / "fashion-mnist")
    (isolated / "env" / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist", download=False, cache_dir=isolated / "c")
    assert_one_line(
        info.value, "fashion-mnist not found", "root (not given)", "missing t10k-labels-idx1-ubyte",
        f"$XPMLP_DATA={isolated / 'env'}", str(isolated / "c" / "fashion-mnist"),
        str(isolated / "system" / "fashion-mnist"), "download (disabled)",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz",
        "apt install dataset-fashion-mnist",
    )
    monkeypatch.delenv("XPMLP_DATA")
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", download=False)
    msg = assert_one_line(info.value, "cifar10 not found", "root (not given)", "$XPMLP_DATA (not set)",
                          "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz")
    assert "apt install" not in msg
    assert files_under(isolated / "usercache") == []


def test_offline_download_lists_places(isolated: Path) -> None:
    # Port 9 on 127.0.0.1 (discard) is closed here: the download fails at once, as offline.
    with pytest.raises(DataError) as info:
        load_dataset("mnist", base_url="http://127.0.0.1:9/", cache_dir=isolated / "c")
    assert_one_line(info.value, "mnist not found", "download from http://127.0.0.1:9/ failed", "root (not given)",
                    str(isolated / "c" / "mnist"))
    assert files_under(isolated / "c") == []


# ------------------------------------------------------------------------------------------------
# Downloads against 127.0.0.1
# ------------------------------------------------------------------------------------------------


def test_download_verify_and_reuse_cache(server, isolated: Path) -> None:
    arrays, registry = served_idx_set(server)
    cache = isolated / "c"
    ds = load_dataset("mnist", cache_dir=cache, base_url=server.url, registry=registry, progressbar=False)
    check_idx_dataset(ds, arrays)
    assert ds.origin == "download" and ds.source == str(cache / "mnist")
    assert sorted(server.requests) == sorted(f"/data/{name}.gz" for name in IDX_NAMES)
    assert sorted(p.name for p in files_under(cache)) == sorted(f"{n}.gz" for n in IDX_NAMES)

    again = load_dataset("mnist", cache_dir=cache, base_url=server.url, registry=registry)
    check_idx_dataset(again, arrays)
    assert again.origin == "cache" and len(server.requests) == 4  # no second request


def test_download_url_from_environment(server, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays, registry = served_idx_set(server)
    monkeypatch.setenv("XPMLP_DATA_URL", server.url)
    monkeypatch.setitem(data.REGISTRY, "fashion-mnist", registry)
    ds = load_dataset("fashion-mnist")
    check_idx_dataset(ds, arrays)
    assert ds.origin == "download" and ds.source == str(isolated / "usercache" / "fashion-mnist")


def test_download_cifar_archive(server, isolated: Path) -> None:
    arrays = make_cifar_arrays()
    blob = cifar_tar_bytes(arrays)
    server.files["cifar-10-python.tar.gz"] = blob
    registry = {"cifar-10-python.tar.gz": "md5:" + hashlib.md5(blob).hexdigest()}  # md5 works too
    ds = load_dataset("cifar10", cache_dir=isolated / "c", base_url=server.url, registry=registry)
    check_cifar(ds, arrays)
    assert ds.source == str(isolated / "c" / "cifar10" / "cifar-10-python.tar.gz")
    assert files_under(isolated / "c") == [isolated / "c" / "cifar10" / "cifar-10-python.tar.gz"]


def test_download_hash_mismatch_keeps_nothing(server, isolated: Path) -> None:
    _, registry = served_idx_set(server)
    registry["train-images-idx3-ubyte.gz"] = "sha256:" + "0" * 64
    cache = isolated / "c"
    with pytest.raises(DataError) as info:
        load_dataset("mnist", cache_dir=cache, base_url=server.url, registry=registry)
    assert_one_line(info.value, f"{server.url}train-images-idx3-ubyte.gz", "checksum", "nothing was saved")
    assert not any(p.name.startswith("train-images") or p.name.startswith("tmp") for p in files_under(cache))
    assert all(p.name in registry and p.name != "train-images-idx3-ubyte.gz" for p in files_under(cache))


def test_interrupted_download_leaves_no_partial_file(server, isolated: Path) -> None:
    arrays, registry = served_idx_set(server)
    server.truncate.add("t10k-images-idx3-ubyte.gz")
    cache = isolated / "c"
    with pytest.raises(DataError) as info:
        load_dataset("mnist", cache_dir=cache, base_url=server.url, registry=registry)
    assert_one_line(info.value, "mnist not found", "download from", "failed")
    # Files fetched before the failure are complete and verified; the interrupted one left nothing.
    names = [p.name for p in files_under(cache)]
    assert "t10k-images-idx3-ubyte.gz" not in names and all(n in registry for n in names)
    # Once the server behaves, the next run completes the set.
    server.truncate.clear()
    check_idx_dataset(load_dataset("mnist", cache_dir=cache, base_url=server.url, registry=registry), arrays)


def test_corrupt_cached_file_is_reported(server, isolated: Path) -> None:
    _, registry = served_idx_set(server)
    cache = isolated / "c"
    load_dataset("mnist", cache_dir=cache, base_url=server.url, registry=registry)
    bad = cache / "mnist" / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-3])
    with pytest.raises(DataError) as info:
        load_dataset("mnist", cache_dir=cache, base_url=server.url, registry=registry)
    assert_one_line(info.value, str(bad), "checksum mismatch", "delete it and run again")


def test_builtin_registry_is_well_formed() -> None:
    assert set(data.REGISTRY) == set(KNOWN_DATASETS) == set(data.BASE_URLS) == set(data.DEFAULT_VAL_SIZE)
    for files in data.REGISTRY.values():
        for known in files.values():
            assert known is not None
            alg, _, digest = known.partition(":")
            assert (alg, len(digest)) in {("sha256", 64), ("md5", 32)}
            int(digest, 16)


# ------------------------------------------------------------------------------------------------
# Splits
# ------------------------------------------------------------------------------------------------


def _labels(counts: list[int]) -> np.ndarray:
    return np.repeat(np.arange(len(counts)), counts).astype(np.int64)


def test_split_sizes_stratified_deterministic_disjoint() -> None:
    y = np.random.default_rng(3).permutation(_labels([600, 300, 100]))
    x = np.arange(len(y) * 2).reshape(len(y), 2)  # row i holds 2i, 2i+1: identifies the example
    x_tr, y_tr, x_val, y_val = train_val_split(x, y, 100, seed=5)
    assert (len(y_tr), len(y_val)) == (900, 100)
    assert Counter(y_val.tolist()) == {0: 60, 1: 30, 2: 10}
    tr_ids, val_ids = set(x_tr[:, 0] // 2), set(x_val[:, 0] // 2)
    assert not tr_ids & val_ids and len(tr_ids | val_ids) == 1000
    np.testing.assert_array_equal(y[x_val[:, 0] // 2], y_val)  # x and y stay aligned
    again = train_val_split(x, y, 100, seed=5)
    np.testing.assert_array_equal(again[2], x_val)
    other = train_val_split(x, y, 100, seed=6)
    assert set(other[2][:, 0]) != set(x_val[:, 0])


def test_split_rounding_fixed_up_to_exact_total() -> None:
    y = _labels([10, 10, 10])
    x = np.zeros((30, 1))
    _, _, _, y_val = train_val_split(x, y, 4, seed=0)  # 4/3 each: one class gets the extra one
    assert len(y_val) == 4 and sorted(Counter(y_val.tolist()).values()) == [1, 1, 2]


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(1, 40), min_size=1, max_size=6), frac=st.floats(0, 0.99),
       seed=st.integers(0, 2**32 - 1))
def test_split_property(counts: list[int], frac: float, seed: int) -> None:
    y = _labels(counts)
    n = len(y)
    val = min(int(frac * n), n - 1)
    x = np.arange(n)
    x_tr, y_tr, x_val, y_val = train_val_split(x, y, val, seed)
    assert len(y_val) == val and len(y_tr) == n - val
    assert set(x_tr.tolist()).isdisjoint(x_val.tolist())
    got = Counter(y_val.tolist())
    for c, count in enumerate(counts):
        assert abs(got.get(c, 0) - val * count / n) < 1  # each class within rounding of its share


def test_split_edge_cases() -> None:
    x, y = np.arange(20).reshape(10, 2), _labels([5, 5])
    x_tr, y_tr, x_val, y_val = train_val_split(x, y, 0, seed=1)
    assert x_tr.shape == (10, 2) and x_val.shape == (0, 2) and y_val.shape == (0,)
    for bad in (10, 11, -1, 2.5, True):
        with pytest.raises(InputError):
            train_val_split(x, y, bad, seed=1)
    with pytest.raises(InputError):
        train_val_split(x, y[:-1], 2, seed=1)
    with pytest.raises(InputError):
        train_val_split(x, y.astype(float), 2, seed=1)


def test_stratified_subset_keeps_balance() -> None:
    y = np.random.default_rng(0).permutation(_labels([500, 250, 250]))
    x = np.arange(len(y))
    xs, ys = stratified_subset(x, y, 100, seed=2)
    assert Counter(ys.tolist()) == {0: 50, 1: 25, 2: 25}
    np.testing.assert_array_equal(y[xs], ys)
    np.testing.assert_array_equal(stratified_subset(x, y, 100, seed=2)[0], xs)
    assert len(stratified_subset(x, y, 1000, seed=2)[0]) == 1000
    for bad in (0, 1001):
        with pytest.raises(InputError):
            stratified_subset(x, y, bad, seed=0)


# ------------------------------------------------------------------------------------------------
# Preprocessing
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    train = rng.integers(0, 256, (200, 4, 4, 3), dtype=np.uint8)
    train[:, 0, 0, 0] = 17  # a constant feature: standardize must not divide by zero
    other = rng.integers(0, 256, (50, 4, 4, 3), dtype=np.uint8)
    return train, other


def test_scale(images) -> None:
    train, other = images
    pre = Preprocessor()
    out = pre.fit(train).transform(other)
    assert out.dtype == np.float32 and out.shape == (50, 48)
    assert out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(out, other.reshape(50, -1) / 255.0, rtol=1e-6)
    full = Preprocessor("scale").transform(np.array([[0, 255]], np.uint8))
    np.testing.assert_array_equal(full, [[0.0, 1.0]])


def test_standardize(images) -> None:
    train, other = images
    pre = Preprocessor("standardize").fit(train)
    out = pre.transform(train)
    assert out.dtype == np.float32 and out.shape == (200, 48)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-4)
    std = out.std(axis=0)
    np.testing.assert_allclose(std[1:], 1, atol=1e-3)
    assert std[0] == 0 and pre.std[0] == 1  # the constant feature is divided by 1
    # Statistics come from the data it was fitted on, not the data it transforms.
    moved = pre.transform(other)
    np.testing.assert_allclose(moved, (other.reshape(50, -1) - pre.mean) / pre.std, rtol=1e-5, atol=1e-5)
    assert abs(moved.mean()) > 1e-4 or abs(moved.std() - 1) > 1e-4


def test_mean_image(images) -> None:
    train, other = images
    pre = Preprocessor("mean-image").fit(train)
    np.testing.assert_allclose(pre.mean, train.reshape(200, -1).mean(axis=0), rtol=1e-6)
    out = pre.transform(other)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, other.reshape(50, -1).astype(np.float64) - pre.mean, atol=1e-4)
    np.testing.assert_allclose(pre.transform(train).mean(axis=0), 0, atol=1e-3)


@pytest.mark.parametrize("method", data.PREPROCESS_METHODS)
def test_state_dict_round_trip(images, method: str, tmp_path: Path) -> None:
    train, other = images
    pre = Preprocessor(method).fit(train)
    state = pre.state_dict()
    assert state["method"] == method and all(isinstance(v, (str, np.ndarray)) for v in state.values())
    back = Preprocessor.from_state_dict(state)
    np.testing.assert_array_equal(back.transform(other), pre.transform(other))
    np.savez(tmp_path / "pre.npz", **state)  # and through an npz file, where "method" becomes a 0-d array
    with np.load(tmp_path / "pre.npz") as loaded:
        again = Preprocessor.from_state_dict(dict(loaded))
    np.testing.assert_array_equal(again.transform(other), pre.transform(other))


def test_preprocessor_errors(images) -> None:
    train, _ = images
    with pytest.raises(InputError) as info:
        Preprocessor("whiten")
    assert_one_line(info.value, "whiten", *data.PREPROCESS_METHODS)
    with pytest.raises(InputError, match="fitted"):
        Preprocessor("standardize").transform(train)
    pre = Preprocessor("mean-image").fit(train)
    with pytest.raises(InputError, match="features"):
        pre.transform(np.zeros((2, 5), np.uint8))
    with pytest.raises(InputError, match="NaN"):
        pre.transform(np.full((2, 48), np.nan, np.float32))
    with pytest.raises(InputError, match="lacks"):
        Preprocessor.from_state_dict({"method": "standardize", "mean": np.zeros(48, np.float32)})
    empty = pre.transform(np.zeros((0, 4, 4, 3), np.uint8))
    assert empty.shape == (0, 48) and empty.dtype == np.float32


# ------------------------------------------------------------------------------------------------
# prepare()
# ------------------------------------------------------------------------------------------------


def test_prepare_defaults_and_config(isolated: Path) -> None:
    write_idx_set(isolated / "system" / "fashion-mnist", n_train=6000, n_test=50)
    p = prepare("fashion-mnist", download=False, seed=3)
    assert (p.x_train.shape, p.x_val.shape, p.x_test.shape) == ((1000, 784), (5000, 784), (50, 784))
    assert p.x_train.dtype == p.x_val.dtype == p.x_test.dtype == np.float32
    assert p.y_train.dtype == np.int64 and p.x_train.max() <= 1.0
    assert Counter(p.y_val.tolist()) == dict.fromkeys(range(10), 500)
    assert p.classes[0] == "T-shirt/top" and p.image_shape == (28, 28, 1) and p.num_features == 784
    assert p.source == str(isolated / "system" / "fashion-mnist")
    cfg = p.config
    assert {k: cfg[k] for k in ("name", "source", "preprocess", "val_size", "subset", "seed")} == {
        "name": "fashion-mnist", "source": p.source, "preprocess": "scale", "val_size": 5000, "subset": None,
        "seed": 3}
    json.dumps(cfg)  # recordable in a run's config


def test_prepare_subset_and_fit_on_train_only(isolated: Path) -> None:
    write_idx_set(isolated / "c" / "mnist", n_train=400, n_test=30, gz=False)  # raw: not checked against the registry
    p = prepare("mnist", subset=200, preprocess="mean-image", seed=1, download=False, cache_dir=isolated / "c")
    # 200 is below the default 5,000: val_size becomes 20 and the config says why.
    assert (len(p.y_train), len(p.y_val), len(p.y_test)) == (180, 20, 30)
    assert p.config["val_size"] == 20 and "subset // 10" in p.config["note"]
    assert Counter(p.y_train.tolist()) == dict.fromkeys(range(10), 18)
    # The statistics are those of the 180 training rows: their transformed mean is zero, the others' is not.
    np.testing.assert_allclose(p.x_train.mean(axis=0), 0, atol=1e-3)
    raw = load_dataset("mnist", download=False, cache_dir=isolated / "c")
    pool_x, pool_y = stratified_subset(raw.x_train, raw.y_train, 200, 1)
    x_tr, _, _, _ = train_val_split(pool_x, pool_y, 20, 1)
    np.testing.assert_allclose(p.preprocessor.mean, x_tr.reshape(180, -1).mean(axis=0), rtol=1e-5)

    q = prepare("mnist", subset=200, val_size=50, test_subset=10, download=False, cache_dir=isolated / "c")
    assert (len(q.y_train), len(q.y_val), len(q.y_test)) == (150, 50, 10) and "note" not in q.config
    with pytest.raises(InputError):
        prepare("mnist", subset=200, val_size=200, download=False, cache_dir=isolated / "c")
    with pytest.raises(InputError, match="known"):
        prepare("mnist", preprocess="pca", download=False, cache_dir=isolated / "c")


def test_prepare_cifar_default_val_size(tmp_path: Path) -> None:
    write_cifar_folder(tmp_path / "cifar-10-batches-py", per_batch=220)
    p = prepare("cifar10", root=tmp_path, preprocess="standardize", download=False)
    assert (p.x_train.shape, p.x_val.shape, p.x_test.shape) == ((100, 3072), (1000, 3072), (220, 3072))
    np.testing.assert_allclose(p.x_train.mean(axis=0), 0, atol=1e-3)


# ------------------------------------------------------------------------------------------------
# The real Fashion-MNIST (Debian's dataset-fashion-mnist package)
# ------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not REAL_FASHION.is_dir(), reason="needs /usr/share/datasets/fashion-mnist (dataset-fashion-mnist)")
def test_real_fashion_mnist_from_system_folder(monkeypatch: pytest.MonkeyPatch, isolated: Path) -> None:
    monkeypatch.setattr(locate_module, "SYSTEM_DATA_DIRS", (str(REAL_FASHION.parent),))
    ds = load_dataset("fashion-mnist", download=False)
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    assert np.bincount(ds.y_train).tolist() == [6000] * 10
    assert np.bincount(ds.y_test).tolist() == [1000] * 10
    assert ds.y_train.min() == 0 and ds.y_train.max() == 9
    assert ds.origin == "system" and ds.source == str(REAL_FASHION)
