"""Optimizers: SGD, momentum, Nesterov, Adam, AdamW (learning-rate schedules: ``xpmlp.schedules``).

Every optimizer updates a dict of parameter arrays in place from a dict of gradient
arrays with the same keys::

    opt = make_optimizer("nesterov", lr=0.01, momentum=0.9)
    for it in range(iters):
        ...                                  # forward / backward fill grads
        opt.lr = schedule(it / iters_per_epoch)
        opt.step(model.params, model.grads)  # params updated on the device, in place

The update runs on the device with the Array API's in-place operators; nothing in
``step`` reads a device value back into Python (no host synchronisation), and all
hyper-parameters are plain Python floats, so float32 parameters stay float32 on
every backend (a NumPy float64 scalar would promote a float32 temporary, and
array-api-strict refuses to mix with one at all).

**The gradient arrays are scratch space**: ``step`` overwrites ``grads[k]`` to avoid
temporaries. The caller computes fresh gradients before every step anyway.

An optimizer computes on one Backend, given when it is built
(``make_optimizer(..., backend=model.backend)``) or bound later with ``opt.bind(backend)``
(the Trainer binds its model's); ``step`` runs inside ``backend.context()``.
Per-parameter state (velocity, Adam moments) is created lazily with
``xp.zeros_like(param)`` -- same device, same dtype -- and kept in
``opt.state[slot][param_name]``. ``state_dict(to_numpy)`` / ``load_state_dict(state,
asarray)`` move it to and from the host (``backend.to_numpy``, ``backend.asarray``).
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

from .argchecks import _check_eps, _check_unit, _check_weight_decay, check_lr, check_number  # noqa: F401
from .backend import Backend
from .backend import to_numpy as any_to_numpy
from .errors import InputError

Array = Any  # an array of any Array API library (NumPy, CuPy, torch.Tensor, array-api-strict)

OPTIMIZER_NAMES = ("sgd", "momentum", "nesterov", "adam", "adamw")


# -- optimizers -------------------------------------------------------------------------

class Optimizer:
    """Base class: the step loop, lazily created per-parameter state, and (de)serialisation.

    Subclasses set ``family`` and ``slots`` (the names of their per-parameter state
    arrays), implement ``_update`` (one parameter, in place), ``hyperparams`` and
    ``_set_hyperparams``.

    Parameters
    ----------
    lr : float
        The learning rate; a plain attribute the trainer sets before each step from a
        schedule. It is read with ``float()`` so a NumPy scalar cannot leak into the math.
    weight_decay : float, default 0.0
        The decay coefficient (0 = off); see the subclass for coupled/decoupled.

    Attributes
    ----------
    t : int
        The number of steps taken (Adam's bias correction uses it).
    state : dict
        ``state[slot][param_name]`` -> device array, created on first use.
    """

    family = "Optimizer"
    slots: tuple[str, ...] = ()

    def __init__(self, lr: float, weight_decay: float = 0.0) -> None:
        self.lr = check_lr(lr)
        self.weight_decay = _check_weight_decay(weight_decay)
        self.t = 0
        self.state: dict[str, dict[str, Array]] = {slot: {} for slot in self.slots}
        self.backend: Backend | None = None
        self.xp: Any = None
        # set by load_state_dict: the next step casts/moves loaded state to match the params
        self._align_pending = False

    learning_rate = property(lambda self: self.lr, lambda self, value: setattr(self, "lr", check_lr(value)),
                             doc="``lr`` by scikit-learn's name (``estimator._optimizer.learning_rate``).")

    def bind(self, backend: Backend) -> Optimizer:
        """Compute on ``backend`` from now on (state already held is moved at the next step); returns self."""
        if not isinstance(backend, Backend):
            raise InputError(f"an optimizer binds to a Backend, got {backend!r}; pass model.backend")
        if backend != self.backend:
            self.backend, self.xp = backend, backend.xp
            self._align_pending = self._align_pending or any(self.state.values())
        return self

    # -- the hot path -----------------------------------------------------------
    def step(self, params: Mapping[str, Array], grads: Mapping[str, Array]) -> None:
        """Update every ``params[k]`` in place from ``grads[k]``; ``grads[k]`` is overwritten.

        Raises:
            InputError: a parameter has no gradient, or one of a different shape (an
                in-place update would otherwise broadcast it silently).
        """
        # Shape checks compare Python tuples only: no device work, no synchronisation.
        for name, p in params.items():
            g = grads.get(name)
            if g is None:
                raise InputError(f"no gradient for parameter {name!r}; run backward() before step() "
                                 f"so that grads has the same keys as params")
            if tuple(g.shape) != tuple(p.shape):
                raise InputError(f"gradient for {name!r} has shape {tuple(g.shape)} but the parameter has "
                                 f"{tuple(p.shape)}; pass the grads that belong to these params")
        if self.backend is None:
            raise InputError(f"{self!r} has no backend; build it with make_optimizer(..., backend=model.backend) "
                             "or call opt.bind(model.backend) first")
        with self.backend.context():
            if self._align_pending:
                self._align_state(params)
            self.t += 1
            lr = float(self.lr)  # a Python float mixes with float32 arrays without promoting them
            for name, p in params.items():
                self._update(name, p, grads[name], lr)

    def _update(self, name: str, p: Array, g: Array, lr: float) -> None:
        raise NotImplementedError

    #: Whether ``fused_weight_update`` exists: the update can be folded into the gradient's GEMM.
    can_fuse = False

    def begin_fused_step(self, params: Mapping[str, Array]) -> None:
        """Before the fused weight updates of a step: bound? loaded state aligned to the params?"""
        if self.backend is None:
            raise InputError(f"{self!r} has no backend; build it with make_optimizer(..., backend=model.backend) "
                             "or call opt.bind(model.backend) first")
        if self._align_pending:
            with self.backend.context():
                self._align_state(params)

    def fused_weight_update(self, name: str, W: Array, A: Array, B: Array, decay: float) -> None:
        """Update W in place from the factors of its gradient, dL/dW = Aᵀ·B + decay·W, without forming it."""
        raise NotImplementedError

    def _formed_weight_update(self, name: str, W: Array, g: Array, decay: float) -> None:
        """W's fused update from g = AᵀB formed by the caller (A sparse): ``step``'s update of g + decay·W."""
        self._update(name, W, self.backend.axpy_(g, decay, W) if decay else g, float(self.lr))

    def _context(self) -> contextlib.AbstractContextManager[Any]:
        """The bound backend's device context (nothing to enter before binding)."""
        return self.backend.context() if self.backend is not None else contextlib.nullcontext()

    def _slot(self, slot: str, name: str, p: Array) -> Array:
        """The state array ``slot`` of parameter ``name``, zeros on first use (same device, dtype)."""
        table = self.state[slot]
        s = table.get(name)
        if s is None:
            s = table[name] = self.xp.zeros_like(p)
        return s

    def _align_state(self, params: Mapping[str, Array]) -> None:
        """After a load: give each state array its parameter's dtype and device, check shapes."""
        for slot, table in self.state.items():
            for name, s in list(table.items()):
                p = params.get(name)
                if p is None:
                    continue
                if tuple(s.shape) != tuple(p.shape):
                    raise InputError(f"optimizer state {slot}[{name!r}] has shape {tuple(s.shape)} but the "
                                     f"parameter has {tuple(p.shape)}; the state belongs to another model")
                if not self.backend.owns(s):  # state loaded or built on another device or library
                    s = self.backend.asarray(any_to_numpy(s))
                if s.dtype != p.dtype:
                    s = self.xp.astype(s, p.dtype)
                table[name] = s
        self._align_pending = False

    # -- identity and hyper-parameters ------------------------------------------
    @property
    def name(self) -> str:
        """The ``make_optimizer`` name that builds this kind of optimizer."""
        raise NotImplementedError

    def hyperparams(self) -> dict[str, Any]:
        """The hyper-parameters as plain Python scalars (what ``make_optimizer`` takes)."""
        return {"lr": self.lr, "weight_decay": self.weight_decay}

    def _set_hyperparams(self, hp: Mapping[str, Any]) -> None:
        # validate everything before assigning anything, so a bad dict changes nothing
        lr, wd = check_lr(hp["lr"]), _check_weight_decay(hp["weight_decay"])
        self.lr, self.weight_decay = lr, wd

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparams().items())
        return f"{type(self).__name__}({args})"

    # -- serialisation -------------------------------------------------------------
    def state_dict(self, to_numpy: Callable[[Array], Any] | None = None) -> dict[str, Any]:
        """A host snapshot: ``{"type", "hyperparams", "step", "state"}``.

        Args:
            to_numpy: device -> host NumPy conversion (default: the bound backend's ``to_numpy``).

        Array state comes back as host NumPy arrays (copies: later steps do not change
        them, whatever ``to_numpy`` does); everything else is a plain Python scalar.
        """
        convert = to_numpy or (self.backend.to_numpy if self.backend is not None else any_to_numpy)
        state: dict[str, dict[str, Any]] = {}
        with self._context():
            for slot, table in self.state.items():
                # copy first (x * 1.0 is exact), so the snapshot never aliases live state
                state[slot] = {name: convert(s * 1.0) for name, s in table.items()}
        return {
            "type": self.family,
            "hyperparams": dict(self.hyperparams()),
            "step": int(self.t),
            "state": state,
        }

    def load_state_dict(self, state: Mapping[str, Any], asarray: Callable[[Any], Array]) -> None:
        """Restore hyper-parameters, step count and array state from ``state_dict``'s output.

        Args:
            state: a dict made by ``state_dict`` of the same optimizer family.
            asarray: host -> device conversion, e.g. ``backend.asarray``. The arrays are
                copied, so stepping never writes into ``state``. On the first step after
                loading, each state array is cast/moved to its parameter's dtype and device
                (a no-op when ``asarray`` already gave them: float64 state then round-trips
                bit for bit).

        Raises:
            InputError: ``state`` is not an optimizer state dict or belongs to another family.
        """
        if not isinstance(state, Mapping) or not {"type", "hyperparams", "step", "state"} <= set(state):
            raise InputError("not an optimizer state dict (needs keys type, hyperparams, step, state); "
                             "pass what Optimizer.state_dict() returned")
        if state["type"] != self.family:
            raise InputError(f"optimizer state is for {state['type']!r} but this optimizer is {self.family!r}; "
                             f"build the optimizer the checkpoint was saved with")
        step = state["step"]
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise InputError(f"optimizer state step must be an integer >= 0, got {step!r}; the state dict is corrupt")
        arrays = state["state"]
        if not isinstance(arrays, Mapping) or not all(isinstance(t, Mapping) for t in arrays.values()):
            raise InputError("optimizer state['state'] must map slot -> {parameter name: array}; "
                             "pass what Optimizer.state_dict() returned")
        old_hp, old_slots = self.hyperparams(), self.slots
        try:
            self._set_hyperparams(state["hyperparams"])  # validates; SGD's slots follow its momentum
        except KeyError as exc:
            raise InputError(f"optimizer state has no hyper-parameter {exc}; "
                             f"pass what Optimizer.state_dict() returned") from None
        unknown = set(arrays) - set(self.slots)
        if unknown:
            self._set_hyperparams(old_hp)  # leave this optimizer as it was
            self.slots = old_slots
            raise InputError(f"optimizer state has slots {sorted(unknown)} that {self!r} does not use; "
                             f"the state dict is corrupt or from another optimizer")
        self.t = int(step)
        new: dict[str, dict[str, Array]] = {slot: {} for slot in self.slots}
        with self._context():
            for slot, table in arrays.items():
                for name, host in table.items():
                    new[slot][name] = asarray(host) * 1.0  # a copy, whatever asarray does
        self.state = new
        self._align_pending = True


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with classic or Nesterov momentum.

    With ``g`` the gradient (plus ``weight_decay * p`` when weight decay is on: coupled L2,
    the same as adding ``wd/2 * ||p||^2`` to the loss)::

        plain     (momentum = 0):  p <- p - lr * g
        classic   (momentum = mu): v <- mu * v - lr * g;  p <- p + v
        nesterov  (momentum = mu): v_prev <- v;  v <- mu * v - lr * g;
                                   p <- p - mu * v_prev + (1 + mu) * v

    The Nesterov form is the one of Sutskever et al. (2013) as rewritten in cs231n, which
    keeps the parameters at the "looked-ahead" point; it is computed as the algebraically
    identical ``p <- p + mu * v - lr * g`` (one temporary instead of three). The velocity
    starts at zero.

    Note that the model may already apply an L2 penalty through its loss: leave
    ``weight_decay`` at 0 then, or the decay is applied twice.

    Parameters
    ----------
    lr : float
        Learning rate (> 0).
    momentum : float, default 0.0
        mu in [0, 1]; 0 is plain SGD.
    nesterov : bool, default False
        Nesterov momentum instead of classic (needs ``momentum > 0``).
    weight_decay : float, default 0.0
        Coupled L2 decay added to the gradient.

    Raises
    ------
    InputError
        A value out of its range.

    Examples
    --------
    >>> from xpmlp.optim import SGD
    >>> SGD(lr=0.1, momentum=0.9, nesterov=True).name
    'nesterov'
    """

    family = "SGD"

    def __init__(self, lr: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0) -> None:
        self.momentum = _check_unit("momentum", momentum, "0.9", closed=True)
        self.nesterov = self._check_nesterov(nesterov, self.momentum)
        self.slots = ("velocity",) if self.momentum > 0.0 else ()
        super().__init__(lr, weight_decay)

    @staticmethod
    def _check_nesterov(nesterov: Any, momentum: float) -> bool:
        if not isinstance(nesterov, bool):
            raise InputError(f"nesterov must be True or False, got {nesterov!r}")
        if nesterov and momentum == 0.0:
            raise InputError("nesterov=True needs momentum > 0; pass momentum=0.9 or use plain SGD")
        return nesterov

    def _update(self, name: str, p: Array, g: Array, lr: float) -> None:
        if self.weight_decay:
            g += self.weight_decay * p
        g *= lr  # g is scratch from here on: it holds lr * g
        if self.momentum == 0.0:
            p -= g
            return
        mu = self.momentum
        v = self._slot("velocity", name, p)
        v *= mu
        v -= g  # v = mu * v_prev - lr * g
        if self.nesterov:
            # p - mu*v_prev + (1+mu)*v == p + mu*v - lr*g  (substitute v_prev = (v + lr*g) / mu)
            p -= g
            p += mu * v
        else:
            p += v

    can_fuse = True

    def fused_weight_update(self, name: str, W: Array, A: Array, B: Array, decay: float) -> None:
        """The update of ``_update`` with g = Aᵀ·B + (decay + weight_decay)·W folded into one GEMM.

        ``backend.gemm_update(C, A, B, α, β)`` computes C ← β·C + α·Aᵀ·B in place, so::

            plain      W ← (1 − lr·λ)·W − lr·AᵀB                          one GEMM
            classic    V ← μ·V − lr·AᵀB;  V ← V − lr·λ·W;  W ← W + V       GEMM + two axpys
            nesterov   W ← W − μ·V;  V ← μ·V − lr·AᵀB − lr·λ·W_old;  W ← W + (1 + μ)·V

        The last line is the identity W + μ·V_new − lr·g = W − μ·V_old + (1 + μ)·V_new.
        ``A`` None: B is AᵀB already formed (a sparse input), taken by ``_update``'s path.
        Call ``begin_fused_step`` first and ``step`` for the other parameters after (it counts the step).
        """
        if A is None:  # B is AᵀB, formed from a sparse A
            return self._formed_weight_update(name, W, B, decay)
        backend, lr = self.backend, float(self.lr)
        wd = decay + self.weight_decay
        if self.momentum == 0.0:
            backend.gemm_update(W, A, B, -lr, 1.0 - lr * wd)
            return
        mu = self.momentum
        V = self._slot("velocity", name, W)
        if self.nesterov:
            self._fused_nesterov(W, V, A, B, lr, mu, wd)
            return
        backend.gemm_update(V, A, B, -lr, mu)
        if wd:
            backend.axpy_(V, -lr * wd, W)
        backend.axpy_(W, 1.0, V)

    def _fused_nesterov(self, W: Array, V: Array, A: Array, B: Array, lr: float, mu: float, wd: float) -> None:
        """Nesterov's fused update in three passes over W and V plus the GEMM, no temporary.

        With W₁ = W − μ·V (the first pass) the decay term −lr·λ·W of V's update is
        −lr·λ·(W₁ + μ·V), so V_new = β·(V + c·W₁) − lr·AᵀB with β = μ·(1 − lr·λ) and
        c = −lr·λ / β: one axpy into V, then the GEMM with that β. It is taken while
        lr·λ ≤ μ/2, so that |c| ≤ 1 and nothing is amplified (any usual setting: lr·λ is ~1e-5
        against μ ~ 0.9); beyond it (a strong decay, a tiny momentum) c could grow without bound,
        and the direct form keeps W·lr·λ aside in a temporary instead.
        """
        backend, decay = self.backend, lr * wd
        if decay > 0.5 * mu:
            decay_step = W * decay  # from the weights before this step
            backend.axpy_(W, -mu, V)
            backend.gemm_update(V, A, B, -lr, mu)
            V -= decay_step
        else:
            backend.axpy_(W, -mu, V)
            beta = mu * (1.0 - decay)
            if decay:
                backend.axpy_(V, -decay / beta, W)
            backend.gemm_update(V, A, B, -lr, beta)
        backend.axpy_(W, 1.0 + mu, V)

    @property
    def name(self) -> str:
        if self.momentum == 0.0:
            return "sgd"
        return "nesterov" if self.nesterov else "momentum"

    def hyperparams(self) -> dict[str, Any]:
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}

    def _set_hyperparams(self, hp: Mapping[str, Any]) -> None:
        momentum = _check_unit("momentum", hp["momentum"], "0.9", closed=True)
        nesterov = self._check_nesterov(hp["nesterov"], momentum)
        super()._set_hyperparams(hp)
        self.momentum, self.nesterov = momentum, nesterov
        self.slots = ("velocity",) if momentum > 0.0 else ()


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), with coupled L2 or decoupled (AdamW) weight decay.

    At step ``t`` (1, 2, ...) with gradient ``g``::

        decoupled=False:  g <- g + wd * p                     (L2 folded into the gradient)
        decoupled=True:   p <- p - lr * wd * p                (AdamW, Loshchilov & Hutter)
        m <- beta1 * m + (1 - beta1) * g
        v <- beta2 * v + (1 - beta2) * g^2
        p <- p - lr * m_hat / (sqrt(v_hat) + eps),  m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t)

    As in PyTorch, ``eps`` is added to ``sqrt(v_hat)``. The last line is computed as the
    identical ``p -= (lr * sqrt(c2) / c1) * m / (sqrt(v) + eps * sqrt(c2))`` with
    ``c1 = 1 - beta1^t`` and ``c2 = 1 - beta2^t`` (Python floats), so the bias corrections
    cost no array passes. Moments start at zero.

    Parameters
    ----------
    lr : float, default 1e-3
        Learning rate (> 0).
    beta1 : float, default 0.9
        Decay of the first moment, in [0, 1).
    beta2 : float, default 0.999
        Decay of the second moment, in [0, 1).
    eps : float, default 1e-8
        Added to ``sqrt(v_hat)`` (> 0).
    weight_decay : float, default 0.0
        The decay coefficient wd (>= 0).
    decoupled : bool, default False
        AdamW's decoupled decay instead of L2 folded into the gradient.

    Raises
    ------
    InputError
        A value out of its range.
    """

    family = "Adam"
    slots = ("m", "v")

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled: bool = False) -> None:
        self.beta1 = _check_unit("beta1", beta1, "0.9")
        self.beta2 = _check_unit("beta2", beta2, "0.999")
        self.eps = _check_eps(eps)
        self.decoupled = self._check_decoupled(decoupled)
        super().__init__(lr, weight_decay)

    @staticmethod
    def _check_decoupled(decoupled: Any) -> bool:
        if not isinstance(decoupled, bool):
            raise InputError(f"decoupled must be True or False, got {decoupled!r}")
        return decoupled

    def _update(self, name: str, p: Array, g: Array, lr: float) -> None:
        b1, b2, wd = self.beta1, self.beta2, self.weight_decay
        if wd:
            if self.decoupled:
                p *= 1.0 - lr * wd  # p - lr*wd*p without a temporary
            else:
                g += wd * p
        m = self._slot("m", name, p)
        v = self._slot("v", name, p)
        # Moments without temporaries, using g as scratch:
        # m <- b1*m + (1-b1)*g, then g holds ((1-b1)*g)^2, rescaled to (1-b2)*g^2 for v.
        # (In-place passes over a scratch cost what one BLAS axpy does: measured, not changed.)
        m *= b1
        g *= 1.0 - b1
        m += g
        g *= g
        g *= (1.0 - b2) / ((1.0 - b1) * (1.0 - b1))
        v *= b2
        v += g
        c1 = 1.0 - b1 ** self.t
        root_c2 = math.sqrt(1.0 - b2 ** self.t)
        # Two temporaries (the sqrt, then the quotient): the Array API has no out=, and an
        # in-place reciprocal would add a rounding step.
        d = self.xp.sqrt(v)
        d += self.eps * root_c2
        d = m / d
        d *= lr * root_c2 / c1
        p -= d

    @property
    def name(self) -> str:
        return "adamw" if self.decoupled else "adam"

    def hyperparams(self) -> dict[str, Any]:
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "weight_decay": self.weight_decay, "decoupled": self.decoupled}

    def _set_hyperparams(self, hp: Mapping[str, Any]) -> None:
        beta1 = _check_unit("beta1", hp["beta1"], "0.9")
        beta2 = _check_unit("beta2", hp["beta2"], "0.999")
        eps = _check_eps(hp["eps"])
        decoupled = self._check_decoupled(hp["decoupled"])
        super()._set_hyperparams(hp)
        self.beta1, self.beta2, self.eps, self.decoupled = beta1, beta2, eps, decoupled


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p <- p - lr * wd * p`` before the Adam update.

    Parameters
    ----------
    lr : float, default 1e-3
        Learning rate (> 0).
    beta1 : float, default 0.9
        Decay of the first moment, in [0, 1).
    beta2 : float, default 0.999
        Decay of the second moment, in [0, 1).
    eps : float, default 1e-8
        Added to ``sqrt(v_hat)`` (> 0).
    weight_decay : float, default 0.01
        As in PyTorch's AdamW (at 0 it is plain Adam).
    """

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.01) -> None:
        super().__init__(lr, beta1, beta2, eps, weight_decay, decoupled=True)


_OPTIMIZER_KWARGS = {
    "sgd": {"weight_decay"},
    "momentum": {"weight_decay"},
    "nesterov": {"weight_decay"},
    "adam": {"beta1", "beta2", "eps", "weight_decay"},
    "adamw": {"beta1", "beta2", "eps", "weight_decay"},
}


def make_optimizer(name: str, lr: float, momentum: float = 0.9, *, backend: Backend | None = None,
                   **kw: Any) -> Optimizer:
    """Build an optimizer from its CLI name, bound to ``backend`` when given.

    Parameters
    ----------
    name : str
        ``"sgd"`` plain SGD; ``"momentum"`` / ``"nesterov"`` SGD with classic / Nesterov
        momentum ``momentum``; ``"adam"``; ``"adamw"``.
    lr : float
        Learning rate.
    momentum : float, default 0.9
        Momentum of ``"momentum"`` and ``"nesterov"``; ignored by the others.
    backend : Backend, optional
        Bind the optimizer to this backend (its ``xp`` and fused fast paths).
    **kw
        ``weight_decay`` (all) and ``beta1``, ``beta2``, ``eps`` (Adam, AdamW).

    Returns
    -------
    Optimizer
        The new optimizer.

    Raises
    ------
    InputError
        Unknown name, an argument the optimizer does not take, or a bad value.

    Examples
    --------
    >>> from xpmlp.optim import make_optimizer
    >>> make_optimizer("adamw", 1e-3).hyperparams()["weight_decay"]
    0.01
    """
    key = str(name).strip().lower()
    if key not in _OPTIMIZER_KWARGS:
        raise InputError(f"unknown optimizer {name!r}; use one of: {', '.join(OPTIMIZER_NAMES)}")
    extra = set(kw) - _OPTIMIZER_KWARGS[key]
    if extra:
        raise InputError(f"optimizer {key!r} does not take {', '.join(sorted(extra))}; "
                         f"it takes lr and {', '.join(sorted(_OPTIMIZER_KWARGS[key]))}")
    if key == "sgd":
        opt: Optimizer = SGD(lr, **kw)
    elif key in ("momentum", "nesterov"):
        opt = SGD(lr, momentum=momentum, nesterov=key == "nesterov", **kw)
    elif key == "adam":
        opt = Adam(lr, **kw)
    else:
        opt = AdamW(lr, **kw)
    return opt.bind(backend) if backend is not None else opt
