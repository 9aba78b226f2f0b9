"""Full-batch L-BFGS on the Python Array API, with one stacked host read per function evaluation.

:func:`minimize_lbfgs` minimises a smooth ``f: R^n -> R`` from ``fun_and_grad(x) -> (f(x), ∇f(x))``
the way ``scipy.optimize.minimize(fun, x0, jac=True, method="L-BFGS-B", options={"maxiter": ...,
"maxfun": ..., "gtol": ..., "ftol": ...})`` does without bounds, but on the arrays' own device (NumPy,
CuPy, PyTorch, array-api-strict): the vectors never leave it, and SciPy is not needed.

**Direction.** The last ``history`` pairs ``s_i = x_{i+1} - x_i``, ``y_i = g_{i+1} - g_i`` stay on the
device; with ``rho_i = 1 / (s_i' y_i)`` and ``H_0 = gamma I``, ``gamma = s' y / y' y`` of the newest
pair, the two-loop recursion gives ``d = -H g`` without forming ``H``::

    q = g
    for i = newest ... oldest:   a_i = rho_i s_i' q;   q = q - a_i y_i
    r = gamma q
    for i = oldest ... newest:   b = rho_i y_i' r;     r = r + (a_i - b) s_i
    d = -r

A pair is not stored when ``s' y <= eps y' y`` (``eps`` of the dtype; the curvature safeguard). With
no pairs (the first iteration, or after a reset) ``d = -g`` and the first trial step is ``1 / ||g||``
(a step of length 1, as L-BFGS-B); else it is 1. A direction with ``g' d >= 0`` resets the history.

**Line search.** Along ``phi(alpha) = f(x + alpha d)`` the step satisfies the strong Wolfe conditions
(Nocedal & Wright, *Numerical Optimization*, 2nd ed., eq. 3.7)::

    phi(alpha) <= phi(0) + c1 alpha phi'(0)          (sufficient decrease)
    |phi'(alpha)| <= c2 |phi'(0)|                     (curvature)

with ``0 < c1 < c2 < 1``: :func:`strong_wolfe_line_search` (Algorithm 3.5: extrapolate until a bracket
is found) and :func:`zoom` (Algorithm 3.6: shrink the bracket by safeguarded cubic, then quadratic,
then bisection steps), at most ``max_linesearch`` evaluations in all. A non-finite ``f`` or gradient
counts as a step that is too long, so the search shrinks; a non-finite point is never accepted.

**Stopping** (scipy's L-BFGS-B rules, in its order). At ``x0``: status 0 when ``max|g| <= gtol``
(``n_iter`` 0). After iteration ``k -> k+1``: status 1 when ``n_iter >= max_iter``, or when ``n_fun >
max_fun``; status 0 when ``max|g| <= gtol`` or ``(f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= ftol``.
A failed line search with a history resets it and searches again along ``-g`` from the same point
(as L-BFGS-B); without one it ends with status 2 at the best point seen. A search starts only while
``n_fun <= max_fun`` (else status 1) and makes at most ``max_linesearch`` evaluations, so
``n_fun <= max_fun + max_linesearch``.

**Host reads.** Each evaluation reads exactly one small stacked vector through ``to_host`` (``f``,
``g' d``, ``max|g|``, ``g' g``, ``s' y``, ``y' y`` and ``g_k' d`` of the trial; ``f``, ``max|g|``, ``g' g`` at
``x0``), and nothing else reads: ``reads == n_fun``, and an iteration whose first trial step is
accepted costs one read. ``g_k' d`` comes with the first trial, so a rejected direction costs one.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .backend import to_numpy
from .errors import InputError

__all__ = ["minimize_lbfgs", "LbfgsResult", "strong_wolfe_line_search", "zoom", "LineSearch",
           "two_loop_direction", "cubic_minimizer", "quadratic_minimizer", "MESSAGES"]

#: :attr:`LbfgsResult.message` by reason, in scipy's L-BFGS-B words.
MESSAGES = {
    "gtol": "CONVERGENCE: NORM OF PROJECTED GRADIENT <= PGTOL",
    "ftol": "CONVERGENCE: RELATIVE REDUCTION OF F <= FACTR*EPSMCH",
    "max_iter": "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT",
    "max_fun": "STOP: TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT",
    "line_search": "ABNORMAL: LINE SEARCH FAILED",
}
_STATUS = {"gtol": 0, "ftol": 0, "max_iter": 1, "max_fun": 1, "line_search": 2}
_EPS64 = sys.float_info.epsilon

Array = Any
Triple = tuple[float, float, float]  # (alpha, phi(alpha), phi'(alpha))


@dataclass
class LbfgsResult:
    """What :func:`minimize_lbfgs` found.

    Attributes
    ----------
    x : array
        The final point: 1-D, of ``x0``'s namespace, device and dtype.
    fun : float
        ``f(x)``.
    n_iter : int
        Iterations completed (scipy's ``nit``).
    n_fun : int
        Evaluations of ``fun_and_grad`` (scipy's ``nfev``), the one at ``x0`` included.
    status : int
        0 converged, 1 iteration or evaluation limit reached, 2 line search failed.
    message : str
        Why it stopped, in scipy's words (one of :data:`MESSAGES`).
    reads : int
        Device-to-host reads made by the minimiser (``to_host`` calls): ``n_fun``.
    """

    x: Array
    fun: float
    n_iter: int
    n_fun: int
    status: int
    message: str
    reads: int


@dataclass
class LineSearch:
    """The outcome of a line search along one direction.

    Attributes
    ----------
    alpha : float
        The step that satisfies the strong Wolfe conditions; after a failure, the step of the lowest
        finite ``phi`` below ``phi(0)`` seen (0.0 when there was none).
    fun : float
        ``phi(alpha)``.
    slope : float
        ``phi'(alpha)`` (NaN after a failure with no better step).
    n_evals : int
        Evaluations of ``phi``, a ``first`` one given by the caller included.
    success : bool
        Whether ``alpha`` satisfies the strong Wolfe conditions.
    """

    alpha: float
    fun: float
    slope: float
    n_evals: int
    success: bool


class _Counted:
    """``phi`` counted, remembering the lowest finite value seen."""

    def __init__(self, phi: Callable[[float], tuple[float, float]], f0: float) -> None:
        self.phi, self.n, self.best = phi, 0, (0.0, f0, math.nan)

    def __call__(self, alpha: float, given: tuple[float, float] | None = None) -> tuple[float, float]:
        f, d = (float(v) for v in (given if given is not None else self.phi(alpha)))
        self.n += 1
        if _finite(f, d) and f < self.best[1]:
            self.best = (alpha, f, d)
        return f, d

    def failure(self, start: int) -> LineSearch:
        return LineSearch(*self.best, n_evals=self.n - start, success=False)


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def cubic_minimizer(a: float, fa: float, da: float, b: float, fb: float, db: float) -> float | None:
    """The local minimiser of the cubic through ``(a, fa)``, ``(b, fb)`` with slopes ``da``, ``db``.

    Nocedal & Wright eq. 3.59: ``d1 = da + db - 3 (fa - fb) / (a - b)``,
    ``d2 = sign(b - a) sqrt(d1^2 - da db)``, ``x = b - (b - a) (db + d2 - d1) / (db - da + 2 d2)``.

    Parameters
    ----------
    a, fa, da, b, fb, db : float
        Two distinct abscissae, the function's values and its derivatives there.

    Returns
    -------
    float or None
        The minimiser, or None when the cubic has none (or the numbers are not finite).
    """
    if a == b or not _finite(a, fa, da, b, fb, db):
        return None
    d1 = da + db - 3.0 * (fa - fb) / (a - b)
    disc = d1 * d1 - da * db
    if not (disc >= 0.0 and math.isfinite(disc)):
        return None
    d2 = math.copysign(math.sqrt(disc), b - a)
    den = db - da + 2.0 * d2
    x = b - (b - a) * (db + d2 - d1) / den if den != 0.0 else math.nan
    return x if math.isfinite(x) else None


def quadratic_minimizer(a: float, fa: float, da: float, b: float, fb: float) -> float | None:
    """The minimiser of the parabola through ``(a, fa)`` with slope ``da`` there, and ``(b, fb)``.

    Parameters
    ----------
    a, fa, da, b, fb : float
        Two distinct abscissae, the function's values there and its derivative at ``a``.

    Returns
    -------
    float or None
        ``a - da / (2 c)`` with ``c = (fb - fa - da (b - a)) / (b - a)^2``; None when ``c <= 0``
        (no minimum) or the numbers are not finite.
    """
    h = b - a
    c = (fb - fa - da * h) / (h * h) if h != 0.0 else math.nan
    x = a - da / (2.0 * c) if c > 0.0 and _finite(a, fa, da, b, fb, c) else math.nan
    return x if math.isfinite(x) else None


def _zoom_trial(lo: Triple, hi: Triple) -> float | None:
    """A step inside the bracket, kept 10% of its width away from either end; None when it collapsed."""
    a, b = sorted((lo[0], hi[0]))
    width = b - a
    if width <= 4.0 * _EPS64 * max(abs(b), _EPS64):
        return None
    inner_lo, inner_hi = a + 0.1 * width, b - 0.1 * width
    for guess in (cubic_minimizer(*lo, *hi), quadratic_minimizer(*lo, hi[0], hi[1])):
        if guess is not None and inner_lo <= guess <= inner_hi:
            return guess
    return 0.5 * (a + b)


def zoom(phi: Callable[[float], tuple[float, float]], lo: Triple, hi: Triple, f0: float, dphi0: float, *,
         c1: float = 1e-4, c2: float = 0.9, max_evals: int = 20) -> LineSearch:
    """Shrink a bracket to a step that satisfies the strong Wolfe conditions (N&W Algorithm 3.6).

    ``lo`` satisfies sufficient decrease with the lowest ``phi`` seen, and ``phi'(lo) (hi - lo) < 0``.
    A trial (cubic, else quadratic, else midpoint; 10% of the width from the ends) that fails sufficient
    decrease, is not below ``phi(lo)`` or is not finite becomes ``hi``; else it is accepted when
    ``|phi'(alpha)| <= c2 |phi'(0)|``, or becomes ``lo`` (the old ``lo`` becoming ``hi`` when
    ``phi'(alpha) (hi - lo) >= 0``).

    Parameters
    ----------
    phi : callable
        ``phi(alpha) -> (phi(alpha), phi'(alpha))``, host floats.
    lo, hi : tuple of float
        The bracket's ends as ``(alpha, phi(alpha), phi'(alpha))``.
    f0, dphi0 : float
        ``phi(0)`` and ``phi'(0) < 0``.
    c1, c2 : float, default 1e-4, 0.9
        The constants of the strong Wolfe conditions.
    max_evals : int, default 20
        The most evaluations of ``phi`` this call may make.

    Returns
    -------
    LineSearch
        The accepted step, or (``success`` False) the best one seen when the evaluations ran out or
        the bracket collapsed.
    """
    phi = phi if isinstance(phi, _Counted) else _Counted(phi, f0)
    start = phi.n
    while phi.n - start < max_evals:
        alpha = _zoom_trial(lo, hi)
        if alpha is None:
            break
        f, d = phi(alpha)
        if not _finite(f, d) or f > f0 + c1 * alpha * dphi0 or f >= lo[1]:
            hi = (alpha, f, d)
            continue
        if abs(d) <= -c2 * dphi0:
            return LineSearch(alpha, f, d, phi.n - start, True)
        if d * (hi[0] - lo[0]) >= 0.0:
            hi = lo
        lo = (alpha, f, d)
    return phi.failure(start)


def _extrapolate(prev: Triple, cur: Triple) -> float:
    """The next trial beyond ``cur``: the cubic's minimiser, kept in [cur + 1.1 w, cur + 4 w], w = cur - prev."""
    width = cur[0] - prev[0]
    low, high = cur[0] + 1.1 * width, cur[0] + 4.0 * width
    guess = cubic_minimizer(*prev, *cur)
    return high if guess is None else min(max(guess, low), high)


def _check_wolfe(c1: float, c2: float, max_evals: int) -> None:
    if not 0.0 < c1 < c2 < 1.0:
        raise InputError(f"the Wolfe constants need 0 < c1 < c2 < 1, got c1={c1}, c2={c2}; pass e.g. 1e-4 and 0.9")
    if not (isinstance(max_evals, int) and max_evals >= 1):
        raise InputError(f"max_linesearch must be an integer >= 1, got {max_evals!r}; pass e.g. 20")


def strong_wolfe_line_search(phi: Callable[[float], tuple[float, float]], f0: float, dphi0: float,
                             alpha0: float = 1.0, *, first: tuple[float, float] | None = None,
                             c1: float = 1e-4, c2: float = 0.9, max_evals: int = 20) -> LineSearch:
    """A step satisfying the strong Wolfe conditions along ``phi`` (N&W Algorithm 3.5, then :func:`zoom`).

    From ``alpha0``: a trial that fails sufficient decrease ``phi(alpha) <= phi(0) + c1 alpha phi'(0)``,
    is not below the previous trial, or is not finite closes the bracket (previous, alpha); one with
    ``|phi'(alpha)| <= c2 |phi'(0)|`` is accepted; one with ``phi'(alpha) >= 0`` closes the bracket
    (alpha, previous); otherwise the next trial is extrapolated beyond it (cubic, 2.1x to 5x farther).

    Parameters
    ----------
    phi : callable
        ``phi(alpha) -> (phi(alpha), phi'(alpha))``, host floats; non-finite values mean "too far".
    f0, dphi0 : float
        ``phi(0)`` (finite) and ``phi'(0) < 0``.
    alpha0 : float, default 1.0
        The first trial step.
    first : tuple of float, optional
        ``(phi(alpha0), phi'(alpha0))`` when the caller evaluated it already (it counts as one
        evaluation).
    c1, c2 : float, default 1e-4, 0.9
        The constants of the strong Wolfe conditions, ``0 < c1 < c2 < 1``.
    max_evals : int, default 20
        The most evaluations of ``phi`` in all.

    Returns
    -------
    LineSearch
        The accepted step, or (``success`` False) the best one seen.

    Raises
    ------
    InputError
        ``phi'(0) >= 0``, a non-finite ``phi(0)``, a bad ``alpha0``, ``c1``, ``c2`` or ``max_evals``.
    """
    if not (_finite(f0, dphi0, alpha0) and dphi0 < 0.0 < alpha0):
        raise InputError(f"the line search needs a finite phi(0), phi'(0) < 0 and alpha0 > 0, got {f0}, {dphi0}, "
                         f"{alpha0}; pass a descent direction and a positive step")
    _check_wolfe(c1, c2, max_evals)
    counted = _Counted(phi, f0)
    prev, alpha = (0.0, f0, dphi0), alpha0
    while counted.n < max_evals:
        f, d = counted(alpha, first if counted.n == 0 else None)
        cur = (alpha, f, d)
        if not _finite(f, d) or f > f0 + c1 * alpha * dphi0 or f >= prev[1]:
            bracket = (prev, cur)
        elif abs(d) <= -c2 * dphi0:
            return LineSearch(alpha, f, d, counted.n, True)
        elif d >= 0.0:
            bracket = (cur, prev)
        else:
            prev, alpha = cur, _extrapolate(prev, cur)
            continue
        found = zoom(counted, *bracket, f0, dphi0, c1=c1, c2=c2, max_evals=max_evals - counted.n)
        return replace(found, n_evals=counted.n)
    return counted.failure(0)


def two_loop_direction(xp: Any, g: Array, s: Sequence[Array], y: Sequence[Array], rho: Sequence[float],
                       gamma: float) -> Array:
    """The L-BFGS direction ``d = -H g`` by the two-loop recursion, on the device (no reads).

    ``H`` is the BFGS inverse-Hessian approximation built from ``H_0 = gamma I`` by the pairs in
    order, ``H <- (I - rho s y') H (I - rho y s') + rho s s'``; see the module docstring.

    Parameters
    ----------
    xp : namespace
        The arrays' Array API namespace.
    g : array
        The gradient, shape ``(n,)``.
    s, y : sequence of array
        The pairs ``s_i``, ``y_i`` (each ``(n,)``), oldest first.
    rho : sequence of float
        ``1 / (s_i' y_i)``, host floats.
    gamma : float
        The scale of ``H_0``.

    Returns
    -------
    array
        ``d``, shape ``(n,)``, of ``g``'s namespace, device and dtype.
    """
    q, coefficients = g, []
    for s_i, y_i, rho_i in zip(reversed(s), reversed(y), reversed(rho)):
        a_i = rho_i * xp.sum(s_i * q)
        q = q - a_i * y_i
        coefficients.append(a_i)
    r = gamma * q
    for s_i, y_i, rho_i, a_i in zip(s, y, rho, reversed(coefficients)):
        r = r + (a_i - rho_i * xp.sum(y_i * r)) * s_i
    return -r


@dataclass
class _Point:
    """An evaluated point: ``x``, ``g`` (and a trial's ``s``, ``y``) on the device, the scalars read."""

    x: Array
    g: Array
    f: float
    gmax: float
    gg: float
    slope: float = math.nan  # a trial's g' d
    dphi0: float = math.nan  # g_k' d, at the start of the trial's search
    s: Array = None
    y: Array = None
    sy: float = math.nan
    yy: float = math.nan

    @property
    def finite(self) -> bool:
        return _finite(self.f, self.slope, self.gmax, self.gg, self.sy, self.yy)


class _Run:
    """The evaluations of one minimisation, each with its one stacked read, counted."""

    def __init__(self, fun_and_grad: Callable[[Array], tuple[Array, Array]], xp: Any,
                 to_host: Callable[[Array], Any]) -> None:
        self.fun_and_grad, self.xp, self.to_host = fun_and_grad, xp, to_host
        self.n_fun = self.reads = 0

    def read(self, values: list[Array]) -> list[float]:
        self.reads += 1
        return [float(v) for v in self.to_host(self.xp.stack(values)).tolist()]  # host floats, not arrays

    def evaluate(self, x: Array) -> tuple[Array, Array]:
        f, g = self.fun_and_grad(x)
        self.n_fun += 1
        xp = self.xp
        f = xp.asarray(f, dtype=x.dtype, device=x.device) if isinstance(f, (int, float)) else f
        f = f if f.dtype == x.dtype else xp.astype(f, x.dtype)
        g = g if g.dtype == x.dtype else xp.astype(g, x.dtype)
        if tuple(g.shape) != tuple(x.shape) or tuple(f.shape) not in ((), (1,)):
            raise InputError(f"fun_and_grad must return a scalar f and a gradient of shape {tuple(x.shape)}, "
                             f"got {tuple(f.shape)} and {tuple(g.shape)}; return (f, g) for x")
        return xp.reshape(f, ()), g

    def start(self, x0: Array) -> _Point:
        f, g = self.evaluate(x0)
        xp = self.xp
        f_host, gmax, gg = self.read([f, xp.max(xp.abs(g)), xp.sum(g * g)])
        if not _finite(f_host, gmax, gg):
            raise InputError(f"f or its gradient is not finite at x0 (f = {f_host}, max|g| = {gmax}); "
                             "start from a point where both are finite")
        return _Point(x0, g, f_host, gmax, gg)

    def trial(self, base: _Point, d: Array, alpha: float, dphi0: Array) -> _Point:
        xp = self.xp
        x = base.x + alpha * d
        f, g = self.evaluate(x)
        s, y = x - base.x, g - base.g
        host = self.read([f, xp.sum(g * d), xp.max(xp.abs(g)), xp.sum(g * g), xp.sum(s * y), xp.sum(y * y),
                          dphi0])
        f_host, slope, gmax, gg, sy, yy, dphi0_host = host
        return _Point(x, g, f_host, gmax, gg, slope, dphi0_host, s, y, sy, yy)

    def result(self, point: _Point, n_iter: int, reason: str) -> LbfgsResult:
        return LbfgsResult(point.x, point.f, n_iter, self.n_fun, _STATUS[reason], MESSAGES[reason], self.reads)


class _Memory:
    """The last ``size`` curvature pairs, on the device, and ``gamma`` of the newest."""

    def __init__(self, size: int, eps: float) -> None:
        self.size, self.eps = size, eps
        self.clear()

    def clear(self) -> None:
        self.s, self.y, self.rho, self.gamma = [], [], [], 1.0

    def push(self, trial: _Point) -> None:
        if not trial.sy > self.eps * trial.yy:  # the curvature safeguard: H stays positive definite
            return
        self.s.append(trial.s)
        self.y.append(trial.y)
        self.rho.append(1.0 / trial.sy)
        del self.s[:-self.size], self.y[:-self.size], self.rho[:-self.size]
        self.gamma = trial.sy / trial.yy

    def direction(self, xp: Any, point: _Point) -> tuple[Array, float]:
        """The search direction and its first trial step."""
        if not self.s:
            norm = math.sqrt(point.gg) if point.gg > 0.0 else point.gmax  # gg underflows before gmax
            return -point.g, 1.0 / norm
        return two_loop_direction(xp, point.g, self.s, self.y, self.rho, self.gamma), 1.0


@dataclass
class _Attempt:
    """One line search's outcome: the accepted trial, or what to do instead."""

    accepted: _Point | None = None
    retry: bool = False  # the history is to be reset and the search repeated along -g
    best: _Point | None = None  # the lowest finite point a failed search saw


def _attempt(run: _Run, cur: _Point, memory: _Memory, c1: float, c2: float, max_ls: int) -> _Attempt:
    """One line search from ``cur`` along the L-BFGS direction (``-g`` when the history is empty)."""
    d, alpha0 = memory.direction(run.xp, cur)
    dphi0 = run.xp.sum(cur.g * d)
    kept: dict[str, _Point] = {}

    def phi(alpha: float) -> tuple[float, float]:
        kept["last"] = trial = run.trial(cur, d, alpha, dphi0)
        if trial.finite and trial.f < kept.get("best", cur).f:
            kept["best"] = trial  # the point a failed search falls back to
        return (trial.f, trial.slope) if trial.finite else (math.inf, math.nan)

    first = phi(alpha0)
    dphi0_host = kept["last"].dphi0
    if not dphi0_host < 0.0:  # not a descent direction (or NaN): only -g is left to try
        return _Attempt(retry=bool(memory.s))
    found = strong_wolfe_line_search(phi, cur.f, dphi0_host, alpha0, first=first, c1=c1, c2=c2,
                                     max_evals=max_ls)
    if found.success:
        return _Attempt(accepted=kept["last"])
    return _Attempt(retry=bool(memory.s), best=kept.get("best"))


def _stop(n_iter: int, n_fun: int, f_old: float, cur: _Point, limits: tuple[int, int, float, float]) -> str | None:
    """Why to stop after an iteration, tested in scipy's order; None to go on."""
    max_iter, max_fun, gtol, ftol = limits
    tests = (("max_iter", n_iter >= max_iter), ("max_fun", n_fun > max_fun), ("gtol", cur.gmax <= gtol),
             ("ftol", (f_old - cur.f) / max(abs(f_old), abs(cur.f), 1.0) <= ftol))
    return next((reason for reason, holds in tests if holds), None)


def _check_options(x0: Array, xp: Any, counts: dict[str, int], tolerances: dict[str, float]) -> None:
    if getattr(x0, "ndim", None) != 1 or not xp.isdtype(x0.dtype, "real floating"):
        raise InputError(f"x0 must be a 1-D floating array, got {getattr(x0, 'dtype', type(x0).__name__)} of "
                         f"shape {getattr(x0, 'shape', None)}; pass the parameters as one flat vector")
    for name, value in {**counts, **tolerances}.items():
        whole = name in counts
        ok = (isinstance(value, int) and not isinstance(value, bool) and value >= 1) if whole else \
            (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0.0)
        if not ok:
            what, example = ("an integer >= 1", 15000) if whole else ("a finite number >= 0", 1e-5)
            raise InputError(f"{name} must be {what}, got {value!r}; pass e.g. {example}")


def minimize_lbfgs(fun_and_grad: Callable[[Array], tuple[Array, Array]], x0: Array, xp: Any, *,
                   max_iter: int = 15000, max_fun: int = 15000, gtol: float = 1e-5,
                   ftol: float = 2.220446049250313e-09, history: int = 10, max_linesearch: int = 20,
                   c1: float = 1e-4, c2: float = 0.9,
                   to_host: Callable[[Array], Any] | None = None) -> LbfgsResult:
    """Minimise ``f`` by L-BFGS with a strong Wolfe line search, on the arrays' device.

    The algorithm, the stopping rules (scipy's L-BFGS-B without bounds) and the read contract (one
    ``to_host`` call per evaluation, ``reads == n_fun``) are in the module docstring.

    Parameters
    ----------
    fun_and_grad : callable
        ``fun_and_grad(x) -> (f, g)``: ``f`` a 0-d array, ``g`` an array shaped like ``x``; it must
        not read the device itself for the read count to mean anything.
    x0 : array
        The starting point, 1-D floating; its namespace, device and dtype are kept.
    xp : namespace
        The arrays' Array API namespace (a backend's ``xp``); run inside its device context.
    max_iter : int, default 15000
        Stop (status 1) when this many iterations are done (scipy's ``maxiter``).
    max_fun : int, default 15000
        Stop (status 1) after the iteration in which evaluations exceed it (scipy's ``maxfun``).
    gtol : float, default 1e-5
        Converged when ``max|g| <= gtol``.
    ftol : float, default 2.220446049250313e-09
        Converged when the relative reduction of ``f`` in an iteration is ``<= ftol``.
    history : int, default 10
        Curvature pairs kept (scipy's ``maxcor``).
    max_linesearch : int, default 20
        Evaluations per line search at most (scipy's ``maxls``).
    c1, c2 : float, default 1e-4, 0.9
        The strong Wolfe constants, ``0 < c1 < c2 < 1``.
    to_host : callable, optional
        Reads a small device array to a host NumPy array; default :func:`xpmlp.backend.to_numpy`.

    Returns
    -------
    LbfgsResult
        The final point and why it stopped.

    Raises
    ------
    InputError
        A bad argument, ``x0`` not a 1-D floating array, ``f`` or ``g`` not finite at ``x0``, or
        ``fun_and_grad`` returning the wrong shapes.
    """
    _check_options(x0, xp, {"max_iter": max_iter, "max_fun": max_fun, "history": history},
                   {"gtol": gtol, "ftol": ftol})
    _check_wolfe(c1, c2, max_linesearch)
    run = _Run(fun_and_grad, xp, to_host or to_numpy)
    cur = run.start(x0)
    if cur.gmax <= gtol:
        return run.result(cur, 0, "gtol")
    memory = _Memory(history, float(xp.finfo(x0.dtype).eps))
    return _iterate(run, cur, memory, (max_iter, max_fun, gtol, ftol), (c1, c2, max_linesearch))


def _iterate(run: _Run, cur: _Point, memory: _Memory, limits: tuple[int, int, float, float],
             search: tuple[float, float, int]) -> LbfgsResult:
    """The iterations from ``cur`` until a stopping rule of the module docstring holds."""
    n_iter, fallback = 0, cur
    while True:
        if run.n_fun > limits[1]:  # only after a rejected or failed search: no new one may start
            return run.result(fallback, n_iter, "max_fun")
        attempt = _attempt(run, cur, memory, *search)
        if attempt.best is not None and attempt.best.f < fallback.f:
            fallback = attempt.best
        if attempt.accepted is None:
            if not attempt.retry:
                return run.result(fallback, n_iter, "line_search")
            memory.clear()
            continue
        f_old, cur = cur.f, attempt.accepted
        n_iter += 1
        reason = _stop(n_iter, run.n_fun, f_old, cur, limits)
        if reason is not None:
            return run.result(cur, n_iter, reason)
        fallback = cur
        memory.push(attempt.accepted)
