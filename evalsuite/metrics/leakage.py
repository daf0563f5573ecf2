"""Leakage checks: is the evaluation measuring what it claims to?

Before trusting a score (or fine-tuning on data that overlaps the test set), check:

1. **train/eval overlap** -- training queries that equal (after normalisation) or nearly
   equal evaluation queries; training positives that equal or nearly equal corpus documents
   that are *relevant* to evaluation queries.
2. **self-retrieval** -- query ids that are also corpus ids (a retriever may "find" the
   query itself); query texts that appear verbatim inside corpus documents.
3. **corpus duplicates** -- exact and near-duplicate documents, and among them the groups
   that *split relevance* (duplicates judged differently for the same query, so a system is
   punished for retrieving the "wrong" copy).
4. **dangling judgements** -- qrels naming documents or queries that do not exist.

Normalisation: lower-case, every non-alphanumeric character becomes a space, whitespace
collapsed. Near-duplicates: Jaccard similarity of character 5-gram sets >= ``threshold``
(default 0.8), found with MinHash + LSH banding and then verified exactly, so no reported
pair is a false positive.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from evalsuite.types import Corpus, Qrels, Queries, TaskData

__all__ = ["Finding", "LeakageReport", "TrainingPairs", "check_leakage", "near_duplicate_pairs", "normalize",
           "read_training_pairs"]

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
_SHINGLE = 5
_BANDS, _ROWS = 32, 5  # LSH: a pair with Jaccard 0.8 is missed with probability (1 - 0.8^5)^32 ~ 3e-6
_EXAMPLES = 10


def normalize(text: str) -> str:
    """Lower-case, non-alphanumerics to spaces, whitespace collapsed."""
    return " ".join(_NON_WORD.sub(" ", text.lower()).split())


def _text_hash(text: str) -> bytes:
    return hashlib.blake2b(normalize(text).encode(), digest_size=16).digest()


def _shingles(text: str) -> NDArray[np.uint64]:
    """Distinct hashes of the character 5-grams of the normalised text (one hash if shorter)."""
    norm = normalize(text)
    codes = np.frombuffer(norm.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if len(codes) < _SHINGLE:
        return np.array([int.from_bytes(_text_hash(text)[:8], "little")], dtype=np.uint64)
    windows = np.lib.stride_tricks.sliding_window_view(codes, _SHINGLE)
    powers = np.array([1_000_003 ** (_SHINGLE - 1 - j) % (1 << 64) for j in range(_SHINGLE)], dtype=np.uint64)
    with np.errstate(over="ignore"):
        hashes = (windows * powers).sum(axis=1, dtype=np.uint64)
    return np.unique(hashes)


class _MinHasher:
    def __init__(self, n_perm: int = _BANDS * _ROWS, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.mask = rng.integers(0, 2**63, size=n_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self.mult = rng.integers(0, 2**63, size=n_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)

    def signature(self, shingles: NDArray[np.uint64]) -> NDArray[np.uint64]:
        with np.errstate(over="ignore"):
            permuted = (shingles[:, None] ^ self.mask[None, :]) * self.mult[None, :]
        return permuted.min(axis=0)


def _jaccard(a: NDArray[np.uint64], b: NDArray[np.uint64]) -> float:
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def near_duplicate_pairs(
    left: Sequence[str], right: Sequence[str] | None = None, *, threshold: float = 0.8
) -> list[tuple[int, int, float]]:
    """Pairs (i, j, jaccard) of texts with character 5-gram Jaccard >= ``threshold``.

    With ``right=None`` pairs within ``left`` (i < j); otherwise pairs across the two lists.
    """
    hasher = _MinHasher()
    sets_left = [_shingles(t) for t in left]
    sets_right = sets_left if right is None else [_shingles(t) for t in right]
    buckets: dict[tuple[int, bytes], tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    for side, sets in ((0, sets_left), (1, sets_right)) if right is not None else ((0, sets_left),):
        for i, shingles in enumerate(sets):
            signature = hasher.signature(shingles).reshape(_BANDS, _ROWS)
            for band in range(_BANDS):
                buckets[(band, signature[band].tobytes())][side].append(i)
    candidates: set[tuple[int, int]] = set()
    for lefts, rights in buckets.values():
        if right is None:
            if len(lefts) > 1:
                candidates.update((a, b) for k, a in enumerate(lefts) for b in lefts[k + 1:])
        else:
            candidates.update((a, b) for a in lefts for b in rights)
    pairs = []
    for a, b in sorted(candidates):
        if right is None and a == b:
            continue
        score = _jaccard(sets_left[a], sets_right[b])
        if score >= threshold:
            pairs.append((a, b, score))
    return pairs


@dataclass(frozen=True)
class TrainingPairs:
    """Fine-tuning data: (query, positive[, negative]) triples."""

    queries: tuple[str, ...]
    positives: tuple[str, ...]
    negatives: tuple[str | None, ...]
    source: str = ""

    def __len__(self) -> int:
        return len(self.queries)


def read_training_pairs(path: str | Path) -> TrainingPairs:
    """Read JSONL (``{"query", "positive"[, "negative"]}``) or CSV/TSV with those columns."""
    import json

    from evalsuite.errors import DataError
    from evalsuite.io._text import Problems, check_file, csv_records, csv_rows, json_loads, read_text

    p = check_file(path, "training pairs")
    text = read_text(p, "training pairs")
    problems = Problems(p)
    rows: list[tuple[int, dict[str, Any]]] = []
    if p.suffix in (".jsonl", ".ndjson"):
        for lineno, line in enumerate(text.split("\n"), 1):
            if line.strip():
                try:
                    record = json_loads(line)
                except json.JSONDecodeError as exc:
                    problems.add(lineno, f"invalid JSON: {exc.msg}")
                    continue
                except ValueError as exc:
                    problems.add(lineno, str(exc))
                    continue
                if isinstance(record, dict):
                    rows.append((lineno, record))
                else:
                    problems.add(lineno, "expected a JSON object")
    else:  # TSV without quoting (a '"' is text), CSV with standard quoting
        rows = list(csv_records(csv_rows(text, p, delimiter="\t" if p.suffix == ".tsv" else ",")))
    queries, positives, negatives = [], [], []
    for lineno, record in rows:
        q = record.get("query", record.get("anchor"))
        pos = record.get("positive", record.get("pos"))
        neg = record.get("negative", record.get("neg"))
        if not isinstance(q, str) or not isinstance(pos, str):
            problems.add(lineno, "each record needs 'query' and 'positive' strings")
            continue
        queries.append(q)
        positives.append(pos)
        negatives.append(neg if isinstance(neg, str) and neg else None)
    problems.raise_if_any()
    if not queries:
        raise DataError("training pairs file has no records", path=p)
    return TrainingPairs(tuple(queries), tuple(positives), tuple(negatives), source=str(p))


@dataclass
class Finding:
    """One kind of problem: how many, a rate, and examples."""

    check: str
    title: str
    count: int
    examples: list[dict[str, Any]] = field(default_factory=list)
    affected_queries: set[str] = field(default_factory=set)
    severity: str = "warning"  # "leak" | "warning" | "info"

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "title": self.title, "count": self.count, "severity": self.severity,
                "affected_queries": len(self.affected_queries), "examples": self.examples}


@dataclass
class LeakageReport:
    """All findings for one evaluation task (and optional training data)."""

    task: str
    n_queries: int
    n_docs: int
    n_training_pairs: int
    threshold: float
    findings: list[Finding]
    #: queries the metrics evaluate (at least one relevant judgement in the split): the rate's denominator
    evaluated: frozenset[str] | None = None

    @property
    def n_evaluated(self) -> int:
        return self.n_queries if self.evaluated is None else len(self.evaluated)

    @property
    def leaked_queries(self) -> set[str]:
        """Evaluated queries affected by a finding of severity 'leak'."""
        out: set[str] = set()
        for f in self.findings:
            if f.severity == "leak":
                out |= f.affected_queries
        return out if self.evaluated is None else out & self.evaluated

    @property
    def leakage_rate(self) -> float:
        """Share of the *evaluated* queries (those with a relevant judgement in the split, which the metric
        means average over) affected by train/eval overlap or self-retrieval."""
        return len(self.leaked_queries) / self.n_evaluated if self.n_evaluated else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "task": self.task, "queries": self.n_queries, "evaluated_queries": self.n_evaluated,
            "docs": self.n_docs,
            "training_pairs": self.n_training_pairs, "threshold": self.threshold,
            "leaked_queries": len(self.leaked_queries), "leakage_rate": self.leakage_rate,
            "counts": {f.check: f.count for f in self.findings},
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(), "findings": [f.to_dict() for f in self.findings]}


def _relevant_docs_by_query(qrels: Qrels) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for q, docs in qrels.grade_maps().items():
        out[q] = {d for d, g in docs.items() if g >= 1}
    return out


def _pairs_to_finding(check: str, title: str, pairs: Iterable[dict[str, Any]], severity: str,
                      queries: set[str]) -> Finding:
    items = list(pairs)
    return Finding(check, title, len(items), items[:_EXAMPLES], queries, severity)


def check_leakage(
    data: TaskData,
    training: TrainingPairs | None = None,
    *,
    threshold: float = 0.8,
    name: str | None = None,
) -> LeakageReport:
    """Run every check on ``data`` (and ``training`` if given); see the module docstring."""
    if not 0 < threshold <= 1:
        from evalsuite.errors import ConfigError

        raise ConfigError(f"near-duplicate threshold must be in (0, 1], got {threshold}")
    corpus, queries, qrels = data.corpus, data.queries, data.qrels
    findings: list[Finding] = []
    query_ids = queries.ids.tolist()
    query_texts = queries.texts.tolist()
    doc_ids = corpus.ids.tolist()
    doc_texts = corpus.contents()
    relevant = {q: docs for q, docs in _relevant_docs_by_query(qrels).items() if q in queries and docs}
    evaluated = frozenset(relevant)
    queries_of_doc: dict[str, set[str]] = defaultdict(set)
    for q, docs in relevant.items():
        for d in docs:
            queries_of_doc[d].add(q)

    if training is not None:  # only queries the metrics evaluate can leak into a score
        eval_ids = [q for q in query_ids if q in evaluated]
        eval_texts = [t for q, t in zip(query_ids, query_texts) if q in evaluated]
        findings += _train_eval_overlap(training, eval_ids, eval_texts, corpus, queries_of_doc, threshold)
    findings += _self_retrieval(query_ids, query_texts, doc_ids, corpus, qrels, threshold)
    findings += _corpus_duplicates(doc_ids, doc_texts, qrels, threshold)
    findings += _dangling(qrels, corpus, queries)
    return LeakageReport(task=name or data.name, n_queries=len(queries), n_docs=len(corpus),
                         n_training_pairs=len(training) if training is not None else 0, threshold=threshold,
                         findings=findings, evaluated=evaluated)


def _train_eval_overlap(training: TrainingPairs, query_ids: list[str], query_texts: list[str], corpus: Corpus,
                        queries_of_doc: dict[str, set[str]], threshold: float) -> list[Finding]:
    findings = []
    eval_by_hash: dict[bytes, list[int]] = defaultdict(list)
    for i, text in enumerate(query_texts):
        eval_by_hash[_text_hash(text)].append(i)
    exact: list[dict[str, Any]] = []
    for t, text in enumerate(training.queries):
        for i in eval_by_hash.get(_text_hash(text), []):
            exact.append({"training_line": t + 1, "training_query": text, "eval_query_id": query_ids[i],
                          "eval_query": query_texts[i]})
    findings.append(_pairs_to_finding("train_eval_query_exact", "training queries equal to evaluation queries",
                                      exact, "leak", {e["eval_query_id"] for e in exact}))
    exact_keys = {(e["training_line"] - 1, e["eval_query_id"]) for e in exact}
    near: list[dict[str, Any]] = [
        {"training_line": t + 1, "training_query": training.queries[t], "eval_query_id": query_ids[i],
         "eval_query": query_texts[i], "jaccard": round(score, 3)}
        for t, i, score in near_duplicate_pairs(training.queries, query_texts, threshold=threshold)
        if (t, query_ids[i]) not in exact_keys
    ]
    findings.append(_pairs_to_finding("train_eval_query_near", f"training queries nearly equal to evaluation "
                                      f"queries (Jaccard >= {threshold})", near, "leak",
                                      {e["eval_query_id"] for e in near}))
    # training positives vs corpus documents relevant to evaluation queries
    contents = dict(zip(corpus.ids.tolist(), corpus.contents()))
    relevant_ids = sorted(d for d in queries_of_doc if d in contents)  # dangling ids are reported elsewhere
    relevant_texts = [contents[d] for d in relevant_ids]
    doc_by_hash: dict[bytes, list[int]] = defaultdict(list)
    for i, text in enumerate(relevant_texts):
        doc_by_hash[_text_hash(text)].append(i)
    positives: list[dict[str, Any]] = []
    seen: set[tuple[int, int]] = set()
    for t, text in enumerate(training.positives):
        for i in doc_by_hash.get(_text_hash(text), []):
            seen.add((t, i))
            positives.append({"training_line": t + 1, "doc_id": relevant_ids[i], "jaccard": 1.0,
                              "eval_queries": sorted(queries_of_doc[relevant_ids[i]])})
    for t, i, score in near_duplicate_pairs(training.positives, relevant_texts, threshold=threshold):
        if (t, i) not in seen:
            positives.append({"training_line": t + 1, "doc_id": relevant_ids[i], "jaccard": round(score, 3),
                              "eval_queries": sorted(queries_of_doc[relevant_ids[i]])})
    affected = {q for p in positives for q in p["eval_queries"]}
    findings.append(_pairs_to_finding("train_positive_relevant_doc", "training positives equal or nearly equal to "
                                      "documents relevant to evaluation queries", positives, "leak", affected))
    return findings


def _self_retrieval(query_ids: list[str], query_texts: list[str], doc_ids: list[str], corpus: Corpus,
                    qrels: Qrels, threshold: float) -> list[Finding]:
    contents = corpus.contents()
    position = {d: i for i, d in enumerate(doc_ids)}
    same: list[dict[str, Any]] = []
    collide: list[dict[str, Any]] = []
    for qid, text in zip(query_ids, query_texts):
        if qid not in position:
            continue
        doc = contents[position[qid]]
        nq, nd = normalize(text), normalize(doc)
        score = _jaccard(_shingles(text), _shingles(doc))
        if nq == nd or (len(nq) >= 20 and nq in nd) or score >= threshold:
            same.append({"query_id": qid, "query": text, "doc_text": doc[:200], "jaccard": round(score, 3)})
        else:
            collide.append({"query_id": qid})
    findings = [
        _pairs_to_finding("query_is_its_own_doc", "queries whose id is a corpus id holding the query's own text (a "
                          "retriever returns the query itself; use ignore_identical_ids)", same, "leak",
                          {s["query_id"] for s in same}),
        _pairs_to_finding("query_ids_shared_with_corpus", "query ids that are also corpus ids of different texts "
                          "(harmless unless a pipeline mixes the two id spaces)", collide, "info", set()),
    ]
    haystack = "\x00".join(normalize(t) for t in contents)
    starts = np.cumsum([0] + [len(normalize(t)) + 1 for t in contents])
    verbatim: list[dict[str, Any]] = []
    for qid, text in zip(query_ids, query_texts):
        needle = normalize(text)
        if len(needle) < 20:  # very short queries match everywhere; not evidence of leakage
            continue
        at = haystack.find(needle)
        if at >= 0:
            doc = doc_ids[int(np.searchsorted(starts, at, side="right")) - 1]
            verbatim.append({"query_id": qid, "query": text, "doc_id": doc})
    findings.append(_pairs_to_finding("query_text_in_corpus", "query texts found verbatim inside a corpus document",
                                      verbatim, "leak", {v["query_id"] for v in verbatim}))
    return findings


def _corpus_duplicates(doc_ids: list[str], doc_texts: list[str], qrels: Qrels, threshold: float) -> list[Finding]:
    groups: dict[bytes, list[int]] = defaultdict(list)
    for i, text in enumerate(doc_texts):
        groups[_text_hash(text)].append(i)
    pairs: list[tuple[int, int, float]] = []
    for members in groups.values():
        pairs += [(a, b, 1.0) for k, a in enumerate(members) for b in members[k + 1:]]
    exact_set = {(a, b) for a, b, _ in pairs}
    pairs += [(a, b, s) for a, b, s in near_duplicate_pairs(doc_texts, threshold=threshold) if (a, b) not in exact_set]
    grade_maps = qrels.grade_maps()
    duplicates: list[dict[str, Any]] = []
    splitting: list[dict[str, Any]] = []
    affected: set[str] = set()
    for a, b, score in pairs:
        da, db = doc_ids[a], doc_ids[b]
        item = {"doc_a": da, "doc_b": db, "jaccard": round(score, 3)}
        duplicates.append(item)
        split = [q for q, docs in grade_maps.items()
                 if (docs.get(da, 0) >= 1 or docs.get(db, 0) >= 1) and docs.get(da) != docs.get(db)]
        if split:
            splitting.append({**item, "queries": split[:5], "grades": {q: [grade_maps[q].get(da), grade_maps[q].get(db)]
                                                                       for q in split[:5]}})
            affected.update(split)
    return [
        _pairs_to_finding("corpus_duplicates", f"exact or near-duplicate documents (Jaccard >= {threshold})",
                          duplicates, "info", set()),
        _pairs_to_finding("duplicates_split_relevance", "duplicate documents judged differently for the same query",
                          splitting, "warning", affected),
    ]


def _dangling(qrels: Qrels, corpus: Corpus, queries: Queries) -> list[Finding]:
    missing_docs = [{"query_id": q, "doc_id": d} for q, d in zip(qrels.row_query_ids().tolist(),
                                                                 qrels.doc_ids.tolist()) if d not in corpus]
    missing_queries = [{"query_id": q} for q in qrels.query_ids.tolist() if q not in queries]
    return [
        _pairs_to_finding("qrels_missing_docs", "judgements naming documents that are not in the corpus",
                          missing_docs, "warning", {m["query_id"] for m in missing_docs}),
        _pairs_to_finding("qrels_missing_queries", "judged queries that are not in the queries file",
                          missing_queries, "warning", {m["query_id"] for m in missing_queries}),
    ]
