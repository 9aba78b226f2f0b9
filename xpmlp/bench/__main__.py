"""``python -m xpmlp.bench``: the same as ``xpmlp bench``."""

import sys

from .command import main

sys.exit(main())
