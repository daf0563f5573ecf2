"""Cross-encoder reranking of another retriever's top documents.

A first stage (any retriever) retrieves; a cross-encoder
(:class:`sentence_transformers.CrossEncoder`) reads every (query, document) pair of the
first stage's ``top_n`` documents per query and scores it; those documents are reordered
by that score.

No trained cross-encoder ships in a PyPI package (see ``MODELS.md``), so the model is
always named explicitly -- a local folder or a Hugging Face hub id -- and the run's label
names it: a report can never present an unnamed (or untrained) model as "a reranker".

Conventions:

* Query text: the query as given. Document text: ``title + " " + text`` (just ``text``
  when the title is empty), as :meth:`Corpus.contents` joins them.
* The cross-encoder's score is its raw output (logit), without the sigmoid that
  ``CrossEncoder.predict`` applies by default to one-label models: the order is the same,
  and logits do not saturate into float32 ties near 1.0.
* ``k <= top_n``: the best ``k`` of the reranked ``top_n``.
* ``k > top_n``: the reranked ``top_n`` first, then the first stage's documents ranked
  ``top_n + 1 .. k``, in the first stage's order, with scores strictly below every
  reranked score: ``min(reranked scores of the query) - j`` for the first stage's
  ``(top_n + j)``-th document. Their scores only encode that order (the first stage's
  scores are on another scale and cannot be mixed with the cross-encoder's); the list is
  never silently shortened to ``top_n``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from evalsuite._optional import require
from evalsuite._segments import offsets_from_counts, segment_ids
from evalsuite.errors import ConfigError, DataError
from evalsuite.models import ModelSource, content_fingerprint, resolve_model
from evalsuite.retrievers._common import check_positive as _check_positive
from evalsuite.retrievers._common import local_model_folder
from evalsuite.retrievers._common import quiet_transformers as _quiet_loading
from evalsuite.retrievers.base import RetrieverMeta, check_k
from evalsuite.retrievers.hybrid import RetrieverSpec, build_retriever
from evalsuite.types import Corpus, Queries, Run

__all__ = ["RerankRetriever"]

# Files a cross-encoder never needs: other frameworks' weights and exports.


class RerankRetriever:
    """A first-stage retriever whose ``top_n`` documents per query a cross-encoder reorders.

    Parameters
    ----------
    first_stage:
        The retriever to rerank: an instance, a registered name (``"bm25"``) or a dict
        ``{"name": "dense", **params}`` (see :func:`~evalsuite.retrievers.hybrid.build_retriever`).
    model:
        The cross-encoder: a local folder (a transformers sequence-classification
        checkpoint with one output, e.g. saved by ``CrossEncoder.save``) or a Hugging Face
        hub id such as ``"cross-encoder/ms-marco-MiniLM-L6-v2"`` (needs a connection or the
        HF cache). There is no default: no trained cross-encoder is packaged.
    top_n:
        Documents per query the cross-encoder scores (default 100). See the module
        docstring for searches with ``k > top_n``.
    batch_size:
        Pairs per forward pass.
    max_length:
        Token limit of a (query, document) pair; longer pairs are truncated. ``None``:
        the model's own limit.
    name:
        Name of the produced runs.
    device:
        Torch device of the cross-encoder (default ``"cpu"``).
    progress:
        Progress bars while loading and scoring; ``None``: only when stderr is a terminal.

    ``stats`` after a search: ``pairs_scored``, ``queries``, ``seconds_first_stage``,
    ``seconds_rerank`` (cross-encoder scoring, including loading it the first time) and
    the first stage's own stats under ``first_stage/``.
    """

    def __init__(
        self,
        first_stage: RetrieverSpec,
        model: str | os.PathLike[str],
        *,
        top_n: int = 100,
        batch_size: int = 32,
        max_length: int | None = None,
        name: str = "rerank",
        device: str = "cpu",
        progress: bool | None = None,
    ) -> None:
        _check_positive("top_n", top_n)
        _check_positive("batch_size", batch_size)
        if max_length is not None:
            _check_positive("max_length", max_length)
        self.top_n = top_n
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self.progress = progress
        self._source, self._path = _cross_encoder_files(model)
        self._fingerprint = content_fingerprint(self._path)
        self._head_warning = _head_warning(self._path)
        self.first_stage = build_retriever(first_stage, field="rerank: first_stage")
        self._name = name
        self._model: Any = None
        self._corpus: Corpus | None = None
        self._index_stats: dict[str, float] = {}
        self.stats: dict[str, float] = {}
        self.meta = self._make_meta()

    # -- description -----------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        """The cross-encoder as named by the user (hub id, or local path as resolved)."""
        return self._source.name

    def _make_meta(self) -> RetrieverMeta:
        label = f"cross-encoder {self.model_name} reranking the top {self.top_n} of {self.first_stage.meta.label}"
        if self._head_warning:
            label += f" (WARNING: {self._head_warning})"
        return RetrieverMeta(
            name=self._name,
            kind="rerank",
            label=label,
            model=self.model_name,
            model_fingerprint=self._fingerprint,
            params={"top_n": self.top_n, "batch_size": self.batch_size, "max_length": self.max_length,
                    "score": "raw cross-encoder logit", "beyond_top_n": "first-stage order, scored below"},
            components=(self.first_stage.meta,),
        )

    def __repr__(self) -> str:
        return f"RerankRetriever({self.meta.label!r})"

    # -- model -----------------------------------------------------------------------------

    def _show_progress(self) -> bool:
        return sys.stderr.isatty() if self.progress is None else bool(self.progress)

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        st = require("sentence_transformers", package="sentence-transformers", extra="dense",
                     purpose="the cross-encoder reranker")
        try:
            with _quiet_loading(self._show_progress()):
                model = st.CrossEncoder(str(self._path), device=self.device, max_length=self.max_length)
        except Exception as exc:  # any loading failure: say which model and what to do
            raise ConfigError(
                f"model {self.model_name!r} ({self._path}) could not be loaded as a sentence-transformers "
                f"CrossEncoder ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}); "
                "give a cross-encoder checkpoint (a sequence-classification model with one output)"
            ) from exc
        if model.num_labels != 1:
            raise ConfigError(f"model {self.model_name!r} has {model.num_labels} outputs; reranking needs a "
                              "cross-encoder with one relevance score (num_labels=1)")
        self._model = model
        return model

    def score_pairs(self, pairs: list[tuple[str, str]]) -> NDArray[np.float64]:
        """Raw cross-encoder scores (logits, float64) of ``(query, document)`` text pairs."""
        if not pairs:
            return np.zeros(0)
        import torch

        model = self._load()
        scores = model.predict(pairs, batch_size=self.batch_size, show_progress_bar=self._show_progress(),
                               activation_fn=torch.nn.Identity(), convert_to_numpy=True)
        return np.asarray(scores, dtype=np.float64).reshape(len(pairs))

    # -- retrieval -------------------------------------------------------------------------

    def index(self, corpus: Corpus, *, components_indexed: bool = False) -> None:
        """Index the corpus with the first stage and keep it for the documents' texts.

        ``components_indexed=True``: the caller has already indexed the first stage on this
        same corpus (a suite that also reports the first stage on its own); only the texts
        are kept, the first stage is not indexed again.
        """
        start = time.perf_counter()
        if not components_indexed:
            self.first_stage.index(corpus)
        self._corpus = corpus
        self._index_stats = {"seconds_index": time.perf_counter() - start,
                             **{f"first_stage/{k}": v for k, v in self.first_stage.stats.items()}}
        self.stats = dict(self._index_stats)
        self.meta = self._make_meta()

    def search(self, queries: Queries, *, k: int = 100) -> Run:
        """First stage ``max(k, top_n)`` deep, rerank its ``top_n``, return the best ``k`` per query."""
        k = check_k(k)
        if self._corpus is None:
            raise ConfigError(f"retriever {self._name!r}: call index(corpus) before search() (the reranker "
                              "reads the documents' texts from the indexed corpus; when the first stage is "
                              "already indexed, index(corpus, components_indexed=True) skips indexing it again)")
        start = time.perf_counter()
        first = self.first_stage.search(queries, k=max(k, self.top_n))
        first_seconds = time.perf_counter() - start

        order = first.ranking_order()
        seg = segment_ids(first.offsets)
        rank = np.arange(len(order), dtype=np.int64) - first.offsets[seg] + 1
        doc_ids = first.doc_ids[order]
        head = rank <= self.top_n

        start = time.perf_counter()
        query_texts = self._query_texts(first, queries)
        pairs = [(query_texts[q], self._doc_text(d, first.query_ids[q]))
                 for q, d in zip(seg[head].tolist(), doc_ids[head].tolist())]
        head_scores = self.score_pairs(pairs)
        rerank_seconds = time.perf_counter() - start

        scores = np.empty(len(order))
        scores[head] = head_scores
        tail = ~head
        if tail.any():
            head_counts = np.bincount(seg[head], minlength=len(first)).astype(np.int64)
            head_offsets = offsets_from_counts(head_counts)
            lowest = np.zeros(len(first))
            nonempty = head_counts > 0
            lowest[nonempty] = np.minimum.reduceat(head_scores, head_offsets[:-1][nonempty])
            scores[tail] = lowest[seg[tail]] - (rank[tail] - self.top_n)
        # rows stay grouped by query (order permutes rows within each query)
        reranked = Run._make(first.query_ids.copy(), first.offsets.copy(), doc_ids, scores, name=self._name)

        self.stats = {**self._index_stats, "queries": float(len(first)), "pairs_scored": float(len(pairs)),
                      "seconds_first_stage": first_seconds, "seconds_rerank": rerank_seconds,
                      **{f"first_stage/{key}": v for key, v in self.first_stage.stats.items()}}
        self.meta = self._make_meta()
        return reranked.top_k(k)

    def _query_texts(self, run: Run, queries: Queries) -> list[str]:
        texts = []
        for qid in run.query_ids.tolist():
            if qid not in queries:
                raise DataError(f"rerank: the first stage returned query {qid!r}, which is not among the "
                                "queries searched")
            texts.append(queries[qid])
        return texts

    def _doc_text(self, doc_id: str, query_id: str) -> str:
        assert self._corpus is not None
        if doc_id not in self._corpus:
            raise DataError(f"rerank: the first stage returned doc {doc_id!r} for query {query_id!r}, which "
                            "is not in the indexed corpus; index the same corpus the first stage searches")
        title, text = self._corpus[doc_id]
        return f"{title} {text}" if title else text


def _cross_encoder_files(model: str | os.PathLike[str]) -> tuple[ModelSource, Path]:
    """The resolved model and a local folder holding it (hub ids: the HF cache snapshot)."""
    source = resolve_model(model)
    if source.packaged is not None:
        raise ConfigError(
            f"model {os.fspath(model)!r} is the packaged {source.packaged.description}, not a cross-encoder; no "
            "trained cross-encoder ships on PyPI, so give a local cross-encoder folder or a hub id such as "
            "'cross-encoder/ms-marco-MiniLM-L6-v2'"
        )
    return source, local_model_folder(source)[0]


def _head_warning(path: Path) -> str | None:
    """A warning when the checkpoint has no trained sequence-classification head.

    Loading such a checkpoint (a bare encoder, a bi-encoder) as a cross-encoder gives it a
    randomly initialised head: its scores are meaningless, and the label must say so.
    """
    config = path / "config.json" if path.is_dir() else None
    if config is None or not config.is_file():
        return None
    try:
        architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, ValueError, AttributeError):
        return None
    if not architectures or any(str(a).endswith("ForSequenceClassification") for a in architectures):
        return None
    return (f"the checkpoint has no sequence-classification head (architectures: {', '.join(architectures)}); "
            "its head is randomly initialised, so the scores are meaningless")
