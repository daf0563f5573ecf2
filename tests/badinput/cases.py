"""The bad-input corpus: each case is a command on a copy of the valid world (see world.py) with
some files replaced, and the exit code and the place (file, line or field) its one-line error must name.

Run by ``test_badinput.py`` (one parametrised test) and counted by ``python -m tests.badinput.totals``.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.badinput.world import CORPUS, QRELS, QUERIES, SUITE, jsonl, run_folder

Content = str | bytes | Callable[[Path], str | bytes]


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    files: dict[str, Content] = field(default_factory=dict)
    where: tuple[str, ...] = ()  # substrings the error line must contain (file, line, field)
    code: int = 2
    setup: Callable[[Path], None] | None = None
    pending: str = ""  # owned by another issue: counted, expected to fail until that lands


def suite(edit: tuple[str, str] | None = None, append: str = "", text: str | None = None) -> str:
    body = SUITE if text is None else text
    if edit is not None:
        assert edit[0] in body, edit
        body = body.replace(*edit)
    return body + append


def results_json(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], str]:
    """The world's results.json, changed by ``change`` (which edits in place or returns a new value)."""
    def make(root: Path) -> str:
        data = json.loads((root / run_folder(root) / "results.json").read_text())
        new = change(data)
        return json.dumps(data if new is None else new)
    return make


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def deep_json(depth: int = 100_000) -> str:
    return "[" * depth + "]" * depth


def damage_store(root: Path) -> None:
    """Overwrite a page in the middle of the store (keeps the header, so it opens)."""
    path = root / "out" / "history.sqlite"
    data = bytearray(path.read_bytes())
    page = 4096
    data[page: 3 * page] = b"\xde\xad\xbe\xef" * (page // 2)
    path.write_bytes(bytes(data))


def bad_store_row(root: Path) -> None:
    with sqlite3.connect(root / "out" / "history.sqlite") as conn:
        conn.execute("UPDATE runs SET results = '{not json'")
    conn.close()


def latest_is_folder(root: Path) -> None:
    link = root / "out" / "tiny" / "latest"
    link.unlink()
    link.mkdir()


def alias_bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return (SUITE.replace("  - name: bm25\n    type: bm25\n",
                          f"  - name: bm25\n    type: bm25\n    params: {{stopwords: *a{levels}}}\n")
            .replace("name: tiny\n", "name: tiny\nanchors:\n" + "".join(f"  {x}\n" for x in lines)))


RUN = ("run", "suite.yaml", "-q", "--no-progress", "--no-cache")
EVAL = ("evaluate", "qrels.trec")
BIG = 10_000_000_000_000_000_000_000

CASES: list[Case] = [
    # -- evaluate: TREC / BEIR / JSON / JSONL runs and qrels --------------------------------------
    Case("trec-run-score-not-number", (*EVAL, "bad.trec"), {"bad.trec": "q1 Q0 d1 1 2.5 t\nq1 Q0 d2 2 high t\n"},
         ("bad.trec:2", "score")),
    Case("trec-run-five-columns", (*EVAL, "bad.trec"), {"bad.trec": "q1 Q0 d1 1 2.5\n"}, ("bad.trec:1",)),
    Case("trec-run-duplicate-doc", (*EVAL, "bad.trec"), {"bad.trec": "q1 Q0 d1 1 2.5 t\nq1 Q0 d1 2 1.5 t\n"},
         ("bad.trec:2",)),
    Case("trec-run-nul-byte", (*EVAL, "bad.trec"), {"bad.trec": b"q1 Q0 d1 1 2.5 t\nq1 Q0 d\x002 2 1 t\n"},
         ("bad.trec:2",)),
    Case("trec-run-not-utf8", (*EVAL, "bad.trec"), {"bad.trec": b"q1 Q0 d\xff1 1 2.5 t\n"}, ("bad.trec:1",)),
    Case("trec-run-utf16-no-bom", (*EVAL, "bad.trec"), {"bad.trec": "q1 Q0 d1 1 2.5 t\n".encode("utf-16-le")},
         ("bad.trec",)),
    Case("trec-run-empty", (*EVAL, "bad.trec"), {"bad.trec": ""}, ("bad.trec", "empty")),
    Case("trec-run-only-separators", (*EVAL, "bad.trec"), {"bad.trec": b"\x1c\x1c\x1c\n"},
         ("bad.trec", "control")),
    Case("trec-run-control-char-in-doc-id", (*EVAL, "bad.trec"), {"bad.trec": "q1 Q0 d\x071 1 2.5 t\n"},
         ("bad.trec:1",)),
    Case("trec-run-gzip-corrupt-deflate", (*EVAL, "bad.trec.gz"),
         {"bad.trec.gz": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff" * 40}, ("bad.trec.gz", "gzip")),
    Case("trec-run-gzip-truncated", (*EVAL, "bad.trec.gz"),
         {"bad.trec.gz": lambda root: __import__("gzip").compress((root / "run.trec").read_bytes() * 50)[:60]},
         ("bad.trec.gz", "gzip")),
    Case("trec-run-is-a-folder", (*EVAL, "golden"), {}, ("golden", "folder")),
    # a device is refused before reading (/dev/zero was read until memory ran out)
    Case("trec-run-a-device", (*EVAL, "/dev/null"), {}, ("/dev/null", "device")),
    Case("trec-run-missing", (*EVAL, "nosuch.trec"), {}, ("nosuch.trec", "not found")),
    Case("trec-qrels-grade-beyond-int64", ("evaluate", "bad.qrels", "run.trec"),
         {"bad.qrels": f"q1 0 d1 {BIG}\n"}, ("bad.qrels:1",)),
    Case("trec-qrels-grade-1e30", ("evaluate", "bad.qrels", "run.trec"), {"bad.qrels": "q1 0 d1 1e30\n"},
         ("bad.qrels:1",)),
    Case("trec-qrels-grade-not-integer", ("evaluate", "bad.qrels", "run.trec"), {"bad.qrels": "q1 0 d1 1.5\n"},
         ("bad.qrels:1",)),
    Case("beir-qrels-grade-beyond-int64", ("evaluate", "bad.tsv", "run.trec"),
         {"bad.tsv": f"query-id\tcorpus-id\tscore\nq1\td1\t{BIG}\n"}, ("bad.tsv:2",)),
    Case("json-qrels-grade-beyond-int64", ("evaluate", "bad.json", "run.trec"),
         {"bad.json": f'{{"q1": {{"d1": {BIG}}}}}'}, ("bad.json",)),
    Case("json-qrels-grade-1e30", ("evaluate", "bad.json", "run.trec"), {"bad.json": '{"q1": {"d1": 1e30}}'},
         ("bad.json",)),
    Case("jsonl-qrels-grade-beyond-int64", ("evaluate", "bad.jsonl", "run.trec"),
         {"bad.jsonl": f'{{"query_id": "q1", "doc_id": "d1", "relevance": {BIG}}}\n'}, ("bad.jsonl:1",)),
    Case("jsonl-qrels-grade-1e30", ("evaluate", "bad.jsonl", "run.trec"),
         {"bad.jsonl": '{"query_id": "q1", "doc_id": "d1", "relevance": 1e30}\n'}, ("bad.jsonl:1",)),
    Case("json-run-string-scores", (*EVAL, "bad.json"), {"bad.json": '{"q1": {"d1": "0.5"}}'}, ("bad.json",)),
    Case("json-run-a-list", (*EVAL, "bad.json"), {"bad.json": "[1, 2]"}, ("bad.json",)),
    Case("json-run-nested-deep", (*EVAL, "bad.json"), {"bad.json": deep_json()}, ("bad.json",)),
    Case("json-run-invalid", (*EVAL, "bad.json"), {"bad.json": '{"q1": {"d1": 0.5}'}, ("bad.json:1",)),
    Case("jsonl-run-missing-field", (*EVAL, "bad.jsonl"), {"bad.jsonl": '{"query_id": "q1", "doc_id": "d1"}\n'},
         ("bad.jsonl:1", "score")),
    Case("jsonl-run-lone-surrogate-id", (*EVAL, "bad.jsonl", "--format", "csv"),
         {"bad.jsonl": '{"query_id": "q1", "doc_id": "d\\ud800", "score": 1}\n'}, ("bad.jsonl:1", "surrogate")),
    Case("jsonl-run-lone-surrogate-table", (*EVAL, "bad.jsonl"),
         {"bad.jsonl": '{"query_id": "q\\udc00", "doc_id": "d1", "score": 1}\n'}, ("bad.jsonl:1", "surrogate")),
    Case("jsonl-run-nan-score", (*EVAL, "bad.jsonl"),
         {"bad.jsonl": '{"query_id": "q1", "doc_id": "d1", "score": NaN}\n'}, ("bad.jsonl:1", "score")),
    Case("qrels-from-a-pipe", ("evaluate", "q.pipe", "run.trec"), {}, ("q.pipe", "pipe"),
         setup=lambda root: os.mkfifo(root / "q.pipe")),
    Case("evaluate-digits-negative", (*EVAL, "run.trec", "--digits", "-1"), {}, ("--digits",)),
    Case("evaluate-unknown-metric", (*EVAL, "run.trec", "-m", "ndgc@10"), {}, ("ndgc@10", "did you mean")),
    Case("evaluate-no-run", ("evaluate", "qrels.trec"), {}, ("evaluate needs",)),
    # -- the suite YAML ---------------------------------------------------------------------------
    Case("suite-name-traversal", RUN, {"suite.yaml": suite(("name: tiny", 'name: "../../victim"'))},
         ("suite.yaml:1", "name")),
    Case("suite-name-absolute", RUN, {"suite.yaml": suite(("name: tiny", "name: /tmp/abs"))}, ("suite.yaml:1",)),
    Case("suite-name-empty", RUN, {"suite.yaml": suite(("name: tiny", 'name: ""'))}, ("suite.yaml:1",)),
    Case("suite-name-dot", RUN, {"suite.yaml": suite(("name: tiny", 'name: "."'))}, ("suite.yaml:1",)),
    Case("suite-name-dotdot", RUN, {"suite.yaml": suite(("name: tiny", 'name: ".."'))}, ("suite.yaml:1",)),
    Case("suite-name-nul", RUN, {"suite.yaml": suite(("name: tiny", 'name: "a\\0b"'))}, ("suite.yaml:1",)),
    Case("task-name-slash", RUN, {"suite.yaml": suite(("  - name: golden", "  - name: c/1"))},
         ("suite.yaml:4", "tasks[0].name")),
    Case("task-name-traversal", RUN, {"suite.yaml": suite(("  - name: golden", "  - name: ../../x"))},
         ("suite.yaml:4",)),
    Case("task-names-differ-in-case", RUN, {"suite.yaml": suite(append="")
                                            .replace("retrievers:", "  - {name: Golden, type: golden, path: golden}\n"
                                                     "retrievers:")}, ("suite.yaml:7", "case")),
    Case("system-name-space", RUN, {"suite.yaml": suite(("  - name: bm25\n", "  - name: my bm25\n"))},
         ("suite.yaml:8", "retrievers[0].name")),
    Case("system-name-traversal", RUN, {"suite.yaml": suite(("  - name: bm25\n", "  - name: ../bm25\n"))},
         ("suite.yaml:8",)),
    Case("gate-name-slash", RUN, {"suite.yaml": suite(("  - name: floor", "  - name: a/b"))},
         ("suite.yaml:11", "gates[0].name")),
    Case("k-true", RUN, {"suite.yaml": suite(("metrics:", "k: true\nmetrics:"))}, ("suite.yaml:2", "k")),
    Case("k-zero", RUN, {"suite.yaml": suite(("metrics:", "k: 0\nmetrics:"))}, ("suite.yaml:2", "k")),
    Case("seed-negative", RUN, {"suite.yaml": suite(append="seed: -1\n")}, ("suite.yaml:20", "seed")),
    Case("seed-beyond-2-32", RUN, {"suite.yaml": suite(append="seed: 4294967296\n")}, ("suite.yaml:20", "seed")),
    Case("metrics-empty", RUN, {"suite.yaml": suite(("metrics: [ndcg@10, recall@10]", "metrics: []"))},
         ("suite.yaml:2", "metrics")),
    Case("metric-typo", RUN, {"suite.yaml": suite(("metrics: [ndcg@10, recall@10]", "metrics: [ndcg@10, recal@10]"))},
         ("suite.yaml:2", "recal@10")),
    Case("retrievers-empty", RUN, {"suite.yaml": suite(("retrievers:\n  - name: bm25\n    type: bm25\n",
                                                         "retrievers: []\n"))}, ("suite.yaml", "retrievers")),
    Case("duplicate-key", RUN, {"suite.yaml": suite(append="metrics: [map]\n")}, ("suite.yaml:20", "duplicate")),
    Case("alias-bomb-9", RUN, {"suite.yaml": alias_bomb(9)}, ("suite.yaml", "alias")),
    Case("alias-bomb-5", RUN, {"suite.yaml": alias_bomb(5)}, ("suite.yaml", "alias")),
    Case("suite-not-utf8", RUN, {"suite.yaml": SUITE.encode().replace(b"tiny", b"t\xe9ny")}, ("suite.yaml:1",)),
    Case("suite-lone-surrogate", RUN, {"suite.yaml": suite(append='description: "x\\ud800"\n')},
         ("suite.yaml", "surrogate")),
    Case("suite-control-character", RUN, {"suite.yaml": suite(append="description: a\x01b\n")},
         ("suite.yaml:20",)),
    Case("suite-invalid-yaml", RUN, {"suite.yaml": suite(append="tasks: [\n")}, ("suite.yaml:",)),
    Case("suite-a-list", RUN, {"suite.yaml": "- a\n- b\n"}, ("suite.yaml", "mapping")),
    Case("suite-empty", RUN, {"suite.yaml": ""}, ("suite.yaml",)),
    Case("suite-nested-deep", RUN, {"suite.yaml": "a: " + "[" * 5000 + "]" * 5000 + "\n"}, ("suite.yaml",)),
    Case("suite-missing", ("run", "nosuch.yaml"), {}, ("nosuch.yaml", "not found")),
    Case("suite-is-a-folder", ("run", "golden"), {}, ("golden: is a folder",)),
    Case("suite-unknown-field", RUN, {"suite.yaml": suite(append="colour: red\n")},
         ("suite.yaml:20", "unknown field 'colour' (fields: name, ")),
    Case("suite-near-miss-field", RUN, {"suite.yaml": suite(("metrics:", "metric:"))},
         ("suite.yaml:2", "unknown field 'metric'; did you mean 'metrics'?")),
    Case("task-near-miss-field", RUN,
         {"suite.yaml": suite(("    path: golden", "    path: golden\n    optinal: true"))},
         ("suite.yaml:7", "tasks[0].optinal", "did you mean 'optional'?")),
    Case("gate-near-miss-field", RUN,
         {"suite.yaml": suite(("max_drop: 0.05", "max_drop: 0.05\n    alow_missing: [x]"))},
         ("suite.yaml:18", "did you mean 'allow_missing'?")),
    # the misspelt key is named, not the "Field required" of the key it was meant to be
    Case("finetune-near-miss-required-field", RUN,
         {"suite.yaml": suite(append="finetune: {task: golden, bse: bm25}\n")},
         ("suite.yaml:20", "finetune.bse", "did you mean 'base'?")),
    Case("retriever-unknown-type", RUN, {"suite.yaml": suite(("type: bm25", "type: bm52"))},
         ("suite.yaml:9", "did you mean")),
    Case("retriever-unknown-param", RUN, {"suite.yaml": suite(("type: bm25\n", "type: bm25\n    params: {kk: 1}\n"))},
         ("suite.yaml:10", "kk")),
    # checked when the retriever is built, after the suite loaded: the line is still named
    Case("retriever-param-nan", RUN,
         {"suite.yaml": suite(("type: bm25\n", "type: bm25\n    params:\n      k1: .nan\n"))},
         ("suite.yaml:11", "k1", "finite")),
    Case("task-data-missing", RUN, {"suite.yaml": suite(("path: golden", "path: nosuch"))}, ("nosuch",)),
    Case("task-unknown-type", RUN, {"suite.yaml": suite(("type: golden", "type: gold"))}, ("suite.yaml:5", "type")),
    Case("gate-below-inf", RUN, {"suite.yaml": suite(("below: 0.01", "below: .inf"))}, ("suite.yaml:13", "below")),
    Case("gate-below-nan", RUN, {"suite.yaml": suite(("below: 0.01", "below: .nan"))}, ("suite.yaml:13", "below")),
    Case("gate-max-drop-inf", RUN, {"suite.yaml": suite(("max_drop: 0.05", "max_drop: .inf"))},
         ("suite.yaml:17", "max_drop")),
    Case("gate-unknown-task", RUN,
         {"suite.yaml": suite(("    on_fire: warn\n", "    on_fire: warn\n    task: nope\n"))},
         ("suite.yaml:15", "nope")),
    # -- run options, baselines and the store -----------------------------------------------------
    Case("run-baseline-system-unknown", (*RUN, "--baseline-system", "nosuch"), {}, ("nosuch",)),
    Case("run-digits-negative", (*RUN, "--digits", "-2"), {}, ("--digits",)),
    Case("run-task-unknown", (*RUN, "--task", "nosuch"), {}, ("nosuch",)),
    Case("run-system-unknown", (*RUN, "--system", "nosuch"), {}, ("nosuch",)),
    Case("run-baseline-absent-file", (*RUN, "--baseline", "absent.json"), {}, ("absent.json", "not found")),
    Case("run-baseline-a-list", (*RUN, "--baseline", "bad.json"), {"bad.json": "[]"}, ("bad.json",)),
    Case("run-baseline-cell-without-fields", (*RUN, "--baseline", "bad.json"),
         {"bad.json": results_json(_set(("results", 0), {}))}, ("bad.json", "results[0]")),
    Case("run-baseline-string-metric", (*RUN, "--baseline", "bad.json"),
         {"bad.json": results_json(_set(("results", 0, "aggregate", "ndcg@10"), "0.5"))},
         ("bad.json", "aggregate")),
    Case("run-baseline-per-query-string", (*RUN, "--baseline", "bad.json"),
         {"bad.json": results_json(lambda d: d["results"][0]["per_query"]["ndcg@10"].update(q1="x"))},
         ("bad.json", "per_query")),
    Case("run-baseline-not-utf8", (*RUN, "--baseline", "bad.json"),
         {"bad.json": lambda root: results_json(lambda d: None)(root).encode().replace(b"tiny", b"t\xff")},
         ("bad.json:",)),
    Case("run-baseline-nested-deep", (*RUN, "--baseline", "bad.json"), {"bad.json": deep_json()}, ("bad.json",)),
    Case("run-baseline-wrong-schema", (*RUN, "--baseline", "bad.json"),
         {"bad.json": results_json(_set(("schema",), "other/1"))}, ("bad.json", "schema")),
    Case("run-baseline-unknown-id", (*RUN, "--baseline", "nosuchid"), {}, ("history.sqlite", "nosuchid")),
    Case("run-baseline-like-pattern", (*RUN, "--baseline", "%"), {}, ("history.sqlite", "'%'")),
    Case("run-store-not-sqlite", (*RUN, "--store", "bad.sqlite"), {"bad.sqlite": "not a database\n" * 100},
         ("bad.sqlite",)),
    Case("run-store-damaged", RUN, {}, ("history.sqlite",), setup=damage_store),
    Case("run-output-is-a-file", (*RUN, "--output", "run.trec"), {}, ("run.trec", "is a file")),
    Case("run-suite-folder-is-a-file", RUN, {"out/tiny2": "x"}, ("out/tiny2", "is a file"),
         setup=lambda root: (root / "suite.yaml").write_text(SUITE.replace("name: tiny", "name: tiny2"))),
    Case("run-junit-is-a-folder", (*RUN, "--junit", "golden"), {}, ("--junit golden", "folder")),
    Case("run-json-inside-a-file", (*RUN, "--json", "run.trec/gates.json"), {}, ("--json", "run.trec", "is a file")),
    # the baseline file --update-baseline will write is checked before the run (it was written, then exit 2)
    Case("run-update-baseline-inside-a-file", (*RUN, "--update-baseline"),
         {"suite.yaml": suite(("baseline: baseline.json", "baseline: run.trec/b.json"))},
         ("--update-baseline", "run.trec is a file")),
    Case("run-latest-is-a-folder", RUN, {}, ("latest", "folder"), setup=latest_is_folder),
    Case("run-configured-baseline-corrupt", RUN, {"baseline.json": "{"}, ("baseline.json:1",)),
    # without 'baseline:' --update-baseline writes baselines/<suite>.json (issue 12); a store id cannot be written
    Case("run-update-baseline-to-a-store-id", (*RUN, "--update-baseline"),
         {"suite.yaml": suite(("baseline: baseline.json\n", "baseline: some-run-id\n"))},
         ("suite.yaml", "store id 'some-run-id'")),
    # -- gate ---------------------------------------------------------------------------------------
    Case("gate-results-absent", ("gate", "/nonexistent/results.json"), {}, ("/nonexistent/results.json",
                                                                             "not found")),
    Case("gate-results-wrong-shape", ("gate", "bad.json"), {"bad.json": results_json(_set(("results",), {}))},
         ("bad.json", "results")),
    Case("gate-results-gates-wrong-shape", ("gate", "bad.json"),
         {"bad.json": results_json(_set(("config", "gates"), [{"name": "x"}]))}, ("bad.json",)),
    Case("gate-baseline-absent", ("gate", "{run}", "--baseline", "absent.json"), {}, ("absent.json", "not found")),
    Case("gate-store-id-like-pattern", ("gate", "_", "--store", "out/history.sqlite"), {},
         ("history.sqlite", "'_'")),
    Case("gate-results-run-id-traversal", ("gate", "bad.json"),
         {"bad.json": results_json(_set(("run_id",), "../../etc"))}, ("bad.json", "run id")),
    Case("gate-results-suite-name-traversal", ("gate", "bad.json"),
         {"bad.json": results_json(_set(("suite",), "/tmp/x"))}, ("bad.json", "suite name")),
    Case("gate-markdown-is-a-folder", ("gate", "{run}", "--markdown", "golden"), {}, ("--markdown golden", "folder")),
    # results are written without NaN/Infinity tokens: one in a file crashed the gates' JSON (exit 3) or passed
    Case("gate-results-per-query-infinity", ("gate", "bad.json"),
         {"bad.json": results_json(lambda d: d["results"][0]["per_query"]["ndcg@10"].update(q1=float("inf")))},
         ("bad.json", "per_query.ndcg@10.q1", "finite")),
    Case("report-results-aggregate-nan", ("report", "bad.json", "-o", "r.html"),
         {"bad.json": results_json(_set(("results", 0, "aggregate", "ndcg@10"), float("nan")))},
         ("bad.json", "aggregate.ndcg@10", "finite")),
    Case("gate-results-seed-negative", ("gate", "bad.json"), {"bad.json": results_json(_set(("config", "seed"), -3))},
         ("bad.json", "config.seed")),
    Case("gate-update-baseline-inside-a-file", ("gate", "{run}", "--update-baseline", "run.trec/b.json"), {},
         ("--update-baseline", "run.trec is a file")),
    # checked before the --junit file is written (it was written, then exit 2)
    Case("gate-update-baseline-inside-a-file-with-junit",
         ("gate", "{run}", "--junit", "j.xml", "--update-baseline", "run.trec/b.json"), {},
         ("--update-baseline", "run.trec is a file")),
    Case("gate-results-device", ("gate", "/dev/null"), {}, ("/dev/null", "device or pipe")),
    Case("run-suite-device", ("run", "/dev/null"), {}, ("/dev/null", "device or pipe")),
    Case("gate-results-json-a-folder", ("gate", "r1"), {}, ("r1/results.json", "is a folder"),
         setup=lambda root: (root / "r1" / "results.json").mkdir(parents=True)),  # said 'is a device or pipe'
    Case("gate-no-gates", ("gate", "bad.json"), {"bad.json": results_json(_set(("config", "gates"), []))},
         ("no gates",)),
    Case("gate-store-bad-row", ("gate", "2", "--store", "out/history.sqlite"), {}, ("history.sqlite", "damaged"),
         setup=bad_store_row),
    # -- report -------------------------------------------------------------------------------------
    Case("report-details-outside", ("report", "bad/results.json", "-o", "r.html"),
         {"secret.json": '{"queries": {"q1": "SECRET"}}',
          "bad/results.json": results_json(lambda d: d["tasks"][0].update(details_file="../secret.json"))},
         ("details_file", "outside")),
    Case("report-run-file-absolute", ("report", "{run}", "-o", "r.html"),
         {"{run}/results.json": lambda root: results_json(
             lambda d: d["results"][0].update(run_file=str(root / "run.trec")))(root)},
         ("run_file", "absolute")),
    Case("report-resamples-too-few", ("report", "{run}", "--resamples", "5"), {}, ("--resamples",)),
    Case("report-results-not-utf8", ("report", "bad.json"), {"bad.json": b'{"schema": "\xff"}'}, ("bad.json:1",)),
    Case("report-results-empty-object", ("report", "bad.json"), {"bad.json": "{}"}, ("bad.json", "schema")),
    Case("report-details-wrong-shape", ("report", "bad/results.json", "-o", "r.html"),
         {"bad/details.json": '{"qrels": {"q1": {"d1": "2"}}}',
          "bad/results.json": results_json(lambda d: d["tasks"][0].update(details_file="details.json"))},
         ("details.json", "qrels")),
    # -- history --------------------------------------------------------------------------------------
    Case("history-percent", ("history", "%", "--store", "out/history.sqlite"), {}, ("'%'",)),
    Case("history-underscore", ("history", "_", "--store", "out/history.sqlite"), {}, ("'_'",)),
    Case("history-damaged-store", ("history", "--store", "out/history.sqlite"), {}, ("history.sqlite",),
         setup=damage_store),
    Case("history-not-a-store", ("history", "--store", "bad.sqlite"), {"bad.sqlite": "hello\n"}, ("bad.sqlite",)),
    Case("history-bad-json-row", ("history", "2", "--store", "out/history.sqlite"), {}, ("damaged",),
         setup=bad_store_row),
    Case("history-three-ids", ("history", "a", "b", "c", "--store", "out/history.sqlite"), {}, ("at most two",)),
    # -- golden sets (validate and run) ---------------------------------------------------------------
    Case("golden-query-id-float", ("validate", "g.jsonl"),
         {"g.jsonl": '{"query_id": 7.5, "query": "wing", "relevant": ["lift on a wing"]}\n'}, ("g.jsonl:1", "7.5")),
    Case("golden-query-id-list", ("validate", "g.jsonl"),
         {"g.jsonl": '{"query_id": ["a"], "query": "wing", "relevant": ["lift on a wing"]}\n'}, ("g.jsonl:1",)),
    Case("golden-tags-not-a-list", ("validate", "golden"),
         {"golden/queries.jsonl": jsonl([{**QUERIES[0], "tags": "notalist"}, *QUERIES[1:]])},
         ("queries.jsonl:1", "tags")),
    Case("golden-grade-beyond-int64", ("validate", "golden"),
         {"golden/qrels/test.tsv": QRELS + f"q1\td2\t{BIG}\n"}, ("test.tsv:6",)),
    Case("golden-grade-1e30", ("validate", "golden"),
         {"golden/qrels/test.tsv": QRELS + "q1\td2\t1e30\n"}, ("test.tsv:6",)),
    Case("golden-lone-surrogate-text", ("validate", "golden"),
         {"golden/queries.jsonl": jsonl(QUERIES[:2]) + '{"_id": "q3", "text": "heat \\ud800"}\n'},
         ("queries.jsonl:3", "surrogate")),
    Case("golden-lone-surrogate-run", RUN,
         {"golden/corpus.jsonl": jsonl(CORPUS) + '{"_id": "d\\udfff", "text": "x"}\n'},
         ("corpus.jsonl:5", "surrogate")),
    Case("golden-judgement-unknown-doc", ("validate", "golden"),
         {"golden/qrels/test.tsv": QRELS + "q1\tnosuch\t1\n"}, ("test.tsv:6", "nosuch")),
    Case("golden-empty-query", RUN,
         {"golden/queries.jsonl": jsonl([*QUERIES[:2], {"_id": "q3", "text": "  "}])}, ("queries.jsonl:3",)),
    Case("golden-id-with-space", RUN,
         {"golden/corpus.jsonl": jsonl([*CORPUS, {**CORPUS[3], "_id": "d 5"}])}, ("corpus.jsonl:5", "d 5")),
    Case("golden-folder-missing-files", ("validate", "empty"), {"empty/readme.txt": "x"}, ("empty", "lacks")),
    Case("golden-not-found", ("validate", "nosuch"), {}, ("nosuch", "not found")),
    # -- BEIR tasks (run) -------------------------------------------------------------------------------
    Case("beir-unknown-doc", RUN, {"suite.yaml": suite(("type: golden", "type: beir")),
                                   "golden/qrels/test.tsv": QRELS + "q1\tnosuch\t1\n"}, ("test.tsv:6", "nosuch")),
    Case("beir-empty-query-text", RUN, {"suite.yaml": suite(("type: golden", "type: beir")),
                                        "golden/queries.jsonl": jsonl([*QUERIES[:2], {"_id": "q3", "text": ""}])},
         ("queries.jsonl:3",)),
    Case("beir-id-with-space", RUN, {"suite.yaml": suite(("type: golden", "type: beir")),
                                     "golden/corpus.jsonl": jsonl([*CORPUS[:3], {**CORPUS[3], "_id": "d 4"}])},
         ("corpus.jsonl:4",)),
    Case("beir-split-missing", RUN, {"suite.yaml": suite(("type: golden", "type: beir\n    split: dev"))},
         ("golden", "dev")),
    # -- STS -----------------------------------------------------------------------------------------------
    Case("sts-bad-score", RUN, {"suite.yaml": suite(("type: golden\n    path: golden", "type: sts\n    path: s.csv")),
                                "s.csv": "sentence1,sentence2,score\na,b,1\nc,d,high\n"}, ("s.csv:3", "score")),
    Case("sts-no-header", RUN, {"suite.yaml": suite(("type: golden\n    path: golden", "type: sts\n    path: s.csv")),
                                "s.csv": "a,b,1\nc,d,2\n"}, ("s.csv:1",)),
    # -- pairs, mine-negatives --------------------------------------------------------------------------------
    Case("pairs-seed-negative", ("pairs", "golden", "--seed=-1", "-o", "p.jsonl"), {}, ("--seed", "[0, 2^32)")),
    Case("pairs-output-device", ("pairs", "golden", "-o", "out.jsonl"), {}, ("out.jsonl", "device, pipe"),
         setup=lambda root: os.symlink("/dev/null", root / "out.jsonl")),  # wrote /dev/null.split.json
    # /dev/stdout redirected to a file: a regular file, but the split would go beside the link (in /dev)
    Case("pairs-output-standard-stream", ("pairs", "golden", "-o", "out.jsonl"), {}, ("out.jsonl", "standard stream"),
         setup=lambda root: os.symlink("/proc/self/fd/1", root / "out.jsonl")),
    Case("mine-negatives-seed-negative", ("mine-negatives", "golden", "--miner", "bm25", "--seed=-1", "-o",
                                          "n.jsonl"), {}, ("--seed", "[0, 2^32)")),
    Case("mine-negatives-pairs-nested-deep", ("mine-negatives", "golden", "--miner", "bm25", "--pairs", "p.jsonl",
                                              "-o", "n.jsonl"),
         {"p.jsonl": '{"query": ' + deep_json() + ', "positive": "b"}\n'}, ("p.jsonl:1", "nested too deeply")),
    Case("mine-negatives-pairs-lone-surrogate", ("mine-negatives", "golden", "--miner", "bm25", "--pairs", "p.jsonl",
                                                 "-o", "n.jsonl"),
         {"p.jsonl": '{"query": "a\\ud800", "positive": "b"}\n'}, ("p.jsonl:1", "surrogate")),
    # -- check-leakage ---------------------------------------------------------------------------------------
    Case("leakage-train-bad-line", ("check-leakage", "golden", "--train", "bad.jsonl"),
         {"bad.jsonl": '{"query": "a", "positive": "b"}\n{"query": 3}\n'}, ("bad.jsonl:2",)),
    Case("leakage-train-surrogate", ("check-leakage", "golden", "--train", "bad.jsonl"),
         {"bad.jsonl": '{"query": "a\\ud800", "positive": "b"}\n'}, ("bad.jsonl:1", "surrogate")),
    Case("leakage-threshold-out-of-range", ("check-leakage", "golden", "--threshold", "2"), {}, ("threshold",)),
    Case("leakage-max-rate-nan", ("check-leakage", "golden", "--max-rate", "nan"), {}, ("--max-rate",)),
]
