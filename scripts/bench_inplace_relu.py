"""Does ReLU's in-place fast path pay? Interleaved epochs of two identical models, one each way.

    python scripts/bench_inplace_relu.py [--rounds 6]

Trains 784-500-500-10 ReLU on Fashion-MNIST (float32, batch 128, SGD lr 0.1) with the
hidden ReLUs computed in place (``backend.relu_`` / ``mask_``, what MLP uses)
and on a copy first (what a ReLU that may not overwrite its input does); prints the median samples/s of each and whether
the two end with the same weights.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from xpmlp.data import prepare
from xpmlp.layers import ReLU
from xpmlp.model import MLP
from xpmlp.train import TrainConfig, Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    data = prepare("fashion-mnist", download=False)
    trainers = {}
    for name, inplace in (("in place", True), ("Array API", False)):
        model = MLP([784, 500, 500, 10], "relu", backend=args.device, seed=0)
        for layer in model.net.layers:
            if isinstance(layer, ReLU):
                layer.inplace = inplace
        trainers[name] = Trainer(model, TrainConfig(epochs=1, lr=0.1, batch_size=128, train_eval_size=0), log=None)
    first = next(iter(trainers.values())).model
    X, y = first.check_x(data.x_train), first.check_y(data.y_train, len(data.y_train))
    rates: dict[str, list[float]] = {name: [] for name in trainers}
    for r in range(args.rounds):
        for name, trainer in trainers.items():
            trainer.config.epochs = r + 1
            first.backend.synchronize()
            start = time.perf_counter()
            trainer.fit(X, y)
            first.backend.synchronize()
            rates[name].append(len(data.y_train) / (time.perf_counter() - start))
    for name, values in rates.items():
        print(f"{name:10s} median {statistics.median(values):,.0f} samples/s "
              f"(min {min(values):,.0f}, max {max(values):,.0f})")
    a, b = (t.model.state_dict() for t in trainers.values())
    print("same weights:", all(np.array_equal(a[k], b[k]) for k in a))


if __name__ == "__main__":
    main()
