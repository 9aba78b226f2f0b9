#!/usr/bin/env python3
"""Benchmark xpmlp against PyTorch, scikit-learn and the bare GEMMs (the same as ``xpmlp bench``).

    python scripts/bench.py --quick
    python scripts/bench.py --batch-size 4096 --json bench.json
    python scripts/bench.py --device cuda

See ``python scripts/bench.py --help`` and the docstring of xpmlp/bench/__init__.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from xpmlp.bench import main
except ImportError:  # run from a checkout without installing: use the package next to this script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from xpmlp.bench import main

if __name__ == "__main__":
    sys.exit(main())
