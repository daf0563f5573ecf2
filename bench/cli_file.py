"""The whole ``evalsuite evaluate`` process on a big TREC file vs a plain pytrec_eval script.

Users run the command line on files, so this times complete processes, start-up included:

* ``evalsuite evaluate QRELS RUN -m ndcg@10 -m recall@100 -m map -m mrr@10 --format json``
* a plain Python script that reads the same files into dicts with ``pytrec_eval.parse_qrel``
  / ``parse_run`` and calls ``pytrec_eval.RelevanceEvaluator`` (ndcg_cut.10, recall.100,
  map, recip_rank: trec_eval has no MRR@10, recip_rank is the same work), then prints the
  means as JSON.

The two commands alternate, ``--repeat`` times each (median reported), as separate
processes. The files are generated first (seeded, 10,000 queries x 1,000 documents = 10M
run lines, no document twice in a query, scores with 4 decimals so that ties occur and
the tie-break is exercised; 5 judgements per query, at least one relevant, 3 of them
retrieved), in a temporary folder that is deleted afterwards unless ``--keep DIR`` is given
(then the files are written there once and reused).

The shared metrics (nDCG@10, recall@100, MAP) must agree to 1e-12 or the script fails.
Besides wall-clock medians it prints each command's CPU time (user + system, all threads,
from ``getrusage``): on a shared, oversubscribed machine that is the steadier figure.
It also times ``evalsuite --help`` and ``evalsuite metrics`` (median of 5 processes each)
and a bare ``python -c pass`` for reference.

    python bench/cli_file.py [--queries 10000] [--depth 1000] [--repeat 3] [--keep /tmp/clifile]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _bytecode import compile_package  # bench/ is on sys.path when run as a script

REPO = Path(__file__).resolve().parents[1]
METRICS = ("ndcg@10", "recall@100", "map", "mrr@10")
SHARED = {"ndcg@10": "ndcg_cut_10", "recall@100": "recall_100", "map": "map"}

PYTREC_SCRIPT = r"""
import json, sys
import pytrec_eval
with open(sys.argv[1]) as fh:
    qrels = pytrec_eval.parse_qrel(fh)
with open(sys.argv[2]) as fh:
    run = pytrec_eval.parse_run(fh)
evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100", "map", "recip_rank"})
per_query = evaluator.evaluate(run)
keys = ("ndcg_cut_10", "recall_100", "map", "recip_rank")
print(json.dumps({k: sum(v[k] for v in per_query.values()) / len(per_query) for k in keys}))
"""


def generate(folder: Path, n_queries: int, depth: int, seed: int = 0) -> tuple[Path, Path]:
    """Write ``bench.qrels`` and ``bench.run`` (TREC) into ``folder`` with pyarrow's CSV writer."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    qrels_path, run_path = folder / "bench.qrels", folder / "bench.run"
    if qrels_path.exists() and run_path.exists():
        return qrels_path, run_path
    rng = np.random.default_rng(seed)
    n_docs = 2_000_000
    options = pacsv.WriteOptions(include_header=False, delimiter=" ", quoting_style="none")
    q = np.repeat(np.arange(n_queries, dtype=np.int64), depth)
    j = np.tile(np.arange(depth, dtype=np.int64), n_queries)
    doc_numbers = (q * 7919 + j * 104729) % n_docs  # distinct within a query (104729 is prime)
    scores = np.round(rng.random(n_queries * depth) * 20.0, 4)
    qid = pc.binary_join_element_wise("Q", pa.array(q).cast(pa.string()), "")
    did = pc.binary_join_element_wise("D", pa.array(doc_numbers).cast(pa.string()), "")
    table = pa.table({"q": qid, "q0": pa.array(np.full(len(q), "Q0", dtype=object)), "d": did,
                      "rank": pa.array(j + 1), "score": pa.array(scores), "tag": pa.array(["bench"] * len(q))})
    pacsv.write_csv(table, str(run_path) + ".tmp", options)
    os.replace(str(run_path) + ".tmp", run_path)
    # qrels: 5 judgements per query, 3 of them retrieved; the first is relevant so that no query is empty
    lines: list[str] = []
    for qi in range(n_queries):
        picked = rng.choice(depth, size=3, replace=False)
        docs = [int((qi * 7919 + int(p) * 104729) % n_docs) for p in picked]
        for n in rng.integers(0, n_docs, size=4).tolist():
            if len(docs) == 5:
                break
            if n not in docs:
                docs.append(n)
        grades = [int(rng.integers(1, 4))] + [int(g) for g in rng.integers(0, 4, size=len(docs) - 1)]
        lines.extend(f"Q{qi} 0 D{d} {g}\n" for d, g in zip(docs, grades))
    qrels_path.write_text("".join(lines))
    return qrels_path, run_path


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str]) -> tuple[float, str, float]:
    """Wall seconds, stdout and CPU seconds (user + system, all threads) of one process."""
    cpu = _child_cpu()
    began = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=REPO)
    seconds = time.perf_counter() - began
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv[:4])} ... failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return seconds, proc.stdout, _child_cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--depth", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="folder to write the files to once and reuse (not deleted)")
    parser.add_argument("--skip-peer", action="store_true", help="time evalsuite only (no pytrec_eval runs)")
    args = parser.parse_args()

    print(compile_package())
    tmp = None
    if args.keep:
        folder = args.keep
        folder.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.mkdtemp(prefix="evalsuite-cli-file-")
        folder = Path(tmp)
    try:
        began = time.perf_counter()
        qrels_path, run_path = generate(folder, args.queries, args.depth)
        print(f"files: {run_path.stat().st_size / 1e6:.0f} MB run ({args.queries * args.depth:,} lines), "
              f"{qrels_path.stat().st_size / 1e6:.1f} MB qrels; ready in {time.perf_counter() - began:.1f} s")
        ours_argv = [sys.executable, "-m", "evalsuite", "evaluate", str(qrels_path), str(run_path),
                     *(x for m in METRICS for x in ("-m", m)), "--format", "json"]
        peer_argv = [sys.executable, "-c", PYTREC_SCRIPT, str(qrels_path), str(run_path)]
        ours_times, peer_times, ours_cpu, peer_cpu = [], [], [], []
        ours_out = peer_out = ""
        for _ in range(args.repeat):
            seconds, ours_out, cpu = timed(ours_argv)
            ours_times.append(seconds)
            ours_cpu.append(cpu)
            if not args.skip_peer:
                seconds, peer_out, cpu = timed(peer_argv)
                peer_times.append(seconds)
                peer_cpu.append(cpu)

        ours = json.loads(ours_out)["runs"][0]["aggregate"]
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
              f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"{'command':34} {'median s':>9} {'cpu s':>7}  runs (wall s)")
        print(f"{'evalsuite evaluate':34} {statistics.median(ours_times):9.2f} {statistics.median(ours_cpu):7.2f}  "
              + " ".join(f"{t:.2f}" for t in ours_times))
        if peer_times:
            theirs = json.loads(peer_out)
            print(f"{'pytrec_eval script':34} {statistics.median(peer_times):9.2f} {statistics.median(peer_cpu):7.2f}  "
                  + " ".join(f"{t:.2f}" for t in peer_times))
            for metric, key in SHARED.items():
                agree = abs(ours[metric] - theirs[key]) <= 1e-12
                print(f"  {metric:11} evalsuite {ours[metric]:.12f}  pytrec_eval {theirs[key]:.12f}  "
                      f"{'identical' if agree else 'DIFFERENT'}")
                if not agree:
                    sys.exit(f"{metric}: evalsuite and pytrec_eval disagree")
            print(f"  mrr@10      evalsuite {ours['mrr@10']:.12f}  (pytrec_eval recip_rank "
                  f"{theirs['recip_rank']:.12f}: no cutoff, not comparable)")
            ratio = statistics.median(peer_times) / statistics.median(ours_times)
            cpu_ratio = statistics.median(peer_cpu) / statistics.median(ours_cpu)
            print(f"evalsuite evaluate is {ratio:.2f}x faster than the pytrec_eval script "
                  f"(wall clock; {cpu_ratio:.2f}x less CPU time)")

        for label, argv in (("evalsuite --help", [sys.executable, "-m", "evalsuite", "--help"]),
                            ("evalsuite metrics", [sys.executable, "-m", "evalsuite", "metrics"]),
                            ("python -c pass", [sys.executable, "-c", "pass"])):
            runs = [timed(argv) for _ in range(5)]
            times = [r[0] for r in runs]
            print(f"{label:34} {statistics.median(times):9.3f} {statistics.median(r[2] for r in runs):7.3f}  "
                  + " ".join(f"{t:.3f}" for t in times))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
