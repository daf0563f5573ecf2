"""The HTML report of the default suite in a real browser: headless Chromium driven by Playwright.

The browser is the Debian ``chromium`` package (Playwright's own browser downloads are never
used; ``executable_path`` points at the system binary). What the test needs is installed
through ``scripts/install_browser.sh`` (apt-get for chromium when run as root, pip for the
playwright package); the test is skipped, saying why, only when that cannot provide a browser.

Checks: the page makes no network request (only its own file:// URL is loaded) and logs no
console error (the page's Content Security Policy would log any blocked request or script);
the gate banner, the comparison tables and the charts are visible; typing into the
drill-down filter hides the rows that do not match; a screenshot is saved; the file is
under 2 MB.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evalsuite.report import render_html
from evalsuite.report.render import SIZE_BUDGET
from evalsuite.results import load_results

REPO = Path(__file__).resolve().parents[2]
INSTALLER = REPO / "scripts" / "install_browser.sh"


def _chromium() -> str | None:
    """$EVALSUITE_CHROMIUM, else the first Chromium/Chrome on PATH."""
    explicit = os.environ.get("EVALSUITE_CHROMIUM")
    if explicit:
        if not Path(explicit).is_file():
            pytest.fail(f"EVALSUITE_CHROMIUM={explicit} is not a file; unset it or point it at a chromium binary")
        return explicit
    for name in ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _has_playwright() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="session")
def chromium() -> str:
    """The system Chromium, installed with scripts/install_browser.sh when missing (session scope, so that
    a missing browser skips before the default suite is run for nothing)."""
    if _chromium() is None or not _has_playwright():
        proc = subprocess.run(["bash", str(INSTALLER)], env={**os.environ, "PYTHON": sys.executable},
                              capture_output=True, text=True, timeout=900)
        if proc.returncode != 0 and (_chromium() is None or not _has_playwright()):
            pytest.skip("no browser could be installed for the report test: "
                        + (proc.stderr.strip().splitlines() or ["scripts/install_browser.sh failed"])[-1])
    exe = _chromium()
    if exe is None or not _has_playwright():
        pytest.skip("no browser could be installed: scripts/install_browser.sh found no chromium or no playwright")
    return exe


@pytest.fixture(scope="module")
def report_file(default_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "default.html"
    return render_html(load_results(default_run), out)


@pytest.fixture()
def page(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 900})
        finally:
            browser.close()


def test_report_of_default_suite_is_under_2_mb(report_file: Path) -> None:
    assert report_file.stat().st_size < SIZE_BUDGET == 2 * 1024 * 1024


def test_report_in_headless_chromium(chromium: str, page: Any, report_file: Path, default_run: Path,
                                     tmp_path: Path) -> None:
    requests: list[str] = []
    problems: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    url = report_file.resolve().as_uri()
    page.goto(url, wait_until="load")

    # the gate banner comes first and carries the run's verdict
    gates = load_results(default_run).gates
    assert gates, "the default suite declares gates"
    worst = next(s for s in ("fail", "warn", "pass") if any(g["status"] == s for g in gates))
    banner = page.locator("#gates")
    assert banner.is_visible()
    assert banner.get_attribute("data-status") == worst
    assert banner.evaluate("e => getComputedStyle(e).backgroundColor") != "rgba(0, 0, 0, 0)"  # colour-coded
    text = banner.inner_text()
    for g in gates:
        assert (g["decision"] or g["message"].split(":")[0]) in text
    assert page.locator("section#gates").bounding_box()["y"] < page.locator("section#comparison").bounding_box()["y"]

    # the comparison table and at least one chart are visible
    tables = page.locator("table.comparison")
    assert tables.count() >= 1 and tables.first.is_visible()
    assert tables.first.locator("tbody tr").count() >= 2
    charts = page.locator("svg.chart")
    assert charts.count() >= 3
    charts.first.scroll_into_view_if_needed()
    assert charts.first.is_visible()
    box = charts.first.bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 50

    # the drill-down filter: type a query's own text, only matching rows stay
    rows = page.locator("tbody.dd-row")
    total = rows.count()
    assert total > 1
    first_text = rows.first.locator("td.text").inner_text().strip()
    word = max(first_text.split(), key=len)
    page.locator("#dd-filter").fill(word)
    visible = [r for r in rows.all() if r.is_visible()]
    assert 1 <= len(visible) < total, f"filter {word!r} should keep some rows and hide others"
    assert all(word.lower() in (r.text_content() or "").lower() for r in visible)
    assert page.locator("#dd-count").inner_text().startswith(f"{len(visible)} of {total}")
    page.locator("#dd-filter").fill("no query contains this zqxj")
    assert not any(r.is_visible() for r in rows.all())
    page.locator("#dd-filter").fill("")
    page.locator("#dd-sign").select_option("worse")
    worse = [r for r in rows.all() if r.is_visible()]
    assert all(r.get_attribute("data-sign") == "worse" for r in worse)
    page.locator("#dd-sign").select_option("all")
    assert sum(r.is_visible() for r in rows.all()) == total

    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000

    assert requests == [url], f"the report must load nothing but itself, it requested {requests}"
    assert problems == [], problems
