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
        _check_references(data, self.path / "qrels" / f"{self.metadata.split}.tsv")
        self.metadata = TaskMetadata(**{**self.metadata.__dict__, "content_hash": content_hash(data)})
        return data


def _check_references(data: TaskData, qrels_path: Path) -> None:
    """Judgements must name queries and documents of the folder (as ``evalsuite validate`` requires of
    golden sets): a judgement of a missing document would count as an unretrievable relevant one."""
    import json

    from evalsuite.errors import DataError
    from evalsuite.io._text import read_text
    from evalsuite.io.beir import id_problem

    folder = qrels_path.parent.parent
    for ids, name in ((data.corpus.ids, "corpus.jsonl"), (data.queries.ids, "queries.jsonl")):
        bad = next((i for i in ids.tolist() if id_problem(i) is not None), None)
        if bad is not None:
            def has_id(text: str, bad: str = bad) -> bool:
                try:
                    record = json.loads(text)
                except ValueError:
                    return False
                return isinstance(record, dict) and str(record.get("_id", record.get("id"))) == bad
            lines = read_text(folder / name, name).split("\n")
            line = next((n for n, text in enumerate(lines, 1) if bad in text and has_id(text)), None)
            raise DataError(str(id_problem(bad)), path=folder / name, line=line,
                            hint="a suite run writes ids to TREC files; rename the ids")
    docs = set(data.corpus.ids.tolist())
    queries = set(data.queries.ids.tolist())
    bad_docs = [d for d in data.qrels.doc_ids.tolist() if d not in docs]
    bad_queries = [q for q in data.qrels.query_ids.tolist() if q not in queries]
    if not bad_docs and not bad_queries:
        return
    kind, name = ("doc", bad_docs[0]) if bad_docs else ("query", bad_queries[0])
    column = 1 if bad_docs else 0
    line = next((n for n, text in enumerate(read_text(qrels_path, "BEIR qrels").split("\n"), 1)
                 if len(fields := text.split("\t")) > column and fields[column].strip() == name), None)
    where = "corpus.jsonl" if bad_docs else "queries.jsonl"
    count = len(set(bad_docs)) + len(set(bad_queries))
    raise DataError(f"judgement names {kind} {name!r}, which is not in {where}"
                    + (f" ({count} such ids)" if count > 1 else ""), path=qrels_path, line=line,
                    hint="fix the qrels or the folder; 'evalsuite check-leakage FOLDER' lists them all")


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
