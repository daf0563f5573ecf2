"""Suite results: what ``evalsuite run`` writes, and what gates, reports and history read.

One self-contained ``results.json`` per run (schema ``evalsuite.results/1``) holds the
environment (versions, platform, command), every task (with its data content hash), every
system (its :class:`~evalsuite.retrievers.base.RetrieverMeta`), and per (task, system)
the aggregate and per-query metric values, timings and counters. Nothing is rounded.
"""

from __future__ import annotations

import json
import math
import platform
import sys
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evalsuite.errors import DataError

__all__ = ["SCHEMA", "CellResult", "SuiteResults", "environment", "load_results"]

SCHEMA = "evalsuite.results/1"
_PACKAGES = ("numpy", "pandas", "scipy", "pyarrow", "torch", "transformers", "sentence-transformers", "faiss-cpu",
             "onnxruntime", "bm25s", "pyserini", "mteb", "beir", "jinja2")


def environment(command: list[str] | None = None) -> dict[str, Any]:
    """Versions and platform, for reproducibility."""
    packages = {}
    for name in ("evalsuite", *_PACKAGES):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            continue
    return {
        "evalsuite": packages.get("evalsuite", "unknown"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": packages,
        "command": command if command is not None else sys.argv,
    }


def _clean(value: Any) -> Any:
    """JSON-safe: NaN -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        number = float(value)
        return None if math.isnan(number) else number
    if isinstance(value, np.integer):
        return int(value)
    return value


@dataclass
class CellResult:
    """One system on one task."""

    task: str
    system: str
    kind: str  # "retrieval" | "sts"
    aggregate: dict[str, float]
    per_query: dict[str, dict[str, float | None]] = field(default_factory=dict)  # metric -> query -> value
    n_queries: dict[str, int] = field(default_factory=dict)
    missing_queries: list[str] = field(default_factory=list)
    excluded_queries: list[str] = field(default_factory=list)
    identical_ids_dropped: int = 0
    run_file: str | None = None
    timing: dict[str, float] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def per_query_frame(self) -> pd.DataFrame:
        """Per-query values: index query_id, a column per metric (NaN where excluded)."""
        frame = pd.DataFrame({m: pd.Series(v, dtype=float) for m, v in self.per_query.items()})
        frame.index.name = "query_id"
        return frame


@dataclass
class SuiteResults:
    """Everything one suite run produced."""

    suite: str
    run_id: str
    created: str
    metrics: list[str]
    environment: dict[str, Any]
    tasks: list[dict[str, Any]]
    systems: list[dict[str, Any]]
    cells: list[CellResult]
    config: dict[str, Any] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    gates: list[dict[str, Any]] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)
    path: str | None = None

    def cell(self, task: str, system: str) -> CellResult:
        for c in self.cells:
            if c.task == task and c.system == system:
                return c
        raise KeyError(f"no result for system {system!r} on task {task!r}")

    def table(self, metric: str | None = None) -> pd.DataFrame:
        """Aggregates as a frame: rows (task, system), a column per metric."""
        rows = [{"task": c.task, "system": c.system, **c.aggregate} for c in self.cells]
        frame = pd.DataFrame(rows).set_index(["task", "system"]) if rows else pd.DataFrame()
        return frame[[metric]] if metric is not None else frame

    def to_dict(self) -> dict[str, Any]:
        return _clean({
            "schema": SCHEMA,
            "suite": self.suite,
            "run_id": self.run_id,
            "created": self.created,
            "metrics": self.metrics,
            "environment": self.environment,
            "config": self.config,
            "tasks": self.tasks,
            "systems": self.systems,
            "skipped": self.skipped,
            "timing": self.timing,
            "gates": self.gates,
            "results": [c.__dict__ for c in self.cells],
        })

    def write(self, path: str | Path) -> Path:
        from evalsuite.io._text import atomic_write

        with atomic_write(path) as fh:
            json.dump(self.to_dict(), fh, indent=1, allow_nan=False)
            fh.write("\n")
        return Path(path)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, path: str | None = None) -> SuiteResults:
        if data.get("schema") != SCHEMA:
            raise DataError(f"not an evalsuite results file (schema {data.get('schema')!r}, expected {SCHEMA!r})",
                            path=path)
        cells = [CellResult(**{k: v for k, v in c.items() if k in CellResult.__dataclass_fields__})
                 for c in data.get("results", [])]
        for c in cells:
            c.aggregate = {k: (math.nan if v is None else v) for k, v in c.aggregate.items()}
        return cls(
            suite=data["suite"], run_id=data["run_id"], created=data["created"], metrics=data["metrics"],
            environment=data.get("environment", {}), tasks=data.get("tasks", []), systems=data.get("systems", []),
            cells=cells, config=data.get("config", {}), skipped=data.get("skipped", []), gates=data.get("gates", []),
            timing=data.get("timing", {}), path=path,
        )


def load_results(path: str | Path) -> SuiteResults:
    """Read a ``results.json`` (or a results folder containing one)."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    if not p.is_file():
        raise DataError("results file not found", path=p, hint="give a results.json or the folder of a suite run")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON in results file: {exc.msg}", path=p, line=exc.lineno) from None
    return SuiteResults.from_dict(data, path=str(p))
