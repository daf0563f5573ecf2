"""Significance tests and intervals: hand-checked small cases, and behaviour under H0."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from evalsuite.metrics.stats import (
    align,
    bootstrap_ci,
    compare,
    correct,
    paired_t_test,
    randomization_test,
    wilcoxon_test,
)

A = [1.0, 2.0, 3.0, 4.0]
B = [0.0, 2.0, 1.0, 5.0]  # differences 1, 0, 2, -1


def test_paired_t_by_hand() -> None:
    # mean(d) = 0.5, sd(d) = sqrt(5/3), t = 0.5 / (sd / sqrt(4)), df = 3
    t = 0.5 / (math.sqrt(5 / 3) / 2)
    assert paired_t_test(A, B) == pytest.approx(2 * stats.t.sf(t, df=3), rel=1e-12)


def test_randomization_exact_by_hand() -> None:
    # 16 sign patterns of (1, 0, 2, -1): |sum| >= 2 in 12 of them -> p = 12/16
    assert randomization_test(A, B, n_resamples=10_000) == pytest.approx(0.75)


@pytest.mark.parametrize("n", [8, 60])
def test_randomization_matches_scipy_permutation_test(n: int) -> None:
    rng = np.random.default_rng(n)
    a, b = rng.random(n), rng.random(n) + 0.08
    ours = randomization_test(a, b, n_resamples=20_000, seed=1)
    reference = stats.permutation_test((a, b), lambda x, y, axis: np.mean(x - y, axis=axis),
                                       permutation_type="samples", vectorized=True, n_resamples=20_000,
                                       rng=np.random.default_rng(2)).pvalue
    # n=8: both enumerate the 256 patterns (exact, equal); n=60: two Monte Carlo estimates
    assert ours == pytest.approx(reference, abs=1e-12 if n == 8 else 0.01)
    assert 0 < ours < 1


def test_percentile_interval_matches_scipy() -> None:
    values = np.random.default_rng(3).random(80)
    ours = bootstrap_ci(values, n_resamples=20_000, seed=4)
    ref = stats.bootstrap((values,), np.mean, n_resamples=20_000, method="percentile",
                          rng=np.random.default_rng(5)).confidence_interval
    assert ours.low == pytest.approx(ref.low, abs=0.004) and ours.high == pytest.approx(ref.high, abs=0.004)


def test_wilcoxon_matches_scipy() -> None:
    assert wilcoxon_test(A, B) == pytest.approx(stats.wilcoxon(np.subtract(A, B)).pvalue)


def test_degenerate_inputs() -> None:
    assert paired_t_test([1, 2], [1, 2]) == randomization_test([1, 2], [1, 2]) == wilcoxon_test([1, 2], [1, 2]) == 1
    assert math.isnan(paired_t_test([1], [0])) and math.isnan(randomization_test([1], [0]))
    assert paired_t_test([2, 3, 4], [1, 2, 3]) == 0.0  # constant non-zero difference


def test_queries_align_by_id_not_position() -> None:
    a = {"q1": 1.0, "q2": 0.0, "q3": 0.5, "q4": float("nan")}
    b = {"q3": 0.5, "q1": 0.0, "q2": 0.0, "q4": 0.2, "q9": 1.0}
    x, y, unpaired = align(a, b)
    assert x.tolist() == [1.0, 0.0, 0.5] and y.tolist() == [0.0, 0.0, 0.5]
    assert unpaired == 2  # q4 (NaN in a: excluded there) and q9 (only in b)
    result = compare(a, b, metric="ndcg@10", names=("new", "base"))
    assert result.n == 3 and result.delta == pytest.approx(1 / 3) and result.n_unpaired == 2
    assert "left out" in result.notes[0]


def test_bootstrap_intervals() -> None:
    assert bootstrap_ci([0.5, 0.5, 0.5]).low == 0.5
    values = np.random.default_rng(1).random(40)
    ci = bootstrap_ci(values, seed=7)
    again = bootstrap_ci(values, seed=7)
    assert (ci.low, ci.high) == (again.low, again.high)  # seeded: reproducible
    assert ci.low < values.mean() < ci.high
    bca = bootstrap_ci(values, method="BCa", seed=7)
    assert bca.method == "BCa" and bca.low < values.mean() < bca.high


def test_bootstrap_coverage_is_near_nominal() -> None:
    rng = np.random.default_rng(3)
    covered = sum(
        (ci := bootstrap_ci(rng.normal(0.4, 0.2, 60), n_resamples=1000, seed=i)).low <= 0.4 <= ci.high
        for i in range(200)
    )
    assert 0.88 <= covered / 200 <= 0.99


def test_corrections_by_hand_and_nan_left_out() -> None:
    p = [0.01, 0.04, 0.03, float("nan"), 0.5]
    holm = correct(p, "holm")  # sorted 0.01*4, 0.03*3, max(0.04*2, 0.09), 0.5*1
    assert holm[:3] == pytest.approx([0.04, 0.09, 0.09]) and math.isnan(holm[3]) and holm[4] == 0.5
    bh = correct(p, "bh")  # 0.01*4/1, min(0.03*4/2, 0.04*4/3), 0.04*4/3, 0.5
    assert bh[:3] == pytest.approx([0.04, 0.16 / 3, 0.16 / 3]) and math.isnan(bh[3]) and bh[4] == 0.5
    assert all(math.isnan(v) for v in correct([float("nan")]))
    with pytest.raises(ValueError):
        correct([1.5])


def test_randomization_false_positive_rate_under_h0() -> None:
    """Two systems drawn from the same distribution: about 5% of tests reject at 0.05."""
    rejections = 0
    experiments = 1000
    for seed in range(experiments):
        rng = np.random.default_rng(seed)
        difficulty = rng.beta(2, 5, size=50)
        a = np.clip(difficulty + rng.normal(0, 0.1, 50), 0, 1)
        b = np.clip(difficulty + rng.normal(0, 0.1, 50), 0, 1)
        rejections += randomization_test(a, b, n_resamples=1000, seed=seed) < 0.05
    assert 0.03 <= rejections / experiments <= 0.07


def test_a_real_difference_is_found() -> None:
    rng = np.random.default_rng(0)
    base = rng.beta(2, 5, 80)
    better = np.clip(base + 0.08 + rng.normal(0, 0.05, 80), 0, 1)
    result = compare(dict(enumerate(better)), dict(enumerate(base)))
    assert result.delta > 0.05 and result.p_randomization < 0.001 and result.ci_delta.low > 0
    assert result.significant() and result.effect_size > 1
