"""Leakage checks on real data: Cranfield, with training pairs built from its own queries."""

from __future__ import annotations

from pathlib import Path

from evalsuite import Qrels, TaskData
from evalsuite.io import read_beir
from evalsuite.metrics.leakage import TrainingPairs, check_leakage


def relevant(data: TaskData, query: str) -> list[str]:
    return [d for d, g in data.qrels.judgements(query).items() if g >= 1]


def test_known_overlap_is_found(cranfield_dir: Path) -> None:
    data = read_beir(cranfield_dir)
    leaked = [str(i) for i in range(1, 31)]  # copied verbatim (case/punctuation changed)
    near = [q for q in (str(i) for i in range(31, 80)) if len(data.queries[q]) > 80 and " the " in data.queries[q]][:10]
    queries = [data.queries[q].upper().replace(" .", "?") for q in leaked]
    queries += [data.queries[q].replace(" the ", " a ", 1) + " ?" for q in near]
    positives = [data.corpus.contents()[list(data.corpus).index(relevant(data, "5")[0])]]
    training = TrainingPairs(tuple(queries), tuple(positives * len(queries)), (None,) * len(queries))
    report = check_leakage(data, training)
    exact = next(f for f in report.findings if f.check == "train_eval_query_exact")
    assert exact.affected_queries == set(leaked)
    near_found = next(f for f in report.findings if f.check == "train_eval_query_near")
    assert near_found.affected_queries == set(near)
    positive = next(f for f in report.findings if f.check == "train_positive_relevant_doc")
    assert positive.count >= 1 and "5" in positive.affected_queries
    assert set(leaked) | set(near) | {"5"} <= report.leaked_queries


def test_clean_split_reports_zero(cranfield_dir: Path) -> None:
    data = read_beir(cranfield_dir)
    train_ids = [str(i) for i in range(1, 101)]
    eval_ids = [str(i) for i in range(101, 226)]
    eval_relevant = {d for q in eval_ids for d in relevant(data, q)}
    contents = dict(zip(data.corpus.ids.tolist(), data.corpus.contents()))
    pairs = [(data.queries[q], contents[d]) for q in train_ids for d in relevant(data, q) if d not in eval_relevant]
    training = TrainingPairs(tuple(p[0] for p in pairs), tuple(p[1] for p in pairs), (None,) * len(pairs))
    qrels = Qrels({q: data.qrels.judgements(q) for q in eval_ids})
    eval_task = TaskData(data.corpus, data.queries.subset(eval_ids), qrels, name="cranfield-eval")
    report = check_leakage(eval_task, training)
    train_eval = [f for f in report.findings if f.check.startswith("train_")]
    assert len(training) > 100
    assert [f.count for f in train_eval] == [0, 0, 0]
