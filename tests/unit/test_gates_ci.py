"""Gates that hold in CI (issue 12): missing evidence, unfireable thresholds, STS gates, escaping,
thin evidence, per-task correction families, wording. Hand-built results; each test first states
the case that passed (wrongly) before."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from evalsuite.cli import main
from evalsuite.gates import GateSpec, evaluate_gates, summary_line, write_baseline
from evalsuite.results import CellResult, SuiteResults, load_results

NDCG = GateSpec(name="no-ndcg-regression", metric="ndcg@10", max_drop=0.02)


def scores(mean: float, n: int = 60, seed: int = 0, spread: float = 0.2) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    x = np.clip(mean + rng.normal(0, spread, n), 0, 1)
    x += mean - x.mean()
    return {f"q{i}": float(v) for i, v in enumerate(x)}


def cell(task: str, system: str, values: dict[str, float], metric: str = "ndcg@10", **kw: Any) -> CellResult:
    return CellResult(task=task, system=system, kind="retrieval", aggregate={metric: float(np.mean(list(
        values.values())))}, per_query={metric: dict(values)}, **kw)


def suite(*cells: CellResult, run_id: str = "new", hashes: dict[str, str | None] | None = None,
          skipped: list[dict[str, str]] | None = None) -> SuiteResults:
    tasks = sorted({c.task for c in cells} | set(hashes or {}))
    infos = [{"name": t, "content_hash": (hashes or {}).get(t, f"hash-{t}")} for t in tasks]
    return SuiteResults(suite="s", run_id=run_id, created="now", metrics=["ndcg@10"], environment={}, tasks=infos,
                        systems=[], cells=list(cells), skipped=skipped or [])


def full_baseline() -> SuiteResults:
    return suite(*(cell(t, s, scores(0.5, seed=i)) for i, (t, s) in enumerate(
        [("golden", "bm25"), ("golden", "dense"), ("cranfield", "bm25"), ("cranfield", "dense")])), run_id="base")


# -- item 1: a pair the baseline has and the run lacks FAILS ---------------------------------------


def test_a_pair_missing_from_the_run_fails_its_regression_gate() -> None:
    base = full_baseline()
    # the data path broke: the optional task was skipped, its pairs vanished
    run = suite(*(c for c in base.cells if c.task == "golden"),
                skipped=[{"task": "cranfield", "reason": "task 'cranfield': data not found"}])
    report = evaluate_gates(run, [NDCG], baseline=base)
    missing = [r for r in report.results if r.decision == "MISSING"]
    assert {(r.task, r.system) for r in missing} == {("cranfield", "bm25"), ("cranfield", "dense")}
    assert all(r.status == "fail" for r in missing) and report.exit_code == 1
    assert "the task was skipped: task 'cranfield': data not found" in missing[0].message
    assert "baseline base has bm25 on cranfield" in missing[0].message
    assert sum(r.status == "pass" for r in report.results) == 2  # the golden pairs are unchanged


@pytest.mark.parametrize("allowed", [["cranfield"], ["cranfield/bm25", "cranfield/dense"], ["*/bm25", "*/dense"]])
def test_absence_allowed_explicitly(allowed: list[str]) -> None:
    base = full_baseline()
    run = suite(*(c for c in base.cells if c.task == "golden"))
    assert evaluate_gates(run, [NDCG], baseline=base, allow_missing=allowed).exit_code == 0
    in_suite = NDCG.model_copy(update={"allow_missing": allowed})
    assert evaluate_gates(run, [in_suite], baseline=base).exit_code == 0
    partly = evaluate_gates(run, [NDCG], baseline=base, allow_missing=["cranfield/bm25"])
    assert [(r.task, r.system) for r in partly.results if r.status == "fail"] == [("cranfield", "dense")]


def test_a_missing_system_is_named() -> None:
    base = full_baseline()
    run = suite(*(c for c in base.cells if c.system == "bm25"))
    failed = [r for r in evaluate_gates(run, [NDCG], baseline=base).results if r.status == "fail"]
    assert {(r.task, r.system) for r in failed} == {("golden", "dense"), ("cranfield", "dense")}
    assert all("the system is not in this run" in r.message for r in failed)


# -- item 3: baselines that would pass on missing evidence ---------------------------------------


def test_baseline_without_content_hash_compares_on_query_ids_and_says_so() -> None:
    v = scores(0.5)
    base = suite(cell("golden", "bm25", v), run_id="base", hashes={"golden": None})
    same = evaluate_gates(suite(cell("golden", "bm25", v)), [NDCG], baseline=base).results[0]
    assert same.status == "warn"  # would be a clean PASS with a hash
    assert "has no content hash for task golden: compared on the 60 query ids both score" in same.message
    other_ids = {k.replace("q", "x"): x for k, x in v.items()}
    differ = evaluate_gates(suite(cell("golden", "bm25", other_ids)), [NDCG], baseline=base).results[0]
    assert differ.status == "fail" and "the query ids differ" in differ.message


def test_a_partial_baseline_fails() -> None:
    v = scores(0.5)
    base = suite(cell("golden", "bm25", v, missing_queries=["q99"]), run_id="base")
    r = evaluate_gates(suite(cell("golden", "bm25", v)), [NDCG], baseline=base).results[0]
    assert r.status == "fail" and "baseline base is itself partial" in r.message and "1 judged queries" in r.message
    allowed = NDCG.model_copy(update={"allow_partial": True})
    assert evaluate_gates(suite(cell("golden", "bm25", v)), [allowed], baseline=base).results[0].status == "pass"


# -- item 4 (+ issue 13's .inf cases): thresholds that can never fire ------------------------------


@pytest.mark.parametrize(("rule", "message"), [
    ({"below": math.nan}, "not a finite number"),
    ({"above": math.nan}, "not a finite number"),
    ({"below": math.inf}, "not a finite number"),
    ({"max_drop": math.inf}, "not a finite number"),
    ({"max_drop": math.nan}, "not a finite number"),
    ({"above": 5}, "5 can never fire: ndcg@10 lies in [0, 1]"),
    ({"above": 1}, "can never fire"),
    ({"below": -1}, "-1 can never fire"),
    ({"below": 0}, "can never fire"),
    ({"max_drop": 1}, "a drop is at most 1"),
    ({"max_drop": -0.1}, "must be 0 or more"),
])
def test_unfireable_thresholds_are_rejected(rule: dict[str, float], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        GateSpec(name="g", metric="ndcg@10", **rule)


def test_correlation_thresholds_use_their_range() -> None:
    assert GateSpec(name="g", metric="spearman", below=-0.5).below == -0.5
    assert GateSpec(name="g", metric="pearson", above=-1).above == -1
    with pytest.raises(ValidationError, match=r"spearman lies in \[-1, 1\]"):
        GateSpec(name="g", metric="spearman", below=-1)
    with pytest.raises(ValidationError, match="a drop is at most 2"):
        GateSpec(name="g", metric="spearman", max_drop=2)


SUITE = """name: s
k: 10
metrics: [ndcg@10]
tasks:
  - {{name: golden, type: golden, path: {golden}}}
retrievers:
  - {{name: bm25, type: bm25}}
gates:
  - name: never
    metric: ndcg@10
    {rule}
"""


@pytest.mark.parametrize("rule", ["below: .nan", "above: .nan", "above: 5", "below: -1", "max_drop: .inf",
                                  "below: .inf"])
def test_unfireable_threshold_in_a_suite_is_exit_2_with_file_and_line(
        rule: str, tmp_path: Path, golden_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.format(golden=golden_dir, rule=rule))
    assert main(["run", str(path), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"evalsuite: error: {path}:11: gates[0].{rule.split(':')[0]}: ") and "\n" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("rate", ["nan", "1.5", "-0.1"])
def test_leakage_max_rate_that_cannot_fail_is_exit_2(rate: str, golden_dir: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["check-leakage", str(golden_dir), "--max-rate", rate])
    assert exc.value.code == 2
    assert f"argument --max-rate: {rate} is not between 0 and 1" in capsys.readouterr().err


# -- item 5: STS gates bootstrap over sentence pairs ----------------------------------------------


def sts_cell(system: str, noise: float, seed: int = 0, n: int = 300) -> CellResult:
    rng = np.random.default_rng(11)
    gold = rng.uniform(0, 5, n).round(1)
    predicted = gold / 5 + np.random.default_rng(seed).normal(0, noise, n)
    from evalsuite.metrics.correlation import pearson, spearman

    return CellResult(task="stsb", system=system, kind="sts",
                      aggregate={"spearman": spearman(predicted, gold), "pearson": pearson(predicted, gold)},
                      pair_scores={"predicted": predicted.tolist(), "gold": gold.tolist()})


def test_sts_absolute_gate_decides_on_pairs() -> None:
    good = sts_cell("minilm", 0.1)
    gate = GateSpec(name="sts-floor", metric="spearman", below=0.5, task="stsb")
    r = evaluate_gates(suite(good), [gate]).results[0]  # was: FAIL "no evaluated query has a spearman value"
    assert r.status == "pass" and r.n == 300 and "n = 300 pairs" in r.message
    assert r.ci is not None and r.ci[0] < r.estimate < r.ci[1] and r.mass_beyond == 0.0
    bad = evaluate_gates(suite(sts_cell("weak", 3.0)), [gate]).results[0]
    assert bad.status == "fail" and bad.mass_beyond is not None and bad.mass_beyond >= 0.95
    no_pairs = CellResult(task="stsb", system="mteb", kind="sts", aggregate={"spearman": 0.8})
    r = evaluate_gates(suite(no_pairs), [gate]).results[0]
    assert r.status == "fail" and "no per-pair scores" in r.message


def test_sts_regression_gate_uses_a_paired_bootstrap() -> None:
    gate = GateSpec(name="sts-regression", metric="spearman", max_drop=0.02)
    base = suite(sts_cell("minilm", 0.1), run_id="base")
    same = evaluate_gates(suite(sts_cell("minilm", 0.1)), [gate], baseline=base).results[0]
    assert same.status == "pass" and "spearman unchanged at" in same.message and same.p_value == 1.0
    worse = evaluate_gates(suite(sts_cell("minilm", 0.4)), [gate], baseline=base).results[0]
    assert worse.status == "fail" and worse.decision == "REGRESSION"
    assert "paired bootstrap over sentence pairs" in worse.message
    assert worse.delta is not None and worse.ci is not None and worse.ci[1] < -0.02


# -- item 6: gates.md is escaped ------------------------------------------------------------------


def test_gates_markdown_escapes_names_and_messages() -> None:
    evil = "<img/src=x/onerror=alert(1)>"
    gate = GateSpec(name="gate|*evil*", metric="ndcg@10", below=0.9, on_fire="warn")
    md = evaluate_gates(suite(cell(evil, evil, scores(0.5))), [gate]).markdown()
    assert "<img" not in md and "&lt;img/src=x/onerror=alert(1)&gt;" in md
    assert "gate\\|\\*evil\\*" in md
    assert all(line.count(" | ") == 4 for line in md.splitlines() if line.startswith("| ⚠"))


# -- item 7: a fail gate needs strong evidence ----------------------------------------------------


def test_fail_gates_need_strong_evidence_and_thin_sets_warn() -> None:
    copied = GateSpec(name="fine-tune-needed", metric="recall@10", below=0.65)  # on_fire defaults to fail
    assert copied.fire_confidence == 0.95
    assert GateSpec(name="g", metric="recall@10", below=0.65, on_fire="warn").fire_confidence == 0.5
    three = suite(cell("golden", "dense", {"a": 1.0, "b": 0.0, "c": 0.0}, metric="recall@10"))
    r = evaluate_gates(three, [copied]).results[0]  # was FAIL at 74% of the bootstrap mass, CI [0, 1]
    assert r.status == "warn" and r.mass_beyond == pytest.approx(20 / 27, abs=0.02)
    forced = copied.model_copy(update={"confidence": 0.5})  # fires, but 3 queries cannot resolve 0.65
    r = evaluate_gates(three, [forced]).results[0]
    assert r.decision == "FAIL" and r.status == "warn" and "too little evidence to fail the build" in r.message
    clear = suite(cell("golden", "dense", scores(0.3, n=80), metric="recall@10"))
    assert evaluate_gates(clear, [copied]).results[0].status == "fail"


# -- item 8: the correction family is the task ----------------------------------------------------


def _drop(values: dict[str, float], by: float, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    return {q: float(np.clip(v - by + rng.normal(0, 0.05), 0, 1)) for q, v in values.items()}


def test_holm_family_is_per_task_unless_asked() -> None:
    a, b = scores(0.5, seed=1), scores(0.5, seed=2)
    base = suite(cell("golden", "bm25", a), cell("cranfield", "bm25", b), run_id="base")
    golden_only = suite(cell("golden", "bm25", _drop(a, 0.03, 3)))
    both = suite(cell("golden", "bm25", _drop(a, 0.03, 3)), cell("cranfield", "bm25", _drop(b, 0.01, 4)))
    alone = evaluate_gates(golden_only, [NDCG], baseline=base, allow_missing=["cranfield"]).results[0]
    together = next(r for r in evaluate_gates(both, [NDCG], baseline=base).results if r.task == "golden")
    assert alone.p_corrected == together.p_corrected  # unrelated task, same numbers: same decision
    assert together.family == "task golden: 1 regression check(s), holm"
    assert "Holm-corrected over the 1 regression check(s) of task golden" in together.message
    whole = NDCG.model_copy(update={"family": "suite"})
    suite_wide = next(r for r in evaluate_gates(both, [whole], baseline=base).results if r.task == "golden")
    assert suite_wide.p_corrected is not None and together.p_corrected is not None
    assert suite_wide.p_corrected >= together.p_corrected and "of the suite" in suite_wide.message
    md = evaluate_gates(both, [NDCG], baseline=base).markdown()
    assert "corrected for multiple comparisons within each family: task cranfield" in md


# -- item 15: one spelling of the summary; unchanged; within margin -------------------------------


def test_wording() -> None:
    assert summary_line({"pass": 8, "warn": 1, "fail": 0}) == "0 failed, 1 warning, 8 passed"
    assert summary_line({"pass": 0, "warn": 9, "fail": 0}) == "0 failed, 9 warnings, 0 passed"
    v = scores(0.6, n=400, spread=0.1)
    base = suite(cell("golden", "bm25", v), run_id="base")
    r = evaluate_gates(suite(cell("golden", "bm25", v)), [NDCG], baseline=base).results[0]
    assert "unchanged at 0.600" in r.message and "rose by 0.0000" not in r.message
    slightly = {q: x - 0.01 for q, x in v.items()}  # significant, but within max_drop 0.02
    r = evaluate_gates(suite(cell("golden", "bm25", slightly)), [NDCG], baseline=base).results[0]
    assert r.status == "warn" and r.decision == "WITHIN MARGIN"


# -- item 2: the baseline file is small and loadable ----------------------------------------------


def test_written_baseline_is_small_and_loadable(tmp_path: Path) -> None:
    run = suite(cell("golden", "bm25", scores(0.5), run_file="runs/golden__bm25.trec"))
    run.tasks[0]["leakage"] = {"findings": [{"examples": ["x" * 1000]}]}
    path = write_baseline(run, tmp_path / "baselines" / "s.json")
    again = load_results(path)
    assert again.cells[0].per_query == run.cells[0].per_query and again.cells[0].run_file is None
    assert "leakage" not in again.tasks[0] and again.tasks[0]["content_hash"] == "hash-golden"


def test_update_baseline_writes_the_committed_home_by_default(tmp_path: Path, golden_dir: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(SUITE.format(golden=golden_dir, rule="max_drop: 0.02"))
    assert main(["run", "s.yaml", "--update-baseline", "--no-report", "--quiet"]) == 0
    written = tmp_path / "baselines" / "s.json"
    first = load_results(written).run_id
    assert main(["run", "s.yaml", "--no-report", "--quiet"]) == 0
    assert "PASS  never [golden / bm25]: NO REGRESSION" in capsys.readouterr().out
    second = next(p for p in (tmp_path / "reports" / "s").glob("2*") if p.name != first)  # not 'latest': two
    # runs in one second are ordered by their random suffix
    assert main(["gate", str(second), "--suite", "s.yaml", "--store", "reports/history.sqlite",
                 "--update-baseline"]) == 0
    assert load_results(written).run_id == second.name and f"baseline updated: {written}" in capsys.readouterr().err
