"""The ``xpmlp`` command line (also ``python -m xpmlp``).

Each subcommand imports what it needs when it runs: matplotlib, the CUDA probes and the
benchmark's peers take seconds to import, and ``xpmlp devices`` or a typo should not wait.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from .argtypes import positive_float, positive_int
from .errors import CheckpointError, XpmlpError
from .settings import DEFAULTS, add_setting_args, settings_from_args


def add_device_args(p: argparse.ArgumentParser, default: str | None = "auto") -> None:
    p.add_argument("--device", default=default,
                   help="auto | cpu | cuda | cuda:N | torch | torch:cuda[:N] | strict[:device1|:device2] (default auto"
                        + ("; with --resume, the checkpoint's device)" if default is None else ")"))


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The run config of ``xpmlp train``'s arguments (checked later by ``check_run_config``)."""
    from .runs import make_config

    return make_config(**{**DEFAULTS, **settings_from_args(args), "device": args.device or "auto"})


def check_run_config(cfg: dict[str, Any]) -> None:
    """Fail fast on bad settings before any data is loaded (the checks a study runs on each config)."""
    from .studies.checks import check_values

    check_values(cfg, "settings")


def cmd_train(args: argparse.Namespace) -> int:
    from .runs import train_run

    if args.resume and args.overwrite:
        raise XpmlpError("give --resume (continue the run) or --overwrite (start it again), not both")
    if args.resume:
        cfg = settings_from_args(args)  # only what was given: the checkpoint's settings are the rest
    else:
        cfg = config_from_args(args)
        check_run_config(cfg)
        _check_momentum_used(settings_from_args(args), cfg)
    if args.out:
        out = Path(args.out)
    else:
        out = Path(args.resume).parent if args.resume else Path("runs") / _run_name(cfg)
    metrics = train_run(cfg, out, resume=args.resume, overwrite=args.overwrite, log=None if args.quiet else
                        SafeStdout(), progress="lines" if args.quiet else "auto")
    if str(metrics.get("stopped", "")).startswith("interrupted"):
        return EXIT_BY_SIGNAL.get(metrics.get("interrupted_by", ""), 130)
    return 0


def _check_momentum_used(given: dict[str, Any], cfg: dict[str, Any]) -> None:
    """Refuse a ``--momentum`` that the run's optimizer would silently ignore (sgd, adam, adamw)."""
    if "momentum" in given and cfg["optimizer"] not in ("momentum", "nesterov"):
        raise XpmlpError(f"settings: momentum {given['momentum']} has no effect with --optimizer "
                         f"{cfg['optimizer']} (only momentum and nesterov use it); drop --momentum or use "
                         "--optimizer momentum")


#: The shell's convention: 128 + the signal's number.
EXIT_BY_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}


class SafeStdout:
    """``print`` for log lines that survives a closed stdout (``xpmlp train ... | head -1``).

    After the first broken pipe it goes quiet and points stdout at /dev/null (so the interpreter's
    last flush is quiet too): a reader that went away never stops a training run or loses a file.
    """

    def __init__(self) -> None:
        self.closed = False

    def __call__(self, line: str) -> None:
        if self.closed:
            return
        try:
            print(line, flush=True)
        except BrokenPipeError:
            self.closed = True
            silence_stdout()


def silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _run_name(cfg: dict[str, Any]) -> str:
    """A new folder name: readable, and unique even for two runs started in the same second."""
    from .network import activation_label

    hidden = "-".join(str(h) for h in cfg["hidden"]) or "linear"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{cfg['dataset']}-{hidden}-{activation_label(cfg['activation'])}-{stamp}-{os.getpid()}"


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .backend import to_numpy
    from .data import Preprocessor, load_dataset
    from .runs import load_model
    from .train import evaluate, per_class_accuracy

    model, tree = load_model(args.checkpoint, args.device, args.weights)
    cfg = tree.get("config", {})
    name = args.dataset or cfg.get("dataset")
    ds = load_dataset(name, root=args.data_dir or cfg.get("data_dir"), download=not args.no_download)
    if "prep" not in tree:
        raise CheckpointError(f"{args.checkpoint}: checkpoint has no preprocessing state; "
                              "evaluate a checkpoint.npz written by xpmlp train")
    prep = Preprocessor.from_state_dict(tree["prep"])
    X = model.check_x(prep.transform(ds.x_test))
    y = model.check_y(ds.y_test, len(ds.y_test))
    loss, acc = evaluate(model, X, y)
    pred = model.backend.to_numpy(model.predict(X))
    print(f"{name} test set ({len(ds.y_test)} images) on {model.backend.spec}, {args.weights} weights: "
          f"loss {loss:.4f}, accuracy {acc:.4f}")
    width = max(len(c) for c in ds.classes)
    print(f"{'class':<{width}}  accuracy")
    for cls, a in zip(ds.classes, per_class_accuracy(pred, to_numpy(ds.y_test), len(ds.classes)), strict=False):
        print(f"{cls:<{width}}  {a:.4f}")
    return 0


EXPORT_SUFFIX = {"onnx": ".onnx", "safetensors": ".safetensors"}


def cmd_export(args: argparse.Namespace) -> int:
    from .data import Preprocessor
    from .io import check_target
    from .runs import load_model

    name = "model" + EXPORT_SUFFIX[args.format]
    out = check_target(args.out if args.out else Path(args.checkpoint).with_name(name), name)
    if Path(out).resolve() == Path(args.checkpoint).resolve():  # it would replace what it reads
        raise XpmlpError(f"--out {out} is the checkpoint being exported; write the export under another name "
                         f"(e.g. --out {Path(out).with_name(name if Path(out).name != name else 'exported-' + name)})")
    # the extra is checked before the checkpoint is read: a missing package is the first thing to fix
    if args.format == "onnx":
        from .backend.tracing import import_ndonnx
        from .export.onnx import export_onnx, import_onnx, onnx_ops

        import_onnx(), import_ndonnx()
    else:
        from .export.safetensors import import_safetensors, save_safetensors

        import_safetensors()
    model, tree = load_model(args.checkpoint, "cpu", args.weights)
    if args.format == "safetensors":
        save_safetensors(model, out)
        print(f"wrote {out}: {args.weights} weights of {' -> '.join(map(str, model.sizes))} ({model.dtype}), "
              "config in the metadata")
        return 0
    prep = None
    if not args.no_preprocessing and "prep" in tree:
        prep = Preprocessor.from_state_dict(tree["prep"])
    export_onnx(model, out, preprocessor=prep)
    takes = f"raw features, {prep.method} preprocessing in the graph" if prep else "preprocessed features"
    print(f"wrote {out}: input x (batch, {model.sizes[0]}; {takes}), outputs logits and probabilities "
          f"(batch, {model.num_classes}), {model.dtype}, ONNX opset {_opset(out)}; ops: {', '.join(onnx_ops(out))}")
    return 0


def _opset(path: Path) -> int:
    import onnx

    return next(o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx"))


def cmd_devices(args: argparse.Namespace) -> int:
    from .backend import describe_devices, get_backend

    rows = describe_devices()
    width = max(len(r[0]) for r in rows)
    for spec, ok, why in rows:
        print(f"{spec:<{width}}  {'usable' if ok else 'not usable'}: {why}")
    print(get_backend("auto").note)
    return 0


def cmd_gradcheck(args: argparse.Namespace) -> int:
    from .gradcheck import run_all

    rows = run_all(args.device, seed=args.seed)
    width = max(len(r["check"]) for r in rows)
    print(f"gradient check on {args.device}, float64 (relative error per parameter, worst shown)")
    print(f"{'check':<{width}}  {'max rel. error':>14}  worst parameter")
    bad = 0
    for r in rows:
        worst = max(r["errors"], key=r["errors"].get)
        flag = "" if r["max_error"] < args.tol else "  FAIL"
        bad += bool(flag)
        print(f"{r['check']:<{width}}  {r['max_error']:>14.2e}  {worst}{flag}")
    print(f"{len(rows) - bad} of {len(rows)} checks below {args.tol:g}")
    return 1 if bad else 0


def _int_option(name: str, text: str, minimum: int) -> int:
    """An integer option checked here, so a bad value is one ``error:`` line (argparse prints usage too)."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise XpmlpError(f"{name} {text!r} is not an integer; e.g. {name} 200") from None
    if value < minimum:
        raise XpmlpError(f"{name} {value} must be {'a positive integer' if minimum == 1 else f'>= {minimum}'}")
    return value


def add_parity_args(p: argparse.ArgumentParser) -> None:
    """``xpmlp parity``'s options; numbers stay text until ``cmd_parity`` checks them (one-line errors)."""
    p.add_argument("--device", nargs="*", default=None, metavar="SPEC",
                   help="backends to compare with NumPy (default: every usable one; see xpmlp devices)")
    p.add_argument("--dtype", nargs="*", default=["float64", "float32"], help="float64 and/or float32 (default both)")
    p.add_argument("--steps", default="200", help="SGD steps on each backend (default 200)")
    p.add_argument("--batch-size", default="128", help="minibatch size (default 128)")
    p.add_argument("--sizes", nargs="*", default=["64", "32", "32", "10"], help="layer widths (default 64 32 32 10)")
    p.add_argument("--activation", nargs="+", default=["relu"],
                   help="one activation for every hidden layer, or one per hidden layer (default relu)")
    p.add_argument("--seed", default="0", help="seed of the data, weights and batches (default 0)")
    p.add_argument("--out", default="parity.json", help="JSON result file (default ./parity.json; a folder gets "
                   "parity.json inside)")


def cmd_parity(args: argparse.Namespace) -> int:
    from .parity import check_out, format_table, run_parity, write_json

    steps = _int_option("--steps", args.steps, 1)
    batch_size = _int_option("--batch-size", args.batch_size, 1)
    seed = _int_option("--seed", args.seed, 0)
    sizes = [_int_option("--sizes", s, 1) for s in args.sizes]
    out = check_out(args.out)  # before any training: a bad --out fails at once
    result = run_parity(args.device, args.dtype, steps, batch_size=batch_size, sizes=sizes, seed=seed,
                        activation=args.activation)
    write_json(result, out)  # first, so a closed stdout cannot lose it
    print(format_table(result))
    print(f"wrote {out}")
    return 0 if result["ok"] else 1


def _study_common(p: argparse.ArgumentParser) -> None:
    """A study's own options, then every run setting (default: the preset's or the spec's value)."""
    p.add_argument("--out", required=True, help="study folder (report.md, results.json, runs/); with --engine dask, "
                   "storage every worker sees")
    p.add_argument("--engine", choices=["local", "dask"], default="local",
                   help="local: this machine's processes (default); dask: a Dask cluster (pip install 'xpmlp[dask]')")
    p.add_argument("--jobs", type=positive_int, default=None,
                   help="runs trained in parallel: local worker processes, or the embedded Dask cluster's workers")
    p.add_argument("--workers", type=positive_int, default=None, help="the same number as --jobs (default: 1 local; "
                   "dask: one per GPU with --device cuda, else one per core)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="with --engine dask: an existing cluster's scheduler (tcp://host:8786) instead of a "
                        "LocalCluster on loopback")
    add_setting_args(p, with_defaults=False)


def _engine(args: argparse.Namespace) -> Any:
    """The engine of a study's --engine/--jobs/--workers/--scheduler (checked before anything is written)."""
    from .studies.engines import make_engine

    return make_engine(args.engine, jobs=args.jobs, workers=args.workers, scheduler=args.scheduler)


def _study_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The run settings given on the command line; they win over the preset's or the spec's."""
    over = settings_from_args(args)
    # switching regime: the other length no longer applies (both given is refused by TrainConfig.validate)
    if "epochs" in over and "iterations" not in over:
        over["iterations"] = None
    if "iterations" in over and "epochs" not in over:
        over["epochs"] = None
    return over


def cmd_compare(args: argparse.Namespace) -> int:
    from .studies import PRESETS, compare
    from .studies.compare_study import PRESET_NOTES

    settings = dict(PRESETS[args.preset])
    settings.update(_study_overrides(args))
    if args.activations is not None:
        settings["activations"] = args.activations
    compare(settings, args.out, jobs=_engine(args), note=PRESET_NOTES.get(args.preset))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .studies import load_spec, sweep

    engine = _engine(args)
    spec = load_spec(args.spec)
    sweep(spec, args.out, overrides=_study_overrides(args), jobs=engine)
    return 0


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr (no usage block), exit status 2; subcommands inherit it."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="xpmlp", description="A hand-written MLP on the Python Array API.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train an MLP and write a run folder",
                       epilog="exit status: 0 done, 2 bad input or a diverged run (one line on stderr), "
                              "130/143 stopped by SIGINT/SIGTERM after writing a checkpoint (resume with --resume)")
    add_setting_args(p, with_defaults=False)  # defaults filled by config_from_args: --resume sees what was given
    p.add_argument("--out", default=None,
                   help="run folder (default runs/<dataset>-<widths>-<activation>-<time>-<pid>)")
    p.add_argument("--resume", default=None, metavar="CKPT",
                   help="continue from a checkpoint.npz; --epochs/--iterations, --lr, --lr-schedule, --reg, "
                        "--early-stopping, --log-every and --device may change, other settings must match")
    p.add_argument("--overwrite", action="store_true", help="start again in a --out folder that holds a run")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="loss, accuracy and per-class accuracy of a saved model")
    p.add_argument("checkpoint")
    p.add_argument("--dataset", default=None)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--no-download", action="store_true")
    p.add_argument("--weights", default="last", choices=["last", "best"])
    add_device_args(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export", help="write a saved model as ONNX (runs in onnxruntime) or safetensors weights",
                       epilog="needs the optional extras: pip install 'xpmlp[onnx]' or 'xpmlp[safetensors]'")
    p.add_argument("checkpoint", help="a checkpoint.npz written by xpmlp train")
    p.add_argument("--format", required=True, choices=["onnx", "safetensors"])
    p.add_argument("--out", default=None, help="the file to write (default model.onnx / model.safetensors "
                                               "beside the checkpoint; an existing file is replaced)")
    p.add_argument("--weights", default="last", choices=["last", "best"])
    p.add_argument("--no-preprocessing", action="store_true",
                   help="onnx: leave the checkpoint's preprocessing out of the graph (x is then preprocessed "
                        "features, not raw ones)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("compare", help="one network, several activations: curves, weight grids, table, report")
    p.add_argument("--preset", default="cifar10", choices=["cifar10", "mnist", "cifar10-tuned", "mnist-tuned"],
                   help="cifar10: the two-layer CIFAR-10 study (3072-50-10); mnist: 784-500-500-10 on MNIST under "
                        "plain SGD; the -tuned presets: the same studies with settings chosen by validation accuracy")
    p.add_argument("--activations", nargs="+", default=None)
    _study_common(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("sweep", help="hyper-parameter search on a YAML/JSON spec, selected by validation accuracy")
    p.add_argument("spec", help="a sweep spec (see scripts/specs/)")
    _study_common(p)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("bench", help="xpmlp against PyTorch, scikit-learn and the bare GEMMs, interleaved")
    from . import bench
    bench.add_arguments(p)
    p.set_defaults(func=bench.run)

    p = sub.add_parser("devices", help="list backends and whether each is usable here")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("gradcheck", help="numerical gradient check of every layer, the loss and the model")
    add_device_args(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tol", type=positive_float, default=1e-6)
    p.set_defaults(func=cmd_gradcheck, device="cpu")

    p = sub.add_parser("parity", help="does my GPU give the same numbers as my CPU? train one seeded MLP on "
                       "each backend and compare with NumPy",
                       epilog="exit status: 0 every row within tolerance, 1 a row past tolerance "
                              "(named in the output and in the JSON's 'failed'), 2 bad input")
    add_parity_args(p)
    p.set_defaults(func=cmd_parity)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; every failure the user can fix is one ``error:`` line and a non-zero status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except XpmlpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # a study stopped by a signal says which, and how to go on
        print(f"interrupted: {exc}" if str(exc) else "interrupted", file=sys.stderr)
        return EXIT_BY_SIGNAL.get(getattr(exc, "signal_name", "SIGINT"), 130)
    except BrokenPipeError:  # stdout closed by the reader (`xpmlp evaluate ... | head`): nothing more to say
        silence_stdout()
        return 141
    except MemoryError as exc:
        print(f"error: not enough memory ({exc or 'an allocation failed'}); use smaller --hidden widths, "
              "--batch-size or --subset", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, a file that vanished, permissions: the files written so far are whole
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}; free space or fix the folder, then run again "
              "(an interrupted run resumes with --resume)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
