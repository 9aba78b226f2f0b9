"""Run the `sweep` study: the same as `xpmlp sweep ...` (see `--help`)."""

import sys

from xpmlp.cli import main

if __name__ == "__main__":
    sys.exit(main(["sweep", *sys.argv[1:]]))
