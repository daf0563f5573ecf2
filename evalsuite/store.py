"""The results store: every suite run, in one local SQLite file, comparable by id.

``evalsuite run`` adds each run (its full ``results.json`` plus one row per
task x system x metric for quick queries); ``evalsuite history`` lists runs and compares
any two by id. The default file is ``<output folder>/history.sqlite``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalsuite.errors import DataError
from evalsuite.results import SuiteResults

__all__ = ["BUSY_TIMEOUT", "ResultsStore", "RunSummary"]

#: seconds to wait for a store that another process is writing
BUSY_TIMEOUT = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, suite TEXT NOT NULL, created TEXT NOT NULL, path TEXT, results TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    task TEXT NOT NULL, system TEXT NOT NULL, metric TEXT NOT NULL, value REAL,
    PRIMARY KEY (run_id, task, system, metric)
);
CREATE INDEX IF NOT EXISTS runs_by_suite ON runs (suite, created);
"""


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    suite: str
    created: str
    path: str | None
    n_results: int


class ResultsStore:
    """A SQLite file of suite runs."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _connect(self, *, write: bool = True) -> sqlite3.Connection:
        """A connection (read-only when ``write`` is false); problems become one-line DataErrors.

        A store locked by another process is waited for (``BUSY_TIMEOUT`` seconds), then
        reported as locked, not as damaged."""
        try:
            if write:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT)
            else:
                conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", timeout=BUSY_TIMEOUT, uri=True)
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        try:
            if write:
                conn.executescript(_SCHEMA)
            else:
                conn.execute("SELECT run_id, suite, created, path, results FROM runs LIMIT 0")
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc) from None
        return conn

    def _error(self, exc: sqlite3.Error) -> DataError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return DataError(f"results store is locked by another process (waited {BUSY_TIMEOUT:.0f} s)",
                             path=self.path, hint="wait for the other evalsuite command to finish, then retry")
        if "readonly" in text or "read-only" in text or "unable to open" in text:
            return DataError(f"results store cannot be written ({text})", path=self.path,
                             hint="check the permissions of the file and its folder, or pass --store")
        if "no such table" in text or "no such column" in text:
            return DataError("not an evalsuite results store (it has no runs table)", path=self.path,
                             hint="pass the history.sqlite an evalsuite run wrote, or move this file away")
        return DataError(f"results store is not a readable SQLite database ({text})", path=self.path,
                         hint="move it away; a new one is created on the next run")

    def check(self) -> None:
        """Before a run: an existing store must be intact and writable (a run adds itself at its very end)."""
        if not self.path.exists():
            return
        conn = self._connect()
        try:
            status = conn.execute("PRAGMA quick_check").fetchone()
            if not status or status[0] != "ok":
                raise DataError(f"results store is damaged (SQLite quick_check: {status[0] if status else '?'})",
                                path=self.path, hint="move it away; a new one is created on the next run")
            conn.execute("BEGIN IMMEDIATE")  # the write lock the run's final insert needs
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        finally:
            conn.close()

    def add(self, results: SuiteResults) -> None:
        rows = [(results.run_id, c.task, c.system, metric, value)
                for c in results.cells for metric, value in c.aggregate.items()]
        conn = self._connect()
        try:
            with conn:
                conn.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?)",
                             (results.run_id, results.suite, results.created, results.path,
                              json.dumps(results.to_dict())))
                conn.execute("DELETE FROM metrics WHERE run_id = ?", (results.run_id,))
                conn.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)",
                                 [(r, t, s, m, None if v != v else v) for r, t, s, m, v in rows])
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        finally:
            conn.close()

    def list(self, suite: str | None = None, limit: int = 20) -> list[RunSummary]:
        """Most recent runs first."""
        if not self.path.exists():
            return []
        conn = self._connect(write=False)
        try:
            query = ("SELECT r.run_id, r.suite, r.created, r.path, COUNT(DISTINCT m.task || '/' || m.system) "
                     "FROM runs r LEFT JOIN metrics m ON m.run_id = r.run_id "
                     + ("WHERE r.suite = ? " if suite else "")
                     + "GROUP BY r.run_id ORDER BY r.created DESC LIMIT ?")
            params: tuple[Any, ...] = (suite, limit) if suite else (limit,)
            return [RunSummary(*row) for row in conn.execute(query, params).fetchall()]
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        finally:
            conn.close()

    def get(self, run_id: str) -> SuiteResults:
        """A stored run by id; a unique prefix of the id is enough.

        The prefix is compared literally (``substr``, not ``LIKE``, in which ``%`` and ``_``
        are wildcards and ASCII case is ignored)."""
        if not self.path.exists():
            raise DataError(f"results store not found (looked for run id {run_id!r} in it)", path=self.path,
                            hint="run a suite first, or give a results.json / results folder")
        if not run_id:
            raise DataError("empty run id", path=self.path, hint="'evalsuite history' lists the stored runs")
        conn = self._connect(write=False)
        try:
            rows = conn.execute("SELECT run_id, results FROM runs WHERE substr(run_id, 1, ?) = ?",
                                (len(run_id), run_id)).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        finally:
            conn.close()
        if not rows:
            raise DataError(f"no run with id {run_id!r} in the results store", path=self.path,
                            hint="'evalsuite history' lists the stored runs")
        if len(rows) > 1 and not any(r[0] == run_id for r in rows):
            raise DataError(f"run id prefix {run_id!r} matches {len(rows)} runs: "
                            f"{', '.join(r[0] for r in rows[:5])}", path=self.path)
        chosen = next((r for r in rows if r[0] == run_id), rows[0])
        try:
            data = json.loads(chosen[1])
        except (TypeError, ValueError, RecursionError):
            raise DataError(f"stored run {chosen[0]!r} is damaged (its results are not valid JSON)", path=self.path,
                            hint="move the store away, or use the run's results.json") from None
        return SuiteResults.from_dict(data, path=None, source=f"{self.path} (run {chosen[0]})")
