"""Query-encoding latency, measured once per (encoder, texts, machine) and charged thereafter.

A system's query latency (:mod:`evalsuite.retrievers.cost`) is, per query, its search time
with the query's encoding included: the cost a user pays for a query the system has not seen.
Encoding one query with a given model costs the same whichever system calls the model: the
dense model on its own, the hybrid built on it, the same query in another task of the suite.
So while a latency sample is searched (:meth:`EncodeTimings.charging`), every encoding that
goes through :func:`~evalsuite.retrievers.cache.cached_encode` is handled here:

* texts this encoder has not been timed on: encoded **uncached**, the wall time recorded
  (an encoder's first call in the process goes before, untimed: models load lazily, and a warm
  run whose warm-up searches were all served has not loaded it yet);
* texts it has: served from the embedding cache, and the recorded encoding time charged
  instead of the (much shorter) time the cache lookup took.

The search part of every query is timed afresh each time. Recorded encoding times live in
this process (across the systems and tasks of a run) and, given a store, in the cache folder
(``<cache>/latency``), keyed by the encoder's fingerprint (model weights, prompts, dimension,
...), its runtime settings (:func:`runtime_settings`: device, threads, batch size) and this
machine (:func:`machine_signature`: host, CPU model, usable cores, GPUs, thread and GPU
visibility environment variables, evalsuite / onnxruntime / torch versions, a hash of
evalsuite's query-encoding code): a warm re-run on the same machine charges the encoding
measured by the run that first timed it, and loads no model for it.
``fresh=True`` (``evalsuite run --fresh-latency``) times every encoding again (and records the
new times). The costs of each system say how many of its encodings were timed in this run and
how many came from an earlier one (``latency_encodings``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from evalsuite._cachefile import source_hash
from evalsuite.retrievers.cache import CacheStats, EmbeddingCache, Encoded, encode_hook, text_key

__all__ = ["EncodeTimings", "machine_signature", "runtime_settings"]

_VERSION = 1  # bump when what is timed changes: earlier records are then not reused
_HERE = Path(__file__).resolve().parent
#: the code that encodes queries: a change to it (a development checkout keeps its version
#: number) times again instead of charging what the old code took
_TIMED_SOURCES: tuple[Path, ...] = tuple(_HERE / name for name in ("encoders.py", "dense.py", "splade.py",
                                                                   "colbert.py"))


@lru_cache(maxsize=1)
def machine_signature() -> dict[str, Any]:
    """What an encoding time depends on besides the model and the text."""
    from importlib import metadata

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    versions: dict[str, str | None] = {}
    for package in ("evalsuite", "onnxruntime", "torch", "sentence-transformers"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    threads = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "EVALSUITE_THREADS",
                                              "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER")}  # and which GPU "cuda" is
    return {"host": platform.node(), "machine": platform.machine(), "cpu": cpu, "cpus": usable, "gpus": _gpus(),
            "threads": threads, "versions": versions, "code": source_hash(_TIMED_SOURCES), "timing_version": _VERSION}


def runtime_settings(*sources: Any, **extra: Any) -> dict[str, Any]:
    """What changes how long an encoding takes but not its output, so is not in the embedding
    cache's fingerprint: the ``device`` and ``threads`` of the encoders in ``sources`` (where
    they have them) and ``extra`` (the batch size). Part of the timing key: the same model on
    another device or thread count is timed on its own."""
    out: dict[str, Any] = dict(extra)
    for i, source in enumerate(sources):
        for attr in ("device", "threads"):
            value = getattr(source, attr, None)
            if value is not None:
                out[f"{attr}{i or ''}"] = str(value)
    return out


def _gpus() -> list[str]:
    try:
        return sorted(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return []


def _hash(value: Any) -> str:
    return hashlib.blake2b(json.dumps(value, sort_keys=True, default=str).encode(), digest_size=16).hexdigest()


def texts_key(texts: Sequence[str]) -> str:
    """One key for an ordered batch of texts (a single text: its cache key)."""
    if len(texts) == 1:
        return text_key(texts[0])
    return "batch-" + _hash([text_key(t) for t in texts])


class EncodeTimings:
    """Recorded encoding times (milliseconds) per encoder fingerprint and texts; see the module
    docstring. ``store``: the cache folder's latency store (None: this process only)."""

    def __init__(self, store: EmbeddingCache | None = None, *, fresh: bool = False) -> None:
        self.store = store
        self.fresh = fresh
        self._memo: dict[tuple[str, str], tuple[float, bool]] = {}  # -> (ms, recorded by an earlier run)
        self._asked: dict[str, set[str]] = {}  # per encoder fingerprint: keys already looked up in the store
        self._expected: list[str] = []
        self._expected_texts: list[str] = []
        self._rows: dict[tuple[str, str], Encoded] = {}  # encodings served while charging (the samples')
        self._unsaved: dict[str, dict[str, Encoded]] = {}
        self._warm: set[str] = set()  # encoder fingerprints that have encoded in this process
        self._record = True
        self._credit_ms = 0.0
        self.counts = {"measured": 0, "this_run": 0, "earlier_run": 0}

    # -- the store ----------------------------------------------------------------------------

    def _store_fingerprint(self, fp_key: str) -> dict[str, Any]:
        return {"kind": "query encoding latency (ms)", "encoder": fp_key, "machine": _hash(machine_signature())}

    def expect(self, texts: Sequence[str]) -> None:
        """The texts about to be searched (one at a time and as one batch): their recorded times
        are read from the store in one query per encoder (when the encoder first encodes them)."""
        self._expected = [text_key(t) for t in texts] + ([texts_key(texts)] if len(texts) > 1 else [])
        self._expected_texts = list(texts)

    def _load(self, fp_key: str) -> None:
        if self.store is None or self.fresh:
            return
        asked = self._asked.setdefault(fp_key, set())
        keys = [k for k in self._expected if k not in asked]
        if not keys:
            return
        asked.update(keys)
        try:
            found, _ = self.store.get_many(self._store_fingerprint(fp_key), keys)
        except (OSError, sqlite3.Error):  # unreadable store: time everything here
            return
        for key, value in found.items():
            array = np.asarray(value, dtype=np.float64).ravel()
            if array.size == 1 and np.isfinite(array[0]) and array[0] >= 0:
                self._memo.setdefault((fp_key, key), (float(array[0]), True))

    def save(self) -> None:
        """Write the times recorded in this process to the store. A cache that cannot be
        written (read-only, locked, full) gets a warning: the next run times them again."""
        pending, self._unsaved = self._unsaved, {}
        if self.store is None:
            return
        for fp_key, items in pending.items():
            try:
                self.store.put_many(self._store_fingerprint(fp_key), items)
            except (OSError, sqlite3.Error) as exc:
                import warnings

                warnings.warn(f"query encoding times not kept in the cache ({self.store.root}: {exc}); "
                              "the next run times them again", RuntimeWarning, stacklevel=2)
                return

    # -- charging -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def charging(self, *, record: bool = True) -> Iterator[EncodeTimings]:
        """Route encodings through :meth:`_encode` for the duration. ``record=False`` (warm-up
        searches): texts not yet timed are encoded but their time is not recorded (a first call
        also loads the model)."""
        self._record, self._credit_ms = record, 0.0
        with encode_hook(self._encode):
            yield self

    def take_credit_ms(self) -> float:
        """Milliseconds to add to the wall time measured since the last call: recorded encoding
        times charged minus the time actually spent serving those encodings."""
        credit, self._credit_ms = self._credit_ms, 0.0
        return credit

    def _encode(self, texts: Sequence[str], encode: Callable[[list[str]], Sequence[Encoded]], *,
                cache: EmbeddingCache | None, fingerprint: Mapping[str, Any], chunk_size: int,
                plain: Callable[..., tuple[list[Encoded], CacheStats]],
                timing: Mapping[str, Any] | None = None) -> tuple[list[Encoded], CacheStats]:
        began = time.perf_counter()
        fp_key = _hash({"output": fingerprint, "runtime": dict(timing or {})})
        key = texts_key(texts) if texts else ""
        self._load(fp_key)
        recorded = self._memo.get((fp_key, key)) if texts else None
        if recorded is None:
            if not texts:
                return plain(texts, encode, cache=cache, fingerprint=fingerprint, chunk_size=chunk_size)
            if self._record and fp_key not in self._warm:
                # untimed: a model loads lazily on its first call, which a warm run (every warm-up
                # query served as timed before) has not made yet; its load is no query's encoding
                encode(list(texts[:1]))
            started = time.perf_counter()
            values = list(encode(list(texts)))  # uncached: what a new query costs
            seconds = time.perf_counter() - started
            self._warm.add(fp_key)
            if len(values) != len(texts):
                raise RuntimeError(f"encoder returned {len(values)} encodings for {len(texts)} texts")
            self._rows.update({(fp_key, text_key(t)): v for t, v in zip(texts, values)})
            if self._record:
                ms = seconds * 1000
                self._memo[(fp_key, key)] = (ms, False)
                self._unsaved.setdefault(fp_key, {})[key] = np.array([ms], dtype=np.float64)
                self.counts["measured"] += 1
                self._credit_ms += ms - (time.perf_counter() - began) * 1000
            stats = CacheStats(requested=len(texts), encoded=len(texts), seconds_encoding=seconds)
            return values, stats
        rows, stats = self._serve(texts, encode, cache=cache, fingerprint=fingerprint, chunk_size=chunk_size,
                                  fp_key=fp_key, plain=plain)
        if self._record:
            ms, earlier = recorded
            self.counts["earlier_run" if earlier else "this_run"] += 1
            self._credit_ms += ms - (time.perf_counter() - began) * 1000
        return rows, stats

    def _serve(self, texts: Sequence[str], encode: Callable[[list[str]], Sequence[Encoded]], *,
               cache: EmbeddingCache | None, fingerprint: Mapping[str, Any], chunk_size: int, fp_key: str,
               plain: Callable[..., tuple[list[Encoded], CacheStats]]) -> tuple[list[Encoded], CacheStats]:
        """Encodings of texts whose time is recorded: from memory, where the first call for an
        encoder fetched the whole expected sample from the embedding cache in one lookup (one
        lookup per single-query search cost about a millisecond, more than a search)."""
        keys = [text_key(t) for t in texts]
        if any((fp_key, k) not in self._rows for k in keys):
            wanted = dict(zip(keys, texts))
            wanted.update({text_key(t): t for t in self._expected_texts if (fp_key, text_key(t)) not in self._rows})
            fetched, _ = plain(list(wanted.values()), encode, cache=cache, fingerprint=fingerprint,
                               chunk_size=chunk_size)
            self._rows.update({(fp_key, k): v for k, v in zip(wanted, fetched)})
        return [self._rows[(fp_key, k)] for k in keys], CacheStats(requested=len(texts), hits=len(texts))
