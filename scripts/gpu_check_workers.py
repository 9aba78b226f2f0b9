"""The in-process workers of ``scripts/gpu_check.py``: training steps on one GPU backend, in their own process.

``gpu_check.py nosync SPEC`` and ``gpu_check.py first-step SPEC`` call :func:`worker_nosync` and
:func:`worker_first_step` and print their answer (a dict with ``ok`` and a one-line ``detail``)
as the last line of output, in JSON. The no-sync detectors:

* CuPy: :class:`CallCounter` patches the methods of ``cupy.ndarray`` that read the device
  (``get``, ``item``, ``float()``...) and counts their calls in 200 training steps;
* PyTorch: ``torch.cuda.set_sync_debug_mode('error')`` makes any synchronising call raise.

Each ends with a positive control, one deliberate ``float(loss)``: a detector that misses it is
reported as broken rather than trusted. Like ``gpu_check.py``, this file imports only the standard
library at the top; xpmlp, NumPy, CuPy and PyTorch are imported when a worker runs.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import statistics
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CUPY_REQUIRED = ("get", "item", "__float__", "__int__", "__bool__")
CUPY_OPTIONAL = ("tolist", "__complex__")


@dataclass
class Job:
    """A model, its optimizer and device data, ready for ``steps`` steps without a host transfer.

    A step makes the calls the Trainer's step makes: the batch gathered with ``take``, augmented
    (when ``augment`` is set: a device draw and a gather), then the momentum update fused into the
    weight-gradient GEMMs (``model.fused_step``), with dropout's device draws when the model has it.
    """

    model: Any
    opt: Any
    X: Any
    y: Any
    idx: Any
    augment: Any = None

    def train(self, steps: int, start: int = 0) -> Any:
        xp, loss = self.model.xp, None
        for i in range(start, start + steps):
            rows = self.idx[i % self.idx.shape[0]]
            X = xp.take(self.X, rows, axis=0)
            if self.augment is not None:
                X = self.augment(X, i)
            loss = self.model.fused_step(X, xp.take(self.y, rows, axis=0), 1e-4, self.opt)
        return loss


def make_job(spec: str, sizes: Sequence[int], steps: int, batch: int = 128, seed: int = 0,
             dropout: float = 0.0, augment: bool = False) -> Job:
    """A fresh float32 MLP on ``spec`` with random data and every batch's indices already on the device.

    ``augment`` flips and shifts (by up to 2 pixels) the 784 inputs as 28×28 images.
    """
    import numpy as np

    from xpmlp.augment import Augmenter, AugmentSpec
    from xpmlp.model import MLP
    from xpmlp.optim import make_optimizer

    model = MLP(list(sizes), "relu", backend=spec, dtype="float32", seed=seed, dropout=dropout)
    opt = make_optimizer("momentum", 0.05, backend=model.backend)
    augmenter = Augmenter(AugmentSpec(flip=True, shift=2), (28, 28, 1), model.backend, seed) if augment else None
    rng = np.random.default_rng(seed)
    n = 4096
    with model.backend.context():
        X = model.backend.asarray(rng.standard_normal((n, sizes[0])).astype(np.float32))
        y = model.backend.asarray(rng.integers(0, sizes[-1], n))
        idx = model.backend.asarray(rng.integers(0, n, (steps, batch)))
        model.backend.synchronize()
    return Job(model, opt, X, y, idx, augmenter)


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


#: the Trainer's whole step: augmentation and dropout draws on the device, the fused update
NOSYNC_PATH: dict[str, Any] = {"dropout": 0.2, "augment": True}


def worker_nosync(spec: str, steps: int = 200) -> dict[str, Any]:
    job = make_job(spec, [784, 256, 10], steps + 3, **NOSYNC_PATH)
    if job.model.backend.name == "cupy":
        return cupy_nosync(job, steps)
    if job.model.backend.name == "torch" and job.model.backend.on_gpu:
        return torch_nosync(job, steps)
    return {"ok": False, "detail": f"{spec} is not a GPU backend; nosync checks cuda and torch:cuda"}


FIRST_LOSS_RTOL = 1e-4  # float32: one step's loss on the GPU and the CPU differ by summation order only


def judge_first_loss(loss: float, cpu_loss: float) -> tuple[bool, str]:
    """Whether the first step's loss is finite and the CPU's within FIRST_LOSS_RTOL (relative), and why."""
    if not math.isfinite(loss):
        return False, f"first-step loss {loss} is not finite (CPU: {cpu_loss:.6f})"
    gap = abs(loss - cpu_loss) / max(abs(cpu_loss), 1e-12)
    words = (f"first-step loss {loss:.6f} vs {cpu_loss:.6f} on the CPU "
             f"(relative gap {gap:.1e}, allowed {FIRST_LOSS_RTOL:g})")
    return gap <= FIRST_LOSS_RTOL, words


def worker_first_step(spec: str, steps: int = 50) -> dict[str, Any]:
    """Seconds of the first step of a fresh 784-500-500-10 model (kernel compile, cuBLAS set-up) vs later ones."""
    job = make_job(spec, [784, 500, 500, 10], steps)
    backend = job.model.backend
    times, first_loss = [], None
    with backend.context():
        for i in range(steps):
            t0 = time.perf_counter()
            loss = job.train(1, start=i)
            backend.synchronize()
            times.append(time.perf_counter() - t0)
            first_loss = backend.to_numpy(loss) if i == 0 else first_loss
    cpu_loss = make_job("cpu", [784, 500, 500, 10], 1).train(1)  # the same model, data and first batch
    ok, why = judge_first_loss(float(first_loss), float(cpu_loss))
    first, later = times[0], statistics.median(times[1:])
    detail = (f"{why}; first step {first * 1e3:.1f} ms, later steps {later * 1e3:.3f} ms (median of {steps - 1}), "
              f"warm-up cost {first - later:.3f} s")
    return {"ok": ok, "first_loss": float(first_loss), "cpu_first_loss": float(cpu_loss),
            "first_step_s": first, "median_step_s": later, "ratio": first / later if later else None,
            "steps": steps, "cupy_cache_dir": os.environ.get("CUPY_CACHE_DIR"), "detail": detail}



ESTIMATOR_TOLERANCE = 0.01  # |test accuracy of xpmlp's estimator on the device - on the CPU|, same data and seed


def judge_estimator(device_acc: float, cpu_acc: float) -> tuple[bool, str]:
    """Whether the device fit's test accuracy is finite and within ESTIMATOR_TOLERANCE of the CPU fit's."""
    gap = abs(device_acc - cpu_acc)
    ok = math.isfinite(device_acc) and gap <= ESTIMATOR_TOLERANCE + 1e-12  # accuracies are k/n: no rounding veto
    return ok, (f"test accuracy {device_acc:.4f} on the device vs {cpu_acc:.4f} on the CPU (gap {gap:.4f}, "
                f"allowed {ESTIMATOR_TOLERANCE:g})")


def worker_estimator(spec: str, train: int = 10_000, epochs: int = 3) -> dict[str, Any]:
    """xpmlp's MLPClassifier fitted on arrays of ``spec``'s device against the same fit on the CPU.

    The same Fashion-MNIST images (NumPy on the CPU; device arrays, so the fit and the predictions
    stay on the device), the same parameters and random_state: the two fits start from the same
    weights and shuffles, so their test accuracies differ by float rounding only.
    """
    import numpy as np

    from xpmlp.backend import get_backend, to_numpy
    from xpmlp.bench.estimator import load
    from xpmlp.estimator import MLPClassifier

    X, y, Xt, yt = load(train)
    params = {"hidden_layer_sizes": (100,), "solver": "sgd", "learning_rate_init": 0.05, "momentum": 0.9,
              "batch_size": 200, "max_iter": epochs, "random_state": 0, "tol": 0.0, "n_iter_no_change": 10**9}
    backend = get_backend(spec, "float32")
    times = {}
    accuracy = {}
    for where, fit_x, test_x in (("cpu", X, Xt), ("device", backend.asarray(X), backend.asarray(Xt))):
        est = MLPClassifier(**params, device="cpu" if where == "cpu" else "auto")
        t0 = time.perf_counter()
        est.fit(fit_x, y)
        pred = np.asarray(to_numpy(est.predict(test_x)))
        times[where] = time.perf_counter() - t0
        accuracy[where] = float(np.mean(pred == yt))
        if where == "device":
            fitted_on = est._model.backend.spec
    ok, why = judge_estimator(accuracy["device"], accuracy["cpu"])
    ok = ok and fitted_on == backend.spec
    extra = estimator_extras(backend, X[:2000], y[:2000], Xt, yt)
    ok = ok and all(check["ok"] for check in extra.values())
    return {"ok": ok, "device_acc": accuracy["device"], "cpu_acc": accuracy["cpu"], "fitted_on": fitted_on,
            "seconds": times, "train": len(y), "epochs": epochs, "extra": extra,
            "detail": f"{why}; fitted on {fitted_on}; fit+predict {times['device']:.1f} s on the device, "
                      f"{times['cpu']:.1f} s on the CPU ({len(y):,} images, {epochs} epochs, 784-100-10 sgd); "
                      + "; ".join(f"{name}: {check['detail']}" for name, check in extra.items())}


def estimator_extras(backend: Any, X: Any, y: Any, Xt: Any, yt: Any) -> dict[str, dict[str, Any]]:
    """L-BFGS (classifier), MLPRegressor and sparse input on the device, each against the same fit on the CPU."""
    import numpy as np

    from xpmlp.backend import get_backend, to_numpy
    from xpmlp.estimator import MLPClassifier, MLPRegressor

    checks = {}
    lbfgs = {"solver": "lbfgs", "hidden_layer_sizes": (64,), "max_iter": 50, "random_state": 0}
    fits = {}
    X64, wide = np.asarray(X, dtype=np.float64), get_backend(backend.spec, "float64")  # float64: iterates stay close
    for where, fit_x in (("cpu", X64), ("device", wide.asarray(X64))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # 50 iterations stop at max_iter: a ConvergenceWarning
            fits[where] = MLPClassifier(**lbfgs, device="cpu" if where == "cpu" else "auto").fit(fit_x, y)
    dev, cpu = fits["device"], fits["cpu"]
    acc = {w: float(np.mean(np.asarray(to_numpy(f.predict(wide.asarray(Xt) if w == "device" else Xt))) == yt))
           for w, f in fits.items()}
    result = dev._lbfgs_result
    checks["lbfgs"] = {"ok": abs(acc["device"] - acc["cpu"]) <= ESTIMATOR_TOLERANCE and result.reads == result.n_fun
                       and dev._model.backend.spec == backend.spec,
                       "detail": f"test accuracy {acc['device']:.4f} vs {acc['cpu']:.4f}, loss {dev.loss_:.5f} vs "
                                 f"{cpu.loss_:.5f}, {result.n_iter} iterations, {result.reads} reads for "
                                 f"{result.n_fun} evaluations"}
    target = np.asarray(y, dtype=np.float32) / 9.0
    regs = {}
    for where in ("cpu", "device"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # 3 epochs stop at max_iter
            regs[where] = MLPRegressor(hidden_layer_sizes=(32,), max_iter=3, random_state=0, tol=0.0,
                                       device="cpu" if where == "cpu" else "auto").fit(
                backend.asarray(X) if where == "device" else X, target)
    gap = abs(regs["device"].loss_ - regs["cpu"].loss_) / regs["cpu"].loss_
    checks["regressor"] = {"ok": gap < 1e-3, "detail": f"loss {regs['device'].loss_:.6f} vs {regs['cpu'].loss_:.6f}"}
    checks["sparse"] = sparse_check(backend, X, y)
    return checks


def sparse_check(backend: Any, X: Any, y: Any) -> dict[str, Any]:
    """A cupyx CSR X trains as the SciPy CSR X does on the CPU (CuPy only; other devices refuse sparse X)."""
    import scipy.sparse

    from xpmlp.estimator import MLPClassifier

    if backend.name != "cupy":
        return {"ok": True, "detail": f"not run: {backend.spec} takes no sparse X (refused in one line)"}
    import cupyx.scipy.sparse

    host = scipy.sparse.csr_matrix(X)
    params = {"hidden_layer_sizes": (32,), "max_iter": 2, "random_state": 0, "tol": 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 2 epochs stop at max_iter
        cpu = MLPClassifier(**params, device="cpu").fit(host, y)
        dev = MLPClassifier(**params).fit(cupyx.scipy.sparse.csr_matrix(host), y)
    gap = abs(dev.loss_ - cpu.loss_) / cpu.loss_
    return {"ok": gap < 1e-3 and dev._model.backend.spec == backend.spec,
            "detail": f"loss {dev.loss_:.6f} on cupyx CSR vs {cpu.loss_:.6f} on SciPy CSR"}
