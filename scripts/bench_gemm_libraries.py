#!/usr/bin/env python3
"""GEMM rate of NumPy's BLAS against PyTorch's on the forward/backward shapes of 784-500-500-10 at batch 128.

    python scripts/bench_gemm_libraries.py [--threads 2] [--rounds 5]

Why xpmlp on ``--device torch`` can be slower than on ``--device cpu``: both run the same math, but
the matrix products go to different libraries (OpenBLAS in NumPy's wheels, MKL in PyTorch's), and
their speed depends on the CPU. Interleaved rounds of 200 products each, with an untimed pause
before each library's turn (the other library's idle threads spin on the cores for ~0.1 s and
would be timed with it, see ``xpmlp.bench.runner.SETTLE_SECONDS``); medians in GFLOP/s.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's xpmlp, installed or not
from xpmlp.bench.runner import SETTLE_SECONDS  # noqa: E402

SHAPES = ((128, 784, 500), (128, 500, 500), (784, 128, 500))  # forward, forward, weight gradient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    for m, k, n in SHAPES:
        a, b = rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        rates: dict[str, list[float]] = {"numpy": [], "torch": []}
        for _ in range(args.rounds):
            for name, (x, y) in (("numpy", (a, b)), ("torch", (ta, tb))):
                time.sleep(SETTLE_SECONDS)
                start = time.perf_counter()
                for _ in range(200):
                    x @ y
                rates[name].append(2 * m * k * n * 200 / (time.perf_counter() - start) / 1e9)
        print(f"{m}x{k} @ {k}x{n} float32: " + ", ".join(f"{name} {np.median(r):.1f} GFLOP/s"
                                                         for name, r in rates.items()))


if __name__ == "__main__":
    main()
