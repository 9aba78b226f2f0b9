"""Atomic file writing: a file is either its old self or completely new, never half written.

Each write goes to a temporary file in the same folder (``.NAME.*.tmp``), is flushed to disk,
given the permissions the umask allows a new file (``mkstemp`` alone would make it 0600), and
renamed over the target. JSON is written strictly: NaN and ±Infinity become ``null``, since
strict parsers (and other languages) reject them.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def _umask() -> int:
    # os.umask can only be read by setting it; set it straight back
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(obj: Any) -> Any:
    """``obj`` with NumPy scalars and arrays as Python values and non-finite floats as None."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def to_json(obj: Any, indent: int | None = 2) -> str:
    """Strict JSON text of ``obj`` (see ``json_safe``); raises TypeError on what JSON cannot hold."""
    return json.dumps(json_safe(obj), indent=indent, allow_nan=False)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as strict JSON (NaN/Infinity as null), atomically."""
    return atomic_write_text(path, to_json(obj) + "\n")


def check_target(path: str | os.PathLike, example: str) -> Path:
    """Refuse, in one line, a file path that cannot be written: a folder, or one in a missing folder.

    Parameters
    ----------
    path : str or Path
        The file to be written.
    example : str
        A file name to suggest when ``path`` is a folder (``"model.onnx"``).

    Returns
    -------
    Path
        ``path`` as a Path.

    Raises
    ------
    InputError
        If ``path`` is a folder or its folder does not exist.
    """
    from .errors import InputError

    target = Path(path)
    if target.is_dir():
        raise InputError(f"cannot write {target}: it is a folder; give a file name such as {target / example}")
    if not target.parent.is_dir():
        raise InputError(f"cannot write {target}: the folder {target.parent} does not exist; create it first")
    return target
