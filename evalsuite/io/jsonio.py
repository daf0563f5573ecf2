"""JSON and JSON Lines forms of runs and qrels, and a JSONL record reader.

* JSON: one object ``{"query_id": {"doc_id": value}}`` (the pytrec_eval / ranx dict form).
* JSONL: one object per line: ``{"query_id": ..., "doc_id": ..., "score": ...}`` for runs,
  ``{"query_id": ..., "doc_id": ..., "relevance": ...}`` for qrels.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from evalsuite.errors import DataError
from evalsuite.io._text import Problems, atomic_write, check_file, json_loads, read_text
from evalsuite.types import DuplicateError, Qrels, Run

__all__ = [
    "iter_jsonl",
    "read_json_qrels",
    "read_json_run",
    "read_jsonl_qrels",
    "read_jsonl_run",
    "write_json_qrels",
    "write_json_run",
    "write_jsonl_run",
]


#: grades are stored as 64-bit integers
_INT_MAX = 2**63 - 1


def _load_json(path: Path, what: str) -> Any:
    text = read_text(path, what)
    try:
        return json_loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON in {what}: {exc.msg} (column {exc.colno})", path=path, line=exc.lineno) from None
    except ValueError as exc:
        raise DataError(f"{what}: {exc}", path=path) from None


def _check_nested(data: Any, path: Path, what: str, integer: bool) -> None:
    """``{"query_id": {"doc_id": value}}`` with numeric values (integers in the int64 range for qrels)."""
    if not isinstance(data, dict):
        raise DataError(f"a {what} is a JSON object {{query_id: {{doc_id: value}}}}, got a {type(data).__name__}",
                        path=path)
    for q, docs in data.items():
        if not isinstance(docs, dict):
            raise DataError(f"query {q[:60]!r}: expected an object {{doc_id: value}}, got a {type(docs).__name__}",
                            path=path)
        for d, v in docs.items():
            ok = not isinstance(v, bool) and isinstance(v, (int, float))
            if ok and integer:
                ok = (isinstance(v, int) or v.is_integer()) and abs(v) <= _INT_MAX
            if not ok:
                kind = "an integer (between -2^63 and 2^63)" if integer else "a number"
                raise DataError(f"query {q[:60]!r}, doc {d[:60]!r}: value {str(v)[:60]!r} is not {kind}", path=path)


def iter_jsonl(path: Path, what: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; invalid lines raise with their number."""
    text = read_text(path, what)
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            value = json_loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON in {what}: {exc.msg} (column {exc.colno})", path=path, line=lineno) from None
        except ValueError as exc:
            raise DataError(f"{what}: {exc}", path=path, line=lineno) from None
        if not isinstance(value, dict):
            raise DataError(f"each line of a {what} must be a JSON object, got {type(value).__name__}",
                            path=path, line=lineno)
        yield lineno, value


def _pick(record: dict[str, Any], names: Sequence[str]) -> Any:
    for name in names:
        if name in record:
            return record[name]
    raise KeyError(names[0])


def _read_jsonl_rows(path: Path, what: str, value_names: Sequence[str], kind: type) -> tuple[list, list, list, list]:
    problems = Problems(path)
    qids: list[Any] = []
    dids: list[Any] = []
    values: list[Any] = []
    lines: list[int] = []
    keys = (("query_id", "qid", "query-id"), ("doc_id", "docid", "corpus-id"), value_names)
    for lineno, record in iter_jsonl(path, what):
        try:
            q, d, v = (_pick(record, names) for names in keys)
        except KeyError as exc:
            problems.add(lineno, f"missing field {exc.args[0]!r} (fields: query_id, doc_id, {value_names[0]})")
            continue
        if not isinstance(q, (str, int)) or not isinstance(d, (str, int)):
            problems.add(lineno, "query_id and doc_id must be strings")
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or (kind is int and (
                (isinstance(v, float) and not v.is_integer()) or abs(v) > _INT_MAX)):
            problems.add(lineno, f"{value_names[0]} {repr(v)[:60]} is not "
                                 f"{'an integer (between -2^63 and 2^63)' if kind is int else 'a number'}")
            continue
        qids.append(str(q))
        dids.append(str(d))
        values.append(kind(v))
        lines.append(lineno)
    problems.raise_if_any()
    if not lines:
        raise DataError(f"{what} has no records", path=path)
    return qids, dids, values, lines


def _with_lines(path: Path, lines: list[int], exc: DuplicateError) -> DataError:
    first, second = (lines[r] for r in exc.rows)
    return DataError(exc.reason.split(" (rows")[0] + f" (first on line {first})", path=path, line=second,
                     hint=exc.hint)


def read_json_run(path: str | Path, *, name: str | None = None) -> Run:
    """Read ``{"query_id": {"doc_id": score}}`` JSON."""
    p = check_file(path, "JSON run")
    data = _load_json(p, "JSON run")
    _check_nested(data, p, "JSON run", integer=False)
    try:
        return Run.from_dict(data, name=name or p.name.split(".")[0])
    except DataError as exc:
        raise DataError(exc.reason, path=p, hint=exc.hint) from None


def read_jsonl_run(path: str | Path, *, name: str | None = None) -> Run:
    """Read JSON Lines with ``query_id``, ``doc_id`` and ``score`` per line."""
    p = check_file(path, "JSONL run")
    qids, dids, scores, lines = _read_jsonl_rows(p, "JSONL run", ("score",), float)
    try:
        return Run.from_arrays(qids, dids, scores, name=name or p.name.split(".")[0])
    except DuplicateError as exc:
        raise _with_lines(p, lines, exc) from None


def read_json_qrels(path: str | Path) -> Qrels:
    """Read ``{"query_id": {"doc_id": grade}}`` JSON."""
    p = check_file(path, "JSON qrels")
    data = _load_json(p, "JSON qrels")
    _check_nested(data, p, "JSON qrels", integer=True)
    try:
        return Qrels.from_dict(data)
    except DataError as exc:
        raise DataError(exc.reason, path=p, hint=exc.hint) from None


def read_jsonl_qrels(path: str | Path) -> Qrels:
    """Read JSON Lines with ``query_id``, ``doc_id`` and ``relevance`` per line."""
    p = check_file(path, "JSONL qrels")
    qids, dids, grades, lines = _read_jsonl_rows(p, "JSONL qrels", ("relevance", "grade", "score"), int)
    try:
        return Qrels.from_arrays(qids, dids, grades)
    except DuplicateError as exc:
        raise _with_lines(p, lines, exc) from None


def write_json_run(run: Run, path: str | Path) -> Path:
    """Write ``{"query_id": {"doc_id": score}}`` with docs in rank order."""
    with atomic_write(path) as fh:
        json.dump(run.to_dict(), fh)
    return Path(path)


def write_jsonl_run(run: Run, path: str | Path) -> Path:
    """Write one ``{"query_id", "doc_id", "score", "rank"}`` object per line, in rank order."""
    frame = run.to_frame()
    with atomic_write(path) as fh:
        for q, d, s, r in zip(frame["query_id"].tolist(), frame["doc_id"].tolist(), frame["score"].tolist(),
                              frame["rank"].tolist()):
            fh.write(json.dumps({"query_id": q, "doc_id": d, "score": s, "rank": r}) + "\n")
    return Path(path)


def write_json_qrels(qrels: Qrels, path: str | Path) -> Path:
    """Write ``{"query_id": {"doc_id": grade}}``."""
    with atomic_write(path) as fh:
        json.dump(qrels.to_dict(), fh)
    return Path(path)
