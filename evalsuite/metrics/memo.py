"""Memo of seeded resampling statistics, kept in the run's cache folder.

A report's bootstrap intervals, randomization tests and paired correlation bootstraps are pure
functions of their input arrays and parameters (metric, resamples, seed): a re-run whose
results did not change would compute the very same numbers again (most of a warm re-run's
report time). :class:`StatsMemo` keeps each result under a key hashed from

* a version string: :data:`MEMO_VERSION` (bump it when a statistic's algorithm changes), the
  evalsuite version, numpy's (whose random generator draws the resamples) and a hash of the
  source of the modules that compute them (``stats.py``, ``correlation.py``, this one, and
  those the caller names: the report model);
* the kind of statistic and its parameters (JSON, sorted keys);
* the exact bytes, dtype and shape of every input array (float64);

so any change of input or parameter misses. Values are float64 arrays stored bit for bit
(the memo returns exactly what the computation returned). Storage: one SQLite file,
``<cache>/statistics/memo-v<MEMO_VERSION>.sqlite``, every row with a checksum of its key and
bytes; a damaged row, or one a damaged index leads to under another key, is ignored (and
overwritten when recomputed), a file that is not a database or fails ``PRAGMA quick_check``
is deleted and started afresh, and a cache that cannot be read or written (read-only, locked,
missing permissions) leaves the memo off, with a warning: the statistics are computed as
without one.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from evalsuite._cachefile import require_intact, row_checksum, source_hash

__all__ = ["MEMO_VERSION", "StatsMemo"]

#: bump when the result of a memoised statistic changes for the same inputs (algorithm, convention)
MEMO_VERSION = 1
_TIMEOUT_S = 2.0  # another process writing the memo: wait this long, then go on without it


def _version(sources: Sequence[str | Path] = ()) -> str:
    from evalsuite import __version__

    return (f"stats-memo {MEMO_VERSION}; evalsuite {__version__}; numpy {np.__version__}; "
            f"code {_code_hash(sources)}")


def _code_hash(sources: Sequence[str | Path]) -> str:
    """Hash of the source of the modules that compute the memoised statistics (``stats.py``,
    ``correlation.py``, this one, and the caller's ``sources``), so that a change to one of them
    misses even when nobody bumps :data:`MEMO_VERSION` (a development checkout keeps its version
    number across commits)."""
    here = Path(__file__).resolve().parent
    return source_hash([here / "stats.py", here / "correlation.py", here / "memo.py", *map(Path, sources)])


class StatsMemo:
    """Results of pure statistics by a hash of their exact inputs (see the module docstring).

    ``StatsMemo(None)`` memoises nothing. Writes are gathered and committed by :meth:`close`
    (one transaction); use the memo as a context manager.
    """

    def __init__(self, cache_dir: str | Path | None, *, sources: Sequence[str | Path] = ()) -> None:
        self.path = Path(cache_dir) / "statistics" / f"memo-v{MEMO_VERSION}.sqlite" if cache_dir is not None else None
        self._conn: sqlite3.Connection | None = None
        self._off = self.path is None
        self._pending: dict[str, tuple[bytes, bytes]] = {}
        self._prefix = _version(sources).encode() if not self._off else b""
        self.hits = 0
        self.misses = 0

    def __enter__(self) -> StatsMemo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- keys and values ---------------------------------------------------------------------

    def key(self, kind: str, inputs: Sequence[ArrayLike], params: Mapping[str, Any]) -> str:
        """The hash of a statistic's kind, parameters and exact input arrays."""
        h = hashlib.blake2b(digest_size=20)
        h.update(self._prefix + b"\0" + kind.encode() + b"\0")
        h.update(json.dumps(dict(params), sort_keys=True, default=str).encode() + b"\0")
        for array in inputs:
            a = np.ascontiguousarray(array, dtype=np.float64)
            h.update(f"{a.dtype.str}{a.shape}".encode() + b"\0")
            h.update(a.tobytes())
        return h.hexdigest()

    def remember(self, kind: str, inputs: Sequence[ArrayLike], params: Mapping[str, Any],
                 compute: Callable[[], ArrayLike]) -> NDArray[np.float64]:
        """The stored result of ``kind`` on ``inputs`` with ``params``, or ``compute()`` (then stored);
        a 1-d float64 array either way."""
        if self._off:
            return np.asarray(compute(), dtype=np.float64).ravel()
        key = self.key(kind, inputs, params)
        found = self._get(key)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        value = np.asarray(compute(), dtype=np.float64).ravel()
        blob = value.astype("<f8").tobytes()
        self._pending[key] = (blob, row_checksum(blob, key))
        return value

    # -- storage -----------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection | None:
        if self._conn is not None or self._off:
            return self._conn
        assert self.path is not None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._conn = self._open(self.path)
            except sqlite3.OperationalError:
                raise  # locked, read-only, no space: not damage
            except sqlite3.DatabaseError:  # not a database: a memo is cheap to rebuild
                self.path.unlink()
                self._conn = self._open(self.path)
        except (OSError, sqlite3.Error) as exc:
            self._off = True  # unusable cache: compute everything, store nothing
            self._conn = None
            _warn(f"statistics memo not usable ({self.path}: {exc}); computing without it")
        return self._conn

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=_TIMEOUT_S)
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS memo (key TEXT PRIMARY KEY, value BLOB, checksum BLOB)")
            require_intact(conn)  # damaged pages: rebuilt
        except sqlite3.OperationalError as exc:
            if "readonly" not in str(exc):  # a read-only memo can still be read
                conn.close()
                raise
        except BaseException:
            conn.close()
            raise
        return conn

    def _get(self, key: str) -> NDArray[np.float64] | None:
        pending = self._pending.get(key)
        if pending is not None:
            return np.frombuffer(pending[0], dtype="<f8").astype(np.float64)
        conn = self._connection()
        if conn is None:
            return None
        try:
            row = conn.execute("SELECT value, checksum FROM memo WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error:
            return None
        if row is None:
            return None
        blob, checksum = row
        if not isinstance(blob, bytes) or len(blob) % 8 or row_checksum(blob, key) != checksum:
            return None  # damaged: recomputed, and the row replaced on close
        return np.frombuffer(blob, dtype="<f8").astype(np.float64)

    def close(self) -> None:
        """Commit what was computed (a warning, and nothing kept, when the cache cannot be written)."""
        try:
            if self._pending:
                conn = self._connection()
                if conn is not None:
                    with conn:
                        conn.executemany("INSERT OR REPLACE INTO memo VALUES (?, ?, ?)",
                                         [(k, b, c) for k, (b, c) in self._pending.items()])
        except sqlite3.Error as exc:  # read-only, locked or full: computed, just not kept
            _warn(f"statistics not kept in the memo ({self.path}: {exc}); the next report computes them again")
        finally:
            self._pending.clear()
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _warn(message: str) -> None:
    import warnings

    warnings.warn(message, RuntimeWarning, stacklevel=3)
