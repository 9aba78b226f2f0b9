"""A study's run folders: names, what a folder already holds (finished, resumable), tasks and result rows.

A run folder is ``<out>/runs/<key>``, the key built from validated settings only (characters
``[A-Za-z0-9._-]``) and checked to stay under ``<out>``. Before a run starts, its folder is
read (``prepare_task``): a finished run with the same settings is not trained again; an
unfinished one (Ctrl-C, a killed process or worker) whose checkpoint has the same settings is
resumed from it; anything else is trained afresh over the stale files. The same reading runs
again on a Dask worker that retries a run, so a retried run resumes where the lost one stopped.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import checkpoint
from ..errors import CheckpointError, InputError
from ..network import activation_label

Log = Callable[[str], None]

#: Settings that do not change what a run computes (where the data or the device is).
PLACE_KEYS = ("device", "data_dir", "download")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped a study after its report was written, marking the unfinished runs.

    ``signal_name`` is ``"SIGINT"`` or ``"SIGTERM"`` (the exit status is 130 or 143); ``results``
    is what results.json holds.
    """

    def __init__(self, message: str, results: dict[str, Any] | None = None, signal_name: str = "SIGINT") -> None:
        super().__init__(message)
        self.results = results
        self.signal_name = signal_name or "SIGINT"


def run_key(cfg: dict[str, Any]) -> str:
    """A stable folder name for a run config: readable, plus a hash of every setting that matters,
    so two configurations never share a folder. Only ``[A-Za-z0-9._-]``."""
    hidden = "-".join(str(h) for h in cfg["hidden"]) or "linear"
    length = f"e{cfg['epochs']}" if cfg.get("epochs") else f"i{cfg['iterations']}"
    digest = hashlib.sha256(json.dumps({k: v for k, v in cfg.items() if k not in PLACE_KEYS},
                                       sort_keys=True, default=str).encode()).hexdigest()[:8]
    activation = activation_label(cfg["activation"])
    readable = f"{hidden}_{activation}_{cfg['optimizer']}_lr{cfg['lr']:g}_reg{cfg['reg']:g}_{length}"
    return f"{safe_name(readable)}_{digest}"


def safe_name(text: str, limit: int = 120) -> str:
    """``text`` with every run of characters outside ``[A-Za-z0-9._-]`` replaced by ``_``, cut to ``limit``."""
    return _UNSAFE.sub("_", text)[:limit]


def inside(out: Path, *parts: str) -> Path:
    """``out / parts``, refusing any path that would resolve outside ``out``."""
    path = out.joinpath(*parts)
    if not path.resolve().is_relative_to(out.resolve()):
        raise InputError(f"{path} would lie outside the study folder {out}; use plain names")
    return path


def _same_settings(saved: Any, cfg: dict[str, Any]) -> bool:
    return isinstance(saved, dict) and all(saved.get(k) == v for k, v in cfg.items() if k not in PLACE_KEYS)


def unfinished(metrics: dict[str, Any] | None) -> bool:
    """True for no metrics or those of an interrupted run; completed, early-stopped and diverged runs are results."""
    return metrics is None or str(metrics.get("stopped", "interrupted")).startswith("interrupted")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def finished_metrics(run_dir: Path, cfg: dict[str, Any]) -> dict[str, Any] | None:
    """The metrics of a finished run with the same settings, or None (then it must be trained)."""
    result = read_json(run_dir / "metrics.json")
    if not isinstance(result, dict) or not _same_settings(read_json(run_dir / "config.json"), cfg):
        return None
    return None if unfinished(result) else result


def resumable(run_dir: Path, cfg: dict[str, Any]) -> Path | None:
    """The folder's checkpoint when it belongs to a run with the same settings, else None."""
    path = run_dir / "checkpoint.npz"
    if not path.is_file():
        return None
    try:
        tree = checkpoint.load(path)
    except CheckpointError:
        return None
    return path if _same_settings(tree.get("config"), cfg) and "trainer" in tree else None


@dataclass
class Task:
    """One run to train: where its row goes, its settings, its folder, and how to start it.

    ``hooks``: picklable objects whose ``callbacks()`` gives trainer callbacks, built where the
    run trains (an Optuna trial's pruner); a task travels to worker processes and Dask workers.
    """

    index: int
    cfg: dict[str, Any]
    run_dir: Path
    resume: Path | None = None
    overwrite: bool = False
    hooks: tuple[Any, ...] = field(default=())


@dataclass
class Outcome:
    """How one run ended, as an engine reports it: ``status`` is ``finished``, ``interrupted``,
    ``not started`` or ``failed`` (``error`` says why); ``signal`` names what stopped it."""

    status: str
    metrics: dict[str, Any] | None = None
    error: str | None = None
    signal: str | None = None


def outcome_of(metrics: dict[str, Any] | None) -> Outcome:
    """The outcome of a run that returned ``metrics`` (None: it never began)."""
    if metrics is None:
        return Outcome("not started")
    return Outcome("interrupted" if unfinished(metrics) else "finished", metrics)


def prepare_task(task: Task) -> dict[str, Any] | None:
    """Read the task's folder: the metrics of a finished run with the same settings (then there is
    nothing to train), else None with ``task.resume`` / ``task.overwrite`` set from what is there."""
    done = finished_metrics(task.run_dir, task.cfg)
    if done is not None:
        return done
    task.resume = resumable(task.run_dir, task.cfg)
    task.overwrite = task.resume is None and (task.run_dir / "checkpoint.npz").exists()
    return None


def row(task: Task, metrics: dict[str, Any] | None, status: str, skipped: bool = False,
        signal_name: str | None = None, error: str | None = None) -> dict[str, Any]:
    """One result row: ``status`` is ``finished``, ``interrupted``, ``not started`` or ``failed``; ``signal``
    names what stopped an unfinished run (``SIGINT``, ``SIGTERM``); a failed row holds its ``error``."""
    if status == "interrupted" and metrics and metrics.get("interrupted_by"):
        signal_name = metrics["interrupted_by"]
    result = {"config": task.cfg, "run_dir": str(task.run_dir), "metrics": metrics, "skipped": skipped,
              "status": status, "signal": signal_name if status not in ("finished", "failed") else None}
    if status == "failed":
        result["error"] = error
    return result
