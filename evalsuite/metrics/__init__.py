"""Metrics: ranking metrics (trec_eval-exact), correlations for STS, and evaluation.

The names below are imported from their submodules on first use, so that importing one
submodule (e.g. :mod:`evalsuite.metrics.spec` for the CLI's help) does not load pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from evalsuite.metrics.correlation import CorrelationResult, correlate, pearson, spearman  # noqa: F401
    from evalsuite.metrics.evaluate import EvalResult, evaluate, judged_hits, results_table  # noqa: F401
    from evalsuite.metrics.ranking import METRICS, Hits, RankingMetric  # noqa: F401
    from evalsuite.metrics.spec import DEFAULT_METRICS, MetricSpec, parse_metric, parse_metrics  # noqa: F401

_WHERE = {
    "DEFAULT_METRICS": "spec",
    "METRICS": "ranking",
    "CorrelationResult": "correlation",
    "EvalResult": "evaluate",
    "Hits": "ranking",
    "MetricSpec": "spec",
    "RankingMetric": "ranking",
    "correlate": "correlation",
    "evaluate": "evaluate",
    "judged_hits": "evaluate",
    "parse_metric": "spec",
    "parse_metrics": "spec",
    "pearson": "correlation",
    "results_table": "evaluate",
    "spearman": "correlation",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'evalsuite.metrics' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"evalsuite.metrics.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
