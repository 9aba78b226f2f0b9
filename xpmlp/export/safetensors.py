"""safetensors weights: W1, b1, W2, b2, ... as ``MLP.state_dict()`` defines them, the config in the metadata.

A safetensors file is an 8-byte little-endian header length, a JSON header (each tensor's dtype,
shape and byte range, plus a ``__metadata__`` map of strings) and the raw tensor bytes. xpmlp's
files hold ``Wk`` of shape (in, out) — the layer computes ``x @ W + b``, so ``Wk`` is the
*transpose* of ``torch.nn.Linear.weight`` — and ``bk`` of shape (out,), in the model's dtype, and
in the metadata ``format = xpmlp-safetensors``, ``version`` and ``config`` (``MLP.config()`` as
JSON). Any safetensors reader opens them; :meth:`xpmlp.model.MLP.from_safetensors` reads them back
bit for bit.

Reading checks the header before anything is allocated: a file that is not ours — not
safetensors, another program's tensors, a damaged or hostile header — is refused in one line.
No pickle is involved anywhere.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, InputError
from ..io import atomic_write_bytes, check_target, to_json

FORMAT = "xpmlp-safetensors"
VERSION = "1"
SAFETENSORS_EXTRA = "pip install 'xpmlp[safetensors]'"
DTYPES = {"float32": "F32", "float64": "F64"}
MAX_HEADER = 1 << 24  # 16 MiB of JSON: far more than any MLP's header needs


def import_safetensors() -> Any:
    """``safetensors.numpy``, or one line saying what to install.

    Returns
    -------
    module
        ``safetensors.numpy``.

    Raises
    ------
    InputError
        If the safetensors package is not installed.
    """
    try:
        import safetensors.numpy as st
    except ImportError:
        raise InputError(f"safetensors export needs the safetensors package (not installed): "
                         f"{SAFETENSORS_EXTRA}") from None
    return st


def save_safetensors(model: Any, path: str | os.PathLike) -> Path:
    """Write ``model``'s weights and config as a safetensors file, atomically.

    Parameters
    ----------
    model : MLP or Sequential
        The model, on any backend (its host ``state_dict()`` is written).
    path : str or Path
        The file to write; its folder must exist.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    InputError
        If the safetensors package is missing or the folder does not exist.
    """
    st = import_safetensors()
    target = check_target(path, "model.safetensors")
    state = {k: np.ascontiguousarray(v) for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "version": VERSION, "config": to_json(model.config(), indent=None)}
    return atomic_write_bytes(target, st.save(state, metadata=meta))


def _header(path: Path, data: bytes) -> dict[str, Any]:
    if len(data) < 8:
        raise CheckpointError(f"{path}: {len(data)} bytes is too short for a safetensors file; "
                              "pass a .safetensors file written by xpmlp export")
    (length,) = struct.unpack("<Q", data[:8])
    if length > min(len(data) - 8, MAX_HEADER):
        raise CheckpointError(f"{path}: its header claims {length} bytes but the file has {len(data) - 8} after "
                              "the length; it is not a safetensors file or it is truncated")
    try:
        header = json.loads(data[8:8 + length])
    except (UnicodeDecodeError, ValueError):
        raise CheckpointError(f"{path}: its header is not JSON; it is not a safetensors file") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: its header is not a JSON object; it is not a safetensors file")
    return header


def _config(path: Path, header: dict[str, Any]) -> dict[str, Any]:
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: a safetensors file without xpmlp's metadata (format = {FORMAT}); "
                              "it holds another program's tensors: load it with that program")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{path}: xpmlp-safetensors version {meta.get('version')!r}, this xpmlp reads "
                              f"{VERSION}; upgrade xpmlp")
    try:
        config = json.loads(meta.get("config", ""))
        sizes = [int(s) for s in config["sizes"]]
        dtype = config["dtype"]
    except (ValueError, TypeError, KeyError):
        raise CheckpointError(f"{path}: its model config is missing or malformed; the file was altered") from None
    if dtype not in DTYPES or len(sizes) < 2 or min(sizes) < 1:
        raise CheckpointError(f"{path}: its model config (sizes {sizes}, dtype {dtype!r}) cannot be a network")
    return config


def _expected(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    sizes = config["sizes"]
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=False), start=1):
        shapes[f"W{i}"], shapes[f"b{i}"] = (a, b), (b,)
    return shapes


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The model config and the weights of an xpmlp safetensors file, checked.

    Parameters
    ----------
    path : str or Path
        A file written by :func:`save_safetensors`.

    Returns
    -------
    (dict, dict of str to numpy.ndarray)
        ``MLP.config()`` at save time, and the weights by name (W1, b1, ...), bit-identical.

    Raises
    ------
    CheckpointError
        One line naming the file and what is wrong: not safetensors, not xpmlp's, or tensors
        that do not match the recorded network (missing, extra, shape, dtype, non-finite).
    InputError
        If the safetensors package is not installed.
    """
    st = import_safetensors()
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read it ({exc.strerror or exc}); check the path") from None
    header = _header(path, data)
    config = _config(path, header)
    expected = _expected(config)
    found = {k: v for k, v in header.items() if k != "__metadata__"}
    if set(found) != set(expected):
        raise CheckpointError(f"{path}: tensors {sorted(found)} do not match its network's {sorted(expected)}; "
                              "the file was altered")
    code = DTYPES[config["dtype"]]
    for name, shape in expected.items():
        entry = found[name]
        if not isinstance(entry, dict) or entry.get("dtype") != code or tuple(entry.get("shape", ())) != shape:
            raise CheckpointError(f"{path}: tensor {name} is not {code} of shape {shape}; the file was altered")
    try:
        state = st.load(data)
    except Exception as exc:  # the library's own checks of byte ranges: a damaged file  # noqa: BLE001
        raise CheckpointError(f"{path}: its tensors cannot be read ({exc}); the file is damaged") from None
    bad = [k for k, v in state.items() if not np.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path}: tensors {bad} hold NaN or inf; the model had diverged or the file was altered")
    return config, state
