"""Cost gates: a budget on a measured cost (query_latency_p95_ms, bytes_per_doc, ...) per result."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalsuite.config import load_suite
from evalsuite.errors import ConfigError
from evalsuite.gates import GateSpec, evaluate_gates
from evalsuite.results import CellResult, SuiteResults


def _results() -> SuiteResults:
    def cell(system: str, **costs: object) -> CellResult:
        return CellResult(task="t", system=system, kind="retrieval", aggregate={"ndcg@10": 0.5},
                          per_query={"ndcg@10": {"q1": 0.5, "q2": 0.5}}, costs=dict(costs))

    cells = [cell("fast", query_latency_p95_ms=12.5, bytes_per_doc=384.0, latency_queries=50),
             cell("slow", query_latency_p95_ms=61.0, bytes_per_doc=1536.0, latency_queries=50),
             cell("unmeasured", bytes_per_doc=96.0),
             CellResult(task="sts", system="fast", kind="sts", aggregate={"spearman": 0.8})]
    return SuiteResults(suite="s", run_id="r", created="now", metrics=["ndcg@10"], environment={},
                        tasks=[{"name": "t"}, {"name": "sts"}], systems=[], cells=cells)


def test_latency_budget_fails_the_slow_system_and_missing_evidence() -> None:
    gate = GateSpec(name="latency", metric="query_latency_p95_ms", above=50)
    report = evaluate_gates(_results(), [gate])
    by = {r.system: r for r in report.results}
    assert set(by) == {"fast", "slow", "unmeasured"}  # retrieval results only
    assert by["fast"].status == "pass" and "within the budget (at most 50)" in by["fast"].message
    assert by["slow"].status == "fail"
    assert by["slow"].message.startswith("FAIL: query_latency_p95_ms = 61 on t for slow: above 50")
    assert "50 queries timed one at a time" in by["slow"].message
    assert by["unmeasured"].status == "fail" and "not measured" in by["unmeasured"].message
    assert report.exit_code == 1


def test_memory_budget_with_a_decision_and_warn() -> None:
    gate = GateSpec(name="memory", metric="bytes_per_doc", above=512, system="slow", on_fire="warn",
                    decision="OVER BUDGET")
    (result,) = evaluate_gates(_results(), [gate]).results
    assert result.status == "warn" and result.decision == "OVER BUDGET" and result.estimate == 1536.0
    below = GateSpec(name="floor", metric="bytes_per_doc", below=100, system="unmeasured")
    (r,) = evaluate_gates(_results(), [below]).results
    assert r.status == "fail" and "below 100" in r.message


def test_cost_gate_on_an_unknown_system_fails() -> None:
    (r,) = evaluate_gates(_results(), [GateSpec(name="m", metric="bytes_per_doc", above=1, system="nope")]).results
    assert r.status == "fail" and "no retrieval result for system 'nope'" in r.message


def test_cost_gate_takes_no_max_drop_and_metrics_still_parse() -> None:
    with pytest.raises(ValueError, match="takes above or below, not max_drop"):
        GateSpec(name="x", metric="bytes_per_doc", max_drop=0.1)
    assert GateSpec(name="y", metric="nDCG@10", below=0.5).metric == "ndcg@10"


def test_suite_accepts_cost_gates_and_sweep_point_systems(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ntasks:\n  - {name: t, type: golden, path: x}\nretrievers:\n"
                     "  - {name: m, type: dense, sweep: {dim: [128], precision: [int8]}}\n"
                     "gates:\n  - {name: lat, metric: query_latency_p95_ms, above: 50}\n"
                     "  - {name: mem, metric: bytes_per_doc, above: 512, system: m@128/int8/flat}\n")
    loaded = load_suite(suite)
    assert [g.metric for g in loaded.gates] == ["query_latency_p95_ms", "bytes_per_doc"]
    suite.write_text(suite.read_text().replace("system: m@128/int8/flat", "system: other"))
    with pytest.raises(ConfigError, match="names system 'other'"):
        load_suite(suite)
