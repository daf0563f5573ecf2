"""The task interface: declarative metadata plus ``load()``.

A retrieval task loads a :class:`~evalsuite.types.TaskData` (corpus, queries, qrels); an
STS task loads :class:`STSData` (sentence pairs with human scores). The metadata says what
the task is and carries a content hash of its data, so results can always be traced to the
exact data that produced them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from evalsuite.types import TaskData

__all__ = ["STSData", "Task", "TaskMetadata", "content_hash", "sts_content_hash"]

TaskType = Literal["retrieval", "sts"]


@dataclass(frozen=True)
class TaskMetadata:
    """What a task is. ``content_hash`` is filled in once the data is loaded."""

    name: str
    type: TaskType
    source: str  # golden | beir | mteb | sts
    split: str = "test"
    main_metric: str = "ndcg@10"
    ignore_identical_ids: bool = False
    description: str = ""
    path: str | None = None
    content_hash: str | None = None


@dataclass(frozen=True)
class STSData:
    """Sentence pairs with gold similarity scores (e.g. 0-5 for STS Benchmark)."""

    sentences1: tuple[str, ...]
    sentences2: tuple[str, ...]
    scores: np.ndarray
    name: str = "sts"
    notes: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.scores)


@runtime_checkable
class Task(Protocol):
    """Anything with metadata that loads retrieval or STS data."""

    metadata: TaskMetadata

    def load(self) -> TaskData | STSData: ...


def _update(digest: Any, values: Iterable[str]) -> None:
    for value in values:
        data = value.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little") + data)


def content_hash(data: TaskData) -> str:
    """A hash of everything a retrieval task's results depend on: docs, queries, judgements.

    Independent of row order (rows are sorted by id first), so re-serialising the same
    data gives the same hash.
    """
    digest = hashlib.blake2b(digest_size=16)
    corpus = data.corpus
    order = np.argsort(corpus.ids.astype(str), kind="stable")
    _update(digest, ["corpus", str(len(order))])
    for i in order.tolist():
        _update(digest, (corpus.ids[i], corpus.titles[i], corpus.texts[i]))
    queries = data.queries
    order = np.argsort(queries.ids.astype(str), kind="stable")
    _update(digest, ["queries", str(len(order))])
    for i in order.tolist():
        _update(digest, (queries.ids[i], queries.texts[i], "\x1f".join(queries.tags[i])))
    rows = sorted(zip(data.qrels.row_query_ids().tolist(), data.qrels.doc_ids.tolist(),
                      data.qrels.grades.tolist()))
    _update(digest, ["qrels", str(len(rows))])
    for q, d, g in rows:
        _update(digest, (q, d, str(g)))
    return digest.hexdigest()


def sts_content_hash(data: STSData) -> str:
    """A hash of an STS task's pairs and scores (in order: pairs are aligned with scores)."""
    digest = hashlib.blake2b(digest_size=16)
    _update(digest, ["sts", str(len(data))])
    for a, b, s in zip(data.sentences1, data.sentences2, data.scores.tolist()):
        _update(digest, (a, b, repr(float(s))))
    return digest.hexdigest()
