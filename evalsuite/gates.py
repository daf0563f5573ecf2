"""Gates: declarative rules over suite results that turn into decisions and CI exit codes.

Two kinds of rule, declared under ``gates:`` in a suite YAML (every option is documented in
``tasks/README.md``):

* **Absolute** (``below:`` or ``above:`` a threshold): e.g. "recall@10 below 0.65 ->
  FINE-TUNE RECOMMENDED, otherwise BASELINE ADEQUATE". The decision reads the bootstrap
  distribution, not only the point estimate: the rule fires when at least ``confidence`` of
  the bootstrap mass lies beyond the threshold. A rule that fails the build
  (``on_fire: fail``, the default) needs strong evidence: ``confidence`` defaults to 0.95;
  an advisory rule (``on_fire: warn``) fires on the point estimate side (0.5). When the set
  is too small to resolve the threshold (one query could flip the decision), a rule that
  would fail gives WARN instead. For ranking metrics the bootstrap resamples queries; for
  STS correlations (``spearman``, ``pearson``) it resamples sentence pairs. With
  ``per_tag: true`` the rule is also checked on every query-tag slice.
* **Regression** (``max_drop:`` delta, against a baseline results file or store id): FAIL
  when the metric drops by more than delta **and** the drop is significant (paired
  randomization test over queries, or a paired bootstrap over sentence pairs for STS;
  Holm- or BH-corrected within each task's family of regression checks, or over all of them
  with ``family: suite``), or when the whole bootstrap CI of the change lies below -delta;
  WARN when the metric drops but within noise or within the margin; PASS otherwise.

A gate never passes on missing evidence: no result, no evaluated query, NaN, a run that
lacks judged queries (unless ``allow_partial``), a baseline without that task/system, a
baseline that was itself partial, a baseline computed on different task data, and a
task/system pair that the baseline has but the run lacks (unless ``allow_missing`` or the
command line allows that pair to be absent) all FAIL with the reason. A baseline without a
content hash is compared on the query ids both sides score, and says so (WARN at best).

Thresholds that can never fire (NaN, infinite, outside the metric's range: every ranking
metric lies in [0, 1], correlations in [-1, 1]) are rejected when the suite is loaded.

Exit codes: 0 when nothing failed (warnings allowed), 1 when a gate failed; usage and
data errors are 2 (raised as :class:`~evalsuite.errors.EvalsuiteError`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import escape, quoteattr

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from evalsuite.metrics.stats import bootstrap_ci, bootstrap_means, correct, randomization_test
from evalsuite.results import CellResult, SuiteResults

__all__ = ["GateReport", "GateResult", "GateSpec", "evaluate_gates", "metric_range", "summary_line",
           "write_baseline"]

Status = Literal["pass", "warn", "fail"]
_ICON = {"pass": "✅", "warn": "⚠️", "fail": "❌"}


def metric_range(metric: str) -> tuple[float, float]:
    """The values a metric can take: [-1, 1] for correlations, [0, 1] for every ranking metric,
    [0, inf) for a cost (latency, bytes: evalsuite.cost_gates)."""
    from evalsuite.cost_gates import is_cost_metric
    from evalsuite.metrics import correlation  # noqa: F401  (registers spearman and pearson)
    from evalsuite.metrics.spec import family_info, parse_metric

    if is_cost_metric(metric):
        return (0.0, math.inf)
    return (-1.0, 1.0) if family_info(parse_metric(metric).family).kind == "correlation" else (0.0, 1.0)


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
    confidence: float | None = Field(default=None, gt=0, lt=1, description="bootstrap mass beyond the threshold "
                                     "to fire; default 0.95 for on_fire: fail, 0.5 for on_fire: warn")
    max_drop: float | None = Field(default=None, description="largest drop allowed (>= 0)")
    alpha: float = Field(default=0.05, gt=0, lt=1)
    correction: Literal["holm", "bh", "none"] = "holm"
    family: Literal["task", "suite"] = Field(default="task", description="the regression checks corrected "
                                             "together: those of one task (default) or all of the suite")
    per_tag: bool = False
    allow_partial: bool = False
    allow_missing: list[str] = Field(default_factory=list, description="'task' or 'task/system' pairs that a "
                                     "run may lack without failing this regression gate")

    @field_validator("metric")
    @classmethod
    def _canonical_metric(cls, value: str) -> str:
        from evalsuite.cost_gates import is_cost_metric
        from evalsuite.errors import EvalsuiteError
        from evalsuite.metrics.spec import parse_metric

        try:
            return value if is_cost_metric(value) else str(parse_metric(value))  # a cost key stays as it is
        except EvalsuiteError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("below", "above", "max_drop")
    @classmethod
    def _can_fire(cls, value: float | None, info: ValidationInfo) -> float | None:
        """A threshold that can never fire would let every run pass: refuse it."""
        if value is None:
            return None
        what = info.field_name
        if math.isnan(value) or math.isinf(value):
            raise ValueError(f"{value} is not a finite number, so this gate could never fire")
        metric = info.data.get("metric")
        if metric is None:  # the metric itself was invalid: that error is reported
            return value
        lo, hi = metric_range(metric)
        span = f"{metric} lies in [{lo:g}, {hi:g}]"
        if what == "below" and not lo < value <= hi:
            raise ValueError(f"{value:g} can never fire: {span}, so a 'below' threshold must be in "
                             f"({lo:g}, {hi:g}]")
        if what == "above" and not lo <= value < hi:
            raise ValueError(f"{value:g} can never fire: {span}, so an 'above' threshold must be in "
                             f"[{lo:g}, {hi:g})")
        if what == "max_drop" and value < 0:
            raise ValueError(f"{value:g} must be 0 or more (the drop allowed, as a positive number)")
        if what == "max_drop" and value >= hi - lo:
            raise ValueError(f"{value:g} can never fire: {span}, so a drop is at most {hi - lo:g}")
        return value

    @model_validator(mode="after")
    def _one_rule(self) -> GateSpec:
        from evalsuite.cost_gates import is_cost_metric

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

    @property
    def fire_confidence(self) -> float:
        """The bootstrap mass needed to fire: ``confidence``, else 0.95 (fail) or 0.5 (warn)."""
        if self.confidence is not None:
            return self.confidence
        return 0.95 if self.on_fire == "fail" else 0.5

    def allows_missing(self, task: str, system: str, extra: Collection[str] = ()) -> bool:
        """Whether this gate (or ``extra``, from the command line) lets the run lack (task, system)."""
        allowed = {*self.allow_missing, *extra}
        return bool(allowed & {task, f"{task}/{system}", f"*/{system}"})


def summary_line(counts: dict[str, int]) -> str:
    """The one spelling of a gate count everywhere: "0 failed, 1 warning, 8 passed"."""
    warn = counts.get("warn", 0)
    return f"{counts.get('fail', 0)} failed, {warn} warning{'' if warn == 1 else 's'}, {counts.get('pass', 0)} passed"


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
    family: str | None = None
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
        """A summary for a CI job summary or a PR comment.

        GitHub renders ``$GITHUB_STEP_SUMMARY`` as HTML, so every name and message is escaped
        for Markdown and HTML (as ``report.md`` is): a system called ``<img src=x>`` shows as
        text."""
        from evalsuite.report.markdown import md_escape

        c = self.counts()
        verdict = "FAILED" if c["fail"] else ("no gate failed" if c["warn"] else "passed")
        lines = [f"### evalsuite gates {verdict}: {summary_line(c)}", "",
                 "| | gate | task | system | decision |", "|---|---|---|---|---|"]
        for r in self.results:
            system = r.system + (f" (tag {r.slice})" if r.slice else "")
            lines.append(f"| {_ICON[r.status]} | {md_escape(r.gate)} | {md_escape(r.task)} | {md_escape(system)} "
                         f"| {md_escape(r.message)} |")
        families = sorted({f for f in (r.family for r in self.results) if f})
        if families:
            lines += ["", "Regression p-values are corrected for multiple comparisons within each family: "
                      + "; ".join(md_escape(f) for f in families) + "."]
        return "\n".join(lines) + "\n"


def write_baseline(results: SuiteResults, path: str | Path) -> Path:
    """Write ``results`` as a baseline meant to be committed (``baselines/<suite>.json``).

    The same schema as ``results.json`` (so ``--baseline`` and ``evalsuite report`` read it),
    but small: aggregates, per-query values, STS pair scores, task content hashes and query
    tags; no run files, leakage examples or drill-down details."""
    from evalsuite.io._text import atomic_write

    data = results.to_dict()
    for cell in data["results"]:
        cell.pop("run_file", None)
    for task in data["tasks"]:
        for key in ("leakage", "details_file"):
            task.pop(key, None)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target) as fh:
        json.dump(data, fh, indent=1, allow_nan=False)
        fh.write("\n")
    return target


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


def _skip_reason(results: SuiteResults, task: str) -> str | None:
    return next((s.get("reason") for s in results.skipped if s.get("task") == task), None)


def _cells(results: SuiteResults, gate: GateSpec) -> tuple[list[CellResult], list[GateResult]]:
    """The cells a gate applies to, and FAIL results for what it names but cannot find."""
    cells = [c for c in results.cells
             if (gate.task is None or c.task == gate.task) and (gate.system is None or c.system == gate.system)]
    missing: list[GateResult] = []
    if gate.task is not None and not any(c.task == gate.task for c in results.cells):
        skipped = _skip_reason(results, gate.task)
        why = (f"the task was skipped: {skipped}" if skipped else
               f"tasks: {', '.join(sorted({c.task for c in results.cells})) or 'none'}")
        missing.append(GateResult(gate.name, gate.kind, gate.task, gate.system or "*", gate.metric, "fail",
                                  f"no results for task {gate.task!r} ({why})"))
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


def _pairs(cell: CellResult) -> tuple[np.ndarray, np.ndarray] | None:
    """(predicted, gold) scores of an STS cell's sentence pairs, if the results carry them."""
    scores = cell.pair_scores or {}
    predicted, gold = scores.get("predicted"), scores.get("gold")
    if not predicted or not gold or len(predicted) != len(gold):
        return None
    return np.asarray(predicted, dtype=np.float64), np.asarray(gold, dtype=np.float64)


def _no_pairs_message(cell: CellResult, metric: str) -> str:
    return (f"no per-pair scores for {metric} of {cell.system} on {cell.task} (an STS gate bootstraps over "
            "sentence pairs; results written by mteb's evaluator or an older evalsuite do not carry them)")


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
    if cell.missing_queries and not gate.allow_partial:
        base.message = (f"partial result: the run lacks {len(cell.missing_queries)} judged queries (scored 0); "
                        "fix the run or set allow_partial: true")
        return base
    below = gate.below is not None
    threshold = float(gate.below if below else gate.above)  # type: ignore[arg-type]
    lo, hi = metric_range(gate.metric)
    if cell.kind == "sts":
        pairs = _pairs(cell)
        if pairs is None:
            base.message = _no_pairs_message(cell, gate.metric)
            return base
        from evalsuite.metrics.correlation import bootstrap_correlation

        boot = bootstrap_correlation(*pairs, metric=gate.metric, n_resamples=n_resamples, seed=seed)  # type: ignore[arg-type]
        estimate, low, high, means, n, unit = boot.estimate, boot.low, boot.high, boot.distribution, boot.n, "pairs"
        step = None  # a correlation has no per-item step; the interval says how firm it is
    else:
        values = _values(cell, gate.metric, queries)
        if not values:
            base.message = f"no evaluated query has a {gate.metric} value (empty or NaN result)"
            return base
        x = np.fromiter(values.values(), dtype=np.float64)
        ci = bootstrap_ci(x, n_resamples=n_resamples, seed=seed)
        means = bootstrap_means(x, n_resamples=n_resamples, seed=seed)
        estimate, low, high, n, unit = ci.estimate, ci.low, ci.high, len(x), "queries"
        step = (hi - lo) / n  # one query moves the mean by at most this
    mass = float(np.mean(means < threshold) if below else np.mean(means > threshold))
    fired = mass >= gate.fire_confidence
    word = "below" if below else "above"
    label = (gate.decision or ("FAIL" if gate.on_fire == "fail" else "WARN")) if fired else (gate.otherwise or "PASS")
    scope = f" on {cell.task}" + (f" (tag {tag})" if tag else "") + f" for {cell.system}"
    message = (f"{label}: {gate.metric} = {_fmt(estimate)} [{_fmt(low)}, {_fmt(high)}]{scope}: "
               f"{word} {threshold:g} with {mass:.0%} of the bootstrap mass (fires at {gate.fire_confidence:.0%}; "
               f"n = {n} {unit})")
    if low <= threshold <= high:
        message += f" (the 95% interval contains {threshold:g}: more {unit} would make this decision firmer)"
    warnings = []
    if step is not None and abs(estimate - threshold) < step:
        warnings.append(f"{n} queries cannot resolve threshold {threshold:g}: the mean moves in steps up to "
                        f"{step:.3f}, so a single query can flip this decision")
    status: Status = gate.on_fire if fired else ("warn" if warnings else "pass")
    if fired and gate.on_fire == "fail" and (warnings or low <= threshold <= high):
        status = "warn"  # failing a build needs evidence that resolves the threshold
        warnings.append("too little evidence to fail the build: reported as a warning")
    if warnings:
        message += "; warning: " + "; ".join(warnings)
    return GateResult(gate.name, "absolute", cell.task, cell.system, gate.metric, status, message, slice=tag,
                      decision=label, estimate=estimate, ci=(low, high), threshold=threshold,
                      mass_beyond=mass, n=n, warnings=warnings)


@dataclass
class _Pending:
    """A regression check with its test done, waiting for the correction over its family."""

    gate: GateSpec
    result: GateResult
    family: str
    p: float
    delta: float
    ci: tuple[float, float]
    before: float
    after: float
    test: str
    warn_at_least: bool = False


def _task_hash(results: SuiteResults, task: str) -> str | None:
    return next((t.get("content_hash") for t in results.tasks if t.get("name") == task), None)


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
        result.message = (f"baseline {baseline.run_id} has no result for {cell.system} on {cell.task}: a new "
                          "task/system pair; ratchet the baseline with --update-baseline in the same change")
        return result
    new_hash, old_hash = _task_hash(results, cell.task), _task_hash(baseline, cell.task)
    if new_hash and old_hash and new_hash != old_hash:
        result.message = (f"task {cell.task} data changed since baseline {baseline.run_id} (content hash "
                          f"{old_hash[:12]} -> {new_hash[:12]}): the comparison would be meaningless; re-run the "
                          "baseline on this data and ratchet it with --update-baseline")
        return result
    if cell.missing_queries and not gate.allow_partial:
        result.message = f"partial result: the run lacks {len(cell.missing_queries)} judged queries (scored 0)"
        return result
    if old.missing_queries and not gate.allow_partial:
        result.message = (f"baseline {baseline.run_id} is itself partial: its run of {cell.system} lacked "
                          f"{len(old.missing_queries)} judged queries of {cell.task} (scored 0), so a drop could "
                          "hide behind it; re-run the baseline complete and ratchet it with --update-baseline")
        return result
    family = cell.task if gate.family == "task" else "suite"
    no_hash = not (new_hash and old_hash)
    hash_note = (f"baseline {baseline.run_id} has no content hash for task {cell.task}" if not old_hash
                 else f"this run has no content hash for task {cell.task}")
    if cell.kind == "sts" or old.kind == "sts":
        return _sts_regression(gate, cell, old, result, family, no_hash, hash_note, n_resamples=n_resamples,
                               seed=seed)
    new, before = _values(cell, gate.metric, queries), _values(old, gate.metric, queries)
    if no_hash and set(new) != set(before):
        result.message = (f"{hash_note}, and the query ids differ ({len(set(new) ^ set(before))} scored on one "
                          "side only): cannot tell whether this is the same data; re-create the baseline with "
                          "--update-baseline")
        return result
    common = sorted(set(new) & set(before))
    if len(common) < 2:
        result.message = f"fewer than 2 queries scored by both the run and the baseline ({len(common)})"
        return result
    x = np.array([new[q] for q in common])
    y = np.array([before[q] for q in common])
    result.n = len(common)
    if no_hash:
        result.warnings.append(f"{hash_note}: compared on the {len(common)} query ids both score; the documents "
                               "and judgements may differ (re-create the baseline with --update-baseline)")
    elif len(common) < len(set(new) | set(before)):
        result.warnings.append(f"{len(set(new) ^ set(before))} queries scored on one side only, left out")
    d = x - y
    ci = bootstrap_ci(d, n_resamples=n_resamples, seed=seed)
    p = randomization_test(x, y, n_resamples=n_resamples, seed=seed)
    return _Pending(gate, result, family, p, float(d.mean()), (ci.low, ci.high), float(y.mean()), float(x.mean()),
                    "randomization", warn_at_least=no_hash)


def _sts_regression(gate: GateSpec, cell: CellResult, old: CellResult, result: GateResult, family: str,
                    no_hash: bool, hash_note: str, *, n_resamples: int, seed: int) -> GateResult | _Pending:
    """Paired bootstrap over sentence pairs of corr(new) - corr(baseline)."""
    new, before = _pairs(cell), _pairs(old)
    if new is None or before is None:
        result.message = _no_pairs_message(cell if new is None else old, gate.metric)
        return result
    if len(new[1]) != len(before[1]) or not np.array_equal(new[1], before[1]):
        result.message = (f"the gold scores of {cell.task} differ between the run and the baseline: not the same "
                          "sentence pairs; re-create the baseline with --update-baseline")
        return result
    from evalsuite.metrics.correlation import paired_bootstrap_correlation

    boot = paired_bootstrap_correlation(new[0], before[0], new[1], metric=gate.metric,  # type: ignore[arg-type]
                                        n_resamples=n_resamples, seed=seed)
    d = boot.distribution
    # two-sided bootstrap p-value of "no change", (hits + 1) / (B + 1) as for the randomization test
    tail = min(int(np.count_nonzero(d >= 0)), int(np.count_nonzero(d <= 0)))
    p = 1.0 if boot.estimate == 0 and np.all(d == 0) else min(1.0, 2 * (tail + 1) / (len(d) + 1))
    result.n = boot.n
    if no_hash:
        result.warnings.append(f"{hash_note}: compared on the {boot.n} sentence pairs, whose gold scores match")
    single = _pairs_stat(gate.metric)
    return _Pending(gate, result, family, p, boot.estimate, (boot.low, boot.high), single(before[0], new[1]),
                    single(new[0], new[1]), "paired bootstrap over sentence pairs", warn_at_least=no_hash)


def _pairs_stat(metric: str) -> Any:
    from evalsuite.metrics.correlation import pearson, spearman

    return spearman if metric == "spearman" else pearson


def _missing_pairs(gate: GateSpec, results: SuiteResults, baseline: SuiteResults,
                   allow_missing: Collection[str]) -> list[GateResult]:
    """FAIL for every (task, system) the baseline scored on this metric and the run lacks."""
    present = {(c.task, c.system) for c in results.cells}
    ran_tasks = {c.task for c in results.cells}
    out = []
    for old in baseline.cells:
        if (gate.task is not None and old.task != gate.task) or (gate.system is not None and old.system != gate.system):
            continue
        if gate.metric not in old.aggregate or (old.task, old.system) in present:
            continue
        if gate.allows_missing(old.task, old.system, allow_missing):
            continue
        skipped = _skip_reason(results, old.task)
        if skipped:
            why = f"the task was skipped: {skipped}"
        elif old.task not in ran_tasks:
            why = "the task is not in this run"
        else:
            why = "the system is not in this run"
        out.append(GateResult(
            gate.name, "regression", old.task, old.system, gate.metric, "fail",
            f"MISSING: baseline {baseline.run_id} has {old.system} on {old.task} ({gate.metric} = "
            f"{_fmt(float(old.aggregate[gate.metric]))}) but this run has no result for it: {why}. Missing evidence "
            f"never passes: restore it, or allow its absence (allow_missing: [{old.task}] in the gate, or "
            f"--allow-missing {old.task}/{old.system})", decision="MISSING", threshold=gate.max_drop))
    return out


def _finish_regressions(pending: Sequence[_Pending], baseline_id: str) -> None:
    """Correct the p-values within each family (task, or the whole suite), then decide."""
    corrected = [item.p for item in pending]
    sizes: dict[tuple[str, str], int] = {}
    for key in {(item.gate.correction, item.family) for item in pending}:
        members = [i for i, item in enumerate(pending) if (item.gate.correction, item.family) == key]
        sizes[key] = len(members)
        if key[0] == "none":
            continue
        adjusted = correct([pending[i].p for i in members], key[0])
        for i, value in zip(members, adjusted):
            corrected[i] = value
    for item, pc in zip(pending, corrected):
        gate, r = item.gate, item.result
        delta, (low, high) = item.delta, item.ci
        delta_max = float(gate.max_drop)  # type: ignore[arg-type]
        significant = not math.isnan(pc) and pc < gate.alpha
        m = sizes[(gate.correction, item.family)]
        where = f"task {item.family}" if item.family != "suite" else "the suite"
        r.family = (f"{where}: {m} regression check(s), {gate.correction}" if gate.correction != "none"
                    else f"{where}: uncorrected")
        how = {"holm": "Holm-corrected", "bh": "BH-corrected", "none": "uncorrected"}[gate.correction]
        if abs(delta) < 1e-12:
            moved = f"{gate.metric} unchanged at {_fmt(item.after)}"
        else:
            moved = (f"{gate.metric} {'dropped' if delta < 0 else 'rose'} by {abs(delta):.4f} "
                     f"({_fmt(item.before)} -> {_fmt(item.after)})")
        change = (f"{moved}; 95% CI of the change [{low:+.4f}, {high:+.4f}] vs baseline {baseline_id} on {r.task}"
                  + (f" (tag {r.slice})" if r.slice else "") + f" for {r.system}, n={r.n}; "
                  f"p = {pc:.4f} ({item.test}, {how} over the {m} regression check(s) of {where})")
        if (delta < -delta_max and significant) or high < -delta_max:
            r.status, label = "fail", "REGRESSION"
            why = (f"a significant drop larger than {delta_max:g}" if delta < -delta_max and significant
                   else f"the whole CI of the change lies below -{delta_max:g}")
        elif delta < 0 and abs(delta) >= 1e-12:
            if significant:
                r.status, label = "warn", "WITHIN MARGIN"
                why = f"significant, but smaller than the allowed {delta_max:g}"
            else:
                r.status, label, why = "warn", "WITHIN NOISE", "not significant"
        else:
            r.status, label, why = "pass", "NO REGRESSION", "no drop"
        if item.warn_at_least and r.status == "pass":
            r.status = "warn"
        r.message = f"{label}: {change}: {why}"
        if r.warnings:
            r.message += "; warning: " + "; ".join(r.warnings)
        r.decision, r.estimate, r.delta, r.p_value, r.p_corrected = label, item.after, delta, item.p, pc
        r.ci = (low, high)


def evaluate_gates(
    results: SuiteResults,
    gates: Sequence[GateSpec],
    *,
    baseline: SuiteResults | None = None,
    n_resamples: int = 10_000,
    seed: int = 0,
    no_baseline: Status = "fail",
    no_baseline_reason: str | None = None,
    allow_missing: Collection[str] = (),
) -> GateReport:
    """Evaluate ``gates`` on ``results`` (and ``baseline`` for regression rules).

    Without a baseline a regression rule gets status ``no_baseline`` ("fail" by default;
    ``evalsuite run`` passes "warn" when the suite names a baseline file that does not exist
    yet, i.e. before the first ``--update-baseline``), with ``no_baseline_reason`` as message.
    ``allow_missing`` ("task", "task/system" or "*/system") names pairs of the baseline that
    this run may lack (the command line's ``--allow-missing``, and what ``--task``/``--system``
    left out on purpose); every other pair the baseline has and the run lacks FAILS.
    """
    out: list[GateResult] = []
    pending: list[_Pending] = []
    from evalsuite.cost_gates import cost_gate_results, is_cost_metric

    for gate in gates:
        if is_cost_metric(gate.metric):  # a budget: evalsuite.cost_gates
            out += cost_gate_results(gate, results)
            continue
        cells, missing = _cells(results, gate)
        if gate.kind == "regression" and baseline is not None:
            # a pair the run lacks is reported once, as missing (not also as "no results for task")
            absent = _missing_pairs(gate, results, baseline, allow_missing)
            named = {(r.task, r.system) for r in absent} | {(r.task, "*") for r in absent}
            missing = [m for m in missing if (m.task, m.system) not in named] + absent
        out += missing
        for cell in cells:
            scopes: list[tuple[str | None, set[str] | None]] = [(None, None)]
            if gate.per_tag and cell.kind != "sts":
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
        _finish_regressions(pending, baseline.run_id if baseline else "")
    return GateReport(out, run_id=results.run_id, baseline_id=baseline.run_id if baseline else None)
