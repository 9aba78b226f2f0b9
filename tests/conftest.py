"""Fixtures of the documentation tests: the built site (built once per session, or the one
``make docs`` built when ``XPMLP_DOCS_SITE`` names it)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

#: What ``make docs`` needs, by import name (the ``docs`` extra of pyproject.toml).
DOCS_MODULES = ("sphinx", "pydata_sphinx_theme", "myst_parser", "numpydoc", "sphinx_gallery", "sphinxarg")


def missing_docs_toolchain() -> str:
    """Why the site cannot be built here ('' when it can)."""
    missing = [name for name in DOCS_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        return f"the docs toolchain is not installed ({', '.join(missing)}): pip install -e '.[docs]' or make docs"
    return ""


@pytest.fixture(scope="session")
def docs_site(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The built HTML site: ``{"html": folder, "log": build output, "seconds": build time}``.

    ``XPMLP_DOCS_SITE=docs/_build/html`` (CI, after ``make docs``) reuses that build; otherwise the
    site is built here with warnings as errors, as ``make docs`` builds it.
    """
    given = os.environ.get("XPMLP_DOCS_SITE")
    if given:
        html = Path(given)
        if not (html / "index.html").exists():
            pytest.fail(f"XPMLP_DOCS_SITE={given} holds no built site (run make docs first)")
        return {"html": html, "log": "", "seconds": None}
    why = missing_docs_toolchain()
    if why:
        pytest.skip(why)
    out = tmp_path_factory.mktemp("docs") / "html"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS),
                           str(out), "-d", str(out.parent / "doctrees")], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=1200)
    seconds = time.perf_counter() - start
    log = done.stdout + done.stderr
    if done.returncode != 0:
        pytest.fail(f"the docs build failed (exit {done.returncode}):\n{log[-6000:]}")
    return {"html": out, "log": log, "seconds": seconds}


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001 (pytest's hook signature)
    """Say why the documentation checks were skipped, once per reason, even without ``-rs``."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        if "/test_docs" in report.nodeid.replace("\\", "/") and isinstance(report.longrepr, tuple):
            reason = str(report.longrepr[2]).removeprefix("Skipped: ")
            reasons[reason] = reasons.get(reason, 0) + 1
    for reason, count in reasons.items():
        terminalreporter.write_line(f"documentation checks skipped ({count}): {reason}")
