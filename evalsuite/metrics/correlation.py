"""Correlation metrics for score-pair (STS-style) evaluation.

A system gives each sentence pair a similarity score; the metric is the correlation
of those scores with human judgements:

* Spearman's rho = Pearson correlation of the ranks (average ranks for ties).
* Pearson's r = cov(x, y) / (std(x) * std(y)).

Both are computed by :mod:`scipy.stats`, as MTEB and sentence-transformers do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from evalsuite.errors import DataError
from evalsuite.metrics.spec import FamilyInfo, register_family

__all__ = ["CorrelationResult", "correlate", "pearson", "spearman"]

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


def spearman(predicted: ArrayLike, gold: ArrayLike) -> float:
    """Spearman's rank correlation of ``predicted`` with ``gold``."""
    from scipy.stats import spearmanr

    x, y = _validated(predicted, gold)
    return float(spearmanr(x, y).statistic)


def pearson(predicted: ArrayLike, gold: ArrayLike) -> float:
    """Pearson's linear correlation of ``predicted`` with ``gold``."""
    from scipy.stats import pearsonr

    x, y = _validated(predicted, gold)
    return float(pearsonr(x, y).statistic)


def correlate(predicted: Sequence[float] | ArrayLike, gold: Sequence[float] | ArrayLike) -> CorrelationResult:
    """Both correlations at once."""
    x, y = _validated(predicted, gold)
    return CorrelationResult(spearman=spearman(x, y), pearson=pearson(x, y), n=len(x))
