"""The HTML/Markdown report on hand-built suite results: escaping, gate banner, the numbers in
the table, significance markers, recall@k and drill-down from run files, self-containment.

The fixture is a small results folder written here (runs, details, results.json) with a
hostile query text, document title and system name; the runs are scored with
:func:`evalsuite.evaluate`, so the table must show exactly what the evaluator computed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from evalsuite.errors import ConfigError, DataError, EvalsuiteError, UnknownNameError
from evalsuite.gates import GateSpec, evaluate_gates
from evalsuite.io import write_run
from evalsuite.metrics.evaluate import evaluate
from evalsuite.metrics.stats import compare, correct
from evalsuite.report import Report, build_report, render_html, render_markdown
from evalsuite.report.charts import bar_chart, delta_bins, delta_histogram, line_chart, nice_ticks
from evalsuite.report.command import add_report_parser, default_report_path
from evalsuite.report.markdown import md_escape
from evalsuite.report.render import report_html
from evalsuite.results import CellResult, SuiteResults, load_results
from evalsuite.runner import write_per_query
from evalsuite.types import Run

HOSTILE_QUERY = "<script>alert(1)</script> wing flutter"
HOSTILE_TITLE = '<img src=x onerror="alert(2)"> delta wing'
HOSTILE_SYSTEM = "evil</script><b>|x"
METRICS = ["ndcg@10", "recall@10", "mrr@10"]
N = 30
STS_PAIRS = 100
RESAMPLES = 2000


def _ranking(relevant: list[str], at: list[int], q: int, depth: int = 30) -> dict[str, float]:
    """A ranking of ``depth`` docs where ``relevant[i]`` sits at rank ``at[i]`` (1-based)."""
    fillers = iter(f"x{q}-{j}" for j in range(depth))
    docs = []
    for rank in range(1, depth + 1):
        docs.append(relevant[at.index(rank)] if rank in at else next(fillers))
    return {d: float(depth - i) for i, d in enumerate(docs)}


def _good_ranks(i: int) -> list[int]:
    """"good" finds both relevant docs at the top, except: i % 5 == 2 the baseline's ranking (a tie),
    i % 5 == 3 one rank later than the baseline (slightly worse)."""
    if i % 5 == 2:
        return [4 + i % 3, 12 + i % 7]
    if i % 5 == 3:
        return [5 + i % 3, 12 + i % 7]
    return [1, 2 + i % 2]


def _sts_pairs() -> tuple[list[float], dict[str, list[float]]]:
    """Gold scores of STS_PAIRS sentence pairs (0-5, ties like STS-B) and two systems' cosine scores:
    "good" close to the gold, the hostile-named one noisier."""
    rng = np.random.default_rng(5)
    gold = rng.uniform(0, 5, STS_PAIRS).round(1)
    good = gold / 5 + rng.normal(0, 0.15, STS_PAIRS)
    noisy = gold / 5 + rng.normal(0, 0.4, STS_PAIRS)
    return gold.tolist(), {"good": good.tolist(), HOSTILE_SYSTEM: noisy.tolist()}


def _write_fixture(folder: Path) -> SuiteResults:
    """Three systems on 30 queries (2 relevant docs each) and an STS task; hostile texts."""
    qrels = {f"q{i}": {f"d{i}": 2, f"e{i}": 1} for i in range(N)}
    runs = {
        # the baseline finds the relevant docs late; "good" at ranks 1-2; the hostile-named one = baseline
        "base": {f"q{i}": _ranking([f"d{i}", f"e{i}"], [4 + i % 3, 12 + i % 7], i) for i in range(N)},
        "good": {f"q{i}": _ranking([f"d{i}", f"e{i}"], _good_ranks(i), i) for i in range(N)},
    }
    runs[HOSTILE_SYSTEM] = dict(runs["base"])
    cells = []
    (folder / "runs").mkdir(parents=True)
    for k, (system, run) in enumerate(runs.items()):
        result = evaluate(qrels, run, METRICS)
        run_file = f"runs/t__{k}.trec"
        write_run(Run(run, name=system), folder / run_file)
        cells.append(CellResult(
            task="t", system=system, kind="retrieval", aggregate=dict(result.aggregate),
            per_query={m: {str(q): float(v) for q, v in result.per_query[m].items()} for m in METRICS},
            n_queries=dict(result.n_queries), run_file=run_file, timing={"index": 0.5, "search": 0.01}))
    gold, sts_scores = _sts_pairs()
    cells += [CellResult(task="sts", system="base", kind="sts", aggregate={},
                         notes=["not applicable: base (bm25) has no encoder"])]
    for system in ("good", HOSTILE_SYSTEM):
        predicted = sts_scores[system]
        cells.append(CellResult(task="sts", system=system, kind="sts",
                                aggregate={"spearman": float(stats.spearmanr(predicted, gold).statistic),
                                           "pearson": float(stats.pearsonr(predicted, gold).statistic)},
                                n_queries={"spearman": STS_PAIRS, "pearson": STS_PAIRS},
                                pair_scores={"predicted": predicted, "gold": gold}))
    docs = {f"d{i}": {"title": f"relevant doc {i}", "snippet": "about wings </script>"} for i in range(N)}
    docs["d0"] = {"title": HOSTILE_TITLE, "snippet": "</script><script>alert(3)</script>"}
    queries = {f"q{i}": f"query number {i} about pressure" for i in range(N)}
    queries["q0"] = HOSTILE_QUERY
    (folder / "details").mkdir()
    (folder / "details" / "t.json").write_text(json.dumps({"queries": queries, "qrels": qrels, "docs": docs}))
    leakage = {"task": "t", "queries": N, "docs": 90, "training_pairs": 0, "threshold": 0.8, "leaked_queries": 1,
               "leakage_rate": 1 / N, "counts": {}, "findings": [
                   {"check": "query_text_in_corpus", "title": "query texts found verbatim inside a corpus document",
                    "count": 1, "severity": "leak", "examples": [{"query_id": "q0", "query": HOSTILE_QUERY}]}]}
    results = SuiteResults(
        suite="unit", run_id="20260101T000000Z-abc123", created="2026-01-01T00:00:00+00:00", metrics=METRICS,
        environment={"evalsuite": "0.1.0", "python": "3.11", "platform": "test", "packages": {"numpy": "2"},
                     "command": ["evalsuite", "run", "tasks/unit suite.yaml"]},
        tasks=[{"name": "t", "type": "retrieval", "source": "golden", "main_metric": "ndcg@10",
                "content_hash": "c0ffee" * 5, "n_queries": N, "n_docs": 90, "n_judgements": 2 * N,
                "details_file": "details/t.json", "leakage": leakage},
               {"name": "sts", "type": "sts", "source": "sts", "main_metric": "spearman", "content_hash": "5757",
                "n_pairs": 100}],
        systems=[{"name": s, "meta": {"name": s, "kind": "bm25", "label": f"{s} label", "model": None,
                                      "model_fingerprint": "fp-" + str(i), "params": {"k1": 1.2}}}
                 for i, s in enumerate(runs)],
        cells=cells, timing={"total": 3.0},
        config={"seed": 0, "k": 30, "executor": "ray", "executor_settings": {
            "executor": "ray", "address": "10.0.0.1:6379", "nodes": 3, "cpus": 48.0, "gpus": 2.0, "num_workers": 2,
            "batch_size": 64, "num_gpus_per_worker": 1.0, "num_shards": 4, "grid": False}},
        skipped=[{"task": "big", "reason": "/data/big: task 'big': data not found"}],
    )
    gates = evaluate_gates(results, [GateSpec(name="fine-tune-needed", metric="recall@10", task="t", system="base",
                                              below=0.65, decision="FINE-TUNE RECOMMENDED",
                                              otherwise="BASELINE ADEQUATE")], n_resamples=RESAMPLES)
    results.gates = gates.to_dict()["gates"]
    results.path = str(folder / "results.json")
    results.write(folder / "results.json")
    write_per_query(results, folder / "per_query.csv")
    return results


@pytest.fixture(scope="module")
def fixture_results(tmp_path_factory: pytest.TempPathFactory) -> SuiteResults:
    return _write_fixture(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def report(fixture_results: SuiteResults) -> Report:
    return build_report(fixture_results, n_resamples=RESAMPLES)


@pytest.fixture(scope="module")
def html(report: Report, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = render_html(report, tmp_path_factory.mktemp("html") / "sub" / "report.html")
    return path.read_text(encoding="utf-8")


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text inside <script>/<style> elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.raw: dict[str, list[str]] = {"script": [], "style": []}
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in self.raw:
            self._in = tag
            self.raw[tag].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in:
            self.raw[self._in][-1] += data


def _parse(text: str) -> _Tags:
    parser = _Tags()
    parser.feed(text)
    return parser


def test_hostile_text_is_escaped_everywhere(html: str) -> None:
    parsed = _parse(html)
    assert [t for t, _ in parsed.tags].count("script") == 1, "only the report's own script element"
    assert not any(t == "img" for t, _ in parsed.tags)
    assert not any(k.startswith("on") for _, attrs in parsed.tags for k in attrs)
    assert "alert(" not in "".join(parsed.raw["script"])
    assert "&lt;script&gt;alert(1)&lt;/script&gt; wing flutter" in html  # shown, as text
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt; delta wing" in html
    assert "evil&lt;/script&gt;&lt;b&gt;|x" in html
    assert "<b>|x" not in html and "</script><script>" not in html


def test_content_security_policy_allows_exactly_the_inline_script_and_style(html: str) -> None:
    parsed = _parse(html)
    csp = next(a["content"] for t, a in parsed.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert csp is not None and csp.startswith("default-src 'none';")

    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    assert f"script-src {digest(parsed.raw['script'][0])};" in csp
    assert f"style-src {digest(parsed.raw['style'][0])};" in csp


def test_self_contained_no_url(html: str) -> None:
    assert re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/|@import|url\(", html, re.IGNORECASE) is None
    parsed = _parse(html)
    for _, attrs in parsed.tags:
        for key in ("src", "href", "action", "xlink:href"):
            value = attrs.get(key)
            assert value is None or value.startswith("#") or value == "data:,", (key, value)


def test_page_order_verdict_first_then_decisions(html: str, fixture_results: SuiteResults) -> None:
    (gate,) = fixture_results.gates
    assert gate["status"] == "fail" and gate["decision"] == "FINE-TUNE RECOMMENDED"  # base finds little in top 10
    order = ['id="verdict-t"', 'id="verdict-sts"', 'id="decisions"', 'id="comparison"', 'id="drilldown"',
             'id="leakage"', 'id="reproducibility"', 'id="setup"']
    positions = [html.index(marker) for marker in order]
    assert positions == sorted(positions)
    banner = re.search(r'<section id="decisions" class="banner banner-(\w+)"', html)
    assert banner is not None and banner.group(1) == "fail"
    section = html[banner.start():html.index("</section>", banner.start())]
    assert "GATES FAILED: 1 check failed, so the run exits 1" in section
    assert "<strong>FINE-TUNE RECOMMENDED</strong>: recall@10 = " in section
    assert gate["message"].split(": ", 1)[1].split(" [")[0] in section  # "recall@10 = 0.xxx"
    assert "Cheaper options come first" in section  # what the decision means


def test_table_shows_the_evaluated_numbers_and_marks_the_best(html: str, fixture_results: SuiteResults) -> None:
    table = re.search(r'<table class="comparison" data-task="t">(.*?)</table>', html, re.S)
    assert table is not None
    rows = re.findall(r'<tr class="[^"]*" data-system="([^"]*)">(.*?)</tr>', table.group(1), re.S)
    systems = [c.system for c in fixture_results.cells if c.task == "t"]
    assert [s.replace("&lt;", "<").replace("&gt;", ">") for s, _ in rows] == systems
    for (_, row), system in zip(rows, systems):
        cell = fixture_results.cell("t", system)
        shown = re.findall(r'<td class="num( best)?" data-metric="([^"]+)"[^>]*><span class="value">([^<]+)</span>',
                           row)
        assert [m for _, m, _ in shown] == METRICS
        for best, metric, text in shown:
            assert text == f"{cell.aggregate[metric]:.4f}"
            top = max(fixture_results.cell("t", s).aggregate[metric] for s in systems)
            assert bool(best) == (cell.aggregate[metric] == top)


def _pairs(keys: list[str]) -> list[tuple[str, str]]:
    return [(a, b) for i, a in enumerate(keys) for b in keys[i + 1:]]


def test_significance_is_holm_corrected_within_each_task(report: Report, fixture_results: SuiteResults) -> None:
    task = next(t for t in report.tasks if t.name == "t")
    keys = ["base", "good", HOSTILE_SYSTEM]
    cells = {c.system: c for c in fixture_results.cells if c.task == "t"}
    family = [(m, a, b) for m in METRICS for a, b in _pairs(keys)]
    raw = [compare(cells[a].per_query[m], cells[b].per_query[m], metric=m, n_resamples=RESAMPLES,
                   seed=0).p_randomization for m, a, b in family]
    assert task.n_comparisons == len(family) == 9
    assert [task.cell(m, a, b).p_holm for m, a, b in family] == pytest.approx(correct(raw, "holm"))  # type: ignore[union-attr]
    # the table's marks read the same cells: "good" is better than the baseline, the twin of base is not
    rows = {r.system.key: r for r in task.rows}
    assert all(v.marker == "▲" and "p Holm = " in v.tooltip for v in rows["good"].values[:1])
    assert all(v.vs_baseline is not None and v.vs_baseline.p_holm == task.cell(v.metric, "good", "base").p_holm  # type: ignore[union-attr]
               for v in rows["good"].values)
    assert all(v.marker == "" and v.p_holm == 1.0 for v in rows[HOSTILE_SYSTEM].values)  # identical runs
    # another task in the same report never changes this task's p-values
    alone = load_results(fixture_results.path or "")
    alone.cells = [c for c in alone.cells if c.task == "t"]
    alone.tasks = [t for t in alone.tasks if t["name"] == "t"]
    only = next(t for t in build_report(alone, n_resamples=RESAMPLES).tasks if t.name == "t")
    assert [only.cell(m, a, b).p_holm for m, a, b in family] == [task.cell(m, a, b).p_holm for m, a, b in family]  # type: ignore[union-attr]
    sts = next(t for t in report.tasks if t.name == "sts")
    assert sts.metrics == ["spearman", "pearson"]


def _hand_recall(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]], k: int) -> float:
    values = []
    for q, judged in qrels.items():
        ranked = sorted(run[q], key=lambda d: -run[q][d])[:k]
        values.append(sum(1 for d in ranked if judged.get(d, 0) >= 1) / sum(1 for g in judged.values() if g >= 1))
    return sum(values) / len(values)


def test_recall_at_k_curve_from_run_files(report: Report, fixture_results: SuiteResults) -> None:
    from evalsuite.io import read_run

    task = next(t for t in report.tasks if t.name == "t")
    assert task.recall_ks == [1, 2, 5, 10, 20]  # runs are 30 deep
    folder = Path(fixture_results.path or "").parent
    qrels = json.loads((folder / "details" / "t.json").read_text())["qrels"]
    for cell in (c for c in fixture_results.cells if c.task == "t"):
        run = read_run(folder / (cell.run_file or "")).to_dict()
        expected = [_hand_recall(run, qrels, k) for k in task.recall_ks]
        assert task.recall[cell.system] == pytest.approx(expected)
    # recall@5 of "good" by hand from where its two relevant documents sit
    by_hand = [sum(rank <= 5 for rank in _good_ranks(i)) / 2 for i in range(N)]
    assert task.recall["good"][2] == pytest.approx(sum(by_hand) / N) and 18 / 30 < sum(by_hand) / N < 1


def test_drilldown_lists_the_biggest_disagreements(report: Report, html: str) -> None:
    task = next(t for t in report.tasks if t.name == "t")
    assert task.pair is not None and [s.key for s in task.pair] == ["base", "good"]  # best challenger on ndcg@10
    deltas = [abs(r.delta) for r in task.drilldown]
    assert deltas == sorted(deltas, reverse=True) and all(d > 0 for d in deltas)
    row = next(r for r in task.drilldown if r.query_id == "q0")
    assert row.text == HOSTILE_QUERY
    assert (row.first_a, row.first_b, row.n_relevant) == (4, 1, 2)  # base: d0 at rank 4 + 0 % 3
    assert [(d.rank, d.doc_id, d.grade) for d in row.docs_b[:3]] == [(1, "d0", 2), (2, "e0", 1), (3, "x0-0", None)]
    assert row.docs_b[0].title == HOSTILE_TITLE
    assert len(task.deltas) == N and sum(task.wins) == N
    assert html.count('<tbody class="dd-row"') == len(task.drilldown) == N - 6  # 6 exact ties are not listed
    assert 'id="dd-filter"' in html and "svg" in html


def test_charts_are_well_formed_svg_with_escaped_text() -> None:
    colours = {"a<b>": "#000", "c&d": "#fff"}
    svgs = [
        bar_chart(["m1", "m2"], {"a<b>": [_bar(0.5), _bar(math.nan)], "c&d": [_bar(0.2), _bar(0.9)]}, colours,
                  title="t <x>"),
        line_chart([1, 2, 5], {"a<b>": [0.1, 0.2, math.nan], "c&d": [0.3, 0.4, 0.5]}, colours, title="r"),
        delta_histogram(delta_bins([0.0, 0.1, -0.3, 0.25, 0.0]), title="d <x>", x_label="Δ"),
        delta_histogram(delta_bins([]), title="empty", x_label="Δ"),
    ]
    for svg in svgs:
        root = ET.fromstring(str(svg))  # parses: well-formed, every text escaped
        assert root.tag == "svg" and root.get("role") == "img"
    texts = [t.text for t in ET.fromstring(str(svgs[0])).iter("text")]
    assert "a<b>" in texts and "c&d" in texts
    rects = list(ET.fromstring(str(svgs[2])).iter("{http://www.w3.org/2000/svg}rect")) or \
        list(ET.fromstring(str(svgs[2])).iter("rect"))
    assert sum(int(r.get("data-count") or 0) for r in rects) == 5
    assert [int(r.get("data-count") or 0) for r in rects if r.get("class") == "bin-tie"] == [2]


def test_delta_bins_keep_exact_ties_alone_and_never_merge_signs() -> None:
    bins = delta_bins([0.0, 0.0, 0.001, -0.001, 0.02, -0.3, 0.3, math.nan])
    assert bins.step == 0.05  # 0.3 / 0.05 = 6 bins a side (0.025 would need 12 > 10)
    assert bins.worse == (1, 0, 0, 0, 0, 1)  # [-0.05, 0) holds -0.001; [-0.3, -0.25) holds -0.3
    assert bins.ties == 2  # exactly 0 only
    assert bins.better == (2, 0, 0, 0, 0, 1)  # (0, 0.05] holds 0.001 and 0.02
    assert (bins.n_better, bins.n_worse, bins.total) == (3, 2, 7)
    tiny = delta_bins([1e-12, -1e-12])
    assert (tiny.n_better, tiny.n_worse, tiny.ties) == (1, 1, 0)  # a tiny difference is not a tie
    assert delta_bins([]).total == 0


def _bar(v: float) -> Any:
    from evalsuite.report.charts import Bar

    return Bar(v, v - 0.1, v + 0.1)


def test_nice_ticks_cover_the_range() -> None:
    assert nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0, 11, integer=True) == [0, 5, 10, 15]
    ticks = nice_ticks(-0.13, 0.87)
    assert ticks[0] <= -0.13 and ticks[-1] >= 0.87
    # a range narrower than a few float spacings at its magnitude: the step cannot advance (looped forever)
    assert nice_ticks(1e16, 1e16 + 2) == [1e16, 1e16 + 2]


def test_markdown_variant(report: Report, fixture_results: SuiteResults) -> None:
    text = render_markdown(report)
    assert text.startswith("## evalsuite report: unit 20260101T000000Z-abc123\n\n**t: good is best on ndcg@10: ")
    verdict = next(v for v in report.verdicts if v.task == "t")
    assert f"**{md_escape(verdict.headline)}**" in text
    assert text.index("**t: good") < text.index("❌ **GATES FAILED: 1 check failed, so the run exits 1**")
    assert "| ❌ | fine-tune-needed \\[t / base\\] | **FINE-TUNE RECOMMENDED**: recall@10 = " in text
    good = fixture_results.cell("t", "good").aggregate
    line = next(s for s in text.splitlines() if s.startswith("| good |"))
    assert all(f"**{good[m]:.4f}** [" in line for m in METRICS) and line.count("▲") == 3
    assert "| evil&lt;/script&gt;&lt;b&gt;\\|x |" in text and "<b>" not in text
    assert "Not applicable: base (no encoder)" in text and "| base (baseline) | — |" not in text  # STS
    assert "ndcg@10, row minus column (p Holm)" in text
    assert render_markdown(fixture_results, n_resamples=RESAMPLES) == text  # same numbers from results


def test_md_escape() -> None:
    assert md_escape("a|b <i>*x*</i>\n_y_ & `z`") == "a\\|b &lt;i&gt;\\*x\\*&lt;/i&gt; \\_y\\_ &amp; \\`z\\`"


def test_baseline_system_choice(fixture_results: SuiteResults) -> None:
    rep = build_report(fixture_results, baseline_system="good", n_resamples=500)
    assert rep.baseline.key == "good"
    task = next(t for t in rep.tasks if t.name == "t")
    assert [r.is_baseline for r in task.rows] == [False, True, False]
    assert all(v.marker == "▼" for r in task.rows if r.system.key == "base" for v in r.values)
    with pytest.raises(UnknownNameError, match="did you mean 'good'"):
        build_report(fixture_results, baseline_system="goood")


def test_several_results_are_combined_with_run_ids(fixture_results: SuiteResults) -> None:
    other = load_results(fixture_results.path or "")
    other.run_id = "20260102T000000Z-def456"
    rep = build_report([fixture_results, other], n_resamples=500, baseline_system="base [20260101T000000Z-abc123]")
    keys = [s.key for s in rep.systems]
    assert "good [20260102T000000Z-def456]" in keys and len(keys) == 6
    task = next(t for t in rep.tasks if t.name == "t")
    twin = next(r for r in task.rows if r.system.key == "base [20260102T000000Z-def456]")
    assert all(v.p_holm == 1.0 and not v.marker for v in twin.values)
    with pytest.raises(UnknownNameError, match="several runs"):
        build_report([fixture_results, other], baseline_system="base")
    with pytest.raises(ConfigError, match="given twice"):
        build_report([fixture_results, fixture_results])


def test_compare_system_picks_the_drilldown_challenger(fixture_results: SuiteResults) -> None:
    rep = build_report(fixture_results, compare_system=HOSTILE_SYSTEM, n_resamples=500)
    task = next(t for t in rep.tasks if t.name == "t")
    assert task.pair is not None and task.pair[1].key == HOSTILE_SYSTEM
    assert task.drilldown == [] and task.wins == (0, 0, N)  # identical runs: nothing to drill into
    with pytest.raises(ConfigError, match="is the baseline"):
        build_report(fixture_results, compare_system="base")


def test_missing_run_files_leave_a_note(fixture_results: SuiteResults, tmp_path: Path) -> None:
    alone = tmp_path / "results.json"
    alone.write_text(Path(fixture_results.path or "").read_text())
    rep = build_report(load_results(alone), n_resamples=500)
    task = next(t for t in rep.tasks if t.name == "t")
    assert task.recall_chart is None and task.drilldown == [] and task.bar_chart is not None
    assert any("no details file" in n for n in task.notes)
    html = render_html(rep, tmp_path / "r.html").read_text()
    assert "no details file" in html


def test_report_command(fixture_results: SuiteResults, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_report_parser(parser.add_subparsers())
    folder = str(Path(fixture_results.path or "").parent)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EVALSUITE_CACHE_DIR", str(tmp_path / "cache"))
    args = parser.parse_args(["report", folder, "--markdown", "-", "--resamples", "500"])
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert list((tmp_path / "cache" / "statistics").glob("memo-*.sqlite"))  # statistics memoised in the cache
    expected = tmp_path / default_report_path(fixture_results)
    assert expected == tmp_path / "reports" / "unit-20260101T000000Z-abc123.html" and expected.is_file()
    assert f"report: {default_report_path(fixture_results)}" in out and "| good |" in out
    args = parser.parse_args(["report", folder, "-o", "out.html", "--baseline-system", "nope"])
    with pytest.raises(UnknownNameError):
        args.handler(args)
    args = parser.parse_args(["report", str(tmp_path / "absent"), "-o", "x.html"])
    with pytest.raises(DataError, match="results file not found"):
        args.handler(args)
    args = parser.parse_args(["report", folder, "--resamples", "5"])
    with pytest.raises(EvalsuiteError, match="--resamples"):
        args.handler(args)
    args = parser.parse_args(["report", folder, "-o", "other.html", "--resamples", "500", "--no-cache",
                              "--cache-dir", str(tmp_path / "unused")])
    assert args.handler(args) == 0 and not (tmp_path / "unused").exists()
    args = parser.parse_args(["report", folder, "-o", "other.html", "--resamples", "500", "--cache-dir",
                              str(tmp_path / "given")])
    assert args.handler(args) == 0 and list((tmp_path / "given" / "statistics").glob("memo-*.sqlite"))
    # "-o newdir/" names a folder to create, not a file called newdir
    args = parser.parse_args(["report", folder, "-o", "newdir/", "--resamples", "500", "--no-cache"])
    assert args.handler(args) == 0
    assert (tmp_path / "newdir" / default_report_path(fixture_results).name).is_file()


def test_report_to_standard_output(fixture_results: SuiteResults, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """``report -o -`` writes the HTML to stdout as ``--markdown -`` does (it wrote a file named '-');
    the 'report: ...' line goes to stderr, not into the HTML."""
    parser = argparse.ArgumentParser()
    add_report_parser(parser.add_subparsers())
    folder = str(Path(fixture_results.path or "").parent)
    monkeypatch.chdir(tmp_path)
    args = parser.parse_args(["report", folder, "-o", "-", "--resamples", "500", "--no-cache"])
    assert args.handler(args) == 0
    captured = capsys.readouterr()
    assert captured.out.lower().startswith("<!doctype html>") and captured.out.rstrip().endswith("</html>")
    assert "report:" in captured.err and not (tmp_path / "-").exists() and list(tmp_path.iterdir()) == []


# --- the verdict, the pairwise matrix, decisions apart from set-up, the histogram ---------------------------


def _verdict_html(html: str, task: str) -> str:
    start = html.index(f'id="verdict-{task}"')
    return html[start:html.index("</div>", start)]


def test_verdict_names_the_best_and_who_is_significantly_worse(report: Report, html: str,
                                                                fixture_results: SuiteResults) -> None:
    from evalsuite.metrics.stats import bootstrap_ci

    verdict = next(v for v in report.verdicts if v.task == "t")
    cells = {c.system: c for c in fixture_results.cells if c.task == "t"}
    good = list(cells["good"].per_query["ndcg@10"].values())
    ci = bootstrap_ci(good, n_resamples=RESAMPLES, seed=0)
    assert verdict.best == "good" and verdict.n == N
    assert verdict.headline == (f"t: good is best on ndcg@10: {cells['good'].aggregate['ndcg@10']:.4f} "
                                f"[95% CI {ci.low:.4f}, {ci.high:.4f}] over {N} queries, significantly better "
                                "than every other system.")
    keys = ["base", "good", HOSTILE_SYSTEM]
    family = [(m, a, b) for m in METRICS for a, b in _pairs(keys)]
    raw = {(m, a, b): compare(cells[a].per_query[m], cells[b].per_query[m], n_resamples=RESAMPLES,
                              seed=0).p_randomization for m, a, b in family}
    holm = dict(zip(family, correct(list(raw.values()), "holm")))
    lines = verdict.lines
    for system in ("base", HOSTILE_SYSTEM):
        p = holm[("ndcg@10", "base" if system == "base" else "good", system if system != "base" else "good")]
        value = cells[system].aggregate["ndcg@10"]
        delta = value - cells["good"].aggregate["ndcg@10"]
        p_text = "p < 0.0001" if p < 1e-4 else f"p = {p:.4f}"
        assert ("worse", f"{system}: significantly worse ({value:.4f}, Δ = {delta:+.4f}, {p_text}).") in lines
    decision = [text for kind, text in lines if kind == "decision"]
    assert len(decision) == 1 and decision[0].startswith(
        "Decision (fine-tune-needed): FINE-TUNE RECOMMENDED: recall@10 = ")
    assert "for base: below 0.65 with 100% of the bootstrap mass" in decision[0]
    shown = _verdict_html(html, "t")
    assert "t: good is best on ndcg@10: " in shown and 'data-kind="worse"' in shown
    assert "evil&lt;/script&gt;&lt;b&gt;|x: significantly worse" in shown  # escaped in the verdict too
    assert html.index('id="verdict-t"') < html.index('<table class="comparison"')


def _tie_results(systems: dict[str, list[float]], gates: list[dict[str, Any]] | None = None,
                 config: dict[str, Any] | None = None) -> SuiteResults:
    """In-memory results on one task "tie" with the given per-query ndcg@10 values (no run files)."""
    cells = [CellResult(task="tie", system=name, kind="retrieval", aggregate={"ndcg@10": sum(v) / len(v)},
                        per_query={"ndcg@10": {f"q{i}": x for i, x in enumerate(v)}},
                        n_queries={"ndcg@10": len(v)}) for name, v in systems.items()]
    return SuiteResults(suite="ties", run_id="r1", created="2026-01-01T00:00:00+00:00", metrics=["ndcg@10"],
                        environment={"command": ["evalsuite", "run", "ties.yaml"]},
                        tasks=[{"name": "tie", "main_metric": "ndcg@10", "n_queries": 40}],
                        systems=[{"name": n, "meta": {"kind": "bm25"}} for n in systems], cells=cells,
                        config=config or {}, gates=gates or [])


_A = [0.4 + 0.5 * ((i * 7) % 11) / 10 for i in range(40)]
_B = [a + (0.02 if i % 2 else -0.02) - 0.001 for i, a in enumerate(_A)]  # mean 0.001 below A, noisy
_C = [a - 0.3 + 0.01 * (i % 3) for i, a in enumerate(_A)]


def test_verdict_calls_a_tie_a_tie() -> None:
    report = build_report(_tie_results({"A": _A, "B": _B, "C": _C}), n_resamples=RESAMPLES)
    (verdict,) = report.verdicts
    assert verdict.best == "A"
    assert verdict.headline.startswith(f"tie: A has the highest ndcg@10: {sum(_A) / 40:.4f} [95% CI ")
    def keyed(values: list[float]) -> dict[str, float]:
        return {f"q{i}": x for i, x in enumerate(values)}

    raw = [compare(keyed(x), keyed(y), n_resamples=RESAMPLES, seed=0).p_randomization
           for x, y in ((_A, _B), (_A, _C), (_B, _C))]
    p_ab = correct(raw, "holm")[0]
    assert p_ab > 0.05
    delta = (sum(_B) - sum(_A)) / 40
    assert verdict.lines[0] == ("tie", f"B: tie, not distinguishable from A on 40 queries ({sum(_B) / 40:.4f}, "
                                       f"Δ = {delta:+.4f}, p = {p_ab:.4f}).")
    assert verdict.lines[1][0] == "worse" and verdict.lines[1][1].startswith("C: significantly worse (")
    only_ties = build_report(_tie_results({"A": _A, "B": _B}), n_resamples=RESAMPLES).verdicts[0]
    assert only_ties.headline.endswith("but no other system is significantly worse: a tie on these 40 queries.")
    alone = build_report(_tie_results({"A": _A}), n_resamples=RESAMPLES).verdicts[0]
    assert alone.headline.startswith("tie: A is the only system with a ndcg@10 value: ")


def test_pairwise_matrix_has_every_pair_both_ways(report: Report, html: str,
                                                  fixture_results: SuiteResults) -> None:
    task = next(t for t in report.tasks if t.name == "t")
    cells = {c.system: c for c in fixture_results.cells if c.task == "t"}
    keys = [s.key for s in task.systems]
    assert keys == ["base", "good", HOSTILE_SYSTEM] and task.matrix_metrics == METRICS
    for m in METRICS:
        for a in keys:
            for b in keys:
                if a == b:
                    assert task.cell(m, a, b) is None
                    continue
                c, back = task.cell(m, a, b), task.cell(m, b, a)
                assert c is not None and back is not None
                mean = {k: sum(cells[k].per_query[m].values()) / N for k in (a, b)}  # type: ignore[misc]
                assert c.delta == pytest.approx(mean[a] - mean[b]) and back.delta == -c.delta
                assert c.p_holm == back.p_holm and c.marker == {"▲": "▼", "▼": "▲", "": ""}[back.marker]
    assert task.cell("ndcg@10", "good", "base").marker == "▲"  # type: ignore[union-attr]
    assert task.cell("ndcg@10", HOSTILE_SYSTEM, "base").marker == ""  # type: ignore[union-attr]
    # the main metric's matrix on the page, the others collapsed below it
    table = re.search(r'<table class="matrix" data-task="t" data-metric="ndcg@10">(.*?)</table>', html, re.S)
    assert table is not None
    shown = re.findall(r'<tr data-system="([^"]+)">(.*?)</tr>', table.group(1), re.S)
    assert len(shown) == 3
    for row, body in shown:
        row = row.replace("&lt;", "<").replace("&gt;", ">")
        for col, delta in re.findall(r'data-col="([^"]+)" data-delta="([^"]+)"', body):
            col = col.replace("&lt;", "<").replace("&gt;", ">")
            assert float(delta) == pytest.approx(task.cell("ndcg@10", row, col).delta)  # type: ignore[union-attr]
    details = html[html.index('<details class="matrices">'):]
    assert all(f'data-metric="{m}"' in details[:details.index("</details>")] for m in METRICS[1:])


def test_histogram_counts_and_caption_match_per_query_csv(report: Report, html: str,
                                                          fixture_results: SuiteResults) -> None:
    import csv

    task = next(t for t in report.tasks if t.name == "t")
    assert task.pair is not None
    a, b = (s.key for s in task.pair)
    with open(Path(fixture_results.path or "").parent / "per_query.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["task"] == "t"]
    values = {s: {r["query_id"]: float(r["ndcg@10"]) for r in rows if r["system"] == s} for s in (a, b)}
    deltas = [values[b][q] - values[a][q] for q in values[a]]
    expected = (sum(d > 0 for d in deltas), sum(d < 0 for d in deltas), sum(d == 0 for d in deltas))
    assert expected == (18, 6, 6)  # the fixture: 18 better, 6 one rank worse, 6 identical rankings
    assert task.wins == expected
    figure = re.search(r'<figure class="chart-deltas" data-task="t"(.*?)</figure>', html, re.S)
    assert figure is not None
    caption = re.search(r'<span class="n-better">(\d+)</span> better.*?<span class="n-worse">(\d+)</span> worse'
                        r'.*?<span class="n-tied">(\d+)</span> tied', figure.group(1), re.S)
    assert caption is not None and tuple(int(x) for x in caption.groups()) == expected
    bars = re.findall(r'<rect[^>]*class="(bin-\w+)"[^>]*data-count="(\d+)"', figure.group(1))
    drawn = {cls: sum(int(n) for c, n in bars if c == cls) for cls in ("bin-win", "bin-loss", "bin-tie")}
    assert (drawn["bin-win"], drawn["bin-loss"], drawn["bin-tie"]) == expected
    assert len([c for c, _ in bars if c == "bin-tie"]) == 1


def test_decisions_apart_from_set_up_notes() -> None:
    gates = [
        {"gate": "floor", "kind": "absolute", "task": "tie", "system": "C", "metric": "ndcg@10", "status": "warn",
         "decision": "FINE-TUNE RECOMMENDED", "threshold": 0.5,
         "message": "FINE-TUNE RECOMMENDED: ndcg@10 = 0.380 [0.33, 0.43] on tie for C: below 0.5 with 100% of the "
                    "bootstrap mass"},
        {"gate": "floor", "kind": "absolute", "task": "tie", "system": "A", "metric": "ndcg@10", "status": "pass",
         "decision": "ADEQUATE", "threshold": 0.5, "message": "ADEQUATE: ndcg@10 = 0.68 on tie for A"},
        *({"gate": "no-regression", "kind": "regression", "task": "tie", "system": s, "metric": "ndcg@10",
           "status": "warn", "decision": None,
           "message": "no baseline yet: b.json does not exist; set it with 'evalsuite run x --update-baseline'"}
          for s in ("A", "B")),
        {"gate": "no-regression", "kind": "regression", "task": "tie", "system": "C", "metric": "ndcg@10",
         "status": "fail", "decision": None, "message": "partial result: the run lacks 3 judged queries"},
    ]
    config = {"gates": [{"name": "floor", "metric": "ndcg@10", "below": 0.5, "decision": "FINE-TUNE RECOMMENDED",
                         "otherwise": "ADEQUATE", "on_fire": "warn"},
                        {"name": "no-regression", "metric": "ndcg@10", "max_drop": 0.02}]}
    results = _tie_results({"A": _A, "B": _B, "C": _C}, gates, config)
    results.skipped = [{"task": "big", "reason": "/data/big: task 'big': data not found (check 'path')"}]
    report = build_report(results, n_resamples=RESAMPLES)
    labels = [(g.label, g.status, g.fired) for g in report.gates]
    assert labels == [("FAILED", "fail", True), ("FINE-TUNE RECOMMENDED", "warn", True), ("ADEQUATE", "pass", False)]
    assert [(n.kind, n.count) for n in report.setup] == [("gate", 2), ("skipped", 1), ("task", 1)]
    assert "no details file" in report.setup[2].text
    assert "set EVALSUITE_DATA_DIR" not in report.setup[1].fix and "EVALSUITE_DATA_DIR" in report.setup[1].fix
    assert "evalsuite run ties.yaml" in report.setup[1].fix
    assert report.headline == "GATES FAILED: 1 check failed, so the run exits 1"
    assert report.counts_line == "1 failed, 1 warning, 1 passed; 2 checks waiting on set-up"
    fine = report.gates[1]
    assert fine.meaning.startswith("C's ndcg@10 on tie is below 0.5: it misses too many relevant documents")
    assert [(a.system, a.clears) for a in fine.alternatives] == [("A", True), ("B", True)]  # both CIs above 0.5
    assert fine.alternatives_title.endswith(": A, B clear 0.5 with the whole 95% interval")
    (verdict,) = report.verdicts
    decided = [text for kind, text in verdict.lines if kind == "decision"]
    assert len(decided) == 2 and decided[1].startswith("Decision (floor): FINE-TUNE RECOMMENDED: ndcg@10 = 0.380")
    assert decided[0] == "Decision (no-regression): FAILED: partial result: the run lacks 3 judged queries"
    html = report_html(report)
    decisions = html[html.index('<section id="decisions"'):html.index("</section>", html.index('id="decisions"'))]
    assert "no baseline yet" not in decisions and "data not found" not in decisions
    assert "FINE-TUNE RECOMMENDED" in decisions and "partial result" in decisions
    setup = html[html.index('<section id="setup">'):]
    assert setup.index("<details>") < setup.index("no baseline yet") and "Fix: make the data available" in setup
    assert html.index('id="reproducibility"') < html.index('id="setup"')
    markdown = render_markdown(report)
    assert markdown.index("Decision (no-regression)") < markdown.index("GATES FAILED")
    assert markdown.index("<details><summary>Set-up notes (3)</summary>") > markdown.index("### tie")


def test_sts_systems_that_do_not_apply_are_listed_once_never_as_baseline(report: Report, html: str) -> None:
    sts = next(t for t in report.tasks if t.name == "sts")
    assert [r.system.key for r in sts.rows] == ["good", HOSTILE_SYSTEM]
    assert [(s.key, why) for s, why in sts.not_applicable] == [("base", "no encoder")]  # the runner's wording
    assert sts.baseline is not None and sts.baseline.key == "good" and report.baseline.key == "base"
    assert [r.is_baseline for r in sts.rows] == [True, False]
    table = re.search(r'<table class="comparison" data-task="sts">(.*?)</table>', html, re.S)
    assert table is not None and 'data-system="base"' not in table.group(1)
    assert html.count("Not applicable on sts: base (no encoder).") == 1
    legend = [t.text for t in ET.fromstring(str(sts.bar_chart)).iter("text") if t.get("class") == "legend"]
    assert legend == ["good", HOSTILE_SYSTEM]
    assert sts.verdict is not None and sts.verdict.not_applicable == "base (no encoder)"


CLI_SUITE = f"""
name: small
metrics: [ndcg@10, recall@100]
tasks:
  - name: golden
    type: golden
    path: {Path(__file__).resolve().parents[2] / "golden_sets" / "cranfield-50"}
retrievers:
  - name: bm25
    type: bm25
  - name: bm25-k1
    type: bm25
    params: {{k1: 0.9, b: 0.4}}
gates:
  - name: floor
    metric: ndcg@10
    below: 0.99
    system: bm25
    decision: NEVER GOOD ENOUGH
    on_fire: warn
output: out
"""


def test_the_verdict_heads_the_cli_summary_and_report_md(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evalsuite.cli import main

    suite = tmp_path / "small.yaml"
    suite.write_text(CLI_SUITE)
    assert main(["run", str(suite), "--no-progress", "--quiet"]) == 0
    out = capsys.readouterr().out
    folder = Path(out.strip().splitlines()[-1].split("results: ")[1])
    report = build_report(load_results(folder))
    (verdict,) = report.verdicts
    first = [line for line in out.splitlines() if line.strip()]
    assert first[0] == verdict.headline and first[0].startswith("golden: ")
    assert any(line.startswith("  -> Decision (floor): NEVER GOOD ENOUGH: ndcg@10 = ") for line in first[1:5])
    assert out.index(verdict.headline) < out.index("system ") < out.index("gates:")
    markdown = (folder / "report.md").read_text()
    assert markdown.splitlines()[2] == f"**{md_escape(verdict.headline)}**"
    assert 'id="verdict-golden"' in (folder / "report.html").read_text()


def _scipy_bootstrap(data: tuple[np.ndarray, ...], statistic: Any) -> Any:
    """The oracle: scipy's percentile bootstrap over pairs, seeded as the report is (seed 0)."""
    return stats.bootstrap(data, statistic, paired=True, vectorized=False, n_resamples=RESAMPLES, batch=1000,
                           method="percentile", rng=np.random.default_rng(0))


def test_sts_cis_over_sentence_pairs_equal_scipy_bootstrap(report: Report) -> None:
    sts = next(t for t in report.tasks if t.name == "sts")
    gold, scores = _sts_pairs()
    oracles = {"spearman": stats.spearmanr, "pearson": stats.pearsonr}
    for row in sts.rows:
        predicted = np.array(scores[row.system.key])
        for mv in row.values:
            oracle = oracles[mv.metric]
            ref = _scipy_bootstrap((predicted, np.array(gold)),
                                   lambda x, y, f=oracle: float(f(x, y).statistic))  # type: ignore[misc]
            assert mv.ci is not None and mv.ci.n == STS_PAIRS
            assert (mv.ci.low, mv.ci.high) == pytest.approx(
                (ref.confidence_interval.low, ref.confidence_interval.high), abs=1e-12)
            assert mv.ci.low < mv.value < mv.ci.high
    assert sts.has_cis


def test_sts_differences_by_paired_bootstrap_with_holm_within_the_task(report: Report, html: str) -> None:
    sts = next(t for t in report.tasks if t.name == "sts")
    gold, scores = _sts_pairs()
    a, b, g = np.array(scores["good"]), np.array(scores[HOSTILE_SYSTEM]), np.array(gold)
    raw = []
    for metric, oracle in (("spearman", stats.spearmanr), ("pearson", stats.pearsonr)):
        ref = _scipy_bootstrap((a, b, g), lambda x, y, z, f=oracle: float(f(x, z).statistic - f(y, z).statistic))
        cell = sts.cell(metric, "good", HOSTILE_SYSTEM)
        assert cell is not None and cell.n == STS_PAIRS
        assert cell.delta == pytest.approx(float(oracle(a, g).statistic - oracle(b, g).statistic), abs=1e-12)
        assert (cell.ci_low, cell.ci_high) == pytest.approx(
            (ref.confidence_interval.low, ref.confidence_interval.high), abs=1e-12)
        dist = ref.bootstrap_distribution
        k = min(int(np.sum(dist <= 0)), int(np.sum(dist >= 0)))
        raw.append(min(1.0, (2 * k + 1) / (len(dist) + 1)))  # two-sided p of the paired bootstrap
        assert cell.p == pytest.approx(raw[-1])
    assert sts.n_comparisons == 2
    assert [sts.cell(m, "good", HOSTILE_SYSTEM).p_holm for m in ("spearman", "pearson")] == \
        pytest.approx(correct(raw, "holm"))  # type: ignore[union-attr]
    verdict = sts.verdict
    assert verdict is not None and verdict.best == "good" and verdict.unit == "sentence pairs"
    assert verdict.headline.startswith("sts: good is best on spearman: ")
    assert verdict.headline.endswith(f"over {STS_PAIRS} sentence pairs, significantly better than every other system.")
    assert "paired bootstrap over sentence pairs" in verdict.method_note
    assert ("na", "Not applicable: base (no encoder).") in verdict.lines
    assert sts.cell("spearman", HOSTILE_SYSTEM, "good").marker == "▼"  # type: ignore[union-attr]
    assert 'data-task="sts" data-metric="spearman"' in html


def test_sts_results_without_pair_scores_say_why_there_is_no_test(fixture_results: SuiteResults) -> None:
    old = load_results(fixture_results.path or "")
    for cell in old.cells:
        cell.pair_scores = {}
    sts = next(t for t in build_report(old, n_resamples=RESAMPLES).tasks if t.name == "sts")
    assert not sts.has_cis and sts.n_comparisons == 0 and sts.verdict is not None
    (standing,) = sts.verdict.standings
    assert standing.kind == "untested" and "no per-pair scores" in standing.reason


def test_reproducibility_names_the_executor_and_its_settings(html: str) -> None:
    section = html[html.index('id="reproducibility"'):html.index("Tasks (data)")]
    assert ("<tr><th>executor</th><td>ray (10.0.0.1:6379: 3 node(s), 48 CPUs, 2 GPUs); 2 worker(s), batch 64, "
            "1.0 GPU(s) per worker, 4 shards</td></tr>") in section
