"""Correlation metrics for score-pair (STS-style) evaluation.

A system gives each sentence pair a similarity score; the metric is the correlation
of those scores with human judgements:

* Spearman's rho = Pearson correlation of the ranks (average ranks for ties).
* Pearson's r = cov(x, y) / (std(x) * std(y)).

Both are computed with numpy, the formulas scipy uses (``scipy.stats.pearsonr``: centre,
scale each vector to unit length, dot product, clip to [-1, 1]; ``scipy.stats.spearmanr``:
the same on ``scipy.stats.rankdata`` average ranks), so they equal what MTEB and
sentence-transformers report through scipy to rounding (within 1e-12, cross-checked in
tests/unit/test_correlation.py); importing :mod:`scipy.stats` would cost a report about half
a second.

Uncertainty: a correlation is not a mean of per-pair values, so its confidence interval
comes from resampling the sentence *pairs* (with replacement, each pair keeping its
predicted and gold score together) and recomputing the correlation on every resample
(:func:`bootstrap_correlation`); the difference between two systems scored on the same
pairs is bootstrapped with the same resampled pairs for both
(:func:`paired_bootstrap_correlation`). The resampling draws exactly what
``scipy.stats.bootstrap(..., paired=True, batch=1000)`` draws from the same seed, so the
distributions agree with scipy's to rounding (tests/unit/test_correlation.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from evalsuite.errors import DataError
from evalsuite.metrics.spec import FamilyInfo, register_family

__all__ = [
    "CorrelationBootstrap",
    "CorrelationResult",
    "bootstrap_correlation",
    "correlate",
    "paired_bootstrap_correlation",
    "pearson",
    "spearman",
]

CorrelationMetric = Literal["spearman", "pearson"]
_BATCH = 1000  # resamples drawn per batch: bounded memory, and scipy's draws with batch=1000

register_family(FamilyInfo("spearman", "spearman", "forbidden", (), ("spearmanr", "rho"), kind="correlation"))
register_family(FamilyInfo("pearson", "pearson", "forbidden", (), ("pearsonr",), kind="correlation"))


@dataclass(frozen=True)
class CorrelationResult:
    """Correlation of predicted with gold scores over ``n`` pairs."""

    spearman: float
    pearson: float
    n: int


def _validated(predicted: ArrayLike, gold: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    try:
        x = np.asarray(predicted, dtype=np.float64)
        y = np.asarray(gold, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"correlation: scores must be numbers ({exc})") from None
    if x.ndim != 1 or y.ndim != 1 or len(x) != len(y):
        raise DataError(f"correlation: need two equally long 1-d score lists, got shapes {x.shape} and {y.shape}")
    if len(x) < 2:
        raise DataError("correlation: need at least 2 score pairs")
    if np.isnan(x).any() or np.isnan(y).any():
        raise DataError("correlation: scores contain NaN")
    for name, values in (("predicted", x), ("gold", y)):
        if np.all(values == values[0]):
            raise DataError(f"correlation: all {name} scores are equal, so the correlation is undefined")
    return x, y


def _average_ranks(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Ranks 1..n of ``values``, tied values sharing the mean of their ranks
    (``scipy.stats.rankdata(values, method="average")``): the one "resample" that draws every
    value once, in order."""
    return _resampled_ranks(values, np.arange(len(values))[None, :])[0]


def _pearson(x: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    """Pearson's r of two validated (non-constant) vectors, computed as ``scipy.stats.pearsonr`` does."""
    with np.errstate(invalid="ignore"):  # an infinite score makes the deviations NaN (below)
        xm = x - x.mean()
        ym = y - y.mean()
        # norms of the deviations scaled by their largest magnitude first: no overflow on huge scores
        xmax, ymax = np.abs(xm).max(), np.abs(ym).max()
        normxm = xmax * np.linalg.norm(xm / xmax)
        normym = ymax * np.linalg.norm(ym / ymax)
        r = float(np.dot(xm / normxm, ym / normym))
    if math.isnan(r):  # an infinite score: undefined, NaN as scipy returns (never clipped into +-1)
        return r
    if len(x) == 2:  # two points lie on a line: exactly 1 or -1, as scipy returns
        return math.copysign(1.0, r)
    return max(-1.0, min(1.0, r))


def spearman(predicted: ArrayLike, gold: ArrayLike) -> float:
    """Spearman's rank correlation of ``predicted`` with ``gold``: Pearson's r of the average ranks."""
    x, y = _validated(predicted, gold)
    return _pearson(_average_ranks(x), _average_ranks(y))


def pearson(predicted: ArrayLike, gold: ArrayLike) -> float:
    """Pearson's linear correlation of ``predicted`` with ``gold``:
    sum(dx * dy) / sqrt(sum(dx^2) * sum(dy^2)), with dx, dy the deviations from the means."""
    x, y = _validated(predicted, gold)
    return _pearson(x, y)


def correlate(predicted: Sequence[float] | ArrayLike, gold: Sequence[float] | ArrayLike) -> CorrelationResult:
    """Both correlations at once."""
    x, y = _validated(predicted, gold)
    return CorrelationResult(spearman=spearman(x, y), pearson=pearson(x, y), n=len(x))


@dataclass(frozen=True)
class CorrelationBootstrap:
    """Bootstrap over sentence pairs of a correlation (or of a difference of two).

    ``estimate`` is the statistic on all pairs; ``distribution`` holds one value per
    resample (resamples where the statistic is undefined, e.g. all scores equal in a
    tiny set, are left out and counted in ``n_undefined``); ``low``/``high`` are the
    percentile interval at ``confidence``.
    """

    metric: str
    estimate: float
    low: float
    high: float
    confidence: float
    n: int
    n_resamples: int
    n_undefined: int = 0
    distribution: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0), repr=False)

    def mass_below(self, threshold: float) -> float:
        """Share of the bootstrap distribution strictly below ``threshold``."""
        return float(np.mean(self.distribution < threshold)) if len(self.distribution) else float("nan")

    def mass_above(self, threshold: float) -> float:
        """Share of the bootstrap distribution strictly above ``threshold``."""
        return float(np.mean(self.distribution > threshold)) if len(self.distribution) else float("nan")


def _rowwise_pearson(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    """Pearson's r of each row of ``x`` with the same row of ``y`` (NaN where a row is constant)."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    num = np.einsum("ij,ij->i", xc, yc)
    den = np.sqrt(np.einsum("ij,ij->i", xc, xc) * np.einsum("ij,ij->i", yc, yc))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den
    r[den == 0] = np.nan
    return np.clip(r, -1.0, 1.0)


def _resampled_ranks(values: NDArray[np.float64], idx: NDArray[np.int64]) -> NDArray[np.float64]:
    """Average ranks (``scipy.stats.rankdata(values[idx], axis=1)``, ties share the mean rank)
    of every row of ``values[idx]``, from one sort of ``values`` instead of one per row.

    A row's ranks depend only on how often it draws each distinct value: counting the draws per
    value (in ascending value order) gives each value's first rank as the running total, and its
    average rank as scipy computes it, ``first + (count - 1) / 2`` (exact in float64).
    """
    order = np.argsort(values, kind="stable")
    ascending = values[order]
    starts = np.empty(len(values), dtype=bool)
    starts[0] = True
    np.not_equal(ascending[1:], ascending[:-1], out=starts[1:])
    group = np.empty(len(values), dtype=np.intp)
    group[order] = np.cumsum(starts) - 1  # distinct values numbered in ascending order
    n_groups = int(group.max()) + 1
    rows = idx.shape[0]
    flat = group[idx]  # each draw's value number, offset by its row into one flat (row, value) table
    flat += (n_groups * np.arange(rows, dtype=np.intp))[:, None]
    counts = np.bincount(flat.ravel(), minlength=rows * n_groups)
    first = np.cumsum(counts.reshape(rows, n_groups), axis=1).ravel() - counts + 1
    rank_of_value = first + (counts - 1) / 2
    return rank_of_value[flat]


def _rowwise(metric: CorrelationMetric, x: NDArray[np.float64], y: NDArray[np.float64],
             idx: NDArray[np.int64]) -> NDArray[np.float64]:
    """The correlation of each row pair of ``x[idx]``, ``y[idx]``: Spearman = Pearson of average
    ranks (scipy's ties rule)."""
    if metric == "spearman":
        return _rowwise_pearson(_resampled_ranks(x, idx), _resampled_ranks(y, idx))
    return _rowwise_pearson(x[idx], y[idx])


def _check_bootstrap_args(metric: str, confidence: float, n_resamples: int) -> None:
    if metric not in ("spearman", "pearson"):
        raise ValueError(f"metric must be 'spearman' or 'pearson', got {metric!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")


def _summarise(metric: str, estimate: float, draws: NDArray[np.float64], *, confidence: float, n: int,
               n_resamples: int) -> CorrelationBootstrap:
    defined = draws[~np.isnan(draws)]
    tail = (1 - confidence) / 2
    if len(defined):
        low, high = (float(v) for v in np.quantile(defined, [tail, 1 - tail]))
    else:
        low = high = float("nan")
    return CorrelationBootstrap(metric, estimate, low, high, confidence, n, n_resamples,
                                n_undefined=int(len(draws) - len(defined)), distribution=defined)


def _draws(n: int, n_resamples: int, seed: int, statistic: object) -> NDArray[np.float64]:
    """``statistic(indices)`` over resampled pair indices, batch by batch (the draws scipy makes)."""
    rng = np.random.default_rng(seed)
    out = np.empty(n_resamples)
    for start in range(0, n_resamples, _BATCH):
        size = min(_BATCH, n_resamples - start)
        idx = rng.integers(0, n, (size, n))
        out[start:start + size] = statistic(idx)  # type: ignore[operator]
    return out


def bootstrap_correlation(
    predicted: ArrayLike,
    gold: ArrayLike,
    *,
    metric: CorrelationMetric = "spearman",
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> CorrelationBootstrap:
    """Percentile bootstrap of Spearman's rho or Pearson's r over sentence pairs.

    Each resample draws ``n`` pairs with replacement (predicted and gold score stay
    together) and recomputes the correlation; seeded and reproducible. Equivalent to
    ``scipy.stats.bootstrap((predicted, gold), stat, paired=True, method="percentile",
    batch=1000, rng=np.random.default_rng(seed))``, vectorised over resamples.
    """
    _check_bootstrap_args(metric, confidence, n_resamples)
    x, y = _validated(predicted, gold)
    estimate = spearman(x, y) if metric == "spearman" else pearson(x, y)
    draws = _draws(len(x), n_resamples, seed, lambda idx: _rowwise(metric, x, y, idx))
    return _summarise(metric, estimate, draws, confidence=confidence, n=len(x), n_resamples=n_resamples)


def paired_bootstrap_correlation(
    predicted_a: ArrayLike,
    predicted_b: ArrayLike,
    gold: ArrayLike,
    *,
    metric: CorrelationMetric = "spearman",
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> CorrelationBootstrap:
    """Bootstrap of corr(a, gold) - corr(b, gold): systems ``a`` and ``b`` scored on the same pairs.

    Both correlations are recomputed on the *same* resampled pairs, so what the pairs have
    in common (easy and hard pairs) cancels out of the difference. ``estimate`` is the
    difference on all pairs; positive means ``a`` agrees better with the gold scores.
    """
    _check_bootstrap_args(metric, confidence, n_resamples)
    a, y = _validated(predicted_a, gold)
    b, _ = _validated(predicted_b, gold)
    single = spearman if metric == "spearman" else pearson
    estimate = single(a, y) - single(b, y)

    def statistic(idx: NDArray[np.int64]) -> NDArray[np.float64]:
        if metric == "spearman":
            gold_ranks = _resampled_ranks(y, idx)  # ranked once for both systems
            return (_rowwise_pearson(_resampled_ranks(a, idx), gold_ranks)
                    - _rowwise_pearson(_resampled_ranks(b, idx), gold_ranks))
        gold_rows = y[idx]
        return _rowwise_pearson(a[idx], gold_rows) - _rowwise_pearson(b[idx], gold_rows)

    draws = _draws(len(a), n_resamples, seed, statistic)
    return _summarise(f"{metric} difference", estimate, draws, confidence=confidence, n=len(a),
                      n_resamples=n_resamples)
