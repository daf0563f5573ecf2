"""Rank fusion (RRF, convex combination): hand-worked cases with the formula written out,
edge cases, and properties against a plain-Python reference on generated runs."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalsuite import Run
from evalsuite.errors import ConfigError, DataError
from evalsuite.retrievers.fusion import convex, normalize, rrf

# Run A ranks d1 > d2 > d3; run B ranks d3 > d1 > d4. Query q2 is only in A; q3 is in A
# with an empty ranking; q4 is only in B.
A = {"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}, "q2": {"x": 1.0}, "q3": {}}
B = {"q1": {"d3": 0.9, "d1": 0.5, "d4": 0.1}, "q4": {"y": 2.0}}


def ranked(run: Run, query: str) -> list[str]:
    return [doc for doc, _ in run.ranking(query)]


# -- RRF -----------------------------------------------------------------------------------


def test_rrf_hand_worked() -> None:
    fused = rrf([Run(A, name="a"), Run(B, name="b")], k=60)
    # score(d) = sum over runs of 1 / (k + rank); a run without d adds nothing
    expected_q1 = {
        "d1": 1 / (60 + 1) + 1 / (60 + 2),  # A rank 1, B rank 2
        "d3": 1 / (60 + 3) + 1 / (60 + 1),  # A rank 3, B rank 1
        "d2": 1 / (60 + 2),  # A rank 2 only
        "d4": 1 / (60 + 3),  # B rank 3 only
    }
    out = fused.to_dict()
    assert out["q1"] == pytest.approx(expected_q1, rel=1e-15)
    assert ranked(fused, "q1") == ["d1", "d3", "d2", "d4"]
    assert out["q2"] == {"x": pytest.approx(1 / 61)}  # a query in one run only: fused from that run
    assert out["q3"] == {}  # an empty ranking stays present and empty
    assert out["q4"] == {"y": pytest.approx(1 / 61)}
    assert list(fused.query_ids) == ["q1", "q2", "q3", "q4"]  # first-seen order over the runs
    assert fused.name == "rrf"


def test_rrf_k_zero_is_reciprocal_rank_and_depth_cuts_each_run() -> None:
    fused = rrf([A, B], k=0).to_dict()
    assert fused["q1"] == pytest.approx({"d1": 1 + 1 / 2, "d3": 1 / 3 + 1, "d2": 1 / 2, "d4": 1 / 3})
    cut = rrf([A, B], k=60, depth=1).to_dict()
    # only each run's best doc per query survives: d1 from A, d3 from B
    assert cut["q1"] == pytest.approx({"d1": 1 / 61, "d3": 1 / 61})


def test_rrf_ranks_ties_in_trec_eval_order() -> None:
    # a and b tie in the run; trec_eval ranks the larger doc id first: b rank 1, a rank 2
    fused = rrf([{"q": {"a": 1.0, "b": 1.0, "c": 0.5}}]).to_dict()
    assert fused["q"] == pytest.approx({"b": 1 / 61, "a": 1 / 62, "c": 1 / 63})


def test_rrf_reads_ranks_only_so_infinite_scores_are_fine() -> None:
    fused = rrf([{"q": {"a": math.inf, "b": 0.0, "c": -math.inf}}]).to_dict()
    assert list(fused["q"]) == ["a", "b", "c"]


# -- convex --------------------------------------------------------------------------------


def test_convex_min_max_hand_worked() -> None:
    # min-max per query: A q1 -> d1 (3-1)/(3-1) = 1, d2 (2-1)/2 = 0.5, d3 0
    #                    B q1 -> d3 (0.9-0.1)/0.8 = 1, d1 (0.5-0.1)/0.8 = 0.5, d4 0
    # a doc missing from a run gets that run's minimum normalised score, 0 under min-max
    fused = convex([A, B], [1, 1]).to_dict()  # weights rescaled to 0.5, 0.5
    assert fused["q1"] == pytest.approx({"d1": 0.5 * 1 + 0.5 * 0.5, "d3": 0.5 * 0 + 0.5 * 1,
                                         "d2": 0.5 * 0.5 + 0.5 * 0, "d4": 0.5 * 0 + 0.5 * 0})
    weighted = convex([A, B], [3, 1]).to_dict()  # rescaled to 0.75, 0.25
    assert weighted["q1"] == pytest.approx({"d1": 0.75 * 1 + 0.25 * 0.5, "d2": 0.75 * 0.5,
                                            "d3": 0.25 * 1, "d4": 0.0})
    # q2 has one doc in A: max == min, normalised to 0; q4 likewise in B; q3 stays empty
    assert fused["q2"] == {"x": 0.0} and fused["q4"] == {"y": 0.0} and fused["q3"] == {}


def test_convex_z_score_hand_worked_missing_doc_gets_the_lowest_z() -> None:
    # A q1: mean 2, population sd sqrt(((3-2)^2 + 0 + (1-2)^2) / 3) = sqrt(2/3) -> z = +1.2247, 0, -1.2247
    # B q1: mean 0.5, sd sqrt((0.16 + 0 + 0.16) / 3) -> z = +1.2247 (d3), 0 (d1), -1.2247 (d4)
    z = 1 / math.sqrt(2 / 3)
    fused = convex([A, B], [1, 1], normalization="z-score").to_dict()
    assert fused["q1"] == pytest.approx({
        "d1": 0.5 * z + 0.5 * 0,
        "d3": 0.5 * -z + 0.5 * z,
        "d2": 0.5 * 0 + 0.5 * -z,  # missing from B: B's lowest z-score, not 0 (the mean)
        "d4": 0.5 * -z + 0.5 * -z,  # missing from A: A's lowest z-score
    }, abs=1e-12)
    assert normalize(A, "z-score").to_dict()["q1"] == pytest.approx({"d1": z, "d2": 0.0, "d3": -z})


def test_convex_without_normalisation_hand_worked() -> None:
    fused = convex([A, B], [1, 1], normalization="none").to_dict()
    # raw scores; a missing doc gets the run's lowest raw score for the query (A: 1.0, B: 0.1)
    assert fused["q1"] == pytest.approx({"d1": (3 + 0.5) / 2, "d2": (2 + 0.1) / 2,
                                         "d3": (1 + 0.9) / 2, "d4": (1 + 0.1) / 2})


@pytest.mark.parametrize("normalization", ["min-max", "z-score"])
def test_equal_scores_normalise_to_zero_without_dividing_by_zero(normalization: str) -> None:
    # 0.1 three times: the mean is not exactly 0.1, a naive sd would be ~1e-17, not 0
    flat = {"q": {"a": 0.1, "b": 0.1, "c": 0.1}}
    assert normalize(flat, normalization).to_dict() == {"q": {"c": 0.0, "b": 0.0, "a": 0.0}}
    other = {"q": {"a": 1.0, "d": 0.0}}
    with np.errstate(all="raise"):
        fused = convex([flat, other], [1, 1], normalization=normalization).to_dict()
    assert all(math.isfinite(v) for v in fused["q"].values())
    assert ranked(Run(fused), "q")[0] == "a"  # the flat run adds a constant; the other decides


def test_convex_weight_zero_keeps_docs_and_order_of_the_other_run() -> None:
    fused = convex([A, B], [0, 1])
    # B alone: d3 1, d1 0.5, d4 0; d2 (A only) gets B's minimum, 0, and ties with d4: doc id desc
    assert fused.to_dict()["q1"] == {"d3": 1.0, "d1": 0.5, "d4": 0.0, "d2": 0.0}
    assert ranked(fused, "q1") == ["d3", "d1", "d4", "d2"]


def test_convex_rejects_non_finite_scores() -> None:
    with pytest.raises(DataError, match=r"query 'q', doc 'a'.*not finite.*rrf"):
        convex([{"q": {"a": math.inf, "b": 1.0}}, B], [1, 1])


# -- validation and immutability -----------------------------------------------------------


@pytest.mark.parametrize(("weights", "message"), [
    ([1.0], r"one weight per run \(2 runs\), got 1"),
    ([1.0, -0.5], "finite and >= 0"),
    ([0, 0], "all zero"),
    ([1.0, float("nan")], "finite"),
    ("ab", "list of numbers"),
])
def test_convex_weights_are_validated(weights: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        convex([A, B], weights)  # type: ignore[arg-type]


def test_bad_arguments_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match="normalization must be one of"):
        convex([A, B], [1, 1], normalization="minmax")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="k \\(the RRF rank constant\\) must be a finite number >= 0"):
        rrf([A, B], k=-1)
    with pytest.raises(ConfigError, match="depth must be a positive integer"):
        rrf([A, B], depth=0)
    with pytest.raises(ConfigError, match="pass a list of runs"):
        rrf(Run(A))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no runs to fuse"):
        rrf([])
    with pytest.raises(ConfigError, match=r"runs\[1\] must be a Run"):
        rrf([A, 3])  # type: ignore[list-item]


def test_inputs_are_not_modified() -> None:
    a_dict, b_dict = copy.deepcopy(A), copy.deepcopy(B)
    run_a, run_b = Run(A, name="a"), Run(B, name="b")
    before = (run_a.to_dict(), run_b.to_dict(), run_a.scores.copy(), run_b.doc_ids.copy())
    rrf([run_a, run_b])
    convex([run_a, run_b], [0.3, 0.7], normalization="z-score", depth=2)
    normalize(run_a)
    convex([a_dict, b_dict], [1, 2])
    assert (run_a.to_dict(), run_b.to_dict()) == before[:2]
    np.testing.assert_array_equal(run_a.scores, before[2])
    np.testing.assert_array_equal(run_b.doc_ids, before[3])
    assert (a_dict, b_dict) == (A, B)


# -- properties on generated runs -----------------------------------------------------------

QUERIES = ["q1", "q2", "q3"]
DOCS = [f"d{i}" for i in range(8)]
# scores on a coarse grid: many ties, and no float32-precision subtleties
runs_strategy = st.dictionaries(
    st.sampled_from(QUERIES),
    st.dictionaries(st.sampled_from(DOCS), st.integers(-3, 6).map(float), max_size=8),
    max_size=3,
)


def reference_rrf(runs: list[dict[str, dict[str, float]]], k: float) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for run in runs:
        for query, ranking in Run(run).to_dict().items():  # to_dict: trec_eval rank order
            fused = out.setdefault(query, {})
            for rank, doc in enumerate(ranking, start=1):
                fused[doc] = fused.get(doc, 0.0) + 1 / (k + rank)
    return out


def reference_convex(runs: list[dict[str, dict[str, float]]], weights: list[float]) -> dict[str, dict[str, float]]:
    total = sum(weights)
    queries = {q for run in runs for q in run}
    out: dict[str, dict[str, float]] = {}
    for query in queries:
        docs = {d for run in runs for d in run.get(query, {})}
        fused = dict.fromkeys(docs, 0.0)
        for run, weight in zip(runs, weights):
            scores = run.get(query, {})
            if scores:
                low, high = min(scores.values()), max(scores.values())
                norm = {d: 0.0 if high == low else (s - low) / (high - low) for d, s in scores.items()}
                missing = min(norm.values())
            else:
                norm, missing = {}, 0.0
            for doc in docs:
                fused[doc] += weight / total * norm.get(doc, missing)
        out[query] = fused
    return out


@settings(max_examples=150, deadline=None)
@given(runs=st.lists(runs_strategy, min_size=1, max_size=3), k=st.sampled_from([0, 1, 60]))
def test_rrf_matches_the_reference(runs: list[dict[str, dict[str, float]]], k: int) -> None:
    fused = rrf(runs, k=k).to_dict()
    expected = reference_rrf(runs, k)
    assert fused.keys() == expected.keys()
    for query, docs in expected.items():
        assert fused[query] == pytest.approx(docs, rel=1e-12)


@settings(max_examples=150, deadline=None)
@given(runs=st.lists(runs_strategy, min_size=1, max_size=3), data=st.data())
def test_convex_matches_the_reference(runs: list[dict[str, dict[str, float]]], data: st.DataObject) -> None:
    weights = data.draw(st.lists(st.integers(0, 4).map(float), min_size=len(runs), max_size=len(runs))
                        .filter(lambda w: sum(w) > 0))
    fused = convex(runs, weights).to_dict()
    expected = reference_convex(runs, weights)
    assert fused.keys() == expected.keys()
    for query, docs in expected.items():
        assert fused[query] == pytest.approx(docs, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(run=runs_strategy, w1=st.integers(1, 5), w2=st.integers(1, 5),
       normalization=st.sampled_from(["min-max", "z-score", "none"]))
def test_fusing_a_run_with_itself_keeps_its_order(run: dict[str, dict[str, float]], w1: int, w2: int,
                                                  normalization: str) -> None:
    original = Run(run)
    by_rrf = rrf([original, original])
    by_convex = convex([original, original], [w1, w2], normalization=normalization)  # type: ignore[arg-type]
    for query in original:
        assert ranked(by_rrf, query) == ranked(original, query)
        assert ranked(by_convex, query) == ranked(original, query)


@settings(max_examples=100, deadline=None)
@given(a=runs_strategy, b=runs_strategy)
def test_rrf_of_two_runs_is_symmetric(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]]) -> None:
    assert rrf([a, b]).to_dict() == rrf([b, a]).to_dict()


def test_larger_runs_match_the_reference() -> None:
    rng = np.random.default_rng(7)
    runs = []
    for _ in range(3):
        runs.append({f"q{q}": {f"d{d}": float(rng.integers(0, 50)) for d in rng.choice(300, 40, replace=False)}
                     for q in range(60) if rng.random() < 0.9})
    fused = rrf(runs).to_dict()
    for query, docs in reference_rrf(runs, 60).items():
        assert fused[query] == pytest.approx(docs, rel=1e-12)
    fused = convex(runs, [0.2, 0.5, 0.3]).to_dict()
    for query, docs in reference_convex(runs, [0.2, 0.5, 0.3]).items():
        assert fused[query] == pytest.approx(docs, abs=1e-12)
