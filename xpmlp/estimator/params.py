"""The estimator's constructor parameters, checked at fit time and turned into xpmlp's settings.

scikit-learn estimators store their parameters untouched in ``__init__`` and validate them in
``fit``; :func:`resolve` does that validation, one line per problem naming the fix.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ParameterError
from ..layers import ACTIVATIONS

SKLEARN_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
#: What a True/False parameter may be: NumPy's booleans too (a grid of np.array([True, False])).
FLAG_TYPES = (bool, np.bool_)
SOLVERS = ("lbfgs", "sgd", "adam", "momentum", "nesterov", "adamw")
LEARNING_RATES = ("constant", "invscaling", "adaptive")
DTYPES = ("auto", "float32", "float64")
ADAMW_DEFAULT_DECAY = 0.01  # PyTorch's and xpmlp's AdamW default


@dataclass(frozen=True)
class Settings:
    """The validated hyper-parameters of one fit, in xpmlp's terms."""

    hidden: tuple[int, ...]
    activation: str | list[str]  # an xpmlp activation name or "identity"; or one per hidden layer
    init_factor: float       # Glorot-uniform bound sqrt(factor / (fan_in + fan_out)): 2 for sigmoid, else 6
    optimizer: str           # xpmlp's optimizer name (make_optimizer), or "lbfgs" (full batch)
    sgd_family: bool         # learning_rate schedules apply (scikit-learn: solver='sgd' only)
    alpha: float
    batch_size: int | None   # None: 'auto' = min(200, n_samples)
    learning_rate: str
    lr: float
    power_t: float
    max_iter: int
    max_fun: int             # L-BFGS: loss evaluations at most
    tol: float
    momentum: float
    beta_1: float
    beta_2: float
    epsilon: float
    weight_decay: float
    n_iter_no_change: float
    validation_fraction: float
    dropout: float


def _number(name: str, value: Any, low: float, high: float = math.inf, *, low_open: bool = False,
            high_open: bool = False, example: str = "") -> float:
    """``value`` as a float inside the interval, else a ParameterError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ParameterError(f"{name} must be a number, got {value!r}"
                             + (f"; e.g. {name}={example}" if example else ""))
    x = float(value)
    if x < low or (low_open and x == low) or x > high or (high_open and x == high):
        left, right = "(" if low_open else "[", ")" if high_open or high == math.inf else "]"
        raise ParameterError(f"{name} must be in {left}{low:g}, {high:g}{right}, got {value!r}"
                         + (f"; e.g. {name}={example}" if example else ""))
    return x


def _integer(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ParameterError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _hidden(sizes: Any) -> tuple[int, ...]:
    items = list(sizes) if isinstance(sizes, Iterable) and not isinstance(sizes, str) else [sizes]
    for s in items:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1:
            raise ParameterError(f"hidden_layer_sizes must be positive integers, got {sizes!r}; "
                                 "e.g. (100,) or (256, 128)")
    return tuple(int(s) for s in items)


def _activation(name: Any, n_hidden: int) -> str | list[str]:
    """xpmlp's activation name for scikit-learn's (or xpmlp's) name, or a list: one per hidden layer."""
    if isinstance(name, (list, tuple)):
        if not name:
            raise ParameterError("activation is an empty list; give one name, e.g. 'relu', or one per hidden layer")
        if len(name) == 1:
            return _activation(name[0], n_hidden)
        if len(name) != n_hidden:
            raise ParameterError(f"activation lists {len(name)} names but hidden_layer_sizes has {n_hidden} layer"
                             f"{'s' * (n_hidden != 1)}; give one name, or one per hidden layer")
        return [_one_activation(a) for a in name]
    return _one_activation(name)


def _one_activation(name: Any) -> str:
    key = str(name).strip().lower().replace("-", "_")
    if key in SKLEARN_ACTIVATIONS:
        return SKLEARN_ACTIVATIONS[key]
    if key in ACTIVATIONS or key.startswith("leaky_relu:"):
        return key
    raise ParameterError(f"unknown activation {name!r}; use one of: {', '.join(SKLEARN_ACTIVATIONS)}, "
                     f"{', '.join(a for a in ACTIVATIONS if a not in SKLEARN_ACTIVATIONS.values())}")


def _optimizer(est: Any) -> tuple[str, bool]:
    """xpmlp's optimizer name for ``solver`` (and momentum, nesterovs_momentum); whether it is SGD-like."""
    solver = est.solver
    if solver not in SOLVERS:
        raise ParameterError(f"unknown solver {solver!r}; use one of: {', '.join(SOLVERS)}")
    if solver == "sgd":
        if not isinstance(est.nesterovs_momentum, FLAG_TYPES):
            raise ParameterError(f"nesterovs_momentum must be True or False, got {est.nesterovs_momentum!r}")
        if est.momentum == 0:
            return "sgd", True
        return ("nesterov" if est.nesterovs_momentum else "momentum"), True
    if solver == "lbfgs" and est.dropout:
        raise ParameterError(f"dropout={est.dropout!r} makes the loss random, which L-BFGS's line search cannot use; "
                         "use dropout=0.0 with solver='lbfgs', or a stochastic solver such as 'adam'")
    return solver, solver in ("momentum", "nesterov")


def _weight_decay(est: Any, optimizer: str) -> float:
    wd = est.weight_decay
    if optimizer == "adamw":
        return ADAMW_DEFAULT_DECAY if wd is None else _number("weight_decay", wd, 0.0, example="0.01")
    if wd is not None:
        raise ParameterError(f"weight_decay is AdamW's decoupled decay and needs solver='adamw' (got solver="
                         f"{est.solver!r}); for an L2 penalty with other solvers use alpha")
    return 0.0


def _flags(est: Any) -> None:
    for name in ("shuffle", "warm_start", "early_stopping"):
        if not isinstance(getattr(est, name), FLAG_TYPES):
            raise ParameterError(f"{name} must be True or False, got {getattr(est, name)!r}")
    if est.dtype not in DTYPES:
        raise ParameterError(f"dtype must be one of {', '.join(DTYPES)}, got {est.dtype!r}; "
                         "'auto' trains float32 input in float32 and anything else in float64")
    cw = est.class_weight
    if cw is not None and cw != "balanced" and not isinstance(cw, dict):
        raise ParameterError(f"class_weight must be None, 'balanced' or a dict label -> weight, got {cw!r}")
    if not isinstance(est.device, str):
        raise ParameterError(f"device must be a device spec string such as 'auto', 'cpu', 'cuda', 'torch', "
                         f"got {est.device!r}")


def _batch_size(value: Any) -> int | None:
    if isinstance(value, str) and value == "auto":
        return None
    return _integer("batch_size", value, 1)


def _patience(value: Any) -> float:
    if isinstance(value, float) and value == math.inf:
        return math.inf
    return float(_integer("n_iter_no_change", value, 1))


def resolve(est: Any) -> Settings:
    """Check every constructor parameter of ``est``; raise ParameterError (a ValueError and a
    TypeError) at the first bad one."""
    _flags(est)
    optimizer, sgd_family = _optimizer(est)
    if est.learning_rate not in LEARNING_RATES:
        raise ParameterError(f"unknown learning_rate {est.learning_rate!r}; use one of: {', '.join(LEARNING_RATES)}")
    hidden = _hidden(est.hidden_layer_sizes)
    activation = _activation(est.activation, len(hidden))
    early = est.early_stopping
    return Settings(
        hidden=hidden,
        activation=activation,
        init_factor=2.0 if activation == "sigmoid" else 6.0,
        optimizer=optimizer,
        sgd_family=sgd_family,
        alpha=_number("alpha", est.alpha, 0.0, example="1e-4"),
        batch_size=_batch_size(est.batch_size),
        learning_rate=est.learning_rate,
        lr=_number("learning_rate_init", est.learning_rate_init, 0.0, low_open=True, example="1e-3"),
        power_t=_number("power_t", est.power_t, 0.0, example="0.5"),
        max_iter=_integer("max_iter", est.max_iter, 1),
        max_fun=_integer("max_fun", est.max_fun, 1),
        tol=_number("tol", est.tol, 0.0, example="1e-4"),
        momentum=_number("momentum", est.momentum, 0.0, 1.0, example="0.9"),
        beta_1=_number("beta_1", est.beta_1, 0.0, 1.0, high_open=True, example="0.9"),
        beta_2=_number("beta_2", est.beta_2, 0.0, 1.0, high_open=True, example="0.999"),
        epsilon=_number("epsilon", est.epsilon, 0.0, low_open=True, example="1e-8"),
        weight_decay=_weight_decay(est, optimizer),
        n_iter_no_change=_patience(est.n_iter_no_change),
        validation_fraction=_number("validation_fraction", est.validation_fraction, 0.0, 1.0,
                                    low_open=early, high_open=True, example="0.1"),
        dropout=_number("dropout", est.dropout, 0.0, 1.0, high_open=True, example="0.2"),
    )
