"""Golden sets: the small, hand-made test collections users write for their own domain.

Three forms are accepted (documented for users in ``golden_sets/README.md``):

1. **BEIR folder**: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``.
2. **Folder of record files**: ``corpus.{jsonl,csv}``, ``queries.{jsonl,csv}`` and
   ``judgements.{jsonl,csv,tsv}`` (``query_id, doc_id, grade`` per record).
3. **Single file** (``.jsonl`` or ``.csv``): one query per record with its relevant
   documents -- ``{"query": "...", "relevant": ["d1", {"id": "d2", "grade": 2}]}`` --
   plus an optional corpus file. Without a corpus, the relevant entries are document
   *texts* and the corpus is made of them (ids ``doc-<hash>``).

Validation reports **every** problem at once, each with its file and line: a judgement
naming a missing query or document, an empty query text, a duplicate id, a non-integer
grade, a malformed line. Queries without any relevant judgement are kept and listed in
``TaskData.notes`` (metrics exclude them and say so).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalsuite.errors import DataError
from evalsuite.io._text import check_file, csv_rows, json_loads, read_text
from evalsuite.tasks.base import TaskMetadata, content_hash
from evalsuite.types import Corpus, Qrels, Queries, TaskData

__all__ = ["GoldenSetTask", "load_golden_set"]

_ID_KEYS = {"corpus": ("_id", "id", "doc_id"), "queries": ("_id", "id", "query_id")}
_GRADE_KEYS = ("grade", "relevance", "score")


@dataclass
class _Problems:
    """Problems across several files; raised together as one DataError."""

    items: list[tuple[Path, int | None, str]] = field(default_factory=list)

    def add(self, path: Path, line: int | None, message: str) -> None:
        self.items.append((path, line, message))

    def raise_if_any(self) -> None:
        if not self.items:
            return
        path, line, message = self.items[0]
        if len(self.items) > 1:
            shown = "; ".join(f"{p.name}:{ln}: {m}" if ln else f"{p.name}: {m}" for p, ln, m in self.items[1:4])
            more = len(self.items) - 4
            tail = f"; ... {more} more" if more > 0 else ""
            message += f" [{len(self.items) - 1} more problem(s): {shown}{tail}]"
        error = DataError(message, path=path, line=line, hint="run 'evalsuite validate PATH' to list every problem")
        error.problems = [(str(p), ln, m) for p, ln, m in self.items]  # type: ignore[attr-defined]
        raise error


def _records(path: Path, problems: _Problems, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, record) of a JSONL, CSV or TSV file; malformed lines become problems.

    TSV is read without quoting (a ``"`` is an ordinary character), as the BEIR qrels
    reader does, so both read the same file the same way."""
    text = read_text(path, path.name)
    if path.suffix == ".jsonl":
        for lineno, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                value = json_loads(line)
            except json.JSONDecodeError as exc:
                problems.add(path, lineno, f"invalid JSON: {exc.msg} (column {exc.colno})")
                continue
            except ValueError as exc:
                problems.add(path, lineno, str(exc))
                continue
            if not isinstance(value, dict):
                problems.add(path, lineno, f"expected a JSON object, got {type(value).__name__}")
                continue
            yield lineno, value
        return
    tsv = path.suffix == ".tsv"
    header: list[str] | None = None
    for lineno, row in csv_rows(text, path, delimiter="\t" if tsv else ","):
        if tsv:
            row = [c.strip(" \r") for c in row]
        if not row or all(not c.strip() for c in row):
            continue
        if header is None:
            header = [c.strip() for c in row]
            missing = [r for r in required if not any(alt in header for alt in r.split("|"))]
            if missing:
                problems.add(path, lineno, f"header lacks column(s) {', '.join(m.split('|')[0] for m in missing)} "
                                           f"(header: {', '.join(header)})")
                return
            continue
        if len(row) != len(header):
            problems.add(path, lineno, f"expected {len(header)} columns ({', '.join(header)}), found {len(row)}")
            continue
        yield lineno, {k: v for k, v in zip(header, row)}


def _first(record: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in record:
            return record[key]
    return None


#: grades are stored as 64-bit integers
_GRADE_MAX = 2**63 - 1


def _as_id(value: Any) -> str | None:
    """A query/doc id: a non-empty string without whitespace or control characters, or an integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        text = value.strip()
        return text if text.isprintable() and not any(c.isspace() for c in text) else None
    return None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _id_problem(kind: str, value: Any) -> str:
    """Why ``value`` is not an id (for a value :func:`_as_id` refused)."""
    if value is None or value == "":
        return f"missing or empty {kind} id"
    if isinstance(value, str):
        return (f"{kind} id {_short(value)} contains whitespace or control characters (ids are written to TREC "
                "files, which separate fields by whitespace)")
    return f"{kind} id {_short(value)} must be a string or an integer, not {type(value).__name__}"


def _as_grade(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer() and abs(value) <= _GRADE_MAX:
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                return None
            if not number.is_integer() or abs(number) > _GRADE_MAX:
                return None
            value = int(number)
    if isinstance(value, int) and -_GRADE_MAX <= value <= _GRADE_MAX:
        return value
    return None


def _find(folder: Path, stem: str, suffixes: tuple[str, ...]) -> Path | None:
    found = [folder / f"{stem}{s}" for s in suffixes if (folder / f"{stem}{s}").is_file()]
    if len(found) > 1:
        raise DataError(f"golden set has {len(found)} {stem} files ({', '.join(f.name for f in found)}); keep one",
                        path=folder)
    return found[0] if found else None


@dataclass
class _Builder:
    problems: _Problems = field(default_factory=_Problems)
    docs: dict[str, tuple[str, str]] = field(default_factory=dict)
    doc_lines: dict[str, tuple[Path, int]] = field(default_factory=dict)
    queries: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    query_lines: dict[str, tuple[Path, int]] = field(default_factory=dict)
    judgements: dict[tuple[str, str], int] = field(default_factory=dict)
    judgement_lines: dict[tuple[str, str], tuple[Path, int]] = field(default_factory=dict)
    _bad_queries: set[str] = field(default_factory=set)  # ids whose record had a problem already reported

    def add_doc(self, path: Path, line: int, doc_id: str, title: str, text: str) -> None:
        if doc_id in self.docs:
            first = self.doc_lines[doc_id]
            self.problems.add(path, line, f"doc id {doc_id!r} already used ({first[0].name}:{first[1]})")
            return
        self.docs[doc_id] = (title, text)
        self.doc_lines[doc_id] = (path, line)

    def add_query(self, path: Path, line: int, query_id: str, text: str, tags: tuple[str, ...]) -> None:
        if query_id in self.queries:
            first = self.query_lines[query_id]
            self.problems.add(path, line, f"query id {query_id!r} already used ({first[0].name}:{first[1]})")
            return
        if not text.strip():
            self.problems.add(path, line, f"query {query_id!r} has an empty text")
            return
        self.queries[query_id] = (text, tags)
        self.query_lines[query_id] = (path, line)

    def add_judgement(self, path: Path, line: int, query_id: str, doc_id: str, grade: int) -> None:
        key = (query_id, doc_id)
        if key in self.judgements:
            first = self.judgement_lines[key]
            self.problems.add(path, line, f"doc {doc_id!r} judged twice for query {query_id!r} "
                                          f"({first[0].name}:{first[1]})")
            return
        self.judgements[key] = grade
        self.judgement_lines[key] = (path, line)

    def check_references(self) -> None:
        for (query_id, doc_id), (path, line) in self.judgement_lines.items():
            if query_id not in self.queries and query_id not in self._bad_queries:
                self.problems.add(path, line, f"judgement names query {query_id!r}, which is not in the queries")
            if doc_id not in self.docs:
                self.problems.add(path, line, f"judgement names doc {doc_id!r}, which is not in the corpus")

    def build(self, name: str) -> TaskData:
        self.check_references()
        self.problems.raise_if_any()
        corpus = Corpus(list(self.docs), [t for t, _ in self.docs.values()], [x for _, x in self.docs.values()])
        queries = Queries(list(self.queries), [t for t, _ in self.queries.values()],
                          [tags for _, tags in self.queries.values()])
        qrels = Qrels.from_arrays([q for q, _ in self.judgements], [d for _, d in self.judgements],
                                  list(self.judgements.values()))
        relevant = {q for (q, _), g in self.judgements.items() if g >= 1}
        without = [q for q in self.queries if q not in relevant]
        notes = (f"{len(without)} quer{'y has' if len(without) == 1 else 'ies have'} no relevant judgement and "
                 f"will be excluded from metric means: {', '.join(without[:10])}"
                 + (" ..." if len(without) > 10 else ""),) if without else ()
        return TaskData(corpus=corpus, queries=queries, qrels=qrels, name=name, notes=notes)


def _read_corpus(builder: _Builder, path: Path) -> None:
    for line, record in _records(path, builder.problems, ("id|_id|doc_id", "text")):
        raw_id = _first(record, _ID_KEYS["corpus"])
        doc_id = _as_id(raw_id)
        text = record.get("text")
        title = record.get("title") or ""
        if doc_id is None:
            builder.problems.add(path, line, _id_problem("document", raw_id) + " (field '_id' or 'id')")
            continue
        if not isinstance(text, str) or not isinstance(title, str):
            builder.problems.add(path, line, f"doc {doc_id!r}: 'text' (and 'title', if given) must be strings")
            continue
        builder.add_doc(path, line, doc_id, title, text)


def _tags(value: Any, *, csv: bool) -> tuple[str, ...] | None:
    """Tags: a JSON list of strings, or in CSV/TSV one ';'-separated string; None when malformed."""
    if value is None or (csv and value == ""):
        return ()
    if isinstance(value, str) and csv:
        return tuple(t.strip() for t in value.split(";") if t.strip())
    if isinstance(value, list) and all(isinstance(t, str) for t in value):
        return tuple(value)
    return None


def _read_queries(builder: _Builder, path: Path) -> None:
    for line, record in _records(path, builder.problems, ("id|_id|query_id", "text")):
        raw_id = _first(record, _ID_KEYS["queries"])
        query_id = _as_id(raw_id)
        text = record.get("text")
        tags = _tags(record.get("tags"), csv=path.suffix != ".jsonl")
        if query_id is None:
            builder.problems.add(path, line, _id_problem("query", raw_id) + " (field '_id' or 'id')")
            continue
        if not isinstance(text, str):
            builder.problems.add(path, line, f"query {query_id!r}: 'text' must be a string")
            builder._bad_queries.add(query_id)
            continue
        if tags is None:
            builder.problems.add(path, line, f"query {query_id!r}: 'tags' must be a list of strings "
                                             "(CSV: separated by ';')")
            continue
        if not text.strip():
            builder._bad_queries.add(query_id)
        builder.add_query(path, line, query_id, text, tags)


def _read_judgements(builder: _Builder, path: Path) -> None:
    for line, record in _records(path, builder.problems, ("query_id|query-id", "doc_id|corpus-id",
                                                          "grade|relevance|score")):
        raw_query, raw_doc = _first(record, ("query_id", "query-id", "qid")), _first(record, ("doc_id", "corpus-id",
                                                                                            "docid"))
        query_id, doc_id = _as_id(raw_query), _as_id(raw_doc)
        raw = _first(record, _GRADE_KEYS)
        grade = _as_grade(raw)
        if query_id is None or doc_id is None:
            builder.problems.add(path, line, _id_problem("query" if query_id is None else "doc",
                                                         raw_query if query_id is None else raw_doc))
            continue
        if grade is None:
            builder.problems.add(path, line, f"grade {_short(raw)} is not an integer (between -2^63 and 2^63)")
            continue
        builder.add_judgement(path, line, query_id, doc_id, grade)


def _read_single_file(builder: _Builder, path: Path, with_corpus: bool) -> None:
    """One record per query: query text, optional id and tags, and its relevant documents."""
    for line, record in _records(path, builder.problems, ("query", "relevant")):
        text = record.get("query")
        raw_id = record.get("query_id", record.get("id"))
        query_id = _as_id(raw_id) if raw_id not in (None, "") else f"q{line}"
        if query_id is None:
            builder.problems.add(path, line, _id_problem("query", raw_id) + " (field 'query_id')")
            continue
        tags = _tags(record.get("tags"), csv=path.suffix != ".jsonl")
        relevant = record.get("relevant")
        if isinstance(relevant, str):  # CSV: ';'-separated ids or texts
            relevant = [r.strip() for r in relevant.split(";") if r.strip()]
        if not isinstance(text, str):
            builder.problems.add(path, line, "'query' must be a string")
            continue
        if tags is None:
            builder.problems.add(path, line, "'tags' must be a list of strings")
            continue
        if not isinstance(relevant, list) or not relevant:
            builder.problems.add(path, line, f"query {query_id!r}: 'relevant' must be a non-empty list")
            continue
        builder.add_query(path, line, query_id, text, tags)
        for item in relevant:
            grade: int | None = 1
            if isinstance(item, dict):
                grade = _as_grade(item.get("grade", 1))
                ref = item.get("id") if "id" in item else item.get("text")
                is_text = "id" not in item
            else:
                ref, is_text = item, not with_corpus
            if grade is None:
                builder.problems.add(path, line, f"query {query_id!r}: grade {_short(item.get('grade'))} is not an "
                                                 "integer (between -2^63 and 2^63)")
                continue
            if not isinstance(ref, str) or not ref.strip():
                builder.problems.add(path, line, f"query {query_id!r}: relevant entries must be doc ids or texts")
                continue
            if is_text:
                doc_id = "doc-" + hashlib.blake2b(ref.encode(), digest_size=6).hexdigest()
                if doc_id not in builder.docs:
                    builder.add_doc(path, line, doc_id, "", ref)
            else:
                checked = _as_id(ref)
                if checked is None:
                    builder.problems.add(path, line, _id_problem("doc", ref))
                    continue
                doc_id = checked
            builder.add_judgement(path, line, query_id, doc_id, grade)


def load_golden_set(path: str | Path, *, split: str = "test", corpus: str | Path | None = None) -> TaskData:
    """Load and validate a golden set in any of the three forms (see module docstring)."""
    root = Path(path)
    builder = _Builder()
    if root.is_file():
        check_file(root, "golden set")
        corpus_path = Path(corpus) if corpus is not None else None
        if corpus_path is not None:
            _read_corpus(builder, check_file(corpus_path, "corpus"))
        _read_single_file(builder, root, with_corpus=corpus_path is not None)
        return builder.build(root.stem)
    if not root.is_dir():
        raise DataError("golden set not found", path=root, hint="give a folder or a .jsonl/.csv file")
    single = _find(root, "golden", (".jsonl", ".csv"))
    corpus_file = _find(root, "corpus", (".jsonl", ".csv"))
    if single is not None:
        if corpus_file is not None:
            _read_corpus(builder, corpus_file)
        _read_single_file(builder, single, with_corpus=corpus_file is not None)
        return builder.build(root.name)
    queries_file = _find(root, "queries", (".jsonl", ".csv"))
    judgements_file = _find(root, "judgements", (".jsonl", ".csv", ".tsv"))
    if judgements_file is None and (root / "qrels" / f"{split}.tsv").is_file():
        judgements_file = root / "qrels" / f"{split}.tsv"
    missing = [n for n, f in (("corpus.jsonl or corpus.csv", corpus_file),
                              ("queries.jsonl or queries.csv", queries_file),
                              (f"judgements.{{jsonl,csv,tsv}} or qrels/{split}.tsv", judgements_file)) if f is None]
    if missing or corpus_file is None or queries_file is None or judgements_file is None:
        raise DataError(f"golden set folder lacks {'; '.join(missing)}", path=root,
                        hint="see golden_sets/README.md for the accepted forms")
    _read_corpus(builder, corpus_file)
    _read_queries(builder, queries_file)
    _read_judgements(builder, judgements_file)
    return builder.build(root.name)


class GoldenSetTask:
    """A golden set as a retrieval task."""

    def __init__(self, path: str | Path, *, name: str | None = None, split: str = "test",
                 main_metric: str = "ndcg@10", corpus: str | Path | None = None) -> None:
        self.path = Path(path)
        self._split = split
        self._corpus = corpus
        self.metadata = TaskMetadata(name=name or self.path.stem, type="retrieval", source="golden", split=split,
                                     main_metric=main_metric, path=str(self.path))

    def load(self) -> TaskData:
        data = load_golden_set(self.path, split=self._split, corpus=self._corpus)
        self.metadata = TaskMetadata(**{**self.metadata.__dict__, "content_hash": content_hash(data)})
        return TaskData(corpus=data.corpus, queries=data.queries, qrels=data.qrels, name=self.metadata.name,
                        notes=data.notes)
