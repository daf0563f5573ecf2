"""Rank fusion: combine the runs of several retrievers into one run.

Two families, both pure functions of :class:`~evalsuite.types.Run` objects (inputs are
never modified; a new run is returned):

* :func:`rrf` -- Reciprocal Rank Fusion (Cormack, Clarke and Buettcher, SIGIR 2009). It
  reads only ranks, so runs on incomparable score scales (BM25, cosine) fuse without
  any normalisation.
* :func:`convex` -- a weighted sum of per-query normalised scores ("convex combination",
  CombSUM with weights). It reads the score margins too, and needs a weight per run,
  which should be chosen on a dev split (see :func:`evalsuite.retrievers.hybrid.weight_sweep`).

Conventions shared by both:

* **Ranks** follow the trec_eval order every metric reads (score descending, ties by doc
  id descending; see :meth:`Run.ranking`), counted from 1.
* ``depth`` (optional) keeps each run's ``depth`` best-ranked documents per query before
  fusing; normalisation statistics are computed on what is kept.
* The fused run holds, per query, the **union** of the documents of all runs. A query
  present in some runs only is fused from those; a query present with an empty ranking
  stays present with no documents (nothing is dropped).
* Fused rows come grouped by query (queries in first-seen order over the runs); their
  ranking, like any run's, is computed by :meth:`Run.ranking`, so fused ties are broken
  by doc id descending.

Both work on the columnar arrays (no Python loop over documents): fusing two runs of
10,000 queries x 1,000 documents takes about 5-10 s on a 2-core machine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Literal, get_args

import numpy as np
from numpy.typing import NDArray

from evalsuite._ids import object_codes
from evalsuite._segments import argsort_within, offsets_from_counts, segment_ids
from evalsuite.errors import ConfigError, DataError
from evalsuite.types import Run

__all__ = [
    "NORMALIZATIONS",
    "Normalization",
    "check_normalization",
    "check_rrf_k",
    "check_weights",
    "convex",
    "normalize",
    "rrf",
]

Normalization = Literal["min-max", "z-score", "none"]
#: accepted values of ``normalization``
NORMALIZATIONS: tuple[str, ...] = get_args(Normalization)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
ObjArray = NDArray[np.object_]

RunLike = Run | Mapping[str, Mapping[str, float]]


# -- public functions ----------------------------------------------------------------------


def rrf(runs: Sequence[RunLike], *, k: float = 60, depth: int | None = None, name: str = "rrf") -> Run:
    r"""Reciprocal Rank Fusion of ``runs``.

    .. math::

        \mathrm{RRF}(q, d) = \sum_{r \in \text{runs},\ d \in r(q)} \frac{1}{k + \mathrm{rank}_r(q, d)}

    where :math:`\mathrm{rank}_r(q, d) \ge 1` is the rank of ``d`` in run ``r`` for query
    ``q`` (trec_eval order; documents tied on score get consecutive ranks in that order,
    not an averaged rank) and a run that did not retrieve ``d`` contributes nothing.
    ``k = 60`` is the value of Cormack et al. (2009); it damps the weight of the very top
    ranks (``k = 0`` gives ``1 / rank``).

    Example with ``k = 60``: ``d`` ranked 1st in run A and 3rd in run B scores
    ``1/61 + 1/63``; a doc only in run B at rank 1 scores ``1/61``.

    Args:
        runs: one or more runs (or ``{query: {doc: score}}`` dicts).
        k: the rank constant, a finite number >= 0.
        depth: keep only each run's ``depth`` best-ranked docs per query before fusing.
        name: the name of the returned run.
    """
    k = check_rrf_k(k)
    cuts = [_cut(run, depth) for run in _as_runs(runs, "rrf")]
    values = [1.0 / (k + cut.rank.astype(np.float64)) for cut in cuts]
    fills = [np.zeros(len(cut.query_ids)) for cut in cuts]
    return _fuse(cuts, values, fills, np.ones(len(cuts)), name)


def convex(
    runs: Sequence[RunLike],
    weights: Sequence[float] | NDArray[np.floating],
    *,
    normalization: Normalization = "min-max",
    depth: int | None = None,
    name: str = "convex",
) -> Run:
    r"""Convex combination of per-query normalised scores.

    .. math::

        \mathrm{CC}(q, d) = \sum_i \frac{w_i}{\sum_j w_j}\, \tilde s_i(q, d)

    where :math:`\tilde s_i(q, d)` is run ``i``'s score of ``d`` normalised over run ``i``'s
    documents for ``q`` (see :func:`normalize`):

    * ``"min-max"``: :math:`(s - \min_q) / (\max_q - \min_q)`, in ``[0, 1]``;
    * ``"z-score"``: :math:`(s - \mu_q) / \sigma_q` (population standard deviation);
    * ``"none"``: the raw score (only meaningful when the runs share a scale).

    If all scores of a query in a run are equal (one document, or a flat ranking),
    min-max and z-score are undefined (division by zero); those scores normalise to 0:
    the run expresses no preference for that query, so it adds the same constant to every
    document and does not change the fused order.

    **A document missing from run i** (not retrieved, or cut by ``depth``) gets run ``i``'s
    *minimum* normalised score for that query, :math:`\min_{d'} \tilde s_i(q, d')` -- 0 under
    min-max, the (negative) lowest z-score under z-score, the lowest raw score under
    ``"none"``. Why the minimum and not 0: runs are cut at a depth, so an unretrieved
    document scored at most the last retrieved one; the minimum is the closest value
    consistent with that, and, unlike 0, it never ranks an unretrieved document above a
    retrieved one (z-scores and raw cosine or log-probability scores go below 0). Under
    min-max both choices coincide. A **query missing from run i** (or with an empty ranking
    there) gets 0 from run ``i`` for all its documents: a constant, so the order comes from
    the other runs.

    Weights are rescaled to sum to 1 (this does not change the order; min-max fused
    scores stay in ``[0, 1]``). A run with weight 0 still contributes its documents to the
    union, at the others' missing-document scores.

    Scores must be finite. Normalisation is computed in float64 on the scores as given;
    note that rankings compare scores at float32 precision (trec_eval), so two scores that
    tie only at float32 precision may be separated by the normalisation.

    Args:
        runs: one or more runs (or dicts).
        weights: one non-negative weight per run, not all zero.
        normalization: ``"min-max"`` (default), ``"z-score"`` or ``"none"``.
        depth: keep only each run's ``depth`` best-ranked docs per query before fusing.
        name: the name of the returned run.
    """
    run_list = _as_runs(runs, "convex")
    w = check_weights(weights, len(run_list))
    method = check_normalization(normalization)
    cuts = [_cut(run, depth) for run in run_list]
    values, fills = [], []
    for cut in cuts:
        value, fill = _normalized(cut, method)
        values.append(value)
        fills.append(fill)
    return _fuse(cuts, values, fills, w / w.sum(), name)


def normalize(run: RunLike, normalization: Normalization = "min-max", *, depth: int | None = None) -> Run:
    r"""``run`` with every query's scores normalised as :func:`convex` does.

    ``"min-max"``: :math:`(s - \min_q)/(\max_q - \min_q)`; ``"z-score"``:
    :math:`(s - \mu_q)/\sigma_q` with :math:`\sigma_q^2 = \frac{1}{n_q}\sum (s - \mu_q)^2`;
    ``"none"``: unchanged. A query whose scores are all
    equal normalises to 0. ``depth`` cuts each query to its best ``depth`` docs first.
    Rows come in rank order.
    """
    method = check_normalization(normalization)
    (source,) = _as_runs([run], "normalize")
    cut = _cut(source, depth)
    value, _ = _normalized(cut, method)
    return Run._make(cut.query_ids.copy(), offsets_from_counts(cut.counts), cut.doc_ids, value,
                     name=source.name)


# -- validation -----------------------------------------------------------------------------


def _as_runs(runs: Sequence[RunLike], where: str) -> list[Run]:
    if isinstance(runs, (Run, Mapping, str, bytes)):
        raise ConfigError(f"{where}: pass a list of runs (e.g. [bm25_run, dense_run]), got a single "
                          f"{type(runs).__name__}")
    try:
        items = list(runs)
    except TypeError:
        raise ConfigError(f"{where}: runs must be a list of Run objects, got {type(runs).__name__}") from None
    if not items:
        raise ConfigError(f"{where}: no runs to fuse; pass at least one run")
    out = []
    for i, run in enumerate(items):
        if isinstance(run, Run):
            out.append(run)
        elif isinstance(run, Mapping):
            out.append(Run.from_dict(run, name=f"run{i + 1}"))
        else:
            raise ConfigError(f"{where}: runs[{i}] must be a Run or a {{query: {{doc: score}}}} dict, "
                              f"got {type(run).__name__}")
    return out


def check_rrf_k(k: float, field: str = "k") -> float:
    """Validate the RRF rank constant (a finite number >= 0); ``field`` names it in errors."""
    if isinstance(k, bool) or not isinstance(k, Real) or not math.isfinite(k) or k < 0:
        raise ConfigError(f"{field} (the RRF rank constant) must be a finite number >= 0 "
                          f"(60 in Cormack et al. 2009), got {k!r}")
    return float(k)


def check_weights(weights: Sequence[float] | NDArray[np.floating], n_runs: int) -> FloatArray:
    """Validate convex-combination weights: one per run, finite, >= 0, not all zero."""
    if isinstance(weights, (str, bytes, Mapping)):
        raise ConfigError(f"weights must be a list of numbers, one per run, got {type(weights).__name__}")
    try:
        w = np.array(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"weights must be a list of numbers, one per run, got {weights!r}") from None
    if w.ndim != 1 or len(w) != n_runs:
        raise ConfigError(f"weights: expected one weight per run ({n_runs} runs), got {w.size} ({weights!r})")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ConfigError(f"weights must be finite and >= 0, got {w.tolist()}")
    if not (w > 0).any():
        raise ConfigError(f"weights are all zero ({w.tolist()}); give at least one run a positive weight")
    return w


def check_normalization(normalization: str) -> Normalization:
    """Validate a score normalisation name (one of :data:`NORMALIZATIONS`)."""
    if normalization not in NORMALIZATIONS:
        raise ConfigError(f"normalization must be one of {', '.join(map(repr, NORMALIZATIONS))}, "
                          f"got {normalization!r}")
    return normalization  # type: ignore[return-value]


def _check_depth(depth: int | None) -> int | None:
    if depth is None:
        return None
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise ConfigError(f"depth must be a positive integer or None (no cut), got {depth!r}")
    return int(depth)


# -- columnar kernels -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Cut:
    """One run after the depth cut, rows in rank order (best first) within each query."""

    name: str
    query_ids: ObjArray  # one per query
    counts: IntArray  # rows per query
    doc_ids: ObjArray  # per row
    scores: FloatArray  # per row
    rank: IntArray  # per row, from 1


def _cut(run: Run, depth: int | None) -> _Cut:
    depth = _check_depth(depth)
    order = run.ranking_order()
    seg = segment_ids(run.offsets)
    rank = np.arange(len(order), dtype=np.int64) - run.offsets[seg] + 1
    if depth is not None:
        keep = rank <= depth
        order, seg, rank = order[keep], seg[keep], rank[keep]
    counts = np.bincount(seg, minlength=len(run)).astype(np.int64)
    return _Cut(run.name, run.query_ids, counts, run.doc_ids[order], run.scores[order], rank)


def _normalized(cut: _Cut, method: Normalization) -> tuple[FloatArray, FloatArray]:
    """Normalised score per row and, per query, the value a missing doc gets (the minimum)."""
    offsets = offsets_from_counts(cut.counts)
    scores = cut.scores
    bad = ~np.isfinite(scores)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        query = cut.query_ids[np.searchsorted(offsets, row, side="right") - 1]
        raise DataError(f"run {cut.name!r}, query {query!r}, doc {cut.doc_ids[row]!r}: score "
                        f"{scores[row]!r} is not finite; score normalisation needs finite scores "
                        "(rrf reads ranks only and accepts them)")
    seg = segment_ids(offsets)
    nonempty = cut.counts > 0
    first, last = offsets[:-1][nonempty], offsets[1:][nonempty] - 1
    fill = np.zeros(len(cut.counts))
    if method == "none":
        fill[nonempty] = scores[last]  # rows are in rank order: the last is the minimum
        return scores, fill
    # all scores of the query equal (max == min): no preference, normalised to 0. Tested on
    # max == min rather than on the spread, which rounding can leave a hair above 0 (z-score).
    flat = np.ones(len(cut.counts), dtype=bool)
    flat[nonempty] = scores[first] == scores[last]
    if method == "min-max":
        low = np.zeros(len(cut.counts))
        spread = np.ones(len(cut.counts))
        low[nonempty] = scores[last]
        spread[nonempty] = scores[first] - scores[last]
    else:  # z-score, population standard deviation
        n = np.maximum(cut.counts, 1)
        low = np.bincount(seg, weights=scores, minlength=len(n)) / n
        deviation = scores - low[seg]
        spread = np.sqrt(np.bincount(seg, weights=deviation * deviation, minlength=len(n)) / n)
    spread[flat] = 1.0
    value = (scores - low[seg]) / spread[seg]
    value[flat[seg]] = 0.0
    fill[nonempty] = value[last]
    return value, fill


def _fuse(cuts: list[_Cut], values: list[FloatArray], fills: list[FloatArray], weights: FloatArray,
          name: str) -> Run:
    r"""Weighted sum over runs of ``values`` on the union of (query, doc) pairs.

    Run ``i`` gives ``values[i]`` to its rows and ``fills[i][q]`` to every other doc of its
    query ``q`` (0 where it lacks the query).
    """
    query_codes, unique_queries = object_codes(np.asarray(np.concatenate([c.query_ids for c in cuts]), dtype=object))
    query_bounds = np.cumsum([0] + [len(c.query_ids) for c in cuts])
    row_query = np.concatenate([np.repeat(query_codes[a:b], c.counts)
                                for c, a, b in zip(cuts, query_bounds, query_bounds[1:])]).astype(np.int64)
    row_doc, unique_docs = object_codes(np.asarray(np.concatenate([c.doc_ids for c in cuts]), dtype=object))
    # Group the rows of all runs by (query, doc): by query (a stable sort of runs that are
    # each already grouped), then by doc code within each query (a segmented sort).
    by_query = np.argsort(row_query, kind="stable")
    counts = np.bincount(row_query, minlength=len(unique_queries)).astype(np.int64)
    offsets = offsets_from_counts(counts)
    rows = by_query[argsort_within(row_doc[by_query].astype(np.float64), offsets)]
    sorted_query, sorted_doc = row_query[rows], row_doc[rows]
    starts = np.ones(len(rows), dtype=bool)
    starts[1:] = (sorted_doc[1:] != sorted_doc[:-1]) | (sorted_query[1:] != sorted_query[:-1])
    pair_codes = np.empty(len(rows), dtype=np.int64)
    pair_codes[rows] = np.cumsum(starts) - 1
    pair_query, pair_doc = sorted_query[starts], sorted_doc[starts]

    total = np.zeros(len(pair_query))
    row_bounds = np.cumsum([0] + [len(c.doc_ids) for c in cuts])
    for i in range(len(cuts)):
        if weights[i] == 0:
            continue
        fill = np.zeros(len(unique_queries))
        fill[query_codes[query_bounds[i]:query_bounds[i + 1]]] = fills[i]
        contribution = fill[pair_query]
        contribution[pair_codes[row_bounds[i]:row_bounds[i + 1]]] = values[i]
        total += weights[i] * contribution

    pair_counts = np.bincount(pair_query, minlength=len(unique_queries)).astype(np.int64)
    query_ids = np.asarray(unique_queries, dtype=object)
    doc_ids = np.asarray(unique_docs, dtype=object)[pair_doc]
    # Built directly from grouped columns: ids come from valid runs (strings, unique per query),
    # and Run.from_arrays could not represent queries with an empty ranking.
    return Run._make(query_ids, offsets_from_counts(pair_counts), doc_ids, total, name=name)
