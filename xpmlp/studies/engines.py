"""Choosing where a study's runs train: ``--engine local|dask [--jobs N | --workers N] [--scheduler ADDRESS]``.

``local`` is this process (one run at a time) or a pool of ``--jobs`` worker processes
(``--workers`` is the same number). ``dask`` is a Dask cluster: an embedded
``distributed.LocalCluster`` of ``--workers`` single-threaded workers on loopback, or, with
``--scheduler tcp://host:8786``, an existing cluster (see ``dask_engine``). Every combination is
checked here, before any file is written, and a missing Dask is one line saying what to install.
"""

from __future__ import annotations

from ..errors import InputError
from .execute import Engine, LocalEngine

ENGINES = ("local", "dask")


def make_engine(name: str = "local", *, jobs: int | None = None, workers: int | None = None,
                scheduler: str | None = None) -> Engine:
    """The engine the options ask for, or a one-line InputError naming the option to fix."""
    if name not in ENGINES:
        raise InputError(f"--engine {name!r}: use local (worker processes on this machine) or dask (a Dask cluster)")
    for flag, value in (("--jobs", jobs), ("--workers", workers)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InputError(f"{flag} must be a positive integer, got {value!r}")
    if jobs is not None and workers is not None and jobs != workers:
        raise InputError(f"--jobs {jobs} and --workers {workers} disagree; they are the same number "
                         "(runs in parallel), give one")
    count = workers if workers is not None else jobs
    if name == "local":
        if scheduler is not None:
            raise InputError("--scheduler is the address of a Dask cluster; add --engine dask")
        return LocalEngine(count or 1)
    from .dask_engine import DaskEngine, import_distributed

    import_distributed()  # a missing Dask is said now, before anything is written
    if scheduler is not None:
        if not isinstance(scheduler, str) or not scheduler.strip() or any(c.isspace() for c in scheduler):
            raise InputError(f"--scheduler {scheduler!r} is not an address; e.g. --scheduler tcp://10.0.0.5:8786")
        if count is not None:
            raise InputError("--workers/--jobs size the embedded cluster; with --scheduler the cluster's own "
                             "workers run the runs (drop --workers, or drop --scheduler)")
    return DaskEngine(workers=count, scheduler=scheduler)
