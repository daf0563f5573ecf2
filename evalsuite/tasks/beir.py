"""BEIR-layout datasets as tasks: any local folder, any split.

evalsuite reads the folder with its own reader (:func:`evalsuite.io.read_beir`), which
reports malformed lines with file and line, where ``beir``'s ``GenericDataLoader`` would
drop or crash; ``tests/integration`` checks that both read Cranfield identically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evalsuite.io.beir import read_beir
from evalsuite.tasks.base import TaskMetadata, content_hash
from evalsuite.types import Run, TaskData

__all__ = ["BeirTask", "drop_identical_ids"]


class BeirTask:
    """A BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``) as a retrieval task.

    ``ignore_identical_ids`` (as in BEIR/MTEB for e.g. ArguAna, Quora): a hit whose doc id
    equals the query id is dropped from every retriever's run at evaluation time, and the
    number dropped is reported.
    """

    def __init__(self, path: str | Path, *, name: str | None = None, split: str = "test",
                 main_metric: str = "ndcg@10", ignore_identical_ids: bool = False) -> None:
        self.path = Path(path)
        self.metadata = TaskMetadata(name=name or self.path.name, type="retrieval", source="beir", split=split,
                                     main_metric=main_metric, ignore_identical_ids=ignore_identical_ids,
                                     path=str(self.path))

    def load(self) -> TaskData:
        data = read_beir(self.path, self.metadata.split, name=self.metadata.name)
        self.metadata = TaskMetadata(**{**self.metadata.__dict__, "content_hash": content_hash(data)})
        return data


def drop_identical_ids(run: Run) -> tuple[Run, int]:
    """``run`` without hits whose doc id equals their query id, and how many were dropped."""
    same = run.doc_ids == run.row_query_ids()
    dropped = int(same.sum())
    if not dropped:
        return run, 0
    keep = ~same
    seg = np.repeat(np.arange(len(run)), np.diff(run.offsets))
    counts = np.bincount(seg[keep], minlength=len(run))
    return Run.from_arrays(np.repeat(run.query_ids, counts), run.doc_ids[keep], run.scores[keep],
                           name=run.name, check_ids=False), dropped
