"""Gate decisions on hand-built results: absolute rules, slices, regressions, loud failures."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from pydantic import ValidationError

from evalsuite.gates import GateSpec, evaluate_gates
from evalsuite.results import CellResult, SuiteResults


def cell(system: str, values: dict[str, float], task: str = "t", metric: str = "recall@10",
         **kwargs: object) -> CellResult:
    return CellResult(task=task, system=system, kind="retrieval", aggregate={metric: float(np.mean(list(
        values.values()))) if values else float("nan")}, per_query={metric: values}, **kwargs)  # type: ignore[arg-type]


def results(*cells: CellResult, run_id: str = "new", tags: dict[str, list[str]] | None = None,
            content_hash: str = "h1") -> SuiteResults:
    return SuiteResults(suite="s", run_id=run_id, created="now", metrics=["recall@10"], environment={},
                        tasks=[{"name": "t", "content_hash": content_hash, "query_tags": tags or {}}],
                        systems=[], cells=list(cells))


def values(mean: float, n: int = 60, seed: int = 0, spread: float = 0.2) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    x = np.clip(mean + rng.normal(0, spread, n), 0, 1)
    x += mean - x.mean()
    return {f"q{i}": float(v) for i, v in enumerate(x)}


FINE_TUNE = GateSpec(name="fine-tune", metric="recall@10", below=0.65, decision="FINE-TUNE RECOMMENDED",
                     otherwise="BASELINE ADEQUATE", on_fire="warn")


def test_absolute_rule_speaks_with_the_interval() -> None:
    report = evaluate_gates(results(cell("dense", values(0.60))), [FINE_TUNE])
    (r,) = report.results
    assert r.status == "warn" and r.decision == "FINE-TUNE RECOMMENDED"
    assert r.message.startswith("FINE-TUNE RECOMMENDED: recall@10 = 0.600 [")
    assert "below 0.65 with" in r.message and "of the bootstrap mass" in r.message
    assert r.mass_beyond is not None and r.mass_beyond > 0.9 and r.ci is not None and r.ci[0] < 0.6 < r.ci[1]
    assert report.exit_code == 0  # on_fire: warn
    ok = evaluate_gates(results(cell("dense", values(0.80))), [FINE_TUNE]).results[0]
    assert ok.status == "pass" and ok.decision == "BASELINE ADEQUATE"


def test_confidence_demands_more_bootstrap_mass() -> None:
    near = results(cell("dense", values(0.63, n=30, spread=0.3)))
    plain = evaluate_gates(near, [FINE_TUNE]).results[0]
    strict = evaluate_gates(near, [FINE_TUNE.model_copy(update={"confidence": 0.99})]).results[0]
    assert plain.decision == "FINE-TUNE RECOMMENDED" and strict.decision == "BASELINE ADEQUATE"
    assert "the 95% interval contains 0.65" in plain.message


def test_unresolvable_threshold_warns() -> None:
    r = evaluate_gates(results(cell("bm25", {"a": 1.0, "b": 1.0, "c": 0.0})),
                       [GateSpec(name="g", metric="recall@10", below=0.67)]).results[0]
    assert any("3 queries cannot resolve threshold 0.67" in w for w in r.warnings)


@pytest.mark.parametrize(
    ("the_cell", "message"),
    [
        (cell("dense", {}), "no evaluated query"),
        (cell("dense", {"a": float("nan")}), "no evaluated query"),
        (cell("dense", values(0.9), missing_queries=["q77"]), "partial result"),
    ],
)
def test_missing_evidence_fails_loudly(the_cell: CellResult, message: str) -> None:
    report = evaluate_gates(results(the_cell), [GateSpec(name="g", metric="recall@10", below=0.5)])
    assert report.results[0].status == "fail" and message in report.results[0].message
    assert report.exit_code == 1


def test_gates_naming_nothing_fail() -> None:
    r = results(cell("dense", values(0.9)))
    for gate, message in ((GateSpec(name="g", metric="recall@10", task="nope", below=0.5), "no results for task"),
                          (GateSpec(name="g", metric="recall@10", system="nope", below=0.5), "no results for system"),
                          (GateSpec(name="g", metric="map", below=0.5), "no result has metric map")):
        assert message in evaluate_gates(r, [gate]).results[0].message
    assert "the results are empty" in evaluate_gates(results(), [FINE_TUNE]).results[0].message


def test_a_collapsed_slice_is_not_hidden_by_the_average() -> None:
    v = values(0.85, n=60)
    tags = {q: ["rare"] if i < 6 else ["common"] for i, q in enumerate(v)}
    for q in list(v)[:6]:
        v[q] = 0.0
    report = evaluate_gates(results(cell("dense", v), tags=tags),
                            [FINE_TUNE.model_copy(update={"per_tag": True, "on_fire": "fail"})])
    by_slice = {r.slice: r for r in report.results}
    assert by_slice[None].status == "pass" and by_slice["common"].status == "pass"
    assert by_slice["rare"].status == "fail" and "(tag rare)" in by_slice["rare"].message


REGRESSION = GateSpec(name="no-regression", metric="recall@10", max_drop=0.02)


def test_regression_fails_warns_and_passes() -> None:
    base = values(0.70, n=80, seed=1, spread=0.15)
    baseline = results(cell("dense", base), run_id="base")
    rng = np.random.default_rng(5)
    worse = {q: max(0.0, v - 0.10 + rng.normal(0, 0.02)) for q, v in base.items()}
    noisy = {q: min(1.0, max(0.0, v + rng.normal(-0.003, 0.05))) for q, v in base.items()}
    better = {q: min(1.0, v + 0.05) for q, v in base.items()}
    r = evaluate_gates(results(cell("dense", worse)), [REGRESSION], baseline=baseline).results[0]
    assert r.status == "fail" and r.message.startswith("REGRESSION: recall@10 dropped by")
    assert "Holm-corrected" in r.message and r.p_corrected is not None and r.p_corrected < 0.05
    r = evaluate_gates(results(cell("dense", noisy)), [REGRESSION], baseline=baseline).results[0]
    assert r.status == "warn" and r.decision == "WITHIN NOISE"
    r = evaluate_gates(results(cell("dense", better)), [REGRESSION], baseline=baseline).results[0]
    assert r.status == "pass" and r.decision == "NO REGRESSION"


def test_regression_needs_a_comparable_baseline() -> None:
    new = results(cell("dense", values(0.7)))
    assert "without a baseline" in evaluate_gates(new, [REGRESSION]).results[0].message
    other = results(cell("bm25", values(0.7)), run_id="base")
    by_system = {r.system: r for r in evaluate_gates(new, [REGRESSION], baseline=other).results}
    assert by_system["dense"].status == "fail" and "has no result for dense" in by_system["dense"].message
    assert by_system["bm25"].status == "fail" and by_system["bm25"].message.startswith("MISSING")
    changed = results(cell("dense", values(0.7)), run_id="base", content_hash="h0")
    assert "data changed since baseline" in evaluate_gates(new, [REGRESSION], baseline=changed).results[0].message


def test_outputs_for_ci() -> None:
    base = results(cell("dense", values(0.7, seed=1)), run_id="base")
    report = evaluate_gates(results(cell("dense", values(0.4, seed=1)), cell("bm25", values(0.9))),
                            [FINE_TUNE, REGRESSION], baseline=base)
    root = ET.fromstring(report.junit_xml())
    cases = root.findall(".//testcase")
    assert len(cases) == len(report.results) == 4
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed == ["no-regression [t / dense]", "no-regression [t / bm25]"]
    assert report.markdown().startswith("### evalsuite gates FAILED: 2 failed, 1 warning, 1 passed")
    assert report.to_dict()["exit_code"] == 1


def test_spec_validation() -> None:
    with pytest.raises(ValidationError, match="exactly one of below, above or max_drop"):
        GateSpec(name="g", metric="ndcg@10", below=0.3, max_drop=0.1)
    with pytest.raises(ValidationError, match="unknown metric"):
        GateSpec(name="g", metric="ndgc@10", below=0.3)
    assert GateSpec(name="g", metric="nDCG_cut_10", below=0.3).metric == "ndcg@10"
