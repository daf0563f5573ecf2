"""What the on-disk caches share: the embedding cache and the latency store
(:mod:`evalsuite.retrievers.cache`) and the statistics memo (:mod:`evalsuite.metrics.memo`).

* :func:`row_checksum`: every row carries a checksum of its key and bytes, so a damaged row,
  or an intact one that a damaged key index leads to under another key, is never served;
* :func:`require_intact`: ``PRAGMA quick_check`` *reports* damaged pages (it does not raise),
  so its verdict is read and turned into the error that makes a cache set the file aside;
* :func:`source_hash`: a hash of the code that computes what a cache keeps, part of its key:
  a development checkout keeps its version number across changes to that code.

Standard library only, importable from anywhere below the command line.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from pathlib import Path

__all__ = ["require_intact", "row_checksum", "source_hash"]


def row_checksum(blob: bytes, key: str | None = None) -> bytes:
    """blake2b (8 bytes) of ``key``, a NUL byte and ``blob``; ``key=None``: of ``blob`` alone
    (how the embedding cache checked rows written before the key was covered)."""
    digest = hashlib.blake2b(digest_size=8)
    if key is not None:
        digest.update(key.encode() + b"\0")
    digest.update(blob)
    return digest.digest()


def require_intact(conn: sqlite3.Connection) -> None:
    """Raise :class:`sqlite3.DatabaseError` unless ``PRAGMA quick_check`` answers "ok"."""
    verdict = conn.execute("PRAGMA quick_check").fetchone()
    if not verdict or verdict[0] != "ok":
        raise sqlite3.DatabaseError(f"quick_check: {verdict[0] if verdict else 'no answer'}")


def source_hash(paths: Iterable[Path]) -> str:
    """Hex blake2b (8 bytes) of the files' contents in order (of its path, for a file that
    cannot be read)."""
    digest = hashlib.blake2b(digest_size=8)
    for path in paths:
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(str(path).encode())
    return digest.hexdigest()
