"""Metrics: ranking metrics (trec_eval-exact), correlations for STS, and evaluation."""

from evalsuite.metrics.correlation import CorrelationResult, correlate, pearson, spearman
from evalsuite.metrics.evaluate import DEFAULT_METRICS, EvalResult, evaluate, judged_hits, results_table
from evalsuite.metrics.ranking import METRICS, Hits, RankingMetric
from evalsuite.metrics.spec import MetricSpec, parse_metric, parse_metrics

__all__ = [
    "DEFAULT_METRICS",
    "METRICS",
    "CorrelationResult",
    "EvalResult",
    "Hits",
    "MetricSpec",
    "RankingMetric",
    "correlate",
    "evaluate",
    "judged_hits",
    "parse_metric",
    "parse_metrics",
    "pearson",
    "results_table",
    "spearman",
]
