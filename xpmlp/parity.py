"""Cross-backend parity: does my GPU (or PyTorch, or array-api-strict) give the same numbers as NumPy?

``run_parity`` trains one seeded MLP (default 64-32-32-10, ReLU, plain SGD through the Trainer's
fused step: ``gemm_update`` on every backend) on seeded synthetic
data for N steps on every backend named, and once more on NumPy (``cpu``) as the reference, in
each dtype asked. Everything random is drawn on the host from seeded NumPy Generators: the data,
the initial weights (bit-identical on every backend) and every minibatch's indices, which move to
the device in one transfer per window of steps and are gathered there with ``xp.take``. Losses
stay on the device as 0-d arrays and are read once per window (``xp.stack`` + one ``to_numpy``),
so the check does not add a host synchronisation per step. No dropout or other per-step
randomness is used: a device's own generator (CuPy's, PyTorch's) draws different masks than
NumPy's, so runs with dropout cannot be compared number for number on CUDA.

Compared, per backend and dtype, against the NumPy run of the same dtype:

* ``max_abs_dw``: ``max |W - W_numpy|`` over every parameter after the last step; ``max_rel_dw``
  divides it by ``max |W_numpy|`` over every parameter (``worst_param`` names where it is largest).
* ``max_abs_dloss``: ``max |loss - loss_numpy|`` over the whole loss curve (every step);
  ``max_rel_dloss`` divides it by ``max |loss_numpy|``.
* ``agreement``: the fraction of a held-out set on which both predict the same class
  (reported, not judged: one near-tie may flip in float32 while the weights still agree).

A row passes when both relative errors are at most its tolerance (NaN never passes):

* float64: 1e-10 on CPU backends, 1e-8 on CUDA. The backends do not sum a matrix product in
  the same order (NumPy's OpenBLAS, PyTorch's MKL/oneDNN and cuBLAS each block and vectorise
  a GEMM differently; cuBLAS may pick its algorithm at run time), so the last bits of each
  product differ, and N steps of training carry that difference on. On a CPU it stays near
  1e-15 (PyTorch CPU vs NumPy: ~7e-16 after 200 steps); CUDA kernels (fused multiply-add,
  other reductions) leave a little more, hence the looser bound there.
* float32: 1e-4. Each rounding is ~6e-8, so order-of-summation differences are ~1e-7 per
  product and grow through the steps; 1e-4 leaves room for that and still catches a wrong
  kernel, dtype or transfer.

The ``cpu`` row, when asked for, is a second NumPy run: it checks that NumPy itself is
deterministic from run to run (it should be exactly 0). array-api-strict wraps NumPy, so it
should be exactly 0 as well.

``xpmlp parity`` (``xpmlp.cli``) prints ``format_table(result)``, writes the result as JSON
(``write_json``: atomic, no NaN or Infinity: ``null``) and exits 0 when every row passes,
1 when one does not, 2 on bad input.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .backend import FLOAT_DTYPES, Backend, available_specs, check_dtype, get_backend, host_rng
from .errors import InputError
from .io import atomic_write_json
from .model import MLP
from .network import activation_label, activation_list, normalize_activation
from .optim import make_optimizer

#: Relative tolerance by dtype and by whether the backend runs on a GPU (see the module docstring).
TOLERANCES: dict[str, dict[bool, float]] = {
    "float64": {False: 1e-10, True: 1e-8},
    "float32": {False: 1e-4, True: 1e-4},
}
DEFAULT_SIZES = (64, 32, 32, 10)
REFERENCE = "cpu"
WINDOW = 100  # steps per index transfer and per loss read


@dataclass(frozen=True)
class ParitySettings:
    """What every backend trains: the same network, data, batches and learning rate.

    Attributes
    ----------
    sizes : tuple of int
        The network's widths.
    activation : str
        Its activation.
    steps : int
        SGD steps.
    batch_size : int
        Minibatch size.
    lr : float
        Learning rate.
    seed : int
        Seed of data, weights and batches.
    samples : int
        Training samples.
    test_samples : int
        Held-out samples.
    """

    sizes: tuple[int, ...] = DEFAULT_SIZES
    activation: str | tuple[str, ...] = "relu"  # one name, or one per hidden layer
    steps: int = 200
    batch_size: int = 128
    lr: float = 0.1
    seed: int = 0
    samples: int = 2048
    test_samples: int = 512


@dataclass
class Trace:
    """What one training run leaves on the host: final weights, loss curve, held-out predictions.

    Attributes
    ----------
    weights : dict of numpy.ndarray
        The final parameters by name.
    losses : numpy.ndarray
        The loss of every step.
    predictions : numpy.ndarray
        Predicted classes of the held-out samples.
    """

    weights: dict[str, np.ndarray]
    losses: np.ndarray
    predictions: np.ndarray


def tolerance(backend: Backend) -> float:
    """The relative tolerance of a backend at its dtype (:data:`TOLERANCES`).

    Parameters
    ----------
    backend : Backend
        The backend compared with NumPy.

    Returns
    -------
    float
        1e-10 in float64 on a CPU, 1e-8 in float64 on a GPU, 1e-4 in float32.
    """
    return TOLERANCES[backend.dtype][bool(backend.on_gpu)]


def make_data(cfg: ParitySettings) -> dict[str, np.ndarray]:
    """Seeded synthetic classification data on the host (float64; each backend casts it).

    Gaussian clusters around one random centre per class, so the network learns something
    (its accuracy is reported) and the comparison is not of a network that stands still.
    """
    rng = host_rng([cfg.seed, 1])
    d, c = cfg.sizes[0], cfg.sizes[-1]
    centres = rng.normal(0.0, 1.0, size=(c, d))
    n = cfg.samples + cfg.test_samples
    y = rng.integers(0, c, size=n)
    x = centres[y] + rng.normal(0.0, 2.5, size=(n, d))
    return {"x": x[:cfg.samples], "y": y[:cfg.samples], "x_test": x[cfg.samples:], "y_test": y[cfg.samples:]}


def batch_indices(cfg: ParitySettings, start: int, count: int) -> np.ndarray:
    """The (count, batch) minibatch indices of steps start .. start+count-1: the same on every backend."""
    rng = host_rng([cfg.seed, 2, start])
    return rng.integers(0, cfg.samples, size=(count, cfg.batch_size))


def train_trace(backend: Backend, data: dict[str, np.ndarray], cfg: ParitySettings) -> Trace:
    """Train the parity network on ``backend`` and bring its results to the host.

    Parameters
    ----------
    backend : Backend
        Where to train.
    data : dict of numpy.ndarray
        The host data (``make_data``).
    cfg : ParitySettings
        What to train.

    Returns
    -------
    Trace
        Final weights, loss curve and held-out predictions, as NumPy arrays.
    """
    with backend.context():
        xp = backend.xp
        activation = list(cfg.activation) if isinstance(cfg.activation, tuple) else cfg.activation
        model = MLP(cfg.sizes, activation, backend=backend, dtype=backend.dtype, seed=cfg.seed)
        opt = make_optimizer("sgd", cfg.lr, backend=model.backend)
        X, y = backend.asarray(data["x"]), backend.asarray(data["y"])
        curve: list[np.ndarray] = []
        for start in range(0, cfg.steps, WINDOW):
            count = min(WINDOW, cfg.steps - start)
            idx = backend.asarray(batch_indices(cfg, start, count))  # one transfer per window
            pending = []
            for t in range(count):
                rows = idx[t, ...]
                # the Trainer's default step: SGD's update folded into each weight-gradient GEMM
                pending.append(model.fused_step(xp.take(X, rows, axis=0), xp.take(y, rows, axis=0), 0.0, opt))
            curve.append(backend.to_numpy(xp.stack(pending)).astype(np.float64))  # one read per window
        pred = backend.to_numpy(model.predict(backend.asarray(data["x_test"])))
        return Trace(model.state_dict(), np.concatenate(curve), pred.astype(np.int64))


def _max_abs(a: np.ndarray) -> float:
    """max |a| as a float; NaN if any entry is NaN (np.max propagates it)."""
    return float(np.max(np.abs(a))) if a.size else 0.0


def _ratio(num: float, den: float) -> float:
    if math.isnan(num) or math.isnan(den):
        return math.nan
    return num / den if den else (0.0 if num == 0 else math.inf)


def compare(trace: Trace, ref: Trace) -> dict[str, Any]:
    """The differences of one run from the reference run (see the module docstring)."""
    diffs = {k: _max_abs(trace.weights[k].astype(np.float64) - ref.weights[k].astype(np.float64))
             for k in ref.weights}
    worst = max(diffs, key=lambda k: math.inf if math.isnan(diffs[k]) else diffs[k])
    scale = max(_max_abs(w.astype(np.float64)) for w in ref.weights.values())
    dloss = _max_abs(trace.losses - ref.losses)
    return {
        "max_abs_dw": diffs[worst], "max_rel_dw": _ratio(diffs[worst], scale), "worst_param": worst,
        "max_abs_dloss": dloss, "max_rel_dloss": _ratio(dloss, _max_abs(ref.losses)),
        "agreement": float(np.mean(trace.predictions == ref.predictions)),
    }


def _check_settings(cfg: ParitySettings) -> None:
    sizes = cfg.sizes
    if len(sizes) < 2 or any(s < 1 for s in sizes) or sizes[-1] < 2:
        raise InputError(f"--sizes {' '.join(map(str, sizes))} must list an input width, any hidden widths "
                         "and at least 2 classes, all positive, e.g. --sizes 64 32 32 10")
    for name in ("steps", "batch_size", "samples", "test_samples"):
        if getattr(cfg, name) < 1:
            raise InputError(f"{name} must be a positive integer, got {getattr(cfg, name)}; e.g. --steps 200")
    if cfg.seed < 0:
        raise InputError(f"seed must be an integer >= 0, got {cfg.seed}")
    if not (math.isfinite(cfg.lr) and cfg.lr > 0):
        raise InputError(f"learning rate {cfg.lr} must be a positive finite number, e.g. 0.1")
    activation_list(list(cfg.activation) if isinstance(cfg.activation, tuple) else cfg.activation, len(sizes) - 2)


def resolve(specs: Sequence[str] | None, dtypes: Sequence[str]) -> tuple[list[Backend], list[str]]:
    """Check every device spec and dtype up front; one Backend per distinct device, in order.

    Raises:
        DeviceError: a spec is unknown or not usable here.
        InputError: no spec or dtype given, or a dtype other than float32/float64.
    """
    dtypes = [dtypes] if isinstance(dtypes, str) else list(dtypes)
    if not dtypes:
        raise InputError("--dtype needs at least one of float64, float32")
    names: list[str] = []
    for d in dtypes:
        try:
            name = check_dtype(d)
        except ValueError:
            raise InputError(f"unknown dtype {d!r}; use {' or '.join(FLOAT_DTYPES[::-1])}") from None
        if name not in names:
            names.append(name)
    specs = available_specs() if specs is None else [specs] if isinstance(specs, str) else list(specs)
    if not specs:
        raise InputError("--device needs at least one device spec, e.g. --device cpu torch")
    backends: list[Backend] = []
    for spec in specs:
        backend = get_backend(spec, "float64")  # DeviceError names the problem and the fix
        if backend.spec not in [b.spec for b in backends]:
            backends.append(backend)
    return backends, names


def run_parity(specs: Sequence[str] | None = None, dtypes: Sequence[str] = ("float64", "float32"),
               steps: int = 200, *, batch_size: int = 128, sizes: Sequence[int] = DEFAULT_SIZES,
               seed: int = 0, lr: float = 0.1, samples: int = 2048, test_samples: int = 512,
               activation: str | Sequence[str] = "relu", log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train on each backend in ``specs`` (default: every usable one) and compare with NumPy.

    Parameters
    ----------
    specs : sequence of str, optional
        Device specs to compare (default: every backend usable here).
    dtypes : sequence of str, default ("float64", "float32")
        The dtypes to run each backend in.
    steps : int, default 200
        SGD steps per run.
    batch_size : int, default 128
        Minibatch size.
    sizes : sequence of int, default (64, 32, 32, 10)
        The network's widths.
    seed : int, default 0
        Seed of the data, the initial weights and the batches.
    lr : float, default 0.1
        Learning rate of the plain SGD.
    samples : int, default 2048
        Synthetic training samples.
    test_samples : int, default 512
        Held-out samples on which the predictions are compared.
    activation : str or list of str, default "relu"
        The hidden layers' activation: one name, or one per hidden layer.
    log : callable, optional
        Called with one line per finished run.

    Returns
    -------
    dict
        JSON-ready: ``settings``, ``reference`` (per dtype: the NumPy run's final loss and held-out
        accuracy), ``rows`` (one per backend and dtype, see the module docstring), ``failed``
        (``"spec/dtype"`` of each row past tolerance) and ``ok``.

    Raises
    ------
    DeviceError, InputError
        Bad specs, dtypes or settings (before any training).
    """
    activation = normalize_activation(activation)
    cfg = ParitySettings(tuple(int(s) for s in sizes), tuple(activation) if isinstance(activation, list)
                         else activation, int(steps), int(batch_size), float(lr),
                         int(seed), int(samples), int(test_samples))
    _check_settings(cfg)
    backends, names = resolve(specs, dtypes)
    data = make_data(cfg)
    rows, reference = [], {}
    for dtype in names:
        ref = train_trace(get_backend(REFERENCE, dtype), data, cfg)
        reference[dtype] = {"final_loss": float(ref.losses[-1]),
                            "test_accuracy": float(np.mean(ref.predictions == data["y_test"]))}
        for backend in backends:
            backend = backend.with_dtype(dtype)
            if log:
                log(f"training {cfg.steps} steps on {backend.spec} in {dtype}")
            rows.append(_row(backend, dtype, train_trace(backend, data, cfg), ref))
    failed = [f"{r['device']}/{r['dtype']}" for r in rows if not r["ok"]]
    settings = dict(asdict(cfg), sizes=list(cfg.sizes), optimizer="sgd", reference=REFERENCE,
                    activation=normalize_activation(cfg.activation))
    return {"settings": settings, "reference": reference, "rows": rows, "failed": failed, "ok": not failed}


def _row(backend: Backend, dtype: str, trace: Trace, ref: Trace) -> dict[str, Any]:
    """One backend's row: how far its trace is from NumPy's, its tolerance and the verdict."""
    row = {"device": backend.spec, "backend": backend.name, "dtype": dtype, "on_gpu": bool(backend.on_gpu)}
    row.update(compare(trace, ref))
    row["tolerance"] = tolerance(backend)
    row["ok"] = bool(row["max_rel_dw"] <= row["tolerance"] and row["max_rel_dloss"] <= row["tolerance"])
    return row


def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.2e}"


def format_table(result: dict[str, Any]) -> str:
    """The result as a fixed-width text table (ASCII only) with a header and a verdict line.

    Parameters
    ----------
    result : dict
        What :func:`run_parity` returned.

    Returns
    -------
    str
        The table, as ``xpmlp parity`` prints it.
    """
    s = result["settings"]
    net = f"{'-'.join(map(str, s['sizes']))} {activation_label(s['activation'])}"
    head = (f"parity against NumPy ({s['reference']}): {net}, "
            f"{s['steps']} SGD steps (lr {s['lr']:g}, batch {s['batch_size']}), seed {s['seed']}")
    cols = ("device", "dtype", "max|dW|", "rel dW", "max|dloss|", "rel dloss", "agree", "tol", "result")
    table = [cols] + [(r["device"], r["dtype"], _fmt(r["max_abs_dw"]), _fmt(r["max_rel_dw"]),
                       _fmt(r["max_abs_dloss"]), _fmt(r["max_rel_dloss"]), f"{r['agreement']:.4f}",
                       f"{r['tolerance']:.0e}", "ok" if r["ok"] else "FAIL") for r in result["rows"]]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    lines = [head] + ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                      for row in table]
    refs = ", ".join(f"{d} loss {v['final_loss']:.4f} acc {v['test_accuracy']:.3f}"
                     for d, v in result["reference"].items())
    lines.append(f"NumPy reference after training: {refs}")
    n = len(result["rows"])
    lines.append(f"all {n} rows within tolerance" if result["ok"] else
                 f"{len(result['failed'])} of {n} rows past tolerance: {', '.join(result['failed'])}")
    return "\n".join(lines)


def check_out(path: str | os.PathLike[str]) -> Path:
    """The JSON file to write (a folder given gets ``parity.json`` inside); checked before any work.

    Raises:
        InputError: the folder cannot hold the file.
    """
    out = Path(path)
    if out.is_dir() or str(path).endswith(os.sep):
        out = out / "parity.json"
    parent = next((p for p in [out.parent, *out.parent.parents] if p.exists()), Path("."))
    if not parent.is_dir():
        raise InputError(f"--out {path}: {parent} is not a folder; give a path like results/parity.json")
    try:
        if parent == out.parent:  # a real probe (root passes os.access everywhere): created and gone at once
            tempfile.TemporaryFile(dir=parent).close()
        elif not os.access(parent, os.W_OK | os.X_OK):
            raise PermissionError(f"folder {parent} is not writable")
    except OSError as exc:
        raise InputError(f"--out {path}: cannot write there ({exc.strerror or exc}); give another --out") from None
    return out


def write_json(result: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``result`` atomically (temp file in the same folder, then rename); NaN/inf as null.

    The file gets the umask's permissions, like any file the user creates.
    """
    out = check_out(path)
    try:
        atomic_write_json(out, result)
    except OSError as exc:
        raise InputError(f"--out {path}: cannot write {out} ({exc.strerror or exc}); give another --out") from None
    return out
