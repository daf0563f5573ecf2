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
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # imported where a frame is asked for: reading and writing results needs no pandas
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
    #: STS only: the system's score and the gold score of every sentence pair, in file order
    #: ({"predicted": [...], "gold": [...]}), what a bootstrap over pairs resamples
    pair_scores: dict[str, list[float]] = field(default_factory=dict)
    costs: dict[str, Any] = field(default_factory=dict)  # evalsuite.retrievers.cost (fixed key names)

    def per_query_frame(self) -> pd.DataFrame:
        """Per-query values: index query_id, a column per metric (NaN where excluded)."""
        import pandas as pd

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
    finetune: dict[str, Any] = field(default_factory=dict)  # evalsuite finetune: split, pairs, gain, ...

    def cell(self, task: str, system: str) -> CellResult:
        for c in self.cells:
            if c.task == task and c.system == system:
                return c
        raise KeyError(f"no result for system {system!r} on task {task!r}")

    def table(self, metric: str | None = None) -> pd.DataFrame:
        """Aggregates as a frame: rows (task, system), a column per metric."""
        import pandas as pd

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
            **({"finetune": self.finetune} if self.finetune else {}),
        })

    def write(self, path: str | Path) -> Path:
        from evalsuite.io._text import atomic_write

        with atomic_write(path) as fh:
            json.dump(self.to_dict(), fh, indent=1, allow_nan=False)
            fh.write("\n")
        return Path(path)

    @classmethod
    def from_dict(cls, data: Any, *, path: str | None = None, source: str | None = None) -> SuiteResults:
        """Results from their JSON form, after checking its shape (a wrong one raises DataError naming the field).

        ``source`` names where ``data`` came from in messages (default: ``path``)."""
        where = source or path
        if not isinstance(data, dict):
            raise DataError(f"not an evalsuite results file (a JSON {type(data).__name__}, expected an object)",
                            path=where)
        if data.get("schema") != SCHEMA:
            raise DataError(f"not an evalsuite results file (schema {_short(data.get('schema'))}, "
                            f"expected {SCHEMA!r})", path=where)
        checked = _check_shape(data, where)
        cells = [CellResult(**{k: v for k, v in c.items() if k in CellResult.__dataclass_fields__})
                 for c in checked["results"]]
        for c in cells:
            c.aggregate = {k: (math.nan if v is None else v) for k, v in c.aggregate.items()}
        return cls(
            suite=checked["suite"], run_id=checked["run_id"], created=checked["created"],
            metrics=checked["metrics"], environment=checked["environment"], tasks=checked["tasks"],
            systems=checked["systems"], cells=cells, config=checked["config"], skipped=checked["skipped"],
            gates=checked["gates"], timing=checked["timing"], path=path, finetune=checked["finetune"] or {},
        )


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_shape(data: dict[str, Any], where: str | None) -> dict[str, Any]:
    """``data`` validated against :class:`_ResultsFile` (types of every field the code reads)."""
    from pydantic import ValidationError

    from evalsuite.safepaths import name_problem

    try:
        checked = _ResultsFile.model_validate(data).model_dump()
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in error["loc"]).lstrip(".")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise DataError(f"results file has the wrong shape: {loc or 'top level'}: {error['msg']}{more}",
                        path=where, hint="give a results.json written by 'evalsuite run'") from None
    seed = checked["config"].get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise DataError(f"results file: config.seed {_short(seed)} is not an integer in [0, 2^32)", path=where,
                        hint="give a results.json written by 'evalsuite run'")
    for kind, value in (("suite", checked["suite"]), ("run id", checked["run_id"])):
        problem = name_problem(kind, value)
        if problem is not None:
            raise DataError(f"results file: {problem}", path=where)
    return checked


#: cell fields a results file may hold in any shape (what reads them copes with any)
_FREE_CELL_FIELDS = ("pair_scores", "costs")


def _checked_cell_fields(field: Any) -> dict[str, Any]:
    """The fields of :class:`CellResult` as pydantic field definitions, so that the shape
    check of a results file follows the dataclass: the same names, types and defaults,
    except that an aggregate may be None (NaN is written as null) and the
    :data:`_FREE_CELL_FIELDS` are left unchecked."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(CellResult)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(CellResult):
        if f.name in _FREE_CELL_FIELDS:
            continue
        annotation = dict[str, float | None] if f.name == "aggregate" else hints[f.name]
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = field(default_factory=f.default_factory)
        else:
            default = ...
        out[f.name] = (annotation, default)
    return out


def _results_models() -> Any:
    from pydantic import BaseModel, ConfigDict, Field, create_model

    class _Model(BaseModel):
        # no NaN/Infinity tokens: results are written with allow_nan=False (NaN as null)
        model_config = ConfigDict(strict=True, extra="allow", allow_inf_nan=False)

    _Cell = create_model("_Cell", __base__=_Model, **_checked_cell_fields(Field))

    class _File(_Model):
        suite: str
        run_id: str
        created: str
        metrics: list[str]
        environment: dict[str, Any] = Field(default_factory=dict)
        config: dict[str, Any] = Field(default_factory=dict)
        tasks: list[dict[str, Any]] = Field(default_factory=list)
        systems: list[dict[str, Any]] = Field(default_factory=list)
        skipped: list[dict[str, Any]] = Field(default_factory=list)
        timing: dict[str, float] = Field(default_factory=dict)
        gates: list[dict[str, Any]] = Field(default_factory=list)
        results: list[_Cell] = Field(default_factory=list)  # type: ignore[valid-type]
        finetune: dict[str, Any] = Field(default_factory=dict)  # written by evalsuite finetune

    return _File


_ResultsFile = _results_models()


def load_results(path: str | Path) -> SuiteResults:
    """Read a ``results.json`` (or a results folder containing one)."""
    from evalsuite.io._text import read_text

    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    if not p.is_file():
        raise DataError("is a folder, not a results file" if p.is_dir() else
                        "is a device or pipe, not a results file" if p.exists() else "results file not found",
                        path=p, hint="give a results.json or the folder of a suite run")
    text = read_text(p, "results file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON in results file: {exc.msg}", path=p, line=exc.lineno) from None
    except RecursionError:
        raise DataError("results file is nested too deeply to be an evalsuite results file", path=p) from None
    return SuiteResults.from_dict(data, path=str(p))
