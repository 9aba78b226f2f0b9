"""Shared pytest fixtures: every backend-agnostic test runs on each backend present here.

numpy and array-api-strict always; torch when it imports; cupy when a CUDA GPU is
usable (marked ``gpu`` and skipped cleanly otherwise).
"""

from __future__ import annotations

import os

import pytest

# Plots must never need a display, in tests or anywhere else.
os.environ.setdefault("MPLBACKEND", "Agg")

from xpmlp.backend import _probe_cupy, _probe_strict, _probe_torch, get_backend  # noqa: E402

BACKEND_PARAMS = [
    pytest.param("cpu", id="numpy"),
    pytest.param("strict", id="strict"),
    pytest.param("torch", id="torch"),
    pytest.param("cuda", id="cupy", marks=pytest.mark.gpu),
]


def _skip_reason(spec: str) -> str:
    if spec == "strict":
        return _probe_strict()
    if spec == "torch":
        return "" if _probe_torch()[0] else _probe_torch()[2]
    if spec == "cuda":
        return "" if _probe_cupy()[0] else _probe_cupy()[1]
    return ""


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request):
    """A float64-default Backend for each array library usable here."""
    why = _skip_reason(request.param)
    if why:
        pytest.skip(why)
    return get_backend(request.param, "float64")


@pytest.fixture
def xp(backend):
    """The array namespace of ``backend``."""
    return backend.xp
