"""Everything GPU-related in one command, for the day an NVIDIA GPU is lent.

Run it through ``bash scripts/gpu_check.sh`` (which sets up the environment and installs the wheels
in ``.whl/``); the Python part runs each check as a subprocess with its own timeout, under one time
budget, and writes ``$OUT/gpu-check.json`` again after every step, so a kill keeps what was done.

Subcommands::

    run [--out DIR] [--budget S] [--require-gpu auto|yes|no] [--only STEP ...] [--skip STEP ...]
    nosync SPEC          (worker) no device->host sync in 200 training steps, with a positive control
    first-step SPEC      (worker) time of the first training step of a fresh model vs later steps
    estimator SPEC       (worker) xpmlp's MLPClassifier fitted on SPEC's arrays vs on the CPU (accuracy within 0.01)
    missing-wheels DIR   print the wheels in DIR whose distribution is not installed
    unpack-wheels DEST WHEEL ...   unzip pure-Python wheels into DEST (when pip cannot install)

Steps (names for --only/--skip): devices, pytest, gradcheck, parity, nosync, first-step, train, bench,
fused. Each step's timeout is its own limit, cut to what is left of the budget less what the steps
still to come keep back (``RESERVE``), so a slow step cannot starve the benchmarks at the end.
Without a usable GPU every GPU step is skipped with its reason and the run exits 0; with
``--require-gpu yes`` (default ``auto``: yes when ``nvidia-smi`` lists a GPU and $CI is not set) a
skipped GPU step is a failure. Exit status: 0 nothing failed, 1 a step failed, 2 bad arguments.

The record and the command runner are in ``gpu_check_runner.py``, the workers in
``gpu_check_workers.py``, beside it. These files import only the standard library at the top: they
must start even where xpmlp cannot.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # loaded by path rather than run as a script (the tests): its modules beside it
    sys.path.append(str(HERE))

import gpu_check_workers as workers  # noqa: E402
from gpu_check_runner import (  # noqa: E402
    REPO,
    Report,
    Result,
    Step,
    Stopped,
    failure_detail,
    json_safe,
    last_json_line,
    last_line,
    run_command,
    stop_on_signals,
    summary_table,
)

SCHEMA = "xpmlp-gpu-check/1"
STEPS = ("devices", "pytest", "gradcheck", "parity", "nosync", "first-step", "train", "bench", "fused", "estimator")
GPU_SPECS = ("cuda", "torch:cuda")
LIBRARY = {"cuda": "CuPy", "torch:cuda": "PyTorch"}
MIN_STEP_SECONDS = 15.0  # a step is not started with less of the budget left
# seconds of the budget kept back for each group of GPU steps while an earlier group runs (with a usable GPU)
RESERVE = {"gradcheck": 10, "parity": 10, "nosync": 10, "first-step": 20, "train": 25, "bench": 100, "fused": 40,
           "estimator": 60}
MIN_TRAIN_ACC = 0.75  # 2 epochs of SGD on Fashion-MNIST reach about 0.83: far below, the GPU computes garbage
EVAL_TOLERANCE = 0.005  # |test accuracy on the GPU - on the CPU| allowed for the same checkpoint
MIB = 2**20
# the targets, float32: xpmlp on CuPy (the bench's "xpmlp" row; the trainer fuses the SGD update into
# the weight-gradient GEMM by default, so it is the fused path) over PyTorch CUDA, median samples/s
BENCH_TARGETS = {128: (("xpmlp on CuPy", 0.8), ("fused path", 1.0)), 4096: (("xpmlp on CuPy", 0.95),)}
VERDICT = {True: "met", False: "MISSED", None: "not measured"}
# float64, same seed, 20 steps of batch-128 SGD on fresh models: the fused and unfused updates differ by rounding
# only (the CPU test sees 1e-12 after 100 steps); a wrong fused GEMM (a transposed operand, a lost β) is off by
# far more. Not after the timed epochs: by then rounding has grown chaotically (0.03 seen on the CPU)
FUSED_BOUND = 1e-8
BENCH_ACC_TOLERANCE = 0.02  # |a contender's test accuracy - the median of the others'| after the same epochs


# ---------------------------------------------------------------------------------------------
# the run: context, budget, skips
# ---------------------------------------------------------------------------------------------

@dataclass
class Context:
    out: Path
    report: Report
    deadline: float
    require_gpu: bool
    only: set[str]
    unusable: dict[str, str] = field(default_factory=dict)  # spec -> why not usable ('' = usable)
    python: str = sys.executable
    group: str = ""  # the group of STEPS running now

    def py(self, *args: str) -> list[str]:
        return [self.python, *args]

    def usable(self, spec: str) -> bool:
        return not self.unusable.get(spec, "not probed")

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def reserved(self) -> float:
        """Seconds kept back for the groups of GPU steps after the current one (none without a GPU)."""
        if self.group not in STEPS or not any(self.usable(s) for s in GPU_SPECS):
            return 0.0
        later = STEPS[STEPS.index(self.group) + 1:]
        return float(sum(RESERVE.get(name, 0) for name in later if name in self.only))

    def log(self, name: str) -> Path:
        return self.out / "logs" / (re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") + ".log")


def skip_reason(spec: str, why: str) -> str:
    """The one line of a skipped GPU step, from xpmlp's own reason (its 'device ... is not usable' cut)."""
    why = re.sub(r"^device '[^']*' is not usable: ", "", why.strip())
    why = re.sub(r";? or use --device \S+$", "", why)
    return f"no usable CUDA GPU through {LIBRARY[spec]}: {why}"


def skipped(ctx: Context, name: str, reason: str, gpu: bool = True) -> Step:
    """A step not run: 'skipped', or 'failed' when a GPU is required and this is a GPU step."""
    if gpu and ctx.require_gpu:
        return ctx.report.add(Step(name, "failed", detail=f"GPU required but not run: {reason}"))
    return ctx.report.add(Step(name, "skipped", detail=reason))


def timeout_for(ctx: Context, limit: float, reserve: float = 0.0) -> float | None:
    """The timeout a step gets (None: no budget left): its own limit, cut to what is left of the
    budget less ``reserve`` (for later steps of its group) and what later groups keep back, but at
    least ``MIN_STEP_SECONDS``."""
    left = ctx.remaining() - 2.0
    if left < MIN_STEP_SECONDS:
        return None
    return min(limit, left, max(MIN_STEP_SECONDS, left - reserve - ctx.reserved()))


def run_step(ctx: Context, name: str, cmd: Sequence[str], limit: float,
             judge: Callable[[Result], tuple[bool, str, dict[str, Any]]],
             gpu: bool = True, env: dict[str, str] | None = None, reserve: float = 0.0) -> Step:
    """Run one command as step ``name`` and record what ``judge`` makes of its result."""
    timeout = timeout_for(ctx, limit, reserve)
    if timeout is None:
        return skipped(ctx, name, f"out of the time budget ({ctx.remaining():.0f}s left)", gpu)
    res = run_command(cmd, timeout, ctx.log(name), env)
    if res.rc is None:
        ok, detail, extra = False, failure_detail(res, timeout), {}
    else:
        try:
            ok, detail, extra = judge(res)
        except Exception as exc:  # a judge that cannot read the result is a failed step, not a crash
            ok, detail, extra = False, f"could not read the result: {type(exc).__name__}: {exc}", {}
    extra = {"command": " ".join(cmd), "exit": res.rc, "timeout_s": round(timeout, 1), "log": str(ctx.log(name)),
             **extra}
    return ctx.report.add(Step(name, "passed" if ok else "failed", res.seconds, detail, res.output, extra))


def exit_ok(res: Result) -> tuple[bool, str, dict[str, Any]]:
    return res.rc == 0, last_line(res.output) if res.rc == 0 else f"exit {res.rc}: {last_line(res.output)}", {}


# ---------------------------------------------------------------------------------------------
# the steps
# ---------------------------------------------------------------------------------------------

PROBE = ("import json; from xpmlp.backend import backend_unavailable as u; "
         f"print(json.dumps({{s: u(s) for s in {GPU_SPECS!r}}}))")


def step_devices(ctx: Context) -> None:
    def judge(res: Result) -> tuple[bool, str, dict[str, Any]]:
        rows = [m.groups() for m in re.finditer(r"^(\S+)\s+(usable|not usable):", res.output, re.MULTILINE)]
        short = ", ".join(f"{spec} {state}" for spec, state in rows)
        return res.rc == 0, short or last_line(res.output), {"usable": {spec: st == "usable" for spec, st in rows}}

    run_step(ctx, "devices", ctx.py("-m", "xpmlp", "devices"), 90, judge, gpu=False)


def step_probe(ctx: Context) -> None:
    """Ask xpmlp why each GPU spec is unusable ('' = usable); every GPU step reads the answer."""
    def judge(res: Result) -> tuple[bool, str, dict[str, Any]]:
        answer = last_json_line(res.output)
        if res.rc != 0 or answer is None:
            return False, f"exit {res.rc}: {last_line(res.output)}", {}
        ctx.unusable = {s: str(answer.get(s, "not probed")) for s in GPU_SPECS}
        words = [f"{s} {'usable' if not why else 'not usable'}" for s, why in ctx.unusable.items()]
        return True, ", ".join(words), {"unusable": ctx.unusable}

    step = run_step(ctx, "probe", ctx.py("-c", PROBE), 120, judge, gpu=False)
    if step.status != "passed":
        ctx.unusable = {s: f"the GPU probe failed ({step.detail})" for s in GPU_SPECS}


def step_pytest(ctx: Context) -> None:
    usable = [s for s in GPU_SPECS if ctx.usable(s)]
    if not usable:
        skipped(ctx, "pytest -m gpu", skip_reason("cuda", ctx.unusable["cuda"]))
        return

    def judge(res: Result) -> tuple[bool, str, dict[str, Any]]:
        counts = {k: 0 for k in ("passed", "failed", "error", "skipped")}
        for n, word in re.findall(r"(\d+) (passed|failed|errors?|skipped)\b", last_line(res.output)):
            counts[word.rstrip("s") if word.startswith("error") else word] = int(n)
        ok = res.rc == 0 and counts["passed"] > 0 and not counts["failed"] and not counts["error"]
        why = "" if ok or res.rc != 0 else " (no GPU test ran)"
        return ok, last_line(res.output) + why, {"counts": counts}

    # the whole suite, gpu-marked tests only (the cupy and torch-cuda params of the backend fixture)
    cmd = ctx.py("-m", "pytest", "tests", "-m", "gpu", "-q", "-p", "no:cacheprovider", "--durations=10")
    run_step(ctx, "pytest -m gpu", cmd, 300, judge)


def step_gradcheck(ctx: Context) -> None:
    for spec in GPU_SPECS:
        name = f"gradcheck {spec}"
        if not ctx.usable(spec):
            skipped(ctx, name, skip_reason(spec, ctx.unusable[spec]))
            continue
        run_step(ctx, name, ctx.py("-m", "xpmlp", "gradcheck", "--device", spec), 120, exit_ok)


def step_parity(ctx: Context) -> None:
    specs = [s for s in GPU_SPECS if ctx.usable(s)]
    if not specs:
        skipped(ctx, "parity", skip_reason("cuda", ctx.unusable["cuda"]))
        return
    out = ctx.out / "parity.json"

    def judge(res: Result) -> tuple[bool, str, dict[str, Any]]:
        extra: dict[str, Any] = {"json": str(out)}
        if out.exists():
            with contextlib.suppress(ValueError):
                extra["failed_rows"] = json.loads(out.read_text()).get("failed")
        return res.rc == 0, last_line(res.output.replace(f"wrote {out}", "")), extra

    with contextlib.suppress(FileNotFoundError):
        out.unlink()  # a stale file from an earlier run must not pass for this one's
    cmd = ctx.py("-m", "xpmlp", "parity", "--device", "cpu", *specs, "--dtype", "float64", "float32",
                 "--out", str(out))
    run_step(ctx, "parity", cmd, 150, judge)


def worker_judge(res: Result) -> tuple[bool, str, dict[str, Any]]:
    answer = last_json_line(res.output)
    if answer is None:
        return False, f"exit {res.rc}: {last_line(res.output)}", {}
    return bool(answer.get("ok")) and res.rc == 0, str(answer.get("detail", "")), {"result": answer}


def step_nosync(ctx: Context) -> None:
    for spec in GPU_SPECS:
        name = f"nosync {spec}"
        if not ctx.usable(spec):
            skipped(ctx, name, skip_reason(spec, ctx.unusable[spec]))
            continue
        run_step(ctx, name, ctx.py(str(Path(__file__).resolve()), "nosync", spec), 150, worker_judge)


def step_first_step(ctx: Context) -> None:
    """First training step of a fresh model vs later ones; CuPy with an empty kernel cache, then a filled one."""
    for spec in GPU_SPECS:
        if not ctx.usable(spec):
            skipped(ctx, f"first-step {spec}", skip_reason(spec, ctx.unusable[spec]))
            continue
        cmd = ctx.py(str(Path(__file__).resolve()), "first-step", spec)
        if spec != "cuda":
            run_step(ctx, f"first-step {spec}", cmd, 120, worker_judge)
            continue
        cache = tempfile.mkdtemp(prefix="xpmlp-cupy-cache-")
        try:
            env = dict(os.environ, CUPY_CACHE_DIR=cache)
            run_step(ctx, "first-step cuda (empty kernel cache)", cmd, 150, worker_judge, env=env)
            run_step(ctx, "first-step cuda (kernel cache filled)", cmd, 120, worker_judge, env=env)
        finally:
            shutil.rmtree(cache, ignore_errors=True)


def step_train(ctx: Context) -> None:
    if not ctx.usable("cuda"):
        reason = skip_reason("cuda", ctx.unusable["cuda"])
        skipped(ctx, "train cuda", reason)
        skipped(ctx, "evaluate on cpu", reason)
        return
    run = ctx.out / "run-cuda"
    shutil.rmtree(run, ignore_errors=True)  # this script's own run folder from an earlier check

    def judge(res: Result) -> tuple[bool, str, dict[str, Any]]:
        metrics = json.loads((run / "metrics.json").read_text()) if res.rc == 0 else {}
        acc = metrics.get("test_acc")
        if res.rc != 0 or acc is None:
            return False, f"exit {res.rc}: {last_line(res.output)}", {}
        return acc >= MIN_TRAIN_ACC, (f"test accuracy {acc:.4f} (at least {MIN_TRAIN_ACC}) after "
                                      f"{metrics.get('epochs_done')} epochs, "
                                      f"{metrics.get('samples_per_second', 0):,.0f} samples/s"), {"test_acc": acc}

    cmd = ctx.py("-m", "xpmlp", "train", "--dataset", "fashion-mnist", "--device", "cuda", "--epochs", "2",
                 "--no-download", "--out", str(run))
    train = run_step(ctx, "train cuda", cmd, 180, judge)
    if "test_acc" not in train.extra:
        skipped(ctx, "evaluate on cpu", "no checkpoint: the train step did not pass", gpu=False)
        return
    step_evaluate(ctx, run / "checkpoint.npz", float(train.extra["test_acc"]))


def step_evaluate(ctx: Context, checkpoint: Path, gpu_acc: float) -> None:
    """The checkpoint trained on the GPU, evaluated by NumPy: the same test accuracy, give or take ties."""
    def judge(res: Result) -> tuple[bool, str, dict[str, Any]]:
        found = re.search(r"accuracy (\d+\.\d+)", res.output)
        if res.rc != 0 or not found:
            return False, f"exit {res.rc}: {last_line(res.output)}", {}
        acc = float(found.group(1))
        ok = abs(acc - gpu_acc) <= EVAL_TOLERANCE
        detail = (f"test accuracy {acc:.4f} on cpu vs {gpu_acc:.4f} on cuda "
                  f"(|diff| {abs(acc - gpu_acc):.4f}, allowed {EVAL_TOLERANCE})")
        return ok, detail, {"test_acc_cpu": acc, "test_acc_cuda": gpu_acc}

    cmd = ctx.py("-m", "xpmlp", "evaluate", str(checkpoint), "--device", "cpu", "--no-download")
    run_step(ctx, "evaluate on cpu", cmd, 90, judge)


def bench_row(result: dict[str, Any], base: float | None) -> dict[str, Any]:
    """One contender of a bench JSON: median samples/s, its ratio to PyTorch CUDA's (``base``), peak memory."""
    rate = (result.get("samples_per_second") or {}).get("median") if result.get("status") == "ok" else None
    memory = result.get("memory") or {}
    measured = memory.get("status") == "ok"
    device = (memory.get("device") or {}) if measured else {}
    return {"label": result.get("label"), "device": result.get("device"), "status": result.get("status"),
            "reason": result.get("reason", ""), "samples_per_second": rate,
            "ratio_vs_pytorch_cuda": rate / base if rate and base else None,
            "peak_mib": memory["peak_bytes"] / MIB if measured else None,
            "gpu_peak_mib": device["peak_bytes"] / MIB if device.get("peak_bytes") is not None else None,
            "memory": memory or None}


def bench_targets(batch: int, ratio: float | None) -> dict[str, dict[str, Any]]:
    """The issue's targets at ``batch`` for xpmlp on CuPy's ratio to PyTorch CUDA (None: not measured)."""
    return {name: {"min_ratio": need, "ratio": ratio, "met": None if ratio is None else ratio >= need}
            for name, need in BENCH_TARGETS.get(batch, ())}


def bench_words(key: str, row: dict[str, Any]) -> str:
    title = f"{row['label'] or key} {row['device'] or ''}".strip()
    if row["samples_per_second"] is None:
        return f"{title} {row['status']}"
    ratio = row["ratio_vs_pytorch_cuda"]
    words = f"{title} {row['samples_per_second']:,.0f}/s" + (f" {ratio:.2f}x" if ratio and key != "torch" else "")
    return words + (f" GPU {row['gpu_peak_mib']:,.0f} MiB" if row["gpu_peak_mib"] is not None else "")


def accuracy_outliers(contenders: dict[str, dict[str, Any]]) -> list[str]:
    """Contenders whose test accuracy is more than BENCH_ACC_TOLERANCE off the median of the others'."""
    import statistics

    acc = {k: r["test_acc"] for k, r in contenders.items() if r.get("status") == "ok" and r.get("test_acc") is not None}
    out = []
    for key, value in acc.items():
        others = [v for k, v in acc.items() if k != key]
        if others and abs(value - statistics.median(others)) > BENCH_ACC_TOLERANCE:
            out.append(f"{key} test accuracy {value:.4f} is more than {BENCH_ACC_TOLERANCE} off the others' "
                       f"median {statistics.median(others):.4f}")
    return out


def bench_judge(path: Path, batch: int) -> Callable[[Result], tuple[bool, str, dict[str, Any]]]:
    """Rows by key (``xpmlp``: CuPy, the base; ``xpmlp:SPEC``; ``torch``: PyTorch CUDA; ``gemm``), the targets.

    The step fails when an xpmlp row did not run; a missed target is recorded, not a failure.
    """
    def judge(res: Result) -> tuple[bool, str, dict[str, Any]]:
        if res.rc != 0 or not path.exists():
            return False, f"exit {res.rc}: {last_line(res.output)}", {}
        contenders = json.loads(path.read_text())["contenders"]
        base = bench_row(contenders.get("torch") or {}, None)["samples_per_second"]
        rows = {key: bench_row(result, base) for key, result in contenders.items()}
        ratio = (rows.get("xpmlp") or {}).get("ratio_vs_pytorch_cuda")
        targets = bench_targets(batch, ratio)
        verdicts = ", ".join(f"{name} >= {t['min_ratio']:.2f}x: {VERDICT[t['met']]}" for name, t in targets.items())
        broken = [f"{key} {row['status']}: {row['reason']}" for key, row in rows.items()
                  if key.split(":", 1)[0] == "xpmlp" and row["status"] != "ok"]
        head = f"xpmlp on CuPy {ratio:.2f}x PyTorch CUDA" if ratio else "xpmlp on CuPy vs PyTorch CUDA not measured"
        table = ", ".join(bench_words(key, row) for key, row in rows.items())
        broken += accuracy_outliers(contenders)
        detail = "; ".join([*broken, head, f"targets: {verdicts}", table])
        extra = {"json": str(path), "rows": rows, "targets": targets,
                 "samples_per_second": {key: row["samples_per_second"] for key, row in rows.items()}}
        return "xpmlp" in rows and not broken, detail, extra
    return judge


def step_bench(ctx: Context) -> None:
    """xpmlp on CuPy (the base row) and on torch:cuda against PyTorch CUDA, batch 128 and 4096, float32."""
    specs = ",".join(s for s in GPU_SPECS if ctx.usable(s))
    # peak memory is measured at batch 128 only: its fresh child processes cost more than the b4096 timing
    big = ["--train-size", "49152", "--no-memory"]
    for batch, extra, reserve in ((128, [], RESERVE["bench"] / 2), (4096, big, 0.0)):
        name = f"bench cuda b{batch}"
        if not ctx.usable("cuda"):
            skipped(ctx, name, skip_reason("cuda", ctx.unusable["cuda"]))
            continue
        path = ctx.out / f"bench-cuda-b{batch}.json"
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        cmd = ctx.py("-m", "xpmlp", "bench", "--device", "cuda", "--xpmlp-devices", specs, "--batch-size", str(batch),
                     "--dtype", "float32", "--quick", *extra, "--json", str(path))
        run_step(ctx, name, cmd, 240, bench_judge(path, batch), reserve=reserve)


def fused_judge(res: Result) -> tuple[bool, str, dict[str, Any]]:
    """The output of ``bench_variants.py fused``: median samples/s on and off, their ratio, the weights' difference."""
    found = re.search(r"^ratio on/off: (\S+)", res.output, re.MULTILINE)
    if res.rc != 0 or not found:
        return False, f"exit {res.rc}: {last_line(res.output)}", {}
    ratio = float(found.group(1))
    rates = {state: float(rate.replace(",", "")) for state, rate in
             re.findall(r"^fused (on|off)\s+median ([\d,.]+) samples/s", res.output, re.MULTILINE)}
    diff = re.search(r"^largest weight difference float64 \d+ steps: (\S+)", res.output, re.MULTILINE)
    largest = float(diff.group(1)) if diff else float("nan")
    ok = largest <= FUSED_BOUND  # NaN (not printed, or diverged) fails too
    detail = f"largest weight difference {largest:.3g} (at most {FUSED_BOUND:g}, float64)"
    detail += f"; fused update on/off {ratio:.3f}x"
    if len(rates) == 2:
        detail += f" ({rates['on']:,.0f} vs {rates['off']:,.0f} samples/s, batch 128)"
    return ok, detail, {"ratio_on_off": ratio, "samples_per_second": rates,
                          "largest_weight_difference": float(diff.group(1)) if diff else None}


def step_fused(ctx: Context) -> None:
    """Interleaved epochs with the SGD update fused into the weight-gradient GEMM and without (Fashion-MNIST)."""
    usable = [s for s in GPU_SPECS if ctx.usable(s)]
    for spec in GPU_SPECS:
        name = f"fused {spec}"
        if spec not in usable:
            skipped(ctx, name, skip_reason(spec, ctx.unusable[spec]))
            continue
        later = len(usable) - usable.index(spec) - 1
        cmd = ctx.py(str(REPO / "scripts" / "bench_variants.py"), "fused", "--device", spec, "--rounds", "2")
        run_step(ctx, name, cmd, 120, fused_judge, reserve=later * RESERVE["fused"] / 2)


def step_estimator(ctx: Context) -> None:
    """xpmlp's MLPClassifier fitted on CuPy arrays against xpmlp's own CPU estimator: same data, same seed."""
    name = "estimator cuda"
    if not ctx.usable("cuda"):
        skipped(ctx, name, skip_reason("cuda", ctx.unusable["cuda"]))
        return
    run_step(ctx, name, ctx.py(str(Path(__file__).resolve()), "estimator", "cuda"), 150, worker_judge)


STEP_FUNCTIONS: dict[str, Callable[[Context], None]] = {
    "devices": step_devices, "pytest": step_pytest, "gradcheck": step_gradcheck, "parity": step_parity,
    "nosync": step_nosync, "first-step": step_first_step, "train": step_train, "bench": step_bench,
    "fused": step_fused, "estimator": step_estimator,
}


# ---------------------------------------------------------------------------------------------
# the workers (gpu_check_workers.py), run in their own process: the subcommands nosync, first-step, estimator
# ---------------------------------------------------------------------------------------------

def run_worker(kind: str, spec: str) -> int:
    """Run a worker and print its answer as the last line (JSON); 0 when it passed."""
    try:
        worker = {"nosync": workers.worker_nosync, "first-step": workers.worker_first_step,
                  "estimator": workers.worker_estimator}[kind]
        answer = worker(spec)
    except Exception as exc:
        answer = {"ok": False, "detail": f"{type(exc).__name__}: {exc}".splitlines()[0][:500],
                  "traceback": traceback.format_exc()[-2000:]}
    print(json.dumps(json_safe(answer), allow_nan=False), flush=True)
    return 0 if answer.get("ok") else 1


# ---------------------------------------------------------------------------------------------
# wheels, GPU detection and the command line
# ---------------------------------------------------------------------------------------------

def wheel_distribution(path: str | os.PathLike[str]) -> str:
    """The distribution name of a wheel file (``array_api_compat-1.16.0-py3-none-any.whl`` -> ``array-api-compat``)."""
    return re.sub(r"[-_.]+", "-", Path(path).name.split("-", 1)[0]).lower()


def missing_wheels(folder: str | os.PathLike[str]) -> list[str]:
    """The wheels in ``folder`` whose distribution is not installed for this Python."""
    from importlib import metadata

    missing = []
    for wheel in sorted(Path(folder).glob("*.whl")):
        try:
            metadata.version(wheel_distribution(wheel))
        except metadata.PackageNotFoundError:
            missing.append(str(wheel))
    return missing


def unpack_wheels(dest: str | os.PathLike[str], wheels: Sequence[str]) -> None:
    """Unzip pure-Python wheels into ``dest`` (put it on PYTHONPATH): an install without pip."""
    Path(dest).mkdir(parents=True, exist_ok=True)
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as z:
            z.extractall(dest)


def gpu_listed() -> bool:
    """Whether ``nvidia-smi -L`` lists at least one GPU."""
    if shutil.which("nvidia-smi") is None:
        return False
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
        return any(line.startswith("GPU ") for line in out.splitlines())
    return False


def resolve_require_gpu(mode: str) -> bool:
    """``yes``/``no`` as given; ``auto``: yes when nvidia-smi lists a GPU, never under CI."""
    if mode in ("yes", "no"):
        return mode == "yes"
    return not os.environ.get("CI") and gpu_listed()


def header(args: argparse.Namespace, require: bool) -> dict[str, Any]:
    import platform

    return {"schema": SCHEMA, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(),
            "python": sys.executable, "python_version": platform.python_version(), "repo": str(REPO),
            "budget_s": args.budget, "require_gpu": require, "wheels": os.environ.get("GPU_CHECK_WHEELS", ""),
            "env": {k: os.environ.get(k, "") for k in ("XPMLP_DATA", "PYTHONPATH", "CUDA_VISIBLE_DEVICES")}}


def run_all(args: argparse.Namespace) -> int:
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    require = resolve_require_gpu(args.require_gpu)
    report = Report(out / "gpu-check.json", header(args, require))
    ctx = Context(out, report, time.monotonic() + args.budget, require, set(args.only or STEPS) - set(args.skip))
    print(f"gpu check: {REPO} with {sys.executable}; budget {args.budget:.0f}s; GPU "
          f"{'required' if require else 'optional (skipped steps pass)'}; writing {report.path}", flush=True)
    wheels = os.environ.get("GPU_CHECK_WHEELS", "")
    if wheels:
        report.add(Step("wheels", "failed" if wheels.startswith("failed") else "passed", detail=wheels))
    stop_on_signals()
    try:
        if "devices" in ctx.only:
            ctx.group = "devices"
            step_devices(ctx)
        ctx.group = "probe"
        step_probe(ctx)
        for name in STEPS[1:]:
            if name in ctx.only:
                ctx.group = name
                STEP_FUNCTIONS[name](ctx)
    except Stopped as why:  # a command limit about to end the machine: the results so far must come back
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        report.add(Step(f"stopped during {ctx.group or 'the start'}", "failed",
                        detail=f"{why} stopped the check; the steps after it did not run"))
    return finish(report, out)


def finish(report: Report, out: Path) -> int:
    """Write the report, print the summary, pack ``out`` into one tarball; 1 when a step failed.

    One archive because a lent machine returns at most a few files: everything is in it.
    """
    import tarfile

    report.write(finished=True)
    archive = out / "gpu-check-results.tar.gz"
    partial = archive.with_suffix(".part")
    with tarfile.open(partial, "w:gz") as tar:
        for path in sorted(out.iterdir()):
            if path not in (archive, partial):
                tar.add(path, arcname=f"gpu-check/{path.name}")
    partial.replace(archive)
    print(f"results packed into {archive}", flush=True)
    print(summary_table(report), flush=True)  # last: what a reader of the output's tail sees
    return 1 if report.counts()["failed"] else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gpu_check.py", description=(__doc__ or "").split("\n", 1)[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="every check; gpu-check.json under --out")
    r.add_argument("--out", default=os.environ.get("OUT") or str(REPO / "gpu-check"))
    r.add_argument("--budget", type=float, default=float(os.environ.get("GPU_CHECK_BUDGET") or 540),
                   help="seconds for all steps together (default 540: inside a 600 s command limit); a step is "
                        "cut to what is left, less what later steps keep back")
    r.add_argument("--require-gpu", choices=("auto", "yes", "no"),
                   default=os.environ.get("GPU_CHECK_REQUIRE_GPU") or "auto",
                   help="whether a skipped GPU step fails (auto: when nvidia-smi lists a GPU and $CI is unset)")
    r.add_argument("--only", nargs="+", choices=STEPS, default=None, help="run only these steps")
    r.add_argument("--skip", nargs="+", choices=STEPS, default=[], help="leave these steps out")
    for kind in ("nosync", "first-step", "estimator"):
        w = sub.add_parser(kind, help=f"worker: the {kind} check on one GPU backend")
        w.add_argument("spec", help="cuda or torch:cuda (first-step also takes a CPU spec)")
    m = sub.add_parser("missing-wheels", help="print the wheels in a folder whose package is not installed")
    m.add_argument("folder")
    u = sub.add_parser("unpack-wheels", help="unzip wheels into a folder for PYTHONPATH")
    u.add_argument("dest")
    u.add_argument("wheels", nargs="*")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        if not args.budget > 0:
            print("error: --budget must be a positive number of seconds", file=sys.stderr)
            return 2
        return run_all(args)
    if args.command in ("nosync", "first-step", "estimator"):
        return run_worker(args.command, args.spec)
    if args.command == "missing-wheels":
        print("\n".join(missing_wheels(args.folder)))
        return 0
    unpack_wheels(args.dest, args.wheels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
