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

__all__ = ["ResultsStore", "RunSummary"]

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

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.path, timeout=60)
            conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise DataError(f"results store is not a readable SQLite database ({exc})", path=self.path,
                            hint="move it away; a new one is created on the next run") from None
        return conn

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
        finally:
            conn.close()

    def list(self, suite: str | None = None, limit: int = 20) -> list[RunSummary]:
        """Most recent runs first."""
        if not self.path.exists():
            return []
        conn = self._connect()
        try:
            query = ("SELECT r.run_id, r.suite, r.created, r.path, COUNT(DISTINCT m.task || '/' || m.system) "
                     "FROM runs r LEFT JOIN metrics m ON m.run_id = r.run_id "
                     + ("WHERE r.suite = ? " if suite else "")
                     + "GROUP BY r.run_id ORDER BY r.created DESC LIMIT ?")
            params: tuple[Any, ...] = (suite, limit) if suite else (limit,)
            return [RunSummary(*row) for row in conn.execute(query, params).fetchall()]
        finally:
            conn.close()

    def get(self, run_id: str) -> SuiteResults:
        """A stored run by id; a unique prefix of the id is enough."""
        if not self.path.exists():
            raise DataError("results store not found", path=self.path, hint="run a suite first")
        conn = self._connect()
        try:
            rows = conn.execute("SELECT run_id, results FROM runs WHERE run_id LIKE ? || '%'", (run_id,)).fetchall()
        finally:
            conn.close()
        if not rows:
            raise DataError(f"no run with id {run_id!r} in the results store", path=self.path,
                            hint="'evalsuite history' lists the stored runs")
        if len(rows) > 1 and not any(r[0] == run_id for r in rows):
            raise DataError(f"run id prefix {run_id!r} matches {len(rows)} runs: "
                            f"{', '.join(r[0] for r in rows[:5])}", path=self.path)
        chosen = next((r for r in rows if r[0] == run_id), rows[0])
        return SuiteResults.from_dict(json.loads(chosen[1]), path=None)
