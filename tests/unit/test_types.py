"""The data model: construction, validation, immutability, conversions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evalsuite import Corpus, Qrels, Queries, Run
from evalsuite.errors import DataError
from evalsuite.types import DuplicateError


def test_run_round_trips_through_dict_and_frame() -> None:
    data = {"q1": {"a": 1.0, "b": 3.0, "c": 2.0}, "q2": {"x": 0.5}}
    run = Run(data, name="r")
    assert run.to_dict() == {"q1": {"b": 3.0, "c": 2.0, "a": 1.0}, "q2": {"x": 0.5}}
    assert list(run.to_dict()["q1"]) == ["b", "c", "a"]  # rank order
    frame = run.to_frame()
    assert list(frame.columns) == ["query_id", "doc_id", "score", "rank"]
    assert frame["rank"].tolist() == [1, 2, 3, 1]
    again = Run.from_frame(frame, name="r")
    assert again.to_dict() == run.to_dict()
    assert len(run) == 2 and run.n_rows == 4 and "q1" in run and "zz" not in run


def test_run_ranking_uses_trec_eval_order() -> None:
    run = Run({"q": {"a": 1.0, "b": 2.0, "c": 1.0, "d10": 1.0, "d9": 1.0}})
    assert [d for d, _ in run.ranking("q")] == ["b", "d9", "d10", "c", "a"]


def test_run_arrays_are_read_only_and_input_is_copied() -> None:
    data = {"q": {"a": 1.0}}
    run = Run(data)
    data["q"]["a"] = 5.0
    data["q"]["b"] = 6.0
    assert run.to_dict() == {"q": {"a": 1.0}}
    for array in (run.scores, run.doc_ids, run.query_ids, run.offsets):
        with pytest.raises(ValueError):
            array[0] = array[0]


def test_run_from_arrays_groups_rows_of_a_query() -> None:
    run = Run.from_arrays(["q2", "q1", "q2"], ["a", "b", "c"], [1.0, 2.0, 3.0])
    assert list(run.query_ids) == ["q2", "q1"]
    assert run.to_dict() == {"q2": {"c": 3.0, "a": 1.0}, "q1": {"b": 2.0}}


def test_duplicate_doc_in_run_names_both_rows() -> None:
    with pytest.raises(DuplicateError, match=r"doc 'a' appears twice for query 'q1' \(rows 1 and 3\)") as info:
        Run.from_arrays(["q1", "q2", "q1"], ["a", "a", "a"], [1.0, 2.0, 3.0])
    assert info.value.rows == (0, 2)


def test_nan_and_non_numeric_scores_are_rejected() -> None:
    with pytest.raises(DataError, match="score is missing or NaN"):
        Run({"q": {"a": float("nan")}})
    with pytest.raises(DataError, match="score is missing or NaN"):
        Run({"q": {"a": None}})  # type: ignore[dict-item]
    with pytest.raises(DataError, match="every score must be a number"):
        Run({"q": {"a": "high"}})  # type: ignore[dict-item]
    with pytest.raises(DataError, match="expected a mapping"):
        Run({"q": [("a", 1.0)]})  # type: ignore[dict-item]


def test_int_ids_become_strings_other_types_are_errors() -> None:
    run = Run({1: {2: 1.0}})  # type: ignore[dict-item]
    assert run.to_dict() == {"1": {"2": 1.0}}
    with pytest.raises(DataError, match="doc ids must be strings"):
        Run({"q": {2.5: 1.0}})  # type: ignore[dict-item]
    with pytest.raises(DataError, match="appears twice after converting ids to str"):
        Run({"q": {1: 1.0, "1": 2.0}})  # type: ignore[dict-item]


def test_top_k_keeps_best_ranked() -> None:
    run = Run({"q": {"a": 1.0, "b": 3.0, "c": 2.0}, "p": {"x": 1.0}})
    assert run.top_k(2).to_dict() == {"q": {"b": 3.0, "c": 2.0}, "p": {"x": 1.0}}
    with pytest.raises(ValueError):
        run.top_k(0)


def test_qrels_grades_must_be_integers() -> None:
    assert Qrels({"q": {"a": 2.0}}).to_dict() == {"q": {"a": 2}}  # integral float accepted
    with pytest.raises(DataError, match=r"relevance grade 1\.5 is not an integer"):
        Qrels({"q": {"a": 1.5}})
    with pytest.raises(DataError, match="relevance grade True is not an integer"):
        Qrels({"q": {"a": True}})
    with pytest.raises(DuplicateError, match="judged twice"):
        Qrels.from_arrays(["q", "q"], ["a", "a"], [1, 2])


def test_qrels_counts_and_frames() -> None:
    qrels = Qrels({"q1": {"a": 2, "b": 0}, "q2": {"c": 1}})
    assert qrels.num_relevant(1).tolist() == [1, 1]
    assert qrels.num_relevant(2).tolist() == [1, 0]
    assert qrels.judgements("q1") == {"a": 2, "b": 0}
    frame = qrels.to_frame()
    assert Qrels.from_frame(frame).to_dict() == qrels.to_dict()
    with pytest.raises(DataError, match="lacks column"):
        Qrels.from_frame(pd.DataFrame({"q": [1]}))


def test_corpus_and_queries() -> None:
    corpus = Corpus.from_dict({"d1": {"title": "T", "text": "body"}, "d2": "plain"})
    assert corpus["d1"].title == "T" and corpus.contents() == ["T body", "plain"]
    assert list(corpus.subset(["d2"])) == ["d2"]
    with pytest.raises(DataError, match="appears more than once"):
        Corpus(["a", "a"], ["", ""], ["x", "y"])
    with pytest.raises(DataError, match="no 'text' field"):
        Corpus.from_dict({"d": {"title": "x"}})
    queries = Queries.from_dict({"q1": "hello", "q2": {"text": "hi", "tags": ["short"]}})
    assert queries["q1"] == "hello" and queries.tags_of("q2") == ("short",)
    with pytest.raises(DataError, match="appears more than once"):
        Queries(["q", "q"], ["a", "b"])


def test_large_padded_and_ragged_layouts_rank_identically() -> None:
    rng = np.random.default_rng(3)
    data = {f"q{i}": {f"d{j}": float(rng.integers(0, 5)) for j in range(int(rng.integers(0, 40)))}
            for i in range(60)}
    data["huge"] = {f"d{j}": float(rng.integers(0, 50)) for j in range(5000)}  # forces the per-query loop
    run = Run(data)
    for q, docs in data.items():
        expected = [d for d, _ in sorted(docs.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)]
        assert [d for d, _ in run.ranking(q)] == expected
