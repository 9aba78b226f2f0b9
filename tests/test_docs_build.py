"""The documentation site: it builds with no warning, has its pages, executed examples and
generated references, and no broken internal link; the README stays one screen."""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))

from check_links import broken_links  # noqa: E402

GUIDE = ["getting-started", "building-networks", "training", "devices", "studies", "sklearn", "sweeps",
         "runs-and-faults", "benchmarks", "cli", "development"]


def test_readme_is_one_screen():
    size = len((ROOT / "README.md").read_text(encoding="utf-8"))
    assert size <= 10_000, f"README.md has {size} characters; move detail into docs/ (at most 10,000)"


def test_site_builds_without_warnings(docs_site):
    warnings = [line for line in docs_site["log"].splitlines() if "WARNING" in line or "ERROR" in line]
    assert not warnings, "\n".join(warnings)
    if docs_site["seconds"] is not None:
        print(f"docs built in {docs_site['seconds']:.1f} s")


def test_site_has_every_page(docs_site):
    site = docs_site["html"]
    for page in ["index", *GUIDE, "api/index", "auto_examples/index"]:
        assert (site / f"{page}.html").exists(), f"{page}.html was not built"
    pages = [p for p in site.rglob("*.html") if not p.relative_to(site).parts[0].startswith("_")
             and p.stem not in ("genindex", "search", "py-modindex", "sg_execution_times")]
    assert len(pages) >= 10, [str(p) for p in pages]


def test_gallery_examples_ran_and_drew(docs_site):
    site = docs_site["html"]
    examples = sorted((site / "auto_examples").glob("plot_*.html"))
    assert len(examples) >= 6, [p.name for p in examples]
    for page in examples:
        text = page.read_text(encoding="utf-8")
        images = re.findall(r'<img[^>]+src="([^"]+)"', text)
        drawn = [src for src in images if "sphx_glr_" in src and not src.endswith("_thumb.png")]
        assert drawn, f"{page.name}: no figure rendered"
        for src in drawn:
            assert (page.parent / src).resolve().exists(), f"{page.name}: {src} missing"
        assert "sphx-glr-script-out" in text, f"{page.name}: no printed output"


def test_api_reference_documents_every_public_name(docs_site):
    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    from xpmlp_apiref import API, module_names

    site = docs_site["html"]
    for module in API:
        page = (site / "api" / f"{module}.html").read_text(encoding="utf-8")
        for name in module_names(module):
            assert f'id="{module}.{name}"' in page, f"{module}.{name} is not on its API page"


def test_cli_reference_is_generated_from_the_parsers(docs_site):
    from xpmlp.cli import build_parser

    page = html.unescape(re.sub(r"<[^>]+>", "", (docs_site["html"] / "cli.html").read_text(encoding="utf-8")))
    parser = build_parser()
    commands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    for name, sub in commands.items():
        assert f"xpmlp {name}" in page, f"the CLI reference lacks xpmlp {name}"
        for action in sub._actions:
            if action.__class__.__name__ == "_HelpAction":  # sphinx-argparse leaves -h/--help out
                continue
            for flag in action.option_strings:
                if flag.startswith("--"):
                    assert flag in page, f"the CLI reference lacks xpmlp {name} {flag}"


def test_no_broken_internal_links(docs_site):
    assert broken_links(docs_site["html"]) == []


@pytest.mark.parametrize("page", ["index.html", "api/xpmlp.model.html"])
def test_site_opens_from_files(docs_site, page):
    """No server: every stylesheet and script a page loads is a relative file that exists."""
    path = docs_site["html"] / page
    for src in re.findall(r'(?:src|href)="([^":#?]+\.(?:css|js))(?:\?[^"]*)?"', path.read_text(encoding="utf-8")):
        assert not src.startswith("/"), f"{page}: absolute path {src} needs a server"
        assert (path.parent / src).exists(), f"{page}: {src} missing"
