"""`evalsuite evaluate` on TREC files prints what trec_eval (pytrec-eval-terrier) computes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytrec_eval

from evalsuite.cli import main

GOLDEN = Path(__file__).resolve().parents[2] / "golden_sets" / "cranfield-50"
PAIRS = {"ndcg@10": "ndcg_cut_10", "recall@100": "recall_100", "map": "map", "P@5": "P_5", "rprec": "Rprec",
         "mrr": "recip_rank", "success@1": "success_1", "ndcg": "ndcg"}


@pytest.mark.parametrize("run_name", ["bm25", "minilm"])
def test_cli_per_query_equals_trec_eval(capsys: pytest.CaptureFixture[str], run_name: str) -> None:
    qrels_path, run_path = GOLDEN / "qrels" / "test.tsv", GOLDEN / "runs" / f"{run_name}.trec"
    argv = ["evaluate", str(qrels_path), str(run_path), "-q", "--format", "json"]
    for metric in PAIRS:
        argv += ["-m", metric]
    assert main(argv) == 0
    ours = json.loads(capsys.readouterr().out)["runs"][0]

    lines = qrels_path.read_text().splitlines()[1:]
    qrels: dict[str, dict[str, int]] = {}
    for line in lines:
        q, d, g = line.split("\t")
        qrels.setdefault(q, {})[d] = int(g)
    with open(run_path) as fh:
        run = pytrec_eval.parse_run(fh)
    theirs = pytrec_eval.RelevanceEvaluator(qrels, set(PAIRS.values()) - {"ndcg_cut_10", "recall_100", "P_5",
                                                                          "success_1"}
                                            | {"ndcg_cut.10", "recall.100", "P.5", "success.1"}).evaluate(run)
    for metric, key in PAIRS.items():
        for q, values in theirs.items():
            assert ours["per_query"][q][metric] == pytest.approx(values[key], abs=1e-12), (metric, q)
        mean = sum(v[key] for v in theirs.values()) / len(theirs)
        assert ours["aggregate"][metric] == pytest.approx(mean, abs=1e-12)
