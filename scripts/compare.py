"""Run the `compare` study: the same as `xpmlp compare ...` (see `--help`)."""

import sys

from xpmlp.cli import main

if __name__ == "__main__":
    sys.exit(main(["compare", *sys.argv[1:]]))
