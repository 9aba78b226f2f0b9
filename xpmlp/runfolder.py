"""A run folder belongs to one run at a time: checked before any work, locked for the run's life.

* ``check_out(path)`` refuses, in one line, an ``--out`` that is a file, lies under a file, or
  cannot be written, before any data is loaded.
* ``RunFolder(path, resume=..., overwrite=...)`` creates the folder, takes an exclusive lock
  (``filelock``: an OS-level lock, released by the kernel even when the run is killed), removes
  temporary files that a killed write left behind (``.NAME.*.tmp``), and refuses a folder that
  already holds a run's checkpoint unless the run resumes it or is told to overwrite it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import TracebackType

import filelock

from .errors import DivergenceError, InputError

#: What a run writes into its folder (``--overwrite`` removes these before starting again).
RUN_FILES = ("config.json", "history.json", "metrics.json", "checkpoint.npz", "loss.png", "accuracy.png")
LOCK_NAME = ".xpmlp.lock"
# io.atomic_write_bytes names its temporary files ".NAME.<random>.tmp"
STALE_TEMP = re.compile(r"^\.(?:" + "|".join(re.escape(n) for n in RUN_FILES) + r")\.[^/]*\.tmp$")


def check_out(path: str | os.PathLike) -> Path:
    """The run folder as an absolute path, or an InputError when it cannot hold a run."""
    out = Path(path).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {path} is a file, not a folder; give a folder for the run")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"--out {path} lies under the file {existing}; give a folder for the run")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"--out {path}: {existing} is not writable; give a folder you can write to")
    return out


class RunFolder:
    """The folder of one run, locked while the ``with`` block runs."""

    def __init__(self, path: str | os.PathLike, *, resume: bool = False, overwrite: bool = False) -> None:
        self.path = check_out(path)
        self.resume, self.overwrite = resume, overwrite
        self._lock: filelock.BaseFileLock | None = None
        self._created = False

    def __enter__(self) -> RunFolder:
        self._created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the run folder {self.path} ({exc.strerror}); give another --out") from None
        self._lock = filelock.FileLock(str(self.path / LOCK_NAME), timeout=0)
        try:
            self._lock.acquire()
        except filelock.Timeout:
            self._lock = None
            raise InputError(f"the run folder {self.path} is in use by another xpmlp run; wait for it to end "
                             "or give another --out") from None
        try:
            self._prepare()
        except BaseException:
            self.release()
            raise
        return self

    def _prepare(self) -> None:
        self.remove_stale_temp_files()
        if (self.path / "checkpoint.npz").exists() and not self.resume:
            if not self.overwrite:
                raise InputError(f"{self.path} already holds a run (checkpoint.npz); continue it with --resume "
                                 f"{self.path / 'checkpoint.npz'}, start it again with --overwrite, or give "
                                 "another --out")
            for name in RUN_FILES:
                (self.path / name).unlink(missing_ok=True)

    def remove_stale_temp_files(self) -> list[str]:
        """Delete what a killed atomic write left behind (we hold the lock: no write of ours is running)."""
        removed = []
        for entry in self.path.iterdir():
            if STALE_TEMP.match(entry.name) and entry.is_file():
                entry.unlink(missing_ok=True)
                removed.append(entry.name)
        return removed

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is not None and not isinstance(exc, (DivergenceError, KeyboardInterrupt)):
            self._forget_unstarted_run()
        self.release()

    def _forget_unstarted_run(self) -> None:
        """A run that failed before training wrote anything leaves no config.json behind (nor a new folder)."""
        if (self.path / "checkpoint.npz").exists() or (self.path / "history.json").exists():
            return
        (self.path / "config.json").unlink(missing_ok=True)
        if self._created and {p.name for p in self.path.iterdir()} <= {LOCK_NAME}:
            (self.path / LOCK_NAME).unlink(missing_ok=True)
            self.path.rmdir()
