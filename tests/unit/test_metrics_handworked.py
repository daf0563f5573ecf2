"""Tiny cases worked out by hand, with each formula written out."""

from __future__ import annotations

import math

import pytest

from evalsuite import Qrels, Run, evaluate
from evalsuite.errors import ConfigError

log2 = math.log2

# q1 judgements: d1=3, d2=1, d3=0 (judged, not relevant), d4=2  ->  R = 3 (d1, d2, d4)
QRELS = {"q1": {"d1": 3, "d2": 1, "d3": 0, "d4": 2}}
# ranking:        1     2     3     4     5
RUN = {"q1": {"d5": 0.9, "d1": 0.8, "d3": 0.7, "d2": 0.6, "d6": 0.5}}

CASES = {
    "P@1": 0 / 1,
    "P@2": 1 / 2,                      # d1 at rank 2
    "P@5": 2 / 5,                      # d1, d2
    "P@10": 2 / 10,                    # divides by k even when fewer docs are retrieved
    "recall@2": 1 / 3,
    "recall@5": 2 / 3,
    "recall": 2 / 3,                   # whole run
    "map": (1 / 3) * (1 / 2 + 2 / 4),  # (1/R) * (P@2 + P@4)
    "map@3": (1 / 3) * (1 / 2),        # only ranks <= 3 contribute, denominator stays R
    "mrr": 1 / 2,
    "mrr@1": 0.0,
    "rprec": 1 / 3,                    # relevant in the top R=3: d1
    "success@1": 0.0,
    "success@2": 1.0,
    "judged@5": 3 / 5,                 # d1, d3, d2 are judged
    "judged@2": 1 / 2,
    "ndcg@5": (3 / log2(3) + 1 / log2(5)) / (3 / log2(2) + 2 / log2(3) + 1 / log2(4)),
    "ndcg@2": (3 / log2(3)) / (3 / log2(2) + 2 / log2(3)),
    "ndcg": (3 / log2(3) + 1 / log2(5)) / (3 / log2(2) + 2 / log2(3) + 1 / log2(4)),
    "ndcg(gain=exp)@5": (7 / log2(3) + 1 / log2(5)) / (7 / log2(2) + 3 / log2(3) + 1 / log2(4)),
}


@pytest.mark.parametrize(("metric", "expected"), sorted(CASES.items()))
def test_single_query_by_hand(metric: str, expected: float) -> None:
    assert evaluate(QRELS, RUN, [metric])[metric] == pytest.approx(expected, abs=1e-12)


def test_relevance_level_two() -> None:
    # with level 2 only d1 (3) and d4 (2) are relevant: R = 2
    result = evaluate(QRELS, RUN, ["P@5", "recall@5", "map"], relevance_level=2)
    assert result["P@5"] == pytest.approx(1 / 5)
    assert result["recall@5"] == pytest.approx(1 / 2)
    assert result["map"] == pytest.approx((1 / 2) * (1 / 2))
    assert evaluate(QRELS, RUN, ["recall(rel=2)@5"])["recall(rel=2)@5"] == pytest.approx(1 / 2)


def test_ties_break_by_doc_id_descending() -> None:
    # all three tie: trec_eval ranks dC, dB, dA; the relevant dA is third
    result = evaluate({"q": {"dA": 1}}, {"q": {"dA": 1.0, "dB": 1.0, "dC": 1.0}}, ["mrr"])
    assert result["mrr"] == pytest.approx(1 / 3)
    # doc ids compare as strings: "d10" < "d9"
    result = evaluate({"q": {"d10": 1}}, {"q": {"d9": 2.0, "d10": 2.0}}, ["mrr"])
    assert result["mrr"] == pytest.approx(1 / 2)


def test_scores_tie_at_float32_precision_like_trec_eval() -> None:
    # 1 + 1e-9 == 1 in float32, so these tie and dB (greater id) ranks first
    result = evaluate({"q": {"dA": 1}}, {"q": {"dA": 1.0 + 1e-9, "dB": 1.0}}, ["mrr"])
    assert result["mrr"] == pytest.approx(1 / 2)
    result = evaluate({"q": {"dA": 1}}, {"q": {"dA": 1.0 + 1e-6, "dB": 1.0}}, ["mrr"])
    assert result["mrr"] == pytest.approx(1.0)


def test_missing_excluded_and_ignored_queries() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d1": 2}, "q3": {"d1": 0}}
    run = {"q1": {"d1": 1.0}, "q9": {"d1": 1.0}}
    result = evaluate(qrels, run, ["P@1"])
    # q1 = 1, q2 missing from the run = 0 (counted), q3 has no relevant doc (excluded)
    assert result["P@1"] == pytest.approx((1 + 0) / 2)
    assert result.missing_queries == ("q2",)
    assert result.excluded_queries == ("q3",)
    assert result.ignored_queries == ("q9",)
    assert result.n_queries["P@1"] == 2
    assert math.isnan(result.per_query.loc["q3", "P@1"])
    # trec_eval -c mean: every judged query counts
    assert evaluate(qrels, run, ["P@1"], empty_queries="zero")["P@1"] == pytest.approx(1 / 3)


def test_negative_grades_gain_nothing() -> None:
    result = evaluate({"q": {"a": -1, "b": 1}}, {"q": {"a": 2.0, "b": 1.0}}, ["ndcg@2", "judged@2"])
    assert result["ndcg@2"] == pytest.approx((1 / log2(3)) / 1.0)
    assert result["judged@2"] == 1.0


def test_no_evaluable_query_gives_nan_not_zero() -> None:
    result = evaluate({"q": {"a": 0}}, {"q": {"a": 1.0}}, ["ndcg@10"])
    assert math.isnan(result["ndcg@10"])
    assert result.n_queries["ndcg@10"] == 0


def test_inputs_are_not_mutated() -> None:
    qrels = {"q1": {"d1": 3, "d2": 1}}
    run = {"q1": {"d2": 0.5, "d1": 0.5, "d3": 0.1}}
    qrels_copy, run_copy = {k: dict(v) for k, v in qrels.items()}, {k: dict(v) for k, v in run.items()}
    run_obj = Run(run)
    evaluate(qrels, run, ["ndcg@10", "map"])
    evaluate(Qrels(qrels), run_obj, ["ndcg@10", "map"])
    assert qrels == qrels_copy and list(run["q1"]) == ["d2", "d1", "d3"] and run == run_copy
    assert run_obj.to_dict() == {"q1": {"d2": 0.5, "d1": 0.5, "d3": 0.1}}


def test_correlation_metrics_are_rejected_for_rankings() -> None:
    with pytest.raises(ConfigError, match="not a ranking metric"):
        evaluate(QRELS, RUN, ["spearman"])


def test_result_lookup_accepts_any_spelling() -> None:
    result = evaluate(QRELS, RUN, ["ndcg_cut_5", "P.2", "recip_rank"])
    assert result.metrics == ("ndcg@5", "P@2", "mrr")
    assert result["nDCG@5"] == result.aggregate["ndcg@5"]
    with pytest.raises(KeyError, match="was not evaluated"):
        result["map"]
