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

import pytest

from evalsuite.errors import ConfigError, DataError, EvalsuiteError, UnknownNameError
from evalsuite.gates import GateSpec, evaluate_gates
from evalsuite.io import write_run
from evalsuite.metrics.evaluate import evaluate
from evalsuite.metrics.stats import compare, correct
from evalsuite.report import Report, build_report, render_html, render_markdown
from evalsuite.report.charts import bar_chart, delta_histogram, line_chart, nice_ticks
from evalsuite.report.command import add_report_parser, default_report_path
from evalsuite.report.markdown import md_escape
from evalsuite.results import CellResult, SuiteResults, load_results
from evalsuite.types import Run

HOSTILE_QUERY = "<script>alert(1)</script> wing flutter"
HOSTILE_TITLE = '<img src=x onerror="alert(2)"> delta wing'
HOSTILE_SYSTEM = "evil</script><b>|x"
METRICS = ["ndcg@10", "recall@10", "mrr@10"]
N = 30
RESAMPLES = 2000


def _ranking(relevant: list[str], at: list[int], q: int, depth: int = 30) -> dict[str, float]:
    """A ranking of ``depth`` docs where ``relevant[i]`` sits at rank ``at[i]`` (1-based)."""
    fillers = iter(f"x{q}-{j}" for j in range(depth))
    docs = []
    for rank in range(1, depth + 1):
        docs.append(relevant[at.index(rank)] if rank in at else next(fillers))
    return {d: float(depth - i) for i, d in enumerate(docs)}


def _write_fixture(folder: Path) -> SuiteResults:
    """Three systems on 30 queries (2 relevant docs each) and an STS task; hostile texts."""
    qrels = {f"q{i}": {f"d{i}": 2, f"e{i}": 1} for i in range(N)}
    runs = {
        # the baseline finds the relevant docs late; "good" at ranks 1-2; the hostile-named one = baseline
        "base": {f"q{i}": _ranking([f"d{i}", f"e{i}"], [4 + i % 3, 12 + i % 7], i) for i in range(N)},
        "good": {f"q{i}": _ranking([f"d{i}", f"e{i}"], [1, 2 + i % 2], i) for i in range(N)},
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
    cells += [CellResult(task="sts", system="base", kind="sts", aggregate={}, notes=["not applicable: no encoder"]),
              CellResult(task="sts", system="good", kind="sts", aggregate={"spearman": 0.81, "pearson": 0.8}),
              CellResult(task="sts", system=HOSTILE_SYSTEM, kind="sts", aggregate={"spearman": 0.7, "pearson": 0.85})]
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
        cells=cells, config={"seed": 0, "k": 30}, timing={"total": 3.0},
    )
    gates = evaluate_gates(results, [GateSpec(name="fine-tune-needed", metric="recall@10", task="t", system="base",
                                              below=0.65, decision="FINE-TUNE RECOMMENDED",
                                              otherwise="BASELINE ADEQUATE")], n_resamples=RESAMPLES)
    results.gates = gates.to_dict()["gates"]
    results.path = str(folder / "results.json")
    results.write(folder / "results.json")
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


def test_gate_banner_comes_first_with_the_decision(html: str, fixture_results: SuiteResults) -> None:
    (gate,) = fixture_results.gates
    assert gate["status"] == "fail" and gate["decision"] == "FINE-TUNE RECOMMENDED"  # base finds little in top 10
    banner = re.search(r'<section id="gates" class="banner banner-(\w+)"', html)
    assert banner is not None and banner.group(1) == "fail"
    assert html.index('id="gates"') < html.index('id="comparison"') < html.index('id="charts"')
    section = html[banner.start():html.index("</section>", banner.start())]
    assert "GATES FAILED: 1 failed, 0 warnings, 0 passed" in section
    assert "<strong>FINE-TUNE RECOMMENDED</strong>: recall@10 = " in section
    assert gate["message"].split(": ", 1)[1].split(" [")[0] in section  # "recall@10 = 0.xxx"


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


def test_significance_is_holm_corrected_over_all_comparisons(report: Report) -> None:
    (task,) = [t for t in report.tasks if t.name == "t"]
    pending = [(row.system.key, v) for row in task.rows for v in row.values if v.comparison is not None]
    assert [k for k, _ in pending] == ["good"] * 3 + [HOSTILE_SYSTEM] * 3 and report.n_comparisons == 6
    cells = {c.system: c for c in report.sources[0].cells if c.task == "t"}
    raw = [compare(cells[k].per_query[v.metric], cells["base"].per_query[v.metric], metric=v.metric,
                   n_resamples=RESAMPLES, seed=0).p_randomization for k, v in pending]
    assert [v.p_holm for _, v in pending] == pytest.approx(correct(raw, "holm"), nan_ok=True)
    good = [v for k, v in pending if k == "good"]
    same = [v for k, v in pending if k == HOSTILE_SYSTEM]
    assert all(v.marker == "▲" and "p Holm = " in v.tooltip for v in good)
    assert all(v.marker == "" and v.p_holm == 1.0 for v in same)  # identical runs: no evidence
    sts = next(t for t in report.tasks if t.name == "sts")
    assert all(v.ci is None and v.comparison is None for row in sts.rows for v in row.values)
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
    # "good" has its first relevant doc at rank 1 and the second at 2 or 3
    assert task.recall["good"][:3] == pytest.approx([0.5, 0.75, 1.0])


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
    assert html.count('<tbody class="dd-row"') == len(task.drilldown)
    assert 'id="dd-filter"' in html and "svg" in html


def test_charts_are_well_formed_svg_with_escaped_text() -> None:
    colours = {"a<b>": "#000", "c&d": "#fff"}
    svgs = [
        bar_chart(["m1", "m2"], {"a<b>": [_bar(0.5), _bar(math.nan)], "c&d": [_bar(0.2), _bar(0.9)]}, colours,
                  title="t <x>"),
        line_chart([1, 2, 5], {"a<b>": [0.1, 0.2, math.nan], "c&d": [0.3, 0.4, 0.5]}, colours, title="r"),
        delta_histogram([0.0, 0.1, -0.3, 0.25, 0.0], title="d", x_label="Δ"),
        delta_histogram([], title="empty", x_label="Δ"),
    ]
    for svg in svgs:
        root = ET.fromstring(str(svg))  # parses: well-formed, every text escaped
        assert root.tag == "svg" and root.get("role") == "img"
    texts = [t.text for t in ET.fromstring(str(svgs[0])).iter("text")]
    assert "a<b>" in texts and "c&d" in texts
    counts = [r for r in ET.fromstring(str(svgs[2])).iter("rect")]
    tips = [r.find("title").text for r in counts]  # type: ignore[union-attr]
    assert sum(int(t.split()[0]) for t in tips if t) == 5


def _bar(v: float) -> Any:
    from evalsuite.report.charts import Bar

    return Bar(v, v - 0.1, v + 0.1)


def test_nice_ticks_cover_the_range() -> None:
    assert nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0, 11, integer=True) == [0, 5, 10, 15]
    ticks = nice_ticks(-0.13, 0.87)
    assert ticks[0] <= -0.13 and ticks[-1] >= 0.87


def test_markdown_variant(report: Report, fixture_results: SuiteResults) -> None:
    text = render_markdown(report)
    assert text.startswith("## evalsuite report: unit 20260101T000000Z-abc123\n")
    assert "❌ **GATES FAILED: 1 failed, 0 warnings, 0 passed**" in text
    assert "| ❌ | fine-tune-needed \\[t / base\\] | **FINE-TUNE RECOMMENDED**: recall@10 = " in text
    good = fixture_results.cell("t", "good").aggregate
    line = next(s for s in text.splitlines() if s.startswith("| good |"))
    assert all(f"**{good[m]:.4f}** [" in line for m in METRICS) and line.count("▲") == 3
    assert "| evil&lt;/script&gt;&lt;b&gt;\\|x |" in text and "<b>" not in text
    assert "| base (baseline) | — | — |" in text  # STS, not applicable
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
    args = parser.parse_args(["report", folder, "--markdown", "-", "--resamples", "500"])
    assert args.handler(args) == 0
    out = capsys.readouterr().out
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
