"""The fine-tune loop on Cranfield: before/after on held-out queries, three configurations.

    python bench/finetune.py [--data DIR] [--configs inbatch,hard,titles] [--epochs 1] [--threads N]

Each configuration runs ``evalsuite.finetune.run_finetune`` on a suite with the packaged
all-MiniLM-L6-v2 (``minilm``) as the base and BM25 beside it, and prints base vs tuned nDCG@10
and recall@10 on the held-out queries with the gain's 95% bootstrap CI and the paired
randomization p-value, plus the wall time:

* ``inbatch``: pairs from the qrels of a seeded 50/50 query split, MNRL with in-batch negatives only;
* ``hard``: the same pairs with one mined hard negative each (the base model as miner, top 50,
  TopK-PercPos relative margin 0.05 below the anchor's weakest positive, sentence-transformers'
  convention) and the measured false-negative rate of that filter (half of each training
  query's judged positives hidden from the miner);
* ``hardpair``: as ``hard``, the margin taken from each pair's own positive;
* ``titles``: title -> body pairs from the corpus (no labels), all 225 queries held out; pairs
  whose title (nearly) equals a held-out query are dropped (``drop_leaked``).

One MNRL epoch, batch 32, learning rate 3e-5 (``--learning-rate``), warm-up 10%, seed 0 (the figures of
``../shared/FINETUNE.md``). Configurations run one after another; the machine's load average
is printed beside every timing. Output folders go under ``--work`` (default: a temp folder).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONFIGS = {
    "inbatch": "  pairs: qrels\n",
    "hard": "  pairs: qrels\n  negatives: {miner: minilm, top_k: 50, per_pair: 1, relative_margin: 0.05, "
            "measure_false_negatives: true}\n",
    "hardpair": "  pairs: qrels\n  negatives: {miner: minilm, top_k: 50, per_pair: 1, relative_margin: 0.05, "
                "positive_score: pair, measure_false_negatives: true}\n",
    "titles": "  pairs: titles\n  test_fraction: 1.0\n  drop_leaked: true\n",
}


def suite_yaml(data: Path, cache: Path, config: str, epochs: float, learning_rate: float) -> str:
    return f"""
name: finetune-bench
metrics: [ndcg@10, recall@10, recall@100]
cache_dir: {cache}
tasks:
  - {{name: cranfield, type: beir, path: {data}}}
retrievers:
  - {{name: minilm, type: dense}}
  - {{name: bm25, type: bm25}}
finetune:
  base: minilm
  task: cranfield
  seed: 0
{CONFIGS[config]}  epochs: {epochs}
  batch_size: 32
  learning_rate: {learning_rate}
  warmup_ratio: 0.1
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    shared = next((p / "shared" for p in REPO.parents if (p / "shared" / "data").is_dir()), REPO.parent / "shared")
    default_data = Path(os.environ.get("EVALSUITE_DATA_DIR", shared / "data")) / "cranfield"
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--configs", default="inbatch,hard,titles")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--learning-rate", type=float, default=3.0e-5)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    parser.add_argument("--work", type=Path, help="folder for the outputs (default: a temp folder)")
    args = parser.parse_args()
    if not (args.data / "corpus.jsonl").is_file():
        print(f"Cranfield not found at {args.data}", file=sys.stderr)
        return 2
    import torch

    from evalsuite.config import load_suite
    from evalsuite.finetune.loop import run_finetune

    if args.threads:
        torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="evalsuite-finetune-bench-"))
    rows = []
    for name in args.configs.split(","):
        folder = work / name
        folder.mkdir(parents=True, exist_ok=True)
        suite_file = folder / "suite.yaml"
        suite_file.write_text(suite_yaml(args.data.resolve(), work / "cache", name, args.epochs,
                                         args.learning_rate))
        load_before = os.getloadavg()[0]
        began = time.perf_counter()
        outcome = run_finetune(load_suite(suite_file), folder / "out", progress=False,
                               on_event=lambda line: print(f"  [{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr))
        wall = time.perf_counter() - began
        ft = outcome.finetune
        row = {"config": name, "pairs": ft["pairs"]["pairs"], "test_queries": len(ft["test_queries"]),
               "train_queries": len(ft["train_queries"]), "wall_s": wall, "learning_rate": args.learning_rate,
               "training_s": ft["training"]["seconds"], "steps": ft["training"]["steps"],
               "load_before": load_before, "load_after": os.getloadavg()[0], "torch_threads": torch.get_num_threads(),
               "gain": ft["gain"], "verdict": ft["verdict"], "output": str(folder / "out")}
        if ft.get("negatives"):
            row["negatives"] = ft["negatives"]["counts"]
            row["false_negative_check"] = {k: ft["negatives"]["false_negative_check"][k]
                                           for k in ("queries", "hidden_positives", "unfiltered", "filtered")
                                           if k in ft["negatives"]["false_negative_check"]}
        rows.append(row)
        print(json.dumps(row, default=str), flush=True)
    print("\nconfig   pairs  held-out  nDCG@10 base -> tuned (gain [95% CI], p)          "
          "R@10 base -> tuned (gain, p)          train s  wall s  load")
    for r in rows:
        n, rc = r["gain"]["ndcg@10"], r["gain"]["recall@10"]
        print(f"{r['config']:8} {r['pairs']:5}  {r['test_queries']:8}  {n['before']:.4f} -> {n['after']:.4f} "
              f"({n['delta']:+.4f} [{n['ci_low']:+.4f}, {n['ci_high']:+.4f}], p={n['p_value']:.4f})  "
              f"{rc['before']:.4f} -> {rc['after']:.4f} ({rc['delta']:+.4f}, p={rc['p_value']:.4f})  "
              f"{r['training_s']:7.0f}  {r['wall_s']:6.0f}  {r['load_before']:.1f}")
    for r in rows:
        check = r.get("false_negative_check")
        if check:
            for label in ("unfiltered", "filtered"):
                c = check.get(label)
                if c:
                    print(f"false negatives ({r['config']}, {label}): {c['hidden_sampled_as_negative']} of "
                          f"{c['negatives_sampled']} sampled negatives are hidden positives "
                          f"(rate {c['false_negative_rate']:.3f}); hidden positives in the top 50: "
                          f"{c['hidden_in_top_k']} of {check['hidden_positives']}, left after filters: "
                          f"{c['hidden_left_after_filters']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
