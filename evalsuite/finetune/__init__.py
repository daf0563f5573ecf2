"""The fine-tune loop: from "FINE-TUNE RECOMMENDED" to a measured, leakage-free fine-tune.

* :mod:`~evalsuite.finetune.pairs` -- training pairs from a task's qrels, a user's pairs file
  (JSONL/CSV/TSV) or corpus structure (title -> body); the ``pairs.jsonl`` export;
* :mod:`~evalsuite.finetune.split` -- the seeded split by *query* (near-duplicate queries kept
  on one side) and the leakage guard between training pairs and held-out queries;
* :mod:`~evalsuite.finetune.negatives` -- hard-negative mining with any evalsuite retriever and
  the false-negative filters (skip top ranks, absolute / relative margin, max score,
  cross-encoder), each filter's removals counted;
* :mod:`~evalsuite.finetune.train` -- sentence-transformers' own ``SentenceTransformerTrainer``
  (MNRL, CachedMNRL, triplet, contrastive, Matryoshka wrapper), dev-split checkpoint
  selection with evalsuite's metrics, written atomically with a model card;
* :mod:`~evalsuite.finetune.loop` -- the ``finetune:`` section of a suite: pairs, split, guard,
  negatives, training, and the before/after verdict on the held-out queries.

Nothing here imports torch or sentence-transformers at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evalsuite.finetune.negatives import MiningConfig, MiningResult, mine_negatives
    from evalsuite.finetune.pairs import (
        Pair,
        PairSet,
        pairs_from_file,
        pairs_from_qrels,
        pairs_from_titles,
        write_pairs,
    )
    from evalsuite.finetune.split import QuerySplit, split_queries

__all__ = [
    "MiningConfig",
    "MiningResult",
    "Pair",
    "PairSet",
    "QuerySplit",
    "mine_negatives",
    "pairs_from_file",
    "pairs_from_qrels",
    "pairs_from_titles",
    "split_queries",
    "write_pairs",
]

_WHERE = {
    "MiningConfig": "negatives", "MiningResult": "negatives", "mine_negatives": "negatives",
    "Pair": "pairs", "PairSet": "pairs", "pairs_from_file": "pairs", "pairs_from_qrels": "pairs",
    "pairs_from_titles": "pairs", "write_pairs": "pairs",
    "QuerySplit": "split", "split_queries": "split",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'evalsuite.finetune' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"evalsuite.finetune.{module}"), name)
