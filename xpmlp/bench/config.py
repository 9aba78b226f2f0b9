"""What one benchmark run is: its settings (:class:`BenchConfig`) and its data (:class:`BenchData`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import data as datasets
from ..errors import DataError, InputError
from ..network import activation_list, normalize_activation
from .machine import available_cores

CONTENDERS = ("xpmlp", "torch", "sklearn", "gemm")
LABELS = {"xpmlp": "xpmlp", "torch": "PyTorch", "sklearn": "scikit-learn", "gemm": "GEMM-only"}
NUM_FEATURES, NUM_CLASSES = 784, 10
VAL_SIZE = 5000  # Fashion-MNIST's 60,000 training images -> 55,000 train + 5,000 validation
QUICK_TRAIN_SIZE = 10_000

Log = Callable[[str], None]


#: Activations every contender has (PyTorch's layer; scikit-learn's name).
BENCH_ACTIVATIONS = {"relu": ("ReLU", "relu"), "tanh": ("Tanh", "tanh"), "sigmoid": ("Sigmoid", "logistic")}


@dataclass
class BenchConfig:
    """One benchmark run; ``None`` fields take their defaults in :meth:`resolve`."""

    hidden: list[int] = field(default_factory=lambda: [500, 500])
    activation: str | list[str] = "relu"  # one name, or one per hidden layer (BENCH_ACTIVATIONS)
    batch_size: int = 128
    lr: float = 0.1
    dtype: str = "float32"
    epochs: int | None = None
    rounds: int | None = None
    train_size: int | None = None
    threads: int | None = None
    contenders: list[str] | None = None
    device: str = "auto"
    xpmlp_devices: list[str] | None = None  # None: every usable fast backend (see lineup.xpmlp_backends)
    memory: bool = True
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
        self._validate()
        return self

    def _validate(self) -> None:
        if not self.hidden or any(int(width) < 1 for width in self.hidden):
            raise InputError(f"--hidden {self.hidden}: give one or more positive widths, e.g. --hidden 500 500")
        self.hidden = [int(width) for width in self.hidden]
        self.activation = normalize_activation(self.activation)
        names = activation_list(self.activation, len(self.hidden))
        unknown = sorted(set(names) - set(BENCH_ACTIVATIONS))
        if unknown:
            raise InputError(f"--activation {' '.join(unknown)}: the benchmark's peers all have "
                             f"{', '.join(BENCH_ACTIVATIONS)} only; use those")
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
        if self.xpmlp_devices is not None and not all(isinstance(spec, str) and spec.strip()
                                                          for spec in self.xpmlp_devices):
            raise InputError(f"--xpmlp-devices {self.xpmlp_devices!r}: give device specs, e.g. cpu,torch")
        if self.contenders is not None:
            unknown = [name for name in self.contenders if name not in CONTENDERS]
            if unknown or not self.contenders:
                raise InputError(f"--contenders: unknown {', '.join(unknown) or '(empty)'}; "
                                 f"choose from {','.join(CONTENDERS)}")

    @property
    def sizes(self) -> list[int]:
        return [NUM_FEATURES, *self.hidden, NUM_CLASSES]

    @property
    def activations(self) -> list[str]:
        """One activation name per hidden layer."""
        return activation_list(self.activation, len(self.hidden))


def num_parameters(sizes: Sequence[int]) -> int:
    """Weights and biases of an MLP with these layer widths."""
    return sum(fan_in * fan_out + fan_out for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=False))


def batch_sizes(n: int, batch: int) -> list[int]:
    """The minibatch sizes of one epoch over n samples (the last one may be partial)."""
    full, rest = divmod(n, batch)
    return [batch] * full + ([rest] if rest else [])


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
        labels = rng.integers(0, classes, size=n, dtype=np.int64)
        samples = rng.standard_normal((n, features), dtype=np.float32).astype(dtype, copy=False)
        samples *= 0.35
        samples += means[labels]
        np.clip(samples, 0.0, 1.0, out=samples)
        return samples, labels

    x_train, y_train = draw(n_train)
    x_test, y_test = draw(n_test)
    return BenchData(x_train, y_train, x_test, y_test,
                     source=f"generated Gaussian class clusters (seed {seed})", generated=True)


def load_data(cfg: BenchConfig, log: Log = print) -> BenchData:
    """Fashion-MNIST (scaled to [0, 1], 5,000 held out for validation and unused), or generated data.

    With ``cfg.data == "fashion-mnist"``, data files that are missing or corrupt (a
    :class:`~xpmlp.errors.DataError`) make it fall back to generated data of the same shape; it
    says so in ``note`` and through ``log``. Any other failure propagates. The training set is cut
    to ``cfg.train_size`` samples (a seeded random subset).

    Raises:
        DataError: the data has the wrong shape, or is smaller than one batch.
    """
    if cfg.data == "fashion-mnist":
        data = _fashion_mnist_or_generated(cfg, log)
    else:
        data = _generated_training_set(cfg, note="generated data requested (--data generated)")
    _cut_and_cast(data, cfg)
    if data.x_train.ndim != 2 or data.x_train.shape[1] != NUM_FEATURES:
        raise DataError(f"benchmark data has shape {data.x_train.shape}; expected (N, {NUM_FEATURES})")
    if cfg.batch_size > data.x_train.shape[0]:
        raise InputError(f"--batch-size {cfg.batch_size} is larger than the training set "
                         f"({data.x_train.shape[0]} samples); raise --train-size or lower --batch-size")
    return data


def _fashion_mnist_or_generated(cfg: BenchConfig, log: Log) -> BenchData:
    try:
        prepared = datasets.prepare("fashion-mnist", val_size=VAL_SIZE, preprocess="scale", download=False)
    except DataError as exc:  # not found or corrupt: the documented fallback, said in the log and the report
        note = (f"Fashion-MNIST could not be loaded ({type(exc).__name__}: {exc}); "
                "using GENERATED data of the same shape instead")
        log(f"warning: {note}")
        return _generated_training_set(cfg, note=note)
    return BenchData(prepared.x_train, prepared.y_train, prepared.x_test, prepared.y_test,
                     source=f"Fashion-MNIST ({prepared.source})", generated=False)


def _generated_training_set(cfg: BenchConfig, note: str) -> BenchData:
    n_train = cfg.train_size if cfg.train_size is not None else 60_000 - VAL_SIZE
    data = generated_data(n_train, seed=cfg.seed, dtype=cfg.dtype)
    data.note = note
    return data


def _cut_and_cast(data: BenchData, cfg: BenchConfig) -> None:
    """Cut the training set to ``cfg.train_size`` (seeded subset, in order); C-ordered arrays of the run's dtype."""
    x_train, y_train = data.x_train, data.y_train
    if cfg.train_size is not None and cfg.train_size < x_train.shape[0]:
        order = np.random.default_rng([cfg.seed, 11]).permutation(x_train.shape[0])
        keep = np.sort(order[:cfg.train_size])
        x_train, y_train = x_train[keep], y_train[keep]
    data.x_train = np.ascontiguousarray(x_train, dtype=cfg.dtype)
    data.y_train = np.ascontiguousarray(y_train, dtype=np.int64)
    data.x_test = np.ascontiguousarray(data.x_test, dtype=cfg.dtype)
    data.y_test = np.ascontiguousarray(data.y_test, dtype=np.int64)
