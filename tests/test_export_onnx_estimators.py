"""ONNX export of every fitted estimator: MLPRegressor (identity and exp outputs) and the multilabel
MLPClassifier, alone (``to_onnx``) and inside a Pipeline (skl2onnx), run in onnxruntime against
the estimator's own ``predict`` / ``predict_proba``."""

from __future__ import annotations

import numpy as np
import pytest

from xpmlp.errors import InputError

pytest.importorskip("sklearn")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("ndonnx")

from sklearn.datasets import make_multilabel_classification, make_regression  # noqa: E402

from xpmlp import MLPClassifier, MLPRegressor  # noqa: E402
from xpmlp.export.onnx import onnx_ops, trace_onnx  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

#: max |onnx - predict| relative to the largest |predict|, by the fit's dtype
TOL = {"float32": 1e-5, "float64": 1e-12}


def _session(path_or_proto):
    data = path_or_proto.SerializeToString() if hasattr(path_or_proto, "SerializeToString") else str(path_or_proto)
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def _run(sess, X):
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {sess.get_inputs()[0].name: X}),
                    strict=True))


def _regression(targets: int, loss: str, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    X, y = make_regression(n_samples=120, n_features=5, n_targets=targets, noise=0.5, random_state=targets)
    y = y / np.abs(y).max()
    if loss == "poisson":
        y = np.exp(2.0 * y)  # positive counts-like targets whose log is what the network learns
    return X.astype(dtype), y


def _regressor(loss: str, **kw) -> MLPRegressor:
    return MLPRegressor(loss=loss, hidden_layer_sizes=(10,), activation="tanh", learning_rate_init=0.01,
                        max_iter=40, random_state=0, device="cpu", **kw)


def _relative_gap(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
@pytest.mark.parametrize("targets", [1, 3])
def test_regressor_onnx_predictions_are_predicts(targets, loss, dtype, tmp_path):
    X, y = _regression(targets, loss, dtype)
    reg = _regressor(loss).fit(X, y)
    path = reg.to_onnx(tmp_path / "reg.onnx")
    onnx.checker.check_model(str(path), full_check=True)
    sess = _session(path)
    assert [o.name for o in sess.get_outputs()] == ["predictions"]
    assert sess.get_outputs()[0].shape == ["batch", targets]
    got = _run(sess, X)["predictions"]
    want = reg.predict(X)
    assert want.shape == ((len(X),) if targets == 1 else (len(X), targets))
    assert got.shape == (len(X), targets) and got.dtype == np.dtype(dtype)
    assert _relative_gap(got, want.reshape(len(X), targets)) <= TOL[dtype]
    # the head is the loss's output activation: e^z for Poisson, z itself for the squared error
    assert ("Exp" in onnx_ops(path)) == (loss == "poisson")


def test_a_changed_weight_no_longer_matches_the_exported_file(tmp_path):
    X, y = _regression(2, "squared_error", "float64")
    reg = _regressor("squared_error").fit(X, y)
    sess = _session(reg.to_onnx(tmp_path / "before.onnx"))
    assert _relative_gap(_run(sess, X)["predictions"], reg.predict(X)) <= TOL["float64"]
    intercepts = reg.intercepts_
    reg.intercepts_ = [*intercepts[:-1], intercepts[-1] + 0.25]
    assert _relative_gap(_run(sess, X)["predictions"], reg.predict(X)) > 0.01


def test_an_unfitted_regressor_refuses_export_and_writes_nothing(tmp_path):
    with pytest.raises(AttributeError, match="not fitted"):
        MLPRegressor().to_onnx(tmp_path / "reg.onnx")
    assert not list(tmp_path.iterdir())


def test_trace_onnx_refuses_an_unknown_head_and_labels_for_a_regression_head():
    reg = _regressor("squared_error").fit(*_regression(1, "squared_error", "float64"))
    model = reg._get_model()
    with pytest.raises(InputError, match="unknown ONNX head 'tanh'; use one of: softmax, sigmoid"):
        trace_onnx(model, head="tanh")
    with pytest.raises(InputError, match="no class labels"):
        trace_onnx(model, head="identity", classes=[0])


# -- multilabel ------------------------------------------------------------------------------------

def _multilabel(dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    X, Y = make_multilabel_classification(n_samples=150, n_features=8, n_classes=4, random_state=0)
    return X.astype(dtype), Y


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_multilabel_onnx_gives_predict_proba_and_predict(dtype, tmp_path):
    X, Y = _multilabel(dtype)
    clf = MLPClassifier(hidden_layer_sizes=(12,), learning_rate_init=0.01, max_iter=30, random_state=0,
                        device="cpu").fit(X, Y)
    path = clf.to_onnx(tmp_path / "multilabel.onnx")
    onnx.checker.check_model(str(path), full_check=True)
    out = _run(_session(path), X)
    assert list(out) == ["logits", "probabilities", "label"]
    want = clf.predict(X)
    assert out["label"].dtype == want.dtype and out["label"].shape == want.shape == Y.shape
    np.testing.assert_array_equal(out["label"], want)
    assert 0 < want.sum() < want.size  # both decisions occur, so an inverted threshold would be caught
    assert np.abs(out["probabilities"] - clf.predict_proba(X)).max() <= TOL[dtype]


def test_multilabel_threshold_is_predicts_own_at_a_logit_of_exactly_zero(tmp_path):
    X, Y = _multilabel("float64")
    clf = MLPClassifier(hidden_layer_sizes=(12,), max_iter=10, random_state=0, device="cpu").fit(X, Y)
    coefs, intercepts = clf.coefs_, clf.intercepts_
    coefs[-1][:, 0], intercepts[-1][0] = 0.0, 0.0  # label 0: z = 0 exactly, σ(z) = ½, predict says 0
    coefs[-1][:, 1], intercepts[-1][1] = 0.0, 1e-300  # label 1: z > 0 though σ(z) rounds to ½, predict says 1
    clf.coefs_, clf.intercepts_ = coefs, intercepts
    out = _run(_session(clf.to_onnx(tmp_path / "m.onnx")), X)
    want = clf.predict(X)
    assert (want[:, 0] == 0).all() and (want[:, 1] == 1).all()
    assert (out["probabilities"][:, :2] == 0.5).all()
    np.testing.assert_array_equal(out["label"], want)


def test_a_classifier_with_identity_hidden_layers_exports_the_network_it_runs(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 5))
    y = rng.integers(0, 3, 120)
    clf = MLPClassifier(hidden_layer_sizes=(8,), activation="identity", max_iter=20, random_state=0,
                        device="cpu").fit(X, y)
    out = _run(_session(clf.to_onnx(tmp_path / "c.onnx")), X)
    assert np.abs(out["probabilities"] - clf.predict_proba(X)).max() <= TOL["float64"]
    np.testing.assert_array_equal(out["label"], clf.predict(X))
    from xpmlp.export.onnx import onnx_config

    # the file's recorded layers are the ones traced: Linear, Linear (no activation between them)
    assert [layer["type"] for layer in onnx_config(tmp_path / "c.onnx")["layers"]] == ["Linear", "Linear"]


# -- skl2onnx ---------------------------------------------------------------------------------------

@pytest.fixture
def skl2onnx():
    module = pytest.importorskip("skl2onnx")
    from xpmlp.export.sklearn_onnx import register_skl2onnx

    register_skl2onnx()
    register_skl2onnx()  # idempotent: a second registration changes nothing
    return module


@pytest.mark.parametrize("targets", [1, 3])
def test_skl2onnx_exports_a_standard_scaler_regressor_pipeline(skl2onnx, targets):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _regression(targets, "squared_error", "float32")
    X = X * 20 + 7  # a scale the scaler must undo
    pipe = make_pipeline(StandardScaler(), _regressor("squared_error")).fit(X, y)
    proto = skl2onnx.to_onnx(pipe, X[:1])
    onnx.checker.check_model(proto, full_check=True)
    sess = _session(proto)
    assert [o.shape for o in sess.get_outputs()] == [[None, targets]]
    got = _run(sess, X)["variable"]
    assert got.dtype == np.float32 and got.shape == (len(X), targets)
    # float32 throughout: the scaler's ONNX arithmetic differs from scikit-learn's in the last bits
    assert _relative_gap(got, pipe.predict(X).reshape(len(X), targets)) <= TOL["float32"]


@pytest.mark.parametrize("zipmap", [False, True])
def test_skl2onnx_exports_a_multilabel_pipeline(skl2onnx, zipmap):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, Y = _multilabel()
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(12,), learning_rate_init=0.01,
                                                         max_iter=30, random_state=0, device="cpu")).fit(X, Y)
    proto = skl2onnx.to_onnx(pipe, X[:1], options={id(pipe[-1]): {"zipmap": zipmap}})
    onnx.checker.check_model(proto, full_check=True)
    sess = _session(proto)
    label, proba = sess.run(None, {sess.get_inputs()[0].name: X})
    if zipmap:
        proba = np.array([[row[k] for k in range(Y.shape[1])] for row in proba])
    assert label.dtype == np.int64 and label.shape == Y.shape
    np.testing.assert_array_equal(label, pipe.predict(X))
    assert np.abs(proba - pipe.predict_proba(X)).max() <= TOL["float32"]
