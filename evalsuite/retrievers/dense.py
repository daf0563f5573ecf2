"""Dense retrieval: a bi-encoder embeds documents and queries, FAISS finds the nearest.

Documents are encoded as ``title + " " + text`` (the BEIR convention,
:meth:`Corpus.contents`) and queries as their text, each with its optional prompt. With
``similarity="cosine"`` (the default) vectors are L2-normalised, so the inner product FAISS
computes is the cosine. The index is one of

* ``"flat"`` -- exact search (``faiss.IndexFlatIP``), the default: numbers comparable with
  published results;
* ``"hnsw"`` -- a graph index (``IndexHNSWFlat``: ``m`` links per node, ``ef_construction``,
  ``ef_search`` candidates at search time, raised to ``k`` when smaller);
* ``"ivf"`` -- an inverted file (``IndexIVFFlat``: ``nlist`` k-means cells, ``nprobe`` of
  them visited). k-means needs about 39 training points per cell, so ``nlist`` is capped at
  ``docs // 39`` (at least 1 cell) -- a tiny corpus gets one cell, i.e. exact search; a cap
  below an explicit ``nlist`` is reported with a warning and in ``stats["ivf_nlist"]``.

Search returns the top ``k`` (at most the corpus size) per query, in the ranking order the
evaluation uses (score descending, then doc id descending): when documents tie with the
``k``-th score, FAISS is asked for more until the tie is resolved the same way.

Vectors are cached on disk (:mod:`evalsuite.retrievers.cache`), keyed by the encoder's
fingerprint for that kind (model weights hash, backend, prompt, dim, max length, pooling,
normalisation) and the text: a second ``index`` of the same corpus encodes nothing and does
not even load the model; a changed document re-encodes that document only; a damaged cache
row or file is detected, dropped and re-encoded.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from evalsuite._optional import require
from evalsuite.errors import ConfigError, DataError
from evalsuite.retrievers._common import check_positive as _check_positive
from evalsuite.retrievers._common import id_rank as _id_rank
from evalsuite.retrievers._common import make_cache as _make_cache
from evalsuite.retrievers.base import RetrieverMeta, check_k
from evalsuite.retrievers.cache import CacheStats, EmbeddingCache, cached_encode
from evalsuite.retrievers.encode_timing import runtime_settings
from evalsuite.retrievers.encoders import (
    DEFAULT_MODEL,
    Backend,
    Encoder,
    EncoderJob,
    ExportedOnnxEncoder,
    Kind,
    OnnxEncoder,
    Precision,
    SentenceTransformerEncoder,
    fingerprint_for,
    load_encoder,
)
from evalsuite.types import Corpus, Queries, Run

__all__ = ["DenseRetriever", "FaissIndex", "IndexSpec", "top_with_ties"]

IndexKind = Literal["flat", "hnsw", "ivf"]
Similarity = Literal["cosine", "dot"]

#: k-means training points per IVF cell below which FAISS warns (and clusters poorly).
_MIN_POINTS_PER_CELL = 39
#: extra candidates fetched beyond k, so that ties at the cut-off can be resolved.
_TIE_MARGIN = 8


class DenseRetriever:
    """Bi-encoder + FAISS retrieval (see the module docstring).

    Parameters
    ----------
    model:
        Model name (default: the packaged all-MiniLM-L6-v2), local path, hub id, or an
        :class:`~evalsuite.retrievers.encoders.Encoder` instance (then the encoder options
        below must stay at their defaults).
    backend:
        ``"auto"`` (default), ``"sentence-transformers"`` or ``"onnx"``; see
        :func:`~evalsuite.retrievers.encoders.load_encoder`. For the default model ``"auto"``
        is an fp32 ONNX export run with ONNX Runtime: the same vectors as
        sentence-transformers (cosine >= 0.99999), about twice as fast on CPU.
    index:
        ``"flat"`` (exact), ``"hnsw"`` or ``"ivf"``.
    m, ef_construction, ef_search:
        HNSW parameters (links per node; candidate list sizes when building / searching).
    nlist, nprobe:
        IVF parameters: cells (``None``: ``4 * sqrt(docs)``, capped at ``docs // 39``) and
        cells visited per query (capped at ``nlist``).
    query_prompt, document_prompt:
        Text prepended to queries / documents (e.g. ``"query: "`` / ``"passage: "``);
        ``None``: the model's own configured prompts, if any; ``""``: none.
    dim:
        Keep the first ``dim`` components (Matryoshka models), re-normalised.
    similarity:
        ``"cosine"`` (normalised vectors, inner product) or ``"dot"`` (raw inner product,
        for models trained with it).
    batch_size:
        Texts per forward pass (16: on CPU, smaller length-sorted batches pad less; measured
        in ``bench/encoding.py``).
    max_length:
        Token limit; ``None``: the model's own.
    precision:
        ``"float32"``, or ``"bfloat16"`` (sentence-transformers backend; faster on CPUs with
        BF16 support, not exact: opt-in).
    threads:
        ONNX Runtime threads (``None``: one per core).
    device:
        Torch device for the sentence-transformers backend.
    revision:
        Hub revision of a hub id.
    cache, cache_dir:
        Cache vectors on disk (``True``: in ``cache_dir/embeddings`` or the default cache
        folder; an :class:`EmbeddingCache`: there; ``False``: no cache).
    export_dir:
        Where ONNX exports are kept (default: ``cache_dir/onnx``, else the default cache folder).
    progress:
        tqdm progress bars while encoding; ``None``: only when stderr is a terminal.
    name:
        Name of the produced runs.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | Encoder = DEFAULT_MODEL,
        *,
        backend: Backend = "auto",
        index: IndexKind = "flat",
        m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
        nlist: int | None = None,
        nprobe: int = 16,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        dim: int | None = None,
        similarity: Similarity = "cosine",
        batch_size: int = 16,
        max_length: int | None = None,
        precision: Precision = "float32",
        threads: int | None = None,
        device: str = "cpu",
        revision: str | None = None,
        cache: bool | EmbeddingCache = True,
        cache_dir: str | os.PathLike[str] | None = None,
        export_dir: str | os.PathLike[str] | None = None,
        progress: bool | None = None,
        name: str = "dense",
    ) -> None:
        if index not in ("flat", "hnsw", "ivf"):
            raise ConfigError(f"index must be 'flat', 'hnsw' or 'ivf', got {index!r}")
        if similarity not in ("cosine", "dot"):
            raise ConfigError(f"similarity must be 'cosine' or 'dot', got {similarity!r}")
        for what, value in (("m", m), ("ef_construction", ef_construction), ("ef_search", ef_search),
                            ("nprobe", nprobe), ("batch_size", batch_size)):
            _check_positive(what, value)
        if nlist is not None:
            _check_positive("nlist", nlist)
        if progress is not None and not isinstance(progress, bool):
            raise ConfigError(f"progress must be True, False or None, got {progress!r}")
        self.index_kind = index
        self.m, self.ef_construction, self.ef_search = m, ef_construction, ef_search
        self.nlist, self.nprobe = nlist, nprobe
        self.similarity = similarity
        self.batch_size = batch_size
        self.progress = progress
        self._cache = _make_cache(cache, cache_dir)
        options: dict[str, object] = {
            "backend": backend, "query_prompt": query_prompt, "document_prompt": document_prompt, "dim": dim,
            "max_length": max_length, "precision": precision, "threads": threads, "device": device,
            "revision": revision, "export_dir": export_dir}
        if isinstance(model, (str, os.PathLike)):
            if export_dir is None and cache_dir is not None:
                export_dir = Path(cache_dir) / "onnx"
            self.encoder: Encoder = load_encoder(
                model, backend=backend, query_prompt=query_prompt, document_prompt=document_prompt, dim=dim,
                max_length=max_length, normalize=similarity == "cosine", precision=precision, device=device,
                threads=threads, revision=revision, export_dir=export_dir)
        elif isinstance(model, Encoder):
            defaults: dict[str, object] = {"backend": "auto", "precision": "float32", "device": "cpu"}
            changed = sorted(k for k, v in options.items() if v != defaults.get(k))
            if changed:
                raise ConfigError(f"{', '.join(changed)} cannot be set when model is an Encoder instance; "
                                  "build the encoder with them")
            if similarity == "cosine" and model.fingerprint.get("normalize") is False:
                raise ConfigError(f"similarity='cosine' needs normalised vectors, but encoder {model.name!r} was "
                                  "built with normalize=False; build it with normalize=True or use similarity='dot'")
            self.encoder = model
        else:
            raise ConfigError(f"model must be a name, a path or an Encoder, got {type(model).__name__}")
        self.meta = RetrieverMeta(
            name=name,
            kind="dense",
            label=self._label(),
            model=self.encoder.name,
            model_fingerprint=str(self.encoder.fingerprint.get("weights") or self.encoder.fingerprint),
            params={
                "encoder": dict(self.encoder.fingerprint),
                "index": index,
                "similarity": similarity,
                "batch_size": batch_size,
                **({"m": m, "ef_construction": ef_construction, "ef_search": ef_search} if index == "hnsw" else {}),
                **({"nlist": nlist if nlist is not None else "auto", "nprobe": nprobe} if index == "ivf" else {}),
            },
        )
        self.stats: dict[str, float] = {}
        self.embed_stats: dict[str, float] = {}
        #: where encoding and search run: ``None`` in this process; an executor of
        #: :mod:`evalsuite.executors` (set by the runner for ``executor: ray``) sends uncached
        #: texts to its workers and shards the index over them
        self.executor: Any = None
        self._faiss: FaissIndex | None = None
        self._faiss_index: Any = None  # the FAISS object of ``_faiss``
        self._shards: Any = None
        self._dim = 0
        self._doc_ids: NDArray[np.object_] | None = None
        self._id_rank: NDArray[np.int64] | None = None

    # -- description -------------------------------------------------------------------------------

    def _label(self) -> str:
        encoder = self.encoder
        short = encoder.name.rstrip("/").rsplit("/", 1)[-1]
        if isinstance(encoder, ExportedOnnxEncoder):
            engine = "ONNX Runtime, fp32 export"
        elif isinstance(encoder, OnnxEncoder):
            engine = "ONNX Runtime"
        elif isinstance(encoder, SentenceTransformerEncoder):
            engine = "sentence-transformers" + (", bfloat16" if encoder.precision == "bfloat16" else "")
        else:
            engine = type(encoder).__name__
        fingerprint = encoder.fingerprint
        if fingerprint.get("dim"):
            engine += f", dim {fingerprint['dim']}"
        prompts = fingerprint.get("prompts")
        if isinstance(prompts, dict) and any(prompts.values()):
            engine += ", prompts " + " / ".join(f"{k} {v!r}" for k, v in prompts.items() if v)
        measure = "cosine" if self.similarity == "cosine" else "inner product"
        if self.index_kind == "flat":
            search = f"exact {measure}"
        elif self.index_kind == "hnsw":
            search = f"HNSW {measure} (M={self.m}, efConstruction={self.ef_construction}, efSearch={self.ef_search})"
        else:
            search = f"IVF {measure} (nlist={self.nlist or 'auto'}, nprobe={self.nprobe})"
        return f"{short} ({engine}), {search}"

    def _show_progress(self) -> bool:
        return sys.stderr.isatty() if self.progress is None else self.progress

    # -- encoding ----------------------------------------------------------------------------------

    def _encode(self, texts: Sequence[str], kind: Kind) -> tuple[NDArray[np.float32], CacheStats, int]:
        """Vectors of ``texts`` (cached), the cache counters and the number of cached rows
        that were well-formed by checksum but not vectors of this encoder (re-encoded)."""
        fingerprint = {**fingerprint_for(self.encoder, kind), "format": "float32 vector"}

        def encode(batch: list[str]) -> list[NDArray[np.float32]]:
            if self.executor is not None:  # uncached texts only: cached_encode asks for nothing else
                return list(self.executor.encode(EncoderJob(self.encoder, kind, self.batch_size), batch))
            vectors = self.encoder.encode(batch, kind=kind, batch_size=self.batch_size,
                                          show_progress=self._show_progress())
            return list(vectors)

        rows, stats = cached_encode(texts, encode, cache=self._cache, fingerprint=fingerprint,
                                    chunk_size=getattr(self.executor, "encode_chunk_size", 4096),
                                    timing=runtime_settings(self.encoder, batch_size=self.batch_size))
        invalid = _invalid_rows(rows)
        if invalid:  # never serve them: encode again and overwrite the cache entries
            fresh = encode([texts[i] for i in invalid])
            for i, vector in zip(invalid, fresh):
                rows[i] = vector
            if self._cache is not None:
                from evalsuite.retrievers.cache import text_key

                self._cache.put_many_or_warn(fingerprint, {text_key(texts[i]): rows[i] for i in invalid})
            if _invalid_rows(rows):
                raise RuntimeError(f"encoder {self.encoder.name!r} returned vectors of differing shapes or "
                                   "non-finite values")
        if not rows:
            return np.zeros((0, 0), dtype=np.float32), stats, 0
        return np.ascontiguousarray(np.stack(rows), dtype=np.float32), stats, len(invalid)

    def embed(self, texts: Sequence[str], *, kind: Kind = "query") -> NDArray[np.float32]:
        """Vectors of ``texts`` encoded as ``kind``, through the embedding cache (used for STS
        tasks, so that a re-run encodes nothing); counters in :attr:`embed_stats`."""
        vectors, cstats, invalid = self._encode(list(texts), kind)
        self.embed_stats = {"encoded": float(cstats.encoded), "from_cache": float(cstats.hits),
                            "cache_invalid_reencoded": float(invalid)}
        return vectors

    # -- index / search ----------------------------------------------------------------------------

    def index(self, corpus: Corpus) -> None:
        """Encode every document (title + " " + text) and build the FAISS index."""
        if len(corpus) == 0:
            raise DataError(f"retriever {self.meta.name!r}: the corpus is empty")
        began = time.perf_counter()
        vectors, cstats, invalid = self._encode(corpus.contents(), "document")
        build_began = time.perf_counter()
        n, d = vectors.shape
        self.stats = {
            "docs": float(n),
            "dim": float(d),
            "docs_encoded": float(cstats.encoded),
            "docs_from_cache": float(cstats.hits),
            "cache_corrupt_dropped": float(cstats.corrupt),
            "cache_invalid_reencoded": float(invalid),
            "encode_seconds": cstats.seconds_encoding,
        }
        self._doc_ids = corpus.ids
        self._id_rank = _id_rank(corpus.ids)
        self._close_shards()
        if self.executor is not None:  # sharded over the executor's workers (evalsuite.executors)
            self._shards = self.executor.dense_index(vectors, self._id_rank, self.index_spec, name=self.meta.name)
            self._faiss = self._faiss_index = None
            self.stats.update(self._shards.stats)
        else:
            self._faiss = FaissIndex(vectors, self.index_spec, name=self.meta.name)
            self._faiss_index = self._faiss.index
            if self.index_kind == "ivf":
                self.stats.update({"ivf_nlist": float(self._faiss.nlist), "ivf_nprobe": float(self._faiss.nprobe)})
        self._dim = d
        now = time.perf_counter()
        self.stats.update({"index_build_seconds": now - build_began, "index_seconds": now - began})

    @property
    def index_spec(self) -> IndexSpec:
        """The FAISS index parameters of this retriever (shared with sharded indexes)."""
        return IndexSpec(kind=self.index_kind, m=self.m, ef_construction=self.ef_construction,
                         ef_search=self.ef_search, nlist=self.nlist, nprobe=self.nprobe)

    def _close_shards(self) -> None:
        if self._shards is not None:
            self._shards.close()
            self._shards = None

    def search(self, queries: Queries, *, k: int = 100) -> Run:
        """Top ``k`` documents per query (at most the corpus size), by cosine or inner product."""
        k = check_k(k)
        if (self._faiss is None and self._shards is None) or self._doc_ids is None or self._id_rank is None:
            raise ConfigError(f"retriever {self.meta.name!r}: call index(corpus) before search()")
        began = time.perf_counter()
        texts = [str(t) for t in queries.texts.tolist()]
        vectors, cstats, invalid = self._encode(texts, "query")
        width = min(k, len(self._doc_ids))
        search_began = time.perf_counter()
        if len(texts):
            if vectors.shape[1] != self._dim:
                raise ConfigError(f"retriever {self.meta.name!r}: query vectors have {vectors.shape[1]} dimensions, "
                                  f"the index {self._dim}")
            if self._shards is not None:
                indices, scores = self._shards.top(vectors, width)
            else:
                assert self._faiss is not None
                indices, scores = self._faiss.top(vectors, width, self._id_rank)
        else:
            indices, scores = np.zeros((0, width), np.int64), np.zeros((0, width), np.float32)
        now = time.perf_counter()
        self.stats.update({
            "queries": float(len(texts)),
            "queries_encoded": float(cstats.encoded),
            "queries_from_cache": float(cstats.hits),
            "query_cache_corrupt_dropped": float(cstats.corrupt),
            "query_cache_invalid_reencoded": float(invalid),
            "query_encode_seconds": cstats.seconds_encoding,
            "faiss_search_seconds": now - search_began,
            "search_seconds": now - began,
        })
        return Run.from_topk(queries.ids, self._doc_ids, indices, scores, name=self.meta.name)

# -- FAISS index ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexSpec:
    """How a FAISS index is built and searched: the dense retriever's index parameters (see
    :class:`DenseRetriever`); picklable, so that workers build shards the same way."""

    kind: IndexKind = "flat"
    m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    nlist: int | None = None
    nprobe: int = 16


class FaissIndex:
    """A FAISS inner-product index over float32 rows, searched in the evaluation's ranking order.

    Used by :class:`DenseRetriever` for its whole corpus and by sharded executors for one
    shard each (:mod:`evalsuite.executors`), so that both build and rank the same way.
    """

    def __init__(self, vectors: NDArray[np.float32], spec: IndexSpec, *, name: str = "dense") -> None:
        faiss = require("faiss", package="faiss-cpu", extra="dense", purpose="the dense retriever")
        n, d = vectors.shape
        self.spec = spec
        self.n, self.d = n, d
        self.nlist = self.nprobe = 0
        self.quantizer: Any = None  # an IVF index's coarse quantizer (kept alive with it)
        if spec.kind == "flat":
            index = faiss.IndexFlatIP(d)
        elif spec.kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, spec.m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = spec.ef_construction
        else:
            wanted = spec.nlist if spec.nlist is not None else max(1, round(4 * float(np.sqrt(n))))
            self.nlist = max(1, min(wanted, n // _MIN_POINTS_PER_CELL))
            if spec.nlist is not None and self.nlist < spec.nlist:
                warnings.warn(
                    f"retriever {name!r}: nlist={spec.nlist} needs at least "
                    f"{spec.nlist * _MIN_POINTS_PER_CELL} documents to train; {n} documents give "
                    f"nlist={self.nlist}", UserWarning, stacklevel=3)
            self.nprobe = min(spec.nprobe, self.nlist)
            self.quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(self.quantizer, d, self.nlist, faiss.METRIC_INNER_PRODUCT)
            # the cap above keeps >= 39 points per cell whenever the corpus allows; below 39
            # documents (one cell) FAISS would still print its "provide more points" warning
            index.cp.min_points_per_centroid = 1
            index.train(vectors)
        index.add(vectors)
        self.index = index

    def search(self, vectors: NDArray[np.float32], depth: int) -> tuple[NDArray[Any], NDArray[Any]]:
        """FAISS's ``depth`` nearest rows per query: (scores float32, row indices; -1: none)."""
        faiss = require("faiss", package="faiss-cpu", extra="dense", purpose="the dense retriever")
        params = None
        if self.spec.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(self.spec.ef_search, depth))
        elif self.spec.kind == "ivf":
            params = faiss.SearchParametersIVF(nprobe=self.nprobe)
        scores, indices = self.index.search(vectors, depth, params=params)
        return np.asarray(scores, dtype=np.float32), np.asarray(indices, dtype=np.int64)

    def top(self, vectors: NDArray[np.float32], width: int,
            id_rank: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """The ``width`` best rows per query in ranking order (score descending at float32, then
        doc id descending: ``id_rank`` is each row's rank in doc-id order), fetching more
        candidates where rows tie at the cut-off. Missing rows (fewer found): index -1."""
        return top_with_ties(self.search, vectors, width, id_rank)


# -- helpers -------------------------------------------------------------------------------------


def top_with_ties(search: Callable[[NDArray[Any], int], tuple[NDArray[Any], NDArray[Any]]], vectors: NDArray[Any],
                  width: int, id_rank: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The ``width`` best documents per query in ranking order (score descending at float32,
    then doc id descending), fetching more candidates where documents tie at the cut-off.

    ``search(vectors, depth)`` returns (scores, indices) of the ``depth`` best documents per
    row, best first, index -1 for none (a FAISS index's search, scores made "higher is better");
    used by :class:`FaissIndex` and by the sweep's quantized indexes.
    """
    n_docs = len(id_rank)
    out_idx = np.full((len(vectors), width), -1, dtype=np.int64)
    out_val = np.zeros((len(vectors), width), dtype=np.float32)
    pending = np.arange(len(vectors))
    depth = min(n_docs, width + _TIE_MARGIN)
    while len(pending) and width:
        scores, indices = search(vectors[pending], depth)
        valid = indices >= 0
        keys = np.where(valid, scores, -np.inf).astype(np.float32)
        rank = np.where(valid, id_rank[np.where(valid, indices, 0)], -1)
        order = np.lexsort((-rank, -keys), axis=-1)[:, :width]
        top_idx = np.take_along_axis(np.where(valid, indices, -1), order, axis=-1)
        top_val = np.take_along_axis(np.where(valid, scores, 0.0), order, axis=-1)
        # a tie between the k-th score and the last candidate may continue beyond it
        last = keys[:, depth - 1]
        kth = np.take_along_axis(keys, order[:, width - 1:width], axis=-1)[:, 0]
        unresolved = (depth < n_docs) & valid[:, depth - 1] & (last == kth)
        done = ~unresolved
        out_idx[pending[done]] = top_idx[done]
        out_val[pending[done]] = top_val[done]
        pending = pending[unresolved]
        depth = min(n_docs, depth * 2)
    return out_idx, out_val


def _invalid_rows(rows: Sequence[Any]) -> list[int]:
    """Positions of rows that are not finite float32 vectors of the common length."""
    shapes = Counter(r.shape for r in rows if isinstance(r, np.ndarray) and r.ndim == 1)
    if not shapes:
        return list(range(len(rows)))
    shape = shapes.most_common(1)[0][0]
    return [i for i, r in enumerate(rows)
            if not (isinstance(r, np.ndarray) and r.shape == shape and r.dtype == np.float32
                    and bool(np.isfinite(r).all()))]
