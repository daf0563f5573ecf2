"""The report's "Quality against cost" section: per task, the trade-offs of
:mod:`evalsuite.tradeoffs` with two scatter charts (quality vs bytes/doc on a log axis, quality
vs p95 latency), each with its Pareto frontier drawn and the recommended point labelled.

The charts are inline SVG written here with the helpers of :mod:`evalsuite.report.charts`
(every text escaped); the section's template is ``templates/_tradeoffs.html.j2``, which
renders nothing when no task has two systems with measured costs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup

from evalsuite.report.charts import _MARGIN, _Svg, _y_axis, nice_ticks
from evalsuite.results import SuiteResults
from evalsuite.tradeoffs import TaskTradeoffs, TradeoffPoint, task_tradeoffs

__all__ = ["TradeoffView", "build_tradeoffs", "scatter_chart"]

_FRONT = "#0072B2"
_OTHER = "#8c959f"
_PICK = "#D55E00"


@dataclass
class TradeoffView:
    """One task's trade-offs and its two charts."""

    data: TaskTradeoffs
    chart_bytes: Markup
    chart_latency: Markup
    run_id: str

    @property
    def task(self) -> str:
        return self.data.task

    def on_front(self, point: TradeoffPoint) -> str:
        """Which frontiers the point is on ("memory", "latency", both or empty)."""
        marks = [label for label, front in (("memory", self.data.front_bytes), ("latency", self.data.front_latency))
                 if any(p.system == point.system for p in front)]
        return ", ".join(marks)

    def share(self, point: TradeoffPoint) -> float:
        """Quality as a share of the best point's."""
        best = max(p.quality for p in self.data.points)
        return point.quality / best if best else math.nan


def _log_ticks(low: float, high: float) -> list[float]:
    """1-2-5 ticks per decade covering [low, high] (a log axis)."""
    start, stop = math.floor(math.log10(low)), math.ceil(math.log10(high))
    ticks = [m * 10.0 ** e for e in range(start, stop + 1) for m in (1, 2, 5)]
    inside = [t for t in ticks if low <= t <= high]
    if len(inside) > 8:
        inside = [t for t in inside if math.log10(t).is_integer()] or inside
    return inside


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:g}"


_CHAR_W = 0.56 * 11  # mean glyph width at the charts' font size (11 px), for label boxes
_LINE_H = 11.0
#: a white outline under label text, so that a label crossing a line or a dot stays legible
_HALO = {"stroke": "#ffffff", "stroke_width": 3, "paint_order": "stroke", "stroke_linejoin": "round"}


def _common_base(names: Sequence[str]) -> str:
    """``minilm@`` when every name is a point of the sweep ``minilm`` (the labels then drop it)."""
    bases = {n.partition("@")[0] for n in names if "@" in n}
    if len(bases) != 1 or any("@" not in n for n in names) or len(names) < 2:
        return ""
    return f"{bases.pop()}@"


def _place(text: str, cx: float, cy: float, placed: list[tuple[float, float, float, float]],
           bounds: tuple[float, float], *, prefer_right: bool, gap: float) -> tuple[float, float, str] | None:
    """A spot for ``text`` beside the point (cx, cy) that overlaps no label placed so far and stays
    inside the plot's width: (x, y, text-anchor), or None; the spot taken is added to ``placed``."""
    width = len(text) * _CHAR_W
    sides = ("start", "end") if prefer_right else ("end", "start")
    for dy in (-gap + 2, gap + 8, -gap - 10, gap + 20, -gap - 22, gap + 32):
        for anchor in sides:
            x = cx + gap if anchor == "start" else cx - gap
            left = x if anchor == "start" else x - width
            box = (left, cy + dy - _LINE_H, left + width, cy + dy + 2)
            if box[0] < bounds[0] - 40 or box[2] > bounds[1] + 10 or box[1] < 0:
                continue
            if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                continue
            placed.append(box)
            return x, cy + dy, anchor
    return None


def scatter_chart(points: Sequence[TradeoffPoint], cost: Callable[[TradeoffPoint], float | None],
                  front: Sequence[TradeoffPoint], recommended: str | None, *, title: str, x_label: str,
                  y_label: str, log_x: bool, css: str, width: float = 540, height: float = 300) -> Markup:
    """Quality (y) against a cost (x) for every point with that cost; the frontier as a line,
    its points in blue; the recommended point ringed and labelled with its name.

    With many points (a 100-point sweep) only the recommended point and the frontier's points
    are labelled (the frontier's without the sweep's name when they share it, and only where a
    label fits without overlapping another); every other point is a grey dot whose name and
    values are in its ``<title>`` tooltip."""
    svg = _Svg(width, height, title, f"chart chart-tradeoff {css}")
    usable = [(p, float(c)) for p in points if (c := cost(p)) is not None and not math.isnan(p.quality)
              and (c > 0 or not log_x)]
    if not usable:
        svg.text(width / 2, height / 2, "no point has this cost measured", css_class="tick")
        return svg.markup()
    x0, x1 = _MARGIN["left"] + 8, width - _MARGIN["right"] - 8
    y0, y1 = height - _MARGIN["bottom"], _MARGIN["top"] + 14
    qs = [p.quality for p, _ in usable]
    ticks_y = nice_ticks(min(qs) - 0.02, max(qs) + 0.01)
    lo_y, hi_y = ticks_y[0], ticks_y[-1]
    costs = [c for _, c in usable]
    if log_x:
        lo_x, hi_x = min(costs) / 1.5, max(costs) * 1.5
        ticks_x = _log_ticks(lo_x, hi_x)

        def xpos(v: float) -> float:
            return x0 + (math.log10(v) - math.log10(lo_x)) / (math.log10(hi_x) - math.log10(lo_x)) * (x1 - x0)
    else:
        ticks_x = nice_ticks(0.0, max(costs) * 1.05 or 1.0)
        lo_x, hi_x = ticks_x[0], ticks_x[-1]

        def xpos(v: float) -> float:
            return x0 + (v - lo_x) / ((hi_x - lo_x) or 1.0) * (x1 - x0)

    def ypos(v: float) -> float:
        return y0 - (v - lo_y) / ((hi_y - lo_y) or 1.0) * (y0 - y1)

    _y_axis(svg, ticks_y, ypos, x0 - 8, x1 + 8, y_label)
    for t in ticks_x:
        svg.el("line", x1=xpos(t), x2=xpos(t), y1=y1, y2=y0, class_="grid")
        svg.text(xpos(t), y0 + 14, _fmt(t), css_class="tick")
    svg.text((x0 + x1) / 2, y0 + 28, x_label, css_class="axis-label")
    svg.el("line", x1=x0 - 8, x2=x1 + 8, y1=y0, y2=y0, class_="axis")
    on_front = {p.system for p in front}
    line = [(xpos(c), ypos(p.quality)) for p, c in sorted(usable, key=lambda pc: pc[1]) if p.system in on_front]
    if len(line) > 1:  # the frontier as a staircase: quality holds until the next frontier point
        steps = [line[0]]
        for (_, ya), (xb, yb) in itertools.pairwise(line):
            steps += [(xb, ya), (xb, yb)]
        svg.el("polyline", points=" ".join(f"{x:.1f},{y:.1f}" for x, y in steps), fill="none", stroke=_FRONT,
               stroke_width=1.5, class_="frontier")
    for p, c in sorted(usable, key=lambda pc: pc[0].system in on_front):
        tip = f"{p.system}: {y_label} {p.quality:.4f}, {x_label} {c:,.4g}" + (" (Pareto frontier)"
                                                                                if p.system in on_front else "")
        svg.el("circle", cx=xpos(c), cy=ypos(p.quality), r=4.0 if p.system in on_front else 2.5,
               fill=_FRONT if p.system in on_front else _OTHER, class_="point front" if p.system in on_front
               else "point", data_system=p.system, tooltip=tip)
    placed: list[tuple[float, float, float, float]] = [(x0 - 8, y0, x1 + 8, y0 + 40)]  # the x axis and its ticks
    for p, c in usable:  # labels keep off the frontier's dots
        if p.system in on_front or p.system == recommended:
            cx, cy = xpos(c), ypos(p.quality)
            placed.append((cx - 5, cy - 5, cx + 5, cy + 5))
    pick = next(((p, c) for p, c in usable if p.system == recommended), None)
    if pick is not None:
        p, c = pick
        cx, cy = xpos(c), ypos(p.quality)
        svg.el("circle", cx=cx, cy=cy, r=8.0, fill="none", stroke=_PICK, stroke_width=2.0, class_="recommended",
               data_system=p.system)
        text = f"recommended: {p.system}"
        right = cx < (x0 + x1) / 2
        spot = _place(text, cx, cy, placed, (x0, x1), prefer_right=right, gap=11) or \
            (cx + 11 if right else cx - 11, cy - 10, "start" if right else "end")
        svg.text(spot[0], spot[1], text, anchor=spot[2], css_class="recommended-label", fill=_PICK, **_HALO)
    # the frontier's other points get a short label where one fits; every point keeps its tooltip
    base = _common_base([p.system for p, _ in usable if p.system in on_front])
    for p, c in sorted(usable, key=lambda pc: pc[1]):
        if p.system not in on_front or p.system == recommended:
            continue
        cx, cy = xpos(c), ypos(p.quality)
        text = p.system[len(base):] if base else p.system
        where = _place(text, cx, cy, placed, (x0, x1), prefer_right=cx < (x0 + x1) / 2, gap=6)
        if where is not None:
            svg.text(where[0], where[1], text, anchor=where[2], css_class="front-label", fill=_FRONT,
                     data_system=p.system, **_HALO)
    return svg.markup()


def build_tradeoffs(sources: Sequence[SuiteResults], *, alpha: float | None = None,
                    n_resamples: int = 10_000) -> list[TradeoffView]:
    """A view per (run, task) with at least two systems whose costs were measured."""
    views = []
    for results in sources:
        for task in dict.fromkeys(c.task for c in results.cells if c.kind == "retrieval"):
            data = task_tradeoffs(results, task, alpha=alpha, n_resamples=n_resamples)
            if data is None:
                continue
            pick = data.recommendation.point.system if data.recommendation is not None else None
            where = f"{task}" + (f" (run {results.run_id})" if len(sources) > 1 else "")
            chart_bytes = scatter_chart(
                data.points, lambda p: p.bytes_per_doc, data.front_bytes, pick, log_x=True, css="chart-bytes",
                title=f"{where}: {data.metric} against index bytes per document (log scale)",
                x_label="index bytes per document (log scale)", y_label=data.metric)
            chart_latency = scatter_chart(
                data.points, lambda p: p.p95_ms, data.front_latency, pick, log_x=False, css="chart-latency",
                title=f"{where}: {data.metric} against p95 query latency",
                x_label="p95 query latency, ms (encoding included)", y_label=data.metric)
            views.append(TradeoffView(data, chart_bytes, chart_latency, results.run_id))
    return views
