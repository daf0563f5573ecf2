"""Metric name parsing."""

from __future__ import annotations

import pytest

from evalsuite.errors import ConfigError, UnknownNameError
from evalsuite.metrics import parse_metric, parse_metrics


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("ndcg@10", "ndcg@10"), ("nDCG@10", "ndcg@10"), ("ndcg_cut_10", "ndcg@10"), ("ndcg_cut.10", "ndcg@10"),
        ("ndcg", "ndcg"), ("ndcg(gain=exp)@10", "ndcg(gain=exp)@10"), ("ndcg(gain=linear)@10", "ndcg@10"),
        ("P@5", "P@5"), ("p_5", "P@5"), ("precision@5", "P@5"), ("P.5", "P@5"),
        ("recall@100", "recall@100"), ("R@100", "recall@100"), ("recall_100", "recall@100"),
        ("map", "map"), ("AP", "map"), ("map_cut_100", "map@100"), ("MAP@100", "map@100"),
        ("mrr@10", "mrr@10"), ("RR@10", "mrr@10"), ("recip_rank", "mrr"), ("MRR", "mrr"),
        ("rprec", "rprec"), ("Rprec", "rprec"), ("R-prec", "rprec"),
        ("success@5", "success@5"), ("success_1", "success@1"), ("hit_rate@5", "success@5"),
        ("judged@10", "judged@10"), ("Judged@10", "judged@10"),
        ("recall(rel=2)@10", "recall(rel=2)@10"), (" ndcg@10 ", "ndcg@10"),
    ],
)
def test_canonical_names(raw: str, canonical: str) -> None:
    assert str(parse_metric(raw)) == canonical


def test_multiple_cutoffs_expand_and_duplicates_collapse() -> None:
    assert [str(s) for s in parse_metrics(["P.5,10", "P@5", "ndcg_cut_10", "ndcg@10"])] == ["P@5", "P@10", "ndcg@10"]
    with pytest.raises(ConfigError, match="names 2 metrics"):
        parse_metric("P.5,10")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("ndgc@10", "did you mean 'ndcg@10'"),
        ("P", "needs a cutoff"),
        ("rprec@10", "takes no cutoff"),
        ("ndcg(gain=cubic)@10", "must be one of"),
        ("ndcg(foo=1)@10", "has no option 'foo'"),
        ("recall(rel=x)@10", "must be an integer"),
        ("ndcg@0", "cutoff must be >= 1"),
        ("10@ndcg", "cannot parse metric name"),
    ],
)
def test_bad_names_explain_themselves(raw: str, message: str) -> None:
    with pytest.raises((ConfigError, UnknownNameError), match=message.replace("(", r"\(")):
        parse_metric(raw)


def test_unknown_name_is_a_key_error_with_suggestions() -> None:
    with pytest.raises(KeyError) as info:
        parse_metric("mrrr@10")
    assert isinstance(info.value, UnknownNameError)
    assert "mrr@10" in info.value.suggestions
