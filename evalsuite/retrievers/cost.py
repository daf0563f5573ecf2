"""What a retrieval system costs: index time and size, query latency, throughput, model size.

:class:`CostMeter` measures, for one task, every system the runner indexes and searches, and
returns the ``costs`` dict stored per (task, system) in ``results.json``. These key names are
a contract (reports, gates and the CLI read them):

``index_seconds``
    wall time of ``index(corpus)`` as the runner measured it; a hybrid or rerank whose
    components were indexed first adds theirs (the system costs what its parts cost).
``encode_docs_per_s``
    documents encoded per second of encoding while indexing; ``None`` when no document was
    encoded (every vector came from the embedding cache: ``encode_note`` says so) or the
    system encodes nothing (BM25).
``index_bytes``, ``bytes_per_doc``
    the searchable index as held in memory: vectors + ANN structures (FAISS indexes are
    measured by serialising them), the inverted index for BM25/SPLADE (score/weight arrays),
    token vectors + candidate index for late interaction, the Lucene index folder on disk;
    the sum of the parts for hybrids, the first stage's for a reranker. Document-id maps are
    not counted.
``query_latency_p50_ms``, ``query_latency_p95_ms``
    per query, **encoding included**: a seeded sample of ``latency_queries`` queries searched
    one at a time after ``warmup`` searches. The encoding is what a new query costs: timed
    uncached, once per encoder, text and machine, and charged to every search of that text
    with that encoder (:mod:`evalsuite.retrievers.encode_timing`: the dense model and the hybrid
    built on it share it; a warm re-run charges the time recorded in the cache folder and
    times the search part again; ``latency_encodings`` counts what was timed when). Systems
    that derive many indexes from one encoder (sweep points, :mod:`evalsuite.retrievers.sweep`)
    measure each query's encoding once, uncached, and add it to that query's search time.
``queries_per_s``
    the same sample searched as one batch (its encoding charged the same way), queries / second.
``model_bytes``, ``parameters``
    size of the weight files the system runs (ONNX file, safetensors / bin) and the number of
    parameters (read from safetensors headers or ONNX initializers, without loading the
    model); summed over the parts of composites; ``None`` when there is no model.

Latency is wall time on this machine under its current load; compare systems measured in one
run, not across machines.
"""

from __future__ import annotations

import contextlib
import json
import math
import struct
import time
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from evalsuite.errors import ConfigError
from evalsuite.retrievers.base import Retriever
from evalsuite.retrievers.encode_timing import EncodeTimings
from evalsuite.types import Corpus, Queries

__all__ = ["COST_COLUMNS", "COST_KEYS", "CostAware", "CostMeter", "caches_off", "index_nbytes", "model_size"]

#: the fixed key names of ``costs`` (see the module docstring)
COST_KEYS = ("index_seconds", "encode_docs_per_s", "index_bytes", "bytes_per_doc", "query_latency_p50_ms",
             "query_latency_p95_ms", "queries_per_s", "model_bytes", "parameters")

#: columns of the CLI table with ``--costs`` (see :func:`cost_cells`)
COST_COLUMNS = ("bytes/doc", "p50 ms", "p95 ms", "queries/s", "index s", "docs/s")

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".onnx", ".pt", ".pth")


@runtime_checkable
class CostAware(Protocol):
    """A retriever that measures parts of its own cost (sweep points do).

    ``index_nbytes()`` is the size of its searchable index; ``query_encode_costs(texts)``
    gives each query's encoding time in ms when encoded alone, and the seconds to encode
    them all as one batch, measured uncached (and memoised, so that many systems sharing one
    encoder measure it once); its ``search`` then reuses the query vectors, so timing a
    search measures the search alone.
    """

    def index_nbytes(self) -> int | None: ...

    def query_encode_costs(self, texts: Sequence[str]) -> tuple[list[float], float]: ...


def _parts(retriever: Any) -> list[Any]:
    parts = list(getattr(retriever, "components", ()))
    first = getattr(retriever, "first_stage", None)
    if first is not None:
        parts.append(first)
    return parts


def _tree(retriever: Any) -> Iterator[Any]:
    yield retriever
    for part in _parts(retriever):
        yield from _tree(part)


@contextlib.contextmanager
def caches_off(retriever: Retriever) -> Iterator[None]:
    """Switch off the embedding cache of ``retriever`` and of its parts for the duration, so
    that searching encodes every query (the cost a user pays per new query)."""
    saved: list[tuple[Any, Any]] = []
    for r in _tree(retriever):
        if getattr(r, "_cache", None) is not None:
            saved.append((r, r._cache))
            r._cache = None
    try:
        yield
    finally:
        for r, cache in saved:
            r._cache = cache


@contextlib.contextmanager
def encode_here(retriever: Retriever) -> Iterator[bool]:
    """Encode queries in this process for the duration, for ``retriever`` and its parts that
    encode on an executor (``executor: ray``); yields whether any did. Searches still go to the
    executor's shards. Without it, every single-query search of the latency sample would be a
    Ray Data job of its own (seconds of job start-up per query), which measures Ray's
    scheduling, not what a query costs where the model is loaded."""
    saved = [(r, r.executor) for r in _tree(retriever) if getattr(r, "executor", None) is not None]
    for r, _ in saved:
        r.executor = None
    try:
        yield bool(saved)
    finally:
        for r, executor in saved:
            r.executor = executor


# -- index size ---------------------------------------------------------------------------------


def _faiss_nbytes(index: Any) -> int:
    import faiss

    if isinstance(index, faiss.IndexBinary):
        return int(faiss.serialize_index_binary(index).nbytes)
    return int(faiss.serialize_index(index).nbytes)


def _sparse_nbytes(matrix: Any) -> int:
    return int(sum(getattr(matrix, name).nbytes for name in ("data", "indices", "indptr")))


def _folder_nbytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def index_nbytes(retriever: Any) -> int | None:
    """Bytes of the searchable index of ``retriever`` (see the module docstring); ``None``
    when it is not indexed or its index is of a kind this function does not know.

    Reads the structures each built-in retriever holds after ``index``; a retriever of
    another kind can say it itself with an ``index_nbytes()`` method.
    """
    own = getattr(retriever, "index_nbytes", None)
    if callable(own):
        value = own()
        return None if value is None else int(value)
    parts = _parts(retriever)
    if parts:
        sizes = [index_nbytes(p) for p in parts]
        return None if any(s is None for s in sizes) else int(sum(s for s in sizes if s is not None))
    kind = getattr(getattr(retriever, "meta", None), "kind", None)
    if kind == "dense" and getattr(retriever, "_faiss_index", None) is not None:
        return _faiss_nbytes(retriever._faiss_index)
    if kind == "bm25":
        model = getattr(retriever, "_model", None)
        scores = getattr(model, "scores", None)
        if isinstance(scores, dict):  # bm25s eager index: a CSC matrix of precomputed scores
            return int(sum(v.nbytes for v in scores.values() if isinstance(v, np.ndarray)))
        path = getattr(retriever, "index_path", None)  # lucene
        return _folder_nbytes(Path(path)) if path is not None else None
    if kind == "splade" and getattr(retriever, "_inverted", None) is not None:
        return _sparse_nbytes(retriever._inverted)
    if kind == "colbert" and getattr(retriever, "_tokens", None) is not None:
        total = int(retriever._tokens.nbytes) + int(retriever._offsets.nbytes)
        if getattr(retriever, "_faiss", None) is not None:
            total += _faiss_nbytes(retriever._faiss)
        return total
    return None


# -- model size ---------------------------------------------------------------------------------


def _model_paths(retriever: Any) -> list[Path]:
    """The weight files or folders of the model(s) ``retriever`` itself runs."""
    encoder = getattr(retriever, "encoder", None)
    if encoder is not None and not callable(getattr(encoder, "encode", None)):
        encoder = None
    if encoder is not None:
        export = getattr(encoder, "export_path", None)
        if export is not None and Path(export).is_file():  # the fp32 export is what runs
            return [Path(export)]
        source = getattr(getattr(encoder, "source", None), "path", None)
        folder = getattr(encoder, "folder", None)
        found = [Path(p) for p in (getattr(encoder, "model_path", None), folder, source) if p is not None]
        return found[:1]
    for name in ("_path",):  # splade, colbert, rerank keep their model folder here
        value = getattr(retriever, name, None)
        if value is not None:
            return [Path(value)]
    return []


def _weight_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = [p for p in path.rglob("*") if p.is_file() and p.suffix in _WEIGHT_SUFFIXES]
    safetensors = [p for p in files if p.suffix == ".safetensors"]
    onnx = [p for p in files if p.suffix == ".onnx"]
    # one copy of the weights: a folder often ships the same model in several formats
    return safetensors or [p for p in files if p.suffix in (".bin", ".pt", ".pth")] or onnx[:1]


@lru_cache(maxsize=64)
def _parameters(path: str, size: int, mtime_ns: int) -> int | None:
    """Parameter count from a safetensors header or the initializers of an ONNX file."""
    p = Path(path)
    if p.suffix == ".safetensors":
        with p.open("rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(length))
        return int(sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__"))
    if p.suffix == ".onnx":
        return _onnx_parameters(p)
    return None


def _varint(buf: Any, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: Any, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, value or start, end) of each field of one protobuf message."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, wire, value, pos
        elif wire == 2:
            length, pos = _varint(buf, pos)
            yield number, wire, pos, pos + length
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    if pos != end:
        raise ValueError("truncated protobuf message")


def _onnx_parameters(path: Path) -> int | None:
    """Sum over the graph's initializers of the product of their dims, what
    ``onnx.load(path, load_external_data=False).graph.initializer`` gives, read from the protobuf
    wire format (ModelProto.graph = 7, GraphProto.initializer = 5, TensorProto.dims = 1) without
    importing onnx (about a second of start-up) or copying the weights; None if unreadable."""
    import mmap

    try:
        with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            total = 0
            for number, wire, g_start, g_end in _fields(buf, 0, len(buf)):
                if number != 7 or wire != 2:
                    continue
                for n_init, w_init, t_start, t_end in _fields(buf, g_start, g_end):
                    if n_init != 5 or w_init != 2:
                        continue
                    dims: list[int] = []
                    for n_dim, w_dim, a, b in _fields(buf, t_start, t_end):
                        if n_dim != 1:
                            continue
                        if w_dim == 0:
                            dims.append(a)
                        elif w_dim == 2:  # packed
                            pos = a
                            while pos < b:
                                value, pos = _varint(buf, pos)
                                dims.append(value)
                    total += math.prod(d - (1 << 64) if d >= 1 << 63 else d for d in dims)
            return total
    except (OSError, ValueError, IndexError):
        return None


def model_size(retriever: Any) -> tuple[int | None, int | None]:
    """(model_bytes, parameters) of the models ``retriever`` and its parts run; ``(None, None)``
    without a model. A part whose parameter count cannot be read makes the count ``None``."""
    total_bytes, total_params, seen, unknown = 0, 0, False, False
    for r in _tree(retriever):
        for path in _model_paths(r):
            files = _weight_files(path) if path.exists() else []
            if not files:
                continue
            seen = True
            for f in files:
                stat = f.stat()
                total_bytes += stat.st_size
                count = _parameters(str(f), stat.st_size, stat.st_mtime_ns)
                if count is None:
                    unknown = True
                else:
                    total_params += count
    if not seen:
        return None, None
    return total_bytes, (None if unknown else total_params)


# -- the meter ------------------------------------------------------------------------------------


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else None


class CostMeter:
    """Measures the cost of each system on one task (see the module docstring).

    ``latency_queries``: the size of the seeded query sample (0: no latency measurement);
    ``warmup``: searches before timing (loads models, fills CPU caches); ``k``: the depth
    searched, as in the evaluation; ``timings``: recorded query-encoding times, shared by the
    meters of one run (default: this meter's own, in memory).
    """

    def __init__(self, corpus: Corpus, queries: Queries, *, k: int = 100, latency_queries: int = 50,
                 warmup: int = 3, seed: int = 0, timings: EncodeTimings | None = None) -> None:
        self.n_docs = len(corpus)
        self.timings = timings if timings is not None else EncodeTimings()
        self.k = k
        self.warmup = warmup
        ids = list(queries.ids.tolist())
        rng = np.random.default_rng(seed)
        chosen = sorted(rng.choice(len(ids), size=min(latency_queries, len(ids)), replace=False).tolist()) \
            if ids and latency_queries > 0 else []
        self.sample = queries.subset([ids[i] for i in chosen])
        self._index_seconds: dict[int, float] = {}

    def measure(self, retriever: Retriever, *, index_seconds: float) -> dict[str, Any]:
        """The ``costs`` of ``retriever``, indexed (in ``index_seconds``) and ready to search."""
        notes: list[str] = []
        parts = _parts(retriever)
        own = index_seconds
        index_seconds += sum(self._index_seconds.get(id(p), 0.0) for p in parts)
        self._index_seconds[id(retriever)] = index_seconds if parts else own
        costs: dict[str, Any] = {"index_seconds": index_seconds}
        costs.update(self._encoding(retriever, notes))
        nbytes = index_nbytes(retriever)
        costs["index_bytes"] = nbytes
        costs["bytes_per_doc"] = nbytes / self.n_docs if nbytes is not None and self.n_docs else None
        if nbytes is None:
            notes.append("index size unknown for this kind of retriever")
        try:
            costs.update(self._latency(retriever, notes))
        except ConfigError as exc:  # not indexed in this process (executor grid: the cell ran as a Ray task)
            notes.append(f"latency not measured here: {exc}")
            costs.update(query_latency_p50_ms=None, query_latency_p95_ms=None, queries_per_s=None, latency_queries=0)
        costs["model_bytes"], costs["parameters"] = model_size(retriever)
        extra = getattr(retriever, "cost_extras", None)
        if callable(extra):
            costs.update(extra())
        costs["notes"] = notes
        return costs

    def _encoding(self, retriever: Retriever, notes: list[str]) -> dict[str, Any]:
        encoded = seconds = 0.0
        cached = 0.0
        for r in _tree(retriever):
            stats = getattr(r, "stats", {}) or {}
            encoded += float(stats.get("docs_encoded", 0.0))
            cached += float(stats.get("docs_from_cache", 0.0))
            seconds += float(stats.get("encode_seconds", 0.0))
        out: dict[str, Any] = {"docs_encoded": int(encoded), "encode_docs_per_s": None}
        if encoded > 0 and seconds > 0:
            out["encode_docs_per_s"] = encoded / seconds
        elif cached > 0:
            out["encode_note"] = f"0 documents encoded: all {int(cached)} vectors came from the embedding cache"
            notes.append(out["encode_note"])
        return out

    def _latency(self, retriever: Retriever, notes: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"query_latency_p50_ms": None, "query_latency_p95_ms": None, "queries_per_s": None,
                               "latency_queries": len(self.sample)}
        if not len(self.sample):
            return out
        texts = [str(t) for t in self.sample.texts.tolist()]
        encode_ms, encode_batch = [0.0] * len(texts), 0.0
        query_costs = retriever.query_encode_costs if isinstance(retriever, CostAware) else None
        derived = query_costs is not None
        timings = self.timings
        timings.expect(texts)
        before = dict(timings.counts)

        def charging(record: bool) -> contextlib.AbstractContextManager[Any]:
            # systems that derive their query vectors (sweep points) add query_encode_costs instead
            return contextlib.nullcontext() if derived else timings.charging(record=record)

        with encode_here(retriever) as moved, caches_off(retriever) if derived else contextlib.nullcontext():
            if moved:
                notes.append("latency: queries encoded in this process (the driver), searched on the executor's "
                             "shards")
            if query_costs is not None:
                encode_ms, encode_batch = query_costs(texts)
            with charging(record=False):
                for i in range(min(self.warmup, len(self.sample))):
                    retriever.search(self.sample.subset([self.sample.ids[i]]), k=self.k)
            with charging(record=True):
                timings.take_credit_ms()
                per_query = []
                for qid, enc in zip(self.sample.ids.tolist(), encode_ms):
                    one = self.sample.subset([qid])
                    began = time.perf_counter()
                    retriever.search(one, k=self.k)
                    per_query.append((time.perf_counter() - began) * 1000 + enc + timings.take_credit_ms())
                began = time.perf_counter()
                retriever.search(self.sample, k=self.k)
                batch = time.perf_counter() - began + encode_batch + timings.take_credit_ms() / 1000
        timings.save()
        out["query_latency_p50_ms"] = _percentile(per_query, 50)
        out["query_latency_p95_ms"] = _percentile(per_query, 95)
        out["queries_per_s"] = len(texts) / batch if batch > 0 else None
        if derived:
            notes.append("latency = each query's encoding (measured once, uncached) + this index's search")
        else:
            counts = {k: timings.counts[k] - before[k] for k in timings.counts}
            if any(counts.values()):
                out["latency_encodings"] = counts
            if counts["this_run"] or counts["earlier_run"]:
                earlier = (f"{counts['earlier_run']} by an earlier run on this machine (the cache's latency "
                           "store; --fresh-latency times them again)") if counts["earlier_run"] else ""
                this = f"{counts['this_run']} earlier in this run" if counts["this_run"] else ""
                notes.append("latency: the search part of every query timed now; of its query encodings, "
                             f"{counts['measured']} timed now (uncached), "
                             + ", ".join(x for x in (this, earlier) if x) + " (same encoder and texts)")
        return out


def cost_cells(costs: dict[str, Any]) -> list[str]:
    """The :data:`COST_COLUMNS` of one result, rounded for display ("-" where not measured;
    docs/s "cached" when no document was encoded)."""

    def fmt(key: str, digits: int) -> str:
        value = costs.get(key)
        return "-" if value is None else f"{float(value):,.{digits}f}".replace(",", "")

    docs = fmt("encode_docs_per_s", 0)
    if docs == "-" and costs.get("encode_note"):
        docs = "cached"
    return [fmt("bytes_per_doc", 0), fmt("query_latency_p50_ms", 2), fmt("query_latency_p95_ms", 2),
            fmt("queries_per_s", 1), fmt("index_seconds", 2), docs]
