"""The built site in a real browser: Debian's headless ``chromium`` driven by Playwright.

The home page, the API page of ``MLP`` and one gallery page load from ``file://`` with no
console error and no failed request, and every image on them has loaded. Skipped, with the
reason, where Playwright or a chromium executable is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

import os
import shutil

import pytest

PAGES = ["index.html", "api/xpmlp.model.html", "auto_examples/plot_two_layer.html"]


def chromium_executable() -> str:
    """The system's chromium ('' when there is none): ``$CHROMIUM``, else chromium on PATH."""
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return ""


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (the docs extra)")
    executable = chromium_executable()
    if not executable:
        pytest.skip("no chromium executable (apt-get install chromium, or set $CHROMIUM)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--allow-file-access-from-files"])
        yield browser
        browser.close()


@pytest.mark.parametrize("page_path", PAGES)
def test_page_loads_cleanly(browser, docs_site, page_path):
    path = docs_site["html"] / page_path
    assert path.exists(), f"{page_path} was not built"
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("requestfailed", lambda req: errors.append(f"request failed: {req.url} ({req.failure})"))
    page.goto(path.resolve().as_uri(), wait_until="load")
    page.wait_for_timeout(300)
    images = page.evaluate("""() => Array.from(document.images).map(
        img => ({src: img.currentSrc || img.src, ok: img.complete && img.naturalWidth > 0}))""")
    title = page.title()
    page.close()
    assert not errors, "\n".join(errors)
    assert [i["src"] for i in images if not i["ok"]] == [], "images that did not load"
    assert "xpmlp" in title
    if page_path.startswith("auto_examples/"):
        assert any("sphx_glr_" in i["src"] for i in images), "the gallery page shows no figure"
