"""The benchmark: xpmlp against PyTorch, scikit-learn and the bare matrix products, in one run.

Every contender trains the same network (default the second study's 784-500-500-10 ReLU net)
on the same data, in the same dtype, with the same batch size, plain SGD at the same learning
rate and the same number of steps per epoch:

* ``xpmlp``: the real public API -- :class:`xpmlp.model.MLP` trained by
  :class:`xpmlp.train.Trainer` (``train_eval_size=0``, no validation set), one ``fit`` call per
  timed epoch, on the backend given by ``--device``. The training set is moved to the device and
  checked once before timing; ``fit`` still re-checks it (a NaN scan) on every call, which is part
  of what users run and therefore timed; its cost is measured separately and reported.
* ``torch``: ``nn.Sequential`` of ``Linear``/``ReLU``, ``torch.optim.SGD``, the data preloaded as
  tensors on the same device, a plain minibatch loop over a per-epoch ``torch.randperm``,
  ``F.cross_entropy``, ``zero_grad(set_to_none=True)``, ``backward``, ``step``.
* ``sklearn``: ``MLPClassifier(solver="sgd", momentum=0, alpha=0, learning_rate="constant")``
  with early stopping off, trained one epoch per ``partial_fit`` call on float32 input (so it
  computes in float32). CPU only.
* ``gemm``: only the matrix products of each training step (forward ``h_i @ W_i``; backward
  ``h_iᵀ @ d_i`` for every layer and ``d_i @ W_iᵀ`` for every layer but the first), with
  NumPy on the CPU (CuPy / torch on a GPU), on the same shapes and the same number of steps:
  the physical ceiling of any implementation of this network.

Measurement: contenders are interleaved (A B C, A B C, ...) for ``--rounds`` rounds of
``--epochs`` timed epochs each, after one untimed warm-up pass per contender (on a throwaway
copy of its model, so warm-up does not count as training). Each reports the median and the
min-max of its samples per second; ratios are ratios of medians. Every contender trains from its
own initialisation for the same total number of epochs, and is then scored on the test set, so
nobody wins by computing less.

FLOP accounting: one training step on ``B`` samples of a network with ``P`` parameters
(weights and biases) costs ``6 * P * B`` floating-point operations -- ``2 * P * B`` for the
forward pass and ``4 * P * B`` for the backward pass (two matrix products per layer). Achieved
GFLOP/s is ``6 * P * samples / seconds / 1e9`` for every contender, the GEMM-only one included,
so GFLOP/s are proportional to samples per second and comparable across rows. (The GEMM-only
contender actually performs slightly fewer: it skips the first layer's ``dx``.)

Public API: :func:`add_arguments`, :func:`run`, :func:`main`, :func:`run_benchmark`,
:func:`format_report`, :func:`write_json`, :func:`measure_gemm_rates`, :func:`machine_info`,
:func:`generated_data`, :func:`load_data`.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .argtypes import positive_int as _positive_int
from .errors import InputError, XpmlpError
from .io import atomic_write_json

CONTENDERS = ("xpmlp", "torch", "sklearn", "gemm")
LABELS = {"xpmlp": "xpmlp", "torch": "PyTorch", "sklearn": "scikit-learn", "gemm": "GEMM-only"}
ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
            "MKL_NUM_THREADS")
NUM_FEATURES, NUM_CLASSES = 784, 10
VAL_SIZE = 5000  # Fashion-MNIST's 60,000 training images -> 55,000 train + 5,000 validation
QUICK_TRAIN_SIZE = 10_000
SCHEMA = "xpmlp-bench/1"
FLOPS_FORMULA = ("6 * parameters * samples (forward 2*P*N + backward 4*P*N; P counts weights and biases); "
                 "the same formula for every contender")

Log = Callable[[str], None]


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------

@dataclass
class BenchConfig:
    """One benchmark run; ``None`` fields take their defaults in :meth:`resolve`."""

    hidden: list[int] = field(default_factory=lambda: [500, 500])
    batch_size: int = 128
    lr: float = 0.1
    dtype: str = "float32"
    epochs: int | None = None
    rounds: int | None = None
    train_size: int | None = None
    threads: int | None = None
    contenders: list[str] | None = None
    device: str = "auto"
    data: str = "fashion-mnist"
    quick: bool = False
    warmup_steps: int = 20
    gemm_seconds: float | None = None
    seed: int = 0
    profile: int = 0

    def resolve(self) -> BenchConfig:
        """Fill the defaults (``--quick`` changes some) and validate; returns self."""
        if self.epochs is None:
            self.epochs = 1
        if self.rounds is None:
            self.rounds = 3 if self.quick else 5
        if self.train_size is None and self.quick:
            self.train_size = QUICK_TRAIN_SIZE
        if self.gemm_seconds is None:
            self.gemm_seconds = 0.1 if self.quick else 0.5
        if self.threads is None:
            self.threads = available_cores()
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise InputError(f"--hidden {self.hidden}: give one or more positive widths, e.g. --hidden 500 500")
        self.hidden = [int(h) for h in self.hidden]
        for name in ("batch_size", "epochs", "rounds", "threads", "warmup_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InputError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if self.train_size is not None and self.train_size < 1:
            raise InputError(f"--train-size must be a positive integer, got {self.train_size!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InputError(f"--lr must be a positive number, got {self.lr!r}")
        if self.dtype not in ("float32", "float64"):
            raise InputError(f"--dtype {self.dtype!r}: use float32 or float64")
        if self.data not in ("fashion-mnist", "generated"):
            raise InputError(f"--data {self.data!r}: use fashion-mnist (falls back to generated) or generated")
        if self.contenders is not None:
            unknown = [c for c in self.contenders if c not in CONTENDERS]
            if unknown or not self.contenders:
                raise InputError(f"--contenders: unknown {', '.join(unknown) or '(empty)'}; "
                                 f"choose from {','.join(CONTENDERS)}")
        return self

    @property
    def sizes(self) -> list[int]:
        return [NUM_FEATURES, *self.hidden, NUM_CLASSES]


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def num_parameters(sizes: Sequence[int]) -> int:
    """Weights and biases of an MLP with these layer widths."""
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=False))


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------

@dataclass
class BenchData:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    generated: bool
    note: str = ""


def generated_data(n_train: int, n_test: int = 10_000, seed: int = 0, dtype: str = "float32",
                   features: int = NUM_FEATURES, classes: int = NUM_CLASSES) -> BenchData:
    """Learnable stand-in data of Fashion-MNIST's shape: Gaussian class clusters in [0, 1].

    Each class has a random mean image (uniform in [0.2, 0.8]); a sample is its class mean plus
    Gaussian noise (std 0.35), clipped to [0, 1] like scaled pixels. Seeded, so every run and
    every contender sees the same numbers.
    """
    rng = np.random.default_rng([seed, 7])
    means = rng.uniform(0.2, 0.8, size=(classes, features)).astype(dtype)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, classes, size=n, dtype=np.int64)
        x = rng.standard_normal((n, features), dtype=np.float32).astype(dtype, copy=False)
        x *= 0.35
        x += means[y]
        np.clip(x, 0.0, 1.0, out=x)
        return x, y

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    return BenchData(x_train, y_train, x_test, y_test,
                     source=f"generated Gaussian class clusters (seed {seed})", generated=True)


def load_data(cfg: BenchConfig, log: Log = print) -> BenchData:
    """Fashion-MNIST (scaled to [0, 1], 5,000 held out for validation and unused), or generated data.

    With ``cfg.data == "fashion-mnist"`` a failure to load (xpmlp.data missing, files not found,
    a corrupt file) falls back to generated data of the same shape and says why in ``note``.
    The training set is cut to ``cfg.train_size`` samples (a seeded random subset).
    """
    data: BenchData | None = None
    note = ""
    if cfg.data == "fashion-mnist":
        try:
            from . import data as xdata  # another module; may not exist in every checkout

            ds = xdata.prepare("fashion-mnist", val_size=VAL_SIZE, preprocess="scale", download=False)
            data = BenchData(np.asarray(ds.x_train), np.asarray(ds.y_train), np.asarray(ds.x_test),
                             np.asarray(ds.y_test), source=f"Fashion-MNIST ({getattr(ds, 'source', '?')})",
                             generated=False)
        except Exception as exc:  # ImportError, DataError, a signature mismatch: fall back, say why
            note = (f"Fashion-MNIST could not be loaded ({type(exc).__name__}: {exc}); "
                    "using GENERATED data of the same shape instead")
            log(f"warning: {note}")
    if data is None:
        n = cfg.train_size if cfg.train_size is not None else 60_000 - VAL_SIZE
        data = generated_data(n, seed=cfg.seed, dtype=cfg.dtype)
        data.note = note or "generated data requested (--data generated)"
    x_train, y_train = data.x_train, data.y_train
    if cfg.train_size is not None and cfg.train_size < x_train.shape[0]:
        keep = np.sort(np.random.default_rng([cfg.seed, 11]).permutation(x_train.shape[0])[:cfg.train_size])
        x_train, y_train = x_train[keep], y_train[keep]
    data.x_train = np.ascontiguousarray(x_train, dtype=cfg.dtype)
    data.y_train = np.ascontiguousarray(y_train, dtype=np.int64)
    data.x_test = np.ascontiguousarray(data.x_test, dtype=cfg.dtype)
    data.y_test = np.ascontiguousarray(data.y_test, dtype=np.int64)
    if data.x_train.ndim != 2 or data.x_train.shape[1] != NUM_FEATURES:
        raise InputError(f"benchmark data has shape {data.x_train.shape}; expected (N, {NUM_FEATURES})")
    if cfg.batch_size > data.x_train.shape[0]:
        raise InputError(f"--batch-size {cfg.batch_size} is larger than the training set "
                         f"({data.x_train.shape[0]} samples); raise --train-size or lower --batch-size")
    return data


def batch_sizes(n: int, batch: int) -> list[int]:
    """The minibatch sizes of one epoch over n samples (the last one may be partial)."""
    full, rest = divmod(n, batch)
    return [batch] * full + ([rest] if rest else [])


# ---------------------------------------------------------------------------------------------
# contenders
# ---------------------------------------------------------------------------------------------

class Unavailable(Exception):
    """A contender that cannot run here; ``status`` is "not installed" or "unavailable"."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


class Contender:
    """One way of training the network. The driver times ``epoch`` between two ``sync`` calls."""

    key = ""
    device = "cpu"

    def __init__(self, cfg: BenchConfig, data: BenchData) -> None:
        self.cfg, self.data = cfg, data
        self.n = int(data.x_train.shape[0])
        self.warm_n = min(self.n, cfg.warmup_steps * cfg.batch_size)
        self.extra: dict[str, Any] = {}

    def setup(self) -> None:
        """Build the model and move the data; raise :class:`Unavailable` when it cannot run."""

    def warmup(self) -> None:
        """An untimed short pass on a throwaway model (allocators, BLAS threads, caches)."""

    def epoch(self) -> None:
        """One epoch over the training set."""
        raise NotImplementedError

    def sync(self) -> None:
        """Wait for queued device work (a no-op on the CPU)."""

    def test_accuracy(self) -> float | None:
        return None


class XpmlpContender(Contender):
    key = "xpmlp"

    def __init__(self, cfg: BenchConfig, data: BenchData, backend: Any) -> None:
        super().__init__(cfg, data)
        self.backend = backend
        self.device = f"{backend.spec} ({backend.name})"

    def _model(self) -> Any:
        from .model import MLP

        return MLP(self.cfg.sizes, "relu", backend=self.backend, dtype=self.cfg.dtype, seed=self.cfg.seed)

    def _trainer(self, model: Any, epochs: int = 1) -> Any:
        from .train import TrainConfig, Trainer

        config = TrainConfig(epochs=epochs, batch_size=self.cfg.batch_size, optimizer="sgd", lr=self.cfg.lr,
                             momentum=0.0, weight_decay=0.0, reg=0.0, train_eval_size=0, seed=self.cfg.seed)
        return Trainer(model, config, log=None, progress="none")

    def setup(self) -> None:
        self.model = self._model()
        # moved to the device and checked once, before timing
        self.X = self.model.check_x(self.data.x_train)
        self.y = self.model.check_y(self.data.y_train, self.n)
        self.trainer = self._trainer(self.model)
        self.epochs_done = 0

    def measure_input_check(self, repeats: int = 3) -> float:
        """Seconds ``Trainer.fit`` spends re-checking device arrays that were already checked."""
        best = math.inf
        for _ in range(repeats):
            self.sync()
            t0 = time.perf_counter()
            self.model.check_x(self.X)
            self.model.check_y(self.y, self.n)
            self.sync()
            best = min(best, time.perf_counter() - t0)
        return best

    def warmup(self) -> None:
        model = self._model()
        self._trainer(model).fit(self.X[:self.warm_n, ...], self.y[:self.warm_n])

    def epoch(self) -> None:
        # One Trainer for the whole run: raising its epoch target resumes where it stopped, with
        # a fresh per-epoch shuffle (the plan of epoch k is a function of (seed, k)).
        self.trainer.config.epochs = self.epochs_done + 1
        self.trainer.fit(self.X, self.y)
        self.epochs_done += 1

    def sync(self) -> None:
        self.backend.synchronize()

    def test_accuracy(self) -> float:
        from .train import evaluate

        Xt = self.model.check_x(self.data.x_test)
        yt = self.model.check_y(self.data.y_test, Xt.shape[0])
        return float(evaluate(self.model, Xt, yt)[1])


def torch_device_for(backend: Any) -> str:
    """The torch device matching xpmlp's backend: the same GPU, else the CPU."""
    return backend.torch_device()


class TorchContender(Contender):
    key = "torch"

    def __init__(self, cfg: BenchConfig, data: BenchData, device: str) -> None:
        super().__init__(cfg, data)
        self.device = device

    def setup(self) -> None:
        try:
            import torch
            import torch.nn.functional as F
            from torch import nn
        except ImportError as exc:
            raise Unavailable("not installed", f"PyTorch is not installed ({exc})") from None
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise Unavailable("unavailable", "this PyTorch build sees no CUDA GPU")
        self.torch, self.F, self.nn = torch, F, nn
        self.tdtype = getattr(torch, self.cfg.dtype)
        self.dev = torch.device(self.device)
        torch.manual_seed(self.cfg.seed)
        self.net = self._net()
        self.opt = torch.optim.SGD(self.net.parameters(), lr=self.cfg.lr, momentum=0.0)
        self.X = torch.from_numpy(self.data.x_train).to(self.dev, self.tdtype)
        self.y = torch.from_numpy(self.data.y_train).to(self.dev, torch.int64)
        self.gen = torch.Generator(device=self.dev)
        self.gen.manual_seed(self.cfg.seed)
        self.extra["num_threads"] = torch.get_num_threads()

    def _net(self) -> Any:
        sizes, layers = self.cfg.sizes, []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
            if i:
                layers.append(self.nn.ReLU())
            layers.append(self.nn.Linear(a, b))
        return self.nn.Sequential(*layers).to(device=self.dev, dtype=self.tdtype)

    def _train(self, net: Any, opt: Any, n: int) -> None:
        torch, F, X, y, bs = self.torch, self.F, self.X, self.y, self.cfg.batch_size
        perm = torch.randperm(n, device=self.dev, generator=self.gen)
        for start in range(0, n, bs):
            idx = perm[start:start + bs]
            loss = F.cross_entropy(net(X[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def warmup(self) -> None:
        net = self._net()
        self._train(net, self.torch.optim.SGD(net.parameters(), lr=self.cfg.lr, momentum=0.0), self.warm_n)

    def epoch(self) -> None:
        self._train(self.net, self.opt, self.n)

    def sync(self) -> None:
        if self.dev.type == "cuda":
            self.torch.cuda.synchronize(self.dev)

    def test_accuracy(self) -> float:
        torch = self.torch
        Xt = torch.from_numpy(self.data.x_test).to(self.dev, self.tdtype)
        yt = torch.from_numpy(self.data.y_test).to(self.dev, torch.int64)
        correct = 0
        with torch.no_grad():
            for s in range(0, Xt.shape[0], 8192):
                correct += int((self.net(Xt[s:s + 8192]).argmax(dim=1) == yt[s:s + 8192]).sum())
        return correct / Xt.shape[0]


class SklearnContender(Contender):
    key = "sklearn"
    device = "cpu"

    def setup(self) -> None:
        try:
            from sklearn.neural_network import MLPClassifier
        except ImportError as exc:
            raise Unavailable("not installed", f"scikit-learn is not installed ({exc})") from None
        self.MLPClassifier = MLPClassifier
        self.clf = self._make()
        self.classes = np.arange(NUM_CLASSES)

    def _make(self) -> Any:
        total = self.cfg.rounds * self.cfg.epochs
        return self.MLPClassifier(
            hidden_layer_sizes=tuple(self.cfg.hidden), activation="relu", solver="sgd",
            alpha=0.0,  # no L2 (sklearn's alpha is xpmlp's reg times the batch size)
            batch_size=self.cfg.batch_size, learning_rate="constant", learning_rate_init=self.cfg.lr,
            momentum=0.0, nesterovs_momentum=False, max_iter=total, shuffle=True,
            # an instance, not an int: partial_fit re-seeds an int every call (the same shuffle each epoch)
            random_state=np.random.RandomState(self.cfg.seed),
            tol=0.0, n_iter_no_change=10**9, early_stopping=False)

    def _fit(self, clf: Any, n: int) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning and friends: expected, not news
            clf.partial_fit(self.data.x_train[:n], self.data.y_train[:n], classes=self.classes)

    def warmup(self) -> None:
        self._fit(self._make(), self.warm_n)

    def epoch(self) -> None:
        self._fit(self.clf, self.n)
        self.extra["coef_dtype"] = str(self.clf.coefs_[0].dtype)

    def test_accuracy(self) -> float:
        return float(np.mean(self.clf.predict(self.data.x_test) == self.data.y_test))


def _array_lib(kind: str) -> tuple[Any, Callable[[], None]]:
    """(module with matmul(out=), synchronize) for "numpy", "cupy" or "torch:DEVICE"."""
    if kind == "numpy":
        return np, lambda: None
    if kind == "cupy":
        import cupy

        return cupy, lambda: cupy.cuda.get_current_stream().synchronize()
    import torch

    dev = torch.device(kind.split(":", 1)[1])
    return torch, (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)


def _lib_array(lib: Any, kind: str, host: np.ndarray) -> Any:
    if kind == "numpy":
        return host
    if kind == "cupy":
        return lib.asarray(host)
    return lib.from_numpy(np.ascontiguousarray(host)).to(kind.split(":", 1)[1])


def _lib_empty(lib: Any, kind: str, shape: tuple[int, ...], dtype: str) -> Any:
    if kind.startswith("torch"):
        return lib.empty(shape, dtype=getattr(lib, dtype), device=kind.split(":", 1)[1])
    return lib.empty(shape, dtype=dtype)


def gemm_kind_for(backend: Any) -> str:
    """Where the GEMM-only contender runs: NumPy on the CPU, else the GPU library of the backend."""
    if not backend.on_gpu:
        return "numpy"
    # the GPU library the backend itself uses: CuPy for cuda:N, torch for torch:cuda:N
    return f"torch:{backend.torch_device()}" if backend.spec.startswith("torch") else "cupy"


class GemmContender(Contender):
    """The matrix products of each training step alone, into preallocated outputs."""

    key = "gemm"

    def __init__(self, cfg: BenchConfig, data: BenchData, kind: str = "numpy") -> None:
        super().__init__(cfg, data)
        self.kind = kind
        self.device = "cpu (numpy)" if kind == "numpy" else kind

    def setup(self) -> None:
        lib, self._sync = _array_lib(self.kind)
        self.lib = lib
        sizes, dtype = self.cfg.sizes, self.cfg.dtype
        rng = np.random.default_rng([self.cfg.seed, 5])
        # fixed weights of a sensible scale: nothing here may overflow or go denormal
        self.W = [_lib_array(lib, self.kind, (rng.standard_normal((a, b)) / math.sqrt(a)).astype(dtype))
                  for a, b in zip(sizes[:-1], sizes[1:], strict=False)]
        self.WT = [w.T for w in self.W]
        self.X = _lib_array(lib, self.kind, self.data.x_train)
        self.dW = [_lib_empty(lib, self.kind, tuple(w.shape), dtype) for w in self.W]
        self.buffers: dict[int, tuple[list[Any], list[Any]]] = {}
        for b in set(batch_sizes(self.n, self.cfg.batch_size)) | {min(self.cfg.batch_size, self.warm_n)}:
            z = [_lib_empty(lib, self.kind, (b, s), dtype) for s in sizes[1:]]   # forward outputs
            d = [_lib_empty(lib, self.kind, (b, s), dtype) for s in sizes[1:-1]]  # dh of hidden layers
            self.buffers[b] = (z, d)
        gemm = 2 * (3 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False)) - sizes[0] * sizes[1])
        self.extra["gemm_flops_per_sample"] = gemm

    def _step(self, x: Any) -> None:
        mm, W, WT, dW = self.lib.matmul, self.W, self.WT, self.dW
        z, dh = self.buffers[x.shape[0]]
        h = x
        for i in range(len(W)):          # forward: h_{i+1} = h_i @ W_i
            mm(h, W[i], out=z[i])
            h = z[i]
        d = z[-1]                        # stands in for dlogits
        for i in range(len(W) - 1, -1, -1):
            inp = x if i == 0 else z[i - 1]
            mm(inp.T, d, out=dW[i])      # dW_i = h_iᵀ @ d_i
            if i:                        # dh_i = d_i @ W_iᵀ (no dx for the first layer)
                mm(d, WT[i], out=dh[i - 1])
                d = dh[i - 1]

    def _run(self, n: int) -> None:
        start = 0
        for b in batch_sizes(n, self.cfg.batch_size):
            self._step(self.X[start:start + b])
            start += b

    def warmup(self) -> None:
        self._run(self.warm_n - self.warm_n % min(self.cfg.batch_size, self.warm_n))

    def epoch(self) -> None:
        self._run(self.n)

    def sync(self) -> None:
        self._sync()


# ---------------------------------------------------------------------------------------------
# the machine
# ---------------------------------------------------------------------------------------------

def measure_gemm_rates(sizes: Sequence[int], batch: int, dtype: str = "float32", seconds: float = 0.5,
                       kind: str = "numpy") -> dict[str, Any]:
    """GFLOP/s of the forward GEMM shapes (batch x a) @ (a x b), each in a short timed loop.

    Returns ``{"library", "dtype", "shapes": [{"m", "k", "n", "gflops"}], "gflops"}`` where the
    last is the total FLOPs over the total time (the rate of the forward pass's products).
    """
    lib, sync = _array_lib(kind)
    rng = np.random.default_rng(3)
    shapes, total_flops, total_time = [], 0.0, 0.0
    for k, n in zip(sizes[:-1], sizes[1:], strict=False):
        a = _lib_array(lib, kind, rng.standard_normal((batch, k)).astype(dtype))
        b = _lib_array(lib, kind, (rng.standard_normal((k, n)) / math.sqrt(k)).astype(dtype))
        out = _lib_empty(lib, kind, (batch, n), dtype)
        for _ in range(3):
            lib.matmul(a, b, out=out)
        sync()
        reps, elapsed, t0 = 0, 0.0, time.perf_counter()
        while elapsed < seconds or reps < 5:
            for _ in range(5):
                lib.matmul(a, b, out=out)
            sync()
            reps += 5
            elapsed = time.perf_counter() - t0
        flops = 2.0 * batch * k * n * reps
        shapes.append({"m": batch, "k": k, "n": n, "gflops": flops / elapsed / 1e9})
        total_flops += flops
        total_time += elapsed
    return {"library": kind, "dtype": dtype, "shapes": shapes, "gflops": total_flops / total_time / 1e9}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


_BLAS_KEYS = ("internal_api", "architecture", "version", "num_threads", "threading_layer", "prefix")


def _threadpool_info() -> list[dict[str, Any]] | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return threadpool_info()


def _blas_entries(info: list[dict[str, Any]] | None, package: str) -> list[dict[str, Any]]:
    if info is None:
        return []
    out = []
    for entry in info:
        path = entry.get("filepath", "")
        if f"{os.sep}{package}" in path:
            row = {k: entry.get(k) for k in _BLAS_KEYS if k in entry}
            row["user_api"] = entry.get("user_api")
            row["file"] = os.path.basename(path)
            out.append(row)
    return out


def _torch_blas(torch: Any) -> dict[str, Any]:
    """torch's BLAS: statically linked MKL is invisible to threadpoolctl, so read its build config."""
    out: dict[str, Any] = {"num_threads": torch.get_num_threads()}
    try:
        text = torch.__config__.show()
    except Exception:  # a stripped build: nothing to report
        return out
    for line in text.splitlines():
        s = line.strip().lstrip("- ")
        if "Math Kernel Library" in s:
            out["mkl"] = s
        elif "MKL-DNN" in s or "oneDNN" in s:
            out["onednn"] = s
        elif s.startswith("CPU capability usage"):
            out["cpu_capability"] = s.split(":", 1)[1].strip()
        elif "BLAS_INFO=" in s:
            out["blas_info"] = s.split("BLAS_INFO=", 1)[1].split(",", 1)[0]
    return out


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except ImportError:
        return None
    return str(getattr(mod, "__version__", "?"))


def machine_info(threads: int, gpu: str | None = None) -> dict[str, Any]:
    """CPU, GPU, BLAS libraries and kernels, threads, versions, date and BLAS env vars."""
    from . import __version__

    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cores_available": available_cores(),
        "threads": threads,
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "versions": {"xpmlp": __version__, "numpy": np.__version__, "torch": _version("torch"),
                     "sklearn": _version("sklearn"), "threadpoolctl": _version("threadpoolctl"),
                     "array_api_compat": _version("array_api_compat")},
        "env": {k: os.environ.get(k) for k in ENV_VARS},
        "gpu": gpu,
    }
    if "cupy" in sys.modules:
        info["versions"]["cupy"] = _version("cupy")
    pools = _threadpool_info()
    # scikit-learn's MLPClassifier does its products with NumPy's ``@``: the "numpy" entry is its BLAS too
    info["blas"] = {"numpy": _blas_entries(pools, "numpy"), "scipy": _blas_entries(pools, "scipy"),
                    "sklearn": _blas_entries(pools, "scikit_learn")}
    if pools is None:
        info["blas"]["note"] = "threadpoolctl is not installed: pip install threadpoolctl"
    try:
        import torch
    except ImportError:
        info["blas"]["torch"] = None
    else:
        info["blas"]["torch"] = _torch_blas(torch) | {"threadpool": _blas_entries(pools, "torch")}
    return info


def gpu_name(backend: Any, torch_device: str) -> str | None:
    """The GPU's name, through CuPy or torch, when the run uses one."""
    try:
        if backend.on_gpu:
            return backend.device_description()
        if torch_device.startswith("cuda"):
            import torch

            return str(torch.cuda.get_device_name(torch.device(torch_device)))
    except Exception as exc:  # report, never fail the benchmark over a name
        return f"unknown ({type(exc).__name__})"
    return None


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------

def _stats(values: list[float]) -> dict[str, Any]:
    s = sorted(values)
    q = statistics.quantiles(s, n=4, method="inclusive") if len(s) > 1 else [s[0]] * 3
    return {"median": statistics.median(s), "min": s[0], "max": s[-1], "q1": q[0], "q3": q[2], "all": values}


class _ThreadLimit:
    """Same thread count for NumPy's BLAS (threadpoolctl) and torch (set_num_threads), restored after."""

    def __init__(self, threads: int, use_torch: bool) -> None:
        self.threads, self.use_torch = threads, use_torch
        self.limiter: Any = None
        self.torch_before: int | None = None
        self.note = ""

    def __enter__(self) -> _ThreadLimit:
        try:
            from threadpoolctl import threadpool_limits

            self.limiter = threadpool_limits(limits=self.threads)
        except ImportError:
            self.note = "threadpoolctl is not installed: NumPy's BLAS thread count is not enforced"
        if self.use_torch:
            try:
                import torch
            except ImportError:
                pass
            else:
                self.torch_before = torch.get_num_threads()
                torch.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.limiter is not None:
            self.limiter.restore_original_limits()
        if self.torch_before is not None:
            import torch

            torch.set_num_threads(self.torch_before)


def _default_contenders(backend: Any) -> list[str]:
    return ["xpmlp", "torch", "gemm"] if backend.on_gpu else list(CONTENDERS)


def _profile_epoch(contender: XpmlpContender, top: int) -> list[dict[str, Any]]:
    """cProfile of one extra xpmlp epoch on a throwaway model (the measured model is untouched)."""
    import cProfile
    import pstats

    model = contender._model()
    trainer = contender._trainer(model)
    prof = cProfile.Profile()
    contender.sync()
    prof.enable()
    trainer.fit(contender.X, contender.y)
    contender.sync()
    prof.disable()
    stats = pstats.Stats(prof)
    rows = []
    for (path, line, func), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{os.path.basename(path)}:{line}({func})" if line else func
        rows.append({"function": where, "calls": ncalls, "tottime": tottime, "cumtime": cumtime})
    rows.sort(key=lambda r: r["tottime"], reverse=True)
    total = sum(r["tottime"] for r in rows)
    return [r | {"share": r["tottime"] / total if total else 0.0} for r in rows[:top]]


def run_benchmark(cfg: BenchConfig, log: Log = print) -> dict[str, Any]:
    """Run the benchmark described by ``cfg``; returns the JSON-able result (see ``SCHEMA``)."""
    from .backend import get_backend

    cfg.resolve()
    backend = get_backend(cfg.device, cfg.dtype)
    if backend.note:
        log(backend.note)
    names = cfg.contenders or _default_contenders(backend)
    torch_dev = torch_device_for(backend)
    data = load_data(cfg, log)
    n, sizes = int(data.x_train.shape[0]), cfg.sizes
    params = num_parameters(sizes)
    flops_epoch = 6.0 * params * n
    makers: dict[str, Callable[[], Contender]] = {
        "xpmlp": lambda: XpmlpContender(cfg, data, backend),
        "torch": lambda: TorchContender(cfg, data, torch_dev),
        "sklearn": lambda: SklearnContender(cfg, data),
        "gemm": lambda: GemmContender(cfg, data, gemm_kind_for(backend)),
    }
    results: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    active: list[Contender] = []

    def fail(c: Contender, stage: str, exc: BaseException) -> None:
        results[c.key].update(status="error", reason=f"{stage}: {type(exc).__name__}: {exc}")
        log(f"error: {LABELS[c.key]} failed during {stage}: {type(exc).__name__}: {exc}")
        active.remove(c)

    with _ThreadLimit(cfg.threads, use_torch="torch" in names or backend.spec.startswith("torch")) as limit:
        if limit.note:
            notes.append(limit.note)
        for name in names:
            c = makers[name]()
            results[name] = {"name": name, "label": LABELS[name], "device": c.device, "status": "ok", "reason": ""}
            try:
                c.setup()
            except Unavailable as exc:
                results[name].update(status=exc.status, reason=exc.reason)
                log(f"{LABELS[name]}: {exc.status} ({exc.reason})")
                continue
            except Exception as exc:  # report the contender, keep the benchmark running
                results[name].update(status="error", reason=f"setup: {type(exc).__name__}: {exc}")
                log(f"error: {LABELS[name]} failed during setup: {type(exc).__name__}: {exc}")
                continue
            active.append(c)
        for c in list(active):
            try:
                c.warmup()
                c.sync()
            except Exception as exc:
                fail(c, "warm-up", exc)
        times: dict[str, list[float]] = {c.key: [] for c in active}
        log(f"timing {', '.join(LABELS[c.key] for c in active)}: {cfg.rounds} rounds x {cfg.epochs} epoch(s) "
            f"of {n:,} samples each, interleaved")
        for r in range(cfg.rounds):
            for c in list(active):
                for _ in range(cfg.epochs):
                    try:
                        c.sync()
                        t0 = time.perf_counter()
                        c.epoch()
                        c.sync()
                        times[c.key].append(time.perf_counter() - t0)
                    except Exception as exc:
                        fail(c, f"round {r + 1}", exc)
                        break
            log(f"round {r + 1}/{cfg.rounds}: " + ", ".join(
                f"{LABELS[c.key]} {times[c.key][-1]:.3f}s" for c in active if times[c.key]))
        for c in list(active):
            try:
                acc = c.test_accuracy()
            except Exception as exc:
                fail(c, "test evaluation", exc)
                continue
            sps = [n / t for t in times[c.key]]
            st = _stats(sps)
            results[c.key].update(
                samples_per_second=st, seconds_per_epoch=statistics.median(times[c.key]),
                seconds_per_epoch_all=times[c.key], gflops=flops_epoch / 1e9 * st["median"] / n,
                epochs_trained=len(times[c.key]), test_acc=acc, **c.extra)
        xp_c = next((c for c in active if isinstance(c, XpmlpContender)), None)
        if xp_c is not None:
            check = xp_c.measure_input_check()
            per_epoch = results["xpmlp"]["seconds_per_epoch"]
            results["xpmlp"].update(input_check_seconds=check, input_check_share=check / per_epoch)
            notes.append(f"Trainer.fit re-checks its inputs (NaN scan, label range) on every call: "
                         f"{check * 1e3:.1f} ms = {100 * check / per_epoch:.1f}% of an xpmlp epoch (timed, "
                         f"as users run it)")
        ceilings = {"cpu": measure_gemm_rates(sizes, cfg.batch_size, cfg.dtype, cfg.gemm_seconds, "numpy")}
        gkind = gemm_kind_for(backend)
        if gkind != "numpy":
            ceilings["gpu"] = measure_gemm_rates(sizes, cfg.batch_size, cfg.dtype, cfg.gemm_seconds, gkind)
        profile = _profile_epoch(xp_c, cfg.profile) if (xp_c is not None and cfg.profile) else None
        machine = machine_info(cfg.threads, gpu_name(backend, torch_dev))
    base = results.get("xpmlp", {}).get("samples_per_second", {}).get("median")
    for res in results.values():
        med = res.get("samples_per_second", {}).get("median") if res["status"] == "ok" else None
        res["ratio"] = base / med if (base and med) else None
        for key in ("samples_per_second", "seconds_per_epoch", "gflops", "test_acc"):
            res.setdefault(key, None)
    gemm_fraction = results["gemm"]["ratio"] if "gemm" in results else None
    if data.generated:
        notes.insert(0, f"DATA IS GENERATED, not Fashion-MNIST: {data.note}")
    return {
        "schema": SCHEMA,
        "config": asdict(cfg) | {"sizes": sizes, "optimizer": "sgd (no momentum, no L2)", "activation": "relu",
                                 "backend": str(backend)},
        "data": {"source": data.source, "generated": data.generated, "note": data.note, "n_train": n,
                 "n_test": int(data.x_test.shape[0])},
        "parameters": params,
        "flops_formula": FLOPS_FORMULA,
        "flops_per_epoch": flops_epoch,
        "ratio_definition": "xpmlp speed-up = median samples/s of xpmlp / median samples/s of the contender "
                            "(> 1: xpmlp is faster)",
        "contenders": results,
        "xpmlp_fraction_of_gemm": gemm_fraction,
        "gemm_ceiling": ceilings,
        "machine": machine,
        "profile": profile,
        "notes": notes,
    }


# ---------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------

def _fmt(value: Any, spec: str, none: str = "-") -> str:
    return none if value is None else format(value, spec)


def _blas_line(entries: list[dict[str, Any]]) -> str:
    blas = [e for e in entries if e.get("user_api") == "blas"] or entries
    if not blas:
        return "unknown"
    e = blas[0]
    return (f"{e.get('internal_api')} {e.get('version')} kernel {e.get('architecture')}, "
            f"threads: {e.get('num_threads')} ({e.get('file')})")


def format_report(result: dict[str, Any]) -> str:
    """The human-readable report: the header, the aligned table and the machine lines."""
    cfg, data, machine = result["config"], result["data"], result["machine"]
    lines = [
        f"xpmlp benchmark: {'-'.join(map(str, cfg['sizes']))} ReLU, {cfg['dtype']}, batch {cfg['batch_size']}, "
        f"SGD lr {cfg['lr']:g} (no momentum, no L2)",
        f"data: {data['source']}; {data['n_train']:,} training samples per epoch, {data['n_test']:,} test samples",
    ]
    if data["generated"]:
        lines.append(f"WARNING: generated data, not Fashion-MNIST ({data['note']})")
    lines += [
        f"timing: {cfg['rounds']} interleaved rounds x {cfg['epochs']} timed epoch(s) per contender, "
        f"warm-up excluded; threads: {machine['threads']}",
        f"FLOPs per epoch: 6 x {result['parameters']:,} parameters x {data['n_train']:,} samples "
        f"= {result['flops_per_epoch'] / 1e9:.1f} GFLOP",
        "",
    ]
    header = ("contender", "device", "s/epoch", "samples/s", "min-max samples/s", "GFLOP/s", "xpmlp speed-up",
              "test acc")
    rows: list[Sequence[str]] = [header]
    for res in result["contenders"].values():
        if res["status"] != "ok":  # spans the numeric columns; see the line with the reason below the table
            rows.append((res["label"], res["device"], res["status"]))
            continue
        sps = res["samples_per_second"]
        rows.append((res["label"], res["device"], f"{res['seconds_per_epoch']:.4g}", f"{sps['median']:,.0f}",
                     f"{sps['min']:,.0f}-{sps['max']:,.0f}", f"{res['gflops']:.1f}",
                     _fmt(res["ratio"], ".2f") + ("x" if res["ratio"] is not None else ""),
                     _fmt(res["test_acc"], ".4f")))
    widths = [max(len(r[i]) for r in rows if i < 2 or len(r) == len(header)) for i in range(len(header))]
    right = {2, 3, 4, 5, 6, 7}

    def line(r: Sequence[str]) -> str:
        if len(r) < len(header):
            return "  ".join([r[0].ljust(widths[0]), r[1].ljust(widths[1]), *r[2:]])
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths,
                                                                                                     strict=True)))
    lines.append(line(header))
    lines.append("  ".join("-" * w for w in widths))
    lines += [line(r) for r in rows[1:]]
    lines.append("")
    lines.append("xpmlp speed-up = xpmlp samples/s / contender samples/s (medians): > 1 means xpmlp is faster.")
    lines.append("GFLOP/s = 6 x parameters x samples / seconds (the same formula for every row).")
    for res in result["contenders"].values():
        if res["status"] not in ("ok",):
            lines.append(f"{res['label']}: {res['status']}: {res['reason']}")
    if result["xpmlp_fraction_of_gemm"] is not None:
        lines.append(f"xpmlp reaches {100 * result['xpmlp_fraction_of_gemm']:.0f}% of the GEMM-only ceiling "
                     "(its matrix products alone).")
    for where, ceil in result["gemm_ceiling"].items():
        shapes = ", ".join(f"{s['m']}x{s['k']} @ {s['k']}x{s['n']}: {s['gflops']:.1f}" for s in ceil["shapes"])
        lines.append(f"GEMM rate ({where}, {ceil['library']}, {ceil['dtype']}, forward shapes): "
                     f"{ceil['gflops']:.1f} GFLOP/s overall ({shapes})")
    blas = machine["blas"]
    lines.append(f"CPU: {machine['cpu_model']} ({machine['cores_available']} cores available)"
                 + (f"; GPU: {machine['gpu']}" if machine.get("gpu") else ""))
    lines.append(f"BLAS numpy: {_blas_line(blas.get('numpy', []))}")
    tb = blas.get("torch")
    if tb is None:
        lines.append("BLAS torch: (PyTorch not installed)")
    else:
        lines.append(f"BLAS torch: {tb.get('blas_info', '?')} ({tb.get('mkl', 'version unknown')}), "
                     f"CPU capability {tb.get('cpu_capability', '?')}, threads: {tb.get('num_threads')}")
    v = machine["versions"]
    lines.append("versions: " + ", ".join(f"{k} {val}" for k, val in v.items() if val is not None))
    env = ", ".join(f"{k}={machine['env'][k] if machine['env'][k] is not None else '(unset)'}"
                    for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"))
    lines.append(f"env: {env}; date {machine['date']}")
    for note in result["notes"]:
        lines.append(f"note: {note}")
    if result.get("profile"):
        lines.append("")
        lines.append("profile of one extra xpmlp epoch (top functions by own time):")
        for p in result["profile"]:
            lines.append(f"  {p['tottime']:8.3f}s {100 * p['share']:5.1f}%  {p['calls']:>7}  {p['function']}")
    return "\n".join(lines)


def write_json(path: str | os.PathLike[str], result: dict[str, Any]) -> None:
    """Write the result atomically: a temporary file in the same folder, then os.replace."""
    atomic_write_json(path, result)


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------

def _contender_list(text: str) -> list[str]:
    names = [s.strip().lower() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in CONTENDERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown contender(s) {', '.join(unknown) or '(none)'}; "
                                         f"choose from {','.join(CONTENDERS)}")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options to ``parser`` (used by ``xpmlp bench`` and scripts/bench.py)."""
    parser.add_argument("--device", default="auto",
                        help="xpmlp's backend: auto | cpu | cuda | cuda:N | torch | torch:cuda | strict "
                             "(default auto); on a GPU, PyTorch runs on the same GPU")
    parser.add_argument("--contenders", type=_contender_list, default=None,
                        help="comma-separated subset of xpmlp,torch,sklearn,gemm "
                             "(default all on the CPU; xpmlp,torch,gemm on a GPU)")
    parser.add_argument("--hidden", type=_positive_int, nargs="+", default=[500, 500],
                        help="hidden widths; depth = number of widths (default 500 500)")
    parser.add_argument("--batch-size", type=_positive_int, default=128, help="minibatch size (default 128)")
    parser.add_argument("--lr", type=float, default=0.1, help="SGD learning rate (default 0.1)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--epochs", type=_positive_int, default=None, help="timed epochs per round (default 1)")
    parser.add_argument("--rounds", type=_positive_int, default=None,
                        help="interleaved rounds (default 5; 3 with --quick)")
    parser.add_argument("--train-size", type=_positive_int, default=None,
                        help=f"training samples per epoch (default all 55,000; {QUICK_TRAIN_SIZE:,} with --quick)")
    parser.add_argument("--threads", type=_positive_int, default=None,
                        help="threads for NumPy's BLAS and torch (default: the cores available)")
    parser.add_argument("--data", default="fashion-mnist", choices=["fashion-mnist", "generated"],
                        help="fashion-mnist (default; generated data if it cannot be loaded) or generated")
    parser.add_argument("--warmup-steps", type=_positive_int, default=20,
                        help="steps of the untimed warm-up pass per contender (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="a run under a minute: 10,000 training samples, 1 epoch, 3 rounds")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also cProfile one extra xpmlp epoch and print its top N functions")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the results as JSON (atomically)")


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    return BenchConfig(hidden=list(args.hidden), batch_size=args.batch_size, lr=args.lr, dtype=args.dtype,
                       epochs=args.epochs, rounds=args.rounds, train_size=args.train_size, threads=args.threads,
                       contenders=args.contenders, device=args.device, data=args.data, quick=args.quick,
                       warmup_steps=args.warmup_steps, seed=args.seed, profile=max(0, args.profile))


def run(args: argparse.Namespace) -> int:
    """Run the benchmark from parsed arguments; print the report. 0 = ok, 1 = a contender failed, 2 = bad input."""
    try:
        result = run_benchmark(config_from_args(args), log=lambda s: print(s, file=sys.stderr, flush=True))
    except XpmlpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_report(result), flush=True)
    if args.json:
        write_json(args.json, result)
        print(f"wrote {args.json}")
    return 1 if any(r["status"] == "error" for r in result["contenders"].values()) else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xpmlp bench", description=(__doc__ or "").split("\n", 1)[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
