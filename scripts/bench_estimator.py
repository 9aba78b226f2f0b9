#!/usr/bin/env python3
"""xpmlp's MLPClassifier against scikit-learn's (the same as ``xpmlp bench --estimator``).

    python scripts/bench_estimator.py --rounds 7 --json benchmarks/estimator-cpu.json

See ``xpmlp bench --help`` and the docstring of xpmlp/bench/estimator.py.
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's xpmlp, installed or not
    from xpmlp.bench.command import main

    sys.exit(main(["--estimator", *sys.argv[1:]]))
