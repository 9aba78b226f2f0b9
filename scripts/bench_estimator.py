#!/usr/bin/env python3
"""xpmlp's MLPClassifier against scikit-learn's: the same network, data and hyper-parameters, one process.

    python scripts/bench_estimator.py                         # 784-256-10, sgd and adam, 3 epochs, 7 rounds
    python scripts/bench_estimator.py --hidden 500 500 --epochs 3 --rounds 2 --json out.json
    python scripts/bench_estimator.py --device cuda           # xpmlp on a GPU (NumPy input, NumPy output)

Both estimators get identical parameters (``random_state=0``, ``batch_size``, ``alpha``, ...) and
run exactly ``--epochs`` epochs (``max_iter=epochs, tol=0, n_iter_no_change=epochs + 1``) on the
real Fashion-MNIST (pixels / 255 as float32, so both train in float32). Rounds interleave the
contenders (the order alternates), after an untimed warm-up; the table gives the median fit time,
its min–max, training samples per second, test accuracy and the speed-up of xpmlp: in each round
scikit-learn's time over xpmlp's (the two fits run back to back, so a shared machine's load
disturbs both alike), its median over the rounds and its min–max, and the same median for the
CPU time the process used (which other programs on a shared machine do not inflate; with
``--threads 1`` it is the single-core cost). The CPU and the BLAS libraries (threadpoolctl) are
printed first.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

try:
    import xpmlp  # noqa: F401
except ImportError:  # run from a checkout without installing: use the package next to this script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SOLVER_PARAMS = {"sgd": {"learning_rate_init": 0.05}, "adam": {"learning_rate_init": 1e-3}}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden", type=int, nargs="+", default=[256], help="hidden layer widths (default: 256)")
    p.add_argument("--solvers", nargs="+", default=["sgd", "adam"], choices=sorted(SOLVER_PARAMS))
    p.add_argument("--epochs", type=int, default=3, help="epochs per fit (default: 3)")
    p.add_argument("--rounds", type=int, default=7, help="timed rounds per contender (default: 7)")
    p.add_argument("--batch-size", type=int, default=200, help="minibatch size (default: 200, scikit-learn's auto)")
    p.add_argument("--train", type=int, default=None, help="use the first N training images (default: all)")
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS threads for both contenders (default: the library's own choice)")
    p.add_argument("--device", default="cpu", help="xpmlp's device for the NumPy input (default: cpu)")
    p.add_argument("--data-dir", default=None, help="a folder holding Fashion-MNIST (default: the usual places)")
    p.add_argument("--json", default=None, help="also write the results as JSON here")
    return p.parse_args(argv)


def load(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from xpmlp.data import load_dataset

    ds = load_dataset("fashion-mnist", root=args.data_dir, download=False)
    n = len(ds.x_train) if args.train is None else args.train
    scale = np.float32(1.0 / 255.0)
    X = ds.x_train[:n].reshape(n, -1).astype(np.float32) * scale
    Xt = ds.x_test.reshape(len(ds.x_test), -1).astype(np.float32) * scale
    return X, ds.y_train[:n], Xt, ds.y_test


def machine() -> dict[str, Any]:
    """The CPU and the BLAS libraries NumPy (and so both contenders) multiply with."""
    from threadpoolctl import threadpool_info

    from xpmlp.bench.machine import available_cores, cpu_model

    keys = ("user_api", "internal_api", "version", "architecture", "num_threads", "threading_layer")
    # the folder names the wheel that ships the library: numpy.libs is the BLAS of both contenders' products
    blas = [{k: pool.get(k) for k in keys if k in pool}
            | {"library": "/".join(Path(pool.get("filepath", "")).parts[-2:])} for pool in threadpool_info()]
    return {"cpu": cpu_model(), "cores": available_cores(), "blas": blas}


def contenders(args: argparse.Namespace, solver: str) -> dict[str, Any]:
    """The two unfitted estimators with the same parameters."""
    from sklearn.neural_network import MLPClassifier as SkMLPClassifier

    from xpmlp import MLPClassifier

    common = dict(hidden_layer_sizes=tuple(args.hidden), solver=solver, batch_size=args.batch_size,
                  max_iter=args.epochs, tol=0.0, n_iter_no_change=args.epochs + 1, random_state=0,
                  **SOLVER_PARAMS[solver])
    return {"xpmlp": MLPClassifier(**common, device=args.device), "scikit-learn": SkMLPClassifier(**common)}


def timed_fit(estimator: Any, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all threads of this process) of one fit."""
    wall, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: the epochs are fixed on purpose
        estimator.fit(X, y)
    return time.perf_counter() - wall, time.process_time() - cpu


def rounds(args: argparse.Namespace, solver: str, X: np.ndarray, y: np.ndarray) -> tuple[dict[str, Any], ...]:
    """Fit both contenders ``args.rounds`` times, back to back, the order alternating."""
    for estimator in contenders(args, solver).values():  # warm-up: imports, BLAS threads, caches
        timed_fit(estimator.set_params(max_iter=1), X[:2000], y[:2000])
    wall: dict[str, list[float]] = {"xpmlp": [], "scikit-learn": []}
    cpu: dict[str, list[float]] = {"xpmlp": [], "scikit-learn": []}
    fitted: dict[str, Any] = {}
    for r in range(args.rounds):
        pair = list(contenders(args, solver).items())
        for name, estimator in pair if r % 2 == 0 else pair[::-1]:
            seconds, cpu_seconds = timed_fit(estimator, X, y)
            wall[name].append(seconds)
            cpu[name].append(cpu_seconds)
            fitted[name] = estimator
    return wall, cpu, fitted


def run(args: argparse.Namespace, data: tuple[np.ndarray, ...]) -> list[dict[str, Any]]:
    """One row per (solver, contender).

    The speed-up is, in each round, scikit-learn's time over xpmlp's (two fits back to back meet
    the same load), then its median over the rounds; once for wall-clock time and once for the
    CPU time the process used, which other programs on a shared machine do not inflate.
    """
    X, y, Xt, yt = data
    rows = []
    for solver in args.solvers:
        wall, cpu, fitted = rounds(args, solver, X, y)
        ratios = [theirs / ours for ours, theirs in zip(wall["xpmlp"], wall["scikit-learn"])]
        cpu_ratios = [theirs / ours for ours, theirs in zip(cpu["xpmlp"], cpu["scikit-learn"])]
        for name, ts in wall.items():
            median = statistics.median(ts)
            rows.append({"solver": solver, "contender": name, "seconds": median, "min": min(ts), "max": max(ts),
                         "cpu_seconds": statistics.median(cpu[name]), "samples_per_s": args.epochs * len(X) / median,
                         "test_acc": fitted[name].score(Xt, yt), "speedup": statistics.median(ratios),
                         "speedup_min": min(ratios), "speedup_max": max(ratios),
                         "speedup_cpu": statistics.median(cpu_ratios)})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| solver | contender | s per fit (median) | min–max | CPU s | samples/s | test acc | xpmlp speed-up "
             "(wall: median of rounds, min–max) | xpmlp speed-up (CPU time) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ours = r["contender"] == "xpmlp"
        speedup = f"{r['speedup']:.2f}× ({r['speedup_min']:.2f}–{r['speedup_max']:.2f})" if ours else "–"
        speedup_cpu = f"{r['speedup_cpu']:.2f}×" if ours else "–"
        lines.append(f"| {r['solver']} | {r['contender']} | {r['seconds']:.2f} | {r['min']:.2f}–{r['max']:.2f} | "
                     f"{r['cpu_seconds']:.2f} | {r['samples_per_s']:,.0f} | {r['test_acc']:.4f} | {speedup} | "
                     f"{speedup_cpu} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = load(args)
    info = machine()
    print(f"CPU: {info['cpu']} ({info['cores']} cores available)")
    for pool in info["blas"]:
        print("BLAS:", ", ".join(f"{k}={v}" for k, v in pool.items()))
    network = "-".join(str(s) for s in [data[0].shape[1], *args.hidden, 10])
    threads = "the BLAS default" if args.threads is None else args.threads
    print(f"network {network}, {len(data[0])} training images, batch {args.batch_size}, {args.epochs} epochs, "
          f"{args.rounds} interleaved rounds, xpmlp device {args.device}, float32, BLAS threads: {threads}")
    if args.threads is None:
        rows = run(args, data)
    else:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=args.threads, user_api="blas"):
            rows = run(args, data)
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "machine": info, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
