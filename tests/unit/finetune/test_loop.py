"""The fine-tune loop end to end on the shipped golden set with a TINY model (plumbing, not
quality): `evalsuite finetune SUITE --output DIR`, its files and results, the leakage refusal,
the min_gain gate, the report section, the model card, and bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from evalsuite.cli import main
from evalsuite.finetune.card import read_card
from evalsuite.models import content_fingerprint
from evalsuite.results import load_results

for _needed in ("torch", "transformers", "sentence_transformers", "accelerate", "datasets", "bm25s"):
    pytest.importorskip(_needed)

GOLDEN = Path(__file__).resolve().parents[3] / "golden_sets" / "cranfield-50"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def suite_text(model: Path, cache: Path, finetune: str) -> str:
    return f"""
name: ft
metrics: [ndcg@10, recall@10, recall@100]
cache_dir: {cache}
tasks:
  - {{name: golden, type: golden, path: {GOLDEN}}}
retrievers:
  - {{name: tiny, type: dense, params: {{model: {model}, backend: sentence-transformers}}}}
  - {{name: bm25, type: bm25}}
finetune:
{finetune}
"""


BASIC = """  base: tiny
  task: golden
  test_fraction: 0.5
  dev_fraction: 0.2
  seed: 0
  pairs: qrels
  negatives: {miner: bm25, top_k: 10, per_pair: 1, relative_margin: 0.05, measure_false_negatives: true}
  epochs: 1
  max_steps: 2
  eval_steps: 1
  batch_size: 8
  learning_rate: 1.0e-3
  warmup_ratio: 0.0
  gates: [{metric: ndcg@10, min_gain: 0.5}]
"""


def write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "suite.yaml"
    path.write_text(text)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> tuple[int, Path, str]:
    folder = tmp_path_factory.mktemp("ft")
    suite = write(folder, suite_text(tiny_model, folder / "cache", BASIC))
    out = folder / "DIR"
    code = main(["finetune", str(suite), "--output", str(out), "--no-progress", "-q"])
    return code, out, str(suite)


def test_finetune_writes_the_contract(finished: tuple[int, Path, str], tiny_model: Path) -> None:
    code, out, _ = finished
    assert code == 1  # the min_gain gate (+0.5 nDCG@10) cannot pass with 2 steps on a random model
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "details", "model", "pairs.jsonl", "per_query.csv", "report.html", "report.md", "results.json", "runs"]
    data = json.loads((out / "results.json").read_text())
    ft = data["finetune"]
    test, train, dev = set(ft["test_queries"]), set(ft["train_queries"]), set(ft["dev_queries"])
    assert len(test) == 25 and len(train) + len(dev) == 25 and len(dev) == 5
    assert not (test & train) and not (test & dev) and not (train & dev)
    for key in ("before", "after", "gain"):
        assert set(ft[key]) == {"ndcg@10", "recall@10", "recall@100"}
    g = ft["gain"]["ndcg@10"]
    assert {"delta", "ci_low", "ci_high", "p_value", "wins", "losses", "ties", "n"} <= set(g)
    assert g["n"] == 25 and g["wins"] + g["losses"] + g["ties"] == 25
    assert g["delta"] == pytest.approx(ft["after"]["ndcg@10"] - ft["before"]["ndcg@10"], abs=1e-12)
    assert g["ci_low"] <= g["delta"] <= g["ci_high"]
    # every system evaluated on exactly the held-out queries
    results = load_results(out)
    assert [c.system for c in results.cells] == ["tiny", "tiny-tuned", "bm25"]
    for cell in results.cells:
        assert set(cell.per_query["ndcg@10"]) == test
    assert results.cell("golden", "tiny").aggregate["ndcg@10"] == pytest.approx(ft["before"]["ndcg@10"])
    assert results.cell("golden", "tiny-tuned").aggregate["ndcg@10"] == pytest.approx(ft["after"]["ndcg@10"])
    # training pairs come from training queries only; pairs.jsonl in sentence-transformers columns
    rows = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert len(rows) == ft["pairs"]["pairs"] and list(rows[0]) == ["anchor", "positive", "negative_1"]
    queries = {json.loads(line)["_id"]: json.loads(line)["text"] for line in (GOLDEN / "queries.jsonl").open()}
    assert {r["anchor"] for r in rows} <= {queries[q] for q in train}
    negatives = ft["negatives"]
    assert negatives["miner"] == "bm25" and negatives["counts"]["candidates_considered"] > 0
    check = negatives["false_negative_check"]
    assert check["hidden_positives"] > 0 and "filtered" in check and "unfiltered" in check
    # the gate
    (gate,) = ft["gates"]
    assert gate["status"] == "fail" and "required: +0.5" in gate["message"] and data["gates"] == ft["gates"]
    # training curve: base on the dev split, then both steps
    assert [e["step"] for e in ft["training"]["dev_curve"]] == [0.0, 1.0, 2.0]
    assert ft["training"]["steps"] == 2
    assert ft["tuned_model"]["fingerprint"] == content_fingerprint(out / "model")
    assert ft["base_model"]["fingerprint"] == content_fingerprint(tiny_model)


def test_tuned_model_reevaluated_independently(finished: tuple[int, Path, str]) -> None:
    """Load DIR/model with sentence-transformers, encode, score with pytrec_eval on the held-out ids."""
    pytrec_eval = pytest.importorskip("pytrec_eval")
    from sentence_transformers import SentenceTransformer

    _, out, _ = finished
    ft = json.loads((out / "results.json").read_text())["finetune"]
    corpus = [json.loads(line) for line in (GOLDEN / "corpus.jsonl").open()]
    queries = {json.loads(line)["_id"]: json.loads(line)["text"] for line in (GOLDEN / "queries.jsonl").open()}
    qrels: dict[str, dict[str, int]] = {}
    for line in (GOLDEN / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        q, d, s = line.split("\t")
        if q in ft["test_queries"]:
            qrels.setdefault(q, {})[d] = int(s)
    model = SentenceTransformer(str(out / "model"), device="cpu")
    docs = model.encode([f"{d['title']} {d['text']}" if d.get("title") else d["text"] for d in corpus],
                        normalize_embeddings=True)
    ids = list(qrels)
    qv = model.encode([queries[q] for q in ids], normalize_embeddings=True)
    scores = qv @ docs.T
    run = {q: {corpus[j]["_id"]: float(scores[i, j]) for j in np.argsort(-scores[i])[:100]} for i, q in enumerate(ids)}
    measured = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.10"}).evaluate(run)
    ndcg = float(np.mean([m["ndcg_cut_10"] for m in measured.values()]))
    recall = float(np.mean([m["recall_10"] for m in measured.values()]))
    assert ndcg == pytest.approx(ft["after"]["ndcg@10"], abs=0.002)
    assert recall == pytest.approx(ft["after"]["recall@10"], abs=0.002)


def test_model_card_and_report(finished: tuple[int, Path, str]) -> None:
    _, out, _ = finished
    ft = json.loads((out / "results.json").read_text())["finetune"]
    card = read_card(out / "model")
    assert card["base_model"] == ft["base_model"] and card["fingerprint"] == ft["tuned_model"]["fingerprint"]
    assert card["after"] == ft["after"] and card["seed"] == 0 and card["pairs"]["pairs"] == ft["pairs"]["pairs"]
    assert card["hyperparameters"]["learning_rate"] == 1e-3 and card["data_content_hash"]
    assert card["negatives"]["relative_margin"] == 0.05
    text = (out / "model" / "README.md").read_text()
    assert text.startswith("---\n")  # sentence-transformers' metadata header kept
    html = (out / "report.html").read_text()
    assert 'id="finetune"' in html and "Fine-tune: before → after" in html
    assert "chart-finetune-deltas" in html and "chart-finetune-curve" in html
    assert ft["verdict"].split(":")[0] in html
    md = (out / "report.md").read_text()
    assert "### Fine-tune: tiny → tiny-tuned on golden" in md and ft["verdict"].split(":")[0] in md


def test_a_report_without_finetune_has_no_section(tmp_path: Path) -> None:
    from evalsuite.config import load_suite
    from evalsuite.report import render_html
    from evalsuite.runner import RunOptions, run_suite

    suite = write(tmp_path, f"""
name: plain
metrics: [ndcg@10]
tasks: [{{name: golden, type: golden, path: {GOLDEN}}}]
retrievers: [{{name: bm25, type: bm25}}]
""")
    results = run_suite(load_suite(suite), RunOptions(output=tmp_path / "out", progress=False))
    html = render_html(results, tmp_path / "r.html").read_text()
    assert 'id="finetune"' not in html and "Fine-tune" not in html


def test_leaked_heldout_query_refuses_the_run_unless_overridden(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                                tiny_model: Path,
                                                                finished: tuple[int, Path, str]) -> None:
    _, out, _ = finished
    ft = json.loads((out / "results.json").read_text())["finetune"]
    queries = {json.loads(line)["_id"]: json.loads(line)["text"] for line in (GOLDEN / "queries.jsonl").open()}
    heldout = ft["test_queries"][0]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"query": "a harmless training query about wings", "positive": "text a"}) + "\n"
                     + json.dumps({"query": queries[heldout].upper(), "positive": "text b"}) + "\n")
    section = BASIC.replace("pairs: qrels", f"pairs: {{file: {pairs}}}\n  test_fraction: 0.5").replace(
        "  test_fraction: 0.5\n  dev", "  dev").replace("gates: [{metric: ndcg@10, min_gain: 0.5}]", "gates: []")
    section = section.replace("  negatives: {miner: bm25, top_k: 10, per_pair: 1, relative_margin: 0.05, "
                              "measure_false_negatives: true}\n", "").replace("max_steps: 2", "max_steps: 1")
    suite = write(tmp_path / "s", suite_text(tiny_model, tmp_path / "cache", section))
    code, _, err = run(capsys, "finetune", str(suite), "--output", str(tmp_path / "refused"), "-q")
    assert code == 2
    assert f"{pairs}: line 2: training query" in err and f"equals held-out query {heldout}" in err
    assert "--allow-leakage" in err and not (tmp_path / "refused" / "model").exists()
    code, outp, _ = run(capsys, "finetune", str(suite), "--output", str(tmp_path / "allowed"), "-q",
                        "--allow-leakage", "--no-report")
    assert code == 0
    assert "WARNING: trained with 1 leaked held-out queries" in outp
    leak = json.loads((tmp_path / "allowed" / "results.json").read_text())["finetune"]["leakage"]
    assert leak["override"] is True and leak["leaked_heldout_queries"] == 1
    assert read_card(tmp_path / "allowed" / "model")["leakage_override"] is True
    # drop_leaked: the leaking pair is dropped, the run trains on the rest, and says what it dropped
    dropping = write(tmp_path / "d", suite_text(tiny_model, tmp_path / "cache",
                                                section.replace("pairs: {file:", "drop_leaked: true\n  pairs: {file:")))
    code, outp, err = run(capsys, "finetune", str(dropping), "--output", str(tmp_path / "dropped"), "--no-report")
    assert code == 0, err
    ft = json.loads((tmp_path / "dropped" / "results.json").read_text())["finetune"]
    assert ft["leakage"]["dropped_pairs"] == 1 and ft["leakage"]["leaked_heldout_queries"] == 0
    assert ft["leakage"]["dropped"][0]["heldout_query_id"] == heldout and ft["leakage"]["dropped"][0]["line"] == 2
    assert ft["pairs"]["pairs"] == 1
    assert "dropped 1 training pairs" in err + outp


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("failure", ["interrupted in training", "disk full after training"])
def test_a_failed_rerun_leaves_the_earlier_finetune_whole(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                         tiny_model: Path, finished: tuple[int, Path, str],
                                                         monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    """A fine-tune into an earlier fine-tune's folder that fails midway leaves that folder byte-identical (no
    mix of new pairs.jsonl or model with old results.json) and no temporary folder beside it."""
    import evalsuite.finetune.train
    import evalsuite.runner

    out = tmp_path / "runs" / "DIR"
    shutil.copytree(finished[1], out)
    before = _files(out)
    # another seed: another split, so every file the new run writes differs from the old one
    suite = write(tmp_path / "s", suite_text(tiny_model, tmp_path / "cache", BASIC.replace("seed: 0", "seed: 5")))

    def interrupt(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    def disk_full(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device", str(out / "per_query.csv"))

    if failure.startswith("interrupted"):
        monkeypatch.setattr(evalsuite.finetune.train, "train_model", interrupt)
    else:
        monkeypatch.setattr(evalsuite.runner, "write_per_query", disk_full)
    code, _, err = run(capsys, "finetune", str(suite), "--output", str(out), "-q", "--no-progress")
    assert code == (130 if failure.startswith("interrupted") else 2), err
    assert _files(out) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["DIR"]  # no hidden temporary left beside it


def test_a_rerun_replaces_the_earlier_finetune_whole(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                     tiny_model: Path, finished: tuple[int, Path, str]) -> None:
    """A successful fine-tune into an earlier one's folder leaves none of the old files (no stale report.html
    next to new results when the rerun has --no-report), and records the final paths, not a temporary one."""
    out = tmp_path / "runs" / "DIR"
    shutil.copytree(finished[1], out)
    (out / "runs" / "golden__old-system.trec").write_text("stale\n")
    suite = write(tmp_path / "s", suite_text(tiny_model, tmp_path / "cache", BASIC.replace("seed: 0", "seed: 5")))
    code, _, err = run(capsys, "finetune", str(suite), "--output", str(out), "-q", "--no-progress", "--no-report")
    assert code == 1, err
    assert sorted(p.name for p in out.iterdir()) == ["details", "model", "pairs.jsonl", "per_query.csv",
                                                     "results.json", "runs"]
    assert not (out / "runs" / "golden__old-system.trec").exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["DIR"]
    text = (out / "results.json").read_text()
    assert ".partial" not in text
    data = json.loads(text)
    assert data["finetune"]["seed"] == 5 and data["finetune"]["model_path"] == str((out / "model").resolve())
    tuned = next(s for s in data["systems"] if s["name"] == "tiny-tuned")
    assert tuned["meta"]["model"] == str(out / "model")
    assert data["finetune"]["tuned_model"]["fingerprint"] == content_fingerprint(out / "model")


@pytest.mark.parametrize(("section", "message"), [
    (BASIC.replace("base: tiny", "base: bm25"), "suite.yaml:11: finetune.base: base 'bm25' is a bm25 retriever; "
                                                "fine-tuning needs a dense"),
    (BASIC.replace("base: tiny", "base: nope"), "finetune.base: base 'nope' is not a retriever of this suite"),
    (BASIC.replace("test_fraction: 0.5", "test_fraction: 1.0"), "finetune.test_fraction: test_fraction 1.0 with "
                                                                "pairs: qrels leaves no training query"),
    (BASIC.replace("miner: bm25", "miner: bm52"), "finetune.negatives.miner: miner 'bm52' is neither"),
    (BASIC.replace("loss: mnrl", "") + "  loss: mnlr\n", "finetune.loss"),
    (BASIC.replace("pairs: qrels", "pairs: {file: missing.jsonl}"), "missing.jsonl: training pairs file not found"),
    # refused when the suite loads, not mid-run with exit 3 (inf epochs) or after training (inf min_gain)
    (BASIC.replace("epochs: 1", "epochs: .inf"), "suite.yaml:18: finetune.epochs: Input should be a finite number"),
    (BASIC.replace("min_gain: 0.5", "min_gain: .inf"), "finetune.gates[0].min_gain: Input should be a finite number"),
    (BASIC.replace("seed: 0", "seed: -1"), "finetune.seed: Input should be greater than or equal to 0"),
    (BASIC.replace("pairs: qrels", "pairs: {file: /dev/zero}"), "/dev/zero: training pairs path is a device"),
])
def test_bad_finetune_sections_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                    tiny_model: Path, section: str, message: str) -> None:
    suite = write(tmp_path, suite_text(tiny_model, tmp_path / "cache", section))
    code, _, err = run(capsys, "finetune", str(suite), "--output", str(tmp_path / "out"), "-q")
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # the output folder this command made is removed again


def test_finetune_needs_a_section_and_a_usable_output(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                      tiny_model: Path) -> None:
    plain = write(tmp_path / "p", f"name: p\ntasks: [{{name: golden, type: golden, path: {GOLDEN}}}]\n"
                                  "retrievers: [{name: bm25, type: bm25}]\n")
    code, _, err = run(capsys, "finetune", str(plain), "--output", str(tmp_path / "o"))
    assert code == 2 and "has no 'finetune:' section" in err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    suite = write(tmp_path / "s", suite_text(tiny_model, tmp_path / "cache", BASIC))
    code, _, err = run(capsys, "finetune", str(suite), "--output", str(busy))
    assert code == 2 and "not empty and holds no earlier fine-tune" in err
    # a suite run's folder has a results.json too, but it is not replaced (the output is replaced whole)
    (busy / "results.json").write_text(json.dumps({"suite": "x", "results": []}))
    code, _, err = run(capsys, "finetune", str(suite), "--output", str(busy))
    assert code == 2 and "not empty and holds no earlier fine-tune" in err
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt", "results.json"]


def test_pairs_and_mine_negatives_commands(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "pairs", str(GOLDEN), "--from", "qrels", "--seed", "3", "-o", str(tmp_path / "p.jsonl"))
    assert code == 0 and "pairs from qrels" in out
    split = json.loads((tmp_path / "p.jsonl.split.json").read_text())
    assert split["seed"] == 3 and len(split["test_queries"]) == 25 and not set(split["test_queries"]) & set(
        split["train_queries"])
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert rows and list(rows[0]) == ["anchor", "positive"]
    code, out, _ = run(capsys, "mine-negatives", str(GOLDEN), "--pairs", str(tmp_path / "p.jsonl"), "--miner", "bm25",
                       "--top-k", "20", "--per-pair", "2", "--relative-margin", "0.05", "-o", str(tmp_path / "n.jsonl"))
    assert code == 0 and "relative_margin" in out
    mined = [json.loads(line) for line in (tmp_path / "n.jsonl").read_text().splitlines()]
    assert len(mined) == len(rows) and list(mined[0]) == ["anchor", "positive", "negative_1", "negative_2"]
    assert all(m["positive"] not in (m["negative_1"], m["negative_2"]) for m in mined)
    code, out, _ = run(capsys, "pairs", str(GOLDEN), "--from", "titles", "-o", str(tmp_path / "t.jsonl"))
    assert code == 0 and "anchor_in_positive_dropped" in out
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "x"}\n')
    code, _, err = run(capsys, "mine-negatives", str(GOLDEN), "--pairs", str(bad), "--miner", "bm25", "-o",
                       str(tmp_path / "x.jsonl"))
    assert code == 2 and f"{bad}:1: each record needs 'query'" in err
