"""On-disk cache of encodings (dense vectors, sparse vectors, token-level matrices).

Entries are keyed by an *encoder fingerprint* (model name, weight hash, prompt, dimension,
maximum length, ... -- everything that changes the output) and a hash of the text. A second
run over the same corpus encodes nothing; a changed model or text misses exactly the
affected entries. Each fingerprint has its own SQLite file (stdlib, atomic writes); every
row carries a checksum of its key and bytes, so a damaged entry (or one a damaged index leads
to under another text's key) is detected, dropped and re-encoded -- never served. Rows written
before the key was covered are checked on their bytes alone. A file that is not a readable
database is moved aside and rebuilt.

Location: ``cache_dir`` argument, else ``$EVALSUITE_CACHE_DIR``, else
``$XDG_CACHE_HOME/evalsuite`` (``~/.cache/evalsuite``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sqlite3
import struct
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evalsuite._cachefile import require_intact, row_checksum

__all__ = ["CacheStats", "EmbeddingCache", "cached_encode", "default_cache_dir", "encode_hook", "pack_encoded",
           "text_key", "unpack_encoded"]

Encoded = Any  # np.ndarray, or a tuple of arrays (sparse: indices, values)


def default_cache_dir() -> Path:
    env = os.environ.get("EVALSUITE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "evalsuite"


def text_key(text: str) -> str:
    """Hash of one input text (the part of the cache key that depends on the data)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


_MAGIC = b"ESA1"


def _pack(value: Encoded) -> bytes:
    """Arrays as ``ESA1``, their count, then per array: dtype, shape and the raw bytes
    (little-endian header; a few microseconds to read back, unlike ``np.load`` of an npz)."""
    arrays = value if isinstance(value, tuple) else (value,)
    parts = [_MAGIC, struct.pack("<I", len(arrays))]
    for array in arrays:
        a = np.ascontiguousarray(array)
        dtype = a.dtype.str.encode("ascii")
        parts += [struct.pack("<BB", len(dtype), a.ndim), dtype, struct.pack(f"<{a.ndim}Q", *a.shape), a.tobytes()]
    return b"".join(parts)


def _unpack(blob: bytes) -> Encoded:
    if not blob.startswith(_MAGIC):  # rows written by earlier versions (npz)
        with np.load(io.BytesIO(blob), allow_pickle=False) as data:
            old = tuple(data[f"arr_{i}"] for i in range(len(data.files)))
        return old[0] if len(old) == 1 else old
    (count,) = struct.unpack_from("<I", blob, 4)
    offset = 8
    arrays = []
    for _ in range(count):
        dtype_len, ndim = struct.unpack_from("<BB", blob, offset)
        offset += 2
        dtype = np.dtype(blob[offset:offset + dtype_len].decode("ascii"))
        offset += dtype_len
        shape = struct.unpack_from(f"<{ndim}Q", blob, offset)
        offset += 8 * ndim
        size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if dtype.hasobject or offset + size > len(blob):
            raise ValueError("malformed cache row")
        arrays.append(np.frombuffer(blob, dtype=dtype, count=size // dtype.itemsize if dtype.itemsize else 0,
                                    offset=offset).reshape(shape).copy())
        offset += size
    if offset != len(blob):
        raise ValueError("malformed cache row")
    return arrays[0] if len(arrays) == 1 else tuple(arrays)


def pack_encoded(value: Encoded) -> bytes:
    """An encoding (array or tuple of arrays) as bytes, in the cache's row format (also how
    distributed workers send encodings back: :mod:`evalsuite.executors.ray`)."""
    return _pack(value)


def unpack_encoded(blob: bytes) -> Encoded:
    """The inverse of :func:`pack_encoded`; ``ValueError`` on a malformed row."""
    return _unpack(blob)


@dataclass
class CacheStats:
    """Counters of one :func:`cached_encode` call."""

    requested: int = 0
    hits: int = 0
    encoded: int = 0
    corrupt: int = 0
    seconds_encoding: float = 0.0
    unusable: str | None = None  # why the cache could not be read or written (then nothing was cached)


#: cache files set up and passed ``PRAGMA quick_check`` in this process: path -> (size, mtime_ns) then
_CHECKED: dict[str, tuple[int, int]] = {}


def _file_state(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


@contextlib.contextmanager
def _own_write(path: Path) -> Iterator[None]:
    """Keep a checked file checked across this process's own write to it. Without this every
    write changes the file's size and mtime, so the next open ran ``quick_check`` over the
    whole file again: indexing a corpus chunk by chunk read the growing file once per chunk,
    quadratic in its size."""
    key = str(path)
    trusted = _CHECKED.get(key) is not None and _file_state(path) == _CHECKED.get(key)
    yield
    if trusted and (state := _file_state(path)) is not None:
        _CHECKED[key] = state


class EmbeddingCache:
    """A folder of per-fingerprint SQLite files."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir() / "embeddings"

    def path_for(self, fingerprint: Mapping[str, Any]) -> Path:
        key = hashlib.blake2b(json.dumps(fingerprint, sort_keys=True, default=str).encode(),
                              digest_size=16).hexdigest()
        return self.root / f"{key}.sqlite"

    def _connect(self, fingerprint: Mapping[str, Any]) -> sqlite3.Connection:
        path = self.path_for(fingerprint)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self._open(path, fingerprint)
        except sqlite3.OperationalError:
            raise  # locked, read-only, disk full: not damage (cached_encode falls back to no cache)
        except sqlite3.DatabaseError:
            # not a database (truncated, overwritten): keep it for inspection (the newest few), start afresh
            path.replace(path.with_suffix(f".corrupt-{int(time.time())}"))
            _prune_corrupt(path)
            return self._open(path, fingerprint)

    @staticmethod
    def _open(path: Path, fingerprint: Mapping[str, Any]) -> sqlite3.Connection:
        # quick_check reads the whole file (6 ms at 6 MB, seconds at gigabytes): once per file
        # state per process, not on every lookup; a file changed since (size or mtime) is checked again
        if _file_state(path) == _CHECKED.get(str(path), ()):
            return sqlite3.connect(path, timeout=60)  # set up and checked in this state already
        conn = sqlite3.connect(path, timeout=60)
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            conn.execute("CREATE TABLE IF NOT EXISTS entries (text_key TEXT PRIMARY KEY, value BLOB, checksum BLOB)")
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('fingerprint', ?)",
                         (json.dumps(fingerprint, sort_keys=True, default=str),))
            conn.commit()
            require_intact(conn)  # damaged pages: the file is set aside and rebuilt
            state = _file_state(path)
            if state is not None:
                _CHECKED[str(path)] = state
        except BaseException:
            conn.close()
            raise
        return conn

    def get_many(self, fingerprint: Mapping[str, Any], keys: Sequence[str]) -> tuple[dict[str, Encoded], int]:
        """Cached values for ``keys`` (missing keys absent) and the number of corrupt rows dropped."""
        found: dict[str, Encoded] = {}
        corrupt: list[str] = []
        conn = self._connect(fingerprint)
        try:
            for start in range(0, len(keys), 900):
                chunk = list(keys[start:start + 900])
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT text_key, value, checksum FROM entries WHERE text_key IN ({marks})", chunk
                ).fetchall()
                for key, blob, checksum in rows:
                    try:
                        if row_checksum(blob, key) != checksum and row_checksum(blob) != checksum:  # 2nd: older rows
                            raise ValueError("checksum mismatch")
                        found[key] = _unpack(blob)
                    except Exception:  # any damage: drop the row, re-encode the text
                        corrupt.append(key)
            if corrupt:
                with _own_write(self.path_for(fingerprint)):
                    conn.executemany("DELETE FROM entries WHERE text_key = ?", [(k,) for k in corrupt])
                    conn.commit()
        finally:
            conn.close()
        return found, len(corrupt)

    def put_many(self, fingerprint: Mapping[str, Any], items: Mapping[str, Encoded]) -> None:
        if not items:
            return
        rows = []
        for key, value in items.items():
            blob = _pack(value)
            rows.append((key, blob, row_checksum(blob, key)))
        conn = self._connect(fingerprint)
        try:
            with _own_write(self.path_for(fingerprint)), conn:
                conn.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?)", rows)
        finally:
            conn.close()

    def put_many_or_warn(self, fingerprint: Mapping[str, Any], items: Mapping[str, Encoded]) -> str | None:
        """:meth:`put_many`, or a warning and the reason when the cache cannot be written
        (read-only, locked, disk full): the values are then simply not kept."""
        try:
            self.put_many(fingerprint, items)
        except (OSError, sqlite3.OperationalError) as exc:
            reason = f"{self.root}: {exc}"
            _warn_unusable(reason)
            return reason
        return None


#: damaged cache files kept for inspection, per cache file (older ones are deleted)
KEEP_CORRUPT = 3


def _prune_corrupt(path: Path) -> None:
    kept = sorted(path.parent.glob(f"{path.stem}.corrupt-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in kept[KEEP_CORRUPT:]:
        old.unlink(missing_ok=True)


def _warn_unusable(reason: str) -> None:
    import warnings

    warnings.warn(f"embedding cache not usable ({reason}); encoding without it", RuntimeWarning, stacklevel=3)


_HOOK: ContextVar[Callable[..., tuple[list[Encoded], CacheStats]] | None] = ContextVar("evalsuite_encode_hook",
                                                                                        default=None)


@contextlib.contextmanager
def encode_hook(hook: Callable[..., tuple[list[Encoded], CacheStats]]) -> Iterator[None]:
    """Route every :func:`cached_encode` call of this thread through ``hook`` for the duration.

    ``hook(texts, encode, cache=, fingerprint=, chunk_size=, plain=, timing=)`` returns what
    :func:`cached_encode` returns; ``plain`` is the unhooked implementation. Latency measurement
    uses it (:class:`evalsuite.retrievers.encode_timing.EncodeTimings`)."""
    token = _HOOK.set(hook)
    try:
        yield
    finally:
        _HOOK.reset(token)


def cached_encode(
    texts: Sequence[str],
    encode: Callable[[list[str]], Sequence[Encoded]],
    *,
    cache: EmbeddingCache | None,
    fingerprint: Mapping[str, Any],
    chunk_size: int = 4096,
    timing: Mapping[str, Any] | None = None,
) -> tuple[list[Encoded], CacheStats]:
    """Encodings of ``texts`` in order, encoding only what the cache lacks.

    ``encode`` maps a list of texts to one encoding per text. Duplicate texts are encoded
    once. With ``cache=None`` everything is encoded and nothing is stored. ``timing``: settings
    that change how long encoding takes but not its output (device, threads, batch size), for
    latency measurement only (:mod:`evalsuite.retrievers.encode_timing`); not part of the key.
    """
    hook = _HOOK.get()
    if hook is not None:
        return hook(texts, encode, cache=cache, fingerprint=fingerprint, chunk_size=chunk_size, plain=_cached_encode,
                    timing=timing)
    return _cached_encode(texts, encode, cache=cache, fingerprint=fingerprint, chunk_size=chunk_size)


def _cached_encode(
    texts: Sequence[str],
    encode: Callable[[list[str]], Sequence[Encoded]],
    *,
    cache: EmbeddingCache | None,
    fingerprint: Mapping[str, Any],
    chunk_size: int = 4096,
) -> tuple[list[Encoded], CacheStats]:
    stats = CacheStats(requested=len(texts))
    keys = [text_key(t) for t in texts]
    unique: dict[str, str] = dict(zip(keys, texts))
    found: dict[str, Encoded] = {}
    if cache is not None:
        try:
            found, stats.corrupt = cache.get_many(fingerprint, list(unique))
        except (OSError, sqlite3.OperationalError) as exc:  # read-only / unreadable cache: encode, keep nothing
            stats.unusable = f"{cache.root}: {exc}"
            _warn_unusable(stats.unusable)
            cache = None
    missing = [k for k in unique if k not in found]
    stats.hits = sum(1 for k in keys if k in found)
    for start in range(0, len(missing), chunk_size):
        chunk = missing[start:start + chunk_size]
        began = time.perf_counter()
        values = list(encode([unique[k] for k in chunk]))
        stats.seconds_encoding += time.perf_counter() - began
        if len(values) != len(chunk):
            raise RuntimeError(f"encoder returned {len(values)} encodings for {len(chunk)} texts")
        new = dict(zip(chunk, values))
        found.update(new)
        # stored chunk by chunk: an interrupted run keeps its work
        if cache is not None and (reason := cache.put_many_or_warn(fingerprint, new)) is not None:
            stats.unusable = reason
            cache = None
    stats.encoded = len(missing)
    return [found[k] for k in keys], stats
