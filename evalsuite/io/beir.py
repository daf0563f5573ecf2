"""The BEIR folder layout.

::

    <folder>/corpus.jsonl        {"_id": ..., "title": ..., "text": ...} per line
    <folder>/queries.jsonl       {"_id": ..., "text": ...} per line
    <folder>/qrels/<split>.tsv   query-id <TAB> corpus-id <TAB> score, with a header line

This is the layout of every dataset on the BEIR benchmark page and of
``beir.datasets.data_loader.GenericDataLoader``; unlike that loader, a malformed line is
an error naming the file and line, and nothing is dropped silently.
"""

from __future__ import annotations

from pathlib import Path

from evalsuite.errors import DataError
from evalsuite.io._table import Column, Engine, TableFormat
from evalsuite.io._text import Problems, check_file
from evalsuite.io.jsonio import iter_jsonl
from evalsuite.io.trec import duplicate_error, read_table_checked
from evalsuite.types import Corpus, DuplicateError, Qrels, Queries, TaskData

__all__ = ["BEIR_QRELS_FORMAT", "available_splits", "read_beir", "read_beir_qrels", "read_corpus", "read_queries"]

BEIR_QRELS_FORMAT = TableFormat(
    "BEIR qrels",
    (Column("query-id", "str"), Column("corpus-id", "str"), Column("score", "int")),
    "tab",
    may_have_header=True,
)


def _text_field(record: dict, key: str, lineno: int, problems: Problems, *, required: bool) -> str | None:
    value = record.get(key)
    if value is None:
        if required:
            problems.add(lineno, f"missing field {key!r}")
        return None if required else ""
    if not isinstance(value, str):
        problems.add(lineno, f"field {key!r} must be a string, got {type(value).__name__}")
        return None
    return value


def id_problem(value: str) -> str | None:
    """Why ``value`` cannot be the id of a query or document that a suite run searches, or None.

    A run writes TREC files, whose fields are separated by whitespace, so such an id holds no
    whitespace and no control character. The readers themselves accept any non-empty id (the
    BEIR TSV and JSON forms can hold spaces); tasks check with this before running."""
    if not value:
        return "empty id"
    if not value.isprintable() or any(c.isspace() for c in value):
        return (f"id {value[:60]!r} contains whitespace or a control character (ids are written to TREC files, "
                "which separate fields by whitespace)")
    return None


def _record_id(record: dict, lineno: int, problems: Problems) -> str | None:
    value = record.get("_id", record.get("id"))
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value:
        problems.add(lineno, "missing or empty '_id'")
        return None
    return value


def read_corpus(path: str | Path) -> Corpus:
    """Read a BEIR ``corpus.jsonl`` (``_id``, optional ``title``, ``text``)."""
    p = check_file(path, "corpus")
    problems = Problems(p)
    ids: list[str] = []
    titles: list[str] = []
    texts: list[str] = []
    first_line: dict[str, int] = {}
    for lineno, record in iter_jsonl(p, "corpus"):
        doc_id = _record_id(record, lineno, problems)
        title = _text_field(record, "title", lineno, problems, required=False)
        text = _text_field(record, "text", lineno, problems, required=True)
        if doc_id is None or title is None or text is None:
            continue
        if doc_id in first_line:
            problems.add(lineno, f"doc id {doc_id!r} already used on line {first_line[doc_id]}")
            continue
        first_line[doc_id] = lineno
        ids.append(doc_id)
        titles.append(title)
        texts.append(text)
    problems.raise_if_any(hint='each line must be {"_id": ..., "title": ..., "text": ...}')
    return Corpus(ids, titles, texts)


def read_queries(path: str | Path) -> Queries:
    """Read a BEIR ``queries.jsonl`` (``_id``, ``text``; optional ``tags`` list)."""
    p = check_file(path, "queries")
    problems = Problems(p)
    ids: list[str] = []
    texts: list[str] = []
    tags: list[tuple[str, ...]] = []
    first_line: dict[str, int] = {}
    for lineno, record in iter_jsonl(p, "queries"):
        query_id = _record_id(record, lineno, problems)
        text = _text_field(record, "text", lineno, problems, required=True)
        raw_tags = record.get("tags") or ()
        if not isinstance(raw_tags, (list, tuple)) or not all(isinstance(t, str) for t in raw_tags):
            problems.add(lineno, "field 'tags' must be a list of strings")
            continue
        if query_id is None or text is None:
            continue
        if not text.strip():
            problems.add(lineno, f"query {query_id!r} has an empty text")
            continue
        if query_id in first_line:
            problems.add(lineno, f"query id {query_id!r} already used on line {first_line[query_id]}")
            continue
        first_line[query_id] = lineno
        ids.append(query_id)
        texts.append(text)
        tags.append(tuple(raw_tags))
    problems.raise_if_any(hint='each line must be {"_id": ..., "text": ...}')
    return Queries(ids, texts, tags)


def read_beir_qrels(path: str | Path, *, engine: Engine = "auto") -> Qrels:
    """Read a BEIR qrels TSV (``query-id corpus-id score``; the header line is optional)."""
    p = check_file(path, "BEIR qrels")
    data = read_table_checked(p, BEIR_QRELS_FORMAT, engine)
    for column in ("query-id", "corpus-id"):  # a tab-separated field can be empty; an id cannot
        values = data.columns[column]
        listed = values.to_pylist() if hasattr(values, "to_pylist") else list(values)
        if "" in listed:
            raise DataError(f"empty {column}", path=p, line=data.line_of(listed.index("")),
                            hint="each line must be: query-id<TAB>corpus-id<TAB>score")
    try:
        return Qrels.from_arrays(
            data.columns["query-id"], data.columns["corpus-id"], data.columns["score"], check_ids=False
        )
    except DuplicateError as exc:
        raise duplicate_error(p, data, exc) from None


def available_splits(folder: str | Path) -> list[str]:
    """The qrels splits present in a BEIR folder (``qrels/<split>.tsv``)."""
    qrels_dir = Path(folder) / "qrels"
    return sorted(f.name[: -len(".tsv")] for f in qrels_dir.glob("*.tsv")) if qrels_dir.is_dir() else []


def read_beir(folder: str | Path, split: str = "test", *, name: str | None = None) -> TaskData:
    """Read a BEIR-layout folder: corpus, queries and the qrels of ``split``."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError("BEIR dataset folder not found", path=root,
                        hint="expected a folder with corpus.jsonl, queries.jsonl and qrels/<split>.tsv")
    for required in ("corpus.jsonl", "queries.jsonl"):
        if not (root / required).is_file():
            raise DataError(f"BEIR folder has no {required}", path=root)
    qrels_path = root / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        splits = available_splits(root)
        raise DataError(f"BEIR folder has no qrels for split {split!r}", path=root,
                        hint=f"available splits: {', '.join(splits) or 'none (no qrels/*.tsv)'}")
    return TaskData(
        corpus=read_corpus(root / "corpus.jsonl"),
        queries=read_queries(root / "queries.jsonl"),
        qrels=read_beir_qrels(qrels_path),
        name=name or root.name,
    )
