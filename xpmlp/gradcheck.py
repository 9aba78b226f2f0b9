"""Numerical gradient checks for layers and for the whole model + loss + L2 penalty.

Each analytic gradient is compared with a central difference of fourth order::

    f'(θ) ≈ (−f(θ+2h) + 8f(θ+h) − 8f(θ−h) + f(θ−2h)) / 12h

whose truncation error is O(h⁴), so h = 1e-4 leaves both truncation and rounding
far below the 1e-7 we ask for in float64. Small parameters are checked entry by
entry; large ones on a random sample of entries, plus one random direction v over
all parameters at once (⟨∇f, v⟩ against the difference quotient along v).

The error of one parameter is max|analytic − numeric| / max(max|analytic|, max|numeric|):
relative to that parameter's gradient scale, so a tiny entry next to large ones does not
turn rounding noise into a spurious failure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .backend import Backend, get_backend, host_rng
from .layers import ACTIVATIONS, Dropout, Layer, Linear, get_activation
from .losses import softmax_cross_entropy
from .model import MLP
from .network import activation_label

Array = Any
STENCIL = ((2.0, -1.0), (1.0, 8.0), (-1.0, -8.0), (-2.0, 1.0))  # (offset in h, weight) over 12h


def _entries(shape: tuple[int, ...], max_entries: int, rng: Any) -> list[tuple[int, ...]]:
    """All index tuples of ``shape``, or ``max_entries`` of them drawn without replacement."""
    size = 1
    for s in shape:
        size *= s
    flat = range(size) if size <= max_entries else sorted(rng.choice(size, max_entries, replace=False).tolist())
    out = []
    for k in flat:
        idx = []
        for s in reversed(shape):
            idx.append(k % s)
            k //= s
        out.append(tuple(reversed(idx)))
    return out


def _numeric_entry(f: Callable[[], float], p: Array, idx: tuple[int, ...], h: float) -> float:
    original = float(p[idx])
    total = 0.0
    for offset, weight in STENCIL:
        p[idx] = original + offset * h
        total += weight * f()
    p[idx] = original
    return total / (12.0 * h)


def relative_error(analytic: list[float], numeric: list[float]) -> float:
    """max|a − n| / max(max|a|, max|n|); 0 when both are all zero.

    Parameters
    ----------
    analytic, numeric : list of float
        The same entries of a gradient, derived by hand and by finite differences.

    Returns
    -------
    float
        The largest difference relative to the larger of the two gradients' scales.

    Examples
    --------
    >>> from xpmlp.gradcheck import relative_error
    >>> relative_error([1.0, -2.0], [1.0, -2.0000001]) < 1e-7
    True
    """
    scale = max([abs(v) for v in analytic] + [abs(v) for v in numeric] + [0.0])
    if scale == 0.0:
        return 0.0
    return max(abs(a - n) for a, n in zip(analytic, numeric, strict=False)) / scale


def check_arrays(f: Callable[[], float], arrays: dict[str, Array], grads: dict[str, Array], backend: Backend, *,
                 max_entries: int = 200, h: float = 1e-4, seed: int = 0) -> dict[str, float]:
    """Compare ``grads[k]`` with numeric derivatives of the scalar ``f()`` w.r.t. ``arrays[k]``.

    ``f`` must read the arrays (it is called after each entry is perturbed in place); all
    arrays belong to ``backend``.

    Parameters
    ----------
    f : callable
        ``f() -> float``: the scalar whose gradient ``grads`` claims to be.
    arrays : dict of str to array
        The arrays ``f`` reads, perturbed in place entry by entry (and restored).
    grads : dict of str to array
        The analytic gradient of ``f`` with respect to each array, same names.
    backend : Backend
        The backend all the arrays belong to.
    max_entries : int, default 200
        Arrays with more entries are checked on a random sample of this many.
    h : float, default 1e-4
        The finite-difference step.
    seed : int, default 0
        Seed of the sampled entries and of the random direction.

    Returns
    -------
    dict of str to float
        The relative error (:func:`relative_error`) per name, plus ``"direction"`` for one random
        direction over all arrays at once.
    """
    rng = host_rng(seed)  # host-side sampling only; the arrays stay on their device
    host_grads = {k: backend.to_numpy(g) for k, g in grads.items()}
    errors = {}
    with backend.context():
        for name, p in arrays.items():
            idxs = _entries(tuple(p.shape), max_entries, rng)
            numeric = [_numeric_entry(f, p, idx, h) for idx in idxs]
            analytic = [float(host_grads[name][idx]) for idx in idxs]
            errors[name] = relative_error(analytic, numeric)
        errors["direction"] = _direction_error(f, arrays, host_grads, backend, rng, h)
    return errors


def _direction_error(f: Callable[[], float], arrays: dict[str, Array], host_grads: dict[str, Any],
                     backend: Backend, rng: Any, h: float) -> float:
    """Relative error of ⟨∇f, v⟩ against the difference quotient along a random unit-scale v."""
    originals = {k: a[...] * 1.0 for k, a in arrays.items()}
    directions = {k: rng.standard_normal(tuple(a.shape)) for k, a in arrays.items()}
    analytic = sum(float((host_grads[k] * directions[k]).sum()) for k in arrays)
    total = 0.0
    for offset, weight in STENCIL:
        for k, a in arrays.items():
            a[...] = originals[k] + backend.asarray(directions[k] * (offset * h), dtype=str(a.dtype).split(".")[-1])
        total += weight * f()
    for k, a in arrays.items():
        a[...] = originals[k]
    return relative_error([analytic], [total / (12.0 * h)])


def check_layer(layer: Layer, x: Array, *, max_entries: int = 200, seed: int = 0) -> dict[str, float]:
    """Check a layer's dx and parameter gradients with f(x) = Σ forward(x) ⊙ R for a fixed random R.

    Parameters
    ----------
    layer : Layer
        The layer, placed on a (float64) backend.
    x : array
        An input batch on the layer's backend (keep it away from kinks such as ReLU's 0).
    max_entries : int, default 200
        At most this many entries checked per array.
    seed : int, default 0
        Seed of R and of the sampled entries.

    Returns
    -------
    dict of str to float
        The relative error of ``"x"``, of each parameter, and of ``"direction"``.

    Examples
    --------
    >>> from xpmlp.backend import get_backend
    >>> from xpmlp.gradcheck import check_layer
    >>> from xpmlp.layers import get_activation
    >>> be = get_backend("cpu", dtype="float64")
    >>> x = be.asarray([[0.5, -1.0, 2.0]], dtype="float64")
    >>> max(check_layer(get_activation("tanh", be), x).values()) < 1e-7
    True
    """
    backend, xp = layer.backend, layer.xp
    with backend.context():
        out = layer.forward(x, train=True)
        R = backend.asarray(host_rng(seed + 1).standard_normal(tuple(out.shape)), dtype=backend.dtype)
        dx = layer.backward(R * 1.0)  # a copy: an in-place layer may overwrite what it is given

    def f() -> float:
        return float(xp.sum(layer.forward(x * 1.0, train=False) * R))

    arrays = {"x": x, **layer.params}
    grads = {"x": dx, **layer.grads}
    return check_arrays(f, arrays, grads, backend, max_entries=max_entries, seed=seed)


def check_model(model: MLP, X: Array, y: Array, reg: float = 0.0, *, max_entries: int = 200,
                seed: int = 0) -> dict[str, float]:
    """Check every parameter gradient of ``model.loss`` (softmax CE + L2) on one batch.

    Parameters
    ----------
    model : MLP or Sequential
        The network (float64 for a meaningful check).
    X : array
        (N, features) input batch.
    y : array
        (N,) integer labels.
    reg : float, default 0.0
        L2 strength λ of the penalty checked with the loss.
    max_entries : int, default 200
        At most this many entries checked per parameter.
    seed : int, default 0
        Seed of the sampled entries and of the random direction.

    Returns
    -------
    dict of str to float
        The relative error per parameter (``W1``, ``b1``, ...) and of ``"direction"``.
    """
    X, y = model.check_x(X), model.check_y(y, model.check_x(X).shape[0])
    _, grads = model.loss(X, y, reg, check=False)
    grads = {k: g * 1.0 for k, g in grads.items()}  # copies: the checks below rerun the model

    def f() -> float:
        return float(model.loss(X, y, reg, check=False)[0])

    return check_arrays(f, model.params, grads, model.backend, max_entries=max_entries, seed=seed)


def check_loss(logits: Array, labels: Array, backend: Backend, *, seed: int = 0) -> dict[str, float]:
    """Check dlogits of softmax_cross_entropy (arrays of ``backend``).

    Parameters
    ----------
    logits : array
        (N, C) scores on ``backend``.
    labels : array
        (N,) integer labels on ``backend``.
    backend : Backend
        The backend both arrays belong to.
    seed : int, default 0
        Seed of the random direction.

    Returns
    -------
    dict of str to float
        The relative error of ``"logits"`` and of ``"direction"``.
    """
    with backend.context():
        _, dlogits = softmax_cross_entropy(logits, labels, backend.xp)

    def f() -> float:
        return float(softmax_cross_entropy(logits, labels, backend.xp)[0])

    return check_arrays(f, {"logits": logits}, {"logits": dlogits}, backend, seed=seed)


def _kink_free_input(backend: Backend, shape: tuple[int, int], seed: int) -> Array:
    """Normal input pushed away from 0 so no kink (ReLU, LeakyReLU) lies within the stencil."""
    rng = backend.rng(seed)
    x = rng.standard_normal(shape)
    return backend.asarray(x + 0.1 * (2.0 * (x > 0) - 1.0), dtype="float64")


def run_all(spec: str | Backend = "cpu", *, seed: int = 0, reg: float = 1e-2) -> list[dict[str, Any]]:
    """Gradient-check the loss, Linear, every activation, a small MLP per activation and a mixed one, in float64.

    What ``xpmlp gradcheck`` runs and prints.

    Parameters
    ----------
    spec : str or Backend, default "cpu"
        The device to check on.
    seed : int, default 0
        Seed of the inputs, labels and sampled entries.
    reg : float, default 1e-2
        L2 strength used in the model checks.

    Returns
    -------
    list of dict
        One row per check: ``{"check": name, "max_error": float, "errors": {array: error}}``.
    """
    backend = get_backend(spec, "float64")
    rows = []
    rng = backend.rng(seed)
    logits = backend.asarray(rng.standard_normal((6, 5)) * 3.0, dtype="float64")
    labels = backend.asarray(rng.integers(0, 5, 6))
    rows.append(("softmax_cross_entropy", check_loss(logits, labels, backend, seed=seed)))
    linear = Linear(7, 5, backend, init="xavier", rng=rng)
    rows.append(("Linear(7, 5)", check_layer(linear, _kink_free_input(backend, (4, 7), seed), seed=seed)))
    names = [n for n in ACTIVATIONS if n != "silu"]
    for name in names:
        layer = get_activation(name, backend)
        rows.append((name, check_layer(layer, _kink_free_input(backend, (4, 6), seed), seed=seed)))
    dropout = Dropout(backend, 0.3)
    dropout.fix_mask(backend.asarray(backend.rng(seed + 4).random((4, 6)) >= 0.3))
    rows.append(("dropout (fixed mask)", check_layer(dropout, _kink_free_input(backend, (4, 6), seed), seed=seed)))
    nets = [([6, 8, 7, 4], name) for name in names] + [([6, 8, 7, 5, 4], ["tanh", "relu", "sigmoid"])]
    for sizes, activation in nets:  # one activation everywhere, then one per hidden layer
        model = MLP(sizes, activation=activation, backend=backend, dtype="float64", seed=seed)
        X = _kink_free_input(backend, (5, 6), seed + 2)
        y = backend.asarray(backend.rng(seed + 3).integers(0, 4, 5))
        rows.append((f"MLP{sizes} {activation_label(activation)} + L2", check_model(model, X, y, reg, seed=seed)))
    rows += trainer_path_checks(backend, seed=seed, reg=reg)
    return [{"check": c, "max_error": max(e.values()), "errors": e} for c, e in rows]


# -- the Trainer's own path: dropout, augmentation, the fused step ----------------------------------------

def fix_dropout_masks(model: MLP, batch: int, p_keep_seed: int) -> int:
    """Pin every Dropout layer of ``model`` to a seeded (batch, width) mask.

    Parameters
    ----------
    model : MLP
        A model with Dropout layers.
    batch : int
        The number of rows of the batch the masks are for.
    p_keep_seed : int
        Seed of the first mask (the next layers take the seeds after it).

    Returns
    -------
    int
        How many Dropout layers were pinned.
    """
    width, pinned = model.sizes[0], 0
    for layer in model.layers:
        if isinstance(layer, Linear):
            width = layer.out_features
        elif isinstance(layer, Dropout):
            keep = model.backend.rng(p_keep_seed + pinned).random((batch, width)) >= layer.p
            layer.fix_mask(model.backend.asarray(keep))
            pinned += 1
    return pinned


def check_fused_update(backend: Backend, *, seed: int = 0, reg: float = 1e-2, steps: int = 3,
                       optimizer: str = "momentum") -> dict[str, float]:
    """The fused training step against the unfused one, from the same float64 model and batches.

    Two copies of one model take ``steps`` steps: one through ``MLP.fused_step`` (the update folded
    into each weight gradient's GEMM, as the Trainer trains), one through ``loss`` then
    ``optimizer.step`` on the analytic gradient. Per parameter: max|W_fused − W_plain| relative to
    max|W_plain − W_start| (the size of the update itself), so 0 means the same update.

    Parameters
    ----------
    backend : Backend
        Where both copies train (float64).
    seed : int, default 0
        Seed of the model and the batch.
    reg : float, default 1e-2
        λ, the L2 strength (folded into the fused GEMM's β).
    steps : int, default 3
        Steps each copy takes.
    optimizer : str, default "momentum"
        An SGD-family optimizer (``sgd``, ``momentum``, ``nesterov``).

    Returns
    -------
    dict of str to float
        Per parameter, the relative difference of the two updates.
    """
    from .optim import make_optimizer

    X = _kink_free_input(backend, (8, 6), seed + 5)
    y = backend.asarray(backend.rng(seed + 6).integers(0, 4, 8))
    fused, plain = (MLP([6, 8, 7, 4], activation="tanh", backend=backend, dtype="float64", seed=seed)
                    for _ in range(2))
    start = plain.state_dict()
    opts = [make_optimizer(optimizer, 0.1, momentum=0.9, backend=backend) for _ in range(2)]
    with backend.context():
        for _ in range(steps):
            fused.fused_step(X, y, reg, opts[0])
            _, grads = plain.loss(X, y, reg, check=False)
            opts[1].step(plain.params, grads)
    a, b = fused.state_dict(), plain.state_dict()
    return {k: float(abs(a[k] - b[k]).max() / max(float(abs(b[k] - start[k]).max()), 1e-300)) for k in b}


def trainer_path_checks(backend: Backend, *, seed: int = 0, reg: float = 1e-2) -> list[tuple[str, dict[str, float]]]:
    """The checks of what the Trainer runs and ``model.loss`` alone does not show.

    * a model with dropout, every mask pinned (the gradient through the masks);
    * a model on a batch the Trainer's augmentation drew (flips and shifts, on the device);
    * the fused step's update against the unfused update from the analytic gradient.

    Parameters
    ----------
    backend : Backend
        Where the checks run (float64).
    seed : int, default 0
        Seed of the models, batches, masks and augmentation draws.
    reg : float, default 1e-2
        λ, the L2 strength.

    Returns
    -------
    list of (str, dict)
        One ``(check name, errors per parameter)`` per check, as :func:`run_all` lists them.
    """
    from .augment import Augmenter, parse_augment

    rows = []
    model = MLP([6, 8, 7, 4], activation="tanh", backend=backend, dtype="float64", seed=seed, dropout=0.3)
    X = _kink_free_input(backend, (5, 6), seed + 2)
    y = backend.asarray(backend.rng(seed + 3).integers(0, 4, 5))
    fix_dropout_masks(model, 5, seed + 7)
    rows.append(("MLP[6, 8, 7, 4] tanh + dropout 0.3 (fixed masks) + L2", check_model(model, X, y, reg, seed=seed)))
    augment = Augmenter(parse_augment("flip,shift:1"), (4, 4, 1), backend, seed)
    images = _kink_free_input(backend, (6, 16), seed + 8)
    model = MLP([16, 8, 4], activation="tanh", backend=backend, dtype="float64", seed=seed)
    labels = backend.asarray(backend.rng(seed + 9).integers(0, 4, 6))
    with backend.context():
        batch = augment(images, step=3)
        moved = float(backend.xp.max(backend.xp.abs(batch - images)))
    errors = check_model(model, batch, labels, reg, seed=seed)
    errors["augmented"] = 0.0 if moved > 0 else 1.0  # an augmentation that changed nothing proves nothing
    rows.append(("MLP[16, 8, 4] tanh on an augmented batch (flip, shift:1) + L2", errors))
    rows.append(("fused momentum step vs unfused update (3 steps)", check_fused_update(backend, seed=seed, reg=reg)))
    return rows
