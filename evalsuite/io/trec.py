"""TREC run and qrels files.

* Run: ``query_id Q0 doc_id rank score run_tag`` per line, whitespace-separated.
  The rank column is ignored (the ranking comes from the scores, as in trec_eval).
* Qrels: ``query_id iteration doc_id relevance`` per line; relevance is an integer.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from evalsuite._segments import segment_ids
from evalsuite.errors import DataError
from evalsuite.io._table import Column, Engine, TableData, TableFormat, read_table, split_whitespace
from evalsuite.io._text import atomic_write, check_file, read_text
from evalsuite.types import DuplicateError, Qrels, Run

__all__ = ["QRELS_FORMAT", "RUN_FORMAT", "read_trec_qrels", "read_trec_run", "write_trec_qrels", "write_trec_run"]

RUN_FORMAT = TableFormat(
    "TREC run",
    (Column("query_id", "str"), Column("Q0", "skip"), Column("doc_id", "str"), Column("rank", "skip"),
     Column("score", "float"), Column("run_tag", "skip")),
    "whitespace",
)
QRELS_FORMAT = TableFormat(
    "TREC qrels",
    (Column("query_id", "str"), Column("iteration", "skip"), Column("doc_id", "str"), Column("relevance", "int")),
    "whitespace",
)


_INT_MAX = 2**63 - 1


def read_table_checked(path: Path, fmt: TableFormat, engine: Engine) -> TableData:
    """:func:`read_table`, with an integer beyond the 64-bit range reported at its line (not an OverflowError)."""
    try:
        return read_table(path, fmt, engine)
    except OverflowError:
        raise _overflow_error(path, fmt) from None


def _overflow_error(path: Path, fmt: TableFormat) -> DataError:
    columns = [(i, c) for i, c in enumerate(fmt.columns) if c.kind == "int"]
    for lineno, raw in enumerate(read_text(path, fmt.what).split("\n"), 1):
        fields = [f.strip() for f in raw.split("\t")] if fmt.sep == "tab" else split_whitespace(raw)
        for i, column in columns:
            if i >= len(fields):
                continue
            try:
                value = abs(int(fields[i]))
            except ValueError:
                try:
                    value = abs(float(fields[i]))  # type: ignore[assignment]
                except ValueError:
                    continue
            if value > _INT_MAX:
                return DataError(f"{column.name} {fields[i][:60]!r} is beyond the 64-bit integer range", path=path,
                                 line=lineno, hint="grades are small integers")
    return DataError(f"{fmt.what}: a value is beyond the 64-bit integer range", path=path)


def duplicate_error(path: Path, data: TableData, error: DuplicateError) -> DataError:
    """Re-raise a duplicate (query, doc) found by the data model with file lines."""
    first, second = (data.line_of(r) for r in error.rows)
    return DataError(
        error.reason.split(" (rows")[0] + f" (first on line {first})",
        path=path,
        line=second,
        hint=error.hint,
    )


def read_trec_run(path: str | Path, *, name: str | None = None, engine: Engine = "auto") -> Run:
    """Read a TREC run file. The run is named ``name``, else by its run tag, else the file name."""
    p = check_file(path, "TREC run")
    data = read_table_checked(p, RUN_FORMAT, engine)
    tag = data.first_row[5] if len(data.first_row) == 6 else None
    try:
        return Run.from_arrays(
            data.columns["query_id"], data.columns["doc_id"], data.columns["score"],
            name=name or tag or p.name.split(".")[0], check_ids=False, copy_scores=False,
        )
    except DuplicateError as exc:
        raise duplicate_error(p, data, exc) from None


def read_trec_qrels(path: str | Path, *, engine: Engine = "auto") -> Qrels:
    """Read a TREC qrels file (``query_id iteration doc_id relevance``)."""
    p = check_file(path, "TREC qrels")
    data = read_table_checked(p, QRELS_FORMAT, engine)
    try:
        return Qrels.from_arrays(
            data.columns["query_id"], data.columns["doc_id"], data.columns["relevance"], check_ids=False
        )
    except DuplicateError as exc:
        raise duplicate_error(p, data, exc) from None


_UNWRITABLE = re.compile(r"[\x00-\x20\x7f]")  # ASCII whitespace separates TREC columns; control characters are refused


def _check_writable_ids(ids: np.ndarray, what: str) -> None:
    for value in ids.tolist():
        if not value or _UNWRITABLE.search(value):
            raise DataError(f"cannot write {what} {value!r} to a TREC file: ids must be non-empty and contain no "
                            "whitespace or control characters", hint="use the JSON/JSONL writer for such ids")


def write_trec_run(run: Run, path: str | Path, *, tag: str | None = None, depth: int | None = None) -> Path:
    """Write ``run`` in rank order (ranks from 1), at most ``depth`` docs per query.

    Scores are written with full precision (``repr``), so reading the file back gives
    the same run.
    """
    tag = tag or run.name or "evalsuite"
    if not tag or any(c in " \t\n\r\v\f" for c in tag):
        raise DataError(f"run tag {tag!r} contains whitespace")
    _check_writable_ids(run.query_ids, "query id")
    _check_writable_ids(run.doc_ids, "doc id")
    out = run.top_k(depth) if depth is not None else run
    order = out.ranking_order()  # the rows of out.to_frame(), built without pandas
    offsets = out.offsets
    seg = segment_ids(offsets)
    ranks = np.arange(len(order), dtype=np.int64) - offsets[seg] + 1
    with atomic_write(path) as fh:
        for q, d, s, r in zip(out.query_ids[seg].tolist(), out.doc_ids[order].tolist(), out.scores[order].tolist(),
                              ranks.tolist()):
            fh.write(f"{q} Q0 {d} {r} {s!r} {tag}\n")
    return Path(path)


def write_trec_qrels(qrels: Qrels, path: str | Path) -> Path:
    """Write ``qrels`` as ``query_id 0 doc_id relevance`` lines."""
    _check_writable_ids(qrels.query_ids, "query id")
    _check_writable_ids(qrels.doc_ids, "doc id")
    with atomic_write(path) as fh:
        for q, d, g in zip(qrels.row_query_ids().tolist(), qrels.doc_ids.tolist(), qrels.grades.tolist()):
            fh.write(f"{q} 0 {d} {g}\n")
    return Path(path)
