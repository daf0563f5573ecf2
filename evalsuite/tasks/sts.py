"""STS (semantic textual similarity) tasks: sentence pairs with human similarity scores.

The system scores each pair with the cosine similarity of the two sentence embeddings;
the metrics are Spearman's rho (main) and Pearson's r against the human scores
(:mod:`evalsuite.metrics.correlation`), as in MTEB and sentence-transformers.

Accepted files:

* STS Benchmark as distributed by SentEval (``sts-{train,dev,test}.csv``): tab-separated
  ``genre source year id score sentence1 sentence2``, no header, no quoting. Extra
  trailing columns on a line (present in some copies) are ignored and counted in notes.
* Any CSV/TSV/JSONL with ``sentence1``, ``sentence2`` and ``score`` fields (a header for
  CSV/TSV). TSV is read without quoting (a ``"`` is part of the text); CSV uses standard
  quoting.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evalsuite.errors import DataError
from evalsuite.io._text import Problems, check_file, csv_records, csv_rows, json_loads, read_text
from evalsuite.metrics.correlation import CorrelationResult, correlate
from evalsuite.tasks.base import STSData, TaskMetadata, sts_content_hash

__all__ = ["STSTask", "cosine_scores", "evaluate_sts", "load_sts", "sts_scores"]

_S1 = ("sentence1", "sentence_1", "text1", "s1")
_S2 = ("sentence2", "sentence_2", "text2", "s2")
_SCORE = ("score", "similarity", "label", "gold")


def _pick(record: dict[str, Any], names: Sequence[str]) -> Any:
    for name in names:
        if name in record:
            return record[name]
    return None


def _score(raw: Any) -> float | None:
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        return None
    try:
        value = float(raw)
    except (ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def _looks_like_senteval(first_line: str) -> bool:
    fields = first_line.split("\t")
    if len(fields) < 7:
        return False
    try:
        float(fields[4])
    except ValueError:
        return False
    return True


def load_sts(path: str | Path) -> STSData:
    """Read sentence pairs and gold scores; every malformed line is reported with its number."""
    p = check_file(path, "STS")
    text = read_text(p, "STS file")
    problems = Problems(p)
    s1: list[str] = []
    s2: list[str] = []
    scores: list[float] = []
    notes: list[str] = []
    lines = text.split("\n")
    first = next((line for line in lines if line.strip()), "")
    if p.suffix != ".jsonl" and _looks_like_senteval(first):
        extra = 0
        for lineno, line in enumerate(lines, 1):
            line = line.rstrip("\r")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 7:
                problems.add(lineno, f"expected 7 tab-separated columns (genre source year id score sentence1 "
                                     f"sentence2), found {len(fields)}")
                continue
            extra += len(fields) > 7
            score = _score(fields[4])
            if score is None:
                problems.add(lineno, f"score {fields[4][:60]!r} is not a finite number")
                continue
            s1.append(fields[5])
            s2.append(fields[6])
            scores.append(score)
        if extra:
            notes.append(f"{extra} line(s) had extra trailing columns, ignored")
    else:
        records: list[tuple[int, dict[str, Any]]] = []
        if p.suffix == ".jsonl":
            for lineno, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    value = json_loads(line)
                except json.JSONDecodeError as exc:
                    problems.add(lineno, f"invalid JSON: {exc.msg}")
                    continue
                except ValueError as exc:
                    problems.add(lineno, str(exc))
                    continue
                if isinstance(value, dict):
                    records.append((lineno, value))
                else:
                    problems.add(lineno, "expected a JSON object")
        else:
            delimiter = "\t" if "\t" in first else ","
            header = next((row for _, row in csv_rows(text, p, delimiter=delimiter) if any(c.strip() for c in row)),
                          [])
            names = {c.strip() for c in header}
            if not (names & set(_S1) and names & set(_S2) and names & set(_SCORE)):
                raise DataError("STS file needs a header with sentence1, sentence2 and score columns "
                                f"(or the SentEval STS Benchmark layout); found {', '.join(sorted(names))[:200]}",
                                path=p, line=1)
            records = list(csv_records(csv_rows(text, p, delimiter=delimiter)))
        for lineno, record in records:
            a, b, raw = _pick(record, _S1), _pick(record, _S2), _pick(record, _SCORE)
            if not isinstance(a, str) or not isinstance(b, str):
                problems.add(lineno, "missing sentence1 or sentence2")
                continue
            score = _score(raw)
            if score is None:
                problems.add(lineno, f"score {str(raw)[:60]!r} is not a finite number")
                continue
            s1.append(a)
            s2.append(b)
            scores.append(score)
    problems.raise_if_any()
    if len(scores) < 2:
        raise DataError("STS file has fewer than 2 sentence pairs", path=p)
    values = np.asarray(scores, dtype=np.float64)
    if np.isnan(values).any():
        raise DataError("STS scores contain NaN", path=p)
    return STSData(tuple(s1), tuple(s2), values, name=p.stem, notes=tuple(notes))


def cosine_scores(emb1: np.ndarray, emb2: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (n, dim) embedding matrices."""
    a = np.asarray(emb1, dtype=np.float64)
    b = np.asarray(emb2, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.einsum("ij,ij->i", a, b) / np.where(norms > 0, norms, 1.0)


def sts_scores(data: STSData, encoder: Any, *, batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
    """The encoder's cosine similarity of every pair, in file order.

    ``encoder`` follows :class:`evalsuite.retrievers.encoders.Encoder`; both sentences of a
    pair are encoded as queries would be (symmetric task, no document prompt). Each distinct
    sentence is encoded once.
    """
    unique = list(dict.fromkeys((*data.sentences1, *data.sentences2)))
    embeddings = encoder.encode(unique, kind="query", batch_size=batch_size, show_progress=show_progress)
    row = {s: i for i, s in enumerate(unique)}
    e1 = embeddings[[row[s] for s in data.sentences1]]
    e2 = embeddings[[row[s] for s in data.sentences2]]
    return cosine_scores(e1, e2)


def evaluate_sts(
    data: STSData, encoder: Any, *, batch_size: int = 32, show_progress: bool = False
) -> CorrelationResult:
    """Spearman and Pearson of the encoder's cosine similarities against the gold scores."""
    return correlate(sts_scores(data, encoder, batch_size=batch_size, show_progress=show_progress), data.scores)


class STSTask:
    """An STS file as a task (main metric: Spearman)."""

    def __init__(self, path: str | Path, *, name: str | None = None) -> None:
        self.path = Path(path)
        self.metadata = TaskMetadata(name=name or self.path.stem, type="sts", source="sts", split=self.path.stem,
                                     main_metric="spearman", path=str(self.path))

    def load(self) -> STSData:
        data = load_sts(self.path)
        self.metadata = TaskMetadata(**{**self.metadata.__dict__, "content_hash": sts_content_hash(data)})
        return STSData(data.sentences1, data.sentences2, data.scores, name=self.metadata.name, notes=data.notes)
