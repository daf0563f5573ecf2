"""Ranking metrics as vectorised kernels over the judged documents of a run.

Every ranking metric of trec_eval depends only on *where the judged documents are
ranked*: unjudged documents add no gain and no relevance. So the join of a run with
its qrels (:func:`evalsuite.metrics.evaluate.evaluate`) produces :class:`Hits` --
for each judged document that the run retrieved, its query, 0-based rank and grade --
and every metric here is a handful of numpy operations over those hits.

Conventions (shared by every metric, identical to trec_eval):

* Ranking order: score descending, then doc id descending.
* A document is relevant when its grade >= the relevance level (default 1,
  trec_eval ``-l``); a metric may override the level with the option ``rel``.
* ``R`` is the number of relevant documents of the query in the qrels (retrieved or not).
* Cutoff ``k``: only ranks 1..k count; ``P@k`` and ``judged@k`` divide by ``k``
  even when fewer than ``k`` documents were retrieved.
* Per-query values are computed for every query of the qrels; a query missing from
  the run scores 0 (trec_eval ``-c``). Which queries enter the mean is decided in
  :mod:`evalsuite.metrics.evaluate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from evalsuite.metrics.spec import FamilyInfo, MetricSpec, ParamRule, register_family
from evalsuite.registry import Registry

__all__ = ["METRICS", "Hits", "RankingMetric"]

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Hits:
    """The judged documents a run retrieved, sorted by (query, rank).

    ``query`` indexes the evaluated queries (``0..n_queries-1``), ``rank`` is 0-based
    in the run's ranking of that query, ``grade`` is the qrels grade. ``judged_query``
    and ``judged_grade`` hold every judgement of the qrels (retrieved or not), which
    gives ``R`` and the ideal ranking for nDCG.
    """

    n_queries: int
    query: IntArray
    rank: IntArray
    grade: IntArray
    judged_query: IntArray
    judged_grade: IntArray
    _cache: dict[object, FloatArray] = field(default_factory=dict, compare=False, repr=False)

    def count(self, mask: NDArray[np.bool_]) -> FloatArray:
        """Number of hits per query where ``mask`` holds."""
        return np.bincount(self.query[mask], minlength=self.n_queries).astype(np.float64)

    def num_relevant(self, level: int) -> FloatArray:
        """``R``: judgements with grade >= ``level`` per query."""
        key = ("R", level)
        if key not in self._cache:
            self._cache[key] = _sum_by_query(
                self.judged_query, (self.judged_grade >= level).astype(np.float64), self.n_queries
            )
        return self._cache[key]

    def ideal_dcg(self, cutoff: int | None, exponential: bool) -> FloatArray:
        """DCG of the ideal ranking (all judgements by grade descending), cut at ``cutoff``."""
        key = ("IDCG", cutoff, exponential)
        if key not in self._cache:
            order = np.lexsort((-self.judged_grade, self.judged_query))
            q = self.judged_query[order]
            gains = _gain(self.judged_grade[order], exponential)
            starts = np.searchsorted(q, np.arange(self.n_queries))
            position = np.arange(len(q)) - starts[q]
            keep = gains > 0
            if cutoff is not None:
                keep &= position < cutoff
            self._cache[key] = _sum_by_query(q[keep], gains[keep] / np.log2(position[keep] + 2.0), self.n_queries)
        return self._cache[key]


def _gain(grades: IntArray, exponential: bool) -> FloatArray:
    positive = np.maximum(grades, 0).astype(np.float64)
    return np.exp2(positive) - 1.0 if exponential else positive


def _sum_by_query(query: IntArray, weights: FloatArray, n_queries: int) -> FloatArray:
    return np.bincount(query, weights=weights, minlength=n_queries).astype(np.float64, copy=False)


def _safe_divide(num: FloatArray, den: FloatArray) -> FloatArray:
    out = np.zeros(num.shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _within(hits: Hits, cutoff: int | None) -> NDArray[np.bool_]:
    return np.ones(len(hits.rank), dtype=bool) if cutoff is None else hits.rank < cutoff


@runtime_checkable
class RankingMetric(Protocol):
    """A metric family computed per query from :class:`Hits`.

    ``compute`` returns one value per evaluated query. ``level`` is the relevance
    level to use (the spec's ``rel`` option, else the evaluation's level).
    """

    info: FamilyInfo

    def compute(self, hits: Hits, spec: MetricSpec, level: int) -> FloatArray: ...


METRICS: Registry[RankingMetric] = Registry("metric")

_REL = ParamRule("rel", "int")


def _register(metric: RankingMetric) -> RankingMetric:
    register_family(metric.info)
    METRICS.add(metric.info.name, metric)
    return metric


class Precision:
    """P@k = |relevant docs in the top k| / k (trec_eval ``P_k``)."""

    info = FamilyInfo("P", "P", "required", (_REL,), ("precision", "prec", "p"))

    def compute(self, hits: Hits, spec: MetricSpec, level: int) -> FloatArray:
        k = spec.cutoff
        assert k is not None
        return hits.count((hits.grade >= level) & (hits.rank < k)) / k


class Recall:
    """recall@k = |relevant docs in the top k| / R (trec_eval ``recall_k``); no cutoff: whole run."""

    info = FamilyInfo("recall", "recall", "optional", (_REL,), ("r", "rec", "set_recall"))

    def compute(self, hits: Hits, spec: MetricSpec, level: int) -> FloatArray:
        found = hits.count((hits.grade >= level) & _within(hits, spec.cutoff))
        return _safe_divide(found, hits.num_relevant(level))


class AveragePrecision:
    """AP = (1/R) * sum over relevant retrieved docs d of P@rank(d) (trec_eval ``map``).

    With a cutoff k (trec_eval ``map_cut_k``) only docs ranked 1..k contribute; the
    denominator stays R.
    """

    info = FamilyInfo("map", "map", "optional", (_REL,), ("ap", "average_precision", "mean_average_precision"))

    def compute(self, hits: Hits, spec: MetricSpec, level: int) -> FloatArray:
        relevant = hits.grade >= level
        q, rank = hits.query[relevant], hits.rank[relevant]
        starts = np.searchsorted(q, np.arange(hits.n_queries))
        nth_relevant = np.arange(len(q)) - starts[q] + 1.0
        precision = nth_relevant / (rank + 1.0)
        keep = _within(hits, spec.cutoff)[relevant]
        total = _sum_by_query(q[keep], precision[keep], hits.n_queries)
        return _safe_divide(total, hits.num_relevant(level))


class ReciprocalRank:
    """RR = 1 / rank of the first relevant doc, 0 if none (trec_eval ``recip_rank``).

    With a cutoff k (MRR@k) a first relevant doc below rank k scores 0.
    """

    info = FamilyInfo("mrr", "mrr", "optional", (_REL,), ("rr", "recip_rank", "reciprocal_rank", "mrr_cut"))

    def compute(self, hits: Hits, spec: MetricSpec, level: int) -> FloatArray:
        relevant = hits.grade >= level
        q, rank = hits.query[relevant], hits.rank[relevant]
        first = np.ones(len(q), dtype=bool)
        first[1:] = q[1:] != q[:-1]
        q, rank = q[first], rank[first]
        if spec.cutoff is not None:
            keep = rank < spec.cutoff
            q, rank = q[keep], rank[keep]
        out = np.zeros(hits.n_queries)
        out[q] = 1.0 / (rank + 1.0)
        return out


class RPrecision:
    """R-precision = |relevant docs in the top R| / R (trec_eval ``Rprec``)."""

    info = FamilyInfo("rprec", "rprec", "forbidden", (_REL,), ("r-prec", "r_prec", "r-precision", "rprecision"))

    def compute(self, hits: Hits, spec: MetricSpec, level: int) -> FloatArray:
        r = hits.num_relevant(level)
        found = hits.count((hits.grade >= level) & (hits.rank < r[hits.query]))
        return _safe_divide(found, r)


class NDCG:
    """nDCG@k = DCG@k / IDCG@k with DCG@k = sum_{i=1..k} gain(rel_i) / log2(i + 1).

    Gain is the grade itself (``gain=linear``, trec_eval ``ndcg_cut``; negative grades
    gain 0) or ``2^grade - 1`` (``gain=exp``, the Burges et al. form). IDCG@k is the DCG
    of all judged docs sorted by grade. No cutoff: the whole run (trec_eval ``ndcg``).
    nDCG ignores the relevance level, as in trec_eval; the level only decides which
    queries are evaluated.
    """

    info = FamilyInfo(
        "ndcg", "ndcg", "optional",
        (ParamRule("gain", "choice", ("linear", "exp"), default="linear"), _REL), ("ndcg_cut",),
    )

    def compute(self, hits: Hits, spec: MetricSpec, level: int) -> FloatArray:
        exponential = spec.param("gain", "linear") == "exp"
        keep = _within(hits, spec.cutoff) & (hits.grade > 0)
        gains = _gain(hits.grade[keep], exponential) / np.log2(hits.rank[keep] + 2.0)
        dcg = _sum_by_query(hits.query[keep], gains, hits.n_queries)
        return _safe_divide(dcg, hits.ideal_dcg(spec.cutoff, exponential))


class Success:
    """success@k = 1 if a relevant doc is in the top k, else 0 (trec_eval ``success_k``; hit rate)."""

    info = FamilyInfo("success", "success", "required", (_REL,), ("hit_rate", "hitrate", "hits", "hit"))

    def compute(self, hits: Hits, spec: MetricSpec, level: int) -> FloatArray:
        assert spec.cutoff is not None
        return np.minimum(hits.count((hits.grade >= level) & (hits.rank < spec.cutoff)), 1.0)


class Judged:
    """judged@k = |docs in the top k with any judgement| / k (ir_measures ``Judged@k``)."""

    info = FamilyInfo("judged", "judged", "required", (), ("judged_rate",))

    def compute(self, hits: Hits, spec: MetricSpec, level: int) -> FloatArray:
        assert spec.cutoff is not None
        return hits.count(hits.rank < spec.cutoff) / spec.cutoff


for _metric in (Precision(), Recall(), AveragePrecision(), ReciprocalRank(), RPrecision(), NDCG(), Success(),
                Judged()):
    _register(_metric)
