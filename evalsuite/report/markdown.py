"""The Markdown variant of a report: the verdicts first, then the gate decisions, the comparison
tables with the main metric's pairwise matrix and the set-up notes (collapsed), for a PR comment or
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

from evalsuite.report.model import MetricValue, Report, TaskView, build_report
from evalsuite.report.verdict import format_p
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


def _verdict_lines(report: Report) -> list[str]:
    """The verdicts, in the same words as the HTML page and the CLI (emphasis added)."""
    lines: list[str] = []
    for v in report.verdicts:
        lines.append(f"**{md_escape(v.headline)}**")
        lines += [f"- {'**' + md_escape(text) + '**' if kind == 'decision' else md_escape(text)}"
                  for kind, text in v.lines]
        if v.method_note:
            lines.append(f"- _{md_escape(v.method_note)}_")
        lines.append("")
    return lines


def _matrix(task: TaskView, metric: str) -> list[str]:
    keys = [s.key for s in task.systems]
    lines = [f"{md_escape(metric)}, row minus column (p Holm): ", "",
             "| | " + " | ".join(md_escape(k) for k in keys) + " |", "|---|" + "---:|" * len(keys)]
    for row in keys:
        cells = []
        for col in keys:
            c = task.cell(metric, row, col)
            cells.append("·" if row == col else "—" if c is None else
                         f"{c.delta:+.4f}{' ' + c.marker if c.marker else ''} (p {format_p(c.p_holm)})")
        lines.append(f"| {md_escape(row)} | " + " | ".join(md_escape(c) for c in cells) + " |")
    return [*lines, ""]


def render_markdown(
    results: SuiteResults | Sequence[SuiteResults] | Report,
    *,
    baseline_system: str | None = None,
    digits: int = 4,
    **options: Any,
) -> str:
    """The verdicts, the gate decisions and one table per task as Markdown (see the module docstring).

    ``results`` may be suite results or a prebuilt :class:`Report` (then the other options
    are ignored); ``options`` go to :func:`~evalsuite.report.model.build_report`.
    """
    report = results if isinstance(results, Report) else build_report(
        results, baseline_system=baseline_system, **options)
    lines = [f"## evalsuite report: {md_escape(report.title)}", "", *_verdict_lines(report),
             f"{_ICON[report.gate_status]} **{md_escape(report.headline)}**", ""]
    if report.gates:
        lines += [f"Gate checks: {md_escape(report.counts_line)}.", "", "| | gate | decision |", "|---|---|---|"]
        for g in report.gates:
            where = g.where[0] if g.count == 1 else f"{g.count} task/system pairs"
            text = f"**{md_escape(g.label)}**: {md_escape(g.detail)}"
            if g.fired and g.meaning:
                text += f"<br>{md_escape(g.meaning)}"
            if g.fired and g.alternatives:
                text += (f"<br>{md_escape(g.alternatives_title)}: "
                         + "; ".join(md_escape(a.text) for a in g.alternatives))
            lines.append(f"| {_ICON.get(g.status, '')} | {md_escape(g.gate)} \\[{md_escape(where)}\\] | {text} |")
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
        if task.not_applicable:
            lines += [f"Not applicable: {md_escape(task.not_applicable_text)}", ""]
        for note in (f"{row.system.key}: {row.note}" for row in task.rows if row.note):
            lines += [f"_{md_escape(note)}_", ""]
        if task.main_metric in task.pairwise:
            lines += _matrix(task, task.main_metric)
    lines.append(f"Mean over queries with [95% bootstrap CI]; **bold**: best in column; ▲/▼: significantly "
                 f"better/worse than the task's baseline ({md_escape(report.baseline.key)} unless it has no result "
                 "there); paired randomization test (STS: paired bootstrap over sentence pairs), Holm-corrected "
                 f"within each task, alpha = {report.alpha:g}.")
    if report.setup:
        lines += ["", f"<details><summary>Set-up notes ({len(report.setup)})</summary>", ""]
        for n in report.setup:
            lines.append(f"- {md_escape(n.text)}" + (f" Fix: {md_escape(n.fix)}" if n.fix else ""))
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"
