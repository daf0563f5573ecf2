"""evalsuite: retrieval evaluation and benchmarking.

The public API is importable from the top level; submodules are loaded on first use
so that ``import evalsuite`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "Corpus": "evalsuite.types",
    "DataError": "evalsuite.errors",
    "Document": "evalsuite.types",
    "EvalResult": "evalsuite.metrics.evaluate",
    "EvalsuiteError": "evalsuite.errors",
    "MetricSpec": "evalsuite.metrics.spec",
    "Qrels": "evalsuite.types",
    "Queries": "evalsuite.types",
    "Run": "evalsuite.types",
    "TaskData": "evalsuite.types",
    "ConfigError": "evalsuite.errors",
    "check_leakage": "evalsuite.metrics.leakage",
    "compare": "evalsuite.metrics.stats",
    "evaluate": "evalsuite.metrics.evaluate",
    "evaluate_gates": "evalsuite.gates",
    "get_retriever": "evalsuite.retrievers",
    "load_golden_set": "evalsuite.tasks.golden",
    "load_results": "evalsuite.results",
    "load_suite": "evalsuite.config",
    "render_html": "evalsuite.report",
    "render_markdown": "evalsuite.report",
    "run_suite": "evalsuite.runner",
    "parse_metric": "evalsuite.metrics.spec",
    "read_qrels": "evalsuite.io",
    "read_run": "evalsuite.io",
    "results_table": "evalsuite.metrics.evaluate",
    "write_qrels": "evalsuite.io",
    "write_run": "evalsuite.io",
}

__all__ = sorted([*_EXPORTS, "__version__"])

if TYPE_CHECKING:  # pragma: no cover
    from evalsuite.config import load_suite  # noqa: F401
    from evalsuite.errors import ConfigError, DataError, EvalsuiteError  # noqa: F401
    from evalsuite.gates import evaluate_gates  # noqa: F401
    from evalsuite.io import read_qrels, read_run, write_qrels, write_run  # noqa: F401
    from evalsuite.metrics.evaluate import EvalResult, evaluate, results_table  # noqa: F401
    from evalsuite.metrics.leakage import check_leakage  # noqa: F401
    from evalsuite.metrics.spec import MetricSpec, parse_metric  # noqa: F401
    from evalsuite.metrics.stats import compare  # noqa: F401
    from evalsuite.report import render_html, render_markdown  # noqa: F401
    from evalsuite.results import load_results  # noqa: F401
    from evalsuite.retrievers import get_retriever  # noqa: F401
    from evalsuite.runner import run_suite  # noqa: F401
    from evalsuite.tasks.golden import load_golden_set  # noqa: F401
    from evalsuite.types import Corpus, Document, Qrels, Queries, Run, TaskData  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'evalsuite' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
