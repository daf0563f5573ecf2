"""Gates: declarative rules over suite results that turn into decisions and CI exit codes.

Two kinds of rule, declared under ``gates:`` in a suite YAML:

* **Absolute** (``below:`` or ``above:`` a threshold): e.g. "recall@10 below 0.65 ->
  FINE-TUNE RECOMMENDED, otherwise BASELINE ADEQUATE". The decision reads the bootstrap
  distribution of the mean, not only the point estimate: the rule fires when at least
  ``confidence`` (default 0.5) of the bootstrap mass lies beyond the threshold, and the
  message says so ("recall@10 = 0.62 [0.57, 0.67]: below 0.65 with 80% of the bootstrap
  mass"). With ``per_tag: true`` the rule is also checked on every query-tag slice, so a
  collapse in one slice is not hidden by the average.
* **Regression** (``max_drop:`` delta, against a baseline results file or store id): FAIL
  when the metric drops by more than delta **and** the drop is significant (paired
  randomization test, corrected over all regression checks with Holm or BH), or when the
  upper end of the bootstrap CI of the change is below -delta; WARN when the metric drops
  but within noise; PASS otherwise.

A gate never passes on missing evidence: no result, no evaluated query, NaN, a run that
lacks judged queries (unless ``allow_partial``), a baseline without that task/system, or a
baseline computed on different task data all FAIL with the reason. A WARN is added when
the number of queries cannot resolve the threshold (one query could flip the decision).

Exit codes: 0 when nothing failed (warnings allowed), 1 when a gate failed; usage and
data errors are 2 (raised as :class:`~evalsuite.errors.EvalsuiteError`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from xml.sax.saxutils import escape, quoteattr

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from evalsuite.metrics.stats import bootstrap_ci, bootstrap_means, correct, randomization_test
from evalsuite.results import CellResult, SuiteResults

__all__ = ["GateReport", "GateResult", "GateSpec", "evaluate_gates"]

Status = Literal["pass", "warn", "fail"]
_ICON = {"pass": "✅", "warn": "⚠️", "fail": "❌"}


class GateSpec(BaseModel):
    """One rule (see the module docstring). Exactly one of ``below``, ``above``, ``max_drop``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    metric: str
    task: str | None = Field(default=None, description="task name; default: every task with this metric")
    system: str | None = Field(default=None, description="system name; default: every system")
    below: float | None = None
    above: float | None = None
    decision: str | None = Field(default=None, description="label when the rule fires")
    otherwise: str | None = Field(default=None, description="label when it does not")
    on_fire: Literal["fail", "warn"] = "fail"
    confidence: float = Field(default=0.5, gt=0, lt=1, description="bootstrap mass beyond the threshold to fire")
    max_drop: float | None = Field(default=None, ge=0)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    correction: Literal["holm", "bh", "none"] = "holm"
    per_tag: bool = False
    allow_partial: bool = False

    @model_validator(mode="after")
    def _one_rule(self) -> GateSpec:
        from evalsuite.cost_gates import is_cost_metric
        from evalsuite.errors import EvalsuiteError
        from evalsuite.metrics.spec import parse_metric

        try:
            if not is_cost_metric(self.metric):  # a cost key (bytes_per_doc, ...) stays as it is
                object.__setattr__(self, "metric", str(parse_metric(self.metric)))
        except EvalsuiteError as exc:
            raise ValueError(str(exc)) from None
        if is_cost_metric(self.metric) and self.max_drop is not None:
            raise ValueError(f"gate {self.name!r}: a cost ({self.metric}) takes above or below, not max_drop")
        rules = [r for r in ("below", "above", "max_drop") if getattr(self, r) is not None]
        if len(rules) != 1:
            raise ValueError(f"gate {self.name!r} needs exactly one of below, above or max_drop (got "
                             f"{', '.join(rules) or 'none'})")
        return self

    @property
    def kind(self) -> Literal["absolute", "regression"]:
        return "regression" if self.max_drop is not None else "absolute"


@dataclass
class GateResult:
    """One gate evaluated on one (task, system[, slice])."""

    gate: str
    kind: str
    task: str
    system: str
    metric: str
    status: Status
    message: str
    slice: str | None = None
    decision: str | None = None
    estimate: float | None = None
    ci: tuple[float, float] | None = None
    threshold: float | None = None
    mass_beyond: float | None = None
    n: int = 0
    delta: float | None = None
    p_value: float | None = None
    p_corrected: float | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        where = f"{self.task} / {self.system}" + (f" / tag {self.slice}" if self.slice else "")
        return f"{self.gate} [{where}]"


@dataclass
class GateReport:
    """All gate results of one evaluation, with the exit code and CI-friendly renderings."""

    results: list[GateResult]
    run_id: str = ""
    baseline_id: str | None = None

    @property
    def exit_code(self) -> int:
        return 1 if any(r.status == "fail" for r in self.results) else 0

    def counts(self) -> dict[str, int]:
        return {s: sum(r.status == s for r in self.results) for s in ("pass", "warn", "fail")}

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "baseline": self.baseline_id, "counts": self.counts(),
                "exit_code": self.exit_code, "gates": [_jsonable(asdict(r)) for r in self.results]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    def junit_xml(self) -> str:
        """JUnit XML: one test case per gate result, so CI systems list each gate."""
        counts = self.counts()
        lines = ['<?xml version="1.0" encoding="UTF-8"?>',
                 f'<testsuites name="evalsuite gates" tests="{len(self.results)}" failures="{counts["fail"]}">',
                 f'  <testsuite name="evalsuite gates" tests="{len(self.results)}" failures="{counts["fail"]}" '
                 f'skipped="0" errors="0">']
        for r in self.results:
            lines.append(f'    <testcase classname={quoteattr("evalsuite.gates." + r.task)} name={quoteattr(r.title)}>')
            if r.status == "fail":
                lines.append(f'      <failure message={quoteattr(r.message)}>{escape(r.message)}</failure>')
            elif r.status == "warn":
                lines.append(f"      <system-out>{escape('WARN: ' + r.message)}</system-out>")
            lines.append("    </testcase>")
        lines += ["  </testsuite>", "</testsuites>", ""]
        return "\n".join(lines)

    def markdown(self) -> str:
        """A summary for a CI job summary or a PR comment."""
        c = self.counts()
        verdict = "FAILED" if c["fail"] else ("passed with warnings" if c["warn"] else "passed")
        lines = [f"### evalsuite gates {verdict}: {c['pass']} passed, {c['warn']} warnings, {c['fail']} failed", "",
                 "| | gate | task | system | decision |", "|---|---|---|---|---|"]
        for r in self.results:
            system = r.system + (f" (tag {r.slice})" if r.slice else "")
            text = r.message.replace("|", "\\|")
            lines.append(f"| {_ICON[r.status]} | {r.gate} | {r.task} | {system} | {text} |")
        return "\n".join(lines) + "\n"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _fmt(x: float) -> str:
    return f"{x:.3f}" if abs(x) < 100 else f"{x:.1f}"


def _cells(results: SuiteResults, gate: GateSpec) -> tuple[list[CellResult], list[GateResult]]:
    """The cells a gate applies to, and FAIL results for what it names but cannot find."""
    cells = [c for c in results.cells
             if (gate.task is None or c.task == gate.task) and (gate.system is None or c.system == gate.system)]
    missing: list[GateResult] = []
    if gate.task is not None and not any(c.task == gate.task for c in results.cells):
        missing.append(GateResult(gate.name, gate.kind, gate.task, gate.system or "*", gate.metric, "fail",
                                  f"no results for task {gate.task!r} (tasks: "
                                  f"{', '.join(sorted({c.task for c in results.cells})) or 'none'})"))
    elif gate.system is not None and not cells:
        missing.append(GateResult(gate.name, gate.kind, gate.task or "*", gate.system, gate.metric, "fail",
                                  f"no results for system {gate.system!r}"))
    with_metric = [c for c in cells if gate.metric in c.aggregate]
    if cells and not with_metric:
        missing.append(GateResult(gate.name, gate.kind, gate.task or "*", gate.system or "*", gate.metric, "fail",
                                  f"no result has metric {gate.metric} (computed: "
                                  f"{', '.join(sorted({m for c in cells for m in c.aggregate}))})"))
    if not results.cells:
        missing.append(GateResult(gate.name, gate.kind, gate.task or "*", gate.system or "*", gate.metric, "fail",
                                  "the results are empty"))
    return with_metric, missing


def _values(cell: CellResult, metric: str, queries: set[str] | None) -> dict[str, float]:
    per_query = cell.per_query.get(metric, {})
    return {q: float(v) for q, v in per_query.items()
            if v is not None and not math.isnan(float(v)) and (queries is None or q in queries)}


def _slices(results: SuiteResults, task: str) -> dict[str, set[str]]:
    info = next((t for t in results.tasks if t.get("name") == task), {})
    slices: dict[str, set[str]] = {}
    for query, tags in (info.get("query_tags") or {}).items():
        for tag in tags:
            slices.setdefault(tag, set()).add(query)
    return slices


def _absolute(gate: GateSpec, cell: CellResult, tag: str | None, queries: set[str] | None, *, n_resamples: int,
              seed: int) -> GateResult:
    base = GateResult(gate.name, "absolute", cell.task, cell.system, gate.metric, "fail", "", slice=tag)
    values = _values(cell, gate.metric, queries)
    if cell.missing_queries and not gate.allow_partial:
        base.message = (f"partial result: the run lacks {len(cell.missing_queries)} judged queries (scored 0); "
                        "fix the run or set allow_partial: true")
        return base
    if not values:
        base.message = f"no evaluated query has a {gate.metric} value (empty or NaN result)"
        return base
    x = np.fromiter(values.values(), dtype=np.float64)
    ci = bootstrap_ci(x, n_resamples=n_resamples, seed=seed)
    means = bootstrap_means(x, n_resamples=n_resamples, seed=seed)
    below = gate.below is not None
    threshold = float(gate.below if below else gate.above)  # type: ignore[arg-type]
    mass = float(np.mean(means < threshold) if below else np.mean(means > threshold))
    fired = mass >= gate.confidence
    word = "below" if below else "above"
    label = (gate.decision or ("FAIL" if gate.on_fire == "fail" else "WARN")) if fired else (gate.otherwise or "PASS")
    scope = f" on {cell.task}" + (f" (tag {tag})" if tag else "") + f" for {cell.system}"
    message = (f"{label}: {gate.metric} = {_fmt(ci.estimate)} [{_fmt(ci.low)}, {_fmt(ci.high)}]{scope}: "
               f"{word} {threshold:g} with {mass:.0%} of the bootstrap mass")
    if ci.low <= threshold <= ci.high:
        message += f" (the 95% interval contains {threshold:g}: more queries would make this decision firmer)"
    warnings = []
    step = 1.0 / len(x)
    if abs(ci.estimate - threshold) < step:
        warnings.append(f"{len(x)} queries cannot resolve threshold {threshold:g}: the mean moves in steps up to "
                        f"{step:.3f}, so a single query can flip this decision")
    status: Status = gate.on_fire if fired else ("warn" if warnings else "pass")
    if warnings:
        message += "; warning: " + "; ".join(warnings)
    return GateResult(gate.name, "absolute", cell.task, cell.system, gate.metric, status, message, slice=tag,
                      decision=label, estimate=ci.estimate, ci=(ci.low, ci.high), threshold=threshold,
                      mass_beyond=mass, n=len(x), warnings=warnings)


@dataclass
class _Pending:
    gate: GateSpec
    result: GateResult
    x: np.ndarray
    y: np.ndarray


def _regression(gate: GateSpec, cell: CellResult, tag: str | None, queries: set[str] | None,
                results: SuiteResults, baseline: SuiteResults | None, *, n_resamples: int,
                seed: int) -> GateResult | _Pending:
    result = GateResult(gate.name, "regression", cell.task, cell.system, gate.metric, "fail", "", slice=tag,
                        threshold=gate.max_drop)
    if baseline is None:
        result.message = "regression gate without a baseline: pass --baseline FILE|ID or set baseline: in the suite"
        return result
    try:
        old = baseline.cell(cell.task, cell.system)
    except KeyError:
        result.message = f"baseline {baseline.run_id} has no result for {cell.system} on {cell.task}"
        return result
    new_hash = next((t.get("content_hash") for t in results.tasks if t.get("name") == cell.task), None)
    old_hash = next((t.get("content_hash") for t in baseline.tasks if t.get("name") == cell.task), None)
    if new_hash and old_hash and new_hash != old_hash:
        result.message = (f"task {cell.task} data changed since baseline {baseline.run_id} (content hash "
                          f"{old_hash[:12]} -> {new_hash[:12]}): the comparison would be meaningless; re-run the "
                          "baseline on this data and ratchet it with --update-baseline")
        return result
    if cell.missing_queries and not gate.allow_partial:
        result.message = f"partial result: the run lacks {len(cell.missing_queries)} judged queries (scored 0)"
        return result
    new, before = _values(cell, gate.metric, queries), _values(old, gate.metric, queries)
    common = sorted(set(new) & set(before))
    if len(common) < 2:
        result.message = f"fewer than 2 queries scored by both the run and the baseline ({len(common)})"
        return result
    x = np.array([new[q] for q in common])
    y = np.array([before[q] for q in common])
    result.n = len(common)
    if len(common) < len(set(new) | set(before)):
        result.warnings.append(f"{len(set(new) ^ set(before))} queries scored on one side only, left out")
    return _Pending(gate, result, x, y)


def _finish_regressions(pending: Sequence[_Pending], baseline_id: str, *, n_resamples: int, seed: int) -> None:
    """Test every pending regression, correct the p-values over the family, decide."""
    p_values = [randomization_test(item.x, item.y, n_resamples=n_resamples, seed=seed) for item in pending]
    methods = {item.gate.correction for item in pending}
    corrected: list[float] = list(p_values)
    for method in methods - {"none"}:
        members = [i for i, item in enumerate(pending) if item.gate.correction == method]
        adjusted = correct([p_values[i] for i in members], method)  # type: ignore[arg-type]
        for i, value in zip(members, adjusted):
            corrected[i] = value
    for item, p, pc in zip(pending, p_values, corrected):
        gate, r = item.gate, item.result
        d = item.x - item.y
        delta = float(d.mean())
        ci = bootstrap_ci(d, n_resamples=n_resamples, seed=seed)
        delta_max = float(gate.max_drop)  # type: ignore[arg-type]
        significant = not math.isnan(pc) and pc < gate.alpha
        how = {"holm": "Holm-corrected", "bh": "BH-corrected", "none": "uncorrected"}[gate.correction]
        change = (f"{gate.metric} {'dropped' if delta < 0 else 'rose'} by {abs(delta):.4f} "
                  f"({_fmt(float(item.y.mean()))} -> {_fmt(float(item.x.mean()))}; 95% CI of the change "
                  f"[{ci.low:+.4f}, {ci.high:+.4f}]) vs baseline {baseline_id} on {r.task}"
                  + (f" (tag {r.slice})" if r.slice else "") + f" for {r.system}, n={r.n}; "
                  f"p = {pc:.4f} (randomization, {how}, {len(pending)} comparison(s))")
        if (delta < -delta_max and significant) or ci.high < -delta_max:
            r.status, label = "fail", "REGRESSION"
            why = (f"a significant drop larger than {delta_max:g}" if delta < -delta_max and significant
                   else f"the whole CI of the change lies below -{delta_max:g}")
        elif delta < 0:
            r.status, label = "warn", "WITHIN NOISE"
            why = ("not significant" if not significant else f"smaller than the allowed {delta_max:g}")
        else:
            r.status, label, why = "pass", "NO REGRESSION", "no drop"
        r.message = f"{label}: {change}: {why}"
        if r.warnings:
            r.message += "; warning: " + "; ".join(r.warnings)
        r.decision, r.estimate, r.delta, r.p_value, r.p_corrected = label, float(item.x.mean()), delta, p, pc
        r.ci = (ci.low, ci.high)


def evaluate_gates(
    results: SuiteResults,
    gates: Sequence[GateSpec],
    *,
    baseline: SuiteResults | None = None,
    n_resamples: int = 10_000,
    seed: int = 0,
    no_baseline: Status = "fail",
    no_baseline_reason: str | None = None,
) -> GateReport:
    """Evaluate ``gates`` on ``results`` (and ``baseline`` for regression rules).

    Without a baseline a regression rule gets status ``no_baseline`` ("fail" by default;
    ``evalsuite run`` passes "warn" when the suite names a baseline file that does not exist
    yet, i.e. before the first ``--update-baseline``), with ``no_baseline_reason`` as message.
    """
    out: list[GateResult] = []
    pending: list[_Pending] = []
    from evalsuite.cost_gates import cost_gate_results, is_cost_metric

    for gate in gates:
        if is_cost_metric(gate.metric):  # a budget: evalsuite.cost_gates
            out += cost_gate_results(gate, results)
            continue
        cells, missing = _cells(results, gate)
        out += missing
        for cell in cells:
            scopes: list[tuple[str | None, set[str] | None]] = [(None, None)]
            if gate.per_tag:
                scopes += sorted(_slices(results, cell.task).items())
            for tag, queries in scopes:
                if gate.kind == "absolute":
                    out.append(_absolute(gate, cell, tag, queries, n_resamples=n_resamples, seed=seed))
                else:
                    item = _regression(gate, cell, tag, queries, results, baseline, n_resamples=n_resamples,
                                       seed=seed)
                    if baseline is None and isinstance(item, GateResult):
                        item.status = no_baseline
                        if no_baseline_reason:
                            item.message = no_baseline_reason
                    if isinstance(item, _Pending):
                        pending.append(item)
                        out.append(item.result)
                    else:
                        out.append(item)
    if pending:
        _finish_regressions(pending, baseline.run_id if baseline else "", n_resamples=n_resamples, seed=seed)
    return GateReport(out, run_id=results.run_id, baseline_id=baseline.run_id if baseline else None)
