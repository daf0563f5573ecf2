"""The report's "Fine-tune: before → after" section, from the ``finetune`` key of results written
by ``evalsuite finetune`` (:mod:`evalsuite.finetune.loop`). Results without it give no section.

The view holds what the section shows: the verdict, base vs tuned per metric with the gain's
95% bootstrap interval, randomization p-value and per-query wins / losses / ties, the other
systems on the same held-out queries, the out-of-domain check, a histogram of per-query
gains, the training curve (loss and the dev split's metric over steps), the pairs / negatives /
leakage summary, and time and hardware. Nothing is recomputed here: every figure comes from
the results file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from evalsuite.report.charts import PALETTE, _legend, _num, _Svg, _y_axis, delta_histogram, nice_ticks
from evalsuite.results import SuiteResults

__all__ = ["FinetuneView", "curve_chart", "finetune_markdown", "finetune_views"]


@dataclass
class FinetuneView:
    """One fine-tune, ready for the template."""

    run_id: str
    task: str
    base: str
    tuned: str
    main_metric: str
    verdict: str
    status: str  # pass (helped) | warn (no significant change) | fail (hurt)
    gains: list[dict[str, Any]]
    others: list[dict[str, Any]]
    out_of_domain: list[dict[str, Any]]
    split: dict[str, Any]
    pairs: dict[str, Any]
    negatives: dict[str, Any] | None
    leakage: dict[str, Any]
    training: dict[str, Any]
    timing: dict[str, float]
    hardware: str
    model: dict[str, Any]
    base_model: dict[str, Any]
    gates: list[dict[str, Any]] = field(default_factory=list)
    histogram: Markup | None = None
    curve: Markup | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)


def curve_chart(series: Mapping[str, Sequence[tuple[float, float]]], *, title: str, x_label: str, y_label: str,
                width: float = 540, height: float = 240) -> Markup:
    """Lines over linear axes (e.g. training loss and a dev metric against steps)."""
    svg = _Svg(width, height, title, "chart chart-curve")
    points = [p for values in series.values() for p in values if math.isfinite(p[1])]
    x0, x1 = 46.0, width - 20
    y0, y1 = height - 44.0, 14.0
    xs = [p[0] for p in points] or [0.0, 1.0]
    ys = [p[1] for p in points] or [0.0, 1.0]
    low = min(0.0, min(ys))
    ticks = nice_ticks(low, max(ys) if max(ys) > low else low + 1)
    x_ticks = nice_ticks(min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1, integer=True)

    def x(v: float) -> float:
        return x0 + (v - x_ticks[0]) / ((x_ticks[-1] - x_ticks[0]) or 1) * (x1 - x0)

    def y(v: float) -> float:
        return y0 - (v - ticks[0]) / ((ticks[-1] - ticks[0]) or 1) * (y0 - y1)

    _y_axis(svg, ticks, y, x0, x1, y_label)
    for t in x_ticks:
        svg.text(x(t), y0 + 14, f"{t:g}", css_class="tick")
    svg.text((x0 + x1) / 2, y0 + 27, x_label, css_class="axis-label")
    colours = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(series)}
    for name, values in series.items():
        pts = [(x(a), y(b)) for a, b in values if math.isfinite(b)]
        if len(pts) > 1:
            svg.el("polyline", points=" ".join(f"{_num(px)},{_num(py)}" for px, py in pts), fill="none",
                   stroke=colours[name], stroke_width=2.0)
        for a, b in values:
            if math.isfinite(b):
                svg.el("circle", cx=x(a), cy=y(b), r=2.5, fill=colours[name], tooltip=f"{name} at {a:g}: {b:.4f}")
    svg.el("line", x1=x0, x2=x1, y1=y0, y2=y0, class_="axis")
    _legend(svg, list(series), [colours[n] for n in series], height - 4)
    return svg.markup()


def _status(verdict: str) -> str:
    return "pass" if verdict.startswith("FINE-TUNE HELPED") else "fail" if verdict.startswith("FINE-TUNE HURT") \
        else "warn"


def _view(results: SuiteResults) -> FinetuneView:
    ft = results.finetune
    main = ft.get("main_metric", "")
    deltas = list((ft.get("per_query_delta") or {}).get(main, {}).values())
    histogram = delta_histogram(deltas, title=f"Per-query {main}: tuned minus base",
                                x_label=f"{main} of {ft.get('tuned')} minus {ft.get('base')}") if deltas else None
    training = ft.get("training") or {}
    curve = None
    dev_metric = training.get("dev_metric")
    series: dict[str, list[tuple[float, float]]] = {}
    if training.get("loss_curve"):
        series["training loss"] = [(float(e["step"]), float(e["loss"])) for e in training["loss_curve"]]
    if dev_metric and training.get("dev_curve"):
        series[f"dev {dev_metric}"] = [(float(e["step"]), float(e[dev_metric])) for e in training["dev_curve"]]
    if series:
        curve = curve_chart(series, title="Training curve", x_label="step", y_label="value")
    gains = [{"metric": m, **g} for m, g in (ft.get("gain") or {}).items()]
    return FinetuneView(
        run_id=results.run_id, task=str(ft.get("task")), base=str(ft.get("base")), tuned=str(ft.get("tuned")),
        main_metric=main, verdict=str(ft.get("verdict", "")), status=_status(str(ft.get("verdict", ""))),
        gains=gains, others=list(ft.get("others") or []), out_of_domain=list(ft.get("out_of_domain") or []),
        split=dict(ft.get("split") or {}), pairs=dict(ft.get("pairs") or {}), negatives=ft.get("negatives"),
        leakage=dict(ft.get("leakage") or {}), training=training, timing=dict(ft.get("timing") or {}),
        hardware=str(ft.get("hardware", "")), model=dict(ft.get("tuned_model") or {}),
        base_model=dict(ft.get("base_model") or {}), gates=list(ft.get("gates") or []), histogram=histogram,
        curve=curve, hyperparameters=dict(training.get("config") or {}))


def finetune_views(sources: Sequence[SuiteResults]) -> list[FinetuneView]:
    """One view per results file that holds a fine-tune (none otherwise)."""
    return [_view(r) for r in sources if r.finetune]


def finetune_markdown(views: Sequence[FinetuneView], escape: Any) -> list[str]:
    """The Markdown summary's fine-tune verdict: one line and the base -> tuned table."""
    lines: list[str] = []
    for v in views:
        lines += [f"### Fine-tune: {escape(v.base)} → {escape(v.tuned)} on {escape(v.task)} (held-out queries)", "",
                  f"**{escape(v.verdict)}**", "",
                  "| metric | base | tuned | gain [95% CI] | p | better / worse / tied |",
                  "|---|---:|---:|---:|---:|---:|"]
        for g in v.gains:
            lines.append(f"| {escape(g['metric'])} | {g['before']:.4f} | {g['after']:.4f} | {g['delta']:+.4f} "
                         f"[{g['ci_low']:+.4f}, {g['ci_high']:+.4f}] | {g['p_value']:.4f} | "
                         f"{g['wins']} / {g['losses']} / {g['ties']} |")
        if v.leakage.get("leaked_heldout_queries"):
            lines += ["", f"⚠️ trained with {v.leakage['leaked_heldout_queries']} leaked held-out queries "
                          "(override): the gain is not trustworthy"]
        lines.append("")
    return lines
