"""Readers and writers: round trips, both parsing engines, and precise errors."""

from __future__ import annotations

import gzip
import json
import math
import os
import re
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalsuite import Qrels, Run
from evalsuite.errors import DataError
from evalsuite.io import (
    read_beir,
    read_qrels,
    read_run,
    read_trec_run,
    write_qrels,
    write_run,
)
from evalsuite.io._text import atomic_write

# ids: anything but ASCII whitespace (which separates TREC columns); U+00A0 and friends included
ids = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_characters="\x7f")
              | st.sampled_from(["\xa0", "\u2003", "é"]), min_size=1, max_size=6)
scores = st.one_of(st.floats(allow_nan=False, width=64), st.sampled_from([0.0, 1.0, math.inf, -math.inf]))
runs = st.dictionaries(ids, st.dictionaries(ids, scores, min_size=1, max_size=8), min_size=1, max_size=5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=runs, engine=st.sampled_from(["python", "arrow"]), suffix=st.sampled_from([".trec", ".json", ".jsonl",
                                                                                        ".trec.gz"]))
def test_run_round_trip_is_exact(tmp_path: Path, data: dict, engine: str, suffix: str) -> None:
    path = tmp_path / f"run{suffix}"
    run = Run(data, name="tag1")
    write_run(run, path)
    back = read_run(path, engine=engine)  # type: ignore[arg-type]
    assert back.to_dict() == run.to_dict()
    if suffix.startswith(".trec"):
        assert back.name == "tag1"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.dictionaries(ids, st.dictionaries(ids, st.integers(-2, 5), min_size=1, max_size=8),
                            min_size=1, max_size=5),
       engine=st.sampled_from(["python", "arrow"]))
def test_qrels_round_trip(tmp_path: Path, data: dict, engine: str) -> None:
    for name in ("q.qrels", "q.json"):
        write_qrels(Qrels(data), tmp_path / name)
        assert read_qrels(tmp_path / name, engine=engine).to_dict() == data  # type: ignore[arg-type]


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ("q1 Q0 d1 1 0.5\n", 1, "expected 6 columns (query_id Q0 doc_id rank score run_tag), found 5"),
        ("q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 abc t\n", 2, "score 'abc' is not a number"),
        ("q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 nan t\n", 2, "score 'nan' is not a number"),
        ("q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 0.4 t\nq1 Q0 d1 3 0.3 t\n", 3,
         "doc 'd1' appears twice for query 'q1' (first on line 1)"),
        ("q1 Q0 d1 1 0.5 t extra\n", 1, "found 7"),
        ("\n\nq1 Q0 d1 1 0.5\n", 3, "found 5"),
    ],
)
@pytest.mark.parametrize("engine", ["python", "arrow", "auto"])
def test_malformed_run_names_file_and_line(tmp_path: Path, content: str, line: int, message: str,
                                           engine: str) -> None:
    path = write(tmp_path, "bad.run", content)
    with pytest.raises(DataError) as info:
        read_trec_run(path, engine=engine)  # type: ignore[arg-type]
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_every_problem_is_summarised_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.run", "q1 Q0 d1 1 x t\nq1 Q0 d2 2 0.1\nq1 Q0 d3 3 0.2 t\nq1 Q0 d4 4 y t\n")
    with pytest.raises(DataError) as info:
        read_trec_run(path)
    text = str(info.value)
    assert text.startswith(f"{path}:1: score 'x' is not a number [2 more problem(s): line 2: expected 6 columns")
    assert "line 4: score 'y'" in text
    assert len(info.value.problems) == 3  # type: ignore[attr-defined]


def test_bad_line_deep_in_a_large_file_is_found_exactly(tmp_path: Path) -> None:
    lines = [f"q{i // 100} Q0 d{i} {i % 100 + 1} {1.0 / (i + 1)!r} tag\n" for i in range(40_000)]
    lines[31_337] = "q313 Q0 dX 38 not-a-score tag\n"
    path = write(tmp_path, "big.run", "".join(lines))
    assert path.stat().st_size > 1 << 20  # large enough for the arrow engine to try first
    with pytest.raises(DataError, match=re.escape(f"{path}:31338: score 'not-a-score' is not a number")):
        read_trec_run(path)


def test_large_regular_file_reads_the_same_with_both_engines(tmp_path: Path) -> None:
    lines = [f"q{i // 500} Q0 d{i * 7 % 1000} {i % 500 + 1} {((i * 37) % 101) / 7!r} tag\n" for i in range(30_000)]
    path = write(tmp_path, "big.run", "".join(lines))
    assert read_trec_run(path, engine="arrow").to_dict() == read_trec_run(path, engine="python").to_dict()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty"),
        (b"  \n\n", "no content (only whitespace)"),
        (b"q1 Q0 d1 1 0.5 t\nq1 Q0 caf\xe9 2 0.4 t\n",
         ":2: TREC run is not valid UTF-8 text (byte b'\\xe9' at column 10)"),
    ],
)
def test_empty_and_undecodable_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = write(tmp_path, "x.run", content)
    with pytest.raises(DataError, match=re.escape(message)):
        read_trec_run(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="run file not found"):
        read_run(tmp_path / "nope.trec")
    with pytest.raises(DataError, match="is a folder"):
        read_run(tmp_path)


def test_encodings_gzip_crlf_and_spacing_are_accepted(tmp_path: Path) -> None:
    expected = {"q1": {"d1": 0.5, "d2": 0.25}}
    text = "q1 Q0 d1 1 0.5 t\r\nq1\tQ0   d2 2 0.25 t\r\n\r\n"
    assert read_trec_run(write(tmp_path, "crlf.run", text)).to_dict() == expected
    assert read_trec_run(write(tmp_path, "u16.run", b"\xff\xfe" + text.encode("utf-16-le"))).to_dict() == expected
    assert read_trec_run(write(tmp_path, "bom.run", b"\xef\xbb\xbf" + text.encode())).to_dict() == expected
    assert read_trec_run(write(tmp_path, "z.run.gz", gzip.compress(text.encode()))).to_dict() == expected


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("trec.txt", "q1 0 d1 2\nq1 0 d2 0\n", {"q1": {"d1": 2, "d2": 0}}),
        ("beir.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t2\n", {"q1": {"d1": 2}}),
        ("beir_noheader.tsv", "q1\td1\t2\nq1\td 2\t1\n", {"q1": {"d1": 2, "d 2": 1}}),
        ("q.json", '{"q1": {"d1": 2}}', {"q1": {"d1": 2}}),
        ("q.jsonl", '{"query_id": "q1", "doc_id": "d1", "relevance": 2}\n', {"q1": {"d1": 2}}),
    ],
)
def test_qrels_formats_are_detected(tmp_path: Path, name: str, content: str, expected: dict) -> None:
    assert read_qrels(write(tmp_path, name, content)).to_dict() == expected


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("q.txt", "q1 0 d1 1.5\n", ":1: relevance '1.5' is not an integer"),
        ("q.txt", "q1 0 d1 1\nq1 0 d1 2\n", ":2: doc 'd1' is judged twice for query 'q1' (first on line 1)"),
        ("q.txt", "just two\n", ":1: cannot tell the qrels format"),
        ("q.tsv", "query-id\tcorpus-id\tscore\nq1\td1\tx\n", ":2: score 'x' is not an integer"),
        ("q.json", '{"q1": {"d1": 2,}}', ":1: invalid JSON in JSON qrels"),
        ("q.jsonl", '{"query_id": "q1", "doc_id": "d1"}\n', ":1: missing field 'relevance'"),
        ("q.jsonl", '{"query_id": "q1", "doc_id": "d1", "relevance": 0.5}\n', ":1: relevance 0.5 is not an integer"),
    ],
)
def test_malformed_qrels(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(DataError, match=re.escape(f"{path}{message}")):
        read_qrels(path)


def test_json_run_errors_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "r.json", '{"q1": {"d1": 1.0},\n "q2": {"d1": oops}}')
    with pytest.raises(DataError, match=re.escape(f"{path}:2: invalid JSON in JSON run")):
        read_run(path)
    path = write(tmp_path, "r.jsonl", '{"query_id": "q", "doc_id": "a", "score": 1}\n[1]\n')
    with pytest.raises(DataError, match=re.escape(f"{path}:2: each line of a JSONL run must be a JSON object")):
        read_run(path)
    path = write(tmp_path, "r.jsonl", '{"query_id": "q", "doc_id": "a", "score": 1}\n'
                                      '{"query_id": "q", "doc_id": "a", "score": 2}\n')
    with pytest.raises(DataError, match=re.escape(f"{path}:2: doc 'a' appears twice for query 'q' (first on line 1)")):
        read_run(path)


def test_trec_writer_refuses_ids_it_cannot_represent(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="contain no whitespace"):
        write_run(Run({"q 1": {"d": 1.0}}), tmp_path / "x.trec")
    assert not (tmp_path / "x.trec").exists()
    write_run(Run({"q 1": {"d": 1.0}}), tmp_path / "x.jsonl")  # JSON forms take any id
    assert read_run(tmp_path / "x.jsonl").to_dict() == {"q 1": {"d": 1.0}}


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_write(target) as fh:
        fh.write("partial")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_write(target) as fh:
        fh.write("ok")
    mask = os.umask(0)
    os.umask(mask)
    assert target.read_text() == "ok" and target.stat().st_mode & 0o777 == 0o666 & ~mask


def _fifo_reader(fifo: Path, got: list[bytes]) -> threading.Thread:
    thread = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    thread.start()
    return thread


def test_atomic_write_writes_into_a_pipe_or_device_in_place(tmp_path: Path) -> None:
    """``--markdown /dev/stdout``, ``-o /dev/null``, a FIFO: replacing them would leave a regular file
    where the device was (as root: /dev/null itself)."""
    fifo = tmp_path / "pipe.md"
    os.mkfifo(fifo)
    link = tmp_path / "stdout"  # like /dev/stdout -> /proc/self/fd/1
    link.symlink_to(fifo)
    for target in (fifo, link):
        got: list[bytes] = []
        reader = _fifo_reader(fifo, got)
        with atomic_write(target) as fh:
            fh.write("hello\n")
        reader.join(10)
        assert got == [b"hello\n"]
        assert fifo.is_fifo() and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe.md", "stdout"]  # no temporary file left


def test_atomic_write_to_stdout_redirected_into_a_file_writes_through_it(tmp_path: Path) -> None:
    """``gate --markdown /dev/stdout > log.txt``: /dev/stdout -> /proc/self/fd/1 -> a regular file.
    Replacing the path put a regular file where the link was (as root: /dev/stdout itself) and the
    text never reached the log; the text goes where the process's own output goes, after it."""
    log = tmp_path / "log.txt"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        link = tmp_path / "stdout"  # like /dev/stdout
        link.symlink_to(f"/proc/self/fd/{fd}")
        for target in (link, Path(f"/proc/self/fd/{fd}"), Path(f"/dev/fd/{fd}")):
            os.write(fd, b"before\n")
            with atomic_write(target) as fh:
                fh.write("markdown\n")
            os.write(fd, b"after\n")
    finally:
        os.close(fd)
    assert log.read_text() == "before\nmarkdown\nafter\n" * 3
    assert link.is_symlink() and sorted(p.name for p in tmp_path.iterdir()) == ["log.txt", "stdout"]


def test_atomic_write_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    """``--markdown summary.md`` where summary.md links to a shared file: the file it names is
    replaced, the link stays."""
    (tmp_path / "shared").mkdir()
    real = tmp_path / "shared" / "summary.md"
    real.write_text("old\n")
    link = tmp_path / "summary.md"
    link.symlink_to(real)
    with atomic_write(link) as fh:
        fh.write("new\n")
    assert link.is_symlink() and real.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared", "summary.md"]
    assert [p.name for p in real.parent.iterdir()] == ["summary.md"]


def test_atomic_write_names_the_file_when_a_write_fails(tmp_path: Path) -> None:
    """A full disk (or a file-size limit) fails a write with no file name: the error said only
    'No space left on device' (or 'File too large'), naming neither the file nor leaving a trace."""
    import errno

    target = tmp_path / "out" / "report.html"
    with pytest.raises(OSError) as info, atomic_write(target) as fh:
        fh.write("partial")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert list((tmp_path / "out").iterdir()) == []


def test_atomic_write_names_a_folder_target(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(IsADirectoryError) as info, atomic_write(tmp_path / "out") as fh:
        fh.write("x")
    assert info.value.filename == str(tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_runs_are_read_from_a_pipe(tmp_path: Path) -> None:
    """``evalsuite evaluate qrels <(zcat run.gz)``: a pipe has no size and can be opened once."""
    for name, payload in (("run", b"q1 Q0 d1 1 2.5 t\n"), ("run.gz", gzip.compress(b"q1 Q0 d1 1 2.5 t\n"))):
        fifo = tmp_path / name
        os.mkfifo(fifo)
        writer = threading.Thread(target=fifo.write_bytes, args=(payload,), daemon=True)
        writer.start()
        assert read_run(fifo).to_dict() == {"q1": {"d1": 2.5}}
        writer.join(10)


def test_qrels_from_a_pipe_is_refused_before_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "qrels"
    os.mkfifo(fifo)  # nobody writes: opening it would block
    with pytest.raises(DataError, match=r"qrels from a pipe.*save it to a file"):
        read_qrels(fifo)


def test_nan_score_in_a_jsonl_run_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"query_id": "q1", "doc_id": "d0", "score": 1}\n'
                    '{"query_id": "q1", "doc_id": "d1", "score": NaN}\n')
    with pytest.raises(DataError, match=re.escape(f"{path}:2: score nan is not a number")):
        read_run(path)


def test_write_run_depth_and_rank_column(tmp_path: Path) -> None:
    path = write_run(Run({"q": {"a": 1.0, "b": 3.0, "c": 2.0}}, name="sys"), tmp_path / "r.trec", depth=2)
    assert path.read_text().splitlines() == ["q Q0 b 1 3.0 sys", "q Q0 c 2 2.0 sys"]


# -- BEIR folders ----------------------------------------------------------------------------


def make_beir(root: Path, corpus: str, queries: str, qrels: str, split: str = "test") -> Path:
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(corpus)
    (root / "queries.jsonl").write_text(queries)
    (root / "qrels" / f"{split}.tsv").write_text(qrels)
    return root


def test_beir_folder(tmp_path: Path) -> None:
    root = make_beir(tmp_path / "ds", '{"_id": "d1", "title": "T", "text": "x"}\n{"_id": "d2", "text": "y"}\n',
                     '{"_id": "q1", "text": "what"}\n', "query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    data = read_beir(root)
    assert len(data.corpus) == 2 and data.corpus["d2"].title == "" and data.queries["q1"] == "what"
    assert data.qrels.to_dict() == {"q1": {"d1": 1}} and data.name == "ds"
    with pytest.raises(DataError, match=r"no qrels for split 'dev' .*available splits: test"):
        read_beir(root, split="dev")
    with pytest.raises(DataError, match="dataset folder not found"):
        read_beir(tmp_path / "missing")


def test_beir_corpus_problems_are_all_listed(tmp_path: Path) -> None:
    root = make_beir(tmp_path / "ds",
                     '{"_id": "d1", "text": "x"}\n{"_id": "d1", "text": "y"}\n{"_id": "d3"}\nnot json\n',
                     '{"_id": "q1", "text": "what"}\n', "q1\td1\t1\n")
    with pytest.raises(DataError, match=re.escape("corpus.jsonl:4: invalid JSON in corpus")):
        read_beir(root)
    (root / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n{"_id": "d1", "text": "y"}\n{"_id": "d3"}\n')
    with pytest.raises(DataError) as info:
        read_beir(root)
    assert "corpus.jsonl:2: doc id 'd1' already used on line 1 [1 more problem(s): line 3: missing field 'text']" \
        in str(info.value)


def test_shipped_golden_set_reads(golden_dir: Path) -> None:
    data = read_beir(golden_dir)
    assert (len(data.corpus), len(data.queries), data.qrels.n_rows) == (600, 50, 413)
    assert json.loads((golden_dir / "queries.jsonl").read_text().splitlines()[0])["_id"] in data.qrels


def test_utf16_without_bom_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "u16.run", "q1 Q0 d1 1 0.5 t\n".encode("utf-16-le"))
    with pytest.raises(DataError, match=re.escape(f"{path}:1: TREC run contains NUL bytes")):
        read_trec_run(path)
