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
  raised to the search depth when smaller, as the dense retriever does: see below), ``{ivf: {nlist,
  nprobe}}`` (nlist capped at docs // 39, as the dense retriever does; ``nprobe`` capped at it).
  ``ef_search`` and ``nprobe`` may be lists. FAISS HNSW returns at most efSearch candidates, so
  the search runs with ``max(ef_search, depth)``, depth = k x rescore + 8 (for ties): at k = 100
  every ef_search up to 108 is one search (up to 408 with rescore 4), and such points have
  identical results by construction; the point's notes and ``costs["hnsw_ef_search_effective"]``
  say the efSearch used, and the sweep's summary lists the points that searched alike. Choose
  ef_search values above the depth to see its effect.
* ``encoder``: ``fp32`` (the retriever's own encoder: for a sentence-transformers model on CPU,
  its fp32 ONNX export), ``int8`` (that export dynamically quantized by onnxruntime
  ``quantize_dynamic``), ``bf16`` (sentence-transformers in bfloat16; only where the CPU
  computes bfloat16 natively, else left out with a note). Each encoder encodes the corpus once.

Shared work: the truncated vectors and int8 codes are made once per dim, the packed bits once
per dim, and one FAISS index per (dim, precision, index structure); points that differ only in
ef_search, nprobe or rescore search that index (ef_search and nprobe are set per search). FAISS
runs on one thread in the sweep (see :func:`faiss_single_thread`).

Costs (:mod:`evalsuite.retrievers.cost`): a point's index is measured by serialising its FAISS
index (once per shared index); ``index_seconds`` is the work its index needs from the float32
vectors (truncation, quantization, FAISS build: counted for every point that shares it) plus
the corpus's encoding or cache read when this point did it; its query latency is the query's
encoding (measured once per encoder, uncached) plus the point's own search (truncation,
quantization, FAISS, rescoring), timed query by query for every point. Each (dim, precision) also
measures exhaustive search at two corpus sizes (random unit vectors: max(corpus, 10,000) and
10x that), from which :mod:`evalsuite.tradeoffs` extrapolates; every point of that dim and
precision (the frontier's among them) reports it.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from evalsuite._optional import require
from evalsuite.errors import ConfigError, DataError
from evalsuite.retrievers._common import id_rank as _id_rank
from evalsuite.retrievers.base import RetrieverMeta, check_k
from evalsuite.types import Corpus, Queries, Run

__all__ = ["IndexSpec", "PointSpec", "SharedEncoding", "SweepPoint", "expand_sweep", "faiss_single_thread",
           "matches_point_name", "parse_sweep", "point_names", "sweep_summaries"]

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


def point_names(name: str, raw: Any) -> list[str]:
    """The system names of the sweep ``raw`` declared on retriever ``name``, without loading the
    model: a point of the model's full dimension (no ``dim`` axis) is named with that dimension
    once the model is loaded, and is written ``@full`` here (see :func:`matches_point_name`)."""
    return [spec.name(name) for spec in parse_sweep(raw)]


def matches_point_name(wanted: str, declared: str) -> bool:
    """Whether system name ``wanted`` is ``declared`` (a name of :func:`point_names`, where
    ``@full`` stands for the model's dimension, any number)."""
    if wanted == declared:
        return True
    head, sep, tail = declared.partition("@full/")
    if not sep or not wanted.startswith(head + "@") or not wanted.endswith("/" + tail):
        return False
    return wanted[len(head) + 1:len(wanted) - len(tail) - 1].isdigit()


# -- the shared encoding -------------------------------------------------------------------------


def _texts_key(texts: Sequence[str]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for t in texts:
        digest.update(t.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass
class _Derived:
    """One dim of one corpus: the truncated float32 vectors, their corpus-calibrated int8
    codes (the int8 points' index and every point's rescoring vectors) and, made on first use,
    the packed bits; ``seconds``: the time it took (every point of this dim reports it)."""

    dim: int
    vectors: NDArray[np.float32]
    ranges: NDArray[np.float32]
    codes: NDArray[np.int8]
    seconds: float
    _data: dict[str, tuple[NDArray[Any], float]] = field(default_factory=dict)

    def data(self, precision: str) -> tuple[NDArray[Any], float]:
        """What the index of ``precision`` holds and the seconds it took to make (0 for float32
        and int8: made with the codes)."""
        if precision not in self._data:
            began = time.perf_counter()
            if precision == "float32":
                made: NDArray[Any] = self.vectors
            elif precision == "int8":
                made = self.codes.astype(np.float32)
            else:
                made = np.asarray(_quantize(self.vectors, "ubinary"), dtype=np.uint8)
            self._data[precision] = (made, time.perf_counter() - began)
        return self._data[precision]


@dataclass
class _SharedIndex:
    """A FAISS index shared by the points that differ only in ef_search / nprobe / rescore."""

    index: Any
    nlist: int
    quantizer: Any
    build_seconds: float
    built_by: str
    nbytes: int | None = None


class _CorpusSlot:
    """What every point of a sweep derives from one corpus, made once: the stacked float32
    vectors, the doc-id ranks, each dim's :class:`_Derived` and each index structure."""

    def __init__(self, key: str, full: NDArray[np.float32], id_rank: NDArray[np.int64]) -> None:
        self.key = key
        self.corpus: Corpus | None = None
        self.full = full
        self.id_rank = id_rank
        self._derived: dict[int | None, _Derived] = {}
        self._indexes: dict[tuple[Any, ...], _SharedIndex] = {}

    def derive(self, dim: int | None, normalize: bool) -> _Derived:
        if dim is not None and dim >= self.full.shape[1]:
            dim = None  # all the dimensions: the vectors as they are
        if dim not in self._derived:
            _quantize_embeddings()  # the import, untimed
            began = time.perf_counter()
            vectors = _truncate(self.full, dim, normalize)
            ranges = np.stack([vectors.min(axis=0), vectors.max(axis=0)]).astype(np.float32)
            codes = np.asarray(_quantize(vectors, "int8", ranges), dtype=np.int8)
            self._derived[dim] = _Derived(vectors.shape[1], vectors, ranges, codes, time.perf_counter() - began)
        return self._derived[dim]

    def index_for(self, faiss: Any, spec: PointSpec, derived: _Derived, data: NDArray[Any],
                  name: str) -> _SharedIndex:
        ix = spec.index
        structure = {"flat": (), "hnsw": (ix.m, ix.ef_construction), "ivf": (ix.nlist,)}[ix.kind]
        key = (derived.dim, spec.precision, ix.kind, *structure)
        if key not in self._indexes:
            began = time.perf_counter()
            index, nlist, _, quantizer = _build_index(faiss, spec.precision, ix, data, derived.dim)
            self._indexes[key] = _SharedIndex(index, nlist, quantizer, time.perf_counter() - began, name)
        return self._indexes[key]


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
        self._slot: _CorpusSlot | None = None
        self._synthetic: tuple[tuple[int, int], NDArray[np.float32]] | None = None

    def corpus_slot(self, corpus: Corpus) -> _CorpusSlot:
        """The shared derivations of ``corpus`` (one corpus held at a time: a suite's tasks run
        one after the other)."""
        if self._slot is not None and self._slot.corpus is corpus:  # the runner passes one object per task
            return self._slot
        contents = corpus.contents()
        key = _texts_key([*map(str, corpus.ids.tolist()), *contents])
        if self._slot is None or self._slot.key != key:
            self._slot = None
            self._slot = _CorpusSlot(key, self.vectors(contents, "document"), _id_rank(corpus.ids))
        self._slot.corpus = corpus
        return self._slot

    def synthetic(self, n: int, dim: int) -> NDArray[np.float32]:
        """``n`` random unit vectors of ``dim`` (seeded), for the exhaustive-search scaling;
        the last set is kept (points come dim by dim, and every precision of a dim reuses it)."""
        if self._synthetic is None or self._synthetic[0] != (n, dim):
            self._synthetic = None
            vectors = np.random.default_rng(0).standard_normal((n, dim), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            self._synthetic = ((n, dim), vectors)
        return self._synthetic[1]

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


@contextlib.contextmanager
def faiss_single_thread(faiss: Any) -> Iterator[None]:
    """Run FAISS on one OpenMP thread for the duration (the sweep's builds and searches).

    At a few thousand documents a parallel region costs more than it saves, and on a loaded
    machine it waits for a descheduled worker thread: one query against a 1,400-vector
    ``IndexBinaryFlat`` took 47 ms with two threads beside other jobs and 0.012 ms with one.
    Single-threaded search is also what ann-benchmarks times. Results do not depend on it."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


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


def _quantize_embeddings() -> Any:
    """sentence-transformers' ``quantize_embeddings`` (importing the package takes seconds: done
    before any timed step, so that no point's index time counts it)."""
    from sentence_transformers.util.quantization import quantize_embeddings

    return quantize_embeddings


def _quantize(vectors: NDArray[np.float32], precision: str, ranges: NDArray[np.float32] | None = None) -> Any:
    quantize_embeddings = _quantize_embeddings()
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
        self._shared_index: _SharedIndex | None = None
        self._index_seconds = 0.0
        self._faiss: Any = None
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
        """Derive this point's index from the shared float32 document vectors.

        The truncated vectors and their int8 codes are made once per dim, the packed bits once
        per dim, and the FAISS index once per (dim, precision, index structure): points that
        differ only in ``ef_search``, ``nprobe`` or ``rescore`` search the same index (set per
        search). Each point's ``index_seconds`` counts all the work its index needed, shared or
        not (see :meth:`cost_extras`)."""
        if len(corpus) == 0:
            raise DataError(f"retriever {self.meta.name!r}: the corpus is empty")
        faiss = self._faiss = require("faiss", package="faiss-cpu", extra="dense", purpose="the sweep")
        began = time.perf_counter()
        encoded_before = self.shared.encoded["document"]
        slot = self.shared.corpus_slot(corpus)
        encode_seconds = time.perf_counter() - began
        spec = self.spec
        full_dim = slot.full.shape[1]
        if spec.dim is not None and spec.dim > full_dim:
            raise ConfigError(f"sweep {self.meta.name!r}: dim {spec.dim} is larger than the model's "
                              f"{full_dim} dimensions")
        with faiss_single_thread(faiss):
            derived = slot.derive(spec.dim, self.similarity == "cosine")
            data, pack_seconds = derived.data(spec.precision)
            shared_index = slot.index_for(faiss, spec, derived, data, self.meta.name)
        d = derived.dim
        nprobe = min(spec.index.nprobe, shared_index.nlist) if spec.index.kind == "ivf" else 0
        self._built = _Built(shared_index.index, derived.codes if spec.rescore > 1 else None, derived.ranges,
                             corpus.ids, slot.id_rank, d, shared_index.nlist, nprobe,
                             {"quantizer": shared_index.quantizer})
        self._shared_index = shared_index
        self.notes = []
        if spec.index.kind == "ivf" and shared_index.nlist < spec.index.nlist:
            self.notes.append(f"IVF nlist {spec.index.nlist} capped at {shared_index.nlist}: k-means needs "
                              f"~{_MIN_POINTS_PER_CELL} documents per cell and the corpus has {len(corpus)}")
        # all the work this point's index needs from the float32 vectors, whoever did it first
        derive_seconds = derived.seconds + pack_seconds + shared_index.build_seconds
        self._index_seconds = encode_seconds + derive_seconds
        encoded_here = self.shared.encoded["document"] - encoded_before
        self.stats = {
            "docs": float(len(corpus)), "dim": float(d),
            "docs_encoded": float(self.shared.encoded["document"]),
            "encode_seconds": self.shared.encode_seconds["document"],
            "docs_encoded_for_this_point": float(encoded_here),
            "docs_from_cache": float(self.shared.from_cache["document"]),
            "shared_encoding_seconds": encode_seconds,
            "index_build_seconds": derive_seconds,
            "index_built_here": float(shared_index.built_by == self.meta.name),
            **({"ivf_nlist": float(shared_index.nlist), "ivf_nprobe": float(nprobe)}
               if spec.index.kind == "ivf" else {}),
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
        depth = min(n_docs, width * self.spec.rescore)
        with faiss_single_thread(self._faiss):
            qdata, search = self._first_stage(qf)
            indices, scores = top_with_ties(search, qdata, depth, built.id_rank)
        if self.spec.rescore > 1:
            indices, scores = self._rescore(qf, indices, width)
        now = time.perf_counter()
        self.stats.update({"queries": float(len(texts)), "first_stage_depth": float(depth),
                           "search_seconds": now - began, "faiss_search_seconds": now - search_began})
        if self.spec.index.kind == "hnsw":
            self._note_ef_search(depth, n_docs)
        return Run.from_topk(queries.ids, built.doc_ids, indices, scores, name=self.meta.name)

    def _note_ef_search(self, depth: int, n_docs: int) -> None:
        """Say so when FAISS searches with a larger efSearch than declared: HNSW returns at most
        efSearch candidates, so efSearch is raised to the search depth, and every ef_search up to
        that depth searches alike (at k = 100, ef_search 32 and 128 with rescore 4 are one search)."""
        from evalsuite.retrievers.dense import _TIE_MARGIN

        declared = self.spec.index.ef_search
        first = min(n_docs, depth + _TIE_MARGIN)  # top_with_ties' first request
        effective = max(declared, first)
        self.stats["hnsw_ef_search_effective"] = float(effective)
        self.notes = [n for n in self.notes if not n.startswith("HNSW efSearch")]
        if effective > declared:
            self.notes.append(
                f"HNSW efSearch {declared} raised to {effective}: FAISS returns at most efSearch candidates, so it "
                f"searches with max(ef_search, depth) where depth = k x rescore ({depth}) + {_TIE_MARGIN} for ties; "
                f"every ef_search up to {effective} gives this same search and the same results")

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
        shared = self._shared_index
        if shared is None:
            from evalsuite.retrievers.cost import _faiss_nbytes

            return _faiss_nbytes(self._built.index)
        if shared.nbytes is None:  # one serialisation per shared index
            from evalsuite.retrievers.cost import _faiss_nbytes

            shared.nbytes = _faiss_nbytes(shared.index)
        return shared.nbytes

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
            # the work this point's index needs (truncation, quantization, FAISS build), counted for
            # every point that shares it, plus the encoding when this point encoded the corpus
            "index_seconds": self._index_seconds,
        }
        shared = self._shared_index
        if shared is not None and shared.built_by != self.meta.name:
            extras["index_shared_with"] = shared.built_by
        if "hnsw_ef_search_effective" in self.stats:
            extras["hnsw_ef_search_effective"] = int(self.stats["hnsw_ef_search_effective"])
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
        synthetic = self.shared.synthetic(big, d)
        queries = synthetic[:_SCALE_QUERIES]
        with faiss_single_thread(faiss):
            timings = self._time_flat(faiss, synthetic, queries, (small, big))
        self._scaling = {"docs": [small, big], "ms_per_query": [timings[small], timings[big]],
                         "queries": len(queries), "note": "flat index of this dim and precision; random "
                         "unit vectors; batch of queries on one thread, encoding not included"}
        memo[key] = self._scaling
        return self._scaling

    def _time_flat(self, faiss: Any, synthetic: NDArray[np.float32], queries: NDArray[np.float32],
                   sizes: tuple[int, int]) -> dict[int, float]:
        d = synthetic.shape[1]
        flat = IndexSpec("flat")
        timings: dict[int, float] = {}
        for size in sizes:
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
        return timings


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
        built = len({id(p._shared_index) for p in points if p._shared_index is not None})
        lines.append(f"sweep {name} ({shared.label} encoder): {len(points)} points from one encoding: "
                     f"{shared.encoded['document']} documents and {shared.encoded['query']} queries encoded, "
                     f"{shared.from_cache['document']} documents and {shared.from_cache['query']} queries from "
                     f"the cache; {built} {'index' if built == 1 else 'indexes'} built (one per dim x precision x "
                     "index structure, shared across ef_search, nprobe and rescore)")
        lines.extend(f"sweep {name}: {line}" for line in _same_searches(points))
    for name in dict.fromkeys(n for n, _ in groups):
        first = next(r for r in retrievers.values() if isinstance(r, SweepPoint) and r.sweep_name == name)
        lines.extend(f"sweep {name}: {note}" for note in first.left_out.values())
    return lines


def _same_searches(points: Sequence[SweepPoint]) -> list[str]:
    """HNSW points whose declared ef_search differ but which searched with the same efSearch
    (raised to the search depth): one line per group, so that nobody reads their equal results
    as a finding about ef_search."""
    groups: dict[tuple[Any, ...], dict[int, list[int]]] = {}
    for p in points:
        effective = p.stats.get("hnsw_ef_search_effective")
        if p.spec.index.kind != "hnsw" or effective is None:
            continue
        s = p.spec
        key = (s.encoder, s.dim, s.precision, s.rescore, s.index.m, s.index.ef_construction)
        groups.setdefault(key, {}).setdefault(int(effective), []).append(s.index.ef_search)
    lines = []
    for (_, dim, precision, rescore, m, _), by_effective in groups.items():
        for effective, declared in by_effective.items():
            if len(declared) > 1:
                label = f"@{dim or 'full'}/{precision}{f'+rescore{rescore}' if rescore > 1 else ''}/hnsw-M{m}"
                lines.append(f"{label}: ef_search {', '.join(map(str, sorted(declared)))} all searched with "
                             f"efSearch {effective} (raised to the search depth k x rescore + ties): one search, "
                             "identical results")
    return lines
