"""``executor: ray``: encoding, dense search and suite cells on a Ray cluster.

What runs where (``docs/scale-out.md`` has the picture and the measured overheads):

* **Encoding** (dense, sparse, token-level) -- the texts that the embedding cache lacks,
  sorted by length (longest first, so each block and batch holds texts of similar length
  and pads little), become a Ray Dataset; ``map_batches`` runs them through a fixed pool of
  ``num_workers`` actors (``ActorPoolStrategy``), each of which loads the model once
  (``num_gpus_per_worker`` GPUs each where the cluster has them). Encodings come back to
  the driver, which writes them to its cache. Ray Data shows its progress bars when
  progress is on.
* **Faults** -- an encoding actor that dies is restarted (``max_restarts``) and its
  in-flight batches are retried (``max_task_retries``); encodings depend only on the text,
  so the run is the same. Shard actors are restarted the same way (their rows are
  re-sent from the object store).
* **Dense search** -- the document matrix is split into ``num_shards`` contiguous shards,
  each held by an actor with its own FAISS index (flat, HNSW or IVF, built as the local
  retriever builds it); a search sends the query vectors to every shard and merges the
  per-shard top-k on the driver (:func:`evalsuite.executors.merge_top`).
* **Grid** (``grid: true``) -- instead, each (task, system) cell runs whole as a Ray task
  (components and the hybrid/rerank built on them together, in one task, where their
  inputs are); the driver evaluates and writes the results.

Joining a cluster: ``address`` (``--ray-address``, else ``$RAY_ADDRESS``, else the suite's
``ray.address``); none starts a local instance for the run and stops it afterwards. A
``host:port`` that does not accept a TCP connection within ``connect_timeout_s`` seconds,
or that does not answer as a Ray head (within about ``connect_timeout_s`` + 10 s), is a one-line
:class:`~evalsuite.errors.ConfigError` (exit 2), never a hang.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from evalsuite._optional import require
from evalsuite.errors import ConfigError, DataError, EvalsuiteError
from evalsuite.executors import (
    EncodeJob,
    RaySpec,
    Shard,
    ShardedIndex,
    attach_encoding,
    inverse_rank,
    merge_top,
    shard_bounds,
)

__all__ = ["RayExecutor"]

#: texts per Ray Dataset (one actor pool, one model load per actor); the driver writes the
#: cache after each, so an interrupted run keeps the chunks it finished
ENCODE_CHUNK = 100_000


class RayExecutor:
    """The :class:`~evalsuite.executors.Executor` protocol on Ray (see the module docstring).

    Parameters
    ----------
    spec:
        The suite's ``ray:`` section.
    address:
        Cluster to join, overriding ``$RAY_ADDRESS`` and ``spec.address``.
    progress:
        Ray Data progress bars (``None``: when stderr is a terminal).
    say:
        Receives one line per stage (the CLI prints them).
    """

    name = "ray"

    def __init__(self, spec: RaySpec | None = None, *, address: str | None = None, progress: bool | None = None,
                 say: Callable[[str], None] | None = None) -> None:
        self.spec = spec or RaySpec()
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.say = say or (lambda _: None)
        self.encode_chunk_size = ENCODE_CHUNK
        self.texts_sent = 0  # texts sent to the encoding pool (a warm re-run sends none)
        self._owned = False  # whether close() stops the Ray instance (one this executor started)
        self._shards: list[RayShards] = []
        self._grid: dict[int, Any] = {}  # id(proxy) -> ObjectRef of its cell group's results
        self._grid_corpus: Any = None
        self._joined = "local"  # what settings() records as the address
        self._cluster: dict[str, float] = {}
        self.address = address or os.environ.get("RAY_ADDRESS") or self.spec.address
        self._connect()

    # -- cluster ---------------------------------------------------------------------------

    def _connect(self) -> None:
        address = self.address
        local = address in (None, "", "local")
        if "ray" not in sys.modules:  # Ray reads these once, at import
            seconds = str(max(1, math.ceil(self.spec.connect_timeout_s)))
            if local:  # its waits for the GCS it starts, ~1 s each
                os.environ.setdefault("RAY_NUM_REDIS_GET_RETRIES", seconds)
            else:
                # a head that takes the TCP connection but does not answer as Ray: each attempt
                # waits ~10 s (connect, pubsub) plus py_gcs_connect_timeout_s (default 30 s), and
                # Ray makes NUM_REDIS_GET_RETRIES of them (20: ~14 minutes); one attempt bounded
                # by connect_timeout_s instead
                os.environ.setdefault("RAY_NUM_REDIS_GET_RETRIES", "1")
                os.environ.setdefault("RAY_py_gcs_connect_timeout_s", seconds)
        ray = require("ray", package="ray[data]", extra="ray", purpose="executor: ray")
        if ray.is_initialized():  # joined already (a test session, a notebook): used, never stopped here
            self._joined = "connected"
            self._describe(ray, "using the connected Ray instance")
            return
        if address not in (None, "", "auto", "local"):
            _check_reachable(str(address), self.spec.connect_timeout_s)
        # a quiet run shows the 'ray' logger's errors only (not its start-up warnings), and no
        # worker output (a worker's error still reaches the driver, as the exception it raises)
        kwargs: dict[str, Any] = {"include_dashboard": False,
                                  "logging_level": logging.WARNING if self.progress else logging.ERROR,
                                  "log_to_driver": self.progress}
        if local:
            kwargs["num_cpus"] = self.spec.num_cpus
        try:
            with _quiet_stderr(not self.progress):
                ray.init(address=None if local else address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise ConfigError(f"cannot join the Ray cluster at {address!r}: {first} (start one with "
                              "'ray start --head', or fix ray.address / --ray-address / $RAY_ADDRESS)") from None
        self._owned = local
        self._joined = "local" if local else str(address)
        self._describe(ray, "started a local Ray instance" if local else f"joined the Ray cluster at {address}")
        self._check_worker_fits(ray)

    def _check_worker_fits(self, ray: Any) -> None:
        """A worker asking for more CPUs or GPUs than any node has is never scheduled, and Ray
        waits for it forever: a local instance (no autoscaler) fails at once instead, a joined
        cluster (which may scale up) says that the run waits for such a node."""
        cpus, gpus = self.spec.num_cpus_per_worker, self.spec.num_gpus_per_worker
        nodes: list[dict[str, float]] = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive", True)]
        if any(r.get("CPU", 0) >= cpus and r.get("GPU", 0) >= gpus for r in nodes):
            return
        biggest: dict[str, float] = max(nodes, key=lambda r: (r.get("GPU", 0), r.get("CPU", 0)), default={})
        need = f"{cpus:g} CPU(s)" + (f" and {gpus:g} GPU(s)" if gpus else "")
        have = f"{biggest.get('CPU', 0):g} CPU(s)" + (f" and {biggest.get('GPU', 0):g} GPU(s)" if gpus else "")
        what = (f"a Ray worker needs {need} (ray.num_cpus_per_worker / num_gpus_per_worker), but the largest "
                f"node of the {'local Ray instance' if self._owned else 'cluster'} has {have}")
        if not self._owned:
            self.say(f"{what}: the run waits until the cluster adds such a node")
            return
        self.close()
        lower = "lower them in the suite's 'ray:' section" + (", 0 GPUs to encode on CPUs" if gpus else "")
        raise ConfigError(f"{what}, so the workers would wait forever ({lower}, or join a cluster with such a node)")

    def _describe(self, ray: Any, what: str) -> None:
        resources = ray.cluster_resources()
        gpus = resources.get("GPU", 0)
        self._cluster = {"nodes": len(ray.nodes()), "cpus": float(resources.get("CPU", 0)), "gpus": float(gpus)}
        self.say(f"{what}: {self._cluster['nodes']} node(s), {resources.get('CPU', 0):g} CPUs"
                 + (f", {gpus:g} GPUs" if gpus else ""))

    def settings(self) -> dict[str, Any]:
        """The executor as the results record it (``config.executor_settings``): the cluster
        (``address``: ``"local"`` for an instance started for the run, ``"connected"`` for
        one this process had joined already, else the address joined), its size when
        joined, and every ``ray:`` setting (num_workers, batch_size, num_gpus_per_worker, ...)."""
        return {"executor": self.name, "address": self._joined, **self._cluster,
                **self.spec.model_dump(mode="json", exclude={"address"})}

    def close(self) -> None:
        """Release the shard actors; stop the Ray instance if this executor started it."""
        for shards in self._shards:
            shards.close()
        self._shards = []
        self._grid = {}
        if self._owned:
            import ray

            with _without_ray_noise(not self.progress):
                ray.shutdown()
            self._owned = False

    # -- encoding --------------------------------------------------------------------------

    def encode(self, job: EncodeJob, texts: Sequence[str]) -> list[Any]:
        """One encoding per text, computed by a pool of ``num_workers`` actors with Ray Data."""
        import ray

        from evalsuite.retrievers.cache import unpack_encoded

        n = len(texts)
        if n == 0:
            return []
        spec = self.spec
        order = sorted(range(n), key=lambda i: -len(texts[i]))  # longest first: similar lengths per batch
        items = [{"i": i, "text": str(texts[i])} for i in order]
        blocks = max(1, min(math.ceil(n / spec.batch_size), 4 * spec.num_workers))
        workers = min(spec.num_workers, blocks)  # no idle actor (and no Ray warning of one) for a small job
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = self.progress
        context.print_on_execution_start = self.progress
        context.enable_auto_log_stats = False
        self.say(f"encoding {n} texts on {workers} Ray worker(s)")
        began = time.perf_counter()
        # blocks built here and put in the object store (no remote metadata tasks), in length order
        dataset = ray.data.from_items(items, override_num_blocks=blocks)
        remote: dict[str, Any] = {"max_restarts": spec.max_restarts, "max_task_retries": spec.max_task_retries}
        with warnings.catch_warnings():  # restart/retry limits are only reachable as (deprecated) remote args
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*")
            encoded = dataset.map_batches(
                _EncodeActor, fn_constructor_args=(job, max(1, int(spec.num_cpus_per_worker))),
                batch_size=spec.batch_size, batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=workers),
                num_cpus=spec.num_cpus_per_worker, num_gpus=spec.num_gpus_per_worker or None, **remote)
        out: list[Any] = [None] * n
        with _quiet_stderr(not self.progress), _without_ray_noise(not self.progress), _user_errors():
            for batch in encoded.iter_batches(batch_size=None, batch_format="numpy"):
                failed = [str(e) for e in batch["error"] if e]
                if failed:  # an evalsuite error on a worker: one line here too (a DataError stays one)
                    name, _, message = failed[0].partition("\t")
                    raise (DataError if name == "DataError" else ConfigError)(message)
                for i, blob in zip(batch["i"].tolist(), batch["value"]):
                    out[i] = unpack_encoded(bytes(blob))
        missing = sum(1 for v in out if v is None)
        if missing:
            raise RuntimeError(f"the Ray encoding pool returned no encoding for {missing} of {n} texts")
        self.texts_sent += n
        self.say(f"encoded {n} texts in {time.perf_counter() - began:.1f} s on Ray")
        return out

    # -- dense search ----------------------------------------------------------------------

    def dense_index(self, vectors: NDArray[np.float32], id_rank: NDArray[np.int64], spec: Any, *,
                    name: str) -> ShardedIndex:
        with _without_ray_noise(not self.progress):
            shards = RayShards(vectors, id_rank, spec, self.spec.num_shards or self.spec.num_workers, self.spec)
        self._shards.append(shards)
        return shards

    # -- suite cells -----------------------------------------------------------------------

    def attach(self, retrievers: dict[str, Any]) -> dict[str, Any]:
        """Encode-and-search mode: point the retrievers at this executor. Grid mode: wrap each
        in a proxy whose index/search results come from its cell group's Ray task."""
        if not self.spec.grid:
            return attach_encoding(retrievers, self)
        return {name: _CellProxy(name, r, self) for name, r in retrievers.items()}

    def prepare_task(self, data: Any, retrievers: dict[str, Any], systems: Sequence[str], k: int) -> None:
        """Grid mode: start one Ray task per group of connected systems (a hybrid or rerank
        with the suite systems it is built on) for this task's data."""
        if not self.spec.grid or not hasattr(data, "corpus"):  # STS and mteb tasks stay on the driver
            return
        import ray

        proxies = [retrievers[s] for s in systems if isinstance(retrievers[s], _CellProxy)]
        data_ref = ray.put(data)
        run_cells = ray.remote(_run_cells).options(num_cpus=self.spec.num_cpus_per_worker,
                                                   num_gpus=self.spec.num_gpus_per_worker or None,
                                                   max_retries=self.spec.max_task_retries)
        self._grid = {}
        self._grid_corpus = data.corpus
        for group in _groups(proxies):
            ref = run_cells.remote(data_ref, [(p.name, p.inner) for p in group], k)
            for p in group:
                self._grid[id(p)] = ref
        self.say(f"started {len(set(map(id, self._grid.values())))} Ray task(s) for {len(proxies)} system(s)")

    def _cell_result(self, proxy: _CellProxy, corpus: Any) -> CellOutput | None:
        ref = self._grid.get(id(proxy))
        if ref is None or corpus is not self._grid_corpus:
            return None
        import ray

        with _user_errors():
            output: CellOutput = ray.get(ref)[proxy.name]
        return output


# -- encoding actor ------------------------------------------------------------------------------


class _EncodeActor:
    """One encoding worker of the Ray Data actor pool: the job (and so the model) lives as long
    as the actor; batches come in as ``{"i", "text"}`` and leave as ``{"i", "value"}`` (the
    packed encoding: any array or tuple of arrays)."""

    def __init__(self, job: EncodeJob, cpus: int) -> None:
        self.job = job
        setup = getattr(job, "setup", None)
        if callable(setup):
            setup(cpus)

    def __call__(self, batch: dict[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        from evalsuite.retrievers.cache import pack_encoded

        n = len(batch["text"])
        errors = np.full(n, "", dtype=object)
        blobs = np.empty(n, dtype=object)
        try:
            values = self.job([str(t) for t in batch["text"]])
        except EvalsuiteError as exc:  # sent back in-band: Ray Data keeps only the text of exceptions
            errors[:] = f"{type(exc).__name__}\t{exc}"
            blobs[:] = b""
        else:
            if len(values) != n:
                raise RuntimeError(f"the encoder returned {len(values)} encodings for {n} texts")
            blobs[:] = [pack_encoded(v) for v in values]
        return {"i": np.asarray(batch["i"], dtype=np.int64), "value": blobs, "error": errors}


# -- sharded dense index ---------------------------------------------------------------------------


class _ShardActor:
    """Holds one :class:`~evalsuite.executors.Shard` (its rows and FAISS index) on a worker."""

    def __init__(self, vectors: NDArray[np.float32], id_rank: NDArray[np.int64], offset: int, spec: Any) -> None:
        self.shard = Shard(vectors, id_rank, offset, spec)

    def stats(self) -> dict[str, float]:
        return self.shard.stats

    def top(self, queries: NDArray[np.float32], width: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        return self.shard.top(queries, width)


class RayShards:
    """A dense index as ``shards`` Ray actors; :meth:`top` merges their answers on the driver.

    Shard actors reserve no CPU slot (they hold memory and answer searches, which are short
    next to encoding) and are spread over the nodes."""

    def __init__(self, vectors: NDArray[np.float32], id_rank: NDArray[np.int64], spec: Any, shards: int,
                 ray_spec: RaySpec) -> None:
        import ray

        self.id_rank = np.asarray(id_rank, dtype=np.int64)
        self.rows_by_rank = inverse_rank(self.id_rank)
        actor: Any = ray.remote(_ShardActor).options(num_cpus=0, scheduling_strategy="SPREAD",
                                                max_restarts=ray_spec.max_restarts,
                                                max_task_retries=ray_spec.max_task_retries)
        bounds = shard_bounds(len(vectors), shards)
        # the rows stay referenced here: a restarted shard actor is rebuilt from them
        self._rows = [ray.put(np.ascontiguousarray(vectors[lo:hi])) for lo, hi in bounds]
        self.actors: list[Any] = [actor.remote(rows, self.id_rank[lo:hi], lo, spec)
                                  for rows, (lo, hi) in zip(self._rows, bounds)]
        with _user_errors():
            shard_stats = ray.get([a.stats.remote() for a in self.actors])
        self.stats: dict[str, float] = {"shards": float(len(self.actors))}
        if any(s["ivf_nlist"] for s in shard_stats):
            self.stats["ivf_nlist_per_shard_min"] = min(s["ivf_nlist"] for s in shard_stats)
        self.merge_seconds = 0.0

    def top(self, vectors: NDArray[np.float32], width: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        import ray

        queries = ray.put(np.ascontiguousarray(vectors, dtype=np.float32))
        with _user_errors():
            parts = ray.get([a.top.remote(queries, width) for a in self.actors])
        began = time.perf_counter()
        merged = merge_top(parts, width, self.id_rank, self.rows_by_rank)
        self.merge_seconds = time.perf_counter() - began
        self.stats["merge_seconds"] = self.merge_seconds
        return merged

    def close(self) -> None:
        import ray

        for actor in self.actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        self.actors, self._rows = [], []


# -- grid cells ---------------------------------------------------------------------------------


@dataclass
class CellOutput:
    """What a cell's Ray task sends back: the run, the retriever's stats and meta, timings."""

    run: Any
    stats: dict[str, float]
    meta: Any
    index_seconds: float
    search_seconds: float
    node: str


def _parts(retriever: Any) -> list[Any]:
    """The retrievers a hybrid or rerank is built on (as the runner finds them)."""
    parts = list(getattr(retriever, "components", ()) or ())
    if getattr(retriever, "first_stage", None) is not None:
        parts.append(retriever.first_stage)
    return parts


def _run_cells(data: Any, retrievers: list[tuple[str, Any]], k: int) -> dict[str, CellOutput]:
    """Index and search a group of systems on one worker, components first, as the runner
    does in-process (a composite whose components were indexed here re-uses them)."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    out: dict[str, CellOutput] = {}
    indexed: set[int] = set()
    for name, retriever in retrievers:
        parts = _parts(retriever)
        began = time.perf_counter()
        if parts and all(id(p) in indexed for p in parts):
            retriever.index(data.corpus, components_indexed=True)
        else:
            retriever.index(data.corpus)
        indexed.add(id(retriever))
        searched = time.perf_counter()
        run = retriever.search(data.queries, k=k)
        out[name] = CellOutput(run=run, stats=dict(retriever.stats), meta=retriever.meta,
                               index_seconds=searched - began, search_seconds=time.perf_counter() - searched,
                               node=node)
    return out


class _CellProxy:
    """Stands for a retriever in the runner's loop in grid mode: ``index``/``search`` of a task
    prepared by :meth:`RayExecutor.prepare_task` return what its cell's Ray task computed;
    anything else (STS ``embed``, mteb tasks) goes to the retriever itself, on the driver."""

    def __init__(self, name: str, inner: Any, executor: RayExecutor) -> None:
        self.name = name
        self.inner = inner
        self.executor = executor
        self.meta = inner.meta
        self.stats: dict[str, float] = {}
        self._output: CellOutput | None = None

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.inner, attr)

    def index(self, corpus: Any, **kwargs: Any) -> None:
        self._output = self.executor._cell_result(self, corpus)
        if self._output is None:
            self.inner.index(corpus, **kwargs)
            self.stats, self.meta = self.inner.stats, self.inner.meta
            return
        self.meta = self._output.meta
        self.stats = {**self._output.stats, "ray_index_seconds": self._output.index_seconds}

    def search(self, queries: Any, *, k: int = 100) -> Any:
        output, self._output = self._output, None
        if output is None:
            run = self.inner.search(queries, k=k)
            self.stats = self.inner.stats
            return run
        self.stats = {**output.stats, "ray_index_seconds": output.index_seconds,
                      "ray_search_seconds": output.search_seconds}
        return output.run


def _groups(proxies: list[_CellProxy]) -> list[list[_CellProxy]]:
    """Systems joined by the component relation (union-find), each group in the given order."""
    by_inner = {id(p.inner): p for p in proxies}
    parent = {id(p): id(p) for p in proxies}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in proxies:
        for part in _parts(p.inner):
            other = by_inner.get(id(part))
            if other is not None:
                parent[find(id(p))] = find(id(other))
    groups: dict[int, list[_CellProxy]] = {}
    for p in proxies:
        groups.setdefault(find(id(p)), []).append(p)
    return list(groups.values())


# -- helpers ------------------------------------------------------------------------------------


def _check_reachable(address: str, timeout: float) -> None:
    """Fail within ``timeout`` seconds, in one line, when ``host:port`` takes no TCP connection."""
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"Ray address {address!r} is not 'auto', 'host:port' or 'ray://host:port'")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        raise ConfigError(f"cannot reach the Ray cluster at {address!r} within {timeout:g} s ({reason}); start one "
                          "with 'ray start --head', or fix ray.address / --ray-address / $RAY_ADDRESS") from None


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """An :class:`EvalsuiteError` raised on a worker (a model that cannot be loaded, a bad
    option) reaches the caller as itself -- one line, exit 2 -- not as Ray's wrapper of it
    (whose message carries the worker's traceback)."""
    try:
        yield
    except Exception as exc:
        from ray.exceptions import RayError

        seen: set[int] = set()
        stack: list[BaseException | None] = [exc]
        while stack:
            error = stack.pop()
            if error is None or id(error) in seen:
                continue
            seen.add(id(error))
            if isinstance(error, EvalsuiteError) and not isinstance(error, RayError):
                raise error from None
            stack += [error.__context__, error.__cause__, getattr(error, "cause", None)]
        raise


@contextlib.contextmanager
def _quiet_stderr(quiet: bool) -> Iterator[None]:
    """Ray's start-up and Ray Data's execution log to stderr; library code does not print."""
    if not quiet:
        yield
        return
    names = ("ray", "ray.data")
    levels = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)


#: what Ray's core worker logs straight to file descriptor 2 (C++, not Python logging) that a
#: run can neither act on nor avoid: Ray Data hands every pool actor its context and UDF as
#: object-store arguments, and with ``max_restarts`` > 0 Ray warns once per actor (at ERROR
#: level) that a restart fails should those be evicted -- they are not: the pool holds them
#: for as long as it runs (ray-project/ray#53727)
_RAY_NOISE = (b"has constructor arguments in the object store and max_restarts > 0",)


@contextlib.contextmanager
def _without_ray_noise(active: bool) -> Iterator[None]:
    """While active, what reaches file descriptor 2 is held in a temporary file and written
    back afterwards without the lines of :data:`_RAY_NOISE`: everything else -- any real
    error Ray logs included -- still reaches stderr, in order. Only for quiet runs (no live
    progress bars to hold back); a file, not a pipe, so that a process started meanwhile
    can never block on it."""
    if not active:
        yield
        return
    import tempfile

    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            for line in held:
                if not any(noise in line for noise in _RAY_NOISE):
                    os.write(2, line)
