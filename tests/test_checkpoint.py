"""Tests for xpmlp.checkpoint (save/load of nested dicts, atomic writes, refusals) and for
loading a run's checkpoint on another backend than the one that wrote it (runs.load_model).

Expected values are written by hand here or computed with plain NumPy, never by the code
under test.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from xpmlp import checkpoint as ckpt
from xpmlp import runs
from xpmlp.errors import CheckpointError
from xpmlp.io import atomic_write_json


def _tree() -> dict:
    """A nested dict with every kind of leaf a checkpoint holds."""
    return {
        "model": {
            "W1": np.array([[1.0, -2.5], [np.pi, -0.0]], dtype=np.float64),
            "b1": np.array([0.1, 0.2], dtype=np.float32),
            "W2": np.array([[np.nan, np.inf], [-np.inf, 5e-324]], dtype=np.float64),
        },
        "counts": np.arange(7, dtype=np.int64),
        "pixels": np.array([[0, 255], [17, 128]], dtype=np.uint8),
        "mask": np.array([True, False, True]),
        "scalar0d": np.array(2.75, dtype=np.float64),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "step": 1234,
        "lr": 0.012345678901234567,
        "flag": False,
        "name": "Fashion-MNIST — ünïcode ✓",
        "nothing": None,
        "widths": [500, 500],
        "classes": ["T-shirt/top", "Trouser"],
        "deep": {"a": {"b": {"c": np.array([3, 1, 2], dtype=np.int32), "d": "leaf", "e": None}}, "f": 1.5},
        "empty_dict": {},
    }


def _assert_same_array(got, want) -> None:
    assert isinstance(got, np.ndarray)
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    assert got.tobytes() == want.tobytes()  # bit-identical, NaN, inf, -0.0 and subnormals included


# -- round trip ----------------------------------------------------------------------

def test_round_trip_of_nested_dict_is_exact(tmp_path: Path) -> None:
    tree = _tree()
    path = tmp_path / "ckpt.npz"
    returned = ckpt.save(path, tree)
    assert Path(returned) == path
    back = ckpt.load(path)

    assert set(back) == set(tree)
    for key in ("counts", "pixels", "mask", "scalar0d", "empty"):
        _assert_same_array(back[key], tree[key])
    assert set(back["model"]) == {"W1", "b1", "W2"}
    for key in ("W1", "b1", "W2"):
        _assert_same_array(back["model"][key], tree["model"][key])
    assert np.signbit(back["model"]["W1"][1, 1])  # -0.0 kept its sign
    _assert_same_array(back["deep"]["a"]["b"]["c"], tree["deep"]["a"]["b"]["c"])

    assert back["step"] == 1234 and isinstance(back["step"], int)
    assert back["lr"] == 0.012345678901234567
    assert back["flag"] is False
    assert back["name"] == "Fashion-MNIST — ünïcode ✓"
    assert back["nothing"] is None
    assert back["widths"] == [500, 500]
    assert back["classes"] == ["T-shirt/top", "Trouser"]
    assert back["deep"]["a"]["b"]["d"] == "leaf"
    assert back["deep"]["a"]["b"]["e"] is None
    assert back["deep"]["f"] == 1.5
    assert back["empty_dict"] == {}


def test_saved_file_is_a_plain_npz_without_pickles(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.npz"
    ckpt.save(path, {"model": {"W1": np.ones((2, 2))}, "note": "x"})
    # readable by NumPy alone with pickles refused: arrays under path-like keys plus one metadata entry
    with np.load(path, allow_pickle=False) as z:
        assert sorted(z.files) == ["__meta__", "model/W1"]
        meta = json.loads(z["__meta__"].tobytes().decode("utf-8"))
    assert meta["format"] == "xpmlp-checkpoint"
    assert meta["tree"]["note"] == "x"


def test_numpy_scalars_are_stored_as_python_numbers(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.npz"
    ckpt.save(path, {"a": np.float64(0.5), "b": np.int64(7)})
    back = ckpt.load(path)
    assert back == {"a": 0.5, "b": 7}


def test_key_with_slash_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.npz"
    with pytest.raises(CheckpointError, match="/"):
        ckpt.save(path, {"model": {"W/1": np.ones(2)}})
    assert not path.exists()


def test_save_replaces_an_older_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.npz"
    ckpt.save(path, {"step": 1, "w": np.zeros(3)})
    ckpt.save(path, {"step": 2, "w": np.ones(3)})
    back = ckpt.load(path)
    assert back["step"] == 2
    _assert_same_array(back["w"], np.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]


def test_save_creates_missing_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "ckpt.npz"
    ckpt.save(path, {"x": np.arange(3)})
    _assert_same_array(ckpt.load(path)["x"], np.arange(3))


# -- atomic writes ---------------------------------------------------------------------

def _crash(*args, **kwargs):
    raise OSError(28, "No space left on device (simulated)")


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("target", ["replace", "fsync"])
@pytest.mark.parametrize("failure", [_crash, _interrupt], ids=["oserror", "ctrl-c"])
def test_crash_mid_write_keeps_old_checkpoint_and_leaves_no_temp_file(tmp_path, monkeypatch, target, failure):
    path = tmp_path / "ckpt.npz"
    old = {"step": 10, "model": {"W1": np.full((3, 2), 1.5)}}
    ckpt.save(path, old)
    before = path.read_bytes()

    monkeypatch.setattr(os, target, failure)
    expected = KeyboardInterrupt if failure is _interrupt else OSError
    with pytest.raises(expected):
        ckpt.save(path, {"step": 20, "model": {"W1": np.zeros((3, 2))}})
    monkeypatch.undo()

    assert path.read_bytes() == before
    back = ckpt.load(path)
    assert back["step"] == 10
    _assert_same_array(back["model"]["W1"], np.full((3, 2), 1.5))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]


def test_crash_in_the_middle_of_writing_the_bytes(tmp_path, monkeypatch) -> None:
    """The data is half written to the temp file when the write fails."""
    path = tmp_path / "ckpt.npz"
    ckpt.save(path, {"step": 1, "w": np.arange(1000.0)})
    before = path.read_bytes()
    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()
            return False

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise OSError(5, "I/O error (simulated)")

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(os, "fdopen", lambda fd, mode="r", *a, **k: HalfWriter(real_fdopen(fd, mode, *a, **k)))
    with pytest.raises(OSError, match="simulated"):
        ckpt.save(path, {"step": 2, "w": np.zeros(1000)})
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert ckpt.load(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]


def test_atomic_json_write_failure_keeps_old_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "metrics.json"
    atomic_write_json(path, {"test_acc": 0.5})
    monkeypatch.setattr(os, "replace", _crash)
    with pytest.raises(OSError):
        atomic_write_json(path, {"test_acc": 0.9})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"test_acc": 0.5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_atomic_json_converts_numpy_values(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    atomic_write_json(path, {"a": np.float32(0.5), "b": np.arange(3), "c": tmp_path})
    assert json.loads(path.read_text()) == {"a": 0.5, "b": [0, 1, 2], "c": str(tmp_path)}


def test_atomic_json_writes_null_for_nan_and_infinity(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    atomic_write_json(path, {"loss": float("nan"), "curve": [1.0, float("inf")], "w": np.array([-np.inf, 2.0])})

    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in strict JSON")

    assert json.loads(path.read_text(), parse_constant=refuse) == {"loss": None, "curve": [1.0, None],
                                                                  "w": [None, 2.0]}


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_follow_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        atomic_write_json(tmp_path / "m.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o666 & ~umask


# -- refusals ---------------------------------------------------------------------------

def _assert_refused(path: Path, *words: str) -> str:
    with pytest.raises(CheckpointError) as info:
        ckpt.load(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    assert "\n" not in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


def _good_bytes(tmp_path: Path) -> bytes:
    src = tmp_path / "good.npz"
    ckpt.save(src, {"model": {"W1": np.arange(600.0).reshape(20, 30)}, "step": 3})
    data = src.read_bytes()
    src.unlink()
    return data


def test_truncated_checkpoint_is_refused(tmp_path: Path) -> None:
    data = _good_bytes(tmp_path)
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(data[: len(data) // 2])
    _assert_refused(path, "truncated or corrupt")


def test_random_bytes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    _assert_refused(path)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(b"")
    _assert_refused(path)


def test_foreign_npz_without_metadata_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "weights.npz"
    np.savez(path, W1=np.ones((2, 2)), b1=np.zeros(2))
    _assert_refused(path, "not an xpmlp checkpoint")


def test_npz_with_foreign_metadata_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.npz"
    meta = json.dumps({"format": "something-else", "tree": {}}).encode()
    np.savez(path, __meta__=np.frombuffer(meta, dtype=np.uint8))
    _assert_refused(path, "not an xpmlp checkpoint")


def test_npz_with_garbage_metadata_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.npz"
    np.savez(path, __meta__=np.frombuffer(b"\xff\xfe not json", dtype=np.uint8))
    _assert_refused(path)


def test_npz_holding_a_pickled_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pickled.npz"
    meta = json.dumps({"format": "xpmlp-checkpoint", "version": 1, "tree": {}}).encode()
    np.savez(path, __meta__=np.frombuffer(meta, dtype=np.uint8), evil=np.array([{"a": 1}], dtype=object))
    _assert_refused(path)


def test_zip_that_is_not_an_npz_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "archive.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("__meta__.npy", b"this is not an npy file")
    _assert_refused(path)


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.npz"
    meta = json.dumps({"format": "xpmlp-checkpoint", "version": 99, "tree": {}}).encode()
    np.savez(path, __meta__=np.frombuffer(meta, dtype=np.uint8))
    _assert_refused(path, "99", "upgrade")


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_missing_file_is_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "nope.npz"
    if kind == "folder":
        path.mkdir()
    _assert_refused(path, "no such checkpoint")


# -- a run's checkpoint on another backend ----------------------------------------------

class _IdentityPreprocessor:
    def state_dict(self) -> dict:
        return {"kind": "identity"}


def _blobs(n: int = 800, d: int = 20, k: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 1.0, (k, d))
    y = rng.integers(0, k, n)
    X = centers[y] + rng.normal(0.0, 1.0, (n, d))
    return X, y


def _prepared():
    X, y = _blobs()
    return SimpleNamespace(
        x_train=X[:500], y_train=y[:500], x_val=X[500:650], y_val=y[500:650], x_test=X[650:], y_test=y[650:],
        preprocessor=_IdentityPreprocessor(), classes=["a", "b", "c", "d"], image_shape=(20,),
        source="generated blobs", config={"name": "blobs"})


def _other_specs() -> list:
    specs = [pytest.param("strict", marks=pytest.mark.needs_backend("strict")),
             pytest.param("torch", marks=pytest.mark.needs_backend("torch"))]
    return specs


def _numpy_logits(state: dict, X: np.ndarray) -> np.ndarray:
    h = np.maximum(X @ state["W1"] + state["b1"], 0.0)
    return h @ state["W2"] + state["b2"]


@pytest.fixture(scope="module")
def run_checkpoint(tmp_path_factory) -> tuple[Path, SimpleNamespace]:
    out = tmp_path_factory.mktemp("run")
    prepared = _prepared()
    cfg = runs.make_config(dataset="blobs", hidden=[16], epochs=3, batch_size=25, lr=0.05, optimizer="momentum",
                           device="cpu", dtype="float64", train_eval_size=100)
    runs.train_run(cfg, out, log=None, progress="none", prepared=prepared)
    return out / "checkpoint.npz", prepared


@pytest.mark.parametrize("spec", _other_specs())
def test_run_checkpoint_loads_on_another_backend_with_same_predictions(run_checkpoint, spec) -> None:
    path, prepared = run_checkpoint
    raw = ckpt.load(path)
    ref_logits = _numpy_logits(raw["model"], prepared.x_test)
    ref_pred = ref_logits.argmax(axis=1)
    assert (ref_pred == prepared.y_test).mean() > 0.9  # a trained model, not an initial one

    cpu_model, _ = runs.load_model(path, "cpu")
    other, tree = runs.load_model(path, spec)
    assert other.backend.name == spec
    assert other.dtype == "float64"
    assert tree["config"]["device"] == "cpu"  # written on the CPU
    # weights arrive bit for bit
    for key, want in raw["model"].items():
        _assert_same_array(other.state_dict()[key], want)
    pred_cpu = cpu_model.backend.to_numpy(cpu_model.predict(prepared.x_test))
    pred_other = other.backend.to_numpy(other.predict(prepared.x_test))
    np.testing.assert_array_equal(pred_cpu, ref_pred)
    np.testing.assert_array_equal(pred_other, ref_pred)
    logits = other.backend.to_numpy(other.forward(prepared.x_test))
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spec", ["cpu", *_other_specs()])
def test_load_model_best_weights(run_checkpoint, spec) -> None:
    path, _ = run_checkpoint
    raw = ckpt.load(path)
    assert "best" in raw
    model, _ = runs.load_model(path, spec, weights="best")
    for key, want in raw["best"].items():
        _assert_same_array(model.state_dict()[key], want)


def test_load_model_refuses_a_checkpoint_without_a_model(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.npz"
    ckpt.save(path, {"step": 3})
    with pytest.raises(CheckpointError, match="model"):
        runs.load_model(path, "cpu")


def test_load_model_refuses_corrupt_file(tmp_path: Path, run_checkpoint) -> None:
    path, _ = run_checkpoint
    bad = tmp_path / "checkpoint.npz"
    data = path.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as info:
        runs.load_model(bad, "cpu")
    assert str(bad) in str(info.value)
