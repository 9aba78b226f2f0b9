"""The fused weight update: C ← β·C + α·Aᵀ·B in one GEMM, and training that uses it.

The fused path must give the unfused path's numbers to float rounding, on every backend.
"""

from __future__ import annotations

import numpy as np
import pytest


def _factors(backend, k=7, m=5, n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((k, m)), rng.standard_normal((k, n)), rng.standard_normal((m, n))


@pytest.mark.parametrize("alpha,beta", [(-0.1, 1.0), (1.0, 0.0), (-0.05, 0.9), (2.5, -0.5)])
def test_gemm_update_is_beta_c_plus_alpha_at_b_in_place(backend_any, alpha, beta):
    A, B, C = _factors(backend_any)
    want = beta * C + alpha * (A.T @ B)
    dev_c = backend_any.asarray(C)
    out = backend_any.gemm_update(dev_c, backend_any.asarray(A), backend_any.asarray(B), alpha, beta)
    tol = 1e-13 if backend_any.dtype == "float64" else 1e-5
    np.testing.assert_allclose(backend_any.to_numpy(dev_c), want, rtol=tol, atol=tol)
    np.testing.assert_array_equal(backend_any.to_numpy(out), backend_any.to_numpy(dev_c))  # C itself was updated
    assert dev_c.dtype == backend_any.float_dtype()


def test_gemm_update_on_numpy_writes_into_the_same_memory():
    from xpmlp.backend import get_backend

    cpu = get_backend("cpu", "float32")
    A, B, C = (cpu.asarray(a) for a in _factors(cpu, k=64, m=40, n=30))
    pointer = C.__array_interface__["data"][0]
    out = cpu.gemm_update(C, A, B, -0.1, 0.5)
    assert out is C and C.__array_interface__["data"][0] == pointer


def test_gemm_update_on_a_non_contiguous_view_still_computes_it():
    from xpmlp.backend import get_backend

    cpu = get_backend("cpu", "float64")
    A, B, C = _factors(cpu, m=6)
    big = np.zeros((6, 8))
    big[:, ::2] = C
    view = big[:, ::2]
    cpu.gemm_update(view, A, B, 0.5, 2.0)
    np.testing.assert_allclose(big[:, ::2], 2.0 * C + 0.5 * (A.T @ B), rtol=1e-13)
    assert not big[:, 1::2].any()


@pytest.mark.parametrize("alpha", [1.0, -0.3, 0.0])
def test_axpy_adds_alpha_x_in_place(backend_any, alpha):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    dev_y = backend_any.asarray(y)
    backend_any.axpy_(dev_y, alpha, backend_any.asarray(x))
    tol = 1e-15 if backend_any.dtype == "float64" else 1e-6
    np.testing.assert_allclose(backend_any.to_numpy(dev_y), y + alpha * x, rtol=tol, atol=tol)


# -- training through the fused step ------------------------------------------------------------------

def _train(backend, optimizer, fused, reg, weight_decay, steps=100, sizes=(12, 16, 16, 4), momentum=0.9):
    from xpmlp.model import MLP
    from xpmlp.train import TrainConfig, Trainer

    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((320, sizes[0])), rng.integers(0, sizes[-1], 320)
    model = MLP(list(sizes), "relu", backend=backend, dtype="float64", seed=1)
    config = TrainConfig(iterations=steps, log_every=steps, batch_size=32, lr=0.05, optimizer=optimizer,
                         momentum=momentum, reg=reg, weight_decay=weight_decay, train_eval_size=0, fused=fused)
    trainer = Trainer(model, config, log=None, progress="none")
    trainer.fit(X, y)
    return model.state_dict(), trainer.history.iteration_loss, trainer


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov"])
# (10, 0): lr·λ = 0.5 > μ/2, where Nesterov's fused update keeps the decay step in a temporary instead
@pytest.mark.parametrize("reg,weight_decay", [(0.0, 0.0), (1e-3, 0.0), (1e-3, 1e-4), (10.0, 0.0)])
def test_fused_training_equals_unfused_after_100_steps(backend, optimizer, reg, weight_decay):
    fused, fused_losses, trainer = _train(backend, optimizer, True, reg, weight_decay)
    plain, plain_losses, _ = _train(backend, optimizer, False, reg, weight_decay)
    assert trainer.config.fused and trainer.optimizer.can_fuse
    for name, value in plain.items():
        np.testing.assert_allclose(fused[name], value, rtol=0, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(fused_losses, plain_losses, rtol=1e-12, atol=0)
    assert not np.array_equal(fused["W1"], _train(backend, optimizer, True, reg, weight_decay, steps=1)[0]["W1"])


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov"])
def test_fused_training_through_numpys_blas_equals_unfused(monkeypatch, optimizer):
    """A first layer of 256×160 weights is past the size where NumPy's gemm_update and axpy_ call BLAS."""
    from xpmlp.backend import blas
    from xpmlp.backend import cpu as cpu_module

    calls = []
    monkeypatch.setattr(cpu_module, "gemm_at_b", lambda *args: calls.append(args[0].shape) or blas.gemm_at_b(*args))
    sizes = (256, 160, 4)
    fused, fused_losses, _ = _train("cpu", optimizer, True, 1e-3, 0.0, steps=30, sizes=sizes)
    plain, plain_losses, _ = _train("cpu", optimizer, False, 1e-3, 0.0, steps=30, sizes=sizes)
    assert (256, 160) in calls and (160, 4) not in calls  # only the large weight took the direct call
    for name, value in plain.items():
        np.testing.assert_allclose(fused[name], value, rtol=0, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(fused_losses, plain_losses, rtol=1e-12, atol=0)


@pytest.mark.parametrize("momentum", [1e-6, 0.3])
def test_fused_nesterov_with_a_small_momentum_equals_unfused(backend, momentum):
    """lr·λ = 5e-4 against μ/2: above it (1e-6) the decay step takes the temporary, below (0.3) the three passes."""
    fused, fused_losses, _ = _train(backend, "nesterov", True, 1e-2, 0.0, steps=40, momentum=momentum)
    plain, plain_losses, _ = _train(backend, "nesterov", False, 1e-2, 0.0, steps=40, momentum=momentum)
    for name, value in plain.items():
        np.testing.assert_allclose(fused[name], value, rtol=0, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(fused_losses, plain_losses, rtol=1e-12, atol=0)


def test_adam_never_takes_the_fused_path():
    from xpmlp.optim import make_optimizer

    assert not make_optimizer("adam", 0.1).can_fuse and not make_optimizer("adamw", 0.1).can_fuse
    assert all(make_optimizer(name, 0.1).can_fuse for name in ("sgd", "momentum", "nesterov"))


def test_the_fused_step_forms_no_weight_gradient_and_leaves_the_hooks_unset(backend):
    from xpmlp.layers import Linear
    from xpmlp.model import MLP
    from xpmlp.optim import make_optimizer

    model = MLP([6, 5, 3], backend=backend, dtype="float64", seed=0)
    optimizer = make_optimizer("momentum", 0.1, backend=backend)
    X = model.check_x(np.random.default_rng(0).standard_normal((8, 6)))
    y = model.check_y(np.arange(8) % 3, 8)
    loss, _ = model.loss(X, y, 0.01, check=False)
    expected = float(loss)
    for layer in model.net.layers:
        layer.grads.pop("W", None)
    got = model.fused_step(X, y, 0.01, optimizer)
    assert float(got) == pytest.approx(expected, rel=1e-14)  # the loss of the weights before the step
    linears = [layer for layer in model.net.layers if isinstance(layer, Linear)]
    assert all("W" not in layer.grads and layer.weight_update is None for layer in linears)
    assert optimizer.t == 1 and set(optimizer.state["velocity"]) == {"W1", "b1", "W2", "b2"}
