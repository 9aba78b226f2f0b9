"""Faults in xpmlp.data that must never lose, mix or mislabel results: an explicit data folder that does
not hold the data, relative folders, the training-data fingerprint, CIFAR-10 pickles that try to allocate
more than they carry, unreadable folders, and odd arrays given to the preprocessors.

The writers, the server and the autouse `isolated` fixture come from test_data.py.
"""

from __future__ import annotations

import errno
import os
import pickle
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import test_data
from test_data import (
    IDX_NAMES,
    assert_one_line,
    check_cifar,
    cifar_blobs,
    make_cifar_arrays,
    py2_pickle,
    served_idx_set,
    write_cifar_folder,
    write_idx_set,
)

from xpmlp import data
from xpmlp.data import Preprocessor, check_fingerprint, data_fingerprint, load_dataset, prepare, resolve_root
from xpmlp.errors import DataError, InputError

# test_data's fixtures, active here too: `isolated` (autouse: no real cache, $XPMLP_DATA or system folder)
# and `server` (a download server on 127.0.0.1).
isolated = test_data.isolated
server = test_data.server

# ------------------------------------------------------------------------------------------------
# An explicit data folder: used, or an error; never a fallback or a download
# ------------------------------------------------------------------------------------------------


def _everything_elsewhere(isolated: Path, server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fashion-MNIST in $XPMLP_DATA, the cache, the system folder and on the download server."""
    write_idx_set(isolated / "env" / "fashion-mnist")
    write_idx_set(isolated / "usercache" / "fashion-mnist", gz=False)
    write_idx_set(isolated / "system" / "fashion-mnist")
    _, registry = served_idx_set(server)
    monkeypatch.setenv("XPMLP_DATA", str(isolated / "env"))
    monkeypatch.setenv("XPMLP_DATA_URL", server.url)
    monkeypatch.setitem(data.REGISTRY, "fashion-mnist", registry)


@pytest.mark.parametrize("case", ["empty", "missing", "partial", "wrong dataset"])
def test_explicit_root_without_the_data_is_an_error(isolated: Path, server, monkeypatch: pytest.MonkeyPatch,
                                                    case: str) -> None:
    _everything_elsewhere(isolated, server, monkeypatch)
    root = isolated / "given"
    if case == "empty":
        root.mkdir()
    elif case == "partial":
        write_idx_set(root)
        (root / "t10k-labels-idx1-ubyte.gz").unlink()
    elif case == "wrong dataset":
        write_cifar_folder(root / "cifar-10-batches-py")
    for call in (lambda: load_dataset("fashion-mnist", root=root),
                 lambda: prepare("fashion-mnist", root=root, val_size=5)):
        with pytest.raises(DataError) as info:
            call()
        msg = assert_one_line(info.value, f"fashion-mnist: the data folder {root}", "does not hold it",
                              *(f"{n}.gz" for n in IDX_NAMES), "fashion-mnist/", "FashionMNIST/raw/")
        assert ("does not exist" in msg) == (case == "missing")
        assert ("missing t10k-labels-idx1-ubyte" in msg) == (case == "partial")
    assert server.requests == []  # no download either


def test_explicit_cifar_root_names_the_batches_and_archive(isolated: Path) -> None:
    write_cifar_folder(isolated / "system" / "cifar-10-batches-py")
    (isolated / "given").mkdir()
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", root=isolated / "given", download=False)
    assert_one_line(info.value, str(isolated / "given"), "data_batch_1", "test_batch", "cifar-10-python.tar.gz",
                    "cifar-10-batches-py/")


def test_relative_root_is_resolved_and_recorded_absolute(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_idx_set(isolated / "work" / "files", n_train=40)
    monkeypatch.chdir(isolated / "work")
    assert resolve_root("files") == str(isolated / "work" / "files")
    assert resolve_root("./x/../files") == str(isolated / "work" / "files")
    assert resolve_root(None) is None
    with pytest.raises(InputError, match="must be a path"):
        resolve_root(5)  # type: ignore[arg-type]
    monkeypatch.setenv("HOME", str(isolated / "home"))
    assert resolve_root("~/d") == str(isolated / "home" / "d")
    ds = load_dataset("mnist", root="files", download=False)
    assert ds.source == str(isolated / "work" / "files") and ds.origin == "root"
    p = prepare("mnist", root=Path("files"), val_size=10, download=False)
    assert p.config["root"] == p.source == str(isolated / "work" / "files")
    monkeypatch.setenv("XPMLP_DATA", "files")  # a relative $XPMLP_DATA is recorded absolute too
    assert load_dataset("mnist", download=False).source == str(isolated / "work" / "files")


# ------------------------------------------------------------------------------------------------
# The training-data fingerprint
# ------------------------------------------------------------------------------------------------


def test_fingerprint_tells_training_data_apart(isolated: Path) -> None:
    write_idx_set(isolated / "a", n_train=200)
    write_idx_set(isolated / "b", n_train=200)  # the same files in another folder
    base = {"val_size": 20, "subset": None, "seed": 0, "preprocess": "scale", "download": False}

    def fp(root: str = "a", **kw: object) -> str:
        return prepare("mnist", root=isolated / root, **{**base, **kw}).fingerprint

    first = fp()
    assert first.startswith("sha256:") and len(first) == 7 + 64
    assert prepare("mnist", root=isolated / "a", **base).config["fingerprint"] == first
    assert fp("b") == first  # where the files lie does not matter, only what they hold
    assert fp(test_subset=10) == first  # the test set is not training data
    changed = {fp(seed=1), fp(val_size=30), fp(subset=150), fp(preprocess="standardize")}
    assert first not in changed and len(changed) == 4
    write_idx_set(isolated / "c", n_train=200, seed=5)  # other pixels
    assert fp("c") != first
    p = prepare("mnist", root=isolated / "a", **base)
    assert data_fingerprint("mnist", "scale", *_raw_split(isolated / "a")) == first
    check_fingerprint(first, p, "run/checkpoint.npz")  # the same data: nothing to say
    with pytest.raises(DataError) as info:
        check_fingerprint(fp(seed=1), p, "run/checkpoint.npz")
    assert_one_line(info.value, "run/checkpoint.npz", first, str(isolated / "a"))


def _raw_split(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ds = load_dataset("mnist", root=root, download=False)
    return data.train_val_split(ds.x_train, ds.y_train, 20, 0)


def test_fingerprint_refuses_odd_input() -> None:
    with pytest.raises(DataError, match="not an xpmlp data fingerprint"):
        check_fingerprint("md5:1234", "sha256:" + "0" * 64, "ckpt")
    with pytest.raises(InputError):
        data_fingerprint("mnist", "scale", None, np.zeros(1, np.int64), np.zeros((0, 1)), np.zeros(0, np.int64))


# ------------------------------------------------------------------------------------------------
# CIFAR-10 pickles that would allocate more than they carry
# ------------------------------------------------------------------------------------------------

_RECONSTRUCT = np.ndarray.__reduce__(np.empty(0))[0]
_HUGE = (100_000, 3072)


class _Reduce:
    """Pickles as ``func(*args)`` (then ``__setstate__(state)`` when state is given), as a crafted file would."""

    def __init__(self, func: object, args: tuple, state: object = None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _frombuffer_func():
    return np.ndarray.__reduce_ex__(np.zeros(1, np.uint8), 5)[0]


BOMBS = {
    "blank _reconstruct": lambda: _Reduce(_RECONSTRUCT, (np.ndarray, _HUGE, b"B")),
    "numpy.ndarray call": lambda: _Reduce(np.ndarray, (_HUGE, "u1")),
    "setstate shape": lambda: _Reduce(_RECONSTRUCT, (np.ndarray, (0,), b"b"),
                                      (1, _HUGE, np.dtype(np.uint8), False, b"\0" * 8)),
    "protocol-5 frombuffer": lambda: _Reduce(_frombuffer_func(), (bytearray(8), np.dtype(np.uint8), _HUGE, "C")),
}


@pytest.mark.parametrize("kind", list(BOMBS))
def test_cifar_pickle_bomb_refused_without_allocating(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "c"
    write_cifar_folder(folder)
    labels = _Reduce(_RECONSTRUCT, (np.ndarray, (_HUGE[0],), b"B"))
    protocol = 5 if "protocol-5" in kind else 2
    blob = pickle.dumps({b"data": BOMBS[kind](), b"labels": labels, b"batch_label": b"x"}, protocol=protocol)
    assert len(blob) < 400
    (folder / "data_batch_1").write_bytes(blob)
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as info:
            load_dataset("cifar10", root=folder, download=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4_000_000, f"{peak:,} bytes allocated for a {len(blob)}-byte pickle"
    msg = assert_one_line(info.value, str(folder / "data_batch_1"), "refusing")
    assert "100000" in msg.replace(",", "") or "numpy.ndarray" in msg


def test_cifar_protocol5_repickled_batches_are_accepted(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    arrays = make_cifar_arrays()
    for fname, blob in cifar_blobs(arrays).items():
        batch = pickle.loads(blob, encoding="bytes")
        (folder / fname).parent.mkdir(parents=True, exist_ok=True)
        (folder / fname).write_bytes(pickle.dumps({k.decode(): v for k, v in batch.items()}, protocol=5))
    check_cifar(load_dataset("cifar10", root=folder, download=False), arrays)


def test_cifar_out_of_band_buffers_are_named(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    write_cifar_folder(folder)
    rows = np.zeros((10, 3072), np.uint8)
    blob = pickle.dumps({"data": rows, "labels": [0] * 10}, protocol=5, buffer_callback=lambda b: False)
    (folder / "data_batch_2").write_bytes(blob)
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", root=folder, download=False)
    assert_one_line(info.value, str(folder / "data_batch_2"), "out-of-band", "protocol 5")


def _batch(data: object, labels: object) -> bytes:
    return py2_pickle({b"data": data, b"labels": labels})


@pytest.mark.parametrize("case, blob, expected", [
    ("float labels", lambda r: _batch(r, [0.5] * 10), "'labels'"),
    ("bool labels", lambda r: _batch(r, [True] * 10), "'labels'"),
    ("object array", lambda r: _batch(np.array([[1]] * 10, dtype=object), list(range(10))), "dtype"),
    ("int32 data", lambda r: _batch(r.astype(np.int32), list(range(10))), "uint8"),
    ("ragged bytes", lambda r: _batch(r.tobytes()[:-1], list(range(10))), "3072"),
])
def test_cifar_batch_layout_is_checked(tmp_path: Path, case: str, blob, expected: str) -> None:
    folder = tmp_path / "c"
    arrays = write_cifar_folder(folder)
    rows = arrays["data_batch_4"][0].transpose(0, 3, 1, 2).reshape(10, 3072)
    (folder / "data_batch_4").write_bytes(blob(rows))
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", root=folder, download=False)
    assert_one_line(info.value, str(folder / "data_batch_4"), expected)


def test_cifar_data_as_raw_bytes_is_accepted(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    arrays = write_cifar_folder(folder)
    images, labels = arrays["data_batch_2"]
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    (folder / "data_batch_2").write_bytes(_batch(rows.tobytes(), [int(v) for v in labels]))
    check_cifar(load_dataset("cifar10", root=folder, download=False), arrays)


def test_cifar_batch_larger_than_the_real_ones_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    write_cifar_folder(folder)
    (folder / "test_batch").write_bytes(pickle.dumps({"data": np.zeros((10_001, 3072), np.uint8),
                                                      "labels": [0] * 10_001}, protocol=4))
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", root=folder, download=False)
    assert_one_line(info.value, str(folder / "test_batch"), "10001", "10000")


# ------------------------------------------------------------------------------------------------
# Folders that cannot be read
# ------------------------------------------------------------------------------------------------


def _deny_below(monkeypatch: pytest.MonkeyPatch, locked: Path) -> None:
    """Make stat() of anything inside ``locked`` fail with EACCES, as for a folder without search permission."""
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        p = Path(os.fsdecode(path)) if not isinstance(path, int) else None
        if p is not None and locked in p.parents:
            raise PermissionError(errno.EACCES, "Permission denied", str(p))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)


@pytest.mark.parametrize("where", ["root", "XPMLP_DATA", "system"])
def test_unsearchable_data_folder_is_one_line(isolated: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    folders = {"root": isolated / "given", "XPMLP_DATA": isolated / "env", "system": isolated / "system"}
    locked = folders[where]
    write_idx_set(locked / "fashion-mnist")
    if where == "XPMLP_DATA":
        monkeypatch.setenv("XPMLP_DATA", str(locked))
    _deny_below(monkeypatch, locked)
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist", root=locked if where == "root" else None, download=False)
    assert_one_line(info.value, str(locked), "Permission denied", "chmod")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores file permissions")
def test_unreadable_data_folder_real_permissions(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    write_idx_set(locked)
    locked.chmod(0)
    try:
        with pytest.raises(DataError) as info:
            load_dataset("mnist", root=locked, download=False)
    finally:
        locked.chmod(0o755)
    assert_one_line(info.value, str(locked), "chmod")


# ------------------------------------------------------------------------------------------------
# Odd arrays given to the preprocessors
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", data.PREPROCESS_METHODS)
@pytest.mark.parametrize("bad, expected", [
    (None, "None"),
    ([[1, 2], [3]], "ragged"),
    (np.array([[1, 2], [3]], dtype=object), "numbers"),
    ("abc", "shape"),
    (np.zeros(3), "(N, ...)"),
    (np.zeros((3, 0)), "no features"),
    (np.zeros((2, 2), dtype=complex), "numbers"),
])
def test_preprocessor_odd_input_is_one_line(method: str, bad: object, expected: str) -> None:
    with pytest.raises(InputError) as info:
        Preprocessor(method).fit(bad)  # type: ignore[arg-type]
    assert_one_line(info.value, expected)
    fitted = Preprocessor(method).fit(np.arange(12, dtype=np.uint8).reshape(3, 4))
    with pytest.raises(InputError) as info:
        fitted.transform(bad)  # type: ignore[arg-type]
    assert_one_line(info.value, expected)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("method", data.PREPROCESS_METHODS)
def test_preprocessor_takes_array_likes(method: str) -> None:
    rows = np.arange(12, dtype=np.float64).reshape(3, 4)
    want = Preprocessor(method).fit(rows).transform(rows)
    for like in (rows.tolist(), np.asmatrix(rows)):
        got = Preprocessor(method).fit(like).transform(like)  # type: ignore[arg-type]
        assert type(got) is np.ndarray
        np.testing.assert_array_equal(got, want)
