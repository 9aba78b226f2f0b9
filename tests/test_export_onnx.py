"""ONNX export: the model's forward traced through ndonnx, checked with onnxruntime against xpmlp itself."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from xpmlp.cli import main
from xpmlp.errors import InputError
from xpmlp.layers import ACTIVATIONS, Dropout, Linear, ReLU, Tanh
from xpmlp.model import MLP, Sequential

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("ndonnx")

from xpmlp.export.onnx import OPSET, export_onnx, onnx_config, onnx_ops, trace_onnx  # noqa: E402

FMNIST = Path("/usr/share/datasets/fashion-mnist")
needs_fmnist = pytest.mark.skipif(not FMNIST.is_dir(), reason=f"the real Fashion-MNIST is not in {FMNIST}")
PROBA_TOL = {"float32": 1e-5, "float64": 1e-12}


def session(path_or_proto):
    data = path_or_proto.SerializeToString() if hasattr(path_or_proto, "SerializeToString") else str(path_or_proto)
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def run(sess, X):
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"x": X}), strict=True))


@pytest.fixture(scope="module")
def fashion():
    from xpmlp.data import Preprocessor, load_dataset

    ds = load_dataset("fashion-mnist", download=False)
    prep = Preprocessor("standardize").fit(ds.x_train[:6000])
    return ds, prep


def _trained(model, ds, prep):
    from xpmlp.train import Trainer
    from xpmlp.train_config import TrainConfig

    X = model.check_x(prep.transform(ds.x_train[:6000]))
    y = model.check_y(ds.y_train[:6000], 6000)
    Trainer(model, TrainConfig(epochs=1, batch_size=100, lr=0.02, optimizer="momentum"), log=None,
            progress="none").fit(X, y)
    return model


NETWORKS = [*ACTIVATIONS, "tanh>relu"]


@needs_fmnist
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("net", NETWORKS)
def test_fashion_mnist_test_set_classes_identical_and_probabilities_close(fashion, net, dtype, tmp_path):
    ds, prep = fashion
    if net == "tanh>relu":
        model = Sequential([Linear(784, 64), Tanh(), Linear(64, 32), ReLU(), Linear(32, 10)], backend="cpu",
                           dtype=dtype, seed=3)
    else:
        model = MLP([784, 64, 32, 10], activation=net, backend="cpu", dtype=dtype, seed=3, dropout=0.1)
    _trained(model, ds, prep)
    path = export_onnx(model, tmp_path / "model.onnx", preprocessor=prep)
    onnx.checker.check_model(str(path), full_check=True)
    raw = ds.x_test.reshape(len(ds.x_test), -1).astype(dtype)  # raw 0-255 pixels: the graph preprocesses
    got = run(session(path), raw)
    X = model.check_x(prep.transform(ds.x_test))
    want_p = model.backend.to_numpy(model.predict_proba(X))
    want_z = model.backend.to_numpy(model.forward(X))
    assert got["probabilities"].dtype == np.dtype(dtype) and got["probabilities"].shape == (10000, 10)
    np.testing.assert_array_equal(got["probabilities"].argmax(axis=1), model.backend.to_numpy(model.predict(X)))
    assert np.abs(got["probabilities"] - want_p).max() <= PROBA_TOL[dtype]
    assert np.abs(got["logits"] - want_z).max() <= PROBA_TOL[dtype] * max(1.0, np.abs(want_z).max())


def test_the_graph_is_checked_with_the_stated_opset_and_a_dynamic_batch(tmp_path):
    model = MLP([6, 5, 4, 3], activation=["selu", "gelu"], backend="cpu", seed=1)
    path = model.to_onnx(tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert {o.domain: o.version for o in proto.opset_import}[""] == OPSET
    assert [i.name for i in proto.graph.input] == ["x"]
    assert [o.name for o in proto.graph.output] == ["logits", "probabilities"]
    sess = session(path)
    assert sess.get_inputs()[0].shape == ["batch", 6]
    assert sess.get_outputs()[1].shape == ["batch", 3]
    rng = np.random.default_rng(0)
    for n in (0, 1, 37):
        X = rng.standard_normal((n, 6)).astype(np.float32)
        out = run(sess, X)
        assert out["logits"].shape == (n, 3)
        if n:
            np.testing.assert_allclose(out["logits"], model.forward(X), rtol=1e-5, atol=1e-6)
    recorded = onnx_config(path)
    assert recorded.pop("layers") == [layer.config() for layer in model.net.layers]
    assert recorded == model.config()
    assert "MatMul" in onnx_ops(proto) and "Tanh" in onnx_ops(proto)  # found inside the If branches too


def test_dropout_exports_as_the_evaluation_identity(tmp_path):
    net = Sequential([Dropout(0.2), Linear(5, 8), ReLU(), Dropout(0.5), Linear(8, 2)], backend="cpu",
                     dtype="float64", seed=2)
    X = np.random.default_rng(1).standard_normal((20, 5))
    out = run(session(trace_onnx(net)), X)
    np.testing.assert_allclose(out["logits"], net.forward(X, train=False), rtol=0, atol=1e-13)


def test_a_model_on_another_backend_exports_its_weights(tmp_path):
    model = MLP([4, 6, 3], activation="elu", backend="strict", dtype="float64", seed=5)
    X = np.random.default_rng(2).standard_normal((9, 4))
    out = run(session(trace_onnx(model)), X)
    want = model.backend.to_numpy(model.predict_proba(model.backend.asarray(X)))
    assert np.abs(out["probabilities"] - want).max() <= 1e-12


def test_without_the_extra_export_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ndonnx", None)
    model = MLP([4, 3], backend="cpu")
    with pytest.raises(InputError, match=r"pip install 'xpmlp\[onnx\]'"):
        model.to_onnx(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_a_failed_export_leaves_the_old_file_whole(monkeypatch, tmp_path):
    import xpmlp.export.onnx as export

    target = tmp_path / "m.onnx"
    target.write_bytes(b"the previous model")

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export, "trace_onnx", broken)
    with pytest.raises(OSError):
        export.export_onnx(MLP([4, 3], backend="cpu"), target)
    assert target.read_bytes() == b"the previous model"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_export_refuses_a_missing_folder_and_a_folder_as_the_file(tmp_path):
    model = MLP([4, 3], backend="cpu")
    with pytest.raises(InputError, match="does not exist"):
        model.to_onnx(tmp_path / "nowhere" / "m.onnx")
    with pytest.raises(InputError, match="is a folder"):
        model.to_onnx(tmp_path)


# -- the estimator and skl2onnx --------------------------------------------------------------------

def _blobs(n=240, d=6):
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((n, d)) * 4 + 3).astype(np.float32)
    y = np.array(["cat", "dog", "eel"])[(X[:, 0] > 3).astype(int) + (X[:, 1] > 4)]
    return X, y


def test_the_estimators_onnx_gives_its_labels_and_probabilities(tmp_path):
    pytest.importorskip("sklearn")
    from xpmlp import MLPClassifier

    X, y = _blobs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(12,), activation="logistic", max_iter=30, random_state=0).fit(X, y)
    out = run(session(clf.to_onnx(tmp_path / "clf.onnx")), X)
    np.testing.assert_array_equal(out["label"], clf.predict(X))
    assert np.abs(out["probabilities"] - clf.predict_proba(X)).max() <= 1e-5


@pytest.mark.parametrize("zipmap", [False, True])
def test_skl2onnx_exports_a_standard_scaler_mlp_pipeline(zipmap):
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from xpmlp import MLPClassifier
    from xpmlp.export.sklearn_onnx import register_skl2onnx

    register_skl2onnx()
    X, y = _blobs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16, 8), activation="tanh",
                                                             max_iter=40, random_state=0)).fit(X, y)
    proto = skl2onnx.to_onnx(pipe, X[:1], options={id(pipe[-1]): {"zipmap": zipmap}})
    onnx.checker.check_model(proto, full_check=True)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    label, proba = sess.run(None, {sess.get_inputs()[0].name: X})
    if zipmap:
        proba = np.array([[row[c] for c in pipe.classes_] for row in proba])
    np.testing.assert_array_equal(label, pipe.predict(X))
    assert np.abs(proba - pipe.predict_proba(X)).max() <= 1e-5


# -- xpmlp export ----------------------------------------------------------------------------------

@needs_fmnist
def test_cli_export_of_a_trained_run_runs_on_raw_test_images(tmp_path, capsys, fashion):
    from xpmlp.runs import load_model

    ds, _ = fashion
    run_dir = tmp_path / "run"
    assert main(["train", "--dataset", "fashion-mnist", "--subset", "2000", "--val-size", "400", "--epochs", "1",
                 "--hidden", "32", "--preprocess", "standardize", "--out", str(run_dir), "--quiet",
                 "--device", "cpu", "--no-download"]) == 0
    capsys.readouterr()
    assert main(["export", str(run_dir / "checkpoint.npz"), "--format", "onnx"]) == 0
    said = capsys.readouterr().out
    assert f"opset {OPSET}" in said and "MatMul" in said and (run_dir / "model.onnx").is_file()
    model, tree = load_model(run_dir / "checkpoint.npz", "cpu")
    from xpmlp.data import Preprocessor

    prep = Preprocessor.from_state_dict(tree["prep"])
    got = run(session(run_dir / "model.onnx"), ds.x_test[:3000].reshape(3000, -1).astype(np.float32))
    want = model.predict(model.check_x(prep.transform(ds.x_test[:3000])))
    np.testing.assert_array_equal(got["probabilities"].argmax(axis=1), want)
    # without the preprocessing in the graph, x is the preprocessed features
    assert main(["export", str(run_dir / "checkpoint.npz"), "--format", "onnx", "--no-preprocessing",
                 "--out", str(tmp_path / "bare.onnx")]) == 0
    bare = run(session(tmp_path / "bare.onnx"), prep.transform(ds.x_test[:3000]))
    np.testing.assert_array_equal(bare["probabilities"].argmax(axis=1), want)


def _one_line_error(capsys, argv, *words):
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def test_cli_export_bad_input_is_one_line(tmp_path, capsys, monkeypatch):
    bogus = tmp_path / "checkpoint.npz"
    bogus.write_bytes(b"not a zip file")
    _one_line_error(capsys, ["export", str(bogus), "--format", "onnx"], str(bogus))
    _one_line_error(capsys, ["export", str(bogus), "--format", "pdf"], "--format")
    _one_line_error(capsys, ["export", str(bogus), "--format", "onnx", "--out", str(tmp_path)], "is a folder")
    _one_line_error(capsys, ["export", str(bogus), "--format", "onnx", "--out", str(tmp_path / "a" / "m.onnx")],
                    "does not exist")
    for fmt in ("onnx", "safetensors"):  # --out naming the checkpoint itself: refused, the file kept
        _one_line_error(capsys, ["export", str(bogus), "--format", fmt, "--out", str(bogus)],
                        "is the checkpoint being exported", "--out")
    named = tmp_path / "model.onnx"  # a checkpoint named like the default output
    named.write_bytes(b"not a zip file either")
    _one_line_error(capsys, ["export", str(named), "--format", "onnx"], "is the checkpoint being exported",
                    "exported-model.onnx")
    assert named.read_bytes() == b"not a zip file either"
    named.unlink()
    assert bogus.read_bytes() == b"not a zip file"
    monkeypatch.setitem(sys.modules, "ndonnx", None)
    _one_line_error(capsys, ["export", str(bogus), "--format", "onnx"], "pip install 'xpmlp[onnx]'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz"]


def test_without_skl2onnx_registering_says_what_to_install(monkeypatch):
    from xpmlp.export.sklearn_onnx import register_skl2onnx

    monkeypatch.setitem(sys.modules, "skl2onnx", None)
    with pytest.raises(InputError, match=r"skl2onnx is not installed.*pip install 'xpmlp\[onnx\]'"):
        register_skl2onnx()
