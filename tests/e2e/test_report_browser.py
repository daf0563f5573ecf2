"""The HTML report of the default suite in a real browser: headless Chromium driven by Playwright.

The browser is the Debian ``chromium`` package (Playwright's own browser downloads are never
used; ``executable_path`` points at the system binary). What the test needs is installed
through ``scripts/install_browser.sh`` (apt-get for chromium when run as root, pip for the
playwright package); the test is skipped, saying why, only when that cannot provide a browser.

Checks: the page makes no network request (only its own file:// URL is loaded) and logs no
console error (the page's Content Security Policy would log any blocked request or script);
every task's verdict is visible above the first table; the decisions block carries the gate
decisions and the set-up notes are collapsed below; the comparison tables and the charts are
visible and no chart grid has an empty cell; every delta histogram's caption counts equal its
bars' heights read from the SVG geometry; typing into the drill-down filter hides the rows that
do not match; a one-task report reaches its drill-down within about two screens; the file is
under 2 MB. Screenshots (first and second screen, the whole page) are saved into
``$EVALSUITE_SCREENSHOTS`` when set (else the test's temporary folder) for a person to look at.
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


def _shots_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("EVALSUITE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# bar heights -> counts: the y axis ticks (text at the left, anchor "end") give pixels per query
_HISTOGRAMS_JS = """
() => Array.from(document.querySelectorAll('figure.chart-deltas')).map(fig => {
  const svg = fig.querySelector('svg');
  const ticks = Array.from(svg.querySelectorAll('text.tick[text-anchor="end"]'))
    .map(t => [parseFloat(t.textContent), parseFloat(t.getAttribute('y'))]);
  const bars = Array.from(svg.querySelectorAll('rect[class^="bin-"]'))
    .map(r => [r.getAttribute('class'), parseFloat(r.getAttribute('height')), r.getBoundingClientRect().height]);
  const caption = fig.querySelector('figcaption');
  return {task: fig.dataset.task, ticks: ticks, bars: bars,
          better: parseInt(caption.querySelector('.n-better').textContent),
          worse: parseInt(caption.querySelector('.n-worse').textContent),
          tied: parseInt(caption.querySelector('.n-tied').textContent)};
})
"""


# per chart grid: the width of its column tracks (with gaps), and how much of it each row of figures fills
_GRID_ROWS_JS = """
() => Array.from(document.querySelectorAll('div.charts')).map(d => {
  const style = getComputedStyle(d);
  const gap = parseFloat(style.columnGap) || 0;
  const cols = style.gridTemplateColumns.split(' ').map(parseFloat);
  const tracks = cols.reduce((a, b) => a + b, 0) + gap * (cols.length - 1);
  const rows = {};
  for (const c of d.children) {
    const r = c.getBoundingClientRect();
    const key = Math.round(r.top);
    rows[key] = rows[key] || [0, 0];
    rows[key][0] += r.width; rows[key][1] += 1;
  }
  return [tracks, Object.values(rows).map(([w, n]) => w + gap * (n - 1))];
})
"""


def _counts_from_geometry(hist: dict[str, Any]) -> dict[str, int]:
    (v0, y0), (v1, y1) = hist["ticks"][0], hist["ticks"][-1]
    per_query = (y0 - y1) / (v1 - v0)  # SVG units per query on the y axis
    counts = {"bin-win": 0, "bin-loss": 0, "bin-tie": 0}
    for cls, height, _ in hist["bars"]:
        n = height / per_query
        assert abs(n - round(n)) < 0.05, f"{hist['task']}: a {cls} bar {height} high is not a whole count ({n})"
        counts[cls] += round(n)
    return counts


def test_report_in_headless_chromium(chromium: str, page: Any, report_file: Path, default_run: Path,
                                     tmp_path: Path) -> None:
    requests: list[str] = []
    problems: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    url = report_file.resolve().as_uri()
    page.goto(url, wait_until="load")
    shots = _shots_dir(tmp_path)
    page.screenshot(path=str(shots / "report-screen-1.png"), full_page=False)
    page.evaluate("window.scrollTo(0, window.innerHeight)")
    page.screenshot(path=str(shots / "report-screen-2.png"), full_page=False)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(shots / "report-full.png"), full_page=True)
    assert (shots / "report-screen-1.png").stat().st_size > 10_000

    # every task's verdict is visible, above the first table
    results = load_results(default_run)
    tasks = list(dict.fromkeys(c.task for c in results.cells))
    first_table = page.locator("table").first.bounding_box()
    for task in tasks:
        verdict = page.locator(f'[id="verdict-{task}"]')
        assert verdict.count() == 1 and verdict.is_visible(), task
        box = verdict.bounding_box()
        assert box is not None and box["y"] + box["height"] <= first_table["y"], task
        assert verdict.locator(".verdict-head").inner_text().startswith(f"{task}: ")

    # the decisions come next; set-up notes (no baseline yet, skipped tasks) are collapsed at the end
    gates = results.gates
    assert gates, "the default suite declares gates"
    decisions = page.locator("#decisions")
    assert decisions.is_visible()
    assert decisions.evaluate("e => getComputedStyle(e).backgroundColor") != "rgba(0, 0, 0, 0)"  # colour-coded
    text = decisions.inner_text()
    for g in gates:
        if g["decision"]:
            assert g["decision"] in text
        else:  # set-up: not in the decisions block, in the collapsed notes
            assert g["message"] not in text
            note = page.locator("#setup li", has_text=g["message"].split(":")[0]).first
            assert note.count() == 1 and not note.is_visible()
    last = page.locator("#verdict .verdict").last.bounding_box()
    assert last["y"] < decisions.bounding_box()["y"] < page.locator("#comparison").bounding_box()["y"]
    if page.locator("#setup").count():
        assert page.locator("#reproducibility").bounding_box()["y"] < page.locator("#setup").bounding_box()["y"]
        page.locator("#setup summary").click()
        assert page.locator("#setup li").first.is_visible()

    # the comparison tables, the pairwise matrices and the charts are visible; no chart grid has an empty cell
    tables = page.locator("table.comparison")
    assert tables.count() == len(tasks) and tables.first.is_visible()
    assert tables.first.locator("tbody tr").count() >= 2
    assert page.locator("table.matrix").first.is_visible()
    charts = page.locator("svg.chart")
    assert charts.count() >= 3
    charts.first.scroll_into_view_if_needed()
    assert charts.first.is_visible()
    box = charts.first.bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 50
    grids = page.evaluate(_GRID_ROWS_JS)
    assert grids, "the report lays its charts out in grids"
    for tracks, rows in grids:  # every row of every grid is filled: no empty cell
        assert all(abs(filled - tracks) <= 2 for filled in rows), (tracks, rows)

    # every delta histogram: the caption's counts are the bars' heights on the y axis
    histograms = page.evaluate(_HISTOGRAMS_JS)
    assert histograms, "the default suite has a retrieval task with a per-query histogram"
    for hist in histograms:
        counts = _counts_from_geometry(hist)
        assert (counts["bin-win"], counts["bin-loss"], counts["bin-tie"]) == (
            hist["better"], hist["worse"], hist["tied"]), hist["task"]
        assert sum(1 for cls, _, _ in hist["bars"] if cls == "bin-tie") == 1
        assert all(shown > 0 for _, height, shown in hist["bars"] if height > 0)  # drawn, not collapsed

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

    assert requests == [url], f"the report must load nothing but itself, it requested {requests}"
    assert problems == [], problems


def test_one_task_report_fits_in_about_two_screens(page: Any, default_run: Path, tmp_path: Path) -> None:
    results = load_results(default_run)
    task = results.cells[0].task  # cranfield-50: the shipped golden set, always present
    results.cells = [c for c in results.cells if c.task == task]
    results.tasks = [t for t in results.tasks if t.get("name") == task]
    path = render_html(results, tmp_path / "one-task.html")
    page.goto(path.resolve().as_uri(), wait_until="load")
    screen = page.viewport_size["height"]
    top = page.locator("#drilldown").bounding_box()["y"]
    page.screenshot(path=str(_shots_dir(tmp_path) / "one-task-full.png"), full_page=True)
    assert top <= 2.2 * screen, f"the drill-down of a one-task report starts at {top:.0f} px: over two screens"
