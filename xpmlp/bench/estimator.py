"""xpmlp's MLPClassifier against scikit-learn's: the same network, data and hyper-parameters, one process.

    xpmlp bench --estimator                                   # 784-100-10 and 784-256-10, sgd and adam
    xpmlp bench --estimator --hidden 500 500 --epochs 3 --rounds 2 --json out.json
    xpmlp bench --estimator --device cuda                     # xpmlp on a GPU (NumPy input, NumPy output)
    xpmlp bench --estimator --solvers lbfgs --lbfgs-iters 100 # full-batch L-BFGS on 10,000 images

Both estimators get identical parameters (``random_state=0``, ``batch_size``, ``alpha``, ...) and
run exactly ``--epochs`` epochs (``max_iter=epochs, tol=0, n_iter_no_change=epochs + 1``) on the
real Fashion-MNIST (pixels / 255 as float32, so both train in float32). Rounds interleave the
contenders (the order alternates), after an untimed warm-up; the table gives the median fit time,
its min–max, training samples per second, test accuracy and the speed-up of xpmlp: in each round
scikit-learn's time over xpmlp's (the two fits run back to back, so a shared machine's load
disturbs both alike), its median over the rounds and its min–max, and the same median for the
CPU time the process used (which other programs on a shared machine do not inflate). The CPU and
the BLAS libraries (threadpoolctl) are printed first.

``lbfgs`` is full batch, so it trains on the first 10,000 images unless ``--train-size`` says
otherwise, and both run ``--lbfgs-iters`` iterations (``max_iter``, default 100) with ``tol=0``:
the same work unless a line search or the relative-reduction rule (the same in both) ends one
earlier, which the table shows, with each contender's iterations, loss evaluations and final
loss (and xpmlp's over scikit-learn's). Its samples per second count one full forward and backward
pass per loss evaluation, as the stochastic solvers count one per sample and epoch. ``--dtype
float64`` feeds both float64 pixels, so both train in float64.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import get_backend
from ..errors import XpmlpError
from ..io import atomic_write_json
from .machine import available_cores, cpu_model, interrupt_stops

#: The learning rates each solver is benchmarked with (scikit-learn's default for adam; none for lbfgs).
SOLVER_PARAMS = {"sgd": {"learning_rate_init": 0.05}, "adam": {"learning_rate_init": 1e-3}, "lbfgs": {}}
#: Training images of a full-batch L-BFGS fit when --train-size is not given: a fit of seconds.
LBFGS_TRAIN = 10_000
#: The solvers run when --solvers is not given.
DEFAULT_SOLVERS = ("sgd", "adam")
#: The networks run when --hidden is not given: scikit-learn's default (100,) and a wider one.
DEFAULT_NETWORKS = ((100,), (256,))


def load(train: int | None, dtype: str = "float32") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fashion-MNIST as ``dtype`` pixels / 255 (the first ``train`` training images, or all)."""
    from ..data import load_dataset

    ds = load_dataset("fashion-mnist", download=False)
    n = len(ds.x_train) if train is None else min(train, len(ds.x_train))
    scale = np.dtype(dtype).type(1.0 / 255.0)
    X = ds.x_train[:n].reshape(n, -1).astype(dtype) * scale
    Xt = ds.x_test.reshape(len(ds.x_test), -1).astype(dtype) * scale
    return X, ds.y_train[:n], Xt, ds.y_test


def machine() -> dict[str, Any]:
    """The CPU and the BLAS libraries NumPy (and so both contenders) multiply with."""
    from threadpoolctl import threadpool_info

    keys = ("user_api", "internal_api", "version", "architecture", "num_threads", "threading_layer")
    # the folder names the wheel that ships the library: numpy.libs is the BLAS of both contenders' products
    blas = [{k: pool.get(k) for k in keys if k in pool}
            | {"library": "/".join(Path(pool.get("filepath", "")).parts[-2:])} for pool in threadpool_info()]
    return {"cpu": cpu_model(), "cores": available_cores(), "blas": blas}


def contenders(hidden: tuple[int, ...], solver: str, args: argparse.Namespace) -> dict[str, Any]:
    """The two unfitted estimators with the same parameters."""
    from sklearn.neural_network import MLPClassifier as SkMLPClassifier

    from ..estimator import MLPClassifier

    iterations = args.lbfgs_iters if solver == "lbfgs" else args.epochs
    common = dict(hidden_layer_sizes=hidden, solver=solver, batch_size=args.batch_size, max_iter=iterations,
                  tol=0.0, n_iter_no_change=iterations + 1, random_state=0, **SOLVER_PARAMS[solver])
    theirs = SkMLPClassifier(**common)
    if solver == "lbfgs":
        count_evaluations(theirs)
    return {"xpmlp": MLPClassifier(**common, device=args.device), "scikit-learn": theirs}


def count_evaluations(estimator: Any) -> None:
    """Count the loss evaluations of scikit-learn's L-BFGS (which keeps no count) in ``estimator._bench_n_fun``.

    Its fit hands ``self._loss_grad_lbfgs`` to SciPy, so an attribute of the instance shadows the
    method; one Python call per evaluation of a full-batch loss costs nothing measurable.
    """
    method = estimator._loss_grad_lbfgs
    estimator._bench_n_fun = 0

    def counted(*args: Any, **kwargs: Any) -> Any:
        estimator._bench_n_fun += 1
        return method(*args, **kwargs)

    estimator._loss_grad_lbfgs = counted


def evaluations(estimator: Any) -> int | None:
    """Loss evaluations of the last L-BFGS fit (xpmlp's from its result, scikit-learn's counted); None if none."""
    result = getattr(estimator, "_lbfgs_result", None)
    return int(result.n_fun) if result is not None else getattr(estimator, "_bench_n_fun", None)


def timed_fit(estimator: Any, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all threads of this process) of one fit."""
    wall, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings(), interrupt_stops():  # Ctrl-C ends the run, not just this fit
        warnings.simplefilter("ignore")  # ConvergenceWarning: the epochs are fixed on purpose
        estimator.fit(X, y)
    return time.perf_counter() - wall, time.process_time() - cpu


def rounds(hidden: tuple[int, ...], solver: str, args: argparse.Namespace, X: np.ndarray,
           y: np.ndarray) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, Any]]:
    """Fit both contenders ``args.rounds`` times, back to back, the order alternating."""
    for estimator in contenders(hidden, solver, args).values():  # warm-up: imports, BLAS threads, caches
        timed_fit(estimator.set_params(max_iter=1), X[:2000], y[:2000])
    wall: dict[str, list[float]] = {"xpmlp": [], "scikit-learn": []}
    cpu: dict[str, list[float]] = {"xpmlp": [], "scikit-learn": []}
    fitted: dict[str, Any] = {}
    for r in range(args.rounds):
        pair = list(contenders(hidden, solver, args).items())
        for name, estimator in pair if r % 2 == 0 else pair[::-1]:
            seconds, cpu_seconds = timed_fit(estimator, X, y)
            wall[name].append(seconds)
            cpu[name].append(cpu_seconds)
            fitted[name] = estimator
    return wall, cpu, fitted


def train_size(args: argparse.Namespace, solver: str) -> int | None:
    """The training images ``solver`` fits on (None: all)."""
    return args.lbfgs_train if solver == "lbfgs" else args.train


def solver_rows(network: str, solver: str, wall: dict[str, list[float]], cpu: dict[str, list[float]],
                fitted: dict[str, Any], n: int, test: tuple[np.ndarray, np.ndarray]) -> list[dict[str, Any]]:
    """The two contenders' rows of one (network, solver); the work each did is in n_iter, n_fun and loss."""
    ratios = [theirs / ours for ours, theirs in zip(wall["xpmlp"], wall["scikit-learn"])]
    cpu_ratios = [theirs / ours for ours, theirs in zip(cpu["xpmlp"], cpu["scikit-learn"])]
    loss_ratio = fitted["xpmlp"].loss_ / fitted["scikit-learn"].loss_
    rows = []
    for name, ts in wall.items():
        median, est = statistics.median(ts), fitted[name]
        n_fun = evaluations(est) if solver == "lbfgs" else None
        passes = n_fun if n_fun is not None else est.n_iter_  # full passes over the n images (epochs for sgd/adam)
        rows.append({"network": network, "solver": solver, "contender": name, "train": n, "seconds": median,
                     "min": min(ts), "max": max(ts), "cpu_seconds": statistics.median(cpu[name]),
                     "samples_per_s": passes * n / median, "n_iter": int(est.n_iter_), "n_fun": n_fun,
                     "loss": float(est.loss_), "loss_ratio": loss_ratio, "test_acc": est.score(*test),
                     "speedup": statistics.median(ratios), "speedup_min": min(ratios),
                     "speedup_max": max(ratios), "speedup_cpu": statistics.median(cpu_ratios)})
    return rows


def measure(args: argparse.Namespace, data: tuple[np.ndarray, ...]) -> list[dict[str, Any]]:
    """One row per (network, solver, contender); the speed-up is the median over rounds of the per-round ratio."""
    X, y, Xt, yt = data
    rows = []
    for hidden in args.networks:
        network = "-".join(str(s) for s in [X.shape[1], *hidden, 10])
        for solver in args.solvers:
            n = len(X) if train_size(args, solver) is None else min(train_size(args, solver), len(X))
            wall, cpu, fitted = rounds(hidden, solver, args, X[:n], y[:n])
            rows += solver_rows(network, solver, wall, cpu, fitted, n, (Xt, yt))
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table (the README's)."""
    lines = ["| network | solver | contender | s per fit (median) | min–max | CPU s | samples/s | iterations | "
             "loss evaluations | final loss (xpmlp / scikit-learn) | test acc | "
             "xpmlp speed-up (wall: median of rounds, min–max) | xpmlp speed-up (CPU time) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ours = r["contender"] == "xpmlp"
        speedup = f"{r['speedup']:.2f}× ({r['speedup_min']:.2f}–{r['speedup_max']:.2f})" if ours else "–"
        speedup_cpu = f"{r['speedup_cpu']:.2f}×" if ours else "–"
        n_fun = "–" if r["n_fun"] is None else str(r["n_fun"])
        loss = f"{r['loss']:.5f}" + (f" ({r['loss_ratio']:.4f})" if ours else "")
        lines.append(f"| {r['network']} | {r['solver']} | {r['contender']} | {r['seconds']:.2f} | "
                     f"{r['min']:.2f}–{r['max']:.2f} | {r['cpu_seconds']:.2f} | {r['samples_per_s']:,.0f} | "
                     f"{r['n_iter']} | {n_fun} | {loss} | {r['test_acc']:.4f} | {speedup} | {speedup_cpu} |")
    return "\n".join(lines)


def settings(args: argparse.Namespace) -> argparse.Namespace:
    """``xpmlp bench``'s parsed flags as this benchmark reads them (its own defaults where none was given)."""
    solvers = args.solvers or list(DEFAULT_SOLVERS)
    unknown = [s for s in solvers if s not in SOLVER_PARAMS]
    if unknown:
        raise XpmlpError(f"unknown solver(s) {', '.join(unknown)} for --estimator; choose from sgd,adam,lbfgs")
    return argparse.Namespace(
        networks=[tuple(args.hidden)] if args.hidden else list(DEFAULT_NETWORKS), solvers=solvers,
        epochs=args.epochs or 3, rounds=args.rounds or (3 if args.quick else 7),
        batch_size=args.batch_size or 200, train=args.train_size or (10_000 if args.quick else None),
        lbfgs_iters=getattr(args, "lbfgs_iters", None) or 100, lbfgs_train=args.train_size or LBFGS_TRAIN,
        dtype=getattr(args, "dtype", "float32"), threads=args.threads,
        device="cpu" if args.device == "auto" else args.device, json=args.json)


def describe(s: argparse.Namespace, loaded: int) -> str:
    """The line saying what each solver fits on."""
    threads = "the BLAS default" if s.threads is None else s.threads
    parts = []
    if any(solver != "lbfgs" for solver in s.solvers):
        parts.append(f"sgd/adam: {loaded if s.train is None else min(s.train, loaded)} training images, "
                     f"batch {s.batch_size}, {s.epochs} epochs")
    if "lbfgs" in s.solvers:
        parts.append(f"lbfgs: {min(s.lbfgs_train, loaded)} training images (full batch), "
                     f"{s.lbfgs_iters} iterations at most, tol=0")
    return (f"{'; '.join(parts)}; {s.rounds} interleaved rounds, xpmlp device {s.device}, {s.dtype}, "
            f"BLAS threads: {threads}")


def run(args: argparse.Namespace) -> int:
    """``xpmlp bench --estimator``: print the machine and the table; 0 = ok, 2 = bad input."""
    try:
        s = settings(args)
        get_backend(s.device, s.dtype)  # an unusable device fails here, in one line, before the data
        sizes = [train_size(s, solver) for solver in s.solvers]
        data = load(None if None in sizes else max(sizes), s.dtype)
    except (XpmlpError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        import sklearn  # noqa: F401
    except ImportError:
        print("error: the estimator benchmark compares with scikit-learn, which is not installed: "
              "pip install 'xpmlp[sklearn]'", file=sys.stderr)
        return 2
    info = machine()
    print(f"CPU: {info['cpu']} ({info['cores']} cores available)")
    for pool in info["blas"]:
        print("BLAS:", ", ".join(f"{k}={v}" for k, v in pool.items()))
    print(describe(s, len(data[0])), flush=True)
    limits: Any = contextlib.nullcontext()
    if s.threads is not None:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(limits=s.threads, user_api="blas")
    with limits:
        rows = measure(s, data)
    print(table(rows))
    if s.json:
        atomic_write_json(s.json, {"settings": {k: v for k, v in vars(s).items() if k != "json"},
                                   "machine": info, "rows": rows})
        print(f"wrote {s.json}")
    return 0
