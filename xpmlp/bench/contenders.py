"""The contenders that train the network: xpmlp itself, PyTorch and scikit-learn.

Each is a :class:`Contender`: the driver calls ``setup`` and ``warmup`` once, then times
``epoch`` between two ``sync`` calls, then asks ``test_accuracy``. The GEMM-only contender is
in :mod:`xpmlp.bench.gemm`.
"""

from __future__ import annotations

import cProfile
import math
import os
import pstats
import time
import warnings
from typing import Any

import numpy as np

from ..backend import Backend, get_backend
from ..errors import DeviceError
from ..model import MLP
from ..train import TrainConfig, Trainer, evaluate
from .config import BENCH_ACTIVATIONS, LABELS, NUM_CLASSES, BenchConfig, BenchData

TEST_CHUNK = 8192  # test samples per forward pass when scoring


class Unavailable(Exception):
    """A contender that cannot run here; ``status`` is "not installed" or "unavailable"."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


class Contender:
    """One way of training the network. The driver times ``epoch`` between two ``sync`` calls.

    ``kind`` is what it is (a name of :data:`~xpmlp.bench.config.CONTENDERS`); ``key`` names its
    result (the kind, or ``xpmlp:SPEC`` for xpmlp on a backend besides ``--device``);
    ``origin_spec`` is the spec of the backend it was made with, so that a child process can make
    the same contender again (:mod:`xpmlp.bench.memory`).
    """

    kind = ""
    device = "cpu"
    #: the library whose CPU threads do the work ("numpy": NumPy's OpenBLAS; "torch"; "cupy"), so the
    #: driver can let one library's idle threads stop spinning before it times another's (runner.py)
    thread_pool = "numpy"

    def __init__(self, cfg: BenchConfig, data: BenchData, key: str | None = None) -> None:
        self.cfg, self.data = cfg, data
        self.key = key or self.kind
        self.origin_spec = "cpu"
        self.n = int(data.x_train.shape[0])
        self.warm_n = min(self.n, cfg.warmup_steps * cfg.batch_size)
        self.extra: dict[str, Any] = {}

    @property
    def label(self) -> str:
        return LABELS[self.kind]

    @property
    def title(self) -> str:
        """The label, with the backend when the key says more than the kind: ``xpmlp (torch)``."""
        return self.label if self.key == self.kind else f"{self.label} ({self.origin_spec})"

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


def pool_of(backend: Backend) -> str:
    """The library whose threads run ``backend``'s work: its own, NumPy's for array-api-strict."""
    return "numpy" if backend.name == "strict" else backend.name


class XpmlpContender(Contender):
    """xpmlp's public API: :class:`~xpmlp.model.MLP` trained by :class:`~xpmlp.train.Trainer`."""

    kind = "xpmlp"

    def __init__(self, cfg: BenchConfig, data: BenchData, backend: Backend, key: str | None = None) -> None:
        super().__init__(cfg, data, key)
        self.backend = backend
        self.origin_spec = backend.spec
        self.device = f"{backend.spec} ({backend.name})"
        self.thread_pool = pool_of(backend)

    def new_model(self) -> MLP:
        return MLP(self.cfg.sizes, self.cfg.activation, backend=self.backend, dtype=self.cfg.dtype, seed=self.cfg.seed)

    def new_trainer(self, model: MLP) -> Trainer:
        config = TrainConfig(epochs=1, batch_size=self.cfg.batch_size, optimizer="sgd", lr=self.cfg.lr,
                             momentum=0.0, weight_decay=0.0, reg=0.0, train_eval_size=0, seed=self.cfg.seed)
        return Trainer(model, config, log=None, progress="none")

    def setup(self) -> None:
        self.model = self.new_model()
        # moved to the device and checked once, before timing
        self.x_device = self.model.check_x(self.data.x_train)
        self.y_device = self.model.check_y(self.data.y_train, self.n)
        self.trainer = self.new_trainer(self.model)
        self.epochs_done = 0

    def measure_input_check(self, repeats: int = 3) -> float:
        """Seconds ``Trainer.fit`` spends re-checking device arrays that were already checked."""
        best = math.inf
        for _ in range(repeats):
            self.sync()
            start = time.perf_counter()
            self.model.check_x(self.x_device)
            self.model.check_y(self.y_device, self.n)
            self.sync()
            best = min(best, time.perf_counter() - start)
        return best

    @staticmethod
    def _fit(trainer: Trainer, X: Any, y: Any) -> None:
        """``trainer.fit``; a Ctrl-C that stopped it early (the Trainer's own rule) ends the benchmark."""
        trainer.fit(X, y)
        if trainer.interrupted:
            raise KeyboardInterrupt

    def warmup(self) -> None:
        self._fit(self.new_trainer(self.new_model()), self.x_device[:self.warm_n, ...], self.y_device[:self.warm_n])

    def epoch(self) -> None:
        # One Trainer for the whole run: raising its epoch target resumes where it stopped, with
        # a fresh per-epoch shuffle (the order of epoch k is a function of (seed, k)).
        self.trainer.config.epochs = self.epochs_done + 1
        self._fit(self.trainer, self.x_device, self.y_device)
        self.epochs_done += 1

    def sync(self) -> None:
        self.backend.synchronize()

    def test_accuracy(self) -> float:
        x_test = self.model.check_x(self.data.x_test)
        y_test = self.model.check_y(self.data.y_test, x_test.shape[0])
        return float(evaluate(self.model, x_test, y_test)[1])

    def profile_epoch(self, top: int) -> list[dict[str, Any]]:
        """cProfile of one extra epoch on a throwaway model (the measured model is untouched)."""
        trainer = self.new_trainer(self.new_model())
        profiler = cProfile.Profile()
        self.sync()
        profiler.enable()
        try:
            self._fit(trainer, self.x_device, self.y_device)
            self.sync()
        finally:
            profiler.disable()
        return top_functions(pstats.Stats(profiler), top)


def top_functions(stats: pstats.Stats, top: int) -> list[dict[str, Any]]:
    """The ``top`` functions by own time: where, calls, own and cumulative seconds, share of the total."""
    rows = []
    for (path, line, func), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{os.path.basename(path)}:{line}({func})" if line else func
        rows.append({"function": where, "calls": calls, "tottime": own, "cumtime": cumulative})
    rows.sort(key=lambda row: row["tottime"], reverse=True)
    total = sum(row["tottime"] for row in rows)
    return [row | {"share": row["tottime"] / total if total else 0.0} for row in rows[:top]]


class TorchContender(Contender):
    """``nn.Sequential`` of Linear/ReLU and ``torch.optim.SGD``, on the hardware of xpmlp's backend."""

    kind = "torch"
    thread_pool = "torch"

    def __init__(self, cfg: BenchConfig, data: BenchData, backend: Backend) -> None:
        super().__init__(cfg, data)
        self.origin_spec = backend.spec
        self.device = backend.torch_device()
        self.spec = f"torch:{self.device}" if backend.on_gpu else "torch"

    def setup(self) -> None:
        try:
            import torch  # optional and slow: only when PyTorch is a contender
            import torch.nn.functional as F
            from torch import nn
        except ImportError as exc:
            raise Unavailable("not installed", f"PyTorch is not installed ({exc})") from None
        try:
            self.backend = get_backend(self.spec, self.cfg.dtype)
        except DeviceError as exc:
            raise Unavailable("unavailable", str(exc)) from None
        self.torch, self.F, self.nn = torch, F, nn
        torch.manual_seed(self.cfg.seed)
        self.net = self._net()
        self.opt = torch.optim.SGD(self.net.parameters(), lr=self.cfg.lr, momentum=0.0)
        self.x_device = self.backend.asarray(self.data.x_train)
        self.y_device = self.backend.asarray(self.data.y_train)
        self.generator = torch.Generator(device=self.backend.device)
        self.generator.manual_seed(self.cfg.seed)
        self.extra["num_threads"] = torch.get_num_threads()

    def _net(self) -> Any:
        sizes, layers = self.cfg.sizes, []
        for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
            if index:
                layers.append(getattr(self.nn, BENCH_ACTIVATIONS[self.cfg.activations[index - 1]][0])())
            layers.append(self.nn.Linear(fan_in, fan_out))
        return self.nn.Sequential(*layers).to(device=self.backend.device, dtype=self.backend.float_dtype())

    def _train(self, net: Any, opt: Any, n: int) -> None:
        batch_size, x_device, y_device = self.cfg.batch_size, self.x_device, self.y_device
        order = self.torch.randperm(n, device=self.backend.device, generator=self.generator)
        for start in range(0, n, batch_size):
            batch = order[start:start + batch_size]
            loss = self.F.cross_entropy(net(x_device[batch]), y_device[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def warmup(self) -> None:
        net = self._net()
        self._train(net, self.torch.optim.SGD(net.parameters(), lr=self.cfg.lr, momentum=0.0), self.warm_n)

    def epoch(self) -> None:
        self._train(self.net, self.opt, self.n)

    def sync(self) -> None:
        self.backend.synchronize()

    def test_accuracy(self) -> float:
        x_test, y_test = self.backend.asarray(self.data.x_test), self.backend.asarray(self.data.y_test)
        correct = 0
        with self.torch.no_grad():
            for start in range(0, x_test.shape[0], TEST_CHUNK):
                chunk = slice(start, start + TEST_CHUNK)
                correct += int((self.net(x_test[chunk]).argmax(dim=1) == y_test[chunk]).sum())
        return correct / x_test.shape[0]


class SklearnContender(Contender):
    """``MLPClassifier`` with plain SGD, one ``partial_fit`` call per epoch, on float32 input. CPU only."""

    kind = "sklearn"
    device = "cpu"

    def setup(self) -> None:
        try:
            from sklearn.neural_network import MLPClassifier  # optional and slow: the [bench] extra
        except ImportError as exc:
            raise Unavailable("not installed", f"scikit-learn is not installed ({exc})") from None
        if len(set(self.cfg.activations)) > 1:
            raise Unavailable("not comparable", "scikit-learn's MLPClassifier takes one activation for every "
                              "hidden layer, not a per-layer list")
        self.MLPClassifier = MLPClassifier
        self.clf = self._make()
        self.classes = np.arange(NUM_CLASSES)

    def _make(self) -> Any:
        total = self.cfg.rounds * self.cfg.epochs
        return self.MLPClassifier(
            hidden_layer_sizes=tuple(self.cfg.hidden), activation=BENCH_ACTIVATIONS[self.cfg.activations[0]][1],
            solver="sgd",
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
