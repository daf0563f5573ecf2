"""Significance tests, confidence intervals and multiple-comparison corrections.

All functions work on **per-query** metric values, paired by query id. Tests and
intervals are computed by :mod:`scipy.stats`; every resampling takes a seed and is
reproducible.

Conventions:

* Pairing: two systems are compared on the queries both have a value for (aligned by id,
  never by position). A query scored by only one system (NaN or absent in the other) is
  left out and counted in ``n_unpaired``; with a shared qrels this never happens, because
  :func:`evalsuite.evaluate` scores a judged query missing from a run as 0.
* Differences are ``a - b`` (system minus baseline): positive means ``a`` is better.
* When every paired difference is 0 there is no evidence of a difference: all three tests
  return p = 1 (rather than NaN, which a correction could not use).
* p-values that are NaN (fewer than 2 paired queries) are never fed to a correction; their
  corrected value stays NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:  # pandas is not imported at run time: `evalsuite --help` and the suite start-up stay light
    import pandas as pd

__all__ = [
    "ConfidenceInterval",
    "PairedComparison",
    "align",
    "bootstrap_ci",
    "bootstrap_means",
    "compare",
    "correct",
    "paired_t_test",
    "randomization_test",
    "wilcoxon_test",
]

FloatArray = NDArray[np.float64]
CIMethod = Literal["percentile", "BCa"]


@dataclass(frozen=True)
class ConfidenceInterval:
    """A bootstrap interval for a mean, with the point estimate."""

    estimate: float
    low: float
    high: float
    confidence: float
    method: str
    n: int

    def __str__(self) -> str:
        return f"{self.estimate:.4f} [{self.low:.4f}, {self.high:.4f}]"


@dataclass(frozen=True)
class PairedComparison:
    """System ``a`` against baseline ``b`` on one metric, over paired queries."""

    metric: str
    a: str
    b: str
    n: int
    mean_a: float
    mean_b: float
    delta: float
    effect_size: float  # Cohen's d_z = mean(diff) / sd(diff)
    p_t: float
    p_randomization: float
    p_wilcoxon: float
    ci_delta: ConfidenceInterval
    n_unpaired: int = 0
    p_corrected: float | None = None
    notes: tuple[str, ...] = field(default=())

    def significant(self, alpha: float = 0.05) -> bool:
        """Whether the (corrected, if available) randomization p-value is below ``alpha``."""
        p = self.p_corrected if self.p_corrected is not None else self.p_randomization
        return not math.isnan(p) and p < alpha


PerQuery: TypeAlias = "Mapping[str, float] | Mapping[str, float | None] | pd.Series"


def align(a: PerQuery, b: PerQuery) -> tuple[FloatArray, FloatArray, int]:
    """Paired values of two per-query score maps, aligned by query id.

    Returns (values of a, values of b, number of queries scored by only one of them).
    """
    sa, sb = _scored(a), _scored(b)
    common = sorted(sa.keys() & sb.keys())
    unpaired = len(sa.keys() ^ sb.keys())
    x: FloatArray = np.fromiter((sa[q] for q in common), dtype=np.float64, count=len(common))
    y: FloatArray = np.fromiter((sb[q] for q in common), dtype=np.float64, count=len(common))
    return x, y, unpaired


def _scored(values: PerQuery) -> dict[str, float]:
    """The queries of ``values`` with a number (None and NaN left out, as ``Series.dropna``)."""
    out: dict[str, float] = {}
    for query, value in values.items():
        number = math.nan if value is None else float(value)
        if not math.isnan(number):
            out[query] = number  # type: ignore[index]  # a Series keyed by query id
    return out


def _diff(a: ArrayLike, b: ArrayLike) -> FloatArray:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired values must be two 1-d arrays of one length, got {x.shape} and {y.shape}")
    return x - y


def paired_t_test(a: ArrayLike, b: ArrayLike) -> float:
    """Two-sided paired t-test p-value (scipy.stats.ttest_rel)."""
    from scipy import stats

    d = _diff(a, b)
    if len(d) < 2:
        return math.nan
    if np.all(d == 0):
        return 1.0
    if np.all(d == d[0]):  # constant non-zero difference: infinitely significant
        return 0.0
    return float(stats.ttest_rel(a, b).pvalue)


def randomization_test(a: ArrayLike, b: ArrayLike, *, n_resamples: int = 10_000, seed: int = 0) -> float:
    """Two-sided paired randomization (permutation) test of the mean difference.

    Under H0 each query's pair of values is exchangeable, so the sign of each difference
    d_i = a_i - b_i is flipped at random; p is the share of sign patterns whose
    |mean(s_i d_i)| >= |mean(d_i)|. When the 2^n patterns are at most ``n_resamples`` they are
    all enumerated (exact p); otherwise ``n_resamples`` random patterns are drawn and
    p = (hits + 1) / (n_resamples + 1), the convention of scipy.stats.permutation_test
    (``permutation_type="samples"``), which the tests cross-check. Written with numpy
    rather than calling scipy so that a report with dozens of comparisons stays fast.
    """
    d = _diff(a, b)
    n = len(d)
    if n < 2:
        return math.nan
    if np.all(d == 0):
        return 1.0
    observed = abs(float(d.mean()))
    tolerance = 1e-12 * max(1.0, observed)  # equal means computed in another order still count
    if n <= 30 and 2 ** n <= n_resamples:
        patterns = ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1) * 2 - 1
        means = np.abs(patterns @ d) / n
        return float(np.mean(means >= observed - tolerance))
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, n_resamples, 1000):  # bounded memory for large query sets
        size = min(1000, n_resamples - start)
        signs = rng.integers(0, 2, size=(size, n), dtype=np.int8) * 2 - 1
        hits += int(np.count_nonzero(np.abs(signs @ d) / n >= observed - tolerance))
    return float(min(1.0, (hits + 1) / (n_resamples + 1)))


def wilcoxon_test(a: ArrayLike, b: ArrayLike) -> float:
    """Two-sided Wilcoxon signed-rank p-value (scipy.stats.wilcoxon; zero differences dropped)."""
    from scipy import stats

    d = _diff(a, b)
    if len(d) < 2:
        return math.nan
    if np.all(d == 0):
        return 1.0
    return float(stats.wilcoxon(d).pvalue)


def bootstrap_ci(
    values: ArrayLike,
    *,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    method: CIMethod = "percentile",
    seed: int = 0,
) -> ConfidenceInterval:
    """Bootstrap confidence interval of the mean of ``values`` (queries resampled with replacement).

    ``method="BCa"`` corrects for bias and skew (useful for skewed metrics such as MRR on
    few queries); with constant values the interval is the point itself.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return ConfidenceInterval(math.nan, math.nan, math.nan, confidence, method, 0)
    estimate = float(x.mean())
    if len(x) == 1 or np.all(x == x[0]):
        return ConfidenceInterval(estimate, estimate, estimate, confidence, method, len(x))
    if method == "BCa":
        from scipy import stats  # only here: the percentile interval needs no scipy (its import takes a second)

        result = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                                 method=method, vectorized=True, rng=np.random.default_rng(seed))
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
        if not (math.isnan(low) or math.isnan(high)):
            return ConfidenceInterval(estimate, low, high, confidence, method, len(x))
        method = "percentile"  # BCa can fail on degenerate resamples: fall back, and say so
    # percentile interval read from the same resampled means the gates use (bootstrap_means)
    means = bootstrap_means(x, n_resamples=n_resamples, seed=seed)
    tail = (1 - confidence) / 2
    low, high = (float(v) for v in np.quantile(means, [tail, 1 - tail]))
    return ConfidenceInterval(estimate, low, high, confidence, method, len(x))


def bootstrap_means(values: ArrayLike, *, n_resamples: int = 10_000, seed: int = 0) -> FloatArray:
    """The bootstrap distribution of the mean: ``n_resamples`` means of queries resampled with
    replacement (what percentile intervals are read from). Used to say how much of the
    bootstrap mass lies beyond a gate's threshold.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return np.zeros(0)
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, 1000):  # bounded memory for large query sets
        stop = min(n_resamples, start + 1000)
        means[start:stop] = x[rng.integers(0, len(x), size=(stop - start, len(x)))].mean(axis=1)
    return means


def correct(p_values: Sequence[float], method: Literal["holm", "bh"] = "holm") -> list[float]:
    """Adjusted p-values for many comparisons; NaN entries are left out and stay NaN.

    ``holm``: Holm-Bonferroni step-down (controls the family-wise error rate):
    p_(i) adjusted = max_{j<=i} min(1, (m - j + 1) p_(j)).
    ``bh``: Benjamini-Hochberg (controls the false discovery rate), via
    scipy.stats.false_discovery_control.
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(len(p), np.nan)
    valid = ~np.isnan(p)
    if not valid.any():
        return out.tolist()
    if np.any((p[valid] < 0) | (p[valid] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    pv = p[valid]
    if method == "bh":
        from scipy import stats

        adjusted = stats.false_discovery_control(pv, method="bh")
    elif method == "holm":
        m = len(pv)
        order = np.argsort(pv, kind="stable")
        stepped = np.minimum(1.0, (m - np.arange(m)) * pv[order])
        adjusted = np.empty(m)
        adjusted[order] = np.maximum.accumulate(stepped)
    else:
        raise ValueError(f"correction must be 'holm' or 'bh', got {method!r}")
    out[valid] = adjusted
    return out.tolist()


def compare(
    a: PerQuery,
    b: PerQuery,
    *,
    metric: str = "",
    names: tuple[str, str] = ("a", "b"),
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    ci_method: CIMethod = "percentile",
    seed: int = 0,
) -> PairedComparison:
    """Everything about ``a`` vs baseline ``b``: means, delta, effect size, three p-values, CI of the delta."""
    x, y, unpaired = align(a, b)
    d = x - y
    notes = []
    if unpaired:
        notes.append(f"{unpaired} quer{'y' if unpaired == 1 else 'ies'} scored by only one system left out")
    if len(d) < 2:
        notes.append("fewer than 2 paired queries: no test possible")
    elif np.all(d == 0):
        notes.append("identical per-query values")
    sd = float(np.std(d, ddof=1)) if len(d) > 1 else math.nan
    effect = float(d.mean() / sd) if len(d) > 1 and sd > 0 else math.nan
    return PairedComparison(
        metric=metric, a=names[0], b=names[1], n=len(d),
        mean_a=float(x.mean()) if len(x) else math.nan, mean_b=float(y.mean()) if len(y) else math.nan,
        delta=float(d.mean()) if len(d) else math.nan, effect_size=effect,
        p_t=paired_t_test(x, y), p_randomization=randomization_test(x, y, n_resamples=n_resamples, seed=seed),
        p_wilcoxon=wilcoxon_test(x, y),
        ci_delta=bootstrap_ci(d, confidence=confidence, n_resamples=n_resamples, method=ci_method, seed=seed),
        n_unpaired=unpaired, notes=tuple(notes),
    )
