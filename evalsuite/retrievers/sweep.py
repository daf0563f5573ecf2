"""A quality/cost sweep over one dense retriever: Matryoshka dims x precision x rescoring x index.

Declared on a retriever of a suite::

    retrievers:
      - name: minilm
        type: dense
        sweep:
          dim: [384, 256, 128, 64]              # Matryoshka truncation (renormalised)
          precision: [float32, int8, ubinary]   # int8: calibrated scalar quantization; ubinary: packed bits
          rescore: [1, 4]                       # int8/ubinary: re-score the top k*r (float32 query vs int8 docs)
          index: [flat, {hnsw: {M: 16, ef_search: [32, 128]}}, {ivf: {nlist: 64, nprobe: [4, 16]}}]
          encoder: [fp32, int8, bf16]           # optional: encoder builds (see below)

Every point of the grid becomes a system of the suite, named so that a reader understands it:
``minilm@128/int8/hnsw-M16-ef128``, ``minilm@384/ubinary+rescore4/flat``,
``minilm~onnx-int8@384/float32/flat``. All points of one encoder derive from **one** float32
encoding of the corpus and the queries (through the embedding cache, held in memory for the
sweep): a 100-point sweep encodes the corpus once.

What each axis does, exactly:

* ``dim``: keep the first ``dim`` components of every vector and L2-normalise again
  (Matryoshka truncation; cosine similarity stays an inner product).
* ``precision``:
  ``float32`` -- the vectors as they are (FAISS ``IndexFlatIP`` / ``IndexHNSWFlat`` /
  ``IndexIVFFlat``);
  ``int8`` -- sentence-transformers ``quantize_embeddings(..., "int8")`` with per-dimension
  ranges calibrated on the corpus's own vectors; queries are quantized with the same ranges and
  scored against the documents as int8 x int8 inner products, held by a FAISS scalar quantizer
  that stores the int8 codes as they are (``QT_8bit_direct_signed``: ``IndexScalarQuantizer``,
  ``IndexHNSWSQ``, ``IndexIVFScalarQuantizer`` without residuals), 1 byte per dimension;
  ``ubinary`` -- ``quantize_embeddings(..., "ubinary")`` (one bit per dimension, > 0, packed)
  searched by Hamming distance with FAISS ``IndexBinaryFlat`` / ``IndexBinaryHNSW`` /
  ``IndexBinaryIVF``; the score is ``dim - 2 * hamming`` (the inner product of the +-1 vectors).
* ``rescore`` r (int8 and ubinary only; float32 has nothing to re-score): the first stage
  returns the top ``k * r`` documents (ties at the cut-off broken by doc id, as everywhere),
  which are re-scored with the float32 query against the int8 document vectors (dequantized to
  the centre of their bucket) and re-ranked; the top ``k`` are kept. The int8 vectors are kept
  for that (``rescore_bytes_per_doc`` in the costs; they could live on disk).
* ``index``: ``flat`` (exhaustive), ``{hnsw: {M, ef_search, ef_construction}}`` (efSearch is
  raised to the search depth when smaller, as the dense retriever does), ``{ivf: {nlist,
  nprobe}}`` (nlist capped at docs // 39, as the dense retriever does; ``nprobe`` capped at it).
  ``ef_search`` and ``nprobe`` may be lists.
* ``encoder``: ``fp32`` (the retriever's own encoder: for a sentence-transformers model on CPU,
  its fp32 ONNX export), ``int8`` (that export dynamically quantized by onnxruntime
  ``quantize_dynamic``), ``bf16`` (sentence-transformers in bfloat16; only where the CPU
  computes bfloat16 natively, else left out with a note). Each encoder encodes the corpus once.

Costs (:mod:`evalsuite.retrievers.cost`): a point's index is measured by serialising its FAISS
index; its query latency is the query's encoding (measured once per encoder, uncached) plus the
point's own search (truncation, quantization, FAISS, rescoring). Each point also measures
exhaustive search at two corpus sizes (the corpus and the corpus plus 9x as many random
vectors of the same precision), from which :mod:`evalsuite.tradeoffs` extrapolates.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from evalsuite._optional import require
from evalsuite.errors import ConfigError, DataError
from evalsuite.retrievers._common import id_rank as _id_rank
from evalsuite.retrievers.base import RetrieverMeta, check_k
from evalsuite.types import Corpus, Queries, Run

__all__ = ["IndexSpec", "PointSpec", "SharedEncoding", "SweepPoint", "expand_sweep", "parse_sweep",
           "sweep_summaries"]

Precision = Literal["float32", "int8", "ubinary"]
EncoderBuild = Literal["fp32", "int8", "bf16"]
PRECISIONS: tuple[str, ...] = ("float32", "int8", "ubinary")
ENCODERS: tuple[str, ...] = ("fp32", "int8", "bf16")
_AXES = ("dim", "precision", "rescore", "index", "encoder")
_MIN_POINTS_PER_CELL = 39  # as the dense retriever: k-means needs ~39 points per cell
#: corpus size multiplier of the second exhaustive-search timing (random vectors added)
SCALE_FACTOR = 10
_SCALE_QUERIES = 32
_SCALE_MIN_VECTORS = 10_000
_SCALE_MAX_VECTORS = 200_000


@dataclass(frozen=True)
class IndexSpec:
    """One index configuration of the grid."""

    kind: Literal["flat", "hnsw", "ivf"]
    m: int = 16
    ef_search: int = 128
    ef_construction: int = 200
    nlist: int = 64
    nprobe: int = 16

    @property
    def label(self) -> str:
        if self.kind == "hnsw":
            return f"hnsw-M{self.m}-ef{self.ef_search}"
        if self.kind == "ivf":
            return f"ivf-nlist{self.nlist}-np{self.nprobe}"
        return "flat"


@dataclass(frozen=True)
class PointSpec:
    """One point of the grid: encoder build, dim (None: full), precision, rescore, index."""

    dim: int | None
    precision: str
    rescore: int
    index: IndexSpec
    encoder: str = "fp32"

    def name(self, base: str, full_dim: int | None = None) -> str:
        """``base[~encoder]@dim/precision[+rescoreR]/index``."""
        enc = "" if self.encoder == "fp32" else {"int8": "~onnx-int8", "bf16": "~bf16"}[self.encoder]
        dim = self.dim if self.dim is not None else (full_dim if full_dim is not None else "full")
        rescore = f"+rescore{self.rescore}" if self.rescore > 1 else ""
        return f"{base}{enc}@{dim}/{self.precision}{rescore}/{self.index.label}"


def _ints(value: Any, what: str) -> list[int]:
    values = value if isinstance(value, list) else [value]
    if not values or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values):
        raise ConfigError(f"sweep: {what} must be a positive integer or a list of them, got {value!r}")
    return list(dict.fromkeys(values))


def _index_specs(entry: Any) -> list[IndexSpec]:
    if entry == "flat":
        return [IndexSpec("flat")]
    if isinstance(entry, str) and entry in ("hnsw", "ivf"):
        entry = {entry: {}}
    if not (isinstance(entry, Mapping) and len(entry) == 1 and next(iter(entry)) in ("hnsw", "ivf", "flat")):
        raise ConfigError(f"sweep: index entries are 'flat', {{hnsw: {{M, ef_search, ef_construction}}}} or "
                          f"{{ivf: {{nlist, nprobe}}}}, got {entry!r}")
    kind, options = next(iter(entry.items()))
    options = dict(options or {})
    if kind == "flat":
        if options:
            raise ConfigError(f"sweep: a flat index has no options, got {options!r}")
        return [IndexSpec("flat")]
    allowed = {"hnsw": ("M", "ef_search", "ef_construction"), "ivf": ("nlist", "nprobe")}[kind]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"sweep: {kind} has no option {unknown[0]!r}{hint} (options: {', '.join(allowed)})")
    if kind == "hnsw":
        return [IndexSpec("hnsw", m=m, ef_search=ef, ef_construction=efc)
                for m in _ints(options.get("M", 16), "hnsw M")
                for efc in _ints(options.get("ef_construction", 200), "hnsw ef_construction")
                for ef in _ints(options.get("ef_search", 128), "hnsw ef_search")]
    return [IndexSpec("ivf", nlist=nl, nprobe=np_)
            for nl in _ints(options.get("nlist", 64), "ivf nlist")
            for np_ in _ints(options.get("nprobe", 16), "ivf nprobe")]


def parse_sweep(raw: Any) -> list[PointSpec]:
    """The points of a ``sweep:`` mapping (see the module docstring), in grid order; float32
    points are not repeated for ``rescore`` > 1 (there is nothing to re-score)."""
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"sweep must be a mapping of axes ({', '.join(_AXES)}), got {raw!r}")
    unknown = sorted(set(raw) - set(_AXES))
    if unknown:
        import difflib

        close = difflib.get_close_matches(str(unknown[0]), _AXES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"sweep has no axis {unknown[0]!r}{hint} (axes: {', '.join(_AXES)})")

    def listed(key: str, default: list[Any]) -> list[Any]:
        value = raw.get(key, default)
        value = value if isinstance(value, list) else [value]
        if not value:
            raise ConfigError(f"sweep: {key} is an empty list")
        return value

    dims: list[int | None] = [None] if "dim" not in raw else list(_ints(raw["dim"], "dim"))
    precisions = listed("precision", ["float32"])
    for p in precisions:
        if p not in PRECISIONS:
            raise ConfigError(f"sweep: precision must be one of {', '.join(PRECISIONS)}, got {p!r}")
    rescores = _ints(raw.get("rescore", 1), "rescore")
    encoders = listed("encoder", ["fp32"])
    for e in encoders:
        if e not in ENCODERS:
            raise ConfigError(f"sweep: encoder must be one of {', '.join(ENCODERS)}, got {e!r}")
    indexes = [spec for entry in listed("index", ["flat"]) for spec in _index_specs(entry)]
    points = []
    for enc, dim, precision, rescore, index in itertools.product(
            dict.fromkeys(encoders), dims, dict.fromkeys(precisions), rescores, dict.fromkeys(indexes)):
        if precision == "float32" and rescore > 1:
            continue
        if precision == "ubinary" and dim is not None and dim % 8:
            raise ConfigError(f"sweep: ubinary packs 8 dimensions per byte; dim {dim} is not a multiple of 8")
        points.append(PointSpec(dim, precision, rescore, index, enc))
    return list(dict.fromkeys(points))


# -- the shared encoding -------------------------------------------------------------------------


def _texts_key(texts: Sequence[str]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for t in texts:
        digest.update(t.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


class SharedEncoding:
    """The float32 vectors of one encoder, computed once (via the dense retriever's embedding
    cache) and held in memory for every point of a sweep; counts what it encoded."""

    def __init__(self, dense: Any, label: str = "fp32", note: str | None = None) -> None:
        self.dense = dense
        self.label = label
        self.note = note
        self._rows: dict[str, dict[str, NDArray[np.float32]]] = {"document": {}, "query": {}}
        self.scaling: dict[tuple[int, str], dict[str, Any]] = {}
        self._latency: dict[str, tuple[list[float], float]] = {}
        self.encoded = {"document": 0, "query": 0}
        self.from_cache = {"document": 0, "query": 0}
        self.encode_seconds = {"document": 0.0, "query": 0.0}

    @property
    def full_dim(self) -> int:
        return int(self.dense.encoder.dim)

    def vectors(self, texts: Sequence[str], kind: str) -> NDArray[np.float32]:
        """Float32 vectors of ``texts``: from memory, else through the embedding cache / encoder."""
        rows = self._rows[kind]
        missing = list(dict.fromkeys(t for t in texts if t not in rows))
        if missing:
            began = time.perf_counter()
            vectors = self.dense.embed(missing, kind=kind)
            seconds = time.perf_counter() - began
            stats = self.dense.embed_stats
            self.encoded[kind] += int(stats.get("encoded", 0))
            self.from_cache[kind] += int(stats.get("from_cache", 0))
            if stats.get("encoded", 0):
                self.encode_seconds[kind] += seconds
            for t, v in zip(missing, np.asarray(vectors, dtype=np.float32)):
                rows[t] = v
        return np.ascontiguousarray(np.stack([rows[t] for t in texts]), dtype=np.float32)

    def query_encode_costs(self, texts: Sequence[str]) -> tuple[list[float], float]:
        """Per-query encoding ms (one text at a time) and one batch's seconds, uncached, once."""
        key = _texts_key(texts)
        if key not in self._latency:
            encoder, batch_size = self.dense.encoder, self.dense.batch_size
            encoder.encode(list(texts[:2]) or ["warm-up"], kind="query", batch_size=batch_size)  # load, warm up
            one = []
            for t in texts:
                began = time.perf_counter()
                encoder.encode([t], kind="query", batch_size=batch_size)
                one.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            encoder.encode(list(texts), kind="query", batch_size=batch_size)
            self._latency[key] = (one, time.perf_counter() - began)
        return self._latency[key]


# -- one point --------------------------------------------------------------------------------------


def _truncate(vectors: NDArray[np.float32], dim: int | None, normalize: bool) -> NDArray[np.float32]:
    """The first ``dim`` components, L2-normalised again (cosine); all of them: unchanged (the
    encoder's vectors, bit for bit, so that the full float32 point is the dense retriever)."""
    if dim is None or dim >= vectors.shape[1]:
        return np.ascontiguousarray(vectors, dtype=np.float32)
    out = vectors[:, :dim]
    if normalize:
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out = out / np.maximum(norms, np.float32(1e-12))
    return np.ascontiguousarray(out, dtype=np.float32)


def _quantize(vectors: NDArray[np.float32], precision: str, ranges: NDArray[np.float32] | None = None) -> Any:
    from sentence_transformers.util.quantization import quantize_embeddings

    if precision == "int8":
        return quantize_embeddings(vectors, precision="int8", ranges=ranges)
    return quantize_embeddings(vectors, precision="ubinary")


def dequantize_int8(codes: NDArray[np.int8], ranges: NDArray[np.float32]) -> NDArray[np.float32]:
    """The centre of each int8 code's bucket under sentence-transformers' int8 quantization
    (``floor((x - min) / step) - 128`` with ``step = (max - min) / 255``)."""
    starts = ranges[0].astype(np.float32)
    steps = (ranges[1] - ranges[0]).astype(np.float32) / np.float32(255)
    steps = np.where(steps == 0, np.float32(1), steps)
    return ((codes.astype(np.float32) + np.float32(128.5)) * steps + starts).astype(np.float32)


def _build_index(faiss: Any, precision: str, spec: IndexSpec, data: NDArray[Any],
                 d: int) -> tuple[Any, int, int, Any]:
    """A FAISS index over ``data`` (float32 vectors, int8 codes as float32, or packed bits),
    with (nlist, nprobe) as used for IVF and the coarse quantizer (kept alive by the caller)."""
    nlist = max(1, min(spec.nlist, len(data) // _MIN_POINTS_PER_CELL)) if spec.kind == "ivf" else 0
    nprobe = min(spec.nprobe, nlist) if spec.kind == "ivf" else 0
    ip = faiss.METRIC_INNER_PRODUCT
    quantizer = None
    if precision == "ubinary":
        if spec.kind == "flat":
            index = faiss.IndexBinaryFlat(d)
        elif spec.kind == "hnsw":
            index = faiss.IndexBinaryHNSW(d, spec.m)
            index.hnsw.efConstruction = spec.ef_construction
        else:
            quantizer = faiss.IndexBinaryFlat(d)
            index = faiss.IndexBinaryIVF(quantizer, d, nlist)
            index.cp.min_points_per_centroid = 1
    else:
        sq = faiss.ScalarQuantizer.QT_8bit_direct_signed
        if spec.kind == "flat":
            index = faiss.IndexFlatIP(d) if precision == "float32" else faiss.IndexScalarQuantizer(d, sq, ip)
        elif spec.kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, spec.m, ip) if precision == "float32" else \
                faiss.IndexHNSWSQ(d, sq, spec.m, ip)
            index.hnsw.efConstruction = spec.ef_construction
        else:
            quantizer = faiss.IndexFlatIP(d)
            if precision == "float32":
                index = faiss.IndexIVFFlat(quantizer, d, nlist, ip)
            else:
                index = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, sq, ip)
                index.by_residual = False  # the codes are the int8 vectors themselves
            index.cp.min_points_per_centroid = 1
    if not index.is_trained:
        index.train(data)
    index.add(data)
    return index, nlist, nprobe, quantizer


@dataclass
class _Built:
    index: Any
    codes: NDArray[np.int8] | None  # int8 document vectors kept for rescoring
    ranges: NDArray[np.float32] | None
    doc_ids: NDArray[np.object_]
    id_rank: NDArray[np.int64]
    dim: int
    nlist: int = 0
    nprobe: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class SweepPoint:
    """One point of a sweep as a retriever (see the module docstring)."""

    def __init__(self, name: str, spec: PointSpec, shared: SharedEncoding) -> None:
        self.spec = spec
        self.shared = shared
        dense = shared.dense
        self.encoder = dense.encoder  # what the point runs per query (model size in the costs)
        self.similarity = dense.similarity
        self._built: _Built | None = None
        self._scaling: dict[str, Any] | None = None
        params = {"sweep": {"dim": spec.dim or "full", "precision": spec.precision, "rescore": spec.rescore,
                            "index": spec.index.__dict__, "encoder": spec.encoder},
                  "encoder": dict(dense.encoder.fingerprint), "similarity": dense.similarity}
        self.meta = RetrieverMeta(name=name, kind="dense", label=self._label(dense.encoder.name),
                                  model=dense.meta.model, model_fingerprint=dense.meta.model_fingerprint, params=params)
        self.stats: dict[str, float] = {}
        self.notes: list[str] = []
        self.sweep_name = name.split("@", 1)[0]
        self.left_out: dict[str, str] = {}

    def _label(self, model: str) -> str:
        spec = self.spec
        short = model.rstrip("/").rsplit("/", 1)[-1]
        parts = [f"{short} ({self.shared.label} encoder)", f"first {spec.dim} dims renormalised" if spec.dim
                 else "all dims",
                 {"float32": "float32 vectors", "int8": "int8 scalar-quantized (calibrated on the corpus)",
                  "ubinary": "binary (1 bit/dim, Hamming)"}[spec.precision]]
        if spec.rescore > 1:
            parts.append(f"top k*{spec.rescore} re-scored with float32 query x int8 docs")
        index = spec.index
        parts.append({"flat": "exhaustive search",
                      "hnsw": f"HNSW (M={index.m}, efSearch={index.ef_search}, efConstruction={index.ef_construction})",
                      "ivf": f"IVF (nlist={index.nlist}, nprobe={index.nprobe})"}[index.kind])
        return ", ".join(parts)

    # -- index ------------------------------------------------------------------------------------

    def index(self, corpus: Corpus) -> None:
        """Derive this point's index from the shared float32 document vectors."""
        if len(corpus) == 0:
            raise DataError(f"retriever {self.meta.name!r}: the corpus is empty")
        faiss = require("faiss", package="faiss-cpu", extra="dense", purpose="the sweep")
        began = time.perf_counter()
        encoded_before = self.shared.encoded["document"]
        full = self.shared.vectors(corpus.contents(), "document")
        encode_seconds = time.perf_counter() - began
        build_began = time.perf_counter()
        spec = self.spec
        if spec.dim is not None and spec.dim > full.shape[1]:
            raise ConfigError(f"sweep {self.meta.name!r}: dim {spec.dim} is larger than the model's "
                              f"{full.shape[1]} dimensions")
        vectors = _truncate(full, spec.dim, self.similarity == "cosine")
        d = vectors.shape[1]
        codes = ranges = None
        if spec.precision == "int8" or spec.rescore > 1:
            ranges = np.stack([vectors.min(axis=0), vectors.max(axis=0)]).astype(np.float32)
            codes = np.asarray(_quantize(vectors, "int8", ranges), dtype=np.int8)
        if spec.precision == "float32":
            data: NDArray[Any] = vectors
        elif spec.precision == "int8":
            assert codes is not None
            data = codes.astype(np.float32)
        else:
            data = np.asarray(_quantize(vectors, "ubinary"), dtype=np.uint8)
        index, nlist, nprobe, quantizer = _build_index(faiss, spec.precision, spec.index, data, d)
        self._built = _Built(index, codes if spec.rescore > 1 else None, ranges, corpus.ids, _id_rank(corpus.ids),
                             d, nlist, nprobe, {"quantizer": quantizer})
        if spec.index.kind == "ivf" and nlist < spec.index.nlist:
            self.notes = [f"IVF nlist {spec.index.nlist} capped at {nlist}: k-means needs ~{_MIN_POINTS_PER_CELL} "
                          f"documents per cell and the corpus has {len(corpus)}"]
        now = time.perf_counter()
        encoded_here = self.shared.encoded["document"] - encoded_before
        self.stats = {
            "docs": float(len(corpus)), "dim": float(d),
            "docs_encoded": float(self.shared.encoded["document"]),
            "encode_seconds": self.shared.encode_seconds["document"],
            "docs_encoded_for_this_point": float(encoded_here),
            "docs_from_cache": float(self.shared.from_cache["document"]),
            "shared_encoding_seconds": encode_seconds,
            "index_build_seconds": now - build_began,
            **({"ivf_nlist": float(nlist), "ivf_nprobe": float(nprobe)} if spec.index.kind == "ivf" else {}),
        }
        if not self.stats["docs_encoded"]:
            self.stats.pop("encode_seconds")
        self._scaling = None

    # -- search -----------------------------------------------------------------------------------

    def _first_stage(self, queries: NDArray[np.float32]) -> tuple[NDArray[Any], Any]:
        """Query vectors in the index's representation and the search function."""
        built = self._built
        assert built is not None
        spec = self.spec
        index = built.index
        if spec.precision == "int8":
            assert built.ranges is not None
            qdata: NDArray[Any] = np.asarray(_quantize(queries, "int8", built.ranges), dtype=np.int8).astype(
                np.float32)
        elif spec.precision == "ubinary":
            qdata = np.asarray(_quantize(queries, "ubinary"), dtype=np.uint8)
        else:
            qdata = queries

        def search(rows: NDArray[Any], depth: int) -> tuple[NDArray[Any], NDArray[Any]]:
            if spec.index.kind == "hnsw":
                index.hnsw.efSearch = max(spec.index.ef_search, depth)
            elif spec.index.kind == "ivf":
                index.nprobe = built.nprobe
            distances, indices = index.search(rows, depth)
            if spec.precision == "ubinary":  # Hamming distance -> inner product of the +-1 vectors
                scores = (built.dim - 2 * np.asarray(distances, dtype=np.int64)).astype(np.float32)
            else:
                scores = np.asarray(distances, dtype=np.float32)
            return scores, np.asarray(indices, dtype=np.int64)

        return qdata, search

    def search(self, queries: Queries, *, k: int = 100) -> Run:
        """Top ``k`` documents per query (first stage, then rescoring when ``rescore`` > 1)."""
        from evalsuite.retrievers.dense import top_with_ties

        k = check_k(k)
        built = self._built
        if built is None:
            raise ConfigError(f"retriever {self.meta.name!r}: call index(corpus) before search()")
        began = time.perf_counter()
        texts = [str(t) for t in queries.texts.tolist()]
        n_docs = len(built.doc_ids)
        width = min(k, n_docs)
        if not texts:
            empty = np.zeros((0, width), np.int64)
            return Run.from_topk(queries.ids, built.doc_ids, empty, empty.astype(np.float32), name=self.meta.name)
        full = self.shared.vectors(texts, "query")
        search_began = time.perf_counter()
        qf = _truncate(full, self.spec.dim, self.similarity == "cosine")
        qdata, search = self._first_stage(qf)
        depth = min(n_docs, width * self.spec.rescore)
        indices, scores = top_with_ties(search, qdata, depth, built.id_rank)
        if self.spec.rescore > 1:
            indices, scores = self._rescore(qf, indices, width)
        now = time.perf_counter()
        self.stats.update({"queries": float(len(texts)), "first_stage_depth": float(depth),
                           "search_seconds": now - began, "faiss_search_seconds": now - search_began})
        return Run.from_topk(queries.ids, built.doc_ids, indices, scores, name=self.meta.name)

    def _rescore(self, queries: NDArray[np.float32], candidates: NDArray[np.int64],
                 width: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Re-score each query's candidates with float32 query x dequantized int8 docs and keep
        the best ``width`` (score descending, then doc id descending)."""
        built = self._built
        assert built is not None and built.codes is not None and built.ranges is not None
        valid = candidates >= 0
        safe = np.where(valid, candidates, 0)
        docs = dequantize_int8(built.codes[safe], built.ranges)  # (queries, depth, dim)
        scores = np.einsum("qd,qnd->qn", queries, docs).astype(np.float32)
        keys = np.where(valid, scores, -np.inf).astype(np.float32)
        rank = np.where(valid, built.id_rank[safe], -1)
        order = np.lexsort((-rank, -keys), axis=-1)[:, :width]
        return (np.take_along_axis(np.where(valid, candidates, -1), order, axis=-1),
                np.take_along_axis(np.where(valid, scores, 0.0), order, axis=-1).astype(np.float32))

    # -- costs (evalsuite.retrievers.cost.CostAware) --------------------------------------------------

    def index_nbytes(self) -> int | None:
        """Bytes of the FAISS index (serialised); the int8 rescoring vectors are not in it."""
        if self._built is None:
            return None
        from evalsuite.retrievers.cost import _faiss_nbytes

        return _faiss_nbytes(self._built.index)

    def query_encode_costs(self, texts: Sequence[str]) -> tuple[list[float], float]:
        return self.shared.query_encode_costs(texts)

    def cost_extras(self) -> dict[str, Any]:
        """Sweep coordinates, rescoring memory and the exhaustive-search timing at two sizes."""
        built = self._built
        if built is None:
            return {}
        n = len(built.doc_ids)
        extras: dict[str, Any] = {
            "sweep": {"dim": built.dim, "precision": self.spec.precision, "rescore": self.spec.rescore,
                      "index": self.spec.index.label, "encoder": self.spec.encoder},
            "rescore_bytes_per_doc": float(built.codes.shape[1]) if built.codes is not None else 0.0,
        }
        if self.shared.note:
            extras["encoder_note"] = self.shared.note
        extras["exhaustive_search"] = self._exhaustive_scaling(n)
        return extras

    def _exhaustive_scaling(self, n: int) -> dict[str, Any]:
        """Exhaustive-search ms per query (batch of queries) at n documents and at SCALE_FACTOR * n
        (the corpus plus random vectors of the same dim and precision), for extrapolation."""
        if self._scaling is not None:
            return self._scaling
        built = self._built
        assert built is not None
        faiss = require("faiss", package="faiss-cpu", extra="dense", purpose="the sweep")
        d = built.dim
        key = (d, self.spec.precision)
        memo = self.shared.scaling
        if key in memo:
            self._scaling = memo[key]
            return self._scaling
        # at least 10,000 vectors: below that a flat search takes microseconds and the fit is noise
        small = min(max(n, _SCALE_MIN_VECTORS), _SCALE_MAX_VECTORS // SCALE_FACTOR)
        big = small * SCALE_FACTOR
        rng = np.random.default_rng(0)
        synthetic = rng.standard_normal((big, d)).astype(np.float32)
        synthetic /= np.linalg.norm(synthetic, axis=1, keepdims=True)
        queries = synthetic[:_SCALE_QUERIES]
        flat = IndexSpec("flat")
        timings = {}
        for size in (small, big):
            vectors = synthetic[:size]
            ranges = np.stack([vectors.min(axis=0), vectors.max(axis=0)]).astype(np.float32)
            if self.spec.precision == "int8":
                data: NDArray[Any] = np.asarray(_quantize(vectors, "int8", ranges), dtype=np.int8).astype(np.float32)
                qdata: NDArray[Any] = np.asarray(_quantize(queries, "int8", ranges), dtype=np.int8).astype(
                    np.float32)
            elif self.spec.precision == "ubinary":
                data = np.asarray(_quantize(vectors, "ubinary"), dtype=np.uint8)
                qdata = np.asarray(_quantize(queries, "ubinary"), dtype=np.uint8)
            else:
                data, qdata = vectors, queries
            index, _, _, _ = _build_index(faiss, self.spec.precision, flat, data, d)
            index.search(qdata[:2], 10)  # warm-up
            best = math.inf
            for _ in range(3):  # the fastest of three: the least disturbed by other load
                began = time.perf_counter()
                index.search(qdata, 10)
                best = min(best, time.perf_counter() - began)
            timings[size] = best * 1000 / len(qdata)
        self._scaling = {"docs": [small, big], "ms_per_query": [timings[small], timings[big]],
                         "queries": len(queries), "note": "flat index of this dim and precision; random "
                         "unit vectors; batch of queries, encoding not included"}
        memo[key] = self._scaling
        return self._scaling


# -- expansion -----------------------------------------------------------------------------------------


def _variant(dense: Any, build: str) -> tuple[Any, str | None]:
    """The dense retriever for an encoder build (None when this machine cannot run it) and a note."""
    from evalsuite.retrievers.dense import DenseRetriever
    from evalsuite.retrievers.encoders import ExportedOnnxEncoder, SentenceTransformerEncoder, cpu_supports_bf16

    if build == "fp32":
        return dense, None
    options = {"cache": dense._cache if dense._cache is not None else False, "batch_size": dense.batch_size,
               "similarity": dense.similarity, "progress": dense.progress}
    encoder = dense.encoder
    if build == "int8":
        if not isinstance(encoder, ExportedOnnxEncoder):
            return None, (f"encoder int8 left out: it quantizes the fp32 ONNX export of a sentence-transformers "
                          f"model, and {encoder.name!r} runs as {type(encoder).__name__}")
        return DenseRetriever(_LazyInt8(encoder), **options), "onnxruntime quantize_dynamic (QInt8 weights)"
    if not cpu_supports_bf16():
        return None, "encoder bf16 left out: this CPU has no native bfloat16 (AVX512-BF16 / AMX)"
    folder = getattr(encoder, "folder", None)
    if folder is None:
        return None, f"encoder bf16 left out: {encoder.name!r} is not a sentence-transformers model"
    fp = encoder.fingerprint
    prompts = fp.get("prompts") or {}
    st = SentenceTransformerEncoder(folder, query_prompt=prompts.get("query"), document_prompt=prompts.get("document"),
                                    dim=fp.get("dim"), max_length=fp.get("max_length"),
                                    normalize=bool(fp.get("normalize", True)), precision="bfloat16")
    return DenseRetriever(st, **options), "sentence-transformers in bfloat16 (CPU with native bfloat16)"


class _LazyInt8:
    """An int8 build of an exported encoder, made on first use (so that a suite whose
    vectors are all cached neither exports nor quantizes anything)."""

    def __init__(self, fp32: Any) -> None:
        self._fp32 = fp32
        self._inner: Any = None
        self.name = f"{fp32.name} (int8 dynamic quantization)"
        self.fingerprint = {**fp32.fingerprint, "model": self.name,
                            "quantization": "onnxruntime quantize_dynamic QInt8",
                            "weights": f"int8-of-{fp32.fingerprint.get('weights')}"}

    @property
    def dim(self) -> int:
        return int(self._fp32.dim)

    @property
    def model_path(self) -> Any:
        """The int8 ONNX file once made (for the model size in the costs)."""
        return getattr(getattr(self._inner, "source", None), "path", None)

    def _load(self) -> Any:
        if self._inner is None:
            from evalsuite.retrievers.encoders import dynamic_int8_encoder

            self._inner = dynamic_int8_encoder(self._fp32)
        return self._inner

    def encode(self, texts: Sequence[str], *, kind: str, batch_size: int = 32, show_progress: bool = False) -> Any:
        return self._load().encode(texts, kind=kind, batch_size=batch_size, show_progress=show_progress)


def expand_sweep(name: str, dense: Any, raw: Any) -> dict[str, Any]:
    """The systems of a sweep declared on the dense retriever ``dense`` named ``name``:
    point name -> :class:`SweepPoint`, in grid order. Encoder builds this machine cannot run
    are left out; their reason is in :func:`sweep_summaries`."""
    from evalsuite.retrievers.dense import DenseRetriever

    if not isinstance(dense, DenseRetriever):
        raise ConfigError(f"retriever {name!r}: sweep applies to dense retrievers (type: dense), not "
                          f"{getattr(getattr(dense, 'meta', None), 'kind', type(dense).__name__)}")
    points = parse_sweep(raw)
    shared: dict[str, SharedEncoding | None] = {}
    notes: dict[str, str] = {}
    out: dict[str, Any] = {}
    for spec in points:
        if spec.encoder not in shared:
            variant, note = _variant(dense, spec.encoder)
            shared[spec.encoder] = SharedEncoding(variant, spec.encoder, note) if variant is not None else None
            if variant is None and note:
                notes[spec.encoder] = note
        encoding = shared[spec.encoder]
        if encoding is None:
            continue
        point_name = spec.name(name, dense.encoder.dim if spec.dim is None else None)
        out[point_name] = SweepPoint(point_name, spec, encoding)
    if not out:
        raise ConfigError(f"retriever {name!r}: no sweep point can run here ({'; '.join(notes.values())})")
    for point in out.values():
        point.sweep_name = name
        point.left_out = dict(notes)
    return out


def sweep_summaries(retrievers: Mapping[str, Any]) -> list[str]:
    """One line per sweep and encoder: how many points and how many texts were encoded (the
    corpus once per encoder), and the encoder builds left out."""
    groups: dict[tuple[str, int], list[SweepPoint]] = {}
    for r in retrievers.values():
        if isinstance(r, SweepPoint):
            groups.setdefault((r.sweep_name, id(r.shared)), []).append(r)
    lines = []
    for (name, _), points in groups.items():
        shared = points[0].shared
        lines.append(f"sweep {name} ({shared.label} encoder): {len(points)} points from one encoding: "
                     f"{shared.encoded['document']} documents and {shared.encoded['query']} queries encoded, "
                     f"{shared.from_cache['document']} documents and {shared.from_cache['query']} queries from "
                     "the cache")
    for name in dict.fromkeys(n for n, _ in groups):
        first = next(r for r in retrievers.values() if isinstance(r, SweepPoint) and r.sweep_name == name)
        lines.extend(f"sweep {name}: {note}" for note in first.left_out.values())
    return lines
