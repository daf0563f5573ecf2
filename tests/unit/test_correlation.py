"""Correlations for score pairs, worked by hand."""

from __future__ import annotations

import math

import numpy as np
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


# -- bootstrap over sentence pairs ------------------------------------------------------------

def _sts_like(n: int = 120, seed: int = 3) -> tuple[list[float], list[float], list[float]]:
    import numpy as np

    rng = np.random.default_rng(seed)
    gold = rng.uniform(0, 5, n).round(1)  # ties, like STS-B's gold scores
    a = gold / 5 + rng.normal(0, 0.15, n)
    b = gold / 5 + rng.normal(0, 0.30, n)
    return a.tolist(), b.tolist(), gold.tolist()


@pytest.mark.parametrize("metric", ["spearman", "pearson"])
def test_bootstrap_correlation_equals_scipy_bootstrap(metric: str) -> None:
    import numpy as np
    from scipy import stats

    from evalsuite.metrics.correlation import bootstrap_correlation

    a, _, gold = _sts_like()
    ours = bootstrap_correlation(a, gold, metric=metric, n_resamples=3000, seed=7)  # type: ignore[arg-type]
    oracle_stat = stats.spearmanr if metric == "spearman" else stats.pearsonr

    def statistic(x: np.ndarray, y: np.ndarray) -> float:
        return float(oracle_stat(x, y).statistic)

    ref = stats.bootstrap((np.array(a), np.array(gold)), statistic, paired=True, vectorized=False,
                          n_resamples=3000, batch=1000, method="percentile",
                          rng=np.random.default_rng(7))
    assert ours.n_undefined == 0
    np.testing.assert_allclose(ours.distribution, ref.bootstrap_distribution, atol=1e-12)
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=1e-12)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=1e-12)
    assert ours.estimate == pytest.approx(statistic(np.array(a), np.array(gold)), abs=1e-12)
    assert ours.low < ours.estimate < ours.high


def test_paired_bootstrap_correlation_equals_scipy_on_the_difference() -> None:
    import numpy as np
    from scipy import stats

    from evalsuite.metrics.correlation import paired_bootstrap_correlation

    a, b, gold = _sts_like()
    ours = paired_bootstrap_correlation(a, b, gold, n_resamples=2000, seed=1)

    def diff(x: np.ndarray, y: np.ndarray, g: np.ndarray) -> float:
        return float(stats.spearmanr(x, g).statistic - stats.spearmanr(y, g).statistic)

    ref = stats.bootstrap((np.array(a), np.array(b), np.array(gold)), diff, paired=True, vectorized=False,
                          n_resamples=2000, batch=1000, method="percentile", rng=np.random.default_rng(1))
    np.testing.assert_allclose(ours.distribution, ref.bootstrap_distribution, atol=1e-12)
    assert (ours.low, ours.high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    assert ours.estimate > 0 and ours.low > 0  # a (less noise) agrees better, clearly on 120 pairs
    assert ours.mass_above(0) == 1.0 and ours.mass_below(0) == 0.0


def test_bootstrap_correlation_is_seeded_and_counts_undefined_resamples() -> None:
    from evalsuite.metrics.correlation import bootstrap_correlation

    first = bootstrap_correlation([1, 2, 3, 4], [1, 3, 2, 4], n_resamples=500, seed=0)
    again = bootstrap_correlation([1, 2, 3, 4], [1, 3, 2, 4], n_resamples=500, seed=0)
    assert (first.low, first.high) == (again.low, again.high)
    # 4 pairs: some resamples draw one pair 4 times, whose correlation is undefined
    assert first.n_undefined > 0 and len(first.distribution) == 500 - first.n_undefined
    assert first.estimate == pytest.approx(0.8)
    with pytest.raises(ValueError, match="metric"):
        bootstrap_correlation([1, 2, 3], [1, 2, 3], metric="kendall")  # type: ignore[arg-type]


@pytest.mark.parametrize("values", [
    np.random.default_rng(1).normal(size=300),
    np.round(np.random.default_rng(2).uniform(0, 5, size=300), 1),  # many ties, like STS gold scores
    np.array([1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 0.5]),
    np.array([-0.0, 0.0, 1.0, np.inf, -np.inf]),
], ids=["distinct", "ties", "small", "signed-zero-inf"])
def test_resampled_ranks_equal_scipy_rankdata_of_each_resample(values: np.ndarray) -> None:
    from scipy.stats import rankdata

    from evalsuite.metrics.correlation import _resampled_ranks

    rng = np.random.default_rng(0)
    for rows in (1, 5, 200):
        idx = rng.integers(0, len(values), (rows, len(values)))
        assert np.array_equal(_resampled_ranks(values, idx), rankdata(values[idx], axis=1))


# -- scipy as the oracle of the numpy correlations -------------------------------------------

def _oracle_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(11)
    cases = []
    for n in (2, 3, 5, 40, 1379):
        x = rng.normal(size=n)
        cases.append((f"continuous n={n}", x, 0.6 * x + rng.normal(size=n)))
    for n in (3, 8, 200, 1379):  # coarse values: many ties on both sides (STS-B gold scores are like this)
        x = rng.integers(0, 4, n).astype(float)
        y = rng.uniform(0, 5, n).round(1)
        if len(set(x)) == 1:
            x[0] += 1
        cases.append((f"ties n={n}", x, y))
    x = rng.normal(size=50) * 1e200  # scaled before the norm: no overflow
    cases.append(("huge", x, x + rng.normal(size=50) * 1e199))
    cases.append(("anti", np.arange(10.0), -np.arange(10.0) ** 3))
    return cases


@pytest.mark.parametrize("case", _oracle_cases(), ids=lambda c: c[0])
def test_equal_to_scipy(case: tuple[str, np.ndarray, np.ndarray]) -> None:
    from scipy import stats

    _, x, y = case
    assert abs(pearson(x, y) - float(stats.pearsonr(x, y).statistic)) <= 1e-12
    assert abs(spearman(x, y) - float(stats.spearmanr(x, y).statistic)) <= 1e-12


@pytest.mark.parametrize("n", [2, 4])
def test_pearson_of_an_infinite_score_is_nan_as_in_scipy(n: int) -> None:
    """inf makes the deviations NaN: r is undefined (scipy: NaN), not clipped to 1.0."""
    from scipy import stats

    x = np.array([1.0, np.inf, 3.0, 4.0][:n])
    y = np.array([1.0, 2.0, 3.0, 5.0][:n])
    with np.errstate(invalid="ignore"):  # scipy warns about inf - inf; evalsuite does not
        assert math.isnan(float(stats.pearsonr(x, y).statistic))
    assert math.isnan(pearson(x, y))
    assert math.isnan(correlate(x, y).pearson)


def test_average_ranks_equal_scipy_rankdata() -> None:
    from scipy import stats

    from evalsuite.metrics.correlation import _average_ranks

    rng = np.random.default_rng(5)
    for values in (rng.normal(size=30), rng.integers(0, 5, 300).astype(float), np.array([3.0, 1.0, 3.0, 3.0, 2.0])):
        np.testing.assert_array_equal(_average_ranks(values), stats.rankdata(values, method="average"))


def test_correlations_import_no_scipy() -> None:
    import subprocess
    import sys

    code = ("import sys; from evalsuite.metrics.correlation import correlate; correlate([1, 2, 3, 5], [2, 1, 4, 3]); "
            "print('scipy.stats' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
