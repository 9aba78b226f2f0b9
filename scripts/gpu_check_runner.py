"""The record and the runner of ``scripts/gpu_check.py``, which knows nothing of xpmlp or GPUs.

* The record: ``gpu-check.json``, one :class:`Step` per check, rewritten atomically (a temporary
  file, then a rename) after every step, so a kill keeps what was done; never NaN or infinities.
* The runner: one command in the repository root with its own timeout, stdout and stderr together
  into a log file; past the timeout its whole process group is killed.

Like ``gpu_check.py``, this file imports only the standard library.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TAIL = 4000  # characters of a step's output kept in the JSON (the whole output is in logs/)


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
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename.

    (xpmlp.io has the same; this file must not import xpmlp, which may be what is broken.)
    """
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

class Stopped(Exception):
    """The check was told to stop (SIGTERM from a command limit, or Ctrl-C) while a step ran."""


def stop_on_signals() -> None:
    """SIGTERM and SIGINT raise ``Stopped`` in the main thread, so the report and archive still get written."""
    def handler(signum: int, frame: Any) -> None:
        raise Stopped(signal.Signals(signum).name)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


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
    except BaseException:  # the whole check is being stopped (SIGTERM, Ctrl-C): take the step down with it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
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
