"""Charts as small hand-written inline SVG: no plotting library, no fonts, no external file.

Why not matplotlib: its SVG output draws every glyph as a path (tens of kB per chart), adds a
heavy import and a dependency, and its text is no longer text (not searchable, not
selectable). These three charts are bars, lines and a histogram; a few lines of geometry
each. Every string that reaches the SVG (system names, tooltips) goes through
:func:`markupsafe.escape`, so a hostile name cannot inject markup.

The functions return :class:`markupsafe.Markup`, safe to place in a Jinja template with
autoescape on. Each ``<svg>`` has a ``<title>`` and ``role="img"`` for screen readers, and
each mark a ``<title>`` that the browser shows on hover.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

__all__ = ["PALETTE", "Bar", "DeltaBins", "bar_chart", "delta_bins", "delta_histogram", "line_chart", "nice_ticks"]

#: Okabe-Ito colours (distinguishable with the common colour-vision deficiencies).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")

_FONT = 11
_MARGIN = {"left": 46, "right": 12, "top": 14, "bottom": 44}


def _num(x: float) -> str:
    """Compact coordinates: 1 decimal is below a pixel's resolution of interest."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _attrs(**attrs: object) -> str:
    parts = []
    for key, value in attrs.items():
        if value is None:
            continue
        name = key.rstrip("_").replace("_", "-")
        text = _num(value) if isinstance(value, float) else str(value)
        parts.append(f' {name}="{escape(text)}"')
    return "".join(parts)


class _Svg:
    """A minimal SVG writer; every attribute value and text node is escaped."""

    def __init__(self, width: float, height: float, title: str, css_class: str) -> None:
        self.width, self.height = width, height
        self.parts: list[str] = [f"<title>{escape(title)}</title>"]
        self.title, self.css_class = title, css_class

    def el(self, tag: str, *, tooltip: str | None = None, **attrs: object) -> None:
        if tooltip is None:
            self.parts.append(f"<{tag}{_attrs(**attrs)}/>")
        else:
            self.parts.append(f"<{tag}{_attrs(**attrs)}><title>{escape(tooltip)}</title></{tag}>")

    def text(self, x: float, y: float, text: str, *, anchor: str = "middle", css_class: str | None = None,
             **attrs: object) -> None:
        self.parts.append(f"<text{_attrs(x=x, y=y, text_anchor=anchor, class_=css_class, **attrs)}>"
                          f"{escape(text)}</text>")

    def markup(self) -> Markup:
        box = f"0 0 {_num(self.width)} {_num(self.height)}"
        attrs = _attrs(viewBox=box, width=self.width, height=self.height, role="img", class_=self.css_class,
                       aria_label=self.title, font_size=_FONT)
        head = f"<svg{attrs}>"
        return Markup(head + "".join(self.parts) + "</svg>")


def nice_ticks(low: float, high: float, target: int = 5, *, integer: bool = False) -> list[float]:
    """Round tick values from at most ``low`` to at least ``high`` with about ``target``
    intervals (steps 1, 2, 2.5, 5 times a power of ten; whole numbers with ``integer``).
    """
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low] if math.isfinite(low) else [0.0]
    raw = (high - low) / target
    if integer:
        raw = max(raw, 1.0)
    magnitude = 10 ** math.floor(math.log10(raw))
    steps = (1, 2, 5, 10) if integer else (1, 2, 2.5, 5, 10)
    step = next(m * magnitude for m in steps if m * magnitude >= raw)
    start = math.floor(low / step + 1e-9) * step
    if start + step == start or start + step * target * 4 < high:
        return [low, high]  # at this magnitude the step is below the float spacing: it could not advance
    ticks = []
    value = start
    while value <= high + step * 1e-6:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high - 1e-12:
        ticks.append(round(value, 10))
    return ticks


def _fmt_tick(value: float) -> str:
    return f"{value:g}" if abs(value) >= 1e-12 else "0"


def _y_axis(svg: _Svg, ticks: Sequence[float], y: Callable[[float], float], x0: float, x1: float,
            label: str) -> None:
    for t in ticks:
        yy = y(t)
        svg.el("line", x1=x0, x2=x1, y1=yy, y2=yy, class_="grid")
        svg.text(x0 - 4, yy + 3.5, _fmt_tick(t), anchor="end", css_class="tick")
    svg.text(12, (svg.height - _MARGIN["bottom"] + _MARGIN["top"]) / 2, label, css_class="axis-label",
             transform=f"rotate(-90 12 {_num((svg.height - _MARGIN['bottom'] + _MARGIN['top']) / 2)})")


def _legend(svg: _Svg, names: Sequence[str], colours: Sequence[str], y: float) -> None:
    x = float(_MARGIN["left"])
    for name, colour in zip(names, colours):
        svg.el("rect", x=x, y=y - 9, width=10.0, height=10.0, fill=colour)
        svg.text(x + 14, y, name, anchor="start", css_class="legend")
        x += 24 + 6.5 * len(name)


@dataclass(frozen=True)
class Bar:
    """One bar: a value with an optional interval (whisker)."""

    value: float
    low: float | None = None
    high: float | None = None


def bar_chart(groups: Sequence[str], series: Mapping[str, Sequence[Bar]], colours: Mapping[str, str], *,
              title: str, y_label: str = "score", width: float = 540, height: float = 260) -> Markup:
    """Grouped bars: one group per metric (``groups``), one bar per system (``series``), with
    whiskers from ``low`` to ``high`` where an interval is known. NaN values draw no bar.
    """
    svg = _Svg(width, height, title, "chart chart-bars")
    names = list(series)
    finite = [v for bars in series.values() for b in bars for v in (b.value, b.low, b.high)
              if v is not None and math.isfinite(v)]
    low, high = min([0.0, *finite]), max([0.0, *finite])
    if high - low < 1e-9:
        high = low + 1.0
    ticks = nice_ticks(low, high)
    lo, hi = ticks[0], ticks[-1]
    x0, x1 = _MARGIN["left"], width - _MARGIN["right"]
    y0, y1 = height - _MARGIN["bottom"], _MARGIN["top"]

    def y(v: float) -> float:
        return y0 - (v - lo) / (hi - lo) * (y0 - y1)

    _y_axis(svg, ticks, y, x0, x1, y_label)
    group_w = (x1 - x0) / max(1, len(groups))
    bar_w = min(28.0, group_w * 0.8 / max(1, len(names)))
    for g, group in enumerate(groups):
        gx = x0 + g * group_w + (group_w - bar_w * len(names)) / 2
        svg.text(x0 + (g + 0.5) * group_w, y0 + 14, group, css_class="tick")
        for s, name in enumerate(names):
            bar = series[name][g]
            if not math.isfinite(bar.value):
                continue
            bx = gx + s * bar_w
            top, base = y(max(bar.value, 0.0)), y(min(bar.value, 0.0))
            tip = f"{name} · {group}: {bar.value:.4f}"
            if bar.low is not None and bar.high is not None:
                tip += f" [95% CI {bar.low:.4f}, {bar.high:.4f}]"
            svg.el("rect", x=bx + 1, y=top, width=max(1.0, bar_w - 2), height=max(0.5, base - top),
                   fill=colours[name], tooltip=tip)
            if bar.low is not None and bar.high is not None and math.isfinite(bar.low) and math.isfinite(bar.high):
                cx = bx + bar_w / 2
                svg.el("line", x1=cx, x2=cx, y1=y(bar.low), y2=y(bar.high), class_="whisker")
                for v in (bar.low, bar.high):
                    svg.el("line", x1=cx - 3, x2=cx + 3, y1=y(v), y2=y(v), class_="whisker")
    svg.el("line", x1=x0, x2=x1, y1=y(0.0), y2=y(0.0), class_="axis")
    _legend(svg, names, [colours[n] for n in names], height - 8)
    return svg.markup()


def line_chart(xs: Sequence[int], series: Mapping[str, Sequence[float]], colours: Mapping[str, str], *,
               title: str, x_label: str = "k", y_label: str = "recall@k", width: float = 540,
               height: float = 260) -> Markup:
    """Lines over a log-spaced x axis (e.g. recall@k for k = 1, 2, 5, ..., 100), y from 0 to 1."""
    svg = _Svg(width, height, title, "chart chart-lines")
    x0, x1 = _MARGIN["left"], width - _MARGIN["right"] - 8
    y0, y1 = height - _MARGIN["bottom"], _MARGIN["top"]
    logs = [math.log(max(1, k)) for k in xs]
    span = (logs[-1] - logs[0]) or 1.0

    def x(i: int) -> float:
        return x0 + 8 + (logs[i] - logs[0]) / span * (x1 - x0 - 8)

    def y(v: float) -> float:
        return y0 - v * (y0 - y1)

    _y_axis(svg, nice_ticks(0.0, 1.0), y, x0, x1 + 8, y_label)
    for i, k in enumerate(xs):
        svg.text(x(i), y0 + 14, str(k), css_class="tick")
    svg.text((x0 + x1) / 2, y0 + 27, x_label, css_class="axis-label")
    for name, values in series.items():
        points = [(x(i), y(v)) for i, v in enumerate(values) if math.isfinite(v)]
        if not points:
            continue
        svg.el("polyline", points=" ".join(f"{_num(px)},{_num(py)}" for px, py in points), fill="none",
               stroke=colours[name], stroke_width=2.0)
        for i, v in enumerate(values):
            if math.isfinite(v):
                svg.el("circle", cx=x(i), cy=y(v), r=3.0, fill=colours[name],
                       tooltip=f"{name}: {y_label} at {x_label} = {xs[i]}: {v:.4f}")
    svg.el("line", x1=x0, x2=x1 + 8, y1=y0, y2=y0, class_="axis")
    names = list(series)
    _legend(svg, names, [colours[n] for n in names], height - 4)
    return svg.markup()


@dataclass(frozen=True)
class DeltaBins:
    """Per-query differences counted into bins: exact ties alone in one bin, and the non-zero
    differences in bins of width ``step`` on either side, so that a better and a worse query
    never share a bin. ``worse[i]`` counts differences in [-(i+1)*step, -i*step) and
    ``better[i]`` those in (i*step, (i+1)*step] (i = 0 is the bin next to zero).
    The chart and its caption both read these counts.
    """

    step: float
    worse: tuple[int, ...]
    ties: int
    better: tuple[int, ...]

    @property
    def n_better(self) -> int:
        return sum(self.better)

    @property
    def n_worse(self) -> int:
        return sum(self.worse)

    @property
    def total(self) -> int:
        return self.n_better + self.n_worse + self.ties


def delta_bins(deltas: Sequence[float], max_bins: int = 10) -> DeltaBins:
    """Count ``deltas`` (NaN left out) into :class:`DeltaBins`: at most ``max_bins`` bins a side,
    their width a round step (0.01, 0.02, 0.05, ...) wide enough for the largest difference.
    A difference is a tie only when it is exactly 0.
    """
    values = [float(d) for d in deltas if math.isfinite(d)]
    extent = max([abs(d) for d in values] + [1e-9])
    step = next((s for s in (0.001, 0.002, 0.005, 0.01, 0.02, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5)
                 if extent / s <= max_bins), 10 ** math.ceil(math.log10(extent / max_bins)))
    half = max(1, math.ceil(extent / step - 1e-9))
    worse, better = [0] * half, [0] * half
    ties = 0
    for d in values:
        if d == 0:
            ties += 1
            continue
        i = min(half - 1, max(0, math.ceil(abs(d) / step - 1e-9) - 1))
        (better if d > 0 else worse)[i] += 1
    return DeltaBins(step, tuple(worse), ties, tuple(better))


def delta_histogram(bins: DeltaBins | Sequence[float], *, title: str, x_label: str, width: float = 540,
                    height: float = 220) -> Markup:
    """Histogram of per-query differences (challenger - baseline) counted by :func:`delta_bins`
    (pass the bins when a caption shows their counts, or the differences themselves): losses red
    on the left, the exact ties grey in the middle, wins green on the right. Every bar carries
    ``data-count`` and a tooltip with its range; its height is its count on the y axis.
    """
    if not isinstance(bins, DeltaBins):
        bins = delta_bins(bins)
    svg = _Svg(width, height, title, "chart chart-deltas")
    # (css class, count, tooltip range, edge label under the bar's outer side)
    bars: list[tuple[str, int, str, str]] = []
    half = len(bins.worse)
    for i in reversed(range(half)):
        lo, hi = -(i + 1) * bins.step, -i * bins.step
        bars.append(("bin-loss", bins.worse[i], f"in [{lo:+.3g}, {hi:+.3g})" if i else f"in [{lo:+.3g}, 0)",
                     f"{lo:+.3g}"))
    bars.append(("bin-tie", bins.ties, "tied (difference exactly 0)", "tie"))
    for i in range(half):
        lo, hi = i * bins.step, (i + 1) * bins.step
        bars.append(("bin-win", bins.better[i], f"in ({lo:+.3g}, {hi:+.3g}]" if i else f"in (0, {hi:+.3g}]",
                     f"{hi:+.3g}"))
    x0, x1 = _MARGIN["left"], width - _MARGIN["right"]
    y0, y1 = height - _MARGIN["bottom"], _MARGIN["top"]
    top = max((n for _, n, _, _ in bars), default=0)
    ticks = nice_ticks(0, max(1, top), integer=True)
    hi_tick = ticks[-1]

    def y(v: float) -> float:
        return y0 - v / hi_tick * (y0 - y1)

    _y_axis(svg, ticks, y, x0, x1, "queries")
    bin_w = (x1 - x0) / len(bars)
    label_every = 1 if len(bars) <= 13 else 2
    for j, (css, n, where, label) in enumerate(bars):
        bx = x0 + j * bin_w
        noun = "query" if n == 1 else "queries"
        tip = f"{n} {noun} tied (difference exactly 0)" if css == "bin-tie" else f"{n} {noun} with difference {where}"
        svg.el("rect", x=bx + 1, y=y(n), width=max(1.0, bin_w - 2), height=max(0.0, y0 - y(n)), class_=css,
               data_count=n, tooltip=tip)
        if css == "bin-tie":
            svg.text(bx + bin_w / 2, y0 + 14, "=0", css_class="tick")
        elif (j - half) % label_every == 0:  # the bar's outer edge: left of a loss, right of a win
            svg.text(bx if css == "bin-loss" else bx + bin_w, y0 + 14, label, css_class="tick")
    svg.text((x0 + x1) / 2, y0 + 28, x_label, css_class="axis-label")
    svg.el("line", x1=x0, x2=x1, y1=y0, y2=y0, class_="axis")
    return svg.markup()
