#!/usr/bin/env python3
"""Cost growth: xpmlp against PyTorch and GEMM-only over hidden widths x batch sizes (one JSON, one PNG).

    python scripts/bench_sweep.py --json benchmarks/sweep-cpu-float32.json     # 5-10 minutes on 2 idle cores
    python scripts/bench_sweep.py --quick --json /tmp/sweep.json                # seconds

The same as ``python -m xpmlp.bench.sweep``; see ``--help`` and the docstring of xpmlp/bench/sweep.py.
"""

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's xpmlp, installed or not
    runpy.run_module("xpmlp.bench.sweep", run_name="__main__", alter_sys=True)
