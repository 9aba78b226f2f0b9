"""ONNX export of the scikit-learn estimators against their own predictions: one row per case.

Fits ``xpmlp.MLPRegressor`` (squared error and Poisson, one and three targets) and the multilabel
``xpmlp.MLPClassifier`` in float32 and float64 on synthetic data (scikit-learn's
``make_regression``: 2,000 samples, 20 features; ``make_multilabel_classification``: 2,000
samples, 20 features, 5 labels), exports each with ``to_onnx``, runs the training rows through
onnxruntime and prints how far the graph is from ``predict`` (relative to the largest prediction)
and ``predict_proba``, and how many multilabel decisions differ. Exit status 1 if a row misses the
export tests' bounds (1e-5 in float32, 1e-12 in float64; labels identical).

    python scripts/export_check_estimators.py      # needs pip install 'xpmlp[onnx]'
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
from sklearn.datasets import make_multilabel_classification, make_regression

from xpmlp import MLPClassifier, MLPRegressor

BOUND = {"float32": 1e-5, "float64": 1e-12}
COMMON = {"hidden_layer_sizes": (64, 32), "learning_rate_init": 0.01, "max_iter": 50, "random_state": 0,
          "device": "cpu"}


def outputs(path: Path, X: np.ndarray) -> dict[str, np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"x": X}), strict=True))


def regression_rows(tmp: Path) -> int:
    bad = 0
    for dtype in ("float32", "float64"):
        for loss in ("squared_error", "poisson"):
            for targets in (1, 3):
                X, y = make_regression(n_samples=2000, n_features=20, n_targets=targets, noise=1.0, random_state=0)
                y = y / np.abs(y).max()
                y = np.exp(2.0 * y) if loss == "poisson" else y
                X = X.astype(dtype)
                reg = MLPRegressor(loss=loss, **COMMON).fit(X, y)
                got = outputs(reg.to_onnx(tmp / "reg.onnx"), X)["predictions"]
                want = reg.predict(X).reshape(len(X), targets)
                gap = float(np.abs(got - want).max() / np.abs(want).max())
                bad += not gap <= BOUND[dtype]
                print(f"{'MLPRegressor ' + loss:<27} {targets:>7} {dtype:<8} {gap:>12.2e} {'-':>10} {'-':>9}")
    return bad


def multilabel_rows(tmp: Path) -> int:
    bad = 0
    for dtype in ("float32", "float64"):
        X, Y = make_multilabel_classification(n_samples=2000, n_features=20, n_classes=5, random_state=0)
        X = X.astype(dtype)
        clf = MLPClassifier(**COMMON).fit(X, Y)
        out = outputs(clf.to_onnx(tmp / "clf.onnx"), X)
        dp = float(np.abs(out["probabilities"] - clf.predict_proba(X)).max())
        differ = int((out["label"] != clf.predict(X)).sum())
        bad += differ > 0 or not dp <= BOUND[dtype]
        print(f"{'MLPClassifier multilabel':<27} {Y.shape[1]:>7} {dtype:<8} {'-':>12} {dp:>10.2e} {differ:>9}")
    return bad


def main() -> int:
    warnings.simplefilter("ignore")  # scikit-learn's ConvergenceWarning after 50 epochs
    print(f"{'estimator':<27} {'outputs':>7} {'dtype':<8} {'max rel |dy|':>12} {'max |dp|':>10} {'labels !=':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        bad = regression_rows(Path(tmp)) + multilabel_rows(Path(tmp))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
