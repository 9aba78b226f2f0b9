"""scikit-learn's ``solver='lbfgs'`` on any device: full-batch L-BFGS over the flattened parameters.

scikit-learn packs its coefficients then its intercepts into one vector θ and hands
``(loss(θ), ∇loss(θ))`` to SciPy's L-BFGS-B; this does the same with :func:`xpmlp.lbfgs.minimize_lbfgs`,
whose iterates stay on the device: θ = (W₁, ..., W_L, b₁, ..., b_L) flattened in that order, the
loss over the whole training set with the L2 term α/(2 Σᵢ wᵢ)·Σₖ‖Wₖ‖²_F. Each loss evaluation
reads one small vector to the host (the line search's decision), nothing else.

``max_iter`` counts iterations, ``max_fun`` loss evaluations, ``tol`` is the gradient tolerance
(every entry of the gradient ∂L/∂θ within ±tol), as scikit-learn's; a run that stops at a limit
warns ``ConvergenceWarning``.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np

from ..errors import InputError, NonFiniteWeightsError
from ..losses import l2_value, squared_error
from ..model import MLP
from .hooks import user_stacklevel
from .params import Settings

Array = Any


def parameter_layout(model: MLP) -> list[tuple[str, int, int, tuple[int, ...]]]:
    """Where each parameter lies in θ: the weights W₁..W_L, then the biases b₁..b_L (scikit-learn's order).

    Parameters
    ----------
    model : MLP
        The network.

    Returns
    -------
    list of tuple
        ``(name, start, stop, shape)`` per parameter: θ[start:stop] reshaped to ``shape``.
    """
    params = model.params
    names = sorted((k for k in params if k.startswith("W")), key=lambda k: int(k[1:]))
    names += sorted((k for k in params if k.startswith("b")), key=lambda k: int(k[1:]))
    layout, start = [], 0
    for name in names:
        shape = tuple(int(d) for d in params[name].shape)
        size = 1
        for d in shape:
            size *= d
        layout.append((name, start, start + size, shape))
        start += size
    return layout


def pack(model: MLP, layout: list[tuple[str, int, int, tuple[int, ...]]]) -> Array:
    """θ: the model's parameters flattened in ``layout``'s order.

    Parameters
    ----------
    model : MLP
        The network.
    layout : list of tuple
        :func:`parameter_layout`'s answer.

    Returns
    -------
    array
        A new 1-D device vector.
    """
    xp = model.xp
    return xp.concat([xp.reshape(model.params[name], (-1,)) for name, *_ in layout], axis=0)


def unpack(model: MLP, theta: Array, layout: list[tuple[str, int, int, tuple[int, ...]]], copy: bool = False) -> None:
    """Set the model's parameters from θ.

    Parameters
    ----------
    model : MLP
        The network.
    theta : array
        1-D device vector laid out as ``layout``.
    layout : list of tuple
        :func:`parameter_layout`'s answer.
    copy : bool, default False
        Copy each parameter out of θ (else the parameters are views of it: no copy per evaluation).
    """
    xp = model.xp
    for name, start, stop, shape in layout:
        value = xp.reshape(theta[start:stop], shape)
        model.set_param(name, value * 1.0 if copy else value)


class LbfgsLoop:
    """``_fit_lbfgs``; mixed into the estimators, whose fitted attributes it sets."""

    out_activation_: str
    n_outputs_: int

    def _fit_lbfgs(self, model: MLP, data: Any, s: Settings) -> None:
        """Minimise the full-batch loss from the current weights; sets ``n_iter_`` and ``loss_``."""
        from ..lbfgs import minimize_lbfgs

        backend, xp = model.backend, model.xp
        n = int(data.X.shape[0])
        reg = s.alpha / (n if data.w_host is None else float(data.w_host.sum()))
        # the objective L-BFGS sees must be the one whose gradient it gets: the squared error summed
        # over outputs (scikit-learn reports its mean over outputs; loss_ is converted below)
        identity = self.out_activation_ == "identity"
        loss_fn = squared_error if identity else self._loss()
        layout = parameter_layout(model)

        def fun_and_grad(theta: Array) -> tuple[Array, Array]:
            unpack(model, theta, layout)
            loss, grads = model.loss(data.X, data.y, reg, check=False, sample_weight=data.w, loss_fn=loss_fn)
            return loss, xp.concat([xp.reshape(grads[name], (-1,)) for name, *_ in layout], axis=0)

        with backend.context():
            start = pack(model, layout)
            try:
                result = minimize_lbfgs(fun_and_grad, start, xp, max_iter=s.max_iter, max_fun=s.max_fun, gtol=s.tol,
                                        to_host=backend.to_numpy)
            except InputError as error:
                if "not finite at x0" not in str(error):
                    raise
                raise NonFiniteWeightsError("Solver produced non-finite parameter weights. The input data may contain "
                                            "large values and need to be preprocessed: the loss is not finite at the "
                                            "initial weights; standardise X (e.g. StandardScaler)") from None
            except KeyboardInterrupt:
                # the parameters are views of a trial point: put the start back, then let Ctrl-C stop
                # the caller too, as scikit-learn's L-BFGS does (a search must not score a half fit)
                unpack(model, start, layout, copy=True)
                self.n_iter_ = 0
                raise
            unpack(model, result.x, layout, copy=True)
            loss = result.fun
            if identity and self.n_outputs_ > 1:
                penalty = float(l2_value([model.params[k] for k, *_ in layout if k.startswith("W")], reg, xp)) \
                    if reg else 0.0
                loss = (loss - penalty) / self.n_outputs_ + penalty
        self.n_iter_ = min(result.n_iter, s.max_iter)
        self.loss_ = float(loss)
        self._lbfgs_result = dataclasses.replace(result, x=None)  # the counts; the weights are the model's
        if self.verbose:
            print(f"L-BFGS: {result.n_iter} iterations, {result.n_fun} loss evaluations, loss = {self.loss_:.8f}; "
                  f"{result.message}")
        if result.status != 0:
            from sklearn.exceptions import ConvergenceWarning

            advice = ("\nIncrease the number of iterations to improve the convergence (max_iter="
                      f"{s.max_iter})." if result.n_iter >= s.max_iter else "")
            warnings.warn(f"lbfgs failed to converge after {self.n_iter_} iteration(s) (status={result.status}):\n"
                          f"{result.message}\n{advice}", ConvergenceWarning, stacklevel=user_stacklevel())


    def _loss_grad_lbfgs(self, packed_coef_inter: Any, X: Any, y: Any, sample_weight: Any = None,
                         *buffers: Any) -> tuple[float, Any]:
        """scikit-learn's private objective of L-BFGS: the loss and its gradient at a flattened θ (host).

        θ is laid out as :func:`parameter_layout` (scikit-learn's order); y is the encoded target
        scikit-learn passes (a label-indicator matrix for classifiers). The network's own weights
        are left as they were. The trailing work buffers of scikit-learn's signature are ignored.
        """
        model = self._get_model()
        backend, xp = model.backend, model.xp
        layout = parameter_layout(model)
        targets = np.asarray(y, dtype=np.float64)
        targets = targets.reshape(len(targets), -1)
        if self.out_activation_ == "softmax":
            targets = targets.argmax(axis=1).astype(np.int64)
        n = targets.shape[0]
        reg = self.alpha / (n if sample_weight is None else float(np.sum(sample_weight)))
        loss_fn = squared_error if self.out_activation_ == "identity" else self._loss()
        with backend.context():
            saved = pack(model, layout)
            unpack(model, backend.asarray(np.asarray(packed_coef_inter, dtype=np.float64)), layout, copy=True)
            try:
                w = None if sample_weight is None else backend.asarray(np.asarray(sample_weight, dtype=np.float64))
                loss, grads = model.loss(model.check_x(X), backend.asarray(targets), reg, check=False,
                                         sample_weight=w, loss_fn=loss_fn)
                grad = xp.concat([xp.reshape(grads[name], (-1,)) for name, *_ in layout], axis=0)
                return float(loss), backend.to_numpy(grad)
            finally:
                unpack(model, saved, layout)
