"""Correlations for score pairs, worked by hand."""

from __future__ import annotations

import math

import pytest

from evalsuite.errors import DataError
from evalsuite.metrics import correlate, pearson, spearman


def test_spearman_by_hand() -> None:
    # ranks x = 1 2 3 4, y = 1 3 2 4: d = 0 -1 1 0, rho = 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 1 - 12/60
    assert spearman([10, 20, 30, 40], [1.0, 3.0, 2.0, 4.0]) == pytest.approx(0.8)


def test_pearson_by_hand() -> None:
    # x = 1 2 3, y = 2 4 7: sum dx*dy = 5, sum dx^2 = 2, sum dy^2 = 114/9
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(5 / math.sqrt(2 * 114 / 9))


def test_ties_use_average_ranks() -> None:
    # x ranks 1.5 1.5 3, y ranks 1 2 3: Pearson of the ranks
    expected = pearson([1.5, 1.5, 3], [1, 2, 3])
    assert spearman([5, 5, 9], [1, 2, 3]) == pytest.approx(expected)


def test_both_at_once() -> None:
    result = correlate([1, 2, 3, 4], [1, 3, 2, 4])
    assert result.n == 4 and result.spearman == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        ([1, 2], [1], "equally long"),
        ([1], [1], "at least 2"),
        ([1, 1, 1], [1, 2, 3], "all predicted scores are equal"),
        ([1, float("nan")], [1, 2], "NaN"),
        (["a", "b"], [1, 2], "must be numbers"),
    ],
)
def test_bad_input(x: list, y: list, message: str) -> None:
    with pytest.raises(DataError, match=message):
        correlate(x, y)
