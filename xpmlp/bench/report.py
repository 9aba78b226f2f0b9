"""The benchmark's result: the JSON-able dict (schema ``xpmlp-bench/1``), its text report and its file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from ..backend import Backend
from ..io import atomic_write_json
from .config import BenchConfig, BenchData, num_parameters

SCHEMA = "xpmlp-bench/1"
FLOPS_FORMULA = ("6 * parameters * samples (forward 2*P*N + backward 4*P*N; P counts weights and biases); "
                 "the same formula for every contender")
RATIO_DEFINITION = ("xpmlp speed-up = median samples/s of xpmlp / median samples/s of the contender "
                    "(> 1: xpmlp is faster)")
PER_CONTENDER = ("samples_per_second", "seconds_per_epoch", "gflops", "test_acc")
TABLE_HEADER = ("contender", "device", "s/epoch", "samples/s", "min-max samples/s", "GFLOP/s", "xpmlp speed-up",
                "test acc")
RIGHT_ALIGNED = {2, 3, 4, 5, 6, 7}


def flops_per_epoch(cfg: BenchConfig, n_train: int) -> float:
    return 6.0 * num_parameters(cfg.sizes) * n_train


def build_result(cfg: BenchConfig, backend: Backend, data: BenchData, contenders: dict[str, dict[str, Any]],
                 measured: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """The result (see ``SCHEMA``); ``measured`` holds ``gemm_ceiling``, ``machine`` and ``profile``."""
    _add_ratios(contenders)
    n_train = int(data.x_train.shape[0])
    if data.generated:
        notes = [f"DATA IS GENERATED, not Fashion-MNIST: {data.note}", *notes]
    return {
        "schema": SCHEMA,
        "config": asdict(cfg) | {"sizes": cfg.sizes, "optimizer": "sgd (no momentum, no L2)",
                                 "activation": "relu", "backend": str(backend)},
        "data": {"source": data.source, "generated": data.generated, "note": data.note, "n_train": n_train,
                 "n_test": int(data.x_test.shape[0])},
        "parameters": num_parameters(cfg.sizes),
        "flops_formula": FLOPS_FORMULA,
        "flops_per_epoch": flops_per_epoch(cfg, n_train),
        "ratio_definition": RATIO_DEFINITION,
        "contenders": contenders,
        "xpmlp_fraction_of_gemm": contenders["gemm"]["ratio"] if "gemm" in contenders else None,
        "gemm_ceiling": measured["gemm_ceiling"],
        "machine": measured["machine"],
        "profile": measured["profile"],
        "notes": notes,
    }


def _add_ratios(contenders: dict[str, dict[str, Any]]) -> None:
    """Each contender's ``ratio`` (xpmlp's median samples/s over its own); absent numbers become None."""
    base = contenders.get("xpmlp", {}).get("samples_per_second", {}).get("median")
    for result in contenders.values():
        median = result.get("samples_per_second", {}).get("median") if result["status"] == "ok" else None
        result["ratio"] = base / median if (base and median) else None
        for key in PER_CONTENDER:
            result.setdefault(key, None)


def write_json(path: str | os.PathLike[str], result: dict[str, Any]) -> None:
    """Write the result atomically: a temporary file in the same folder, then os.replace."""
    atomic_write_json(path, result)


# ---------------------------------------------------------------------------------------------
# the text report
# ---------------------------------------------------------------------------------------------

def format_report(result: dict[str, Any]) -> str:
    """The human-readable report: the header, the aligned table and the machine lines."""
    lines = [*_header_lines(result), "", *_table_lines(result["contenders"]), "",
             "xpmlp speed-up = xpmlp samples/s / contender samples/s (medians): > 1 means xpmlp is faster.",
             "GFLOP/s = 6 x parameters x samples / seconds (the same formula for every row).",
             *_outcome_lines(result), *_machine_lines(result["machine"]),
             *(f"note: {note}" for note in result["notes"]), *_profile_lines(result.get("profile"))]
    return "\n".join(lines)


def _header_lines(result: dict[str, Any]) -> list[str]:
    cfg, data, machine = result["config"], result["data"], result["machine"]
    lines = [
        f"xpmlp benchmark: {'-'.join(map(str, cfg['sizes']))} ReLU, {cfg['dtype']}, batch {cfg['batch_size']}, "
        f"SGD lr {cfg['lr']:g} (no momentum, no L2)",
        f"data: {data['source']}; {data['n_train']:,} training samples per epoch, {data['n_test']:,} test samples",
    ]
    if data["generated"]:
        lines.append(f"WARNING: generated data, not Fashion-MNIST ({data['note']})")
    return [*lines,
            f"timing: {cfg['rounds']} interleaved rounds x {cfg['epochs']} timed epoch(s) per contender, "
            f"warm-up excluded; threads: {machine['threads']}",
            f"FLOPs per epoch: 6 x {result['parameters']:,} parameters x {data['n_train']:,} samples "
            f"= {result['flops_per_epoch'] / 1e9:.1f} GFLOP"]


def _format(value: Any, spec: str, none: str = "-") -> str:
    return none if value is None else format(value, spec)


def _table_row(result: dict[str, Any]) -> tuple[str, ...]:
    if result["status"] != "ok":  # spans the numeric columns; the reason is in a line below the table
        return (result["label"], result["device"], result["status"])
    speed = result["samples_per_second"]
    ratio = result["ratio"]
    return (result["label"], result["device"], f"{result['seconds_per_epoch']:.4g}", f"{speed['median']:,.0f}",
            f"{speed['min']:,.0f}-{speed['max']:,.0f}", f"{result['gflops']:.1f}",
            _format(ratio, ".2f") + ("x" if ratio is not None else ""), _format(result["test_acc"], ".4f"))


def _table_lines(contenders: dict[str, dict[str, Any]]) -> list[str]:
    rows: list[Sequence[str]] = [TABLE_HEADER, *(_table_row(result) for result in contenders.values())]
    full = len(TABLE_HEADER)
    widths = [max(len(row[col]) for row in rows if col < 2 or len(row) == full) for col in range(full)]

    def line(row: Sequence[str]) -> str:
        if len(row) < full:
            return "  ".join([row[0].ljust(widths[0]), row[1].ljust(widths[1]), *row[2:]])
        return "  ".join(cell.rjust(width) if col in RIGHT_ALIGNED else cell.ljust(width)
                         for col, (cell, width) in enumerate(zip(row, widths, strict=True)))
    return [line(TABLE_HEADER), "  ".join("-" * width for width in widths), *(line(row) for row in rows[1:])]


def _outcome_lines(result: dict[str, Any]) -> list[str]:
    """Why a contender did not run, xpmlp's share of the GEMM ceiling, the GEMM rates."""
    lines = [f"{res['label']}: {res['status']}: {res['reason']}"
             for res in result["contenders"].values() if res["status"] != "ok"]
    if result["xpmlp_fraction_of_gemm"] is not None:
        lines.append(f"xpmlp reaches {100 * result['xpmlp_fraction_of_gemm']:.0f}% of the GEMM-only ceiling "
                     "(its matrix products alone).")
    for where, ceiling in result["gemm_ceiling"].items():
        shapes = ", ".join(f"{shape['m']}x{shape['k']} @ {shape['k']}x{shape['n']}: {shape['gflops']:.1f}"
                           for shape in ceiling["shapes"])
        lines.append(f"GEMM rate ({where}, {ceiling['library']}, {ceiling['dtype']}, forward shapes): "
                     f"{ceiling['gflops']:.1f} GFLOP/s overall ({shapes})")
    return lines


def _blas_line(entries: list[dict[str, Any]]) -> str:
    blas = [entry for entry in entries if entry.get("user_api") == "blas"] or entries
    if not blas:
        return "unknown"
    entry = blas[0]
    return (f"{entry.get('internal_api')} {entry.get('version')} kernel {entry.get('architecture')}, "
            f"threads: {entry.get('num_threads')} ({entry.get('file')})")


def _machine_lines(machine: dict[str, Any]) -> list[str]:
    blas, torch_blas = machine["blas"], machine["blas"].get("torch")
    if torch_blas is None:
        torch_line = "BLAS torch: (PyTorch not installed)"
    else:
        torch_line = (f"BLAS torch: {torch_blas.get('blas_info', '?')} ({torch_blas.get('mkl', 'version unknown')}), "
                      f"CPU capability {torch_blas.get('cpu_capability', '?')}, "
                      f"threads: {torch_blas.get('num_threads')}")
    env = ", ".join(f"{name}={machine['env'][name] if machine['env'][name] is not None else '(unset)'}"
                    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"))
    versions = ", ".join(f"{name} {version}" for name, version in machine["versions"].items() if version is not None)
    return [f"CPU: {machine['cpu_model']} ({machine['cores_available']} cores available)"
            + (f"; GPU: {machine['gpu']}" if machine.get("gpu") else ""),
            f"BLAS numpy: {_blas_line(blas.get('numpy', []))}",
            torch_line,
            f"versions: {versions}",
            f"env: {env}; date {machine['date']}"]


def _profile_lines(profile: list[dict[str, Any]] | None) -> list[str]:
    if not profile:
        return []
    return ["", "profile of one extra xpmlp epoch (top functions by own time):",
            *(f"  {row['tottime']:8.3f}s {100 * row['share']:5.1f}%  {row['calls']:>7}  {row['function']}"
              for row in profile)]
