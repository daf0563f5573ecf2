"""Training pairs for a bi-encoder fine-tune, from three sources, and their export.

* **qrels** (:func:`pairs_from_qrels`): one pair (query text, document) per judgement with
  grade >= ``min_grade`` of the given (training) queries. The document text is
  ``title + " " + text``, exactly what the dense retriever encodes.
* **a pairs file** (:func:`pairs_from_file`): JSONL (one object a line) or CSV/TSV with a
  header; columns ``query`` (or ``anchor``), ``positive`` (or ``pos``) and optionally
  ``negative`` / ``negative_1`` ... ``negative_n`` (or a JSON list ``negatives``) -- the form
  ``evalsuite check-leakage --train`` reads, and the form :func:`write_pairs` writes. Every
  bad line is reported with its number (exit 2).
* **corpus structure** (:func:`pairs_from_titles`): title -> body, no labels needed. A title
  that appears inside its own body is dropped: a positive that contains its anchor verbatim
  teaches nothing useful (measured in ``../shared/FINETUNE.md``: such pairs made every
  Cranfield query worse).

Every builder drops exact duplicate (anchor, positive) pairs and pairs with an empty side,
and counts what it dropped (:attr:`PairSet.stats`). :func:`count_truncated` counts texts
longer than the model's maximum sequence length (they are truncated in training).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evalsuite.errors import DataError
from evalsuite.metrics.leakage import TrainingPairs, normalize
from evalsuite.types import Corpus, Qrels, Queries

__all__ = ["Pair", "PairSet", "count_truncated", "doc_text", "pairs_from_file", "pairs_from_qrels", "pairs_from_titles",
           "read_pairs", "write_pairs"]


def doc_text(corpus: Corpus, doc_id: str) -> str:
    """A document as the dense retriever encodes it: ``title + " " + text`` (the text alone
    without a title), so that mined and paired texts hit the embedding cache."""
    doc = corpus[doc_id]
    return f"{doc.title} {doc.text}" if doc.title else str(doc.text)


@dataclass(frozen=True)
class Pair:
    """One training example: an anchor (query), its positive, and optional negatives.

    The ids say where the texts came from (a query id, corpus doc ids) when known; ``line`` is
    the line of a pairs file it was read from.
    """

    anchor: str
    positive: str
    negatives: tuple[str, ...] = ()
    query_id: str | None = None
    positive_id: str | None = None
    negative_ids: tuple[str | None, ...] = ()
    line: int | None = None

    def with_negatives(self, texts: Sequence[str], ids: Sequence[str | None]) -> Pair:
        return replace(self, negatives=tuple(texts), negative_ids=tuple(ids))


@dataclass
class PairSet:
    """Pairs with where they came from and what was dropped on the way."""

    pairs: list[Pair]
    source: str
    stats: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def query_ids(self) -> set[str]:
        """Ids of the queries the pairs were built from (empty for files and titles)."""
        return {p.query_id for p in self.pairs if p.query_id is not None}

    def as_training_pairs(self) -> TrainingPairs:
        """The pairs in the form the leakage checks read (first negative only)."""
        return TrainingPairs(tuple(p.anchor for p in self.pairs), tuple(p.positive for p in self.pairs),
                             tuple(p.negatives[0] if p.negatives else None for p in self.pairs), source=self.source)

    def summary(self) -> dict[str, Any]:
        anchors = {p.anchor for p in self.pairs}
        return {"source": self.source, "pairs": len(self.pairs), "anchors": len(anchors),
                "with_negatives": sum(1 for p in self.pairs if p.negatives),
                "negatives_per_pair": max((len(p.negatives) for p in self.pairs), default=0),
                **self.stats, "notes": list(self.notes)}


def _dedupe(pairs: Iterable[Pair], stats: dict[str, int]) -> list[Pair]:
    out: list[Pair] = []
    seen: set[tuple[str, str]] = set()
    for pair in pairs:
        key = (pair.anchor, pair.positive)
        if key in seen:
            stats["duplicates_dropped"] = stats.get("duplicates_dropped", 0) + 1
            continue
        seen.add(key)
        out.append(pair)
    return out


def pairs_from_qrels(queries: Queries, corpus: Corpus, qrels: Qrels, query_ids: Iterable[str] | None = None, *,
                     min_grade: int = 1) -> PairSet:
    """(query, relevant document) pairs of ``query_ids`` (default: every judged query).

    Judgements naming a document that is not in the corpus, or a query that is not in the
    queries, are skipped and counted (``dangling_judgements``).
    """
    if min_grade < 1:
        raise DataError(f"min_grade must be at least 1 (a grade-0 judgement is 'not relevant'), got {min_grade}")
    wanted = None if query_ids is None else set(query_ids)
    stats = {"judgements_used": 0, "dangling_judgements": 0, "duplicates_dropped": 0, "empty_dropped": 0}
    built: list[Pair] = []
    for qid, docs in sorted(qrels.grade_maps().items()):
        if wanted is not None and qid not in wanted:
            continue
        for doc_id, grade in sorted(docs.items()):
            if grade < min_grade:
                continue
            if qid not in queries or doc_id not in corpus:
                stats["dangling_judgements"] += 1
                continue
            text = doc_text(corpus, doc_id)
            anchor = str(queries[qid]).strip()
            if not anchor or not text.strip():
                stats["empty_dropped"] += 1
                continue
            stats["judgements_used"] += 1
            built.append(Pair(anchor, text, query_id=qid, positive_id=doc_id))
    return PairSet(_dedupe(built, stats), "qrels", stats)


def pairs_from_titles(corpus: Corpus) -> PairSet:
    """(title, body) pairs of every document with both; no labels needed.

    A title whose normalised text appears inside its normalised body is dropped
    (``anchor_in_positive_dropped``), and so is a document without title or body.
    """
    stats = {"documents": len(corpus), "no_title_or_body": 0, "anchor_in_positive_dropped": 0,
             "duplicates_dropped": 0}
    built: list[Pair] = []
    for doc_id, title, text in zip(corpus.ids.tolist(), corpus.titles.tolist(), corpus.texts.tolist()):
        title, text = str(title).strip(), str(text).strip()
        if not normalize(title) or not normalize(text):
            stats["no_title_or_body"] += 1
            continue
        if normalize(title) in normalize(text):
            stats["anchor_in_positive_dropped"] += 1
            continue
        built.append(Pair(title, text, positive_id=doc_id))
    pair_set = PairSet(_dedupe(built, stats), "titles", stats)
    if not pair_set.pairs:
        raise DataError("no title -> body pairs: no document has both a title and a body that does not contain "
                        "the title")
    return pair_set


_ANCHOR_KEYS = ("query", "anchor")
_POSITIVE_KEYS = ("positive", "pos")


def _negatives_of(record: dict[str, Any]) -> tuple[list[str], str | None]:
    """The negatives of a record, in column order, or a problem."""
    out: list[str] = []
    listed = record.get("negatives", record.get("neg"))
    if listed is not None:
        if isinstance(listed, str):
            listed = [listed]
        if not isinstance(listed, list) or not all(isinstance(n, str) for n in listed):
            return [], "'negatives' must be a string or a list of strings"
        out += listed
    single = record.get("negative")
    if single not in (None, ""):
        if not isinstance(single, str):
            return [], "'negative' must be a string"
        out.append(single)
    numbered = sorted((int(k.rsplit("_", 1)[1]), k) for k in record
                      if k.startswith("negative_") and k.rsplit("_", 1)[1].isdigit())
    for _, key in numbered:
        value = record[key]
        if value in (None, ""):
            continue
        if not isinstance(value, str):
            return [], f"{key!r} must be a string"
        out.append(value)
    return [n for n in out if n.strip()], None


def _record_pair(lineno: int, record: dict[str, Any]) -> Pair | str:
    """The pair of one record, or what is wrong with it."""
    if "\0problem" in record:
        return str(record["\0problem"])
    anchor = next((record[k] for k in _ANCHOR_KEYS if k in record), None)
    positive = next((record[k] for k in _POSITIVE_KEYS if k in record), None)
    if not isinstance(anchor, str) or not isinstance(positive, str):
        return "each record needs 'query' (or 'anchor') and 'positive' strings"
    if not anchor.strip() or not positive.strip():
        return "empty query or positive"
    negatives, problem = _negatives_of(record)
    if problem:
        return problem
    qid = record.get("query_id")
    return Pair(anchor.strip(), positive.strip(), tuple(negatives), query_id=str(qid) if qid is not None else None,
                line=lineno, negative_ids=tuple(None for _ in negatives))


def read_pairs(path: str | Path) -> list[Pair]:
    """Read a pairs file (see the module docstring); every bad line is reported, with its number."""
    import csv
    import io

    from evalsuite.io._text import Problems, check_file, json_loads, read_text

    p = check_file(path, "training pairs")
    text = read_text(p, "training pairs")
    problems = Problems(p)
    rows: list[tuple[int, dict[str, Any]]] = []
    name = p.name.removesuffix(".gz")
    if name.endswith((".jsonl", ".ndjson", ".json")):
        for lineno, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                record = json_loads(line)
            except json.JSONDecodeError as exc:
                rows.append((lineno, {"\0problem": f"invalid JSON: {exc.msg}"}))
                continue
            except ValueError as exc:  # nested too deeply (a RecursionError: exit 3), a lone surrogate
                rows.append((lineno, {"\0problem": str(exc)}))
                continue
            if isinstance(record, dict):
                rows.append((lineno, record))
            else:
                rows.append((lineno, {"\0problem": "expected a JSON object with 'query' and 'positive'"}))
    elif name.endswith((".csv", ".tsv")):
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if name.endswith(".tsv") else ",")
        fields = reader.fieldnames or []
        if not any(k in fields for k in _ANCHOR_KEYS) or not any(k in fields for k in _POSITIVE_KEYS):
            raise DataError(f"the header must name 'query' (or 'anchor') and 'positive' columns, got "
                            f"{', '.join(fields) or 'nothing'}", path=p, line=1)
        for row in reader:
            if None in row:
                extra = len(row[None])
                rows.append((reader.line_num, {"\0problem": f"{extra} more field(s) than the header"}))
                continue
            rows.append((reader.line_num, dict(row)))
    else:
        raise DataError("unknown pairs file type: use .jsonl, .csv or .tsv", path=p)
    pairs: list[Pair] = []
    for lineno, record in rows:
        pair = _record_pair(lineno, record)
        if isinstance(pair, Pair):
            pairs.append(pair)
        else:
            problems.add(lineno, pair)
    problems.raise_if_any(hint="each line: query, positive[, negative ...]")
    if not pairs:
        raise DataError("training pairs file has no records", path=p)
    return pairs


def pairs_from_file(path: str | Path) -> PairSet:
    """The pairs of a file (:func:`read_pairs`), exact duplicates dropped and counted."""
    pairs = read_pairs(path)
    stats = {"records": len(pairs), "duplicates_dropped": 0}
    return PairSet(_dedupe(pairs, stats), f"file:{path}", stats)


def write_pairs(pairs: Sequence[Pair], path: str | Path) -> Path:
    """Write ``pairs`` as JSONL in sentence-transformers column form: ``anchor``, ``positive``,
    ``negative_1`` ... ``negative_n`` (every row the same columns, so ``datasets`` reads it as
    one table; a pair with fewer negatives than the widest is an error)."""
    from evalsuite.io._text import atomic_write

    widths = {len(p.negatives) for p in pairs}
    if len(widths) > 1:
        raise DataError(f"pairs have differing numbers of negatives ({sorted(widths)}); sentence-transformers "
                        "needs one column layout", path=path)
    with atomic_write(path) as fh:
        for p in pairs:
            row = {"anchor": p.anchor, "positive": p.positive}
            row.update({f"negative_{i + 1}": n for i, n in enumerate(p.negatives)})
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return Path(path)


def count_truncated(pairs: Sequence[Pair], model_folder: Path, max_length: int) -> dict[str, int] | None:
    """How many anchors, positives and negatives exceed ``max_length`` tokens of the model's
    tokenizer (``tokenizer.json``; special tokens included). None when the folder has no
    fast tokenizer file."""
    tokenizer_file = Path(model_folder) / "tokenizer.json"
    if not tokenizer_file.is_file():
        return None
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_truncation()
    tokenizer.no_padding()

    def over(texts: list[str]) -> int:
        unique = list(dict.fromkeys(texts))
        return sum(len(e.ids) > max_length for e in tokenizer.encode_batch(unique))

    return {"max_length": max_length,
            "anchors": over([p.anchor for p in pairs]),
            "positives": over([p.positive for p in pairs]),
            "negatives": over([n for p in pairs for n in p.negatives])}
