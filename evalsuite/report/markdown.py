"""The Markdown variant of a report: gate decisions and comparison tables, for a PR comment or
a CI job summary (``$GITHUB_STEP_SUMMARY``). Same numbers as the HTML page (one
:class:`~evalsuite.report.model.Report`); no charts, no drill-down.

Text from the results is escaped for Markdown (``| * _ ` [ ] \\``) and for the HTML that
Markdown renderers pass through (``< > &``), so a system name or a gate message cannot break
the table or inject markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from evalsuite.report.model import MetricValue, Report, build_report
from evalsuite.results import SuiteResults

__all__ = ["md_escape", "render_markdown"]

_ICON = {"pass": "✅", "warn": "⚠️", "fail": "❌", "none": "ℹ️"}  # noqa: RUF001
_MD_SPECIAL = "\\`*_[]|"


def md_escape(text: object) -> str:
    """Text safe inside a Markdown table cell (one line, no markup)."""
    out = []
    for ch in " ".join(str(text).split()):
        if ch in _MD_SPECIAL:
            out.append("\\" + ch)
        elif ch == "<":
            out.append("&lt;")
        elif ch == ">":
            out.append("&gt;")
        elif ch == "&":
            out.append("&amp;")
        else:
            out.append(ch)
    return "".join(out)


def _cell(v: MetricValue, digits: int) -> str:
    if math.isnan(v.value):
        return "—"
    text = f"{v.value:.{digits}f}"
    if v.best:
        text = f"**{text}**"
    if v.ci is not None and v.ci.n >= 2 and not math.isnan(v.ci.low):
        text += f" [{v.ci.low:.3f}, {v.ci.high:.3f}]"
    if v.marker:
        text += f" {v.marker}"
    return text


def render_markdown(
    results: SuiteResults | Sequence[SuiteResults] | Report,
    *,
    baseline_system: str | None = None,
    digits: int = 4,
    **options: Any,
) -> str:
    """The gate summary and one table per task as Markdown (see the module docstring).

    ``results`` may be suite results or a prebuilt :class:`Report` (then the other options
    are ignored); ``options`` go to :func:`~evalsuite.report.model.build_report`.
    """
    report = results if isinstance(results, Report) else build_report(
        results, baseline_system=baseline_system, **options)
    lines = [f"## evalsuite report: {md_escape(report.title)}", "",
             f"{_ICON[report.gate_status]} **{md_escape(report.headline)}**", ""]
    if report.gates:
        lines += ["| | gate | decision |", "|---|---|---|"]
        for g in report.gates:
            decision = (f"**{md_escape(g.decision)}**: " if g.decision else "") + md_escape(g.detail)
            lines.append(f"| {_ICON.get(g.status, '')} | {md_escape(g.title)} | {decision} |")
        lines.append("")
    from evalsuite.report.finetune import finetune_markdown

    lines += finetune_markdown(report.finetune, md_escape)
    for task in report.tasks:
        lines += [f"### {md_escape(task.name)}", ""]
        lines.append("| system | " + " | ".join(md_escape(m) for m in task.metrics) + " |")
        lines.append("|---|" + "---:|" * len(task.metrics))
        for row in task.rows:
            name = md_escape(row.system.key) + (" (baseline)" if row.is_baseline else "")
            lines.append(f"| {name} | " + " | ".join(_cell(v, digits) for v in row.values) + " |")
        lines.append("")
        for note in [*(f"{row.system.key}: {row.note}" for row in task.rows if row.note), *task.notes]:
            lines += [f"_{md_escape(note)}_", ""]
    lines.append(f"Mean over queries with [95% bootstrap CI]; **bold**: best in column; ▲/▼: significantly "
                 f"better/worse than the baseline {md_escape(report.baseline.key)} (paired randomization test, "
                 f"Holm-corrected over {report.n_comparisons} comparisons, alpha = {report.alpha:g}).")
    for note in report.notes:
        lines += ["", f"_{md_escape(note)}_"]
    return "\n".join(lines) + "\n"
