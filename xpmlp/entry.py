"""The ``xpmlp`` command's entry point (``xpmlp ...`` and ``python -m xpmlp ...``).

:mod:`xpmlp.cli` loads NumPy, the backends and the commands' modules, about half a second; a
Ctrl-C in that time used to end in a page of the import machinery's traceback. This module
imports nothing heavy itself (``xpmlp/__init__`` loads its exports on first use), so an interrupt
while the libraries load ends as one later does: ``interrupted`` and exit status 130.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Load the command line and run it (see :func:`xpmlp.cli.main`)."""
    try:
        from .cli import main as run_command

        return run_command(argv)
    except KeyboardInterrupt:  # raised while importing or parsing; cli.main handles it once a command runs
        print("interrupted", file=sys.stderr)
        return 130
