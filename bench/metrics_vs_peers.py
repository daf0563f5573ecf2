"""evalsuite's metrics engine vs pytrec_eval, ranx and ir_measures, side by side in one process.

A synthetic run of 10,000 queries x 1,000 docs (10M rows, float64 scores) with graded
qrels (20 judgements per query, grades 0-3, about 12 of them retrieved) is evaluated on
nDCG@10, recall@100, MAP and MRR@10 by every tool:

1. from Python dicts (conversion included: each tool gets the same dicts),
2. from an already-loaded columnar run (evalsuite only: the Run object exists, its
   caches are cold -- this is the first evaluation of that object),
3. from a TREC run file on disk (parsing included).

ranx is warmed up first (its numba kernels compile on first use). pytrec_eval has no
MRR@10, so it computes recip_rank (same work). Every tool's aggregates are printed so
that agreement can be read off, and the ratios are printed at the end.

Usage: python bench/metrics_vs_peers.py [--queries 10000] [--depth 1000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def make_data(n_queries: int, depth: int, seed: int = 0) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    n_docs = 2_000_000
    run: dict[str, dict[str, float]] = {}
    qrels: dict[str, dict[str, int]] = {}
    j = np.arange(depth, dtype=np.int64)
    for q in range(n_queries):
        doc_numbers = (q * 7919 + j * 104729) % n_docs  # distinct within a query
        docs = [f"D{n}" for n in doc_numbers.tolist()]
        scores = rng.random(depth) * 20.0
        run[f"Q{q}"] = dict(zip(docs, scores.tolist()))
        retrieved = rng.choice(depth, size=12, replace=False)
        judged = {docs[i]: int(rng.integers(0, 4)) for i in retrieved.tolist()}
        for n in rng.integers(0, n_docs, size=8).tolist():
            judged.setdefault(f"D{n}", int(rng.integers(0, 4)))
        qrels[f"Q{q}"] = judged
    return qrels, run


def write_trec_files(qrels: dict, run: dict, folder: Path) -> tuple[Path, Path]:
    run_path, qrels_path = folder / "bench.run", folder / "bench.qrels"
    with open(run_path, "w") as fh:
        for q, docs in run.items():
            fh.writelines(f"{q} Q0 {d} {r} {s!r} bench\n" for r, (d, s) in enumerate(docs.items(), 1))
    with open(qrels_path, "w") as fh:
        for q, docs in qrels.items():
            fh.writelines(f"{q} 0 {d} {g}\n" for d, g in docs.items())
    return run_path, qrels_path


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


METRICS = ("ndcg@10", "recall@100", "map", "mrr@10")
TREC_MEASURES = {"ndcg_cut.10", "recall.100", "map", "recip_rank"}
TREC_KEYS = {"ndcg@10": "ndcg_cut_10", "recall@100": "recall_100", "map": "map", "mrr(no cutoff)": "recip_rank"}
Timings = dict[str, tuple[float, dict[str, float]]]


def pytrec_means(per_query: dict[str, dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([v[key] for v in per_query.values()])) for k, key in TREC_KEYS.items()}


def ir_measures_list() -> list[Any]:
    import ir_measures

    return [ir_measures.nDCG @ 10, ir_measures.R @ 100, ir_measures.AP, ir_measures.RR @ 10]


def warm_up(qrels: dict, run: dict) -> None:
    """ranx compiles its numba kernels on first use; every tool loads its lazy parts."""
    import ir_measures
    import ranx

    import evalsuite

    small_q = dict(list(qrels.items())[:50])
    small_r = {q: run[q] for q in small_q}
    ranx.evaluate(ranx.Qrels(small_q), ranx.Run(small_r), list(METRICS))
    evalsuite.evaluate(small_q, small_r, METRICS)
    ir_measures.calc_aggregate(ir_measures_list(), small_q, small_r)


def bench_dicts(qrels: dict, run: dict, repeat: int) -> Timings:
    import ir_measures
    import pytrec_eval
    import ranx

    import evalsuite

    tools: dict[str, Callable[[], dict[str, float]]] = {
        "evalsuite": lambda: evalsuite.evaluate(qrels, run, METRICS).aggregate,
        "pytrec_eval": lambda: pytrec_means(pytrec_eval.RelevanceEvaluator(qrels, TREC_MEASURES).evaluate(run)),
        "ranx": lambda: dict(ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), list(METRICS))),
        "ir_measures": lambda: {str(k): v for k, v in
                                ir_measures.calc_aggregate(ir_measures_list(), qrels, run).items()},
    }
    return {name: timed(fn, repeat) for name, fn in tools.items()}


def bench_columnar(run_path: Path, qrels_path: Path, repeat: int) -> Timings:
    import evalsuite
    from evalsuite.io import read_qrels, read_run

    qrels = read_qrels(qrels_path)
    times, aggregate = [], {}
    for _ in range(repeat):
        run = read_run(run_path)  # a fresh object each time: its caches are cold
        gc.collect()
        start = time.perf_counter()
        aggregate = evalsuite.evaluate(qrels, run, METRICS).aggregate
        times.append(time.perf_counter() - start)
        del run
    return {"evalsuite": (statistics.median(times), aggregate)}


def bench_files(run_path: Path, qrels_path: Path, repeat: int) -> Timings:
    import ir_measures
    import pytrec_eval
    import ranx

    import evalsuite
    from evalsuite.io import read_qrels, read_run

    def pytrec_file() -> dict[str, float]:
        with open(qrels_path) as fq, open(run_path) as fr:
            q, r = pytrec_eval.parse_qrel(fq), pytrec_eval.parse_run(fr)
        return pytrec_means(pytrec_eval.RelevanceEvaluator(q, TREC_MEASURES).evaluate(r))

    def ranx_file() -> dict[str, float]:
        q = ranx.Qrels.from_file(str(qrels_path), kind="trec")
        r = ranx.Run.from_file(str(run_path), kind="trec")
        return dict(ranx.evaluate(q, r, list(METRICS)))

    def ir_measures_file() -> dict[str, float]:
        q = ir_measures.read_trec_qrels(str(qrels_path))
        r = ir_measures.read_trec_run(str(run_path))
        return {str(k): v for k, v in ir_measures.calc_aggregate(ir_measures_list(), q, r).items()}

    tools: dict[str, Callable[[], dict[str, float]]] = {
        "evalsuite": lambda: evalsuite.evaluate(read_qrels(qrels_path), read_run(run_path), METRICS).aggregate,
        "pytrec_eval": pytrec_file,
        "ranx": ranx_file,
        "ir_measures": ir_measures_file,
    }
    return {name: timed(fn, repeat) for name, fn in tools.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--depth", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per tool; the median is reported")
    args = parser.parse_args()

    from importlib.metadata import version

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"numpy {np.__version__}; evalsuite {version('evalsuite')}, "
          f"pytrec-eval-terrier {version('pytrec-eval-terrier')}, ranx {version('ranx')}, "
          f"ir_measures {version('ir-measures')}; median of {args.repeat} timed runs")
    t0 = time.perf_counter()
    qrels, run = make_data(args.queries, args.depth)
    print(f"data: {len(run):,} queries, {sum(map(len, run.values())):,} run rows, "
          f"{sum(map(len, qrels.values())):,} judgements (generated in {time.perf_counter() - t0:.1f}s)")
    warm_up(qrels, run)
    results: dict[str, Timings] = {"dicts": bench_dicts(qrels, run, args.repeat)}
    with tempfile.TemporaryDirectory() as tmp:
        run_path, qrels_path = write_trec_files(qrels, run, Path(tmp))
        del run, qrels
        gc.collect()
        results["columnar"] = bench_columnar(run_path, qrels_path, args.repeat)
        results["file"] = bench_files(run_path, qrels_path, args.repeat)

    print()
    print(f"{'input':<10} {'tool':<12} {'seconds':>8}   aggregates")
    for kind, tools in results.items():
        for tool, (seconds, agg) in tools.items():
            shown = ", ".join(f"{k}={v:.6f}" for k, v in agg.items())
            print(f"{kind:<10} {tool:<12} {seconds:>8.2f}   {shown}")
    print()
    for kind, label in (("dicts", "from dicts"), ("file", "from a TREC run file")):
        ours = results[kind]["evalsuite"][0]
        for tool in ("pytrec_eval", "ranx", "ir_measures"):
            print(f"{label}: evalsuite is {results[kind][tool][0] / ours:.1f}x faster than {tool}")
    print(f"metrics from an already-loaded columnar run (first evaluation of the object): "
          f"{results['columnar']['evalsuite'][0]:.2f}s")


if __name__ == "__main__":
    main()
