"""What a report shows, computed once from suite results; the templates only lay it out.

:func:`build_report` turns one or more :class:`~evalsuite.results.SuiteResults` into a
:class:`Report`: gate decisions, per-task comparison tables (aggregate, bootstrap CI, best
per column, significance against a baseline system), recall@k curves and per-query
drill-downs (read from the run files and ``details/<task>.json`` next to ``results.json``),
leakage findings and reproducibility data. The HTML and Markdown renderers share it, so both
show the same numbers.

Statistics (see :mod:`evalsuite.metrics.stats` and :mod:`evalsuite.report.verdict`):

* CI: percentile bootstrap of the mean over the per-query values (queries resampled), 95%.
* Significance: every pair of systems on a task, on every metric, with the paired
  randomization test. The family corrected with Holm (family-wise error rate ``alpha``) is the
  task: all pairs on all metrics of that task, so a mark never depends on which other tasks
  ran. The table's ▲/▼ read the pairs with the baseline system (selectable; on a task where
  it has no result, the first system that has one); the pairwise matrix shows every pair.
* The verdict of each task (:class:`~evalsuite.report.verdict.Verdict`) reads the same
  corrected p-values on the task's main metric.
* Tasks without per-query values (STS: one correlation over all pairs) get no CI and no test.
* Given the run's cache folder (``cache_dir``), every bootstrap interval and test is memoised
  there by a hash of its exact inputs and parameters (:mod:`evalsuite.metrics.memo`): a report
  on unchanged results reads the same numbers back instead of resampling again.
* Systems that do not apply to a task (no result, a "not applicable" note) are listed once
  as not applicable, never as a row or as the baseline.

Several results files may be combined (e.g. two runs of one suite, or suites run apart): a
system whose name occurs in more than one of them is shown as ``name [run id]``. Tasks are
matched by name; when their data content hashes differ, no test pairs their queries.
"""

from __future__ import annotations

import hashlib
import json
import math
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from markupsafe import Markup

from evalsuite.errors import ConfigError, DataError, UnknownNameError
from evalsuite.metrics.memo import StatsMemo
from evalsuite.metrics.stats import ConfidenceInterval, align, bootstrap_ci, correct, randomization_test
from evalsuite.report import charts
from evalsuite.report.verdict import (
    Alternative,
    Decision,
    PairCell,
    SetupNote,
    Standing,
    Verdict,
    fine_tune_meaning,
    format_p,
    is_fired,
    regression_meaning,
    spec_of,
)
from evalsuite.results import CellResult, SuiteResults
from evalsuite.safepaths import contained

__all__ = ["Decision", "DrillDoc", "DrillRow", "MetricValue", "PairCell", "Report", "SetupNote", "SystemInfo",
           "TableRow", "TaskView", "Verdict", "build_report"]

#: cutoffs of the recall@k curve (those up to the run depth are drawn)
RECALL_KS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
_STATUS_ORDER = {"fail": 0, "warn": 1, "pass": 2}


@dataclass(frozen=True)
class SystemInfo:
    """A system as the report names it (``key``), where it came from, and its colour."""

    key: str
    name: str
    run_id: str
    meta: dict[str, Any]
    colour: str

    @property
    def label(self) -> str:
        return str(self.meta.get("label") or self.meta.get("kind") or "")


@dataclass
class MetricValue:
    """One table cell: the aggregate, its CI, and the comparison with the task's baseline system."""

    metric: str
    value: float
    ci: ConfidenceInterval | None = None
    best: bool = False
    vs_baseline: PairCell | None = None  # this system minus the baseline, corrected within the task
    alpha: float = 0.05

    @property
    def p_holm(self) -> float:
        return self.vs_baseline.p_holm if self.vs_baseline is not None else math.nan

    @property
    def significant(self) -> bool:
        return self.vs_baseline is not None and self.vs_baseline.significant

    @property
    def marker(self) -> str:
        """▲ significantly better than the baseline, ▼ significantly worse, else empty."""
        return self.vs_baseline.marker if self.vs_baseline is not None else ""

    @property
    def tooltip(self) -> str:
        parts = []
        if self.ci is not None and not math.isnan(self.ci.low):
            parts.append(f"{self.metric} = {self.value:.4f}, 95% bootstrap CI [{self.ci.low:.4f}, {self.ci.high:.4f}]"
                         f" over {self.ci.n}")
        c = self.vs_baseline
        if c is not None:
            parts.append(f"vs baseline {c.col}: Δ = {c.delta:+.4f} (95% CI [{c.ci_low:+.4f}, {c.ci_high:+.4f}]),"
                         f" n = {c.n}, p = {format_p(c.p)}, p Holm = {format_p(c.p_holm)}")
        return "; ".join(parts)


@dataclass
class TableRow:
    system: SystemInfo
    is_baseline: bool
    values: list[MetricValue]
    n_queries: int | None
    note: str | None = None
    costs: dict[str, Any] = field(default_factory=dict)  # evalsuite.retrievers.cost


@dataclass(frozen=True)
class DrillDoc:
    rank: int
    doc_id: str
    title: str
    snippet: str
    grade: int | None  # None: not judged


@dataclass
class DrillRow:
    """One query of the drill-down: both systems' values, first relevant rank and top documents."""

    query_id: str
    text: str
    value_a: float
    value_b: float
    n_relevant: int
    first_a: int | None
    first_b: int | None
    docs_a: list[DrillDoc]
    docs_b: list[DrillDoc]

    @property
    def delta(self) -> float:
        return self.value_b - self.value_a

    @property
    def sign(self) -> str:
        return "better" if self.delta > 0 else ("worse" if self.delta < 0 else "tie")


@dataclass
class TaskView:
    """Everything shown for one task."""

    name: str
    kind: str
    info: dict[str, Any]
    main_metric: str
    metrics: list[str]
    rows: list[TableRow]
    baseline: SystemInfo | None = None  # the system the table's ▲/▼ refer to on this task
    not_applicable: list[tuple[SystemInfo, str]] = field(default_factory=list)
    pairwise: dict[str, dict[tuple[str, str], PairCell]] = field(default_factory=dict)  # metric -> (row, col)
    n_comparisons: int = 0
    verdict: Verdict | None = None
    bar_chart: Markup | None = None
    recall: dict[str, list[float]] = field(default_factory=dict)
    recall_ks: list[int] = field(default_factory=list)
    recall_chart: Markup | None = None
    pair: tuple[SystemInfo, SystemInfo] | None = None
    deltas: list[float] = field(default_factory=list)
    bins: charts.DeltaBins | None = None
    delta_chart: Markup | None = None
    drilldown: list[DrillRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    run_hashes: dict[str, str] = field(default_factory=dict)
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    #: STS: the systems whose results hold their per-pair scores (what the paired bootstrap resamples)
    pair_scored: set[str] = field(default_factory=set)

    @property
    def wins(self) -> tuple[int, int, int]:
        """(challenger better, worse, exactly tied), the counts the histogram draws."""
        if self.bins is None:
            return (0, 0, 0)
        return (self.bins.n_better, self.bins.n_worse, self.bins.ties)

    @property
    def leakage(self) -> dict[str, Any] | None:
        value = self.info.get("leakage")
        return value if isinstance(value, dict) else None

    @property
    def systems(self) -> list[SystemInfo]:
        """The systems with a result on this task, in table order (rows and columns of the matrix)."""
        return [r.system for r in self.rows]

    @property
    def matrix_metrics(self) -> list[str]:
        """Metrics with a pairwise matrix: the main metric first."""
        return sorted(self.pairwise, key=lambda m: (m != self.main_metric, self.metrics.index(m)))

    def cell(self, metric: str, row: str, col: str) -> PairCell | None:
        return self.pairwise.get(metric, {}).get((row, col))

    @property
    def unit(self) -> str:
        return "sentence pairs" if self.kind == "sts" else "queries"

    @property
    def not_applicable_text(self) -> str:
        """The systems that do not apply, grouped by reason: "bm25, hybrid (no sentence encoder for STS)"."""
        groups: dict[str, list[str]] = {}
        for system, reason in self.not_applicable:
            groups.setdefault(reason, []).append(system.key)
        return "; ".join(f"{', '.join(keys)} ({reason})" for reason, keys in groups.items())

    @property
    def has_cis(self) -> bool:
        return any(v.ci is not None and v.ci.n >= 2 for r in self.rows for v in r.values)


@dataclass
class Report:
    title: str
    sources: list[SuiteResults]
    systems: list[SystemInfo]
    baseline: SystemInfo
    tasks: list[TaskView]
    gates: list[Decision]
    alpha: float
    n_comparisons: int
    n_resamples: int
    notes: list[str] = field(default_factory=list)
    setup: list[SetupNote] = field(default_factory=list)
    tradeoffs: list[Any] = field(default_factory=list)  # evalsuite.report.tradeoffs.TradeoffView

    @property
    def verdicts(self) -> list[Verdict]:
        return [t.verdict for t in self.tasks if t.verdict is not None]

    @property
    def gate_counts(self) -> dict[str, int]:
        """Gate results per status (each result counted, also when shown grouped), set-up ones included."""
        counts = {s: sum(g.count for g in self.gates if g.status == s) for s in ("fail", "warn", "pass")}
        counts["setup"] = sum(n.count for n in self.setup if n.kind == "gate")
        return counts

    @property
    def gate_status(self) -> str:
        """The worst status among the decisions: fail, warn, pass; "none" without any."""
        if not self.gates:
            return "none"
        return min((g.status for g in self.gates), key=lambda s: _STATUS_ORDER.get(s, 0))

    @property
    def fired(self) -> list[Decision]:
        """Decisions to act on: failures and fired rules, failures first."""
        return [g for g in self.gates if g.fired]

    @property
    def headline(self) -> str:
        c = self.gate_counts
        if not self.gates and not c["setup"]:
            return "No gates declared: nothing was decided automatically"
        if not self.gates:
            return f"No decision yet: {_plural(c['setup'], 'gate check')} wait for their set-up (see Set-up notes)"
        if c["fail"]:
            return f"GATES FAILED: {_plural(c['fail'], 'check')} failed, so the run exits 1"
        fired = list(dict.fromkeys(g.label for g in self.gates if g.fired))
        if fired:
            return f"{' · '.join(fired)} (advisory: no gate failed, the run exits 0)"
        return f"ALL GATES PASSED: {_plural(c['pass'], 'check')}"

    @property
    def counts_line(self) -> str:
        c = self.gate_counts
        text = f"{c['fail']} failed, {_plural(c['warn'], 'warning')}, {c['pass']} passed"
        if c["setup"]:
            text += f"; {_plural(c['setup'], 'check')} waiting on set-up"
        return text

    @property
    def setup_summary(self) -> str:
        """The set-up notes in a few words: "no baseline yet for 8 checks; 2 tasks skipped"."""
        parts = []
        waiting = sum(n.count for n in self.setup if n.kind == "gate")
        skipped = sum(n.count for n in self.setup if n.kind == "skipped")
        other = sum(n.count for n in self.setup if n.kind not in ("gate", "skipped"))
        if waiting:
            parts.append(f"{_plural(waiting, 'gate check')} waiting on set-up")
        if skipped:
            parts.append(f"{_plural(skipped, 'task')} skipped")
        if other:
            parts.append(f"{_plural(other, 'other note')}")
        return "; ".join(parts)

    @property
    def leak_alerts(self) -> list[tuple[str, dict[str, Any]]]:
        """(task, finding) for every leakage finding of severity "leak" with a non-zero count."""
        return [(t.name, f) for t in self.tasks for f in (t.leakage or {}).get("findings", [])
                if f.get("severity") == "leak" and f.get("count")]

    @property
    def finetune(self) -> list[Any]:
        """The fine-tune sections of results written by ``evalsuite finetune`` (none otherwise)."""
        from evalsuite.report.finetune import finetune_views

        return finetune_views(self.sources)

    @property
    def command_lines(self) -> list[str]:
        out = []
        for r in self.sources:
            command = r.environment.get("command")
            if isinstance(command, list):
                out.append(shlex.join(str(c) for c in command))
            elif command:
                out.append(str(command))
        return out


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _folder(results: SuiteResults) -> Path | None:
    return Path(results.path).parent if results.path else None


def _systems(sources: Sequence[SuiteResults]) -> list[SystemInfo]:
    seen: dict[str, int] = {}
    for r in sources:
        for n in dict.fromkeys([str(s.get("name")) for s in r.systems] + [c.system for c in r.cells]):
            seen[n] = seen.get(n, 0) + 1
    out: list[SystemInfo] = []
    for r in sources:
        metas = {str(s.get("name")): s.get("meta") or {} for s in r.systems}
        for n in dict.fromkeys(list(metas) + [c.system for c in r.cells]):
            key = n if seen[n] == 1 else f"{n} [{r.run_id}]"
            colour = charts.PALETTE[len(out) % len(charts.PALETTE)]
            out.append(SystemInfo(key, n, r.run_id, dict(metas.get(n, {})), colour))
    return out


def _pick_system(systems: Sequence[SystemInfo], wanted: str | None, role: str) -> SystemInfo:
    """The system named ``wanted`` (its report key, or its plain name when unambiguous)."""
    if wanted is None:
        return systems[0]
    exact = [s for s in systems if s.key == wanted]
    by_name = [s for s in systems if s.name == wanted]
    if exact:
        return exact[0]
    if len(by_name) == 1:
        return by_name[0]
    if len(by_name) > 1:
        raise UnknownNameError(f"{role} system (several runs have it; name one as it is shown)", wanted,
                               [s.key for s in by_name])
    raise UnknownNameError(f"{role} system", wanted, [s.key for s in systems])


def _values(cell: CellResult, metric: str) -> dict[str, float]:
    return {q: float(v) for q, v in cell.per_query.get(metric, {}).items() if v is not None and not math.isnan(v)}


def _read_json(path: Path) -> dict[str, Any]:
    from evalsuite.io._text import read_text

    try:
        data = json.loads(read_text(path, "details file"))
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc.msg}", path=path, line=exc.lineno) from None
    except RecursionError:
        raise DataError("details file is nested too deeply", path=path) from None
    if not isinstance(data, dict):
        raise DataError("expected a JSON object with queries, qrels and docs", path=path)
    shapes = (("queries", lambda v: isinstance(v, str)),
              ("qrels", lambda v: isinstance(v, dict) and all(isinstance(g, int) and not isinstance(g, bool)
                                                               for g in v.values())),
              ("docs", lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values())))
    for key, ok in shapes:
        value = data.get(key, {})
        if not isinstance(value, dict) or not all(ok(v) for v in value.values()):
            raise DataError(f"details file: {key!r} has the wrong shape", path=path,
                            hint="results folders are written by 'evalsuite run'; run the suite again")
    return data


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _first_relevant(ranking: Sequence[tuple[str, float]], relevant: set[str]) -> int | None:
    return next((i + 1 for i, (d, _) in enumerate(ranking) if d in relevant), None)


def _docs(ranking: Sequence[tuple[str, float]], judged: dict[str, int], docs: dict[str, Any],
          depth: int) -> list[DrillDoc]:
    out = []
    for i, (doc_id, _) in enumerate(ranking[:depth]):
        doc = docs.get(doc_id) or {}
        out.append(DrillDoc(i + 1, doc_id, str(doc.get("title") or ""), str(doc.get("snippet") or ""),
                            judged.get(doc_id)))
    return out


def build_report(
    results: SuiteResults | Sequence[SuiteResults],
    *,
    baseline_system: str | None = None,
    compare_system: str | None = None,
    alpha: float = 0.05,
    n_resamples: int = 10_000,
    seed: int | None = None,
    drilldown_queries: int = 40,
    drilldown_depth: int = 5,
    title: str | None = None,
    cache_dir: str | Path | None = None,
) -> Report:
    """Compute everything a report shows (see the module docstring).

    ``baseline_system``: the system the table's ▲/▼ refer to (default: the first; on a task
    where it has no result, the first system that has one).
    ``compare_system``: the challenger of the per-query drill-down and delta histogram
    (default: per task, the best non-baseline system on the task's main metric).
    ``drilldown_queries``: how many most-disagreeing queries to list per task;
    ``drilldown_depth``: top documents shown per system for each.
    ``cache_dir``: the run's cache folder, where the bootstrap intervals and tests are memoised
    (:class:`~evalsuite.metrics.memo.StatsMemo`: a re-run on unchanged results reads them back,
    bit for bit); None computes them all.
    """
    sources = [results] if isinstance(results, SuiteResults) else list(results)
    if not sources:
        raise DataError("no results to report on")
    run_ids = [r.run_id for r in sources]
    if len(set(run_ids)) < len(run_ids):
        raise ConfigError(f"run {next(i for i in run_ids if run_ids.count(i) > 1)} is given twice; give each "
                          "results file once")
    if not any(r.cells for r in sources):
        raise DataError("the results hold no task result to report on", path=sources[0].path)
    if seed is None:
        seed = int(sources[0].config.get("seed", 0) or 0)
    with StatsMemo(cache_dir, sources=[__file__]) as memo:
        return _build(sources, memo, baseline_system=baseline_system, compare_system=compare_system, alpha=alpha,
                      n_resamples=n_resamples, seed=seed, drilldown_queries=drilldown_queries,
                      drilldown_depth=drilldown_depth, title=title)


def _build(sources: list[SuiteResults], memo: StatsMemo, *, baseline_system: str | None, compare_system: str | None,
           alpha: float, n_resamples: int, seed: int, drilldown_queries: int, drilldown_depth: int,
           title: str | None) -> Report:
    from evalsuite.io import read_run
    from evalsuite.metrics.evaluate import evaluate
    from evalsuite.types import Qrels

    systems = _systems(sources)
    baseline = _pick_system(systems, baseline_system, "baseline")
    challenger_pick = _pick_system(systems, compare_system, "compare") if compare_system is not None else None
    if challenger_pick is not None and challenger_pick.key == baseline.key:
        raise ConfigError(f"--compare-system {compare_system} is the baseline system; name another system")
    by_key = {s.key: s for s in systems}
    key_of = {(s.run_id, s.name): s.key for s in systems}
    cells: dict[tuple[str, str], tuple[CellResult, SuiteResults]] = {}
    for r in sources:
        for c in r.cells:
            cells[(c.task, key_of[(r.run_id, c.system)])] = (c, r)

    setup: list[SetupNote] = []
    task_infos: dict[str, list[tuple[dict[str, Any], SuiteResults]]] = {}
    for r in sources:
        for info in r.tasks:
            task_infos.setdefault(str(info.get("name")), []).append((info, r))
    for r in sources:
        for c in r.cells:
            task_infos.setdefault(c.task, [({"name": c.task}, r)])
        for s in r.skipped:
            setup.append(_skipped_note(s, r))

    views: list[TaskView] = []
    for task, infos in task_infos.items():
        info = infos[0][0]
        hashes = {str(i.get("content_hash")) for i, _ in infos if i.get("content_hash")}
        same_data = len(hashes) <= 1
        task_cells = [(by_key[k], cells[(task, k)]) for k in by_key if (task, k) in cells]
        if not task_cells:
            continue
        kind = task_cells[0][1][0].kind
        ordered = [m for r in sources for m in r.metrics]
        present = list(dict.fromkeys(m for _, (c, _) in task_cells for m in c.aggregate))
        metrics = [m for m in dict.fromkeys(ordered) if m in present]
        metrics += [m for m in present if m not in metrics]
        main = str(info.get("main_metric") or (metrics[0] if metrics else ""))
        if main not in metrics and metrics:
            main = metrics[0]
        view = TaskView(task, kind, dict(info), main, metrics, [])
        applicable = []
        for system, (cell, r) in task_cells:
            if cell.aggregate:
                applicable.append((system, (cell, r)))
            else:
                view.not_applicable.append((system, _not_applicable_reason(cell, system.meta.get("kind"))))
        if not same_data:
            view.notes.append(f"the runs combined here used different data for {task} (content hashes "
                              f"{', '.join(sorted(h[:12] for h in hashes))}): no significance test pairs them")
        keys = [s.key for s, _ in applicable]
        view.baseline = baseline if baseline.key in keys else (by_key[keys[0]] if keys else None)
        samples: dict[tuple[str, str], dict[str, float]] = {}
        pair_scores: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for system, (cell, _) in applicable:
            values = []
            scored = _pair_scores(cell) if kind == "sts" else None
            if scored is not None:
                pair_scores[system.key] = scored
                view.pair_scored.add(system.key)
            for m in metrics:
                per_query = _values(cell, m)
                mv = MetricValue(m, float(cell.aggregate.get(m, math.nan)), alpha=alpha)
                if per_query:
                    samples[(system.key, m)] = per_query
                    mv.ci = _mean_ci(memo, list(per_query.values()), n_resamples=n_resamples, seed=seed)
                elif scored is not None and m in _CORRELATIONS:
                    mv.ci = _correlation_ci(scored, m, n_resamples=n_resamples, seed=seed, memo=memo)
                values.append(mv)
            n = max(cell.n_queries.values(), default=None) if cell.n_queries else None
            view.timings[system.key] = dict(cell.timing)
            view.rows.append(TableRow(system, view.baseline is not None and system.key == view.baseline.key, values,
                                      n, "; ".join(cell.notes) if cell.notes else None, dict(cell.costs)))
        for j in range(len(metrics)):
            column = [r.values[j].value for r in view.rows if not math.isnan(r.values[j].value)]
            if len(column) > 1:
                top = max(column)
                for row in view.rows:
                    row.values[j].best = not math.isnan(row.values[j].value) and row.values[j].value >= top - 1e-12
        if same_data:
            _pairwise(view, partial(_pair_of, memo, samples, pair_scores, n_resamples, seed), alpha=alpha)
        _charts_and_drilldown(view, applicable, challenger_pick, infos, drilldown_queries,
                              drilldown_depth, read_run, evaluate, Qrels)
        views.append(view)

    decisions, gate_setup = _decisions(sources, views, key_of)
    setup = gate_setup + setup
    for view in views:
        view.verdict = _verdict(view, alpha, decisions)
        setup += [SetupNote(f"{view.name}: {note}") for note in view.notes]
    name = title or " + ".join(dict.fromkeys(f"{r.suite} {r.run_id}" for r in sources))
    from evalsuite.report.tradeoffs import build_tradeoffs

    return Report(name, sources, systems, baseline, views, decisions, alpha, sum(v.n_comparisons for v in views),
                  n_resamples, [n.text for n in setup], setup, build_tradeoffs(sources, n_resamples=n_resamples))


def _not_applicable_reason(cell: CellResult, kind: str | None) -> str:
    """The why of a "not applicable: <system> (<kind>) has no ..." note, without the system's own name."""
    note = next((n for n in cell.notes if n.lower().startswith("not applicable")), None)
    if note is None:
        return "; ".join(cell.notes) or "no result"
    reason = note.split(":", 1)[1].strip() if ":" in note else note
    for prefix in (f"{cell.system} ({kind}) ", f"{cell.system} "):
        if reason.startswith(prefix):
            reason = reason[len(prefix):]
            break
    return reason[4:] if reason.startswith("has ") else reason


def _skipped_note(skipped: dict[str, str], results: SuiteResults) -> SetupNote:
    task, reason = skipped.get("task"), str(skipped.get("reason", ""))
    command = shlex.join(str(c) for c in results.environment.get("command") or []) or "the suite"
    if "not found" in reason:
        fix = (f"make the data available where the task's 'path' points (the shipped suites read "
               f"EVALSUITE_DATA_DIR; see README, Data), then run {command} again")
    else:
        fix = f"fix what the reason names, then run {command} again"
    return SetupNote(f"task {task} was skipped in run {results.run_id}: {reason}", fix, kind="skipped")


#: (difference a - b, its 95% CI low, high, two-sided p, paired queries or sentence pairs)
_Paired = tuple[float, float, float, float, int]
_CORRELATIONS = ("spearman", "pearson")


def _pair_scores(cell: CellResult) -> tuple[np.ndarray, np.ndarray] | None:
    """(predicted, gold) scores of an STS cell's sentence pairs; None when the results lack them."""
    scores = cell.pair_scores or {}
    predicted, gold = scores.get("predicted") or [], scores.get("gold") or []
    if len(predicted) < 3 or len(predicted) != len(gold):
        return None
    return np.asarray(predicted, dtype=np.float64), np.asarray(gold, dtype=np.float64)


def _ci_values(ci: ConfidenceInterval | None) -> list[float]:
    """A CI as the memo stores it: (estimate, low, high, confidence, n); empty for None."""
    return [] if ci is None else [ci.estimate, ci.low, ci.high, ci.confidence, float(ci.n)]


def _ci_of(values: np.ndarray, method: str) -> ConfidenceInterval | None:
    if not len(values):
        return None
    estimate, low, high, confidence, n = (float(v) for v in values)
    return ConfidenceInterval(estimate, low, high, confidence, method, int(n))


def _mean_ci(memo: StatsMemo, values: list[float], *, n_resamples: int, seed: int) -> ConfidenceInterval:
    """Percentile bootstrap CI of the mean of per-query values (queries resampled)."""
    x = np.asarray(values, dtype=np.float64)
    stored = memo.remember("bootstrap_ci percentile", [x], {"n_resamples": n_resamples, "seed": seed},
                           lambda: _ci_values(bootstrap_ci(x, n_resamples=n_resamples, seed=seed)))
    ci = _ci_of(stored, "percentile")
    assert ci is not None
    return ci


def _correlation_ci(scored: tuple[np.ndarray, np.ndarray], metric: str, *, n_resamples: int,
                    seed: int, memo: StatsMemo | None = None) -> ConfidenceInterval | None:
    """Percentile bootstrap CI of Spearman/Pearson over sentence pairs (pairs resampled)."""
    from evalsuite.metrics import correlation

    def compute() -> list[float]:
        try:
            b = correlation.bootstrap_correlation(scored[0], scored[1], metric=metric,  # type: ignore[arg-type]
                                                  n_resamples=n_resamples, seed=seed)
        except DataError:  # constant scores: the correlation itself is undefined
            return []
        return [b.estimate, b.low, b.high, b.confidence, float(b.n)]

    memo = memo or StatsMemo(None)
    stored = memo.remember("bootstrap_correlation", scored,
                           {"metric": metric, "n_resamples": n_resamples, "seed": seed}, compute)
    return _ci_of(stored, "percentile over sentence pairs")


def _bootstrap_p(distribution: np.ndarray) -> float:
    """Two-sided p of a paired bootstrap of a difference: twice the smaller share of resampled
    differences on either side of 0, (2k + 1) / (B + 1), at most 1 (the 95% percentile
    interval excludes 0 about when p < 0.05)."""
    n = len(distribution)
    if n == 0:
        return math.nan
    k = min(int(np.count_nonzero(distribution <= 0)), int(np.count_nonzero(distribution >= 0)))
    return min(1.0, (2 * k + 1) / (n + 1))


def _paired_of(values: np.ndarray) -> _Paired | None:
    """A paired comparison from the memo's (delta, low, high, p, n); None from an empty array."""
    if not len(values):
        return None
    delta, low, high, p, n = (float(v) for v in values)
    return delta, low, high, p, int(n)


def _paired_correlation(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], metric: str, *,
                        n_resamples: int, seed: int, memo: StatsMemo | None = None) -> _Paired | None:
    """corr(a) - corr(b) by a paired bootstrap over the sentence pairs both scored (same gold scores)."""
    from evalsuite.metrics import correlation

    if len(a[1]) != len(b[1]) or not np.array_equal(a[1], b[1]):
        return None

    def compute() -> list[float]:
        try:
            d = correlation.paired_bootstrap_correlation(a[0], b[0], a[1], metric=metric,  # type: ignore[arg-type]
                                                         n_resamples=n_resamples, seed=seed)
        except DataError:
            return []
        return [d.estimate, d.low, d.high, _bootstrap_p(d.distribution), float(d.n)]

    memo = memo or StatsMemo(None)
    return _paired_of(memo.remember("paired_bootstrap_correlation", [a[0], b[0], a[1]],
                                    {"metric": metric, "n_resamples": n_resamples, "seed": seed}, compute))


def _paired(a: dict[str, float], b: dict[str, float], *, n_resamples: int, seed: int,
            memo: StatsMemo | None = None) -> _Paired:
    """(mean of a - b, CI low, CI high, randomization p, n) over the queries both have."""
    x, y, _ = align(a, b)
    if len(x) < 2:
        return (float(np.mean(x - y)) if len(x) else math.nan, math.nan, math.nan, math.nan, len(x))

    def compute() -> list[float]:
        d = x - y
        ci = bootstrap_ci(d, n_resamples=n_resamples, seed=seed)
        return [float(d.mean()), ci.low, ci.high, randomization_test(x, y, n_resamples=n_resamples, seed=seed),
                float(len(d))]

    memo = memo or StatsMemo(None)
    result = _paired_of(memo.remember("paired randomization", [x, y], {"n_resamples": n_resamples, "seed": seed},
                                      compute))
    assert result is not None
    return result


def _pair_of(memo: StatsMemo, samples: dict[tuple[str, str], dict[str, float]],
             pair_scores: dict[str, tuple[np.ndarray, np.ndarray]], n_resamples: int, seed: int, a: str, b: str,
             metric: str) -> _Paired | None:
    """System a minus b on ``metric``: paired queries (randomization test) or paired sentence pairs
    (bootstrap); None when the two cannot be paired."""
    if (a, metric) in samples and (b, metric) in samples:
        return _paired(samples[(a, metric)], samples[(b, metric)], n_resamples=n_resamples, seed=seed, memo=memo)
    if a in pair_scores and b in pair_scores and metric in _CORRELATIONS:
        return _paired_correlation(pair_scores[a], pair_scores[b], metric, n_resamples=n_resamples, seed=seed,
                                   memo=memo)
    return None


def _pairwise(view: TaskView, paired: Callable[[str, str, str], _Paired | None], *, alpha: float) -> None:
    """Every pair of systems on every metric of the task (``paired(a, b, metric)``: a minus b, or
    None when they cannot be paired), Holm-corrected over that family; the table's comparisons
    with the task's baseline read the same cells."""
    keys = [r.system.key for r in view.rows]
    raw: list[tuple[str, str, str, _Paired]] = []
    for m in view.metrics:
        for i, a in enumerate(keys):
            for b in keys[i + 1:]:
                result = paired(a, b, m)
                if result is not None:
                    raw.append((m, a, b, result))
    adjusted = correct([r[3][3] for r in raw], "holm")
    view.n_comparisons = sum(not math.isnan(r[3][3]) for r in raw)
    for (m, a, b, (delta, low, high, p, n)), p_holm in zip(raw, adjusted):
        cell = PairCell(m, a, b, delta, low, high, p, p_holm, n, alpha)
        view.pairwise.setdefault(m, {})[(a, b)] = cell
        view.pairwise[m][(b, a)] = cell.flipped()
    if view.baseline is not None:
        for row in view.rows:
            if row.system.key != view.baseline.key:
                for mv in row.values:
                    mv.vs_baseline = view.cell(mv.metric, row.system.key, view.baseline.key)


def _verdict(view: TaskView, alpha: float, decisions: Sequence[Decision]) -> Verdict:
    """Who won the task on its main metric (see :class:`~evalsuite.report.verdict.Verdict`)."""
    method = ("paired bootstrap over sentence pairs" if view.kind == "sts"
              else "paired randomization test over queries")
    v = Verdict(view.name, view.main_metric, view.unit, method, alpha=alpha, n_comparisons=view.n_comparisons)
    v.not_applicable = view.not_applicable_text
    v.decisions = [f"Decision ({d.gate}{'' if d.count == 1 else f', {d.count} task/system pairs'}): {d.label}: "
                   f"{d.detail}" for d in decisions if d.fired and view.name in d.tasks]
    different = next((n for n in view.notes if "different data" in n), None)
    if different:
        v.note = different
    if view.main_metric not in view.metrics:
        return v
    j = view.metrics.index(view.main_metric)
    ranked = [(row, row.values[j]) for row in view.rows if not math.isnan(row.values[j].value)]
    if not ranked:
        return v
    best_row, best = max(ranked, key=lambda rv: rv[1].value)
    v.best, v.value = best_row.system.key, best.value
    if best.ci is not None and best.ci.n >= 2:
        v.ci, v.n = (best.ci.low, best.ci.high), best.ci.n
    else:
        v.n = best_row.n_queries or 0
    for row, mv in ranked:
        if row is best_row:
            continue
        cell = view.cell(view.main_metric, row.system.key, best_row.system.key)
        if cell is not None and not math.isnan(cell.p_holm):
            v.standings.append(Standing(row.system.key, mv.value, cell.delta, cell.p_holm, cell.n, True,
                                        cell.significant))
        else:
            both_scored = {row.system.key, best_row.system.key} <= view.pair_scored
            reason = ("the runs used different data" if different else
                      "fewer than 2 paired queries" if cell is not None else
                      "their sentence pairs differ (other gold scores) or a correlation is undefined (constant "
                      "scores)" if view.kind == "sts" and both_scored else
                      "these results hold no per-pair scores to resample (a run of this version stores them)"
                      if view.kind == "sts" else "no per-query values to pair")
            v.standings.append(Standing(row.system.key, mv.value, mv.value - best.value, math.nan, 0, False, False,
                                        reason))
    return v


def _decisions(sources: Sequence[SuiteResults], views: Sequence[TaskView],
               key_of: dict[tuple[str, str], str]) -> tuple[list[Decision], list[SetupNote]]:
    """Gate results as decisions (with meaning and measured alternatives) and set-up notes.

    A result without a decision label is about set-up (no baseline yet) unless it failed: a
    failure for missing evidence fails the build, so it is a decision (``FAILED``). Identical
    results (same gate, status, message) are grouped: eight "no baseline yet" read as one.
    """
    grouped: dict[tuple[str, str, str, str, str], tuple[SuiteResults, list[dict[str, Any]]]] = {}
    for r in sources:
        for g in r.gates:
            key = (str(g.get("gate")), str(g.get("status", "fail")), str(g.get("decision") or ""),
                   str(g.get("message", "")), r.run_id)
            grouped.setdefault(key, (r, []))[1].append(g)
    by_name = {v.name: v for v in views}
    decisions: list[Decision] = []
    setup: list[SetupNote] = []
    for (gate, status, label, message, run_id), (r, members) in grouped.items():
        wheres = [f"{g.get('task')} / {g.get('system')}" + (f" / tag {g['slice']}" if g.get("slice") else "")
                  for g in members]
        if not label and status != "fail":
            scope = wheres[0] if len(wheres) == 1 else _plural(len(wheres), "task/system pair")
            setup.append(SetupNote(f"gate {gate} [{scope}]: {message}", count=len(members), kind="gate"))
            continue
        spec = spec_of(r.config, gate)
        detail = message[len(label) + 1:].strip() if label and message.startswith(label + ":") else message
        d = Decision(status, gate, label or "FAILED", is_fired(members[0], spec) if label else True, detail, wheres,
                     run_id, tasks=list(dict.fromkeys(str(g.get("task")) for g in members)))
        first = members[0]
        if not label:
            d.meaning = "Missing evidence never passes: fix what the message names and run again."
        elif first.get("kind") == "regression":
            d.meaning = regression_meaning(label)
        elif d.fired and len(members) == 1:
            word = "below" if spec.get("below") is not None else ("above" if spec.get("above") is not None else "")
            threshold = first.get("threshold")
            d.meaning = fine_tune_meaning(label, str(first.get("system")), str(first.get("task")),
                                          str(first.get("metric")), threshold, word)
            view = by_name.get(str(first.get("task")))
            system = key_of.get((run_id, str(first.get("system"))), str(first.get("system")))
            if view is not None:
                _alternatives(d, view, system, str(first.get("metric")), threshold, word)
        decisions.append(d)
    decisions.sort(key=lambda d: (not d.fired, _STATUS_ORDER.get(d.status, 0)))
    return decisions, setup


def _alternatives(d: Decision, view: TaskView, system: str, metric: str, threshold: float | None,
                  word: str) -> None:
    """The other systems measured on the decision's task and metric, best first."""
    if metric not in view.metrics:
        return
    j = view.metrics.index(metric)
    for row in view.rows:
        if row.system.key == system or math.isnan(row.values[j].value):
            continue
        mv = row.values[j]
        ci = (mv.ci.low, mv.ci.high) if mv.ci is not None and mv.ci.n >= 2 else None
        clears: bool | None = None
        if threshold is not None and word:
            low, high = ci if ci is not None else (mv.value, mv.value)
            clears = low >= threshold if word == "below" else high <= threshold
        cell = view.cell(metric, row.system.key, system)
        d.alternatives.append(Alternative(row.system.key, mv.value, ci, clears,
                                          cell.delta if cell is not None else None,
                                          cell.p_holm if cell is not None else None,
                                          cell is not None and cell.significant))
    d.alternatives.sort(key=lambda a: -a.value)
    d.alternatives_title = f"Measured alternatives to {system} on {view.name}, {metric}"
    if threshold is not None and word and d.alternatives:
        good = [a.system for a in d.alternatives if a.clears]
        side = "at or above" if word == "below" else "at or below"
        d.alternatives_title += (f": {', '.join(good)} clear{'s' if len(good) == 1 else ''} {threshold:g} with the "
                                 "whole 95% interval" if good else
                                 f": none is {side} {threshold:g} with its whole 95% interval")


def _charts_and_drilldown(view: TaskView, task_cells: list[tuple[SystemInfo, tuple[CellResult, SuiteResults]]],
                          challenger_pick: SystemInfo | None,
                          infos: list[tuple[dict[str, Any], SuiteResults]], n_queries: int, depth: int,
                          read_run: Any, evaluate: Any, qrels_type: Any) -> None:
    colours = {s.key: s.colour for s, _ in task_cells}
    view.bar_chart = charts.bar_chart(
        view.metrics,
        {s.key: [charts.Bar(v.value, v.ci.low if v.ci else None, v.ci.high if v.ci else None) for v in row.values]
         for (s, _), row in zip(task_cells, view.rows)},
        colours, title=f"{view.name}: metrics by system with 95% bootstrap intervals",
        y_label="correlation" if view.kind == "sts" else "score")
    baseline = view.baseline
    if view.kind != "retrieval" or baseline is None:
        return

    # details (query texts, qrels, shown docs) from the first run that has them
    details: dict[str, Any] | None = None
    for info, r in infos:
        folder = _folder(r)
        if folder is not None and isinstance(info.get("details_file"), str):
            details_path = contained(folder, info["details_file"], what="details_file", source=r.path)
            if details_path.is_file():
                details = _read_json(details_path)
                break
    if details is None:
        view.notes.append("no details file next to the results (query texts and judgements): recall@k curve and "
                          "drill-down omitted")
        return
    qrels_map = {str(q): {str(d): int(g) for d, g in docs.items()} for q, docs in details.get("qrels", {}).items()}
    qrels = qrels_type.from_dict(qrels_map)
    runs: dict[str, Any] = {}
    for system, (cell, r) in task_cells:
        folder = _folder(r)
        run_path = contained(folder, cell.run_file, what="run_file", source=r.path) \
            if cell.run_file and folder is not None else None
        if run_path is not None and run_path.is_file():
            runs[system.key] = read_run(run_path, name=system.key)
            view.run_hashes[system.key] = _file_hash(run_path)
    missing = [s.key for s, _ in task_cells if s.key not in runs]
    if missing:
        view.notes.append(f"run files not found for {', '.join(missing)}: left out of the recall@k curve and "
                          "the drill-down")
    if runs:
        deepest = max(int(np.diff(run.offsets).max(initial=0)) for run in runs.values())
        ks = [k for k in RECALL_KS if k <= max(1, deepest)]
        for key, run in runs.items():
            result = evaluate(qrels, run, [f"recall@{k}" for k in ks])
            view.recall[key] = [float(result.aggregate[f"recall@{k}"]) for k in ks]
        view.recall_ks = ks
        view.recall_chart = charts.line_chart(ks, view.recall, colours,
                                              title=f"{view.name}: recall@k over k (mean over judged queries)")

    # the pair: baseline vs challenger
    main = view.main_metric
    index = view.metrics.index(main) if main in view.metrics else 0
    candidates = [(s, row) for (s, _), row in zip(task_cells, view.rows) if s.key != baseline.key and s.key in runs]
    if challenger_pick is not None:
        candidates = [(s, row) for s, row in candidates if s.key == challenger_pick.key]
    if baseline.key not in runs or not candidates or not view.metrics:
        return
    challenger = max(candidates, key=lambda c: -math.inf if math.isnan(c[1].values[index].value)
                     else c[1].values[index].value)[0]
    view.pair = (baseline, challenger)
    by_key = {s.key: cell for s, (cell, _) in task_cells}
    va, vb = _values(by_key[baseline.key], main), _values(by_key[challenger.key], main)
    common = sorted(set(va) & set(vb))
    view.deltas = [vb[q] - va[q] for q in common]
    view.bins = charts.delta_bins(view.deltas)
    view.delta_chart = charts.delta_histogram(
        view.bins, title=f"{view.name}: per-query {main} of {challenger.key} minus {baseline.key}",
        x_label=f"{main}: {challenger.key} minus {baseline.key} (per query)")
    queries = {str(q): str(t) for q, t in details.get("queries", {}).items()}
    docs = details.get("docs", {})
    order = sorted(common, key=lambda q: (-abs(vb[q] - va[q]), q))
    run_a, run_b = runs[baseline.key], runs[challenger.key]
    for q in order[:n_queries]:
        if vb[q] == va[q]:
            break
        judged = qrels_map.get(q, {})
        relevant = {d for d, g in judged.items() if g >= 1}
        ra = run_a.ranking(q) if q in run_a else []
        rb = run_b.ranking(q) if q in run_b else []
        view.drilldown.append(DrillRow(q, queries.get(q, ""), va[q], vb[q], len(relevant),
                                       _first_relevant(ra, relevant), _first_relevant(rb, relevant),
                                       _docs(ra, judged, docs, depth), _docs(rb, judged, docs, depth)))
