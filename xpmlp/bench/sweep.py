"""Cost growth: samples/s over hidden widths x batch sizes, xpmlp against PyTorch and the bare GEMMs.

``python scripts/bench_sweep.py`` (or ``python -m xpmlp.bench.sweep``) trains the network
784-W-W-10 (ReLU, plain SGD, float32 by default) for every width ``W`` of ``--widths`` (default
128 256 512 1024 2048 4096) and batch size of ``--batch-sizes`` (default 32 128 512 4096),
with the benchmark's own contenders (:mod:`xpmlp.bench.lineup`): xpmlp on each of its backends
(default: NumPy and PyTorch on the CPU), PyTorch ``nn`` and GEMM-only (the matrix products of
the same steps alone, the ceiling). Within a cell the contenders are interleaved for
``--rounds`` rounds after one untimed warm-up each, exactly as ``xpmlp bench`` does; every one
trains the same fixed number of steps, from the same data, and the cell records their median
samples/s, min-max, and the ratios xpmlp / PyTorch and xpmlp / GEMM-only. No test accuracy.

Steps per cell: ``round(--target-gflop / (6 * parameters * batch))``, at least 1, at most
``--max-steps`` and at most what the training data holds (55,000 Fashion-MNIST images: 13
steps of 4,096). So every cell costs about the same FLOPs (small cells, whose rate the
per-step overhead sets, take longer per FLOP), the count is a function of the settings alone,
and the whole default sweep takes about 5-10 minutes on 2 cores. Data: Fashion-MNIST (its
training split, scaled to [0, 1]) when it is installed, else generated data of the same shape
(``--data generated`` asks for it); the JSON says which. Speed does not depend on the values.

Output: the JSON (``--json``; schema ``xpmlp-bench-sweep/1``, rewritten after every cell, so an
interrupted sweep keeps what it measured, ``complete`` false) with the machine (CPU model,
BLAS libraries and kernels from threadpoolctl, threads, versions), and one PNG (``--png``,
default next to the JSON; :mod:`xpmlp.bench.sweep_plot`).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

from ..argtypes import number, positive_int
from ..backend import Backend, get_backend
from ..errors import InputError, XpmlpError
from ..io import atomic_write_json
from .config import BenchConfig, BenchData, Log, load_data, num_parameters
from .lineup import FAST_BACKENDS, lineup, xpmlp_backends
from .machine import ThreadLimit, available_cores, gpu_name, load_note, machine_info
from .runner import Race

SCHEMA = "xpmlp-bench-sweep/1"
WIDTHS = (128, 256, 512, 1024, 2048, 4096)
BATCH_SIZES = (32, 128, 512, 4096)
CONTENDERS = ("xpmlp", "torch", "gemm")
QUICK = {"widths": [128, 512], "batch_sizes": [32, 512], "rounds": 2, "target_gflop": 2.0, "max_steps": 50,
         "train_size": 4096}
STEP_RULE = ("steps = round(target_gflop * 1e9 / (6 * parameters * batch_size)), at least 1, at most max_steps "
             "and at most n_train // batch_size; the same steps for every contender of a cell")


@dataclass
class SweepConfig:
    """One sweep; ``None`` fields take their defaults (``--quick`` changes some) in :meth:`resolve`."""

    widths: list[int] | None = None
    batch_sizes: list[int] | None = None
    depth: int = 2
    contenders: list[str] = field(default_factory=lambda: list(CONTENDERS))
    device: str = "cpu"
    xpmlp_devices: list[str] | None = None
    dtype: str = "float32"
    lr: float = 0.01
    rounds: int | None = None
    target_gflop: float | None = None
    max_steps: int | None = None
    train_size: int | None = None
    threads: int | None = None
    data: str = "fashion-mnist"
    seed: int = 0
    quick: bool = False
    json: str = "bench-sweep.json"
    png: str | None = None

    def resolve(self) -> SweepConfig:
        defaults = QUICK if self.quick else {"widths": list(WIDTHS), "batch_sizes": list(BATCH_SIZES),
                                             "rounds": 3, "target_gflop": 40.0, "max_steps": 500}
        for name, value in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        self.threads = self.threads or available_cores()
        self.png = self.png or str(Path(self.json).with_suffix(".png"))
        self._validate()
        return self

    def _validate(self) -> None:
        assert self.widths is not None and self.batch_sizes is not None and self.target_gflop is not None
        for name in ("widths", "batch_sizes"):
            values = getattr(self, name)
            if not values or any(int(value) < 1 for value in values):
                raise InputError(f"--{name.replace('_', '-')} {values}: give positive integers")
            setattr(self, name, sorted({int(value) for value in values}))
        unknown = [name for name in self.contenders if name not in CONTENDERS]
        if unknown or not self.contenders:
            raise InputError(f"--contenders: unknown {', '.join(unknown) or '(empty)'}; "
                             f"choose from {','.join(CONTENDERS)}")
        for name in ("depth", "rounds", "max_steps", "threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InputError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        for name in ("target_gflop", "lr"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise InputError(f"--{name.replace('_', '-')} must be a positive number, got {value!r}")
        for path, option in ((self.json, "--json"), (self.png, "--png")):
            check_output(Path(str(path)), option)

    def cell_config(self, width: int, batch: int, steps: int) -> BenchConfig:
        """The benchmark settings of one cell (validated by :meth:`BenchConfig.resolve`)."""
        return BenchConfig(hidden=[width] * self.depth, batch_size=batch, lr=self.lr, dtype=self.dtype, epochs=1,
                           rounds=self.rounds, train_size=steps * batch, threads=self.threads,
                           contenders=list(self.contenders), device=self.device, xpmlp_devices=self.xpmlp_devices,
                           memory=False, data=self.data, quick=self.quick, warmup_steps=max(1, min(3, steps // 4)),
                           seed=self.seed).resolve()


def check_output(path: Path, option: str) -> None:
    """Fail before any work when ``path`` cannot be written: a folder, or under a folder we may not write."""
    if path.is_dir():
        raise InputError(f"{option} {path} is a folder; give a file name, e.g. {option} {path / 'sweep.json'}")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{option} {path}: cannot create files in {parent}; choose another {option}")


def steps_for(cfg: SweepConfig, width: int, batch: int, n_train: int) -> tuple[int, str]:
    """The steps of a cell (see :data:`STEP_RULE`) and what limited them."""
    assert cfg.target_gflop is not None and cfg.max_steps is not None
    flops_per_step = 6.0 * num_parameters([784, *[width] * cfg.depth, 10]) * batch
    wanted = max(1, round(cfg.target_gflop * 1e9 / flops_per_step))
    steps = min(wanted, cfg.max_steps, n_train // batch)
    limit = "target-gflop" if steps == wanted else ("max-steps" if steps == cfg.max_steps else "data")
    return steps, limit


def planned_gflop(cfg: SweepConfig, width: int, batch: int, n_train: int) -> float:
    """GFLOP one contender trains in a cell: its warm-up and every round."""
    steps, _ = steps_for(cfg, width, batch, n_train)
    warmup = cfg.cell_config(width, batch, steps).warmup_steps
    return 6.0 * num_parameters([784, *[width] * cfg.depth, 10]) * batch * (warmup + steps * int(cfg.rounds or 1)) / 1e9


def _rate(result: dict[str, Any] | None) -> float | None:
    if not result or result.get("status") != "ok":
        return None
    return result["samples_per_second"]["median"]


def run_cell(cfg: SweepConfig, width: int, batch: int, data: BenchData, backends: Sequence[Backend],
             log: Log) -> dict[str, Any]:
    """One cell: set up, warm up, interleave ``cfg.rounds`` rounds of the same steps, summarise."""
    steps, limit = steps_for(cfg, width, batch, int(data.x_train.shape[0]))
    cell_cfg = cfg.cell_config(width, batch, steps)
    n = steps * batch
    cell_data = replace(data, x_train=data.x_train[:n], y_train=data.y_train[:n])
    start = time.perf_counter()
    race = Race(cell_cfg, cell_data, lambda line: log(line) if line.startswith("error") else None)
    for contender in lineup(cell_cfg, cell_data, cell_cfg.contenders or [], backends[0], backends):
        race.set_up(contender)
    race.warm_up()
    race.score(race.time_rounds(), accuracy=False)
    torch = _rate(race.results.get("torch"))
    xpmlp = {key: _rate(res) for key, res in race.results.items() if res["kind"] == "xpmlp"}
    # each xpmlp row against the GEMM-only of its own library (lineup's gemm_key)
    gemm = {key: _rate(race.results.get(race.results[key].get("gemm_key") or "gemm")) for key in xpmlp}
    return {"width": width, "batch_size": batch, "sizes": cell_cfg.sizes, "parameters": num_parameters(cell_cfg.sizes),
            "steps": steps, "steps_limited_by": limit, "samples": n, "seconds": time.perf_counter() - start,
            "contenders": race.results,
            "ratio_to_torch": {key: rate / torch if rate and torch else None for key, rate in xpmlp.items()},
            "ratio_to_gemm": {key: rate / gemm[key] if rate and gemm[key] else None for key, rate in xpmlp.items()}}


def _cell_line(cell: dict[str, Any]) -> str:
    rates = ", ".join(f"{key} {_rate(res):,.0f}/s" if _rate(res) else f"{key} {res['status']}"
                      for key, res in cell["contenders"].items())
    ratios = ", ".join(f"{key}/torch {ratio:.2f}x" for key, ratio in cell["ratio_to_torch"].items() if ratio)
    return (f"W {cell['width']:>5}  batch {cell['batch_size']:>5}  {cell['steps']:>4} steps: {rates}"
            + (f"; {ratios}" if ratios else "") + f"  [{cell['seconds']:.1f} s]")


def sweep_backends(cfg: SweepConfig) -> list[Backend]:
    """xpmlp's backends, ``--device`` first; by default the usable fast ones on its hardware (CPU or GPU)."""
    primary = get_backend(cfg.device, cfg.dtype)
    devices = cfg.xpmlp_devices
    if devices is None:
        on_gpu = [spec for spec in FAST_BACKENDS if "cuda" in spec]
        wanted = on_gpu if primary.on_gpu else [spec for spec in FAST_BACKENDS if spec not in on_gpu]
        devices = [spec for spec in wanted if _usable(spec, cfg.dtype)]
    return xpmlp_backends(primary, devices)


def _usable(spec: str, dtype: str) -> bool:
    try:
        get_backend(spec, dtype)
    except XpmlpError:
        return False
    return True


def load_sweep_data(cfg: SweepConfig, log: Log) -> BenchData:
    """The training data every cell cuts its samples from; every batch size must fit in it."""
    assert cfg.batch_sizes is not None
    data = load_data(BenchConfig(data=cfg.data, dtype=cfg.dtype, train_size=cfg.train_size, seed=cfg.seed,
                                 batch_size=min(cfg.batch_sizes), quick=cfg.quick).resolve(), log)
    n_train = int(data.x_train.shape[0])
    if max(cfg.batch_sizes) > n_train:
        raise InputError(f"--batch-sizes {max(cfg.batch_sizes)} is larger than the training data ({n_train:,} "
                         "samples); raise --train-size or drop that batch size")
    return data


def run_sweep(cfg: SweepConfig, log: Log = print) -> dict[str, Any]:
    """Every cell of the grid; the result (schema :data:`SCHEMA`) is written to ``cfg.json`` after each."""
    cfg.resolve()
    assert cfg.widths is not None and cfg.batch_sizes is not None
    backends = sweep_backends(cfg)
    busy = load_note()
    data = load_sweep_data(cfg, log)
    result = _new_result(cfg, backends, data)
    if busy:
        log(f"warning: {busy}")
        result["notes"].append(busy)
    grid = [(width, batch) for batch in cfg.batch_sizes for width in cfg.widths]
    work = [planned_gflop(cfg, width, batch, int(data.x_train.shape[0])) for width, batch in grid]
    log(f"sweep: {len(grid)} cells, widths {cfg.widths} x batch sizes {cfg.batch_sizes}, {cfg.rounds} interleaved "
        f"rounds per cell, xpmlp on {', '.join(backend.spec for backend in backends)}; {sum(work):,.0f} GFLOP per "
        f"contender in all; {STEP_RULE}")
    start = time.perf_counter()
    limit_torch = "torch" in cfg.contenders or "torch" in sys.modules
    with ThreadLimit(int(cfg.threads or 1), limit_torch) as limit, backends[0].context():
        if limit.note:
            result["notes"].append(limit.note)
        for index, (width, batch) in enumerate(grid):
            cell = run_cell(cfg, width, batch, data, backends, log)
            result["cells"].append(cell)
            result["elapsed_seconds"] = elapsed = time.perf_counter() - start
            atomic_write_json(cfg.json, result)
            left = elapsed * sum(work[index + 1:]) / sum(work[:index + 1])  # rough: small cells cost more per FLOP
            log(f"{_cell_line(cell)}  cell {index + 1}/{len(grid)}, {elapsed:.0f} s, about {left:.0f} s left")
    result["complete"] = True
    atomic_write_json(cfg.json, result)
    return result


def _new_result(cfg: SweepConfig, backends: Sequence[Backend], data: BenchData) -> dict[str, Any]:
    gpu = next((gpu_name(backend) for backend in backends if backend.on_gpu), None)
    notes = [f"DATA IS GENERATED, not Fashion-MNIST: {data.note}"] if data.generated else []
    return {"schema": SCHEMA, "complete": False, "config": asdict(cfg),
            "network": f"784-{'-'.join(['W'] * cfg.depth)}-10 ReLU, SGD lr {cfg.lr:g} (no momentum, no L2)",
            "step_rule": STEP_RULE, "xpmlp_backends": [backend.spec for backend in backends],
            "data": {"source": data.source, "generated": data.generated, "note": data.note,
                     "n_train": int(data.x_train.shape[0])},
            "flops_formula": "6 * parameters * samples (as xpmlp bench)",
            "machine": machine_info(int(cfg.threads or 1), gpu), "cells": [], "elapsed_seconds": 0.0, "notes": notes}


# ---------------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------------

class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad option is one ``error:`` line (exit 2) instead of the usage and the error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(prog: str = "bench_sweep.py") -> argparse.ArgumentParser:
    parser = OneLineParser(prog=prog, description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--widths", type=positive_int, nargs="+", default=None,
                        help=f"hidden widths W of 784-W-W-10 (default {' '.join(map(str, WIDTHS))})")
    parser.add_argument("--batch-sizes", type=positive_int, nargs="+", default=None,
                        help=f"batch sizes (default {' '.join(map(str, BATCH_SIZES))})")
    parser.add_argument("--depth", type=positive_int, default=2, help="hidden layers of width W (default 2)")
    parser.add_argument("--contenders", type=_names, default=list(CONTENDERS),
                        help="comma-separated subset of xpmlp,torch,gemm (default all)")
    parser.add_argument("--device", default="cpu", help="xpmlp's first backend; PyTorch and GEMM-only run on its "
                                                         "hardware (default cpu)")
    parser.add_argument("--xpmlp-devices", type=_specs, default=None, metavar="SPECS",
                        help="comma-separated backends xpmlp also runs on (default: the usable ones of "
                             "cpu,torch -- or cuda,torch:cuda with a GPU --device)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--lr", type=number, default=0.01, help="SGD learning rate (default 0.01)")
    parser.add_argument("--rounds", type=positive_int, default=None, help="interleaved rounds per cell (default 3)")
    parser.add_argument("--target-gflop", type=number, default=None,
                        help="FLOPs each contender trains per round and cell, in GFLOP (default 40)")
    parser.add_argument("--max-steps", type=positive_int, default=None, help="steps per cell at most (default 500)")
    parser.add_argument("--train-size", type=positive_int, default=None,
                        help="training samples to cut the cells from (default all 55,000)")
    parser.add_argument("--threads", type=positive_int, default=None, help="BLAS and torch threads (default: cores)")
    parser.add_argument("--data", default="fashion-mnist", choices=["fashion-mnist", "generated"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help=f"a short check: widths {QUICK['widths']}, batch sizes {QUICK['batch_sizes']}, "
                             f"{QUICK['rounds']} rounds, {QUICK['target_gflop']:g} GFLOP per cell")
    parser.add_argument("--json", default="bench-sweep.json", metavar="FILE",
                        help="the result (default bench-sweep.json), written atomically after every cell")
    parser.add_argument("--png", default=None, metavar="FILE", help="the plot (default: the JSON's name, .png)")
    return parser


def _names(text: str) -> list[str]:
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    if not names or any(name not in CONTENDERS for name in names):
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {','.join(CONTENDERS)}")
    return names


def _specs(text: str) -> list[str]:
    specs = [spec.strip().lower() for spec in text.split(",") if spec.strip()]
    if not specs:
        raise argparse.ArgumentTypeError("give comma-separated device specs, e.g. cpu,torch")
    return specs


def config_from_args(args: argparse.Namespace) -> SweepConfig:
    return SweepConfig(**{name: getattr(args, name) for name in SweepConfig.__dataclass_fields__})


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sweep and write its JSON and PNG. 0 = ok, 1 = a contender failed somewhere, 2 = bad input."""
    args = build_parser().parse_args(argv)
    log: Log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    try:
        cfg = config_from_args(args).resolve()
        from .sweep_plot import write_png  # matplotlib: only once the settings are good

        result = run_sweep(cfg, log)
        write_png(cfg.png, result)
    except XpmlpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {cfg.json} and {cfg.png} ({len(result['cells'])} cells in {result['elapsed_seconds']:.0f} s)")
    failed = any(res["status"] == "error" for cell in result["cells"] for res in cell["contenders"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
