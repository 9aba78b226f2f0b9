"""Everything GPU-related in one command, for the day an NVIDIA GPU is lent.

Run it through ``bash scripts/gpu_check.sh`` (which sets up the environment and installs the wheels
in ``.whl/``); the Python part runs each check as a subprocess with its own timeout, under one time
budget, and writes ``$OUT/gpu-check.json`` again after every step, so a kill keeps what was done.

Subcommands::

    run [--out DIR] [--budget S] [--require-gpu auto|yes|no] [--only STEP ...] [--skip STEP ...]
    nosync SPEC          (worker) no device->host sync in 200 training steps, with a positive control
    first-step SPEC      (worker) time of the first training step of a fresh model vs later steps
    missing-wheels DIR   print the wheels in DIR whose distribution is not installed
    unpack-wheels DEST WHEEL ...   unzip pure-Python wheels into DEST (when pip cannot install)

Steps (names for --only/--skip): devices, pytest, gradcheck, parity, nosync, first-step, train, bench.
Without a usable GPU every GPU step is skipped with its reason and the run exits 0; with
``--require-gpu yes`` (default ``auto``: yes when ``nvidia-smi`` lists a GPU and $CI is not set) a
skipped GPU step is a failure. Exit status: 0 nothing failed, 1 a step failed, 2 bad arguments.

This file imports only the standard library at the top: it must start even where xpmlp cannot.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SCHEMA = "xpmlp-gpu-check/1"
STEPS = ("devices", "pytest", "gradcheck", "parity", "nosync", "first-step", "train", "bench")
GPU_SPECS = ("cuda", "torch:cuda")
LIBRARY = {"cuda": "CuPy", "torch:cuda": "PyTorch"}
TAIL = 4000  # characters of a step's output kept in the JSON (the whole output is in logs/)
MIN_STEP_SECONDS = 15.0  # a step is not started with less of the budget left
MIN_TRAIN_ACC = 0.75  # 2 epochs of SGD on Fashion-MNIST reach about 0.83: far below, the GPU computes garbage
EVAL_TOLERANCE = 0.005  # |test accuracy on the GPU - on the CPU| allowed for the same checkpoint
CUPY_REQUIRED = ("get", "item", "__float__", "__int__", "__bool__")
CUPY_OPTIONAL = ("tolist", "__complex__")


# ---------------------------------------------------------------------------------------------
# the record: one JSON file, rewritten atomically after every step
# ---------------------------------------------------------------------------------------------

def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None (JSON never holds them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename."""
    text = json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@dataclass
class Step:
    """One entry of gpu-check.json."""

    step: str
    status: str  # passed | failed | skipped
    seconds: float = 0.0
    detail: str = ""
    output: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        entry = {"step": self.step, "status": self.status, "seconds": round(self.seconds, 3),
                 "detail": self.detail}
        if self.output:
            entry["output"] = self.output[-TAIL:]
        entry.update(self.extra)
        return entry


@dataclass
class Report:
    """The steps done so far, written to ``path`` after each one."""

    path: Path
    header: dict[str, Any]
    steps: list[Step] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)

    def add(self, step: Step) -> Step:
        self.steps.append(step)
        self.write(finished=False)
        mark = {"passed": "ok", "failed": "FAIL", "skipped": "skip"}[step.status]
        print(f"[{time.monotonic() - self.t0:5.1f}s] {mark}: {step.step}: {step.detail}", flush=True)
        return step

    def counts(self) -> dict[str, int]:
        c = Counter(s.status for s in self.steps)
        return {k: c.get(k, 0) for k in ("passed", "failed", "skipped")}

    def write(self, finished: bool) -> None:
        data = dict(self.header, finished=finished, seconds=round(time.monotonic() - self.t0, 3),
                    summary=self.counts(), steps=[s.to_json() for s in self.steps])
        atomic_write_json(self.path, data)


def summary_table(report: Report) -> str:
    """The closing table: one line per step, details cut to fit a terminal."""
    width = max([len(s.step) for s in report.steps] + [4])
    lines = [f"{'step':<{width}}  status   seconds  detail", f"{'-' * width}  -------  -------  ------"]
    for s in report.steps:
        detail = s.detail if len(s.detail) <= 100 else s.detail[:97] + "..."
        lines.append(f"{s.step:<{width}}  {s.status:<7}  {s.seconds:7.1f}  {detail}")
    c = report.counts()
    lines.append(f"{c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped "
                 f"in {time.monotonic() - report.t0:.1f}s; details in {report.path}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# running one command: its own timeout, the whole process group killed past it
# ---------------------------------------------------------------------------------------------

@dataclass
class Result:
    rc: int | None  # None: killed at the timeout
    output: str
    seconds: float


def run_command(cmd: Sequence[str], timeout: float, log: Path | None = None,
                env: dict[str, str] | None = None) -> Result:
    """Run ``cmd`` in the repository root, stdout and stderr together; kill its group past ``timeout``."""
    t0 = time.monotonic()
    proc = subprocess.Popen(list(cmd), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=max(timeout, 1.0))
        rc: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        rc = None
    text = out.decode("utf-8", "replace")
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"$ {' '.join(cmd)}\n{text}\n[exit {rc if rc is not None else 'timeout'}]\n")
    return Result(rc, text, time.monotonic() - t0)


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


def failure_detail(res: Result, timeout: float) -> str:
    if res.rc is None:
        return f"timed out after {timeout:.0f}s: {last_line(res.output)}"
    return f"exit {res.rc}: {last_line(res.output)}"


def last_json_line(text: str) -> dict[str, Any] | None:
    """The last line of ``text`` that parses as a JSON object (how the workers answer)."""
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                value = json.loads(line)
                if isinstance(value, dict):
                    return value
    return None


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

    def py(self, *args: str) -> list[str]:
        return [self.python, *args]

    def usable(self, spec: str) -> bool:
        return not self.unusable.get(spec, "not probed")

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

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


def timeout_for(ctx: Context, limit: float) -> float | None:
    """The timeout a step gets: its own limit, cut to what is left of the budget (None: none left)."""
    left = ctx.remaining() - 2.0
    return None if left < MIN_STEP_SECONDS else min(limit, left)


def run_step(ctx: Context, name: str, cmd: Sequence[str], limit: float,
             judge: Callable[[Result], tuple[bool, str, dict[str, Any]]],
             gpu: bool = True, env: dict[str, str] | None = None) -> Step:
    """Run one command as step ``name`` and record what ``judge`` makes of its result."""
    timeout = timeout_for(ctx, limit)
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
    extra = {"command": " ".join(cmd), "exit": res.rc, "log": str(ctx.log(name)), **extra}
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

    cmd = ctx.py("-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider")
    run_step(ctx, "pytest -m gpu", cmd, 240, judge)


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


def bench_judge(path: Path) -> Callable[[Result], tuple[bool, str, dict[str, Any]]]:
    def judge(res: Result) -> tuple[bool, str, dict[str, Any]]:
        if res.rc != 0 or not path.exists():
            return False, f"exit {res.rc}: {last_line(res.output)}", {}
        contenders = json.loads(path.read_text())["contenders"]
        parts, rates = [], {}
        for name, c in contenders.items():
            rate = (c.get("samples_per_second") or {}).get("median")
            rates[name] = rate
            parts.append(f"{c.get('label', name)} {rate:,.0f}/s" if rate else f"{name} {c.get('status')}")
        torch = contenders.get("torch", {}).get("ratio")
        if torch:
            parts.append(f"xpmlp/PyTorch {torch:.2f}x")
        return True, ", ".join(parts), {"json": str(path), "samples_per_second": rates}
    return judge


def step_bench(ctx: Context) -> None:
    for batch, extra in ((128, []), (4096, ["--train-size", "49152"])):
        name = f"bench cuda b{batch}"
        if not ctx.usable("cuda"):
            skipped(ctx, name, skip_reason("cuda", ctx.unusable["cuda"]))
            continue
        path = ctx.out / f"bench-cuda-b{batch}.json"
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        cmd = ctx.py("-m", "xpmlp", "bench", "--device", "cuda", "--batch-size", str(batch), "--dtype", "float32",
                     "--quick", *extra, "--json", str(path))
        run_step(ctx, name, cmd, 150, bench_judge(path))


STEP_FUNCTIONS: dict[str, Callable[[Context], None]] = {
    "devices": step_devices, "pytest": step_pytest, "gradcheck": step_gradcheck, "parity": step_parity,
    "nosync": step_nosync, "first-step": step_first_step, "train": step_train, "bench": step_bench,
}


# ---------------------------------------------------------------------------------------------
# the workers: training steps on one GPU backend, in their own process
# ---------------------------------------------------------------------------------------------

@dataclass
class Job:
    """A model, its optimizer and device data, ready for ``steps`` steps without a host transfer."""

    model: Any
    opt: Any
    X: Any
    y: Any
    idx: Any

    def train(self, steps: int, start: int = 0) -> Any:
        xp, loss = self.model.xp, None
        for i in range(start, start + steps):
            rows = self.idx[i % self.idx.shape[0]]
            loss, grads = self.model.loss(xp.take(self.X, rows, axis=0), xp.take(self.y, rows, axis=0), 0.0,
                                          check=False)
            self.opt.step(self.model.params, grads)
        return loss


def make_job(spec: str, sizes: Sequence[int], steps: int, batch: int = 128, seed: int = 0) -> Job:
    """A fresh float32 MLP on ``spec`` with random data and every batch's indices already on the device."""
    import numpy as np

    from xpmlp.model import MLP
    from xpmlp.optim import make_optimizer

    model = MLP(list(sizes), "relu", backend=spec, dtype="float32", seed=seed)
    opt = make_optimizer("sgd", 0.1, backend=model.backend)
    rng = np.random.default_rng(seed)
    n = 4096
    with model.backend.context():
        X = model.backend.asarray(rng.standard_normal((n, sizes[0])).astype(np.float32))
        y = model.backend.asarray(rng.integers(0, sizes[-1], n))
        idx = model.backend.asarray(rng.integers(0, n, (steps, batch)))
        model.backend.synchronize()
    return Job(model, opt, X, y, idx)


class CallCounter:
    """Counts calls of named methods of a class while active: patched on the class, restored after.

    Names that cannot be patched (an immutable extension type) land in ``unpatched``; a detector
    with a required name unpatched is broken, which the positive control then shows.
    """

    def __init__(self, cls: type, names: Sequence[str], keep_stacks: int = 3) -> None:
        self.cls, self.names, self.keep_stacks = cls, tuple(names), keep_stacks
        self.calls: Counter[str] = Counter()
        self.stacks: list[str] = []
        self.unpatched: dict[str, str] = {}
        self._saved: dict[str, Any] = {}

    def total(self) -> int:
        return sum(self.calls.values())

    def _wrap(self, name: str, original: Any) -> Callable[..., Any]:
        def counted(obj: Any, *args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            if len(self.stacks) < self.keep_stacks:
                frames = traceback.extract_stack()[:-1][-4:]
                self.stacks.append(f"{name} from " + " <- ".join(
                    f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames)))
            return original(obj, *args, **kwargs)
        counted.__name__ = name
        return counted

    def __enter__(self) -> CallCounter:
        for name in self.names:
            original = getattr(self.cls, name, None)
            if original is None:
                self.unpatched[name] = "no such attribute"
                continue
            own = self.cls.__dict__.get(name)  # restored as it was (None: inherited, deleted again)
            try:
                setattr(self.cls, name, self._wrap(name, original))
            except (TypeError, AttributeError) as exc:
                self.unpatched[name] = f"{type(exc).__name__}: {exc}"
                continue
            self._saved[name] = own
        return self

    def __exit__(self, *exc: object) -> None:
        for name, own in self._saved.items():
            if own is None:
                delattr(self.cls, name)
            else:
                setattr(self.cls, name, own)
        self._saved.clear()


def judge_detector(loop_events: int, control_events: int, what: str, where: Sequence[str]) -> dict[str, Any]:
    """The verdict of a no-sync check: nothing in the loop, and the deliberate sync caught."""
    ok = loop_events == 0 and control_events > 0
    if loop_events:
        detail = f"{what}: {loop_events} host sync(s) in the training loop; first at {'; '.join(where) or '?'}"
    elif not control_events:
        detail = f"{what}: the detector missed the deliberate float(loss): it cannot be trusted"
    else:
        detail = f"{what}: no host sync in the loop; positive control float(loss) caught"
    return {"ok": ok, "loop_syncs": loop_events, "control_syncs": control_events, "detail": detail}


def cupy_nosync(job: Job, steps: int) -> dict[str, Any]:
    """Count device-to-host reads of CuPy arrays in ``steps`` training steps, then in one float(loss)."""
    cupy = importlib.import_module("cupy")
    required = CallCounter(cupy.ndarray, CUPY_REQUIRED)
    optional = CallCounter(cupy.ndarray, CUPY_OPTIONAL)
    with job.model.backend.context():
        job.train(3)  # warm-up: kernels compiled, memory pool grown
        job.model.backend.synchronize()
        with required, optional:
            loss = job.train(steps, start=3)
            loop = required.total() + optional.total()
            float(loss)  # the positive control: one deliberate sync
            control = required.total() + optional.total() - loop
    result = judge_detector(loop, control, f"CuPy, {steps} steps", required.stacks + optional.stacks)
    # the counter sees arrays of type cupy.ndarray only: another type would escape it
    escaped = sorted({type(a).__name__ for a in [loss, *job.model.params.values()] if type(a) is not cupy.ndarray})
    if required.unpatched or escaped:
        result.update(ok=False, detail=f"the counter is blind: cannot patch {required.unpatched}"
                      if required.unpatched else f"the counter is blind to arrays of type {escaped}")
    result["unpatched_optional"] = optional.unpatched
    result["patched"] = [n for n in CUPY_REQUIRED + CUPY_OPTIONAL
                         if n not in required.unpatched and n not in optional.unpatched]
    return result


@contextlib.contextmanager
def torch_sync_errors(torch: Any) -> Iterator[None]:
    """Inside: any synchronising CUDA call raises (``torch.cuda.set_sync_debug_mode('error')``)."""
    before = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(before)


def caught_sync(fn: Callable[[], Any], torch: Any) -> list[str]:
    """Run ``fn`` with sync errors on; the frames where a sync was refused ([] when none)."""
    try:
        with torch_sync_errors(torch):
            fn()
    except RuntimeError as exc:
        if "synchroniz" not in str(exc).lower():
            raise
        frames = traceback.extract_tb(exc.__traceback__)[-3:]
        return [" <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames))]
    return []


def torch_nosync(job: Job, steps: int) -> dict[str, Any]:
    """``steps`` training steps with PyTorch's sync debug mode on 'error', then one float(loss)."""
    torch = importlib.import_module("torch")
    holder: dict[str, Any] = {}
    with job.model.backend.context():
        holder["loss"] = job.train(3)
        job.model.backend.synchronize()
        where = caught_sync(lambda: holder.update(loss=job.train(steps, start=3)), torch)
        control = caught_sync(lambda: float(holder["loss"]), torch)
    return judge_detector(len(where), len(control), f"torch:cuda, {steps} steps (sync debug mode 'error')", where)


def worker_nosync(spec: str, steps: int = 200) -> dict[str, Any]:
    job = make_job(spec, [784, 256, 10], steps + 3)
    if job.model.backend.name == "cupy":
        return cupy_nosync(job, steps)
    if job.model.backend.name == "torch" and job.model.backend.on_gpu:
        return torch_nosync(job, steps)
    return {"ok": False, "detail": f"{spec} is not a GPU backend; nosync checks cuda and torch:cuda"}


def worker_first_step(spec: str, steps: int = 50) -> dict[str, Any]:
    """Seconds of the first step of a fresh 784-500-500-10 model (kernel compile, cuBLAS set-up) vs later ones."""
    job = make_job(spec, [784, 500, 500, 10], steps)
    backend = job.model.backend
    times = []
    with backend.context():
        for i in range(steps):
            t0 = time.perf_counter()
            job.train(1, start=i)
            backend.synchronize()
            times.append(time.perf_counter() - t0)
    first, later = times[0], statistics.median(times[1:])
    detail = (f"first step {first * 1e3:.1f} ms, later steps {later * 1e3:.3f} ms (median of {steps - 1}), "
              f"warm-up cost {first - later:.3f} s")
    return {"ok": True, "first_step_s": first, "median_step_s": later, "ratio": first / later if later else None,
            "steps": steps, "cupy_cache_dir": os.environ.get("CUPY_CACHE_DIR"), "detail": detail}


def run_worker(kind: str, spec: str) -> int:
    """Run a worker and print its answer as the last line (JSON); 0 when it passed."""
    try:
        answer = worker_nosync(spec) if kind == "nosync" else worker_first_step(spec)
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
    if "devices" in ctx.only:
        step_devices(ctx)
    step_probe(ctx)
    for name in STEPS[1:]:
        if name in ctx.only:
            STEP_FUNCTIONS[name](ctx)
    report.write(finished=True)
    print(summary_table(report), flush=True)
    return 1 if report.counts()["failed"] else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gpu_check.py", description=(__doc__ or "").split("\n", 1)[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="every check; gpu-check.json under --out")
    r.add_argument("--out", default=os.environ.get("OUT") or str(REPO / "gpu-check"))
    r.add_argument("--budget", type=float, default=float(os.environ.get("GPU_CHECK_BUDGET") or 450),
                   help="seconds for all steps together (default 450); a step is cut to what is left")
    r.add_argument("--require-gpu", choices=("auto", "yes", "no"),
                   default=os.environ.get("GPU_CHECK_REQUIRE_GPU") or "auto",
                   help="whether a skipped GPU step fails (auto: when nvidia-smi lists a GPU and $CI is unset)")
    r.add_argument("--only", nargs="+", choices=STEPS, default=None, help="run only these steps")
    r.add_argument("--skip", nargs="+", choices=STEPS, default=[], help="leave these steps out")
    for kind in ("nosync", "first-step"):
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
    if args.command in ("nosync", "first-step"):
        return run_worker(args.command, args.spec)
    if args.command == "missing-wheels":
        print("\n".join(missing_wheels(args.folder)))
        return 0
    unpack_wheels(args.dest, args.wheels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
