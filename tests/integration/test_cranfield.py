"""Real data: Cranfield 1400 read by the BEIR reader, and a fixture-written run evaluated
on it agrees with pytrec-eval-terrier per query."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import pytrec_eval

from evalsuite import Run, evaluate
from evalsuite.io import read_beir, read_run, write_run


def test_cranfield_reads_in_full(cranfield_dir: Path) -> None:
    data = read_beir(cranfield_dir)
    assert (len(data.corpus), len(data.queries), data.qrels.n_rows) == (1400, 225, 1837)
    assert Counter(data.qrels.grades.tolist()).keys() <= {0, 1, 2, 3, 4}
    assert set(data.qrels.query_ids.tolist()) <= set(data.queries.ids.tolist())
    assert all(d in data.corpus for d in data.qrels.doc_ids.tolist())


@pytest.fixture(scope="module")
def tfidf_run_file(cranfield_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TF-IDF cosine run (top 100), scores rounded to 3 decimals so that many ties occur."""
    data = read_beir(cranfield_dir)
    token = re.compile(r"[a-z]{3,}")
    docs = [token.findall(t.lower()) for t in data.corpus.contents()]
    vocab = {w: i for i, w in enumerate(sorted({w for d in docs for w in d}))}
    tf = np.zeros((len(docs), len(vocab)))
    for row, words in enumerate(docs):
        for w, c in Counter(words).items():
            tf[row, vocab[w]] = c
    idf = np.log(len(docs) / (1 + (tf > 0).sum(axis=0)))
    doc_vecs = tf * idf
    doc_vecs /= np.linalg.norm(doc_vecs, axis=1, keepdims=True) + 1e-12
    results = {}
    for qid, text in zip(data.queries.ids.tolist(), data.queries.texts.tolist()):
        q = np.zeros(len(vocab))
        for w in token.findall(text.lower()):
            if w in vocab:
                q[vocab[w]] += idf[vocab[w]]
        sims = doc_vecs @ (q / (np.linalg.norm(q) + 1e-12))
        top = np.argsort(-sims)[:100]
        results[qid] = {data.corpus.ids[i]: round(float(sims[i]), 3) for i in top}
    path = tmp_path_factory.mktemp("cranfield") / "tfidf.trec"
    write_run(Run(results, name="tfidf"), path)
    return path


def test_fixture_run_agrees_with_pytrec_eval(cranfield_dir: Path, tfidf_run_file: Path) -> None:
    data = read_beir(cranfield_dir)
    run = read_run(tfidf_run_file)
    metrics = {"ndcg@10": "ndcg_cut_10", "ndcg": "ndcg", "recall@100": "recall_100", "map": "map",
               "P@10": "P_10", "mrr": "recip_rank", "rprec": "Rprec", "success@5": "success_5",
               "map@100": "map_cut_100"}
    ours = evaluate(data.qrels, run, list(metrics))
    with open(tfidf_run_file) as fh:
        trec_run = pytrec_eval.parse_run(fh)
    measures = {"ndcg_cut.10", "ndcg", "recall.100", "map", "P.10", "recip_rank", "Rprec", "success.5",
                "map_cut.100"}
    theirs = pytrec_eval.RelevanceEvaluator(data.qrels.to_dict(), measures).evaluate(trec_run)
    assert ours.excluded_queries == () and ours.missing_queries == ()
    assert len(theirs) == 225
    for metric, key in metrics.items():
        for q, values in theirs.items():
            assert ours.per_query.loc[q, metric] == pytest.approx(values[key], abs=1e-12), (metric, q)
        assert ours[metric] == pytest.approx(np.mean([v[key] for v in theirs.values()]), abs=1e-12)
    assert 0.2 < ours["ndcg@10"] < 0.5  # a sane lexical baseline on Cranfield
