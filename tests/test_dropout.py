"""Dropout: inverted scaling, masks drawn on the device, gradients, exact resume, and its flag."""

from __future__ import annotations

import numpy as np
import pytest

from xpmlp.backend import get_backend
from xpmlp.errors import InputError
from xpmlp.gradcheck import check_layer, check_model
from xpmlp.layers import Dropout
from xpmlp.model import MLP
from xpmlp.optim import make_optimizer
from xpmlp.runs import restore_trainer, trainer_state
from xpmlp.train import TrainConfig, Trainer


def test_dropout_scales_kept_units_and_is_the_identity_at_evaluation(backend_any):
    layer = Dropout(backend_any, 0.25, backend_any.device_random(1))
    x = backend_any.asarray(np.ones((400, 50)))
    out = backend_any.to_numpy(layer.forward(x, train=True))
    kept = out != 0
    np.testing.assert_allclose(np.unique(out), [0.0, 1 / 0.75], rtol=1e-6)
    assert abs(kept.mean() - 0.75) < 0.01  # 20,000 draws: the kept fraction is within 0.01 of 1 − p
    assert abs(out.mean() - 1.0) < 0.02  # inverted dropout keeps the expectation
    np.testing.assert_array_equal(backend_any.to_numpy(layer.forward(x, train=False)), 1.0)
    dx = backend_any.to_numpy(layer.backward(backend_any.asarray(np.full((400, 50), 2.0))))
    np.testing.assert_allclose(dx, np.where(kept, 2.0 / 0.75, 0.0), rtol=1e-6)


def test_each_step_draws_a_new_mask(backend):
    layer = Dropout(backend, 0.5, backend.device_random(0))
    x = backend.asarray(np.ones((20, 20)))
    a, b = (backend.to_numpy(layer.forward(x, train=True)) for _ in range(2))
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, "0.2", True])
def test_a_bad_probability_is_refused(p):
    with pytest.raises(InputError, match=r"\[0, 1\)"):
        Dropout(get_backend("cpu"), p)
    with pytest.raises(InputError, match=r"\[0, 1\)"):
        MLP([4, 3, 2], backend="cpu", dropout=p)


def test_gradients_with_a_fixed_mask(backend):
    layer = Dropout(backend, 0.4)
    layer.fix_mask(backend.asarray(np.random.default_rng(2).random((5, 7)) >= 0.4))
    x = backend.asarray(np.random.default_rng(3).standard_normal((5, 7)))
    assert max(check_layer(layer, x).values()) < 1e-7


def test_gradients_of_a_model_with_fixed_masks(backend):
    model = MLP([6, 8, 7, 4], "tanh", backend=backend, dtype="float64", seed=0, dropout=0.3)
    rng = np.random.default_rng(5)
    for layer in model.net.layers:
        if isinstance(layer, Dropout):
            layer.fix_mask(backend.asarray(rng.random((5, layer_width(model, layer))) >= 0.3))
    errors = check_model(model, rng.standard_normal((5, 6)), np.array([0, 1, 2, 3, 1]), reg=1e-2)
    assert max(errors.values()) < 1e-7


def layer_width(model: MLP, layer: Dropout) -> int:
    index = model.net.layers.index(layer)
    return next(lay.out_features for lay in reversed(model.net.layers[:index]) if hasattr(lay, "out_features"))


def test_masks_are_drawn_on_the_device_without_host_transfers(backend, monkeypatch):
    model = MLP([10, 16, 3], backend=backend, dtype="float64", seed=0, dropout=0.5)
    X = model.check_x(np.random.default_rng(0).standard_normal((32, 10)))
    y = model.check_y(np.arange(32) % 3, 32)
    optimizer = make_optimizer("sgd", 0.1, backend=model.backend)
    moves = []
    real = type(model.backend).asarray
    monkeypatch.setattr(type(model.backend), "asarray", lambda self, *a, **k: moves.append(1) or real(self, *a, **k))
    for _ in range(20):
        model.fused_step(X, y, 0.0, optimizer)
    # NumPy draws on the host, which is its device; array-api-strict shares those draws (documented)
    assert len(moves) == (20 if backend.name == "strict" else 0)


def _run(spec, epochs, state=None):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((200, 10)), rng.integers(0, 3, 200)
    model = MLP([10, 16, 16, 3], backend=spec, dtype="float64", seed=4, dropout=0.3)
    trainer = Trainer(model, TrainConfig(epochs=epochs, batch_size=20, lr=0.1, optimizer="momentum",
                                         train_eval_size=0), log=None, progress="none")
    if state is not None:
        restore_trainer(trainer, state)
    trainer.fit(X, y)
    return trainer


def test_a_resumed_run_with_dropout_equals_an_uninterrupted_one(backend):
    whole = _run(backend.spec, 3)
    first = _run(backend.spec, 1)
    state = trainer_state(first)
    assert state["trainer"]["dropout_random"]["draws"] == 10 * 2  # 10 steps, 2 dropout layers
    resumed = _run(backend.spec, 3, state)
    for name, value in whole.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[name], value)


def test_numpy_and_strict_draw_the_same_masks():
    a, b = _run("cpu", 2), _run("strict", 2)
    for name, value in a.model.state_dict().items():
        np.testing.assert_allclose(b.model.state_dict()[name], value, rtol=0, atol=1e-13)
