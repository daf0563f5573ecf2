"""Property-based fuzzing of every reader: random bytes, and random mutations of a valid file, never raise
anything but evalsuite's typed errors (:class:`~evalsuite.errors.EvalsuiteError`).

Each reader gets a valid sample (so mutations explore the format's neighbourhood: a deleted or
inserted byte, a duplicated, dropped or swapped line, a truncation, a field replaced by a hostile
value) and pure noise.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalsuite.errors import EvalsuiteError
from tests.badinput.world import CORPUS, QRELS, QUERIES, SUITE, jsonl

RESULTS_SAMPLE = json.dumps({
    "schema": "evalsuite.results/1", "suite": "s", "run_id": "r1", "created": "2026-01-01T00:00:00+00:00",
    "metrics": ["ndcg@10"], "tasks": [{"name": "t", "details_file": "details/t.json"}], "systems": [{"name": "b"}],
    "results": [{"task": "t", "system": "b", "kind": "retrieval", "aggregate": {"ndcg@10": 0.5},
                 "per_query": {"ndcg@10": {"q1": 0.5, "q2": None}}, "run_file": "runs/t__b.trec"}],
    "config": {"gates": [{"name": "g", "metric": "ndcg@10", "below": 0.1}]},
}, indent=1)

HOSTILE = ["99999999999999999999", "1e30", "nan", "-inf", '"', "\\ud800", "\t", "", "../x", "\x00", "\x1c",
           "[" * 50, "{}", "null", "true", "é", "\\", "%", "&a", "*a"]


def _golden_folder(judgements_name: str) -> Callable[[Path, bytes], Any]:
    def read(path: Path, content: bytes) -> Any:
        from evalsuite.tasks.golden import load_golden_set

        folder = path.parent / "golden"
        folder.mkdir()
        (folder / "corpus.jsonl").write_text(jsonl(CORPUS))
        (folder / "queries.jsonl").write_text(jsonl(QUERIES))
        (folder / judgements_name).write_bytes(content)
        return load_golden_set(folder)
    return read


def _file_reader(name: str, read: Callable[[Path], Any]) -> Callable[[Path, bytes], Any]:
    def run(path: Path, content: bytes) -> Any:
        target = path.parent / name
        target.write_bytes(content)
        return read(target)
    return run


def _store(path: Path, content: bytes) -> Any:
    from evalsuite.store import ResultsStore

    target = path.parent / "history.sqlite"
    target.write_bytes(content)
    store = ResultsStore(target)
    store.list()
    return store.get("r")


def _valid_store() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "h.sqlite"
        with sqlite3.connect(path) as conn:
            conn.executescript("CREATE TABLE runs (run_id TEXT PRIMARY KEY, suite TEXT NOT NULL, created TEXT NOT NULL,"
                               " path TEXT, results TEXT NOT NULL); CREATE TABLE metrics (run_id TEXT, task TEXT,"
                               " system TEXT, metric TEXT, value REAL);")
            conn.execute("INSERT INTO runs VALUES ('r1', 's', 'c', NULL, ?)", (RESULTS_SAMPLE,))
        conn.close()
        return path.read_bytes()


def _readers() -> dict[str, tuple[Callable[[Path, bytes], Any], bytes]]:
    from evalsuite.config import load_suite
    from evalsuite.io import read_corpus, read_qrels, read_queries, read_run
    from evalsuite.io.trec import read_trec_run
    from evalsuite.metrics.leakage import read_training_pairs
    from evalsuite.results import load_results
    from evalsuite.tasks.golden import load_golden_set
    from evalsuite.tasks.sts import load_sts

    trec_run = b"q1 Q0 d1 1 2.5 t\nq1 Q0 d3 2 1.5 t\nq2 Q0 d2 1 3.0 t\n"
    return {
        "trec-run": (_file_reader("r.trec", read_run), trec_run),
        "trec-run-arrow": (_file_reader("r.trec", lambda p: read_trec_run(p, engine="arrow")), trec_run),
        "trec-run-gzip": (_file_reader("r.trec.gz", read_run), gzip.compress(trec_run)),
        "json-run": (_file_reader("r.json", read_run), b'{"q1": {"d1": 2.5, "d3": 1.5}, "q2": {"d2": 3}}'),
        "jsonl-run": (_file_reader("r.jsonl", read_run),
                      b'{"query_id": "q1", "doc_id": "d1", "score": 2.5}\n{"query_id": "q2", "doc_id": "d2", '
                      b'"score": 1}\n'),
        "trec-qrels": (_file_reader("q.qrels", read_qrels), b"q1 0 d1 2\nq2 0 d2 1\nq3 0 d3 0\n"),
        "beir-qrels": (_file_reader("q.tsv", read_qrels), QRELS.encode()),
        "json-qrels": (_file_reader("q.json", read_qrels), b'{"q1": {"d1": 2}, "q2": {"d2": 1}}'),
        "jsonl-qrels": (_file_reader("q.jsonl", read_qrels),
                        b'{"query_id": "q1", "doc_id": "d1", "relevance": 2}\n'),
        "beir-corpus": (_file_reader("corpus.jsonl", read_corpus), jsonl(CORPUS).encode()),
        "beir-queries": (_file_reader("queries.jsonl", read_queries),
                         jsonl([{**QUERIES[0], "tags": ["a"]}, *QUERIES[1:]]).encode()),
        "golden-single-jsonl": (_file_reader("g.jsonl", load_golden_set),
                                b'{"query": "wing lift", "relevant": ["lift on a wing", {"text": "x", "grade": 2}],'
                                b' "tags": ["a"]}\n{"query_id": "q2", "query": "shock", "relevant": ["cone"]}\n'),
        "golden-single-csv": (_file_reader("g.csv", load_golden_set),
                              b'query,relevant,tags\nwing lift,"lift on a wing;swept",a;b\nshock,cone,\n'),
        "golden-judgements-tsv": (_golden_folder("judgements.tsv"), QRELS.replace("query-id\tcorpus-id\tscore",
                                                                                  "query_id\tdoc_id\tgrade").encode()),
        "golden-judgements-csv": (_golden_folder("judgements.csv"), b"query_id,doc_id,grade\nq1,d1,2\nq2,d2,1\n"),
        "golden-judgements-jsonl": (_golden_folder("judgements.jsonl"),
                                    b'{"query_id": "q1", "doc_id": "d1", "grade": 2}\n'),
        "sts-csv": (_file_reader("s.csv", load_sts), b'sentence1,sentence2,score\na,b,1\n"c, d",e,2.5\nf,g,0\n'),
        "sts-tsv": (_file_reader("s.tsv", load_sts), b'sentence1\tsentence2\tscore\na "b\tc\t1\nd\te\t2\n'),
        "sts-senteval": (_file_reader("sts-test.csv", load_sts),
                         b"main-news\tMSRvid\t2012test\t0001\t5.000\ta man.\ta man .\n"
                         b"main-news\tMSRvid\t2012test\t0002\t1.000\tb\tc\textra\n"),
        "sts-jsonl": (_file_reader("s.jsonl", load_sts),
                      b'{"sentence1": "a", "sentence2": "b", "score": 1}\n{"sentence1": "c", "sentence2": "d", '
                      b'"score": 2}\n'),
        "pairs-jsonl": (_file_reader("p.jsonl", read_training_pairs), b'{"query": "a", "positive": "b"}\n'),
        "pairs-tsv": (_file_reader("p.tsv", read_training_pairs), b'query\tpositive\tnegative\na "x\tb\tc\n'),
        "pairs-csv": (_file_reader("p.csv", read_training_pairs), b'query,positive\n"a, b",c\n'),
        "results-json": (_file_reader("results.json", load_results), RESULTS_SAMPLE.encode()),
        "suite-yaml": (_file_reader("suite.yaml", load_suite), SUITE.encode()),
        "results-store": (_store, _valid_store()),
    }


READERS = _readers()


@st.composite
def mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert", "replace", "line", "truncate", "hostile"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "delete" and data:
            del data[at: at + draw(st.integers(1, 8))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "replace" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[at:]
        elif op == "hostile":
            data[at:at] = draw(st.sampled_from(HOSTILE)).encode("utf-8", "surrogatepass")
        else:
            lines = bytes(data).split(b"\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            choice = draw(st.sampled_from(["dup", "drop", "swap"]))
            if choice == "dup":
                lines.insert(i, lines[j])
            elif choice == "drop":
                del lines[i]
            else:
                lines[i], lines[j] = lines[j], lines[i]
            data = bytearray(b"\n".join(lines))
    return bytes(data)


def _check(name: str, content: bytes) -> None:
    read, _ = READERS[name]
    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        read(folder / "input", content)
    except EvalsuiteError:
        pass  # the only acceptable failure
    finally:
        shutil.rmtree(folder, ignore_errors=True)


FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", sorted(READERS))
def test_valid_sample_reads(name: str, tmp_path: Path) -> None:
    read, valid = READERS[name]
    if name == "results-store":  # the sample store holds run r1; 'r' is its prefix
        assert read(tmp_path / "input", valid).run_id == "r1"
        return
    assert read(tmp_path / "input", valid) is not None


@pytest.mark.parametrize("name", sorted(READERS))
@FUZZ
@given(data=st.data())
def test_mutations_raise_only_typed_errors(name: str, data: st.DataObject) -> None:
    _check(name, data.draw(mutated(READERS[name][1])))


@pytest.mark.parametrize("name", sorted(READERS))
@settings(max_examples=15, deadline=None)
@given(content=st.binary(max_size=400))
def test_random_bytes_raise_only_typed_errors(name: str, content: bytes) -> None:
    _check(name, content)
