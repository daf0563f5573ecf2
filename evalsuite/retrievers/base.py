"""The retriever interface: index a corpus, search queries, return a Run.

Every retriever family (BM25, SPLADE, dense, ColBERT-style late interaction, hybrid
fusion, cross-encoder rerank) implements :class:`Retriever`. A retriever describes itself
with a :class:`RetrieverMeta` (what it is, which model at which revision or content hash,
with which parameters) so that results can always say exactly what produced them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from evalsuite.types import Corpus, Queries, Run

__all__ = ["Kind", "Retriever", "RetrieverMeta", "check_k"]

Kind = Literal["bm25", "splade", "dense", "colbert", "hybrid", "rerank"]


@dataclass(frozen=True)
class RetrieverMeta:
    """What produced a run.

    ``model`` is the model id or path as given; ``model_fingerprint`` identifies the exact
    weights (a revision, or a content hash of the weight files) so that two results can be
    compared knowingly. ``label`` is the human description shown in reports, and must say
    what the system really is (e.g. "late interaction over all-MiniLM-L6-v2 token
    embeddings, not a trained ColBERT"; "untrained cross-encoder (random weights)").
    """

    name: str
    kind: Kind
    label: str
    model: str | None = None
    model_fingerprint: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    components: tuple[RetrieverMeta, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for results files and reports)."""
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "label": self.label,
            "model": self.model,
            "model_fingerprint": self.model_fingerprint,
            "params": {k: _jsonable(v) for k, v in self.params.items()},
        }
        if self.components:
            out["components"] = [c.to_dict() for c in self.components]
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


@runtime_checkable
class Retriever(Protocol):
    """Index a corpus once, then search any number of query sets.

    ``search`` returns at most ``k`` documents per query as a :class:`Run` named
    ``meta.name``; a query for which nothing matches is present with no documents.
    ``stats`` holds counters of the last ``index``/``search`` calls (documents encoded,
    cache hits, average non-zero terms, seconds per stage), for results files.
    """

    meta: RetrieverMeta
    stats: dict[str, float]

    def index(self, corpus: Corpus) -> None: ...

    def search(self, queries: Queries, *, k: int = 100) -> Run: ...


def check_k(k: int) -> int:
    """Validate a search depth."""
    from evalsuite.errors import ConfigError

    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    return k
