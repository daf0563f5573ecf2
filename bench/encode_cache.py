"""Embedding cache: a cold and a warm run of the dense retriever on Cranfield, one process.

Both runs build a fresh :class:`~evalsuite.retrievers.dense.DenseRetriever` (default model,
exact cosine) on the same, initially empty, cache folder, then index the 1,400 documents and
search the 225 queries (k=100). The cold run encodes everything; the warm run should encode
nothing (0 documents, 0 queries) and never open the model, so it should be >= 20x faster.
Each timed run covers building the retriever, ``index`` and ``search``.

To time what a new process would pay, the in-process memo of model file hashes is cleared
before the warm run (the fingerprint of the weights is hashed again, as it would be in a
fresh process). The ONNX export of the default model (made once per machine, kept in its
own folder) is done before the cold run and timed separately: the cold figure is the
encoding cost of a new corpus, not the one-time export.

Usage: python bench/encode_cache.py [--data ../shared/data/cranfield] [--backend auto]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
TARGET = 20.0  # warm must be at least this many times faster than cold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("EVALSUITE_DATA_DIR",
                                                                         REPO.parent / "shared" / "data"))
                        / "cranfield")
    parser.add_argument("--backend", default="auto", choices=["auto", "onnx", "sentence-transformers"])
    args = parser.parse_args()

    from evalsuite import evaluate
    from evalsuite.io import read_beir
    from evalsuite.models import _hash_file
    from evalsuite.retrievers.dense import DenseRetriever

    data = read_beir(args.data)
    root = Path(tempfile.mkdtemp(prefix="evalsuite-bench-cache-"))
    cache_dir, export_dir = root / "cache", root / "onnx"
    try:
        began = time.perf_counter()
        probe = DenseRetriever(backend=args.backend, cache=False, export_dir=export_dir, progress=False)
        probe.encoder.encode(["warm up: export the model and open it"], kind="document")
        setup_seconds = time.perf_counter() - began
        del probe

        results = []
        for label in ("cold", "warm"):
            if label == "warm":
                _hash_file.cache_clear()  # hash the weights again, as a new process would
            began = time.perf_counter()
            retriever = DenseRetriever(backend=args.backend, cache_dir=cache_dir, export_dir=export_dir,
                                       progress=False)
            retriever.index(data.corpus)
            run = retriever.search(data.queries, k=100)
            seconds = time.perf_counter() - began
            encoder = retriever.encoder
            loaded = getattr(encoder, "_session", None) is not None or getattr(encoder, "_model", None) is not None
            scores = evaluate(data.qrels, run, ["ndcg@10", "recall@100"])
            results.append((label, seconds, retriever.stats, loaded, run.to_dict(), scores))

        print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs; Cranfield: {len(data.corpus)} documents, "
              f"{len(data.queries)} queries; retriever: {retriever.meta.label}")
        print(f"one-time model set-up (ONNX export / load, before the cold run, not timed in it): "
              f"{setup_seconds:.1f} s")
        print()
        print(f"{'run':<5} {'seconds':>8} {'docs encoded':>13} {'from cache':>11} {'queries encoded':>16} "
              f"{'model loaded':>13} {'nDCG@10':>8} {'R@100':>7}")
        for label, seconds, stats, loaded, _, scores in results:
            print(f"{label:<5} {seconds:8.3f} {int(stats['docs_encoded']):>13} {int(stats['docs_from_cache']):>11} "
                  f"{int(stats['queries_encoded']):>16} {loaded!s:>13} {scores['ndcg@10']:8.4f} "
                  f"{scores['recall@100']:7.4f}")
        (_, cold, *_), (_, warm, warm_stats, _, warm_run, _) = results
        ratio = cold / warm
        same = warm_run == results[0][4]
        print()
        print(f"warm run: {int(warm_stats['docs_encoded'])} documents encoded; {ratio:.1f}x faster than cold "
              f"(target >= {TARGET:.0f}x: {'met' if ratio >= TARGET else 'NOT met'}); identical run: {same}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
