"""The report's "Quality against cost" section of the default suite in headless Chromium: opened
(each task's trade-offs are collapsed to one line), both scatter charts render (visible, sized),
the frontier is drawn, and the recommended point is ringed and labelled with the system the
recommendation sentence names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .test_report_browser import chromium, page, report_file  # noqa: F401  (fixtures)


def test_tradeoff_charts_render_with_the_recommended_point_labelled(page: Any, report_file: Path) -> None:  # noqa: F811
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(report_file.resolve().as_uri(), wait_until="load")
    section = page.locator("section#tradeoffs")
    section.scroll_into_view_if_needed()
    assert section.is_visible()
    section.locator("details.tradeoff-task > summary").first.click()  # collapsed by default (one line per task)
    recommendation = section.locator("p.recommendation").first
    system = recommendation.get_attribute("data-system")
    assert system and system in recommendation.inner_text()
    for css in ("svg.chart-bytes", "svg.chart-latency"):
        chart = section.locator(css).first
        chart.scroll_into_view_if_needed()
        assert chart.is_visible()
        box = chart.bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 100
        assert chart.locator("circle.point").count() >= 2
        ring = chart.locator("circle.recommended")
        assert ring.count() == 1 and ring.get_attribute("data-system") == system
        label = chart.locator("text.recommended-label")
        assert label.count() == 1 and label.is_visible() and label.text_content() == f"recommended: {system}"
        label_box = label.bounding_box()
        assert label_box is not None and label_box["width"] > 20
    assert section.locator("polyline.frontier").count() >= 1
    assert section.locator("table.tradeoffs tr.recommended-row").count() >= 1
    assert page.locator("table.comparison th", has_text="bytes/doc").count() >= 1
    assert problems == [], problems
