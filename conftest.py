"""Shared pytest fixtures: every backend-agnostic test runs on each backend present here.

numpy and array-api-strict always; torch when it imports; CuPy and PyTorch CUDA when a CUDA
GPU is usable (marked ``gpu`` and skipped cleanly otherwise). ``backend`` is float64 (checks
and parity); ``backend_any`` adds float32, the default dtype of training.

One mechanism decides what is usable: :func:`xpmlp.backend.backend_unavailable`. Tests that
need one library outside the fixture say so with ``@pytest.mark.needs_backend("torch")``.
"""

from __future__ import annotations

import os

import pytest

# Plots must never need a display, in tests or anywhere else.
os.environ.setdefault("MPLBACKEND", "Agg")

from xpmlp.backend import backend_unavailable, get_backend  # noqa: E402

BACKEND_SPECS = [
    pytest.param("cpu", id="numpy"),
    pytest.param("strict", id="strict"),
    pytest.param("torch", id="torch"),
    pytest.param("cuda", id="cupy", marks=pytest.mark.gpu),
    pytest.param("torch:cuda", id="torch-cuda", marks=pytest.mark.gpu),
]

DTYPES = ["float64", "float32"]


def skip_unless_usable(spec: str) -> None:
    """Skip the running test when ``spec`` cannot be used here, saying why."""
    why = backend_unavailable(spec)
    if why:
        pytest.skip(why)


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs_backend"):
        for spec in mark.args:
            skip_unless_usable(spec)


@pytest.fixture(params=BACKEND_SPECS)
def backend(request):
    """A float64-default Backend for each array library usable here."""
    skip_unless_usable(request.param)
    return get_backend(request.param, "float64")


@pytest.fixture(params=[pytest.param((spec.values[0], dtype), id=f"{spec.id}-{dtype}", marks=spec.marks)
                        for spec in BACKEND_SPECS for dtype in DTYPES])
def backend_any(request):
    """A Backend for each usable array library in each floating dtype (float64 and float32)."""
    spec, dtype = request.param
    skip_unless_usable(spec)
    return get_backend(spec, dtype)


@pytest.fixture
def xp(backend):
    """The array namespace of ``backend``."""
    return backend.xp
