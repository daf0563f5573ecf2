"""Pareto frontiers, the recommendation and the extrapolation (evalsuite.tradeoffs) on hand-built
points, and the report's trade-off section (charts, table, cost columns) rendered from them."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from evalsuite.results import CellResult, SuiteResults
from evalsuite.tradeoffs import TradeoffPoint, extrapolate, pareto_front, recommend, task_tradeoffs


def P(name: str, quality: float, bytes_per_doc: float | None, p95: float | None = None) -> TradeoffPoint:
    return TradeoffPoint(name, quality, bytes_per_doc=bytes_per_doc, p95_ms=p95)


def test_front_keeps_exactly_the_non_dominated_points_cheapest_first() -> None:
    points = [P("a", 0.50, 1536), P("b", 0.49, 384), P("c", 0.45, 400), P("d", 0.40, 48), P("e", 0.49, 384),
              P("f", 0.30, 48), P("g", 0.55, 1536), P("h", 0.1, None)]
    front = pareto_front(points, lambda p: p.bytes_per_doc)
    # c is dominated by b (better and cheaper); a by g (same cost, better); f by d (same cost, better);
    # b and e tie exactly (neither dominates the other): both stay; h has no cost
    assert [p.system for p in front] == ["d", "b", "e", "g"]


def test_front_on_latency_uses_the_latency() -> None:
    points = [P("fast", 0.3, 1000, p95=1.0), P("slow", 0.5, 10, p95=50.0), P("mid", 0.2, 1, p95=5.0)]
    assert [p.system for p in pareto_front(points, lambda p: p.p95_ms)] == ["fast", "slow"]
    assert [p.system for p in pareto_front(points, lambda p: p.bytes_per_doc)] == ["mid", "slow"]


def _per_query(values: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {name: {f"q{i}": v for i, v in enumerate(vals)} for name, vals in values.items()}


def test_recommendation_is_the_cheapest_point_within_noise_of_the_best() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.8, size=60)
    per_query = _per_query({
        "float32": list(base),
        "int8": list(base - rng.normal(0.002, 0.02, size=60)),   # a hair worse: within noise
        "binary": list(base - 0.15),                              # clearly worse
        "int8-big": list(base - rng.normal(0.002, 0.02, size=60)),
    })
    mean = {k: float(np.mean(list(v.values()))) for k, v in per_query.items()}
    points = [P("float32", mean["float32"], 1536, 2.0), P("int8", mean["int8"], 384, 1.0),
              P("binary", mean["binary"], 48, 0.5), P("int8-big", mean["int8-big"], 400, 1.0)]
    rec = recommend(points, per_query, alpha=0.05, metric="ndcg@10", n_resamples=2000)
    assert rec is not None
    assert rec.point.system == "int8" and rec.best.system == "float32"
    assert rec.p_value >= 0.05
    assert rec.memory_ratio == pytest.approx(4.0)
    assert re.match(r"int8 keeps 9\d\.\d% of ndcg@10 \(0\.\d{4}\), 4\.0x less memory \(384 vs 1536 bytes/doc\), "
                    r"p95 1\.0 ms; not significantly worse than float32 \(p = \d\.\d\d, paired randomization test "
                    r"over 60 queries, alpha = 0\.05\)", rec.sentence), rec.sentence
    # with alpha above that p-value the int8 drop counts as significant: the best point is kept
    strict = recommend(points, per_query, alpha=min(0.999, rec.p_value + 0.01), n_resamples=2000)
    assert strict is not None and strict.point.system in ("float32", "int8-big")


def test_keeps_and_memory_compare_with_the_full_precision_point_when_a_compressed_one_is_best() -> None:
    rng = np.random.default_rng(1)
    base = rng.uniform(0.2, 0.8, size=80)
    noise = rng.normal(0.0, 0.02, size=80)
    noise -= noise.mean() + 0.0005  # a hair below the best on average, far within noise
    per_query = _per_query({"m@384/float32/flat": list(base), "m@384/ubinary+rescore4/ivf": list(base + 0.004),
                            "m@384/ubinary+rescore4/flat": list(base + 0.004 + noise),
                            "m@384/float32/hnsw": list(base)})
    mean = {k: float(np.mean(list(v.values()))) for k, v in per_query.items()}

    def point(name: str, size: float, precision: str, index: str) -> TradeoffPoint:
        return TradeoffPoint(name, mean[name], bytes_per_doc=size, p95_ms=1.0,
                             sweep={"dim": 384, "precision": precision, "rescore": 4, "index": index})

    bf16 = TradeoffPoint("enc~bf16@384/float32/flat", mean["m@384/float32/flat"] + 0.0001, bytes_per_doc=1536,
                         sweep={"dim": 384, "precision": "float32", "index": "flat", "encoder": "bf16"})
    per_query["enc~bf16@384/float32/flat"] = per_query["m@384/float32/flat"]
    points = [point("m@384/float32/flat", 1536, "float32", "flat"), bf16,
              point("m@384/float32/hnsw", 1800, "float32", "hnsw-M16-ef32"),
              point("m@384/ubinary+rescore4/ivf", 57, "ubinary", "ivf-nlist64-np16"),
              point("m@384/ubinary+rescore4/flat", 48, "ubinary", "flat")]
    rec = recommend(points, per_query, alpha=0.05, metric="ndcg@10", n_resamples=2000)
    assert rec is not None and rec.best.system == "m@384/ubinary+rescore4/ivf"
    assert rec.point.system == "m@384/ubinary+rescore4/flat"
    # the fp32 flat point: not the bigger HNSW, not the bf16 encoder's point of the same size
    assert rec.reference is not None and rec.reference.system == "m@384/float32/flat"
    assert rec.memory_ratio == pytest.approx(1536 / 48)
    assert rec.keeps == pytest.approx(mean["m@384/ubinary+rescore4/flat"] / mean["m@384/float32/flat"])
    assert "of ndcg@10 of m@384/float32/flat" in rec.sentence
    assert "32.0x less memory (48 vs 1536 bytes/doc)" in rec.sentence
    assert "not significantly worse than m@384/ubinary+rescore4/ivf" in rec.sentence


def test_recommendation_without_sizes_is_none() -> None:
    assert recommend([P("a", 0.5, None)], {"a": {"q": 0.5}}) is None


def test_extrapolation_is_bytes_times_n_and_a_line_through_two_timings() -> None:
    point = TradeoffPoint("x", 0.5, bytes_per_doc=48.0, rescore_bytes_per_doc=384.0,
                          scaling={"docs": [1000, 10000], "ms_per_query": [0.1, 0.55]})
    out = extrapolate(point, scales=(1_000_000, 1_000_000_000))
    assert out["memory_bytes"] == [432.0 * 1e6, 432.0 * 1e9]
    slope = 0.45 / 9000
    assert out["exhaustive_ms_per_query"] == pytest.approx([0.1 + slope * (1e6 - 1000), 0.1 + slope * (1e9 - 1000)])
    assert extrapolate(P("y", 0.5, 10.0))["exhaustive_ms_per_query"] == [None, None, None]


def _results(n_queries: int = 30) -> SuiteResults:
    rng = np.random.default_rng(1)
    base = rng.uniform(0.2, 0.9, size=n_queries)
    # "small": a little worse on average but not on every query (a constant drop would be significant)
    small = base - rng.normal(0.002, 0.03, size=n_queries)
    specs = {"big": (base, 1536.0, 9.0), "small": (small, 96.0, 3.0), "bad": (base - 0.3, 12.0, 1.0),
             "<script>x</script>": (base - 0.05, 200.0, 4.0)}
    cells = []
    for name, (values, bpd, p95) in specs.items():
        per = {f"q{i}": float(v) for i, v in enumerate(values)}
        cells.append(CellResult(task="t", system=name, kind="retrieval", aggregate={"ndcg@10": float(np.mean(values))},
                                per_query={"ndcg@10": per}, n_queries={"ndcg@10": n_queries},
                                costs={"bytes_per_doc": bpd, "query_latency_p95_ms": p95, "query_latency_p50_ms": 1.0,
                                       "index_bytes": bpd * 10, "queries_per_s": 10.0, "encode_docs_per_s": None}))
    return SuiteResults(suite="s", run_id="r1", created="now", metrics=["ndcg@10"], environment={},
                        tasks=[{"name": "t", "main_metric": "ndcg@10"}],
                        systems=[{"name": c.system, "meta": {}} for c in cells], cells=cells, config={"seed": 0})


def test_task_tradeoffs_from_results() -> None:
    view = task_tradeoffs(_results(), "t", n_resamples=2000)
    assert view is not None and view.metric == "ndcg@10"
    assert view.recommendation is not None and view.recommendation.point.system == "small"
    assert [p.system for p in view.front_bytes] == ["bad", "small", "big"]
    assert [e["system"] for e in view.extrapolation] == ["bad", "small", "big"]
    assert task_tradeoffs(_results(), "missing") is None


def test_report_section_has_two_charts_frontier_label_and_cost_columns() -> None:
    from evalsuite.report.model import build_report
    from evalsuite.report.render import report_html

    html = report_html(build_report(_results(), n_resamples=500))
    section = html[html.index('<section id="tradeoffs">'):]
    section = section[:section.index("</section>")]
    assert section.count("<svg") == 2 and "chart-bytes" in section and "chart-latency" in section
    assert section.count('class="frontier"') == 2
    assert section.count("recommended: small") == 2  # the label in both charts
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in section
    assert "Recommendation:</strong> small keeps" in section
    comparison = html[html.index('<section id="comparison">'):html.index("</section>", html.index('id="comparison"'))]
    assert "<th>bytes/doc</th><th>p95 ms</th>" in comparison and 'class="num cost">1536<' in comparison


def test_report_without_costs_has_no_tradeoff_section() -> None:
    from evalsuite.report.model import build_report
    from evalsuite.report.render import report_html

    results = _results()
    for c in results.cells:
        c.costs = {}
    html = report_html(build_report(results, n_resamples=200))
    assert 'id="tradeoffs"' not in html and "<th>bytes/doc</th>" not in html
    assert not math.isnan(results.cells[0].aggregate["ndcg@10"])


def test_a_crowded_chart_labels_only_the_frontier_and_the_recommendation_without_overlap() -> None:
    from evalsuite.report.tradeoffs import scatter_chart

    rng = np.random.default_rng(0)
    points = [TradeoffPoint(f"minilm@{d}/{p}/idx{i}", float(rng.uniform(0.2, 0.38)),
                            bytes_per_doc=float(rng.uniform(16, 1700)), p95_ms=float(rng.uniform(1, 40)))
              for d in (384, 256, 128, 64) for p in ("float32", "int8", "ubinary") for i in range(8)]
    front = pareto_front(points, lambda p: p.bytes_per_doc)
    assert 2 < len(front) < len(points) // 4
    pick = front[len(front) // 2].system
    svg = str(scatter_chart(points, lambda p: p.bytes_per_doc, front, pick, title="t", x_label="bytes/doc",
                            y_label="ndcg@10", log_x=True, css="chart-bytes"))
    # every point is a dot with a <title> tooltip naming it
    assert svg.count('<circle') == len(points) + 1  # + the ring of the recommended point
    for p in points:
        assert f"<title>{p.system}: ndcg@10" in svg
    # text labels: the recommendation (full name) and frontier points only (the sweep's name dropped)
    assert svg.count('class="recommended-label"') == 1 and f">recommended: {pick}</text>" in svg
    labelled = re.findall(r'<text[^>]*class="front-label"[^>]*data-system="([^"]+)"[^>]*>([^<]+)</text>', svg)
    on_front = {p.system for p in front}
    assert labelled and all(system in on_front and system != pick for system, _ in labelled)
    assert all(text == system.removeprefix("minilm@") for system, text in labelled)
    off = {p.system for p in points} - on_front
    assert not any(f">{name}<" in svg or f">{name.removeprefix('minilm@')}<" in svg for name in off)
    # the labels' boxes do not overlap (estimated at the charts' font size)
    boxes = []
    for m in re.finditer(r'<text x="([\d.]+)" y="([\d.]+)" text-anchor="(\w+)" class="(?:front|recommended)-label'
                         r'"[^>]*>([^<]+)</text>', svg):
        x, y, anchor, text = float(m[1]), float(m[2]), m[3], m[4]
        width = len(text) * 0.56 * 11
        left = x if anchor == "start" else x - width
        boxes.append((left, y - 11, left + width, y + 2))
    assert len(boxes) == len(labelled) + 1
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)
