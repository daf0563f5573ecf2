"""Where a suite's work runs: in this process (the default) or on a Ray cluster.

An *executor* takes over the three expensive steps of a suite run, and nothing else:

* **encoding** -- :meth:`Executor.encode` runs an :class:`EncodeJob` (a picklable
  ``job(texts) -> encodings`` that loads its model on first use) over the texts that the
  embedding cache lacks; the caller (:func:`~evalsuite.retrievers.cache.cached_encode`)
  still reads and writes the cache, so cached texts are never sent and new encodings are
  written by the driver;
* **dense search** -- :meth:`Executor.dense_index` splits the document matrix into shards,
  each with its own FAISS index, and :meth:`ShardedIndex.top` merges the per-shard top-k
  with the ranking order of the evaluation (score at float32 descending, then doc id
  descending), so an exact search returns the same Run as one index;
* **the suite grid** -- :meth:`Executor.attach` / :meth:`Executor.prepare_task` may run
  whole (task, system) cells elsewhere.

``executor: local`` (the default) means no executor at all: the retrievers run as they
always do, and Ray is never imported. ``executor: ray`` is :class:`evalsuite.executors.ray.RayExecutor`
(``pip install 'evalsuite[ray]'``; see ``docs/scale-out.md``). :class:`LocalExecutor` is
the same protocol in this process (shards included): a reference for tests and the
benchmark, not used by ``evalsuite run``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from evalsuite.errors import UnknownNameError

if TYPE_CHECKING:  # suites import RaySpec: keep this module light (numpy on first use)
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["EXECUTORS", "EncodeJob", "Executor", "LocalExecutor", "LocalShards", "RaySpec", "Shard",
           "ShardedIndex", "inverse_rank", "merge_top", "open_executor", "shard_bounds"]

#: the executor names a suite (``executor:``) or ``evalsuite run --executor`` accepts
EXECUTORS = ("local", "ray")


class RaySpec(BaseModel):
    """The ``ray:`` section of a suite (used with ``executor: ray``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str | None = Field(default=None, description="cluster to join ('auto', 'host:6379', 'ray://host:10001'); "
                                "none: $RAY_ADDRESS, else a local Ray instance started for the run")
    num_workers: int = Field(default=2, ge=1, description="encoding actors (each loads the model once)")
    batch_size: int = Field(default=256, ge=1, description="texts per map_batches call of an encoding actor")
    num_gpus_per_worker: float = Field(default=0, ge=0, description="GPUs reserved per encoding actor")
    num_cpus_per_worker: float = Field(default=1, gt=0, description="CPUs reserved per encoding actor / grid cell")
    num_shards: int | None = Field(default=None, ge=1, description="dense index shards (default: num_workers)")
    num_cpus: int | None = Field(default=None, ge=1, description="CPUs of a local instance (default: all)")
    connect_timeout_s: float = Field(default=20, gt=0, description="give up joining a cluster after this long")
    max_restarts: int = Field(default=3, ge=-1, description="restarts of a dead encoding or shard actor (-1: any)")
    max_task_retries: int = Field(default=3, ge=-1, description="retries of a batch whose actor died (-1: any)")
    grid: bool = Field(default=False, description="run (task, system) cells as Ray tasks instead of sending "
                       "encoding and search to the cluster from the driver")


@runtime_checkable
class EncodeJob(Protocol):
    """A picklable ``job(texts) -> one encoding per text``; loads its model on the first call.

    ``setup(cpus)`` is called once on a worker before the first call (thread counts)."""

    def setup(self, cpus: int) -> None: ...

    def __call__(self, texts: list[str]) -> list[Any]: ...


class ShardedIndex(Protocol):
    """A dense index split in shards; ``top`` answers like :meth:`FaissIndex.top` over all rows."""

    stats: dict[str, float]

    def top(self, vectors: NDArray[np.float32], width: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]: ...

    def close(self) -> None: ...


@runtime_checkable
class Executor(Protocol):
    """Runs encoding, dense search and suite cells (see the module docstring)."""

    name: str
    #: texts per :meth:`encode` call; the cache is written after each
    encode_chunk_size: int

    def encode(self, job: EncodeJob, texts: Sequence[str]) -> list[Any]: ...

    def dense_index(self, vectors: NDArray[np.float32], id_rank: NDArray[np.int64], spec: Any, *,
                    name: str) -> ShardedIndex: ...

    def attach(self, retrievers: dict[str, Any]) -> dict[str, Any]: ...

    def prepare_task(self, data: Any, retrievers: dict[str, Any], systems: Sequence[str], k: int) -> None: ...

    def settings(self) -> dict[str, Any]:
        """What the results record of this executor (``config.executor_settings``)."""
        ...

    def close(self) -> None: ...


# -- shards -------------------------------------------------------------------------------------


def shard_bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` contiguous row ranges covering ``0..n`` (sizes differ by at most one);
    fewer when ``n < shards``."""
    shards = max(1, min(shards, n))
    edges = [n * i // shards for i in range(shards + 1)]
    return list(itertools.pairwise(edges))


class Shard:
    """Rows ``offset..offset + len(vectors)`` of a document matrix with their own FAISS index.

    ``id_rank`` is the slice of the corpus-wide doc-id ranks for these rows, so that a shard
    orders its ties exactly as the whole index would; :meth:`top` answers in global row
    numbers."""

    def __init__(self, vectors: NDArray[np.float32], id_rank: NDArray[np.int64], offset: int, spec: Any) -> None:
        import numpy as np

        from evalsuite.retrievers.dense import FaissIndex

        self.offset = offset
        self.id_rank = np.asarray(id_rank, dtype=np.int64)
        self.index = FaissIndex(np.ascontiguousarray(vectors, dtype=np.float32), spec)

    @property
    def stats(self) -> dict[str, float]:
        return {"rows": float(self.index.n), "ivf_nlist": float(self.index.nlist)}

    def top(self, queries: NDArray[np.float32], width: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """This shard's best ``min(width, rows)`` per query, in ranking order (global rows)."""
        import numpy as np

        idx, val = self.index.top(queries, min(width, self.index.n), self.id_rank)
        return np.where(idx >= 0, idx + self.offset, -1), val


def merge_top(parts: Sequence[tuple[NDArray[np.int64], NDArray[np.float32]]], width: int,
              id_rank: NDArray[np.int64], rows_by_rank: NDArray[np.int64] | None = None,
              ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """The ``width`` best of the shards' candidates per query, in ranking order.

    The order is total (score at float32 descending, then doc id descending, as
    :meth:`FaissIndex.top` and the evaluation rank), and every shard returns its own best
    ``width`` in that order, so the global best ``width`` are among the candidates and come
    out in the same order as from one index over all rows. Exact for a flat index; for
    HNSW and IVF each shard is its own approximation (see ``docs/scale-out.md``).

    Each candidate becomes one uint64 key that sorts as the ranking: the score's float32 bits
    mapped to an order-preserving unsigned integer in the high half, the doc-id rank in the low
    half. A document is in one shard only, so the keys are distinct, a partition plus a sort of
    the ``width`` largest keys is the merge, and the key itself gives back the score and (through
    ``rows_by_rank``, the inverse of ``id_rank``: pass it when merging often) the row.
    """
    import numpy as np

    if rows_by_rank is None:
        rows_by_rank = inverse_rank(id_rank)
    idx = np.concatenate([p[0] for p in parts], axis=1)
    val = np.concatenate([p[1] for p in parts], axis=1).astype(np.float32) + np.float32(0.0)  # -0.0 -> +0.0
    valid = idx >= 0
    bits = val.view(np.uint32)
    ordered = np.where(bits & np.uint32(0x80000000), ~bits, bits | np.uint32(0x80000000)).astype(np.uint64)
    keys = (ordered << np.uint64(32)) | id_rank[np.where(valid, idx, 0)].astype(np.uint64)
    keys[~valid] = 0  # below every real candidate
    n = keys.shape[1]
    take = min(width, n)
    best = np.partition(keys, n - take, axis=1)[:, n - take:] if take < n else keys
    best = np.sort(best, axis=1)[:, ::-1]
    real = best != 0
    high = (best >> np.uint64(32)).astype(np.uint32)
    score_bits = np.where(high & np.uint32(0x80000000), high & np.uint32(0x7FFFFFFF), ~high)
    out_val = np.where(real, score_bits.view(np.float32), np.float32(0))
    out_idx = np.where(real, rows_by_rank[(best & np.uint64(0xFFFFFFFF)).astype(np.int64)], -1)
    if out_idx.shape[1] < width:  # fewer candidates than asked (cannot happen with width <= rows)
        pad = width - out_idx.shape[1]
        out_idx = np.pad(out_idx, ((0, 0), (0, pad)), constant_values=-1)
        out_val = np.pad(out_val, ((0, 0), (0, pad)))
    return out_idx.astype(np.int64), out_val.astype(np.float32)


def inverse_rank(id_rank: NDArray[np.int64]) -> NDArray[np.int64]:
    """Row of each doc-id rank (``id_rank`` is a permutation of ``0..n-1``)."""
    import numpy as np

    rows = np.empty(len(id_rank), dtype=np.int64)
    rows[np.asarray(id_rank, dtype=np.int64)] = np.arange(len(id_rank), dtype=np.int64)
    return rows


class LocalShards:
    """:class:`ShardedIndex` in this process: the reference the Ray shards are tested against."""

    def __init__(self, vectors: NDArray[np.float32], id_rank: NDArray[np.int64], spec: Any, shards: int) -> None:
        self.id_rank = id_rank
        self.rows_by_rank = inverse_rank(id_rank)
        self.shards = [Shard(vectors[lo:hi], id_rank[lo:hi], lo, spec) for lo, hi in shard_bounds(len(vectors), shards)]
        self.stats: dict[str, float] = {"shards": float(len(self.shards))}

    def top(self, vectors: NDArray[np.float32], width: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        return merge_top([s.top(vectors, width) for s in self.shards], width, self.id_rank, self.rows_by_rank)

    def close(self) -> None:
        self.shards = []


class LocalExecutor:
    """The executor protocol in this process; ``shards`` > 1 splits dense indexes as Ray does."""

    name = "local"

    def __init__(self, *, shards: int = 1, encode_chunk_size: int = 4096) -> None:
        self.shards = shards
        self.encode_chunk_size = encode_chunk_size
        self.texts_sent = 0  # texts encoded through this executor (what a warm re-run must keep at 0)

    def encode(self, job: EncodeJob, texts: Sequence[str]) -> list[Any]:
        self.texts_sent += len(texts)
        return list(job(list(texts)))

    def dense_index(self, vectors: NDArray[np.float32], id_rank: NDArray[np.int64], spec: Any, *,
                    name: str) -> ShardedIndex:
        return LocalShards(vectors, id_rank, spec, self.shards)

    def attach(self, retrievers: dict[str, Any]) -> dict[str, Any]:
        return attach_encoding(retrievers, self)

    def prepare_task(self, data: Any, retrievers: dict[str, Any], systems: Sequence[str], k: int) -> None:
        return None

    def settings(self) -> dict[str, Any]:
        return {"executor": self.name, "shards": self.shards}

    def close(self) -> None:
        return None


def attach_encoding(retrievers: dict[str, Any], executor: Executor) -> dict[str, Any]:
    """Point every retriever that encodes (those with an ``executor`` attribute: dense,
    SPLADE, ColBERT -- the components of hybrids and reranks included) at ``executor``."""
    seen: set[int] = set()
    stack = list(retrievers.values())
    while stack:
        retriever = stack.pop()
        if id(retriever) in seen:
            continue
        seen.add(id(retriever))
        if hasattr(retriever, "executor"):
            retriever.executor = executor
        stack.extend(getattr(retriever, "components", ()) or ())
        if getattr(retriever, "first_stage", None) is not None:
            stack.append(retriever.first_stage)
    return retrievers


def open_executor(name: str, spec: RaySpec | None = None, *, address: str | None = None,
                  progress: bool | None = None, say: Callable[[str], None] | None = None) -> Executor | None:
    """The executor called ``name``: ``None`` for ``"local"`` (run in this process), a
    connected :class:`~evalsuite.executors.ray.RayExecutor` for ``"ray"``."""
    if name == "local":
        return None
    if name == "ray":
        from evalsuite.executors.ray import RayExecutor

        return RayExecutor(spec or RaySpec(), address=address, progress=progress, say=say)
    raise UnknownNameError("executor", name, EXECUTORS)


Kind = Literal["local", "ray"]
