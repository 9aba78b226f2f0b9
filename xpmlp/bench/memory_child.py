"""The child process of :mod:`xpmlp.bench.memory`: ``python -m xpmlp.bench.memory_child``.

Reads ``{"config": BenchConfig fields, "kind": contender, "spec": backend spec}`` as JSON on
stdin, loads the benchmark's data, measures that contender's memory and prints the result as
one JSON line. Not imported by the package, so running it as a module warns about nothing.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
from typing import Any

from ..backend import get_backend
from ..io import to_json
from .config import BenchConfig, load_data
from .lineup import make_contender
from .machine import ThreadLimit
from .memory import measure_contender

# imported before the baseline, so that loading a library does not count as its training's memory
PRELOAD = {"torch": "torch", "sklearn": "sklearn.neural_network"}


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def measure(request: dict[str, Any]) -> dict[str, Any]:
    cfg = BenchConfig(**request["config"]).resolve()
    backend = get_backend(request["spec"], cfg.dtype)
    data = load_data(cfg, _log)
    if request["kind"] in PRELOAD:
        with contextlib.suppress(ImportError):  # setup then says it is not installed
            importlib.import_module(PRELOAD[request["kind"]])
    contender = make_contender(request["kind"], cfg, data, backend)
    with ThreadLimit(cfg.threads, "torch" in sys.modules), backend.context():
        return measure_contender(contender)


def main() -> int:
    print(to_json(measure(json.loads(sys.stdin.read())), indent=None), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
