"""The Arrow engine and the line parser accept and reject exactly the same files.

Every case is read by each path, forced: the python engine (which defines what a valid
file is) and the Arrow engine alone (``read_arrow``: a result only for a canonical file,
None otherwise -- never a different result). ``read_table(engine="auto")`` then equals
the python engine, whatever the file size. Cases marked ``fast`` are canonical files that
the Arrow engine must read itself (the fast path is really taken).
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalsuite.errors import DataError
from evalsuite.io import read_qrels, read_run
from evalsuite.io._table import read_arrow, read_table
from evalsuite.io.beir import BEIR_QRELS_FORMAT
from evalsuite.io.trec import QRELS_FORMAT, RUN_FORMAT
from evalsuite.types import Qrels, Run

OK_RUN = "q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 0.25 t\n"

# (name, content, fast): the Arrow engine must read the `fast` ones itself
RUN_CASES: list[tuple[str, bytes, bool]] = [
    ("plain", OK_RUN.encode(), True),
    ("no final newline", b"q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 0.25 t", True),
    ("crlf", OK_RUN.replace("\n", "\r\n").encode(), True),
    ("tab separated", OK_RUN.replace(" ", "\t").encode(), True),
    ("utf-8 ids", "q\u00e9 Q0 d\u00a0x 1 0.5 t\nq\u00e9 Q0 \u65e5\u672c 2 0.25 t\n".encode(), True),
    ("C1 control U+0085 is not a separator", "q1 Q0 d\u00851 1 0.5 t\n".encode(), True),
    ("exponent and signs", b"q1 Q0 d1 1 1e5 t\nq1 Q0 d2 2 -.5 t\nq1 Q0 d3 3 +2. t\n", True),
    ("infinities", b"q1 Q0 d1 1 inf t\nq1 Q0 d2 2 -Infinity t\n", True),
    ("control char in doc id", b"q1 Q0 d\x1c1 1 0.5 t\n", False),
    ("control char in a skipped column", b"q1 Q0 d1 1 0.5 t\x1fx\n", False),
    ("DEL in doc id", b"q1 Q0 d\x7f1 1 0.5 t\n", False),
    ("NUL byte", b"q1 Q0 d\x001 1 0.5 t\n", False),
    ("tab inside a space-separated line", b"q1 Q0 d1 1 0.5 t\nq1 Q0 d\t2 2 0.25 t\n", False),
    ("space inside a tab-separated line", b"q1\tQ0\td1\t1\t0.5\tt\nq1\tQ0\td 2\t2\t0.25\tt\n", False),
    ("vertical tab separator", b"q1 Q0 d1\x0b1 0.5 t\n", False),
    ("form feed separator", b"q1 Q0 d1 1\x0c0.5 t\n", False),
    ("lone CR inside a line", b"q1 Q0 d1 1 0.5 t\rq1 Q0 d2 2 0.25 t\n", False),
    ("CR LF and LF mixed", b"q1 Q0 d1 1 0.5 t\r\nq1 Q0 d2 2 0.25 t\n", False),
    ("empty skipped column (two spaces)", b"q1  d1 1 0.5 t\n", False),
    ("two spaces between fields", b"q1 Q0  d1 1 0.5 t\n", False),
    ("leading space", b" q1 Q0 d1 1 0.5 t\n", False),
    ("trailing space", b"q1 Q0 d1 1 0.5 t \n", False),
    ("blank line", b"q1 Q0 d1 1 0.5 t\n\nq1 Q0 d2 2 0.25 t\n", False),
    ("whitespace-only line", b"q1 Q0 d1 1 0.5 t\n \t \nq1 Q0 d2 2 0.25 t\n", False),
    ("U+001C-only line", b"q1 Q0 d1 1 0.5 t\n\x1c\n", False),
    ("five columns", b"q1 Q0 d1 1 0.5\n", False),
    ("seven columns", b"q1 Q0 d1 1 0.5 t x\n", False),
    ("NaN score", b"q1 Q0 d1 1 nan t\n", False),
    ("hex score", b"q1 Q0 d1 1 0x10 t\n", False),
    ("underscore score", b"q1 Q0 d1 1 1_0 t\n", False),
    ("arabic-indic digits", "q1 Q0 d1 1 \u0663 t\n".encode(), False),
    ("word score", b"q1 Q0 d1 1 high t\n", False),
    ("invalid UTF-8 in a skipped column", b"q1 Q0 d1 1 0.5 t\xff\n", False),
    ("invalid UTF-8 in doc id", b"q1 Q0 d\xe91 1 0.5 t\n", False),
    ("UTF-8 BOM", b"\xef\xbb\xbf" + OK_RUN.encode(), False),
    ("UTF-16 BOM", b"\xff\xfe" + OK_RUN.encode("utf-16-le"), False),
    ("non-breaking space only line", "q1 Q0 d1 1 0.5 t\n\u00a0\n".encode(), False),
    ("duplicate doc", b"q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 0.4 t\nq1 Q0 d1 3 0.3 t\n", True),
    ("queries not grouped", b"q1 Q0 d1 1 0.5 t\nq2 Q0 d1 1 0.5 t\nq1 Q0 d2 2 0.3 t\n", True),
]

QRELS_CASES: list[tuple[str, bytes, bool]] = [
    ("plain", b"q1 0 d1 2\nq1 0 d2 0\nq2 0 d1 -1\n", True),
    ("integral float grade", b"q1 0 d1 2.0\n", True),
    ("exponent grade", b"q1 0 d1 1e0\n", True),
    ("plus grade", b"q1 0 d1 +3\n", True),
    ("hex grade (Arrow's integer parser reads 0x10 as 16)", b"q1 0 d1 0x10\n", False),
    ("fractional grade", b"q1 0 d1 1.5\n", False),
    ("grade beyond int64", b"q1 0 d1 99999999999999999999\n", False),
    ("grade 1e30", b"q1 0 d1 1e30\n", False),
    ("grade beyond 2^53 (not exact in float64)", b"q1 0 d1 9007199254740993\n", False),
    ("inf grade", b"q1 0 d1 inf\n", False),
    ("control char in query id", b"q\x021 0 d1 1\n", False),
    ("judged twice", b"q1 0 d1 1\nq1 0 d1 2\n", True),
]

BEIR_CASES: list[tuple[str, bytes, bool]] = [
    ("header", b"query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td 2\t1\n", True),
    ("no header", b"q1\td1\t2\nq1\td2\t1\n", True),
    ("spaces around a field are stripped by the python engine", b"q1\t d1 \t2\n", False),
    ("field of spaces", b"q1\t \t2\n", False),
    ("two spaces inside a field", b"q1\td  1\t2\n", False),
    ("vertical tab inside a field", b"q1\td\x0b1\t2\n", False),
    ("empty field", b"q1\t\t2\n", False),
    ("bad header-like line later", b"q1\td1\t2\nquery-id\tcorpus-id\tscore\n", False),
]


def outcome(read: Any) -> tuple[str, Any]:
    """('ok', value) or ('error', message without the path)."""
    try:
        return "ok", read()
    except DataError as exc:
        return "error", exc.reason


def as_dict(data: Any) -> dict[str, Any]:
    """A TableData's columns as plain Python lists (pyarrow or numpy alike)."""
    out: dict[str, Any] = {}
    for name, column in data.columns.items():
        if hasattr(column, "to_pylist"):
            out[name] = column.to_pylist()
        else:
            out[name] = np.asarray(column).tolist()
    rows = len(next(iter(out.values())))
    out["lines"] = [data.line_of(i) for i in range(rows)]
    out["first_row"] = data.first_row
    return out


def check_both_engines(tmp_path: Path, content: bytes, fmt: Any, fast: bool, suffix: str = "") -> None:
    path = tmp_path / f"table{suffix}"
    path.write_bytes(content)
    python = outcome(lambda: read_table(path, fmt, "python"))
    arrow = read_arrow(path, fmt)
    if python[0] == "error":
        assert arrow is None, f"Arrow accepted a file the line parser rejects: {python[1]}"
    elif arrow is not None:
        assert arrow.engine == "arrow"
        assert as_dict(arrow) == as_dict(python[1])
    if fast:
        assert arrow is not None, "this canonical file should take the fast path"
    auto = outcome(lambda: read_table(path, fmt, "auto"))
    assert (auto[0], auto[1] if auto[0] == "error" else as_dict(auto[1])) == (
        python[0], python[1] if python[0] == "error" else as_dict(python[1]))


@pytest.mark.parametrize(("name", "content", "fast"), RUN_CASES, ids=[c[0] for c in RUN_CASES])
def test_run_cases(tmp_path: Path, name: str, content: bytes, fast: bool) -> None:
    check_both_engines(tmp_path, content, RUN_FORMAT, fast)


@pytest.mark.parametrize(("name", "content", "fast"), QRELS_CASES, ids=[c[0] for c in QRELS_CASES])
def test_qrels_cases(tmp_path: Path, name: str, content: bytes, fast: bool) -> None:
    check_both_engines(tmp_path, content, QRELS_FORMAT, fast)


@pytest.mark.parametrize(("name", "content", "fast"), BEIR_CASES, ids=[c[0] for c in BEIR_CASES])
def test_beir_cases(tmp_path: Path, name: str, content: bytes, fast: bool) -> None:
    check_both_engines(tmp_path, content, BEIR_QRELS_FORMAT, fast)


@pytest.mark.parametrize(("name", "content", "fast"), RUN_CASES[:12], ids=[c[0] for c in RUN_CASES[:12]])
def test_gzip_cases(tmp_path: Path, name: str, content: bytes, fast: bool) -> None:
    check_both_engines(tmp_path, gzip.compress(content), RUN_FORMAT, fast, suffix=".gz")


ALL_CASES = [(RUN_FORMAT, *c) for c in RUN_CASES] + [(QRELS_FORMAT, *c) for c in QRELS_CASES] + [
    (BEIR_QRELS_FORMAT, *c) for c in BEIR_CASES]


@pytest.mark.parametrize("piece", [1, 2, 3, 5])
@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_every_case_reads_alike_when_the_scan_reads_tiny_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                piece: int, gzipped: bool) -> None:
    """The canonical scan goes over the bytes chunk by chunk: every check that looks at a pair of
    neighbouring bytes (blanks, CR LF) or at one byte (0x7F, >= 0x80) must hold across the
    chunks' boundaries, wherever they fall."""
    from evalsuite.io import _table

    monkeypatch.setattr(_table, "_SCAN_CHUNK", piece)
    for fmt, _name, content, fast in ALL_CASES:
        data = gzip.compress(content) if gzipped else content
        check_both_engines(tmp_path, data, fmt, fast, suffix=f"-{piece}{'.gz' if gzipped else ''}")


@pytest.mark.parametrize("engine", ["python", "arrow"])
@pytest.mark.parametrize("content", [b"q1 Q0 d\x1c1 1 0.5 t\n", b"q1 Q0 d1 1 0.5 t\x01\n"])
def test_control_character_is_named_on_both_paths(tmp_path: Path, engine: str, content: bytes) -> None:
    """issue 13: a control character is refused the same way in a small and a large file."""
    small = tmp_path / "small.run"
    small.write_bytes(content)
    large = tmp_path / "large.run"
    large.write_bytes(b"".join(f"q{i} Q0 d{i} 1 0.5 t\n".encode() for i in range(80_000)) + content)
    assert large.stat().st_size > 1 << 20
    for path, line in ((small, 1), (large, 80_001)):
        with pytest.raises(DataError, match=re.escape(f"{path}:{line}: ") + ".* contains a control character"):
            read_run(path, engine=engine)  # type: ignore[arg-type]


def test_grade_out_of_range_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "q.txt"
    path.write_text("q1 0 d1 1\nq1 0 d2 99999999999999999999\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:2: relevance '99999999999999999999' is out of range")):
        read_qrels(path)


def test_file_of_control_bytes_is_not_called_whitespace(tmp_path: Path) -> None:
    path = tmp_path / "x.run"
    path.write_bytes(b"\x1c\x1c\n")
    with pytest.raises(DataError, match="control character"):
        read_run(path)


def test_large_canonical_file_takes_the_fast_path_and_reads_the_same(tmp_path: Path) -> None:
    lines = [f"q{i // 300} Q0 d{(i * 7) % 1000} {i % 300 + 1} {((i * 37) % 101) / 7!r} tag\n" for i in range(60_000)]
    path = tmp_path / "big.run"
    path.write_text("".join(lines))
    data = read_table(path, RUN_FORMAT)
    assert data.engine == "arrow"
    fast, slow = read_run(path), read_run(path, engine="python")
    assert fast.doc_codes() is not None and slow.doc_codes() is None
    assert fast.to_dict() == slow.to_dict()
    assert fast.name == slow.name == "tag"


fields = st.text(alphabet=st.sampled_from(list("ab1.e-+x_ \t\r\x0b\x0c\x1c\x7f\u00a0\u0085\u0663")), min_size=0,
                 max_size=5)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.lists(fields, min_size=3, max_size=7), min_size=1, max_size=4),
       sep=st.sampled_from([" ", "\t"]), end=st.sampled_from(["\n", "\r\n"]))
def test_random_lines_never_read_differently(tmp_path: Path, lines: list[list[str]], sep: str, end: str) -> None:
    content = end.join(sep.join(f for f in line) for line in lines) + end
    check_both_engines(tmp_path, content.encode("utf-8"), RUN_FORMAT, False)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(grades=st.lists(st.text(alphabet=st.sampled_from(list("0129.e+-xX_ianf")), min_size=1, max_size=6),
                       min_size=1, max_size=5))
def test_random_numbers_parse_alike(tmp_path: Path, grades: list[str]) -> None:
    """Each string as a grade (int column) and as a score (float column)."""
    qrels = "".join(f"q1 0 d{i} {g}\n" for i, g in enumerate(grades))
    check_both_engines(tmp_path, qrels.encode(), QRELS_FORMAT, False)
    run = "".join(f"q1 Q0 d{i} 1 {g} t\n" for i, g in enumerate(grades))
    check_both_engines(tmp_path, run.encode(), RUN_FORMAT, False)


def test_run_from_arrow_columns_equals_run_from_objects() -> None:
    pa = pytest.importorskip("pyarrow")
    queries = ["q2", "q1", "q2", "q1", "q3"]
    docs = ["a", "b", "b", "a", "a"]
    scores = [1.0, 2.0, 2.0, 0.5, 3.0]
    objects = Run.from_arrays(queries, docs, scores)
    arrow = Run.from_arrays(pa.chunked_array([pa.array(queries[:2]), pa.array(queries[2:])]),
                            pa.chunked_array([pa.array(docs[:3]), pa.array(docs[3:])]), scores)
    assert arrow.doc_codes() is not None
    assert arrow.to_dict() == objects.to_dict()
    assert arrow.doc_ids.tolist() == objects.doc_ids.tolist()
    assert arrow.doc_ids_at(np.array([4, 0])).tolist() == objects.doc_ids[[4, 0]].tolist()
    assert arrow.top_k(1).to_dict() == objects.top_k(1).to_dict()
    assert arrow.ranking("q2") == objects.ranking("q2")
    qrels_arrow = Qrels.from_arrays(pa.array(queries).dictionary_encode(), pa.array(docs), [1, 2, 0, 1, 1])
    assert qrels_arrow.to_dict() == Qrels.from_arrays(queries, docs, [1, 2, 0, 1, 1]).to_dict()


def test_arrow_columns_errors_name_the_rows() -> None:
    pa = pytest.importorskip("pyarrow")
    with pytest.raises(DataError, match=r"doc 'a' appears twice for query 'q1' \(rows 1 and 3\)"):
        Run.from_arrays(pa.array(["q1", "q2", "q1"]), pa.array(["a", "a", "a"]), [1.0, 2.0, 3.0])
    with pytest.raises(DataError, match=r"doc 'b' is judged twice for query 'q' \(rows 2 and 3\)"):
        Qrels.from_arrays(pa.array(["q", "q", "q"]), pa.array(["a", "b", "b"]), [1, 1, 1])
    with pytest.raises(DataError, match=r"score is missing or NaN \(row 2\)"):
        Run.from_arrays(pa.array(["q1", "q1"]), pa.array(["a", "b"]), [1.0, float("nan")])
    with pytest.raises(DataError, match="missing value"):
        Run.from_arrays(pa.array(["q1", None]), pa.array(["a", "b"]), [1.0, 2.0])
    with pytest.raises(DataError, match="differ in length"):
        Run.from_arrays(pa.array(["q1"]), pa.array(["a", "b"]), [1.0, 2.0])


def test_trec_writer_refuses_control_characters(tmp_path: Path) -> None:
    from evalsuite.io import write_run

    with pytest.raises(DataError, match="contain no whitespace or control characters"):
        write_run(Run({"q": {"d\x1c1": 1.0}}), tmp_path / "x.trec")
    assert not (tmp_path / "x.trec").exists()
