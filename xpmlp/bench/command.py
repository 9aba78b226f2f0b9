"""The command line of the benchmark: ``xpmlp bench``, ``python -m xpmlp.bench`` and scripts/bench.py."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..argtypes import positive_int
from ..errors import XpmlpError
from ..network import normalize_activation
from .config import CONTENDERS, QUICK_TRAIN_SIZE, BenchConfig
from .lineup import FAST_BACKENDS
from .report import format_report, write_json
from .runner import run_benchmark

DESCRIPTION = "The benchmark: xpmlp against PyTorch, scikit-learn and the bare matrix products, in one run."


def _contender_list(text: str) -> list[str]:
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in CONTENDERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown contender(s) {', '.join(unknown) or '(none)'}; "
                                         f"choose from {','.join(CONTENDERS)}")
    return names


def _device_list(text: str) -> list[str] | None:
    """``all`` (None: every usable fast backend), ``none`` (``--device`` alone) or comma-separated specs."""
    if text.strip().lower() == "all":
        return None
    if text.strip().lower() == "none":
        return []
    specs = [spec.strip().lower() for spec in text.split(",") if spec.strip()]
    if not specs:
        raise argparse.ArgumentTypeError("give comma-separated device specs (e.g. cpu,torch), all or none")
    return specs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options to ``parser`` (used by ``xpmlp bench`` and scripts/bench.py)."""
    parser.add_argument("--device", default="auto",
                        help="xpmlp's backend: auto | cpu | cuda | cuda:N | torch | torch:cuda | strict "
                             "(default auto): its xpmlp row is the base of the ratios; PyTorch, scikit-learn and "
                             "GEMM-only run on its hardware (on a GPU, the same GPU)")
    parser.add_argument("--xpmlp-devices", type=_device_list, default=None, metavar="SPECS",
                        help=f"comma-separated backends xpmlp also runs on, one row each: all (default: every "
                             f"usable one of {', '.join(FAST_BACKENDS)}; strict checks correctness and is left "
                             "out), none (--device alone), or specs such as cpu,torch")
    parser.add_argument("--contenders", type=_contender_list, default=None,
                        help="comma-separated subset of xpmlp,torch,sklearn,gemm "
                             "(default all on the CPU; xpmlp,torch,gemm on a GPU)")
    parser.add_argument("--hidden", type=positive_int, nargs="+", default=None,
                        help="hidden widths; depth = number of widths (default 500 500; --estimator: 100, then 256)")
    parser.add_argument("--activation", nargs="+", default=["relu"],
                        help="relu | tanh | sigmoid: one for every hidden layer, or one per hidden layer "
                             "(default relu; scikit-learn takes one for all and sits out a per-layer list)")
    parser.add_argument("--batch-size", type=positive_int, default=None,
                        help="minibatch size (default 128; --estimator: 200)")
    parser.add_argument("--lr", type=float, default=0.1, help="SGD learning rate (default 0.1)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--epochs", type=positive_int, default=None,
                        help="timed epochs per round (default 1; --estimator: epochs per fit, 3)")
    parser.add_argument("--rounds", type=positive_int, default=None,
                        help="interleaved rounds (default 5, --estimator 7; 3 with --quick)")
    parser.add_argument("--train-size", type=positive_int, default=None,
                        help=f"training samples per epoch (default all 55,000; {QUICK_TRAIN_SIZE:,} with --quick)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="threads for NumPy's BLAS and torch (default: the cores available)")
    parser.add_argument("--data", default="fashion-mnist", choices=["fashion-mnist", "generated"],
                        help="fashion-mnist (default; generated data if it cannot be loaded) or generated")
    parser.add_argument("--warmup-steps", type=positive_int, default=20,
                        help="steps of the untimed warm-up pass per contender (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="a run under a minute: 10,000 training samples, 1 epoch, 3 rounds")
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True,
                        help="after timing, measure each contender's peak memory of set-up plus one epoch in a "
                             "fresh child process (default on; --no-memory skips it)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also cProfile one extra xpmlp epoch and print its top N functions")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the results as JSON (atomically)")
    parser.add_argument("--estimator", action="store_true",
                        help="instead: xpmlp's MLPClassifier against scikit-learn's on Fashion-MNIST (same "
                             "parameters, interleaved fits; uses --hidden, --batch-size, --epochs, --rounds, "
                             "--train-size, --threads, --device, --dtype, --quick, --json)")
    parser.add_argument("--solvers", type=lambda text: [s.strip() for s in text.split(",") if s.strip()],
                        default=None, help="with --estimator: comma-separated solvers of sgd,adam,lbfgs "
                                           "(default sgd,adam)")
    parser.add_argument("--lbfgs-iters", type=positive_int, default=None, metavar="N",
                        help="with --estimator --solvers lbfgs: L-BFGS iterations per fit (max_iter, tol=0; "
                             "default 100), on --train-size images (default 10,000: it is full batch)")


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    hidden = [500, 500] if args.hidden is None else list(args.hidden)
    batch_size = 128 if args.batch_size is None else args.batch_size
    return BenchConfig(hidden=hidden, activation=normalize_activation(args.activation), batch_size=batch_size,
                       lr=args.lr, dtype=args.dtype,
                       epochs=args.epochs, rounds=args.rounds, train_size=args.train_size, threads=args.threads,
                       contenders=args.contenders, device=args.device, xpmlp_devices=args.xpmlp_devices,
                       memory=args.memory, data=args.data, quick=args.quick,
                       warmup_steps=args.warmup_steps, seed=args.seed, profile=max(0, args.profile))


def run(args: argparse.Namespace) -> int:
    """Run the benchmark from parsed arguments; print the report. 0 = ok, 1 = a contender failed, 2 = bad input."""
    if getattr(args, "estimator", False):
        from .estimator import run as run_estimator_benchmark

        return run_estimator_benchmark(args)
    try:
        result = run_benchmark(config_from_args(args), log=lambda line: print(line, file=sys.stderr, flush=True))
    except XpmlpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_report(result), flush=True)
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}")
    return 1 if any(contender["status"] == "error" for contender in result["contenders"].values()) else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xpmlp bench", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))
