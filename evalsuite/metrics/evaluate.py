"""Evaluate a run against qrels: the join, then the metric kernels, then aggregation.

Conventions (documented once, here and in :mod:`evalsuite.metrics.ranking`):

* Ranking: score descending, ties by doc id descending (trec_eval).
* A query judged in the qrels but absent from the run scores 0 on every metric and
  is counted in the mean (trec_eval ``-c``); it is listed in ``missing_queries``.
* A query of the run that the qrels do not judge is ignored (``ignored_queries``).
* A query with no relevant judgement (no grade >= the level) is excluded from the
  mean and listed in ``excluded_queries`` (``empty_queries="exclude"``, the default).
  ``empty_queries="zero"`` instead counts it with its computed value (0 for binary
  metrics), which reproduces trec_eval's ``-c`` mean exactly.
* Inputs are never modified; nothing is rounded.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from itertools import chain, repeat
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from evalsuite._ids import match_dictionary
from evalsuite._segments import searchsorted_within, segment_ids
from evalsuite.errors import ConfigError
from evalsuite.metrics.ranking import METRICS, Hits
from evalsuite.metrics.spec import DEFAULT_METRICS, MetricSpec, family_info, parse_metric, parse_metrics
from evalsuite.types import Qrels, Run, rank_keys

if TYPE_CHECKING:  # pandas is imported when a DataFrame is asked for
    import pandas as pd

__all__ = ["DEFAULT_METRICS", "EvalResult", "evaluate", "judged_hits", "results_table"]


EmptyQueries = Literal["exclude", "zero"]
_NOT_JUDGED = np.iinfo(np.int64).min


@dataclass(frozen=True)
class EvalResult:
    """Per-query and aggregate scores of one run.

    ``per_query`` has one row per query of the qrels (index ``query_id``) and one column
    per metric (canonical names); a query excluded from a metric's mean holds NaN. It is
    built from ``query_ids`` and ``values`` (one array per metric, aligned with
    ``query_ids``) on first use, so that a caller that needs only the aggregates (the
    ``evaluate`` command) never imports pandas.
    ``aggregate`` is the mean over the included queries, unrounded.
    """

    run_name: str
    metrics: tuple[str, ...]
    aggregate: dict[str, float]
    n_queries: dict[str, int]
    relevance_level: int
    empty_queries: EmptyQueries
    missing_queries: tuple[str, ...] = field(default=())
    ignored_queries: tuple[str, ...] = field(default=())
    excluded_queries: tuple[str, ...] = field(default=())
    query_ids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object), repr=False, compare=False)
    values: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def per_query(self) -> pd.DataFrame:
        """One row per qrels query (index ``query_id``), one column per metric."""
        import pandas as pd

        return pd.DataFrame(self.values, index=pd.Index(self.query_ids, name="query_id", dtype=object))

    def __getitem__(self, metric: str | MetricSpec) -> float:
        """Aggregate value of ``metric`` (any accepted spelling)."""
        key = str(parse_metric(metric))
        if key not in self.aggregate:
            raise KeyError(f"{key} was not evaluated; evaluated: {', '.join(self.metrics)}")
        return self.aggregate[key]

    def to_frame(self) -> pd.DataFrame:
        """One row (index: run name) with the aggregates and the number of queries."""
        import pandas as pd

        row = {**self.aggregate, "queries": max(self.n_queries.values(), default=0)}
        return pd.DataFrame([row], index=pd.Index([self.run_name], name="run"))


def results_table(results: Iterable[EvalResult]) -> pd.DataFrame:
    """Aggregates of several runs as one DataFrame: a row per run, a column per metric."""
    import pandas as pd

    frames = [r.to_frame() for r in results]
    return pd.concat(frames) if frames else pd.DataFrame()


def evaluate(
    qrels: Qrels | Mapping[str, Mapping[str, int]],
    run: Run | Mapping[str, Mapping[str, float]],
    metrics: str | MetricSpec | Iterable[str | MetricSpec] = DEFAULT_METRICS,
    *,
    relevance_level: int = 1,
    empty_queries: EmptyQueries = "exclude",
) -> EvalResult:
    """Score ``run`` against ``qrels`` on ``metrics`` (names such as ``"ndcg@10"``).

    Dicts are accepted for both and converted (``{q: {d: grade}}``, ``{q: {d: score}}``).
    """
    if empty_queries not in ("exclude", "zero"):
        raise ConfigError(f"empty_queries must be 'exclude' or 'zero', got {empty_queries!r}")
    specs = parse_metrics(metrics)
    for spec in specs:
        if family_info(spec.family).kind != "ranking":
            raise ConfigError(f"{spec} is not a ranking metric; use evalsuite.metrics.correlation for score pairs")
    qrels_obj = qrels if isinstance(qrels, Qrels) else Qrels.from_dict(qrels)
    if isinstance(run, Run):
        run_obj, lookup = run, None
    else:
        run_obj = Run.from_dict(run)
        lookup = run if run_obj.ids_as_given() else None
    hits = judged_hits(qrels_obj, run_obj, run_lookup=lookup)

    names = [str(s) for s in specs]
    columns: dict[str, np.ndarray] = {}
    aggregate: dict[str, float] = {}
    n_queries: dict[str, int] = {}
    for spec, name in zip(specs, names):
        level = int(spec.param("rel") or relevance_level)
        values = METRICS.get(spec.family).compute(hits, spec, level)
        if empty_queries == "exclude":
            values = np.where(hits.num_relevant(level) > 0, values, np.nan)
        included = ~np.isnan(values)
        columns[name] = values
        n_queries[name] = int(included.sum())
        aggregate[name] = float(values[included].mean()) if included.any() else float("nan")

    query_ids = qrels_obj.query_ids
    has_relevant = hits.num_relevant(relevance_level) > 0
    run_index, qrels_index = run_obj._index(), qrels_obj._index()
    in_run = np.fromiter((q in run_index for q in query_ids.tolist()), dtype=bool, count=len(query_ids))
    return EvalResult(
        run_name=run_obj.name,
        metrics=tuple(names),
        query_ids=query_ids,
        values=columns,
        aggregate=aggregate,
        n_queries=n_queries,
        relevance_level=relevance_level,
        empty_queries=empty_queries,
        missing_queries=tuple(query_ids[has_relevant & ~in_run].tolist()),
        ignored_queries=tuple(q for q in run_obj.query_ids.tolist() if q not in qrels_index),
        excluded_queries=tuple(query_ids[~has_relevant].tolist()),
    )


def judged_hits(
    qrels: Qrels, run: Run, *, run_lookup: Mapping[str, Mapping[str, float]] | None = None
) -> Hits:
    """Join: every judged doc the run retrieved, with its 0-based rank and grade.

    Two equivalent strategies. Given ``run_lookup`` (the dict ``run`` was built from,
    read here and not kept), each *judgement* is looked up in it: few lookups. Otherwise
    each *retrieved doc* is looked up in the qrels. Ranks then come from a binary search
    of the doc's score in the query's sorted scores; ties are broken by doc id (trec_eval).
    """
    n_queries = len(qrels)
    run_index = run._index()
    run_of_qrels = np.array([run_index.get(q, -1) for q in qrels.query_ids.tolist()], dtype=np.int64)
    judged_query = segment_ids(qrels.offsets)

    if run_lookup is not None:
        docs = qrels.doc_ids.tolist()
        no_scores: dict[str, float] = {}
        bounds = zip(qrels.query_ids.tolist(), qrels.offsets[:-1].tolist(), qrels.offsets[1:].tolist())
        scores = np.fromiter(
            chain.from_iterable(map(run_lookup.get(q, no_scores).get, docs[s:e], repeat(np.nan)) for q, s, e in bounds),
            dtype=np.float64,
            count=len(docs),
        )
        found = np.flatnonzero(~np.isnan(scores))
        hit_query = judged_query[found]
        hit_grade = qrels.grades[found]
        hit_key = rank_keys(scores[found])
        hit_doc = qrels.doc_ids[found]
        hit_run_query = run_of_qrels[hit_query]
    elif (coded := run.doc_codes()) is not None:
        rows, hit_query, qrels_rows = _join_coded(qrels, run, coded, judged_query)
        hit_run_query = np.searchsorted(run.offsets, rows, side="right") - 1
        hit_grade = qrels.grades[qrels_rows]
        hit_key = run.rank_keys()[rows]
        hit_doc = qrels.doc_ids[qrels_rows]
    else:
        grade_maps = qrels.grade_maps()
        qrels_index = qrels._index()
        empty: dict[str, int] = {}
        docs = run.doc_ids.tolist()
        bounds = zip(run.query_ids.tolist(), run.offsets[:-1].tolist(), run.offsets[1:].tolist())
        grades = np.fromiter(
            chain.from_iterable(
                map(grade_maps.get(q, empty).get, docs[s:e], repeat(_NOT_JUDGED)) for q, s, e in bounds
            ),
            dtype=np.int64,
            count=len(docs),
        )
        rows = np.flatnonzero(grades != _NOT_JUDGED)
        qrels_of_run = np.array([qrels_index.get(q, -1) for q in run.query_ids.tolist()], dtype=np.int64)
        hit_run_query = np.searchsorted(run.offsets, rows, side="right") - 1
        hit_query = qrels_of_run[hit_run_query]
        hit_grade = grades[rows]
        hit_key = run.rank_keys()[rows]
        hit_doc = run.doc_ids[rows]

    rank = _ranks(run, hit_run_query, hit_key, hit_doc)
    order = np.lexsort((rank, hit_query))
    return Hits(
        n_queries=n_queries,
        query=hit_query[order],
        rank=rank[order],
        grade=hit_grade[order],
        judged_query=judged_query,
        judged_grade=qrels.grades,
    )


def _join_coded(
    qrels: Qrels, run: Run, coded: tuple[np.ndarray, Any], judged_query: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The join for a run whose doc ids are codes into a pyarrow dictionary (Arrow reader).

    Every dictionary entry is matched against the judged doc ids (one hash probe per
    entry, :func:`~evalsuite._ids.match_dictionary`); one gather over the run's codes then
    gives, per run row, the key of its doc among the judged docs (or -1). The rows with a
    key -- few -- are matched to (query, doc) judgements by a binary search of
    ``query * n_keys + key``. No Python string is built per run row.
    Returns (run rows, qrels query of each, qrels row of each).
    """
    codes, dictionary = coded
    entry_key, judged_key = match_dictionary(dictionary, qrels.doc_ids)
    run_index = run._index()
    run_of_qrels = np.array([run_index.get(q, -1) for q in qrels.query_ids.tolist()], dtype=np.int64)
    qrels_of_run = np.full(len(run), -1, dtype=np.int64)
    found = run_of_qrels >= 0
    qrels_of_run[run_of_qrels[found]] = np.flatnonzero(found)
    n_keys = int(judged_key.max()) + 1 if len(judged_key) else 1
    judged_keys = judged_query * n_keys + judged_key
    by_key = np.argsort(judged_keys, kind="stable")
    sorted_keys = judged_keys[by_key]
    row_key = entry_key[codes]
    rows = np.flatnonzero(row_key >= 0)
    row_query = qrels_of_run[np.searchsorted(run.offsets, rows, side="right") - 1]
    keep = row_query >= 0
    rows, row_query = rows[keep], row_query[keep]
    if len(rows) == 0 or len(sorted_keys) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    keys = row_query * n_keys + row_key[rows].astype(np.int64)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    match = sorted_keys[pos] == keys
    return rows[match], row_query[match], by_key[pos[match]]


def _ranks(run: Run, run_query: np.ndarray, key: np.ndarray, doc: np.ndarray) -> np.ndarray:
    """0-based rank of each (query, rank key, doc) hit in the run's trec_eval ranking."""
    if len(run_query) == 0:
        return np.zeros(0, dtype=np.int64)
    sorted_keys = run.sorted_rank_keys()
    starts = run.offsets[run_query]
    ends = run.offsets[run_query + 1]
    lo = searchsorted_within(sorted_keys, starts, ends, key, side="left")
    hi = searchsorted_within(sorted_keys, starts, ends, key, side="right")
    rank = lo - starts
    tied = np.flatnonzero(hi - lo > 1)
    if len(tied):
        # Among rows with the same key the order is doc id descending, so the hit's rank
        # among them is the number of those doc ids greater than its own.
        keys = run.rank_keys()
        groups: dict[tuple[int, float], list[str]] = {}
        for i, q, k, d in zip(tied.tolist(), run_query[tied].tolist(), key[tied].tolist(), doc[tied].tolist()):
            ascending = groups.get((q, k))
            if ascending is None:
                s, e = int(run.offsets[q]), int(run.offsets[q + 1])
                ascending = sorted(run.doc_ids_at(s + np.flatnonzero(keys[s:e] == k)).tolist())
                groups[(q, k)] = ascending
            rank[i] += len(ascending) - bisect_right(ascending, d)
    return rank


def metric_names(metrics: Iterable[str | MetricSpec]) -> list[str]:
    """Canonical names of ``metrics`` (parsing every accepted spelling)."""
    return [str(s) for s in parse_metrics(metrics)]
