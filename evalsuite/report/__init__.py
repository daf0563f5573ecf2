"""Model-comparison reports: one self-contained HTML file, and a Markdown summary.

``render_html(results, "reports/x.html")`` writes the page (the verdict of every task, gate
decisions, comparison tables with bootstrap CIs and pairwise significance matrices, inline SVG
charts, per-query histogram and drill-down, leakage findings, reproducibility data, set-up
notes); ``render_markdown(results)`` returns the verdicts, the gate decisions and the tables
as Markdown for a PR comment or a CI job summary. Both compute the same
:class:`~evalsuite.report.model.Report` with :func:`build_report`.

The names are imported on first use, so that the CLI can register ``evalsuite report``
(:mod:`evalsuite.report.command`) without loading pandas, SciPy or Jinja2 at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evalsuite.report.markdown import render_markdown
    from evalsuite.report.model import Report, build_report
    from evalsuite.report.render import render_html

__all__ = ["Report", "build_report", "render_html", "render_markdown"]

_WHERE = {"Report": "model", "build_report": "model", "render_html": "render", "render_markdown": "markdown"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"evalsuite.report.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'evalsuite.report' has no attribute {name!r}")
