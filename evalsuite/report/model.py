"""What a report shows, computed once from suite results; the templates only lay it out.

:func:`build_report` turns one or more :class:`~evalsuite.results.SuiteResults` into a
:class:`Report`: gate decisions, per-task comparison tables (aggregate, bootstrap CI, best
per column, significance against a baseline system), recall@k curves and per-query
drill-downs (read from the run files and ``details/<task>.json`` next to ``results.json``),
leakage findings and reproducibility data. The HTML and Markdown renderers share it, so both
show the same numbers.

Statistics (see :mod:`evalsuite.metrics.stats`):

* CI: percentile bootstrap of the mean over the per-query values (queries resampled), 95%.
* Significance: every non-baseline system against the baseline, per task and metric, with
  the paired randomization test; the p-values of all those comparisons in the report form
  one family, corrected with Holm (family-wise error rate ``alpha``). A marker appears only
  when the corrected p-value is below ``alpha``.
* Tasks without per-query values (STS: one correlation over all pairs) get no CI and no test.

Several results files may be combined (e.g. two runs of one suite, or suites run apart): a
system whose name occurs in more than one of them is shown as ``name [run id]``. Tasks are
matched by name; when their data content hashes differ, no test pairs their queries.
"""

from __future__ import annotations

import hashlib
import json
import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from markupsafe import Markup

from evalsuite.errors import ConfigError, DataError, UnknownNameError
from evalsuite.metrics.stats import ConfidenceInterval, PairedComparison, bootstrap_ci, compare, correct
from evalsuite.report import charts
from evalsuite.results import CellResult, SuiteResults
from evalsuite.safepaths import contained

__all__ = ["DrillDoc", "DrillRow", "GateView", "MetricValue", "Report", "SystemInfo", "TableRow", "TaskView",
           "build_report"]

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
    """One table cell: the aggregate, its CI, and the comparison with the baseline."""

    metric: str
    value: float
    ci: ConfidenceInterval | None = None
    best: bool = False
    comparison: PairedComparison | None = None
    p_holm: float = math.nan
    alpha: float = 0.05

    @property
    def significant(self) -> bool:
        return not math.isnan(self.p_holm) and self.p_holm < self.alpha

    @property
    def marker(self) -> str:
        """▲ significantly better than the baseline, ▼ significantly worse, else empty."""
        if not self.significant or self.comparison is None:
            return ""
        return "▲" if self.comparison.delta > 0 else "▼"

    @property
    def tooltip(self) -> str:
        parts = []
        if self.ci is not None and not math.isnan(self.ci.low):
            parts.append(f"{self.metric} = {self.value:.4f}, 95% bootstrap CI [{self.ci.low:.4f}, {self.ci.high:.4f}]"
                         f" over {self.ci.n} queries")
        c = self.comparison
        if c is not None:
            parts.append(f"vs baseline: Δ = {c.delta:+.4f} (95% CI [{c.ci_delta.low:+.4f}, {c.ci_delta.high:+.4f}]),"
                         f" n = {c.n}, p = {_p(c.p_randomization)} (randomization), p Holm = {_p(self.p_holm)}")
        return "; ".join(parts)


@dataclass
class TableRow:
    system: SystemInfo
    is_baseline: bool
    values: list[MetricValue]
    n_queries: int | None
    note: str | None = None


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
    bar_chart: Markup | None = None
    recall: dict[str, list[float]] = field(default_factory=dict)
    recall_ks: list[int] = field(default_factory=list)
    recall_chart: Markup | None = None
    pair: tuple[SystemInfo, SystemInfo] | None = None
    deltas: list[float] = field(default_factory=list)
    delta_chart: Markup | None = None
    drilldown: list[DrillRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    run_hashes: dict[str, str] = field(default_factory=dict)
    timings: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def wins(self) -> tuple[int, int, int]:
        """(challenger better, worse, tied) over the per-query deltas."""
        return (sum(d > 0 for d in self.deltas), sum(d < 0 for d in self.deltas), sum(d == 0 for d in self.deltas))

    @property
    def leakage(self) -> dict[str, Any] | None:
        value = self.info.get("leakage")
        return value if isinstance(value, dict) else None

    @property
    def significant(self) -> list[tuple[TableRow, MetricValue]]:
        return [(r, v) for r in self.rows for v in r.values if v.significant]


@dataclass(frozen=True)
class GateView:
    status: str
    title: str
    decision: str | None
    message: str
    run_id: str
    count: int = 1  # gate results with this status and message

    @property
    def detail(self) -> str:
        """The message without its leading ``DECISION:`` (shown apart, in bold)."""
        if self.decision and self.message.startswith(self.decision + ":"):
            return self.message[len(self.decision) + 1:].strip()
        return self.message


@dataclass
class Report:
    title: str
    sources: list[SuiteResults]
    systems: list[SystemInfo]
    baseline: SystemInfo
    tasks: list[TaskView]
    gates: list[GateView]
    alpha: float
    n_comparisons: int
    n_resamples: int
    notes: list[str] = field(default_factory=list)

    @property
    def gate_counts(self) -> dict[str, int]:
        """Gate results per status (each result counted, also when shown grouped)."""
        return {s: sum(g.count for g in self.gates if g.status == s) for s in ("fail", "warn", "pass")}

    @property
    def gate_status(self) -> str:
        """The worst gate status: fail, warn, pass; "none" without gates."""
        if not self.gates:
            return "none"
        return min((g.status for g in self.gates), key=lambda s: _STATUS_ORDER.get(s, 0))

    @property
    def headline(self) -> str:
        c = self.gate_counts
        if not self.gates:
            return "No gates declared: nothing was decided automatically"
        verdict = {"fail": "GATES FAILED", "warn": "GATES PASSED WITH WARNINGS", "pass": "ALL GATES PASSED"}
        return (f"{verdict[self.gate_status]}: {c['fail']} failed, {c['warn']} "
                f"warning{'s' if c['warn'] != 1 else ''}, {c['pass']} passed")

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


def _p(p: float) -> str:
    if math.isnan(p):
        return "n/a"
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"


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
) -> Report:
    """Compute everything a report shows (see the module docstring).

    ``baseline_system``: the system others are tested against (default: the first).
    ``compare_system``: the challenger of the per-query drill-down and delta histogram
    (default: per task, the best non-baseline system on the task's main metric).
    ``drilldown_queries``: how many most-disagreeing queries to list per task;
    ``drilldown_depth``: top documents shown per system for each.
    """
    from evalsuite.io import read_run
    from evalsuite.metrics.evaluate import evaluate
    from evalsuite.types import Qrels

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

    notes: list[str] = []
    task_infos: dict[str, list[tuple[dict[str, Any], SuiteResults]]] = {}
    for r in sources:
        for info in r.tasks:
            task_infos.setdefault(str(info.get("name")), []).append((info, r))
    for r in sources:
        for c in r.cells:
            task_infos.setdefault(c.task, [({"name": c.task}, r)])
        for s in r.skipped:
            notes.append(f"task {s.get('task')} was skipped in run {r.run_id}: {s.get('reason')}")

    views: list[TaskView] = []
    pending: list[MetricValue] = []
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
        if not same_data:
            view.notes.append(f"the runs combined here used different data for {task} (content hashes "
                              f"{', '.join(sorted(h[:12] for h in hashes))}): no significance test pairs them")
        base_cell = cells.get((task, baseline.key))
        for system, (cell, _) in task_cells:
            values = []
            for m in metrics:
                per_query = _values(cell, m)
                value = float(cell.aggregate.get(m, math.nan))
                mv = MetricValue(m, value, alpha=alpha)
                if per_query:
                    mv.ci = bootstrap_ci(list(per_query.values()), n_resamples=n_resamples, seed=seed)
                if system.key != baseline.key and base_cell is not None and same_data and per_query:
                    base_values = _values(base_cell[0], m)
                    if len(base_values) >= 2:
                        mv.comparison = compare(per_query, base_values, metric=m, names=(system.key, baseline.key),
                                                n_resamples=n_resamples, seed=seed)
                        pending.append(mv)
                values.append(mv)
            n = max(cell.n_queries.values(), default=None) if cell.n_queries else None
            view.timings[system.key] = dict(cell.timing)
            view.rows.append(TableRow(system, system.key == baseline.key, values, n,
                                      "; ".join(cell.notes) if cell.notes else None))
        for j in range(len(metrics)):
            column = [r.values[j].value for r in view.rows if not math.isnan(r.values[j].value)]
            if len(column) > 1:
                top = max(column)
                for row in view.rows:
                    row.values[j].best = not math.isnan(row.values[j].value) and row.values[j].value >= top - 1e-12
        if base_cell is None:
            view.notes.append(f"the baseline {baseline.key} has no result on {task}: no significance markers")
        _charts_and_drilldown(view, task_cells, baseline, challenger_pick, infos, drilldown_queries,
                              drilldown_depth, read_run, evaluate, Qrels)
        views.append(view)

    adjusted = correct([mv.comparison.p_randomization for mv in pending if mv.comparison is not None], "holm")
    for mv, p in zip(pending, adjusted):
        mv.p_holm = p

    # one line per (gate, status, message): eight identical "no baseline yet" warnings read as one
    grouped: dict[tuple[str, str, str, str, str], list[str]] = {}
    for r in sources:
        for g in r.gates:
            where = f"{g.get('task')} / {g.get('system')}" + (f" / tag {g['slice']}" if g.get("slice") else "")
            key = (str(g.get("gate")), str(g.get("status", "fail")), str(g.get("decision") or ""),
                   str(g.get("message", "")), r.run_id)
            grouped.setdefault(key, []).append(where)
    gates = [GateView(status, f"{gate} [{'; '.join(wheres)}]", decision or None, message, run_id, len(wheres))
             for (gate, status, decision, message, run_id), wheres in grouped.items()]
    gates.sort(key=lambda g: _STATUS_ORDER.get(g.status, 0))
    name = title or " + ".join(dict.fromkeys(f"{r.suite} {r.run_id}" for r in sources))
    return Report(name, sources, systems, baseline, views, gates, alpha, len(pending), n_resamples, notes)


def _charts_and_drilldown(view: TaskView, task_cells: list[tuple[SystemInfo, tuple[CellResult, SuiteResults]]],
                          baseline: SystemInfo, challenger_pick: SystemInfo | None,
                          infos: list[tuple[dict[str, Any], SuiteResults]], n_queries: int, depth: int,
                          read_run: Any, evaluate: Any, qrels_type: Any) -> None:
    colours = {s.key: s.colour for s, _ in task_cells}
    view.bar_chart = charts.bar_chart(
        view.metrics,
        {s.key: [charts.Bar(v.value, v.ci.low if v.ci else None, v.ci.high if v.ci else None) for v in row.values]
         for (s, _), row in zip(task_cells, view.rows)},
        colours, title=f"{view.name}: metrics by system with 95% bootstrap intervals",
        y_label="correlation" if view.kind == "sts" else "score")
    if view.kind != "retrieval":
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
    view.delta_chart = charts.delta_histogram(
        view.deltas, title=f"{view.name}: per-query {main} of {challenger.key} minus {baseline.key}",
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
