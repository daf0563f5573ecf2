"""Golden sets: the three forms, and every problem reported at once with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalsuite.errors import DataError
from evalsuite.io import read_beir
from evalsuite.tasks.golden import GoldenSetTask, load_golden_set


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name


def test_beir_form_is_the_shipped_set(golden_dir: Path) -> None:
    data = load_golden_set(golden_dir)
    beir = read_beir(golden_dir)
    assert data.qrels.to_dict() == beir.qrels.to_dict()
    assert list(data.corpus) == list(beir.corpus) and list(data.queries) == list(beir.queries)
    task = GoldenSetTask(golden_dir)
    task.load()
    assert task.metadata.name == "cranfield-50" and task.metadata.content_hash


def test_csv_folder_form(tmp_path: Path) -> None:
    root = tmp_path / "gs"
    write(root, "corpus.csv", "id,title,text\nd1,Pumps,centrifugal pumps\nd2,,\"valves, gates\"\n")
    write(root, "queries.csv", "id,text,tags\nq1,how do pumps work,mechanical;easy\nq2,valves,\n")
    write(root, "judgements.csv", "query_id,doc_id,grade\nq1,d1,2\nq2,d2,1\nq2,d1,0\n")
    data = load_golden_set(root)
    assert data.corpus["d2"].text == "valves, gates" and data.queries.tags_of("q1") == ("mechanical", "easy")
    assert data.qrels.to_dict() == {"q1": {"d1": 2}, "q2": {"d2": 1, "d1": 0}}
    assert data.notes == ()


def test_single_file_with_texts_builds_the_corpus(tmp_path: Path) -> None:
    path = write(tmp_path, "golden.jsonl",
                 '{"query": "reset a password", "relevant": ["Go to settings and click reset."]}\n'
                 '{"query_id": "billing", "query": "change card", "tags": ["billing"], '
                 '"relevant": [{"text": "Update the card under Billing.", "grade": 2}]}\n')
    data = load_golden_set(path)
    assert len(data.corpus) == 2 and list(data.queries) == ["q1", "billing"]
    doc = next(iter(data.qrels.judgements("billing")))
    assert data.corpus[doc].text == "Update the card under Billing."
    assert data.qrels.judgements("billing")[doc] == 2


def test_single_file_with_a_corpus_uses_ids(tmp_path: Path) -> None:
    corpus = write(tmp_path, "corpus.jsonl", '{"_id": "a", "text": "x"}\n{"_id": "b", "text": "y"}\n')
    path = write(tmp_path, "golden.csv", "query_id,query,relevant\nq1,find x,a\nq2,find both,a;b\n")
    data = load_golden_set(path, corpus=corpus)
    assert data.qrels.to_dict() == {"q1": {"a": 1}, "q2": {"a": 1, "b": 1}}


def test_every_problem_is_listed_with_file_and_line(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    write(root, "corpus.jsonl", '{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\nnot json\n')
    write(root, "queries.jsonl", '{"_id": "q1", "text": "fine"}\n{"_id": "q2", "text": "  "}\n')
    write(root, "judgements.jsonl",
          '{"query_id": "q1", "doc_id": "d1", "grade": 1}\n'
          '{"query_id": "q1", "doc_id": "d9", "grade": 1}\n'
          '{"query_id": "q7", "doc_id": "d1", "grade": 1}\n'
          '{"query_id": "q1", "doc_id": "d1", "grade": 2}\n'
          '{"query_id": "q1", "doc_id": "d3", "grade": "high"}\n')
    with pytest.raises(DataError) as info:
        load_golden_set(root)
    problems = [(Path(p).name, line, message) for p, line, message in info.value.problems]  # type: ignore[attr-defined]
    assert problems == [
        ("corpus.jsonl", 2, "doc id 'd1' already used (corpus.jsonl:1)"),
        ("corpus.jsonl", 3, "invalid JSON: Expecting value (column 1)"),
        ("queries.jsonl", 2, "query 'q2' has an empty text"),
        ("judgements.jsonl", 4, "doc 'd1' judged twice for query 'q1' (judgements.jsonl:1)"),
        ("judgements.jsonl", 5, "grade 'high' is not an integer (between -2^63 and 2^63)"),
        ("judgements.jsonl", 2, "judgement names doc 'd9', which is not in the corpus"),
        ("judgements.jsonl", 3, "judgement names query 'q7', which is not in the queries"),
    ]
    assert str(info.value).startswith(f"{root / 'corpus.jsonl'}:2: doc id 'd1' already used")
    assert "6 more problem(s)" in str(info.value)


def test_queries_without_relevant_docs_are_noted(tmp_path: Path) -> None:
    root = tmp_path / "gs"
    write(root, "corpus.jsonl", '{"_id": "d1", "text": "a"}\n')
    write(root, "queries.jsonl", '{"_id": "q1", "text": "a"}\n{"_id": "q2", "text": "b"}\n')
    write(root, "judgements.tsv", "query_id\tdoc_id\tgrade\nq1\td1\t1\nq2\td1\t0\n")
    data = load_golden_set(root)
    assert data.notes == ("1 query has no relevant judgement and will be excluded from metric means: q2",)


def test_missing_pieces_are_named(tmp_path: Path) -> None:
    root = tmp_path / "gs"
    write(root, "corpus.jsonl", '{"_id": "d1", "text": "a"}\n')
    with pytest.raises(DataError, match=r"lacks queries.jsonl or queries.csv; judgements"):
        load_golden_set(root)
    with pytest.raises(DataError, match="golden set not found"):
        load_golden_set(tmp_path / "nope")
