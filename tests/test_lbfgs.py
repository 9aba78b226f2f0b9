"""xpmlp.lbfgs: L-BFGS on the Array API against scipy's L-BFGS-B, its line search, its limits and its reads.

The references are independent of the code under test: scipy.optimize.minimize(method="L-BFGS-B"),
numpy.linalg.solve, the explicit BFGS inverse-Hessian recursion, and the roots of a cubic's derivative.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from xpmlp.backend import get_backend
from xpmlp.errors import InputError
from xpmlp.lbfgs import (
    MESSAGES,
    cubic_minimizer,
    minimize_lbfgs,
    quadratic_minimizer,
    strong_wolfe_line_search,
    two_loop_direction,
)

C1, C2 = 1e-4, 0.9


# -- problems, written once against the Array API -------------------------------------------------
def rosenbrock(xp):
    """f(x) = sum 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2 and its gradient."""
    def fun_and_grad(x):
        a, b = x[:-1], x[1:]
        t = b - a * a
        f = xp.sum(100.0 * t * t + (1.0 - a) ** 2)
        zero = xp.zeros((1,), dtype=x.dtype, device=x.device)
        g = xp.concat([-400.0 * a * t - 2.0 * (1.0 - a), zero]) + xp.concat([zero, 200.0 * t])
        return f, g
    return fun_and_grad


def logistic(xp, X, y, lam=1e-2):
    """Mean logistic loss with an L2 penalty: mean(log(1 + e^z) - y z) + lam/2 |w|^2, z = X w."""
    n = X.shape[0]

    def fun_and_grad(w):
        z = X @ w
        f = xp.mean(xp.logaddexp(xp.zeros_like(z), z) - y * z) + 0.5 * lam * xp.sum(w * w)
        g = X.T @ (1.0 / (1.0 + xp.exp(-z)) - y) / n + lam * w
        return f, g
    return fun_and_grad


def quadratic(xp, A, b):
    """f(x) = x'Ax/2 - b'x, minimised by solve(A, b)."""
    def fun_and_grad(x):
        Ax = A @ x
        return 0.5 * xp.sum(x * Ax) - xp.sum(b * x), Ax - b
    return fun_and_grad


def _logistic_data(seed=0, n=300, d=8):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = (X @ rng.standard_normal(d) + rng.standard_normal(n) > 0).astype(np.float64)
    return X, y


def _spd(n=20, seed=1):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((n, n))
    return M @ M.T + 0.5 * np.eye(n), rng.standard_normal(n)


def _scipy(fun_and_grad, x0, **options):
    optimize = pytest.importorskip("scipy.optimize")
    wrapped = lambda x: tuple(np.asarray(v, dtype=np.float64) for v in fun_and_grad(x))  # noqa: E731
    return optimize.minimize(wrapped, x0, jac=True, method="L-BFGS-B", options=options)


# -- the pieces ----------------------------------------------------------------------------------
def test_cubic_minimizer_is_the_local_minimum_of_the_cubic():
    rng = np.random.default_rng(2)
    for _ in range(50):
        coef = rng.standard_normal(4)
        p, dp = np.polynomial.Polynomial(coef), np.polynomial.Polynomial(coef).deriv()
        roots = [r.real for r in dp.roots() if abs(r.imag) < 1e-12 and dp.deriv()(r.real) > 0]
        a, b = rng.uniform(-3, -1), rng.uniform(1, 3)  # well apart: (fa - fb) / (a - b) does not cancel
        got = cubic_minimizer(a, p(a), dp(a), b, p(b), dp(b))
        if roots:
            assert got == pytest.approx(roots[0], rel=1e-9, abs=1e-9)
        else:
            assert got is None
    assert cubic_minimizer(0.0, 0.0, -1.0, 1.0, math.inf, 1.0) is None


def test_quadratic_minimizer_is_the_vertex_or_none():
    q = lambda x: 3.0 * (x - 0.7) ** 2 + 1.0  # noqa: E731
    assert quadratic_minimizer(0.0, q(0.0), -6.0 * 0.7, 2.0, q(2.0)) == pytest.approx(0.7)
    assert quadratic_minimizer(0.0, 0.0, 1.0, 1.0, 0.0) is None  # concave: no minimum
    assert quadratic_minimizer(0.0, 0.0, -1.0, 1.0, math.inf) is None


def test_two_loop_direction_is_minus_the_bfgs_inverse_hessian_times_g():
    rng = np.random.default_rng(3)
    n, m = 6, 4
    A, _ = _spd(n, seed=4)
    s = [rng.standard_normal(n) for _ in range(m)]
    y = [A @ si for si in s]
    rho = [1.0 / float(si @ yi) for si, yi in zip(s, y)]
    gamma = float(s[-1] @ y[-1] / (y[-1] @ y[-1]))
    H = gamma * np.eye(n)
    for si, yi, ri in zip(s, y, rho):  # oldest first
        V = np.eye(n) - ri * np.outer(yi, si)
        H = V.T @ H @ V + ri * np.outer(si, si)
    g = rng.standard_normal(n)
    np.testing.assert_allclose(two_loop_direction(np, g, s, y, rho, gamma), -H @ g, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(two_loop_direction(np, g, [], [], [], 0.5), -0.5 * g)


def _more_thuente_3(alpha, beta=0.01, ell=39):
    """Moré & Thuente's function 3: a wiggly, nonconvex line-search test function, and its slope."""
    if alpha <= 1 - beta:
        f0, d0 = 1 - alpha, -1.0
    elif alpha >= 1 + beta:
        f0, d0 = alpha - 1, 1.0
    else:
        f0, d0 = (alpha - 1) ** 2 / (2 * beta) + beta / 2, (alpha - 1) / beta
    k = ell * math.pi / 2
    return f0 + 2 * (1 - beta) / (ell * math.pi) * math.sin(k * alpha), d0 + (1 - beta) * math.cos(k * alpha)


LINE_FUNCTIONS = {
    "rational": lambda a: (-a / (a * a + 2.0), (a * a - 2.0) / (a * a + 2.0) ** 2),
    "quintic": lambda a: ((a + 0.004) ** 5 - 2 * (a + 0.004) ** 4, 5 * (a + 0.004) ** 4 - 8 * (a + 0.004) ** 3),
    "wiggly": _more_thuente_3,
    "inf beyond 0.5": lambda a: ((a - 0.3) ** 2, 2 * (a - 0.3)) if a <= 0.5 else (math.inf, math.nan),
}


@pytest.mark.parametrize("alpha0", [1e-3, 0.1, 1.0, 10.0, 1e3])
@pytest.mark.parametrize("name", list(LINE_FUNCTIONS))
def test_line_search_satisfies_strong_wolfe(name, alpha0):
    phi, calls = LINE_FUNCTIONS[name], []

    def counted(alpha):
        calls.append(alpha)
        return phi(alpha)

    f0, d0 = phi(0.0)
    found = strong_wolfe_line_search(counted, f0, d0, alpha0, c1=C1, c2=C2, max_evals=30)
    assert found.success, (name, alpha0, found)
    f, d = phi(found.alpha)
    assert (found.fun, found.slope) == (f, d)
    assert f <= f0 + C1 * found.alpha * d0 and abs(d) <= C2 * abs(d0)
    assert found.n_evals == len(calls) <= 30 and calls[-1] == found.alpha


def test_line_search_failure_returns_the_best_step_seen():
    phi = LINE_FUNCTIONS["wiggly"]
    f0, d0 = phi(0.0)
    calls: list[float] = []
    found = strong_wolfe_line_search(lambda a: calls.append(a) or phi(a), f0, d0, 0.3, c2=1e-3, max_evals=3)
    assert not found.success and found.n_evals == len(calls) == 3
    values = [phi(a)[0] for a in calls]
    assert found.fun == min(values) and found.alpha == calls[int(np.argmin(values))]
    with pytest.raises(InputError, match="descent"):
        strong_wolfe_line_search(phi, f0, 1.0)


# -- against scipy -------------------------------------------------------------------------------
NP = get_backend("cpu", "float64").xp


@pytest.mark.parametrize("n", [2, 10])
def test_rosenbrock_reaches_the_minimiser_in_scipys_number_of_iterations(n):
    x0 = np.tile([-1.2, 1.0], n // 2)
    ours = minimize_lbfgs(rosenbrock(NP), x0, NP)
    ref = _scipy(rosenbrock(np), x0)
    assert ours.status == 0 == ref.status
    np.testing.assert_allclose(ours.x, np.ones(n), atol=1e-4)
    np.testing.assert_allclose(ref.x, np.ones(n), atol=1e-4)
    assert ours.fun < 1e-9 and ours.fun == pytest.approx(rosenbrock(np)(ours.x)[0], rel=0, abs=0)
    assert ref.nit / 2 <= ours.n_iter <= 2 * ref.nit and ref.nfev / 2 <= ours.n_fun <= 2 * ref.nfev
    assert ours.reads == ours.n_fun


def test_quadratic_matches_numpy_solve_and_scipy():
    A, b = _spd()
    x_star = np.linalg.solve(A, b)
    f_star = -0.5 * b @ x_star
    ours = minimize_lbfgs(quadratic(NP, A, b), np.zeros(len(b)), NP)
    ref = _scipy(quadratic(np, A, b), np.zeros(len(b)))
    assert abs(ours.fun - f_star) <= 1e-8 * abs(f_star)
    assert abs(ours.fun - ref.fun) <= 1e-8 * abs(f_star)
    np.testing.assert_allclose(ours.x, x_star, atol=1e-3)
    assert (ours.status, ours.message) == (ref.status, ref.message)
    assert ref.nit / 2 <= ours.n_iter <= 2 * ref.nit


def test_logistic_regression_matches_scipy():
    X, y = _logistic_data()
    ours = minimize_lbfgs(logistic(NP, X, y), np.zeros(X.shape[1]), NP)
    ref = _scipy(logistic(np, X, y), np.zeros(X.shape[1]))
    assert abs(ours.fun - ref.fun) <= 1e-8 * abs(ref.fun)
    np.testing.assert_allclose(ours.x, ref.x, atol=1e-5)
    assert (ours.status, ours.message) == (ref.status, ref.message)
    assert ref.nit / 2 <= ours.n_iter <= 2 * ref.nit
    # every first trial step was accepted here: one read per iteration, one at x0
    assert ours.reads == ours.n_fun == ours.n_iter + 1


@pytest.mark.parametrize("problem", ["rosenbrock", "logistic"])
def test_every_accepted_step_satisfies_strong_wolfe(problem):
    """The k-th iterate is the result with max_iter=k; check the conditions on each step s = x_k - x_{k-1}."""
    X, y = _logistic_data(seed=5)
    fg = rosenbrock(np) if problem == "rosenbrock" else logistic(np, X, y)
    x0 = np.array([-1.2, 1.0]) if problem == "rosenbrock" else np.zeros(X.shape[1])
    x_prev = x0
    for k in range(1, 200):
        result = minimize_lbfgs(fg, x0, NP, max_iter=k)
        if result.n_iter < k:  # converged at the previous iterate
            assert result.status == 0 and np.array_equal(result.x, x_prev)
            break
        assert result.n_iter == k and result.status == 1
        (f0, g0), (f1, g1) = fg(x_prev), fg(result.x)
        s = result.x - x_prev
        assert f1 <= f0 + C1 * (g0 @ s) + 1e-12 * max(1.0, abs(f0)), k
        assert abs(g1 @ s) <= C2 * abs(g0 @ s) + 1e-12, k
        x_prev = result.x
    assert result.status == 0 and k > 5


# -- limits and edge cases -----------------------------------------------------------------------
def test_iteration_limit():
    result = minimize_lbfgs(rosenbrock(NP), np.array([-1.2, 1.0]), NP, max_iter=5)
    assert (result.status, result.message, result.n_iter) == (1, MESSAGES["max_iter"], 5)
    ref = _scipy(rosenbrock(np), np.array([-1.2, 1.0]), maxiter=5)
    assert (ref.status, ref.message, ref.nit) == (result.status, result.message, result.n_iter)


@pytest.mark.parametrize("max_fun", [1, 7, 20, 40])
def test_evaluation_limit_is_exceeded_by_at_most_one_line_search(max_fun):
    result = minimize_lbfgs(rosenbrock(NP), np.tile([-1.2, 1.0], 5), NP, max_fun=max_fun, max_linesearch=20)
    assert (result.status, result.message) == (1, MESSAGES["max_fun"])
    assert max_fun < result.n_fun <= max_fun + 20 and result.reads == result.n_fun
    ref = _scipy(rosenbrock(np), np.tile([-1.2, 1.0], 5), maxfun=max_fun)
    assert (ref.status, ref.message) == (result.status, result.message)


def test_gradient_small_at_x0_stops_before_any_iteration():
    A, b = _spd()
    x0 = np.linalg.solve(A, b)
    result = minimize_lbfgs(quadratic(NP, A, b), x0, NP)
    assert (result.status, result.message, result.n_iter, result.n_fun, result.reads) == \
        (0, MESSAGES["gtol"], 0, 1, 1)
    assert result.x is x0


def test_a_wrong_gradient_ends_in_a_failed_line_search_at_the_start():
    def upside_down(x):  # the gradient of -f: -g is an ascent direction
        return NP.sum(x * x), -2.0 * x

    x0 = np.array([1.0, -2.0, 0.5])
    result = minimize_lbfgs(upside_down, x0, NP, max_linesearch=12)
    assert (result.status, result.message) == (2, MESSAGES["line_search"])
    assert result.n_fun == 1 + 12 and result.fun == float(x0 @ x0)
    np.testing.assert_array_equal(result.x, x0)


def test_non_finite_values_shrink_the_step_and_are_never_returned():
    seen = []

    def barrier(x):  # x - log x per coordinate: NaN or inf for x <= 0, minimised at 1
        with np.errstate(invalid="ignore", divide="ignore"):
            f, g = np.sum(x - np.log(x)), 1.0 - 1.0 / x
        seen.append(f)
        return np.asarray(f), g

    result = minimize_lbfgs(barrier, np.array([20.0, 0.05, 3.0]), NP)
    assert sum(not np.isfinite(f) for f in seen) >= 1  # the path did meet the non-finite region
    assert result.status == 0 and np.all(np.isfinite(result.x)) and math.isfinite(result.fun)
    np.testing.assert_allclose(result.x, np.ones(3), atol=1e-4)


def test_float32_is_kept():
    X, y = _logistic_data()
    be = get_backend("cpu", "float32")
    X32, y32 = be.asarray(X, dtype="float32"), be.asarray(y, dtype="float32")
    x0 = be.xp.zeros(X.shape[1], dtype=be.xp.float32)
    result = minimize_lbfgs(logistic(be.xp, X32, y32), x0, be.xp, gtol=1e-4)
    reference = minimize_lbfgs(logistic(NP, X, y), np.zeros(X.shape[1]), NP, gtol=1e-4)
    assert result.x.dtype == np.float32 and result.status == 0
    assert result.fun == pytest.approx(reference.fun, rel=1e-5)
    np.testing.assert_allclose(result.x, reference.x, atol=2e-3)


def test_bad_arguments_are_refused_in_one_line():
    fg = rosenbrock(NP)
    for kwargs, match in [({"max_iter": 0}, "max_iter"), ({"history": 1.5}, "history"), ({"gtol": -1.0}, "gtol"),
                          ({"c1": 0.9, "c2": 0.5}, "c1 < c2"), ({"max_linesearch": 0}, "max_linesearch")]:
        with pytest.raises(InputError, match=match):
            minimize_lbfgs(fg, np.zeros(2), NP, **kwargs)
    with pytest.raises(InputError, match="1-D floating"):
        minimize_lbfgs(fg, np.zeros((2, 2)), NP)
    with pytest.raises(InputError, match="not finite at x0"):
        minimize_lbfgs(lambda x: (NP.sum(x) * math.inf, x), np.ones(2), NP)


# -- other namespaces and the reads --------------------------------------------------------------
def _on(spec, problem):
    be = get_backend(spec, "float64")
    if problem == "rosenbrock":
        return be, rosenbrock(be.xp), be.asarray(np.tile([-1.2, 1.0], 5))
    X, y = _logistic_data()
    return be, logistic(be.xp, be.asarray(X), be.asarray(y)), be.asarray(np.zeros(X.shape[1]))


@pytest.mark.parametrize("problem", ["rosenbrock", "logistic"])
@pytest.mark.parametrize("spec", ["strict", "strict:device1",
                                  pytest.param("torch", marks=pytest.mark.needs_backend("torch"))])
def test_other_namespaces_give_numpys_answer(spec, problem):
    _, fg_np, x0_np = _on("cpu", problem)
    expected = minimize_lbfgs(fg_np, x0_np, NP)
    be, fg, x0 = _on(spec, problem)
    host_reads = []

    def to_host(a):
        assert a.ndim == 1 and a.shape[0] <= 7  # one small stacked vector per read
        host_reads.append(a.shape[0])
        return be.to_numpy(a)

    with be.context():
        result = minimize_lbfgs(fg, x0, be.xp, to_host=to_host)
    assert be.owns(result.x) and result.x.device == x0.device and result.x.dtype == x0.dtype
    assert result.n_iter == expected.n_iter and result.status == expected.status
    np.testing.assert_allclose(be.to_numpy(result.x), expected.x, atol=1e-8)
    assert result.fun == pytest.approx(expected.fun, rel=1e-6, abs=1e-14)
    assert result.reads == result.n_fun == len(host_reads)


TORCH_READS = ("item", "__float__", "__bool__", "__int__", "__index__", "tolist", "numpy", "cpu")


@pytest.mark.needs_backend("torch")
@pytest.mark.parametrize("problem", ["rosenbrock", "logistic"])
def test_torch_reads_are_exactly_the_counted_ones(monkeypatch, problem):
    """Every way a tensor reaches Python counts; the minimiser's reads are its only ones."""
    import torch

    be, fg, x0 = _on("torch", problem)
    seen: list[str] = []
    for name in TORCH_READS:
        original = getattr(torch.Tensor, name)

        def counting(self, *args, __name=name, __original=original, **kwargs):
            seen.append(__name)
            return __original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    result = minimize_lbfgs(fg, x0, be.xp)
    assert seen == ["numpy"] * result.reads, sorted(set(seen))
    assert result.reads == result.n_fun and result.status == 0
    assert math.isfinite(float(be.xp.sum(result.x))) and seen[-1] == "__float__"  # the positive control
