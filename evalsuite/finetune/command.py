"""The ``evalsuite finetune``, ``evalsuite pairs`` and ``evalsuite mine-negatives`` subcommands
(registered by :mod:`evalsuite.cli`).

* ``evalsuite finetune SUITE.yaml --output DIR``: the suite's ``finetune:`` loop
  (:mod:`evalsuite.finetune.loop`); exit 0, 1 when a ``min_gain`` gate fails, 2 on bad input
  (including training pairs that leak held-out queries, unless ``--allow-leakage``).
* ``evalsuite pairs TASK --from qrels|titles -o pairs.jsonl``: training pairs with the split
  discipline, for users who train elsewhere; writes the pairs and ``<output>.split.json``
  (train / dev / held-out query ids and the seed).
* ``evalsuite mine-negatives TASK --pairs pairs.jsonl -o out.jsonl``: hard negatives for a pairs
  file (or pairs built from the task), with the false-negative filters.

TASK is a golden set (folder or file) or a BEIR folder, as for ``check-leakage``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from evalsuite._cliargs import add_suite_run_options, add_task_source, seed
from evalsuite.errors import ConfigError

__all__ = ["add_finetune_parsers"]


def add_finetune_parsers(sub: Any) -> None:
    """Register ``finetune``, ``pairs`` and ``mine-negatives`` on the ``evalsuite`` subparsers."""
    p = sub.add_parser(
        "finetune", help="fine-tune a suite's dense model on its data and measure the gain on held-out queries",
        description="Run the 'finetune:' section of a suite: split the task's queries (seeded, by query), build "
        "training pairs, refuse leaked held-out queries, mine hard negatives, train with sentence-transformers, "
        "and compare base vs tuned (and the suite's other systems) on the held-out queries with a bootstrap CI "
        "and a paired randomization test. Writes DIR/model, DIR/pairs.jsonl, DIR/results.json, DIR/report.html. "
        "Exit 1 when a min_gain gate fails.")
    p.add_argument("suite", help="suite YAML with a 'finetune:' section")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder (new, empty, or an earlier "
                   "fine-tune's folder)")
    p.add_argument("--allow-leakage", action="store_true",
                   help="train even when training pairs hold held-out queries (the results and report say so)")
    p.add_argument("--device", help="torch device for training (default: CUDA when available, else CPU)")
    add_suite_run_options(p)
    p.set_defaults(handler=cmd_finetune)

    p = sub.add_parser("pairs", help="training pairs from a task's qrels or titles, split by query",
                       description="Write training pairs (JSONL, sentence-transformers columns anchor, positive) "
                       "from the training queries of a seeded split by query (pairs from qrels), or title -> body "
                       "pairs (no labels; the title never inside its body), and the split as "
                       "<output>.split.json.")
    add_task_source(p)
    p.add_argument("--from", dest="source", choices=("qrels", "titles"), default="qrels")
    p.add_argument("--test-fraction", type=float, help="held-out share of the judged queries (default: 0.5 for "
                   "qrels, 1.0 for titles)")
    p.add_argument("--dev-fraction", type=float, default=0.0)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--min-grade", type=int, default=1)
    p.add_argument("-o", "--output", required=True, help="pairs file to write (.jsonl)")
    p.set_defaults(handler=cmd_pairs)

    p = sub.add_parser("mine-negatives", help="add hard negatives to training pairs, with false-negative filters",
                       description="Mine hard negatives for a pairs file (or the task's qrels pairs) with any "
                       "retriever, drop known positives, filter likely false negatives (skip top ranks, absolute / "
                       "relative margin below the positive, max score, cross-encoder), sample per pair with a seed, "
                       "and write JSONL in sentence-transformers columns anchor, positive, negative_1..n.")
    add_task_source(p, role="the corpus to mine from")
    p.add_argument("--pairs", help="pairs file (JSONL/CSV/TSV); default: pairs from the task's qrels of the "
                   "training queries of a seeded split (see --test-fraction)")
    p.add_argument("--test-fraction", type=float, default=0.5, help="with pairs from qrels: held-out share")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--miner", default="dense", help="retriever type (default: dense)")
    p.add_argument("--model", help="model of the dense miner (default: the packaged all-MiniLM-L6-v2)")
    p.add_argument("--top-k", type=int, default=50)
    p.add_argument("--per-pair", type=int, default=1)
    p.add_argument("--skip-top", type=int, default=0)
    p.add_argument("--absolute-margin", type=float)
    p.add_argument("--relative-margin", type=float)
    p.add_argument("--max-score", type=float)
    p.add_argument("--cross-encoder", help="cross-encoder model folder or hub id for re-scoring candidates")
    p.add_argument("--strategy", choices=("top", "random"), default="top")
    p.add_argument("--fill", choices=("random", "drop"), default="random")
    p.add_argument("--positive-score", choices=("weakest", "pair"), default="weakest",
                   help="margins below the anchor's weakest positive (default) or each pair's own positive")
    p.add_argument("--cache-dir", help="embedding cache folder")
    p.add_argument("-o", "--output", required=True, help="JSONL file to write")
    p.set_defaults(handler=cmd_mine_negatives)


def _fmt(value: Any) -> str:
    return "-" if value is None or value != value else f"{value:.4f}"


def cmd_finetune(args: argparse.Namespace) -> int:
    """Handler of ``evalsuite finetune``."""
    from evalsuite.config import load_suite
    from evalsuite.finetune.loop import run_finetune

    suite = load_suite(args.suite)
    if suite.finetune is None:
        raise ConfigError(f"{args.suite}: the suite has no 'finetune:' section (base, task, pairs, ...)")

    def say(line: str) -> None:
        if not args.quiet:
            print(f"evalsuite: {line}", file=sys.stderr)

    # DIR appears whole or not at all: bad input, Ctrl-C or a crash leave no DIR, or an earlier one untouched
    outcome = run_finetune(suite, Path(args.output), allow_leakage=args.allow_leakage, progress=args.progress,
                           cache_dir=Path(args.cache_dir) if args.cache_dir else None, device=args.device,
                           on_event=say, command=["evalsuite", *sys.argv[1:]], write_report=not args.no_report)
    ft = outcome.finetune
    out = sys.stdout
    print(f"\n{ft['task']}: {len(ft['test_queries'])} held-out queries (trained on {len(ft['train_queries'])}; "
          f"{ft['pairs']['pairs']} pairs from {ft['pairs']['source']})", file=out)
    metrics = list(ft["gain"])
    rows = [[c.system, *(_fmt(c.aggregate.get(m)) for m in metrics)] for c in outcome.results.cells
            if c.task == ft["task"]]
    widths = [max(len(str(r[i])) for r in [["system", *metrics], *rows]) for i in range(len(metrics) + 1)]
    for row in [["system", *metrics], *rows]:
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths))),
              file=out)
    print("", file=out)
    for m, g in ft["gain"].items():
        print(f"gain {m}: {g['delta']:+.4f} [{g['ci_low']:+.4f}, {g['ci_high']:+.4f}], p = {g['p_value']:.4f} "
              f"({g['wins']} better, {g['losses']} worse, {g['ties']} tied)", file=out)
    for row in ft["out_of_domain"]:
        print(f"out of domain {row['task']} {row['metric']}: {_fmt(row['before'])} -> {_fmt(row['after'])}", file=out)
    if ft["leakage"]["leaked_heldout_queries"]:
        print(f"WARNING: trained with {ft['leakage']['leaked_heldout_queries']} leaked held-out queries "
              "(--allow-leakage): the gain is not trustworthy", file=out)
    print(f"\n{ft['verdict']}", file=out)
    for gate in outcome.gates:
        print(f"  {gate['status'].upper():4}  {gate['gate']}: {gate['message']}", file=out)
    print(f"\nmodel: {outcome.model}\nresults: {outcome.output / 'results.json'}", file=out)
    if not args.no_report:
        print(f"report: {outcome.output / 'report.html'}", file=out)
    return outcome.exit_code


def _task_data(path: str, split: str) -> Any:
    from evalsuite.tasks.golden import load_golden_set

    return load_golden_set(path, split=split)


def cmd_pairs(args: argparse.Namespace) -> int:
    """Handler of ``evalsuite pairs``."""
    from evalsuite.finetune.loop import judged_queries
    from evalsuite.finetune.pairs import pairs_from_qrels, pairs_from_titles, write_pairs
    from evalsuite.finetune.split import split_queries
    from evalsuite.io._text import atomic_write, is_process_stream

    output = Path(args.output)
    # the split file goes beside the pairs: beside /dev/stdout would be in /dev
    if is_process_stream(output) or (output.exists() and not output.is_file()):
        kind = "folder" if output.is_dir() else "device, pipe or standard stream"
        raise ConfigError(f"--output {args.output}: is a {kind}; give a file path (the split is written "
                          "beside it, as <output>.split.json)")
    data = _task_data(args.task, args.split)
    fraction = args.test_fraction if args.test_fraction is not None else (0.5 if args.source == "qrels" else 1.0)
    judged = judged_queries(data)
    split = split_queries(judged, test_fraction=fraction, dev_fraction=args.dev_fraction, seed=args.seed,
                         texts=[str(data.queries[q]) for q in judged])
    if args.source == "qrels":
        if not split.train:
            raise ConfigError(f"--test-fraction {fraction} leaves no training query of {len(judged)}")
        pairs = pairs_from_qrels(data.queries, data.corpus, data.qrels, split.train, min_grade=args.min_grade)
    else:
        pairs = pairs_from_titles(data.corpus)
    path = write_pairs(pairs.pairs, args.output)
    split_file = Path(f"{path}.split.json")
    with atomic_write(split_file) as fh:
        json.dump({**split.to_dict(), "source": args.source, "task": args.task, "train_queries": list(split.train),
                   "dev_queries": list(split.dev), "test_queries": list(split.test), "pairs": pairs.summary()},
                  fh, indent=1)
    stats = ", ".join(f"{k} {v}" for k, v in pairs.stats.items())
    print(f"{path}: {len(pairs)} pairs from {args.source} ({stats}); split {len(split.train)} train / "
          f"{len(split.dev)} dev / {len(split.test)} held out (seed {args.seed}) in {split_file}")
    return 0


def cmd_mine_negatives(args: argparse.Namespace) -> int:
    """Handler of ``evalsuite mine-negatives``."""
    from evalsuite.finetune.loop import judged_queries
    from evalsuite.finetune.negatives import MiningConfig, mine_negatives
    from evalsuite.finetune.pairs import pairs_from_file, pairs_from_qrels, write_pairs
    from evalsuite.finetune.split import split_queries
    from evalsuite.retrievers import get_retriever

    data = _task_data(args.task, args.split)
    known = None
    if args.pairs:
        pairs = pairs_from_file(args.pairs)
    else:
        judged = judged_queries(data)
        split = split_queries(judged, test_fraction=args.test_fraction, seed=args.seed,
                              texts=[str(data.queries[q]) for q in judged])
        pairs = pairs_from_qrels(data.queries, data.corpus, data.qrels, split.train)
        known = {q: {d for d, g in docs.items() if g >= 1} for q, docs in data.qrels.grade_maps().items()}
    config = MiningConfig(top_k=args.top_k, per_pair=args.per_pair, skip_top=args.skip_top,
                          absolute_margin=args.absolute_margin, relative_margin=args.relative_margin,
                          max_score=args.max_score, cross_encoder=args.cross_encoder, strategy=args.strategy,
                          fill=args.fill, positive_score=args.positive_score, seed=args.seed)
    params: dict[str, Any] = {}
    if args.model:
        if args.miner != "dense":
            raise ConfigError(f"--model applies to the dense miner, not {args.miner!r}")
        params["model"] = args.model
    if args.cache_dir and args.miner in ("dense", "splade", "colbert"):
        params["cache_dir"] = args.cache_dir
    miner = get_retriever(args.miner, **params)
    result = mine_negatives(pairs, data.corpus, miner, config, known_positives=known)
    path = write_pairs(result.pairs, args.output)
    c = result.counts
    removed = ", ".join(f"{k.removeprefix('removed_')} {v}" for k, v in c.items() if k.startswith("removed_"))
    print(f"{path}: {c['pairs_out']} pairs with {args.per_pair} negative(s) each; candidates "
          f"{c['candidates_considered']} (known positives removed {c['known_positives_removed']}; "
          f"removed by filter: {removed}); "
          f"{c['negatives_random_fill']} random fill, {c['pairs_dropped_too_few_negatives']} pairs dropped")
    return 0
