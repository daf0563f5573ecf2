"""Costs in every result of a suite run (results.json ``costs``) and ``evalsuite run --costs``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalsuite.cli import main
from evalsuite.retrievers.cost import COST_COLUMNS, COST_KEYS

from .test_runner import SUITE, write_suite


def test_run_stores_costs_for_every_system_and_prints_them_with_costs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(tmp_path, SUITE.replace("output: out", "output: out\ncost_queries: 5"))
    code = main(["run", str(suite), "-q", "--no-report", "--costs"])
    out = capsys.readouterr().out
    assert code == 0
    header = next(line for line in out.splitlines() if line.startswith("system"))
    assert all(column in header for column in COST_COLUMNS)
    results = json.loads(next((tmp_path / "out" / "small").glob("*/results.json")).read_text())
    by_system = {c["system"]: c["costs"] for c in results["results"]}
    assert set(by_system) == {"bm25", "bm25-k1", "fused"}
    for costs in by_system.values():
        assert set(COST_KEYS) <= set(costs)
        assert costs["latency_queries"] == 5
        assert costs["query_latency_p50_ms"] <= costs["query_latency_p95_ms"]
        assert costs["bytes_per_doc"] > 0
    fused = by_system["fused"]
    assert fused["index_bytes"] == by_system["bm25"]["index_bytes"] + by_system["bm25-k1"]["index_bytes"]
    row = next(line for line in out.splitlines() if line.startswith("bm25 "))
    assert f"{by_system['bm25']['bytes_per_doc']:.0f}" in row.split()


def test_cost_queries_zero_skips_latency(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = write_suite(tmp_path, SUITE.replace("output: out", "output: out\ncost_queries: 0"))
    assert main(["run", str(suite), "-q", "--no-report", "--system", "bm25"]) == 0
    capsys.readouterr()
    results = json.loads(next((tmp_path / "out" / "small").glob("*/results.json")).read_text())
    costs = results["results"][0]["costs"]
    assert costs["query_latency_p95_ms"] is None and costs["index_bytes"] > 0


def test_a_warm_rerun_charges_the_recorded_query_encoding_and_fresh_latency_times_it_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The packaged ONNX MiniLM-L3 with its hybrid: the hybrid reuses the dense model's timing in
    the same run; the next run with the same cache reuses both; --fresh-latency times again."""
    pytest.importorskip("onnxruntime")
    text = SUITE.replace("output: out", "output: out\ncost_queries: 3").replace(
        "  - name: fused\n    type: hybrid\n    params: {retrievers: [bm25, bm25-k1], method: rrf}",
        "  - name: l3\n    type: dense\n    params: {model: paraphrase-MiniLM-L3-v2}\n"
        "  - name: fused\n    type: hybrid\n    params: {retrievers: [bm25, l3], method: rrf}")
    suite = write_suite(tmp_path, text)
    cache = tmp_path / "cache"

    def run(*extra: str) -> dict[str, dict[str, int]]:
        assert main(["run", str(suite), "-q", "--no-report", "--cache-dir", str(cache), "--system", "l3",
                     "--system", "fused", "--system", "bm25", *extra]) == 0
        capsys.readouterr()
        newest = max((tmp_path / "out" / "small").glob("*/results.json"), key=lambda p: p.stat().st_mtime_ns)
        results = json.loads(newest.read_text())
        return {c["system"]: c["costs"].get("latency_encodings") for c in results["results"]}

    cold = run()
    assert cold["l3"] == {"measured": 4, "this_run": 0, "earlier_run": 0}  # 3 one at a time + the batch
    assert cold["fused"] == {"measured": 0, "this_run": 4, "earlier_run": 0}
    assert cold["bm25"] is None  # encodes nothing
    warm = run()
    assert warm["l3"] == warm["fused"] == {"measured": 0, "this_run": 0, "earlier_run": 4}
    fresh = run("--fresh-latency")
    assert fresh["l3"] == {"measured": 4, "this_run": 0, "earlier_run": 0}
