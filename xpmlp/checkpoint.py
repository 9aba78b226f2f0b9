"""Checkpoints: model weights, optimizer state, trainer state, config — device-neutral, atomic.

A checkpoint is one ``.npz`` file (``allow_pickle=False``): every array is a host NumPy
array under a path-like key (``model/W1``, ``best/W1``, ``optim/velocity/W1``,
``prep/mean``), and everything else is JSON in the ``__meta__`` entry. It can be loaded on
any backend. Files are written to a temporary file in the same folder, flushed, and renamed
over the old one, so a crash mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CheckpointError
from .io import atomic_write_bytes, json_safe

FORMAT = "xpmlp-checkpoint"
VERSION = 1


def flatten(tree: dict[str, Any], prefix: str = "") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Split a nested dict into path-keyed host arrays and a JSON-able remainder."""
    arrays: dict[str, np.ndarray] = {}
    rest: dict[str, Any] = {}
    for key, value in tree.items():
        if "/" in str(key):
            raise CheckpointError(f"key {key!r} contains '/', which checkpoints use as a separator")
        if isinstance(value, dict):
            sub_arrays, sub_rest = flatten(value, f"{prefix}{key}/")
            arrays.update(sub_arrays)
            rest[key] = sub_rest
        elif isinstance(value, np.ndarray):
            arrays[f"{prefix}{key}"] = value
        else:
            rest[key] = value
    return arrays, rest


def unflatten(arrays: dict[str, np.ndarray], rest: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Inverse of ``flatten``."""
    out: dict[str, Any] = {}
    for key, value in rest.items():
        out[key] = unflatten(arrays, value, f"{prefix}{key}/") if isinstance(value, dict) else value
    for path, arr in arrays.items():
        if path.startswith(prefix) and "/" not in path[len(prefix):]:
            out[path[len(prefix):]] = arr
    return out


def save(path: str | os.PathLike, tree: dict[str, Any]) -> Path:
    """Save a nested dict of host arrays and JSON-able values as one checkpoint, atomically.

    Parameters
    ----------
    path : str or path
        The ``.npz`` file to write (a temporary file in the same folder, then renamed).
    tree : dict
        Nested dicts of NumPy arrays and JSON-able values (what ``runs.trainer_state`` builds).

    Returns
    -------
    Path
        The path written.
    """
    arrays, rest = flatten(tree)
    meta = {"format": FORMAT, "version": VERSION, "tree": rest}
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.frombuffer(json.dumps(json_safe(meta), allow_nan=False).encode(), dtype=np.uint8),
             **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save`.

    Parameters
    ----------
    path : str or path
        The ``.npz`` file.

    Returns
    -------
    dict
        The nested dict that was saved, with NumPy arrays.

    Raises
    ------
    CheckpointError
        A missing, truncated or foreign file, with a message naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file; give the path of a run's checkpoint.npz")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "__meta__" not in z.files:
                raise CheckpointError(f"{path}: not an xpmlp checkpoint (no metadata); "
                                      "give a checkpoint.npz written by xpmlp train")
            meta = json.loads(z["__meta__"].tobytes().decode("utf-8"))
            arrays = {k: z[k] for k in z.files if k != "__meta__"}
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, UnicodeDecodeError, AttributeError) as exc:
        # AttributeError: a zip entry that is not .npy data comes back as bytes
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({type(exc).__name__}: {exc}); "
                              "use an earlier checkpoint or train again") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        fmt = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(f"{path}: not an xpmlp checkpoint (format {fmt!r}); "
                              "give a checkpoint.npz written by xpmlp train")
    if not isinstance(meta.get("version"), int) or not isinstance(meta.get("tree"), dict):
        raise CheckpointError(f"{path}: checkpoint metadata is damaged (no version or contents); "
                              "use an earlier checkpoint or train again")
    if meta["version"] > VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {meta['version']} is newer than this xpmlp "
                              f"understands ({VERSION}); upgrade xpmlp")
    return unflatten(arrays, meta["tree"])
