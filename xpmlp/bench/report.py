"""The benchmark's result: the JSON-able dict (schema ``xpmlp-bench/1``), its text report and its file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from ..backend import Backend
from ..io import atomic_write_json
from ..network import activation_label
from .config import BenchConfig, BenchData, num_parameters

SCHEMA = "xpmlp-bench/1"
FLOPS_FORMULA = ("6 * parameters * samples (forward 2*P*N + backward 4*P*N; P counts weights and biases); "
                 "the same formula for every contender")
RATIO_DEFINITION = ("xpmlp speed-up = median samples/s of xpmlp / median samples/s of the contender "
                    "(> 1: xpmlp is faster)")
PER_CONTENDER = ("samples_per_second", "seconds_per_epoch", "gflops", "test_acc")
TABLE_HEADER = ("contender", "device", "s/epoch", "samples/s", "min-max samples/s", "GFLOP/s", "xpmlp speed-up",
                "test acc", "peak MiB")
GPU_COLUMN = "GPU peak MiB"
RIGHT_ALIGNED = {2, 3, 4, 5, 6, 7, 8, 9}
MIB = 2**20


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
                                 "activation": cfg.activation, "backend": str(backend)},
        "data": {"source": data.source, "generated": data.generated, "note": data.note, "n_train": n_train,
                 "n_test": int(data.x_test.shape[0])},
        "parameters": num_parameters(cfg.sizes),
        "flops_formula": FLOPS_FORMULA,
        "flops_per_epoch": flops_per_epoch(cfg, n_train),
        "ratio_definition": RATIO_DEFINITION,
        "contenders": contenders,
        "xpmlp_fraction_of_gemm": contenders["gemm"]["ratio"] if "gemm" in contenders else None,
        "xpmlp_backends": [{"key": key, "device": res["device"], "status": res["status"]}
                           for key, res in contenders.items() if res.get("kind") == "xpmlp"],
        "xpmlp_fastest": _fastest_xpmlp(contenders),
        "gemm_ceiling": measured["gemm_ceiling"],
        "machine": measured["machine"],
        "profile": measured["profile"],
        "notes": notes,
    }


def _median(result: dict[str, Any] | None) -> float | None:
    """The median samples/s of a contender that ran, else None."""
    if not result or result["status"] != "ok":
        return None
    return (result.get("samples_per_second") or {}).get("median")


def _add_ratios(contenders: dict[str, dict[str, Any]]) -> None:
    """Each contender's ``ratio`` (xpmlp's median samples/s over its own); each xpmlp row's and
    PyTorch's ``fraction_of_gemm`` (its median over that of the GEMM-only of its library, named by
    ``gemm_key``; xpmlp rows without one: ``"gemm"``); absent numbers become None."""
    base = _median(contenders.get("xpmlp"))
    for result in contenders.values():
        median = _median(result)
        result["ratio"] = base / median if (base and median) else None
        if result.get("kind") == "xpmlp" or (result.get("kind") == "torch" and result.get("gemm_key")):
            gemm = _median(contenders.get(result.get("gemm_key") or "gemm"))
            result["fraction_of_gemm"] = median / gemm if (median and gemm) else None
        for key in PER_CONTENDER:
            result.setdefault(key, None)
        result.setdefault("memory", None)


def _fastest_xpmlp(contenders: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The xpmlp backend with the highest median samples/s, and how many times each other one's rate it has."""
    rates = {key: _median(res) for key, res in contenders.items() if res.get("kind") == "xpmlp"}
    rates = {key: rate for key, rate in rates.items() if rate}
    if not rates:
        return None
    best = max(rates, key=lambda key: rates[key])
    return {"key": best, "device": contenders[best]["device"], "samples_per_second": rates[best],
            "speedup_over": {key: rates[best] / rate for key, rate in rates.items() if key != best}}


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
             *_outcome_lines(result), *_fastest_lines(result), *_memory_lines(result["contenders"]),
             *_machine_lines(result["machine"]),
             *(f"note: {note}" for note in result["notes"]), *_profile_lines(result.get("profile"))]
    return "\n".join(lines)


def _header_lines(result: dict[str, Any]) -> list[str]:
    cfg, data, machine = result["config"], result["data"], result["machine"]
    lines = [
        f"xpmlp benchmark: {'-'.join(map(str, cfg['sizes']))} {activation_label(cfg.get('activation', 'relu'))}, "
        f"{cfg['dtype']}, batch {cfg['batch_size']}, "
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


def _title(result: dict[str, Any]) -> str:
    """The label, with the device for xpmlp on a backend besides ``--device``."""
    name = result["name"]
    return result["label"] if name == result.get("kind", name) else f"{result['label']} ({name.split(':', 1)[-1]})"


def _memory_cells(result: dict[str, Any], gpu: bool) -> tuple[str, ...]:
    memory = result.get("memory") or {}
    ok = memory.get("status") == "ok"
    cells = (f"{memory['peak_bytes'] / MIB:,.0f}" if ok else "-",)
    if gpu:
        device = memory.get("device") if ok else None
        cells += (f"{device['peak_bytes'] / MIB:,.0f}" if device else "-",)
    return cells


def _table_row(result: dict[str, Any], gpu: bool) -> tuple[str, ...]:
    if result["status"] != "ok":  # spans the numeric columns; the reason is in a line below the table
        return (result["label"], result["device"], result["status"])
    speed = result["samples_per_second"]
    ratio = result["ratio"]
    return (result["label"], result["device"], f"{result['seconds_per_epoch']:.4g}", f"{speed['median']:,.0f}",
            f"{speed['min']:,.0f}-{speed['max']:,.0f}", f"{result['gflops']:.1f}",
            _format(ratio, ".2f") + ("x" if ratio is not None else ""), _format(result["test_acc"], ".4f"),
            *_memory_cells(result, gpu))


def _table_lines(contenders: dict[str, dict[str, Any]]) -> list[str]:
    gpu = any(((res.get("memory") or {}).get("device")) for res in contenders.values())
    header = (*TABLE_HEADER, GPU_COLUMN) if gpu else TABLE_HEADER
    rows: list[Sequence[str]] = [header, *(_table_row(result, gpu) for result in contenders.values())]
    full = len(header)
    widths = [max(len(row[col]) for row in rows if col < 2 or len(row) == full) for col in range(full)]

    def line(row: Sequence[str]) -> str:
        if len(row) < full:
            return "  ".join([row[0].ljust(widths[0]), row[1].ljust(widths[1]), *row[2:]])
        return "  ".join(cell.rjust(width) if col in RIGHT_ALIGNED else cell.ljust(width)
                         for col, (cell, width) in enumerate(zip(row, widths, strict=True)))
    return [line(header), "  ".join("-" * width for width in widths), *(line(row) for row in rows[1:])]


def _fastest_lines(result: dict[str, Any]) -> list[str]:
    fastest, contenders = result.get("xpmlp_fastest"), result["contenders"]
    if not fastest:
        return []
    others = ", ".join(f"{ratio:.2f}x xpmlp on {contenders[key]['device']}"
                       for key, ratio in fastest["speedup_over"].items())
    return [f"fastest xpmlp backend here: {fastest['device']}, {fastest['samples_per_second']:,.0f} samples/s"
            + (f" ({others})" if others else " (the only one that ran)")]


def _memory_lines(contenders: dict[str, dict[str, Any]]) -> list[str]:
    """What the peak-memory column means, each contender's epoch working memory, and any failure."""
    measured = {key: res["memory"] for key, res in contenders.items()
                if (res.get("memory") or {}).get("status") == "ok"}
    lines = [f"memory of {_title(res)} not measured: {res['memory'].get('status')}: {res['memory'].get('reason')}"
             for res in contenders.values() if res.get("memory") and res["memory"].get("status") != "ok"]
    if not measured:
        return lines
    method = next(iter(measured.values()))["method"]
    work = ", ".join(f"{_title(contenders[key])} {memory['epoch_bytes'] / MIB:,.1f}"
                     for key, memory in measured.items())
    return [f"peak MiB = resident memory a fresh process adds to the loaded data while setting the contender up "
            f"and training one epoch ({'VmHWM' if method == 'vmhwm' else 'RSS sampled every ms'}; "
            "see xpmlp/bench/memory.py)", f"  of it, one epoch's working memory (MiB): {work}", *lines]


def _outcome_lines(result: dict[str, Any]) -> list[str]:
    """Why a contender did not run, xpmlp's share of the GEMM ceiling, the GEMM rates."""
    lines = [f"{_title(res)}: {res['status']}: {res['reason']}"
             for res in result["contenders"].values() if res["status"] != "ok"]
    contenders = result["contenders"]
    shares = [f"{100 * res['fraction_of_gemm']:.0f}% on {res['device']}" for res in contenders.values()
              if res.get("kind") == "xpmlp" and res.get("fraction_of_gemm") is not None]
    if shares:
        lines.append(f"xpmlp reaches {', '.join(shares)} of the GEMM-only ceiling (its matrix products alone, "
                     "in the same library).")
    torch = contenders.get("torch") or {}
    share = torch.get("fraction_of_gemm")
    if share:
        line = f"PyTorch reaches {100 * share:.0f}% of GEMM-only on {contenders[torch['gemm_key']]['device']}"
        # at or past 100 %, PyTorch's own layout (W as out x in, bias in addmm) or the machine's drift beat it
        lines.append(line + (f": xpmlp on torch, whose products these are, can be at most {1 / share:.2f}x "
                             "PyTorch here." if share < 1 else " (no bound on xpmlp on torch from it in this run)."))
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
    load = machine.get("load_average")
    return [f"CPU: {machine['cpu_model']} ({machine['cores_available']} cores available"
            + (f"; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end)" if load else ")")
            + (f"; GPU: {machine['gpu']}" if machine.get("gpu") else ""),
            f"BLAS numpy: {_blas_line(blas.get('numpy', []))}; fused weight update: "
            + (f"{blas['numpy_fused_gemm']} (NumPy's own BLAS, with beta)" if blas.get("numpy_fused_gemm")
               else "matmul, then in-place passes"),
            torch_line,
            f"versions: {versions}",
            f"env: {env}; date {machine['date']}"]


def _profile_lines(profile: list[dict[str, Any]] | None) -> list[str]:
    if not profile:
        return []
    return ["", "profile of one extra xpmlp epoch (top functions by own time):",
            *(f"  {row['tottime']:8.3f}s {100 * row['share']:5.1f}%  {row['calls']:>7}  {row['function']}"
              for row in profile)]
