"""No host synchronisation per step: device -> host transfers counted on the PyTorch CPU backend.

Every way a tensor reaches Python (``item``, ``float()``, ``bool()``, ``int()``, ``.cpu()``,
``.numpy()``) is patched to count. Inside forward, loss, backward and the optimizer step
there must be none; the trainer reads the pending losses once per flush.
"""

from __future__ import annotations

import numpy as np
import pytest

from xpmlp.model import MLP
from xpmlp.optim import make_optimizer
from xpmlp.train import TrainConfig, Trainer

pytestmark = pytest.mark.needs_backend("torch")

READS = ("item", "__float__", "__bool__", "__int__", "cpu", "numpy")


@pytest.fixture
def transfers(monkeypatch):
    """A list that grows by the read's name each time a tensor is read on the host."""
    import torch

    seen: list[str] = []
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counting(self, *args, __name=name, __original=original, **kwargs):
            seen.append(__name)
            return __original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    return seen


def _data(n: int = 512, d: int = 20, classes: int = 4):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, d)), rng.integers(0, classes, n)


@pytest.mark.parametrize("optimizer", ["sgd", "nesterov", "adam"])
@pytest.mark.parametrize("reg", [0.0, 1e-3])
def test_two_hundred_steps_read_nothing_back(transfers, optimizer, reg):
    model = MLP([20, 16, 16, 4], "relu", backend="torch", dtype="float32", seed=0)
    opt = make_optimizer(optimizer, 0.05, backend=model.backend)
    X_host, y_host = _data()
    X, y = model.check_x(X_host), model.check_y(y_host, len(y_host))
    idx = model.backend.asarray(np.random.default_rng(1).integers(0, 512, (200, 32)))
    losses = []
    transfers.clear()
    for step in range(200):
        xb, yb = model.xp.take(X, idx[step], axis=0), model.xp.take(y, idx[step], axis=0)
        loss, grads = model.loss(xb, yb, reg, check=False)
        opt.step(model.params, grads)
        losses.append(loss)
    assert transfers == [], f"{len(transfers)} host reads in 200 steps: {sorted(set(transfers))}"
    final = float(model.xp.stack(losses)[-1])  # the positive control: a read is seen
    assert transfers == ["__float__"] and np.isfinite(final)


def test_the_trainer_reads_losses_once_per_flush(transfers, monkeypatch):
    model = MLP([20, 16, 4], "relu", backend="torch", dtype="float32", seed=0)
    config = TrainConfig(iterations=200, log_every=200, sync_every=50, batch_size=32, lr=0.05, train_eval_size=64)
    trainer = Trainer(model, config, log=None, progress="none")
    phases: list[tuple[str, int]] = []  # (phase, transfers seen when it ended)
    for phase in ("_flush", "_evaluate"):
        original = getattr(trainer, phase)

        def spy(*args, __phase=phase, __original=original, **kwargs):
            before = len(transfers)
            result = __original(*args, **kwargs)
            phases.append((__phase, len(transfers) - before))
            return result

        monkeypatch.setattr(trainer, phase, spy)
    X, y = _data()
    checked = (model.check_x(X), model.check_y(y, len(y)))
    transfers.clear()
    trainer.fit(*checked)
    flushes = [n for name, n in phases if name == "_flush"]
    in_flushes = sum(flushes)
    in_evaluations = sum(n for name, n in phases if name == "_evaluate")
    assert len(trainer.history.iteration_loss) == 200
    assert len([n for n in flushes if n]) == 4 and max(flushes) <= 1  # 200 steps / sync_every 50
    # what is left: the evaluation point's two reads (loss, accuracy) and the trainer's input checks
    outside = len(transfers) - in_flushes - in_evaluations
    assert in_evaluations == 2 and outside <= 3, (transfers, phases)


def test_the_trainers_steps_with_augmentation_and_dropout_read_nothing_back(transfers, monkeypatch):
    """The Trainer's real path: gather, augmentation draw, dropout draw, fused step; no read per step."""
    from xpmlp.augment import Augmenter

    model = MLP([20, 16, 4], "relu", backend="torch", dtype="float32", seed=0, dropout=0.3)
    config = TrainConfig(iterations=100, log_every=100, sync_every=50, batch_size=32, lr=0.05,
                         optimizer="momentum", augment="flip,shift:1", train_eval_size=0)
    trainer = Trainer(model, config, log=None, progress="none", image_shape=(4, 5, 1))
    per_step: list[int] = []
    step, augment = Trainer._step, Augmenter.__call__

    def counted_augment(self, X, k):
        counted_augment.before = len(transfers)
        return augment(self, X, k)

    def counted_step(self, X_batch, y_batch, data):
        step(self, X_batch, y_batch, data)
        per_step.append(len(transfers) - counted_augment.before)

    monkeypatch.setattr(Augmenter, "__call__", counted_augment)
    monkeypatch.setattr(Trainer, "_step", counted_step)
    X, y = _data()
    trainer.fit(model.check_x(X), model.check_y(y, len(y)))
    assert trainer.optimizer.can_fuse and trainer.config.fused
    assert len(per_step) == 100 and sum(per_step) == 0, (per_step, transfers)
