"""ONNX export against xpmlp on the real Fashion-MNIST test set: one row per network and dtype.

Trains 784-64-32-10 for one epoch (6,000 training images, standardised) with each activation and
a mixed Tanh -> ReLU network, exports it with the preprocessing in the graph, runs the 10,000 raw
test images through onnxruntime and prints how far its classes, probabilities and logits are from
xpmlp's own ``predict`` / ``predict_proba`` / ``forward``. Exit status 1 if a row misses the export
test's bounds (classes identical, probabilities within 1e-5 in float32 and 1e-12 in float64).

    python scripts/export_check.py            # needs pip install 'xpmlp[onnx]' and Fashion-MNIST (make data)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from xpmlp.data import Preprocessor, load_dataset
from xpmlp.export.onnx import OPSET, export_onnx, onnx_ops
from xpmlp.layers import ACTIVATIONS, Linear, ReLU, Tanh
from xpmlp.model import MLP, Sequential
from xpmlp.train import Trainer
from xpmlp.train_config import TrainConfig

BOUND = {"float32": 1e-5, "float64": 1e-12}


def build(net: str, dtype: str) -> MLP:
    if net == "tanh>relu":
        return Sequential([Linear(784, 64), Tanh(), Linear(64, 32), ReLU(), Linear(32, 10)], backend="cpu",
                          dtype=dtype, seed=3)
    return MLP([784, 64, 32, 10], activation=net, backend="cpu", dtype=dtype, seed=3, dropout=0.1)


def main() -> int:
    ds = load_dataset("fashion-mnist", download=False)
    prep = Preprocessor("standardize").fit(ds.x_train[:6000])
    raw = ds.x_test.reshape(len(ds.x_test), -1)
    ops: set[str] = set()
    bad = 0
    print(f"{'network':<11} {'dtype':<8} {'classes differ':>14} {'max |dp|':>10} {'max |dz|':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("float32", "float64"):
            for net in (*ACTIVATIONS, "tanh>relu"):
                model = build(net, dtype)
                X = model.check_x(prep.transform(ds.x_train[:6000]))
                Trainer(model, TrainConfig(epochs=1, batch_size=100, lr=0.02, optimizer="momentum"), log=None,
                        progress="none").fit(X, model.check_y(ds.y_train[:6000], 6000))
                path = export_onnx(model, Path(tmp) / "m.onnx", preprocessor=prep)
                ops |= set(onnx_ops(path))
                z, p = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
                    None, {"x": raw.astype(dtype)})
                Xt = model.check_x(prep.transform(ds.x_test))
                differ = int((p.argmax(axis=1) != model.predict(Xt)).sum())
                dp = float(np.abs(p - model.predict_proba(Xt)).max())
                dz = float(np.abs(z - model.forward(Xt)).max())
                bad += differ > 0 or dp > BOUND[dtype]
                print(f"{net:<11} {dtype:<8} {differ:>14} {dp:>10.2e} {dz:>10.2e}")
    print(f"ONNX opset {OPSET}; operators used: {', '.join(sorted(ops))}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
