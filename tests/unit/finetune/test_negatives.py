"""Hard-negative mining: every filter on a hand-worked example, sampling, fill, and the
false-negative measurement."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalsuite import Corpus, Qrels, Queries
from evalsuite.errors import ConfigError
from evalsuite.finetune.negatives import MiningConfig, false_negative_check, mine_negatives
from evalsuite.finetune.pairs import Pair, doc_text, pairs_from_qrels

from .conftest import QUERIES, EmbedMiner, FixedMiner

Q1 = QUERIES["q1"]
# the miner's ranking for q1; d1 is q1's grade-2 positive, d9 its grade-1 positive
SCORES = {Q1: {"d1": 0.80, "d9": 0.78, "d5": 0.75, "d2": 0.70, "d4": 0.60, "d8": 0.50, "d3": 0.30, "d6": 0.20,
               "d7": 0.10, "d10": 0.05}}


def _q1_pairs(queries: Queries, corpus: Corpus, qrels: Qrels, min_grade: int = 2) -> list[Pair]:
    return pairs_from_qrels(queries, corpus, qrels, ["q1"], min_grade=min_grade).pairs


@pytest.mark.parametrize("miner_kind", ["ranked", "embedding"])
@pytest.mark.parametrize(("options", "removed", "left"), [
    ({}, {}, ["d9", "d5", "d2", "d4", "d8"]),
    ({"skip_top": 1}, {"skip_top": 1}, ["d5", "d2", "d4", "d8"]),
    # s_pos = 0.80: absolute 0.1 keeps scores <= 0.70
    ({"absolute_margin": 0.1}, {"absolute_margin": 2}, ["d2", "d4", "d8"]),
    # relative 0.05 keeps scores <= 0.80 - 0.04 = 0.76
    ({"relative_margin": 0.05}, {"relative_margin": 1}, ["d5", "d2", "d4", "d8"]),
    ({"max_score": 0.65}, {"max_score": 3}, ["d4", "d8"]),
    ({"skip_top": 1, "relative_margin": 0.05, "max_score": 0.65}, {"skip_top": 1, "max_score": 2}, ["d4", "d8"]),
])
def test_each_filter_on_a_worked_example(miner_kind: str, options: dict[str, float], removed: dict[str, int],
                                         left: list[str], queries: Queries, corpus: Corpus, qrels: Qrels) -> None:
    miner = FixedMiner(SCORES) if miner_kind == "ranked" else EmbedMiner(SCORES, corpus)
    config = MiningConfig(top_k=5, per_pair=2, **options)  # type: ignore[arg-type]
    result = mine_negatives(_q1_pairs(queries, corpus, qrels), corpus, miner, config)
    assert result.unfiltered[Q1] == ["d9", "d5", "d2", "d4", "d8"]  # top 5 without the known positive d1
    assert result.candidates[Q1] == left
    for name in ("skip_top", "absolute_margin", "relative_margin", "max_score", "cross_encoder"):
        assert result.counts[f"removed_{name}"] == removed.get(name, 0), name
    assert result.counts["known_positives_removed"] == 1
    assert result.counts["candidates_considered"] == 5 and result.counts["candidates_left"] == len(left)
    (pair,) = result.pairs
    assert pair.negative_ids == tuple(left[:2])  # strategy "top": the best survivors
    assert pair.negatives == tuple(doc_text(corpus, d) for d in left[:2])
    if options.get("absolute_margin") or options.get("relative_margin"):
        assert result.positive_scores[Q1] == pytest.approx(0.80)
    assert miner.indexed == 1


def test_margin_uses_the_weakest_known_positive(queries: Queries, corpus: Corpus, qrels: Qrels) -> None:
    pairs = _q1_pairs(queries, corpus, qrels, min_grade=1)  # (q1, d1) 0.80 and (q1, d9) 0.78
    result = mine_negatives(pairs, corpus, FixedMiner(SCORES), MiningConfig(top_k=4, relative_margin=0.05))
    # limit 0.78 - 0.039 = 0.741: d5 (0.75) removed
    assert result.unfiltered[Q1] == ["d5", "d2", "d4", "d8"]
    assert result.counts["removed_relative_margin"] == 1
    # the two pairs of q1 take different negatives, the best first
    assert [p.negative_ids for p in result.pairs] == [("d2",), ("d4",)]
    assert result.positive_scores[Q1] == pytest.approx(0.78)


def test_margin_from_each_pairs_own_positive(queries: Queries, corpus: Corpus, qrels: Qrels) -> None:
    pairs = _q1_pairs(queries, corpus, qrels, min_grade=1)  # (q1, d1) 0.80 and (q1, d9) 0.78
    config = MiningConfig(top_k=4, relative_margin=0.05, positive_score="pair")
    result = mine_negatives(pairs, corpus, FixedMiner(SCORES), config)
    # the strongest positive's limit 0.80 - 0.04 = 0.76 removes nothing for every pair: d5 (0.75) survives
    assert result.counts["removed_relative_margin"] == 0
    assert result.candidates[Q1] == ["d5", "d2", "d4", "d8"]
    by_positive = {p.positive_id: p.negative_ids for p in result.pairs}
    # (q1, d1) may take d5 (0.75 <= 0.76); (q1, d9) may not (0.75 > 0.741) and takes the next unused, d2
    assert by_positive == {"d1": ("d5",), "d9": ("d2",)}
    # absolute margin 0.05: d1 allows <= 0.75, d9 allows <= 0.73
    result = mine_negatives(pairs, corpus, FixedMiner(SCORES),
                            MiningConfig(top_k=4, absolute_margin=0.05, positive_score="pair"))
    assert {p.positive_id: p.negative_ids for p in result.pairs} == {"d1": ("d5",), "d9": ("d2",)}


def test_an_anchors_pairs_reuse_negatives_only_when_the_survivors_run_out(queries: Queries, corpus: Corpus,
                                                                          qrels: Qrels) -> None:
    pairs = _q1_pairs(queries, corpus, qrels, min_grade=1)  # two pairs for q1
    result = mine_negatives(pairs, corpus, FixedMiner(SCORES), MiningConfig(top_k=3, per_pair=2))
    # survivors d5, d2, d4: the first pair takes d5, d2; the second the unused d4, then d5 again
    assert [p.negative_ids for p in result.pairs] == [("d5", "d2"), ("d4", "d5")]
    assert result.counts["negatives_random_fill"] == 0
    drawn = mine_negatives(pairs, corpus, FixedMiner(SCORES),
                           MiningConfig(top_k=3, per_pair=1, strategy="random", seed=3))
    first, second = (p.negative_ids for p in drawn.pairs)
    assert first != second


def test_known_positives_by_query_and_by_text_are_never_negatives(queries: Queries, corpus: Corpus,
                                                                  qrels: Qrels) -> None:
    result = mine_negatives(_q1_pairs(queries, corpus, qrels), corpus, FixedMiner(SCORES), MiningConfig(top_k=5),
                            known_positives={"q1": {"d1", "d9"}})
    assert result.unfiltered[Q1] == ["d5", "d2", "d4", "d8", "d3"]
    assert result.counts["known_positives_removed"] == 2
    # a pairs-file pair has no ids: a candidate whose text is the positive's is a known positive too
    file_pair = Pair(Q1, doc_text(corpus, "d5"), line=1)
    result = mine_negatives([file_pair], corpus, FixedMiner(SCORES), MiningConfig(top_k=3))
    assert result.unfiltered[Q1] == ["d1", "d9", "d2"]


def test_random_strategy_is_seeded(queries: Queries, corpus: Corpus, qrels: Qrels) -> None:
    pairs = _q1_pairs(queries, corpus, qrels)
    draws = {mine_negatives(pairs, corpus, FixedMiner(SCORES),
                            MiningConfig(top_k=8, per_pair=3, strategy="random", seed=s)).pairs[0].negative_ids
             for s in range(6)}
    assert len(draws) > 1
    for ids in draws:
        assert len(set(ids)) == 3 and set(ids) <= {"d9", "d5", "d2", "d4", "d8", "d3", "d6", "d7"}
    config = MiningConfig(top_k=8, per_pair=3, strategy="random", seed=1)
    assert (mine_negatives(pairs, corpus, FixedMiner(SCORES), config).pairs[0].negative_ids
            == mine_negatives(pairs, corpus, FixedMiner(SCORES), config).pairs[0].negative_ids)


def test_too_few_survivors_fill_with_random_documents_or_drop(queries: Queries, corpus: Corpus,
                                                              qrels: Qrels) -> None:
    pairs = _q1_pairs(queries, corpus, qrels)
    config = MiningConfig(top_k=3, per_pair=2, max_score=0.65)  # d9, d5, d2 all above 0.65
    result = mine_negatives(pairs, corpus, FixedMiner(SCORES), config)
    (pair,) = result.pairs
    assert len(pair.negative_ids) == 2 and not set(pair.negative_ids) & {"d1", "d9", "d5", "d2"}
    assert result.counts["negatives_random_fill"] == 2 and result.counts["removed_max_score"] == 3
    dropped = mine_negatives(pairs, corpus, FixedMiner(SCORES), MiningConfig(top_k=3, per_pair=2, max_score=0.65,
                                                                             fill="drop"))
    assert dropped.pairs == [] and dropped.counts["pairs_dropped_too_few_negatives"] == 1


def test_bm25_miner_end_to_end(queries: Queries, corpus: Corpus, qrels: Qrels) -> None:
    pytest.importorskip("bm25s")
    from evalsuite.retrievers import get_retriever

    pairs = pairs_from_qrels(queries, corpus, qrels)
    known = {q: {d for d, g in docs.items() if g >= 1} for q, docs in qrels.grade_maps().items()}
    result = mine_negatives(pairs, corpus, get_retriever("bm25"), MiningConfig(top_k=5, per_pair=2,
                                                                               relative_margin=0.05),
                            known_positives=known)
    assert len(result.pairs) == len(pairs)
    for pair in result.pairs:
        assert len(pair.negatives) == 2
        assert not set(pair.negative_ids) & known[pair.query_id or ""]


def test_cross_encoder_filter_drops_what_it_rates_above_the_weakest_positive(tmp_path: Path, queries: Queries,
                                                                             corpus: Corpus, qrels: Qrels) -> None:
    from evalsuite.retrievers.rerank import RerankRetriever
    from tests._tinymodel import save_tiny_bert

    folder = save_tiny_bert(tmp_path / "tiny-ce")
    pairs = _q1_pairs(queries, corpus, qrels)
    result = mine_negatives(pairs, corpus, FixedMiner(SCORES), MiningConfig(top_k=8, cross_encoder=str(folder)))
    scorer = RerankRetriever(FixedMiner(SCORES), str(folder), progress=False)
    positive = float(scorer.score_pairs([(Q1, pairs[0].positive)])[0])
    scores = scorer.score_pairs([(Q1, doc_text(corpus, d)) for d in result.unfiltered[Q1]])
    expected = [d for d, s in zip(result.unfiltered[Q1], scores) if s < positive]
    assert result.candidates[Q1] == expected
    assert result.counts["removed_cross_encoder"] == 8 - len(expected)


def test_false_negative_check_measures_hidden_positives(corpus: Corpus) -> None:
    queries = Queries.from_dict({"qa": "a query with four relevant documents", "qb": "one relevant document"})
    qrels = {"qa": {"d1": 2, "d2": 2, "d3": 1, "d4": 1}, "qb": {"d7": 1}}
    # the four relevant documents outrank every other document
    scores = {"a query with four relevant documents": {"d1": 0.90, "d2": 0.88, "d3": 0.86, "d4": 0.84, "d5": 0.5,
                                                       "d6": 0.4, "d7": 0.3}}
    config = MiningConfig(top_k=3, per_pair=1, relative_margin=0.1)
    out = false_negative_check(queries, corpus, qrels, FixedMiner(scores), config, seed=0)
    assert out["queries"] == 1 and out["hidden_positives"] == 2  # qb has a single positive: nothing to hide
    # without filters the two hidden positives are the top candidates and each visible pair takes one
    assert out["unfiltered"]["hidden_in_top_k"] == 2
    assert out["unfiltered"]["hidden_sampled_as_negative"] == 2 and out["unfiltered"]["false_negative_rate"] == 1.0
    # with a 10% relative margin every hidden positive (>= 0.84) scores above 0.9 * min visible (<= 0.81)
    assert out["filtered"]["hidden_left_after_filters"] == 0
    assert out["filtered"]["hidden_sampled_as_negative"] == 0 and out["filtered"]["false_negative_rate"] == 0.0
    assert out["filtered"]["negatives_sampled"] == 2


def test_bad_mining_options() -> None:
    with pytest.raises(ConfigError, match="positive_score"):
        MiningConfig(positive_score="mean")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="top_k"):
        MiningConfig(top_k=0)
    with pytest.raises(ConfigError, match="skip_top"):
        MiningConfig(top_k=5, skip_top=5)
    with pytest.raises(ConfigError, match="relative_margin"):
        MiningConfig(relative_margin=1.5)
    with pytest.raises(ConfigError, match="strategy"):
        MiningConfig(strategy="best")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no training pairs"):
        mine_negatives([], Corpus.from_dict({"d": "x"}), FixedMiner({}))
