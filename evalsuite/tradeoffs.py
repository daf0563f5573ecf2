"""Quality against cost: Pareto frontiers, a recommendation, and the arithmetic past this machine.

Reads the ``costs`` of each result (:mod:`evalsuite.retrievers.cost`) and the per-query values
of the task's main metric.

* **Frontier.** A point is Pareto-optimal on (quality, cost) when no other point has quality
  at least as high and cost at most as high, one of them strictly. Two frontiers per task:
  cost = bytes per document, and cost = p95 query latency.
* **Recommendation.** The cheapest point (fewest bytes per document; then lower p95 latency,
  then higher quality) that is *not significantly worse* than the best point (highest mean):
  the two-sided paired randomization test over the task's queries
  (:func:`evalsuite.metrics.stats.randomization_test`) gives p >= alpha, or the point's mean
  is not below the best. No multiple-comparison correction: a correction would make "not
  significantly worse" easier to claim, so leaving it out is the cautious side here.
* **Extrapolation.** For each frontier point (on bytes per document): the memory a corpus of
  1M / 100M / 1B documents needs (measured bytes per document x N, plus the int8 rescoring
  vectors when the point re-scores, which could live on disk instead), and the exhaustive
  search time per query, from a straight line through the flat-search times measured at two
  corpus sizes (``costs["exhaustive_search"]`` of sweep points: the corpus and 10x with random
  vectors). Estimates: an ANN index searches sub-linearly; a real corpus at 1B needs sharding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from evalsuite.metrics.stats import bootstrap_ci, randomization_test
from evalsuite.results import SuiteResults

__all__ = ["SCALES", "Recommendation", "TaskTradeoffs", "TradeoffPoint", "extrapolate", "pareto_front",
           "recommend", "task_tradeoffs"]

#: corpus sizes of the extrapolation
SCALES = (1_000_000, 100_000_000, 1_000_000_000)


@dataclass(frozen=True)
class TradeoffPoint:
    """One system on one task: quality (mean of the main metric, with its CI) and costs."""

    system: str
    quality: float
    ci: tuple[float, float] | None = None
    bytes_per_doc: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    queries_per_s: float | None = None
    docs_per_s: float | None = None
    docs_cached: bool = False  # no document encoded: every vector came from the cache
    rescore_bytes_per_doc: float = 0.0
    scaling: dict[str, Any] | None = None
    sweep: dict[str, Any] | None = None


@dataclass(frozen=True)
class Recommendation:
    """The cheapest point not significantly worse than the best, and the sentence saying so."""

    point: TradeoffPoint
    best: TradeoffPoint
    p_value: float
    alpha: float
    metric: str
    n_queries: int
    #: what "keeps" and "less memory" compare with: the full-precision point (see :func:`reference_point`)
    reference: TradeoffPoint | None = None

    @property
    def baseline(self) -> TradeoffPoint:
        return self.reference or self.best

    @property
    def keeps(self) -> float:
        """Share of the reference point's quality this point keeps."""
        return self.point.quality / self.baseline.quality if self.baseline.quality else math.nan

    @property
    def memory_ratio(self) -> float | None:
        a, b = self.point.bytes_per_doc, self.baseline.bytes_per_doc
        return b / a if a and b else None

    @property
    def sentence(self) -> str:
        point, best, ref = self.point, self.best, self.baseline
        ci = f" [{point.ci[0]:.4f}, {point.ci[1]:.4f}]" if point.ci else ""
        of = "" if ref.system in (best.system, point.system) else f" of {ref.system}"
        parts = [f"{point.system} keeps {100 * self.keeps:.1f}% of {self.metric}{of} ({point.quality:.4f}{ci})"]
        ratio = self.memory_ratio
        if point.system != ref.system and ratio is not None:
            parts.append(f"{ratio:.1f}x less memory ({point.bytes_per_doc:.0f} vs {ref.bytes_per_doc:.0f} "
                         "bytes/doc)")
        if point.p95_ms is not None:
            parts.append(f"p95 {point.p95_ms:.1f} ms")
        if point.system == best.system:
            return ", ".join(parts) + f": it is the best point itself, and no cheaper point is within noise " \
                                      f"(paired randomization test, alpha = {self.alpha:g})"
        return (", ".join(parts) + f"; not significantly worse than {best.system} (p = {self.p_value:.2f}, "
                f"paired randomization test over {self.n_queries} queries, alpha = {self.alpha:g})")


@dataclass
class TaskTradeoffs:
    """Everything the trade-off section shows for one task."""

    task: str
    metric: str
    points: list[TradeoffPoint]
    front_bytes: list[TradeoffPoint]
    front_latency: list[TradeoffPoint]
    recommendation: Recommendation | None
    extrapolation: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def pareto_front(points: Sequence[TradeoffPoint],
                 cost: Callable[[TradeoffPoint], float | None]) -> list[TradeoffPoint]:
    """The points no other point dominates on (quality up, cost down), cheapest first; points
    without that cost or with NaN quality are left out."""
    usable = [p for p in points if cost(p) is not None and not math.isnan(p.quality)]

    def dominated(p: TradeoffPoint) -> bool:
        cp = cost(p)
        assert cp is not None
        for o in usable:
            co = cost(o)
            assert co is not None
            if o is not p and o.quality >= p.quality and co <= cp and (o.quality > p.quality or co < cp):
                return True
        return False

    front = [p for p in usable if not dominated(p)]
    return sorted(front, key=lambda p: (cost(p), -p.quality, p.system))


def recommend(points: Sequence[TradeoffPoint], per_query: dict[str, dict[str, float]], *, alpha: float = 0.05,
              metric: str = "", n_resamples: int = 10_000, seed: int = 0) -> Recommendation | None:
    """The cheapest point not significantly worse than the best (see the module docstring);
    ``per_query``: system -> query -> value of the metric. None without a point with a size."""
    from evalsuite.metrics.stats import align

    usable = [p for p in points if p.bytes_per_doc is not None and not math.isnan(p.quality)]
    if not usable:
        return None
    best = max(usable, key=lambda p: (p.quality, -(p.bytes_per_doc or 0.0)))
    verdicts: list[tuple[TradeoffPoint, float, int]] = []
    for p in usable:
        a, b, _ = align(per_query.get(p.system, {}), per_query.get(best.system, {}))
        p_value = 1.0 if p is best else randomization_test(a, b, n_resamples=n_resamples, seed=seed)
        if p is best or p.quality >= best.quality or (not math.isnan(p_value) and p_value >= alpha):
            verdicts.append((p, p_value, len(a)))
    chosen, p_value, n = min(verdicts, key=lambda v: (v[0].bytes_per_doc, v[0].p95_ms if v[0].p95_ms is not None
                                                      else math.inf, -v[0].quality, v[0].system))
    return Recommendation(chosen, best, p_value, alpha, metric, n, reference_point(usable))


def reference_point(points: Sequence[TradeoffPoint]) -> TradeoffPoint:
    """The full-precision point that compression is measured against: the largest float32 flat
    point of a sweep (full dimensions, exact search; of the fp32 encoder where the sweep has an
    encoder axis), else the point with the most bytes per document. The best-scoring point may
    be a compressed one by chance (a rescored binary index a hair above float32), which would
    make "N x less memory" compare two compressed points."""
    def size(p: TradeoffPoint) -> float:
        return p.bytes_per_doc or 0.0

    exact = [p for p in points if isinstance(p.sweep, dict) and p.sweep.get("precision") == "float32"
             and str(p.sweep.get("index", "")).startswith("flat")]
    fp32 = [p for p in exact if str((p.sweep or {}).get("encoder") or "fp32") == "fp32"]
    return max(fp32 or exact or list(points), key=lambda p: (size(p), p.quality, p.system))


def extrapolate(point: TradeoffPoint, scales: Sequence[int] = SCALES) -> dict[str, Any]:
    """Memory and exhaustive-search time per query at each corpus size (see the module docstring)."""
    per_doc = (point.bytes_per_doc or 0.0) + point.rescore_bytes_per_doc
    out: dict[str, Any] = {"system": point.system, "scales": list(scales),
                           "memory_bytes": [per_doc * n for n in scales],
                           "exhaustive_ms_per_query": [None] * len(scales)}
    scaling = point.scaling or {}
    docs, ms = scaling.get("docs"), scaling.get("ms_per_query")
    if isinstance(docs, list) and isinstance(ms, list) and len(docs) == 2 and len(ms) == 2 and docs[1] > docs[0]:
        slope = max(0.0, (ms[1] - ms[0]) / (docs[1] - docs[0]))
        intercept = ms[1] - slope * docs[1]
        out["exhaustive_ms_per_query"] = [max(ms[1], intercept + slope * n) for n in scales]
        out["ms_per_million_docs"] = slope * 1e6
    return out


def _point(system: str, cell: Any, metric: str, seed: int) -> TradeoffPoint | None:
    costs = cell.costs or {}
    value = cell.aggregate.get(metric)
    if value is None or costs.get("bytes_per_doc") is None:
        return None
    values = [v for v in cell.per_query.get(metric, {}).values() if v is not None and not math.isnan(v)]
    ci = bootstrap_ci(values, n_resamples=2000, seed=seed) if len(values) > 1 else None
    return TradeoffPoint(
        system=system, quality=float(value), ci=(ci.low, ci.high) if ci is not None else None,
        bytes_per_doc=costs.get("bytes_per_doc"), p50_ms=costs.get("query_latency_p50_ms"),
        p95_ms=costs.get("query_latency_p95_ms"), queries_per_s=costs.get("queries_per_s"),
        docs_per_s=costs.get("encode_docs_per_s"), docs_cached=bool(costs.get("encode_note")),
        rescore_bytes_per_doc=float(costs.get("rescore_bytes_per_doc") or 0),
        scaling=costs.get("exhaustive_search"), sweep=costs.get("sweep"))


def task_tradeoffs(results: SuiteResults, task: str, *, metric: str | None = None, alpha: float | None = None,
                   systems: Sequence[str] | None = None, n_resamples: int = 10_000) -> TaskTradeoffs | None:
    """The trade-offs of ``task`` in ``results`` (None with fewer than two systems with costs).

    ``metric``: default the task's main metric; ``alpha``: default the suite's ``alpha`` if it
    declares one, else 0.05; ``systems``: restrict to these systems."""
    info = next((t for t in results.tasks if t.get("name") == task), {})
    metric = metric or str(info.get("main_metric") or (results.metrics[0] if results.metrics else "ndcg@10"))
    if alpha is None:
        alpha = float(results.config.get("alpha") or 0.05)
    seed = int(results.config.get("seed", 0) or 0)
    points, per_query = [], {}
    for cell in results.cells:
        if cell.task != task or cell.kind != "retrieval" or (systems is not None and cell.system not in systems):
            continue
        point = _point(cell.system, cell, metric, seed)
        if point is not None:
            points.append(point)
            per_query[cell.system] = {q: float(v) for q, v in cell.per_query.get(metric, {}).items()
                                      if v is not None and not math.isnan(v)}
    if len(points) < 2:
        return None
    front_bytes = pareto_front(points, lambda p: p.bytes_per_doc)
    front_latency = pareto_front(points, lambda p: p.p95_ms)
    recommendation = recommend(points, per_query, alpha=alpha, metric=metric, n_resamples=n_resamples, seed=seed)
    view = TaskTradeoffs(task, metric, points, front_bytes, front_latency, recommendation)
    view.extrapolation = [extrapolate(p) for p in front_bytes]
    if any(p.scaling is None for p in front_bytes):
        view.notes.append("exhaustive-search time is extrapolated only for sweep points (they time a flat search "
                          "at two corpus sizes)")
    return view
