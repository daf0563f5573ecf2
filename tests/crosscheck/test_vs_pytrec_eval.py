"""Every metric trec_eval has, checked against pytrec-eval-terrier on generated runs.

Runs are generated with heavy score ties (scores from a tiny set of values, and
infinities), graded qrels with negative and zero grades, queries missing from the run,
run queries absent from the qrels, docs outside the qrels, empty rankings, and depths
below and above the cutoffs. Both join strategies (dict input, and Run objects from dicts or frames) are
checked, and runs given as pyarrow columns (as the Arrow file reader gives them: doc ids
as codes, encoded in several parts, joined without Python strings).
trec_eval's ``-c`` (a judged query missing from the run scores 0) is emulated
on the oracle side.

Metrics trec_eval lacks are reduced to ones it has, on the oracle side only:
``mrr@k`` = ``recip_rank`` of the run cut to its top k (sorted here, independently);
``judged@k`` = ``P_k`` with every judgement turned into grade 1;
``ndcg(gain=exp)@k`` = ``ndcg_cut_k`` with every grade g turned into 2^max(g,0) - 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import pytrec_eval
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import evalsuite._ids
from evalsuite import Qrels, Run, evaluate

CUTOFFS = (1, 2, 3, 5, 10, 20)
TOL = 1e-9

DOCS = [f"d{i}" for i in range(30)]
QUERIES = [f"q{i}" for i in range(8)]
SCORES = [0.0, 0.5, 1.0, 2.0, 2.0, -1.0, 3.25, math.inf, -math.inf]

qrels_strategy = st.dictionaries(
    st.sampled_from(QUERIES),
    st.dictionaries(st.sampled_from(DOCS), st.integers(-1, 4), min_size=1, max_size=12),
    min_size=1,
    max_size=6,
)
run_strategy = st.dictionaries(
    st.sampled_from([*QUERIES, "extra1", "extra2"]),
    st.dictionaries(
        st.sampled_from([*DOCS, "u1", "u2", "u10"]),
        st.one_of(st.sampled_from(SCORES), st.floats(-5, 5, allow_nan=False)),
        max_size=25,
    ),
    max_size=8,
)


def trec_order(ranking: dict[str, float]) -> list[str]:
    """trec_eval's order, written independently: score descending at float32 precision
    (trec_eval stores scores as C float), then doc id descending."""
    return [d for d, _ in sorted(ranking.items(), key=lambda kv: (np.float32(kv[1]), kv[0]), reverse=True)]


def with_a_nonnegative_grade(qrels: dict) -> dict:
    """The queries trec_eval can be given: those with at least one judgement >= 0.

    trec_eval (9.0.8, inside pytrec-eval-terrier 0.5.11) never sets ``num_rel_levels`` for a
    query whose every judgement is negative (form_res_rels.c counts levels 0..max_rel, and
    max_rel is -1): the query inherits the previous query's count, possibly from an earlier
    evaluator whose level array has been freed, and ndcg then walks garbage counts, which hung
    CI for its whole 90 minutes. By trec_eval's own definitions such a query has no relevant document,
    so every measure is 0 for it, which is what a query left out gets under ``-c``.
    """
    return {q: docs for q, docs in qrels.items() if max(docs.values()) >= 0}


def oracle(qrels: dict, run: dict, measure: str, level: int = 1) -> dict[str, float]:
    """pytrec_eval per-query values of ``measure`` with trec_eval -c semantics."""
    present = {q: docs for q, docs in run.items() if docs}
    values = pytrec_eval.RelevanceEvaluator(with_a_nonnegative_grade(qrels), {measure},
                                            relevance_level=level).evaluate(present)
    key = measure.replace(".", "_")
    return {q: values[q][key] if q in values else 0.0 for q in qrels}


def expected_values(qrels: dict, run: dict, metric: str, level: int) -> dict[str, float]:
    family, _, cutoff = metric.partition("@")
    trec_names = {"P": "P", "recall": "recall", "ndcg": "ndcg_cut", "map": "map_cut", "success": "success"}
    if family == "mrr":
        depth = int(cutoff) if cutoff else None
        # the run cut to its top k, rescored 1..k so that pytrec_eval keeps the same order
        cut = {q: {doc: float(-i) for i, doc in enumerate(trec_order(docs)[:depth])} for q, docs in run.items()}
        return oracle(qrels, cut, "recip_rank", level)
    if family == "judged":
        flat = {q: dict.fromkeys(docs, 1) for q, docs in qrels.items()}
        return oracle(flat, run, f"P.{cutoff}", 1)
    if family == "ndcg(gain=exp)":
        exp = {q: {d: 2 ** max(g, 0) - 1 for d, g in docs.items()} for q, docs in qrels.items()}
        return oracle(exp, run, f"ndcg_cut.{cutoff}", level)
    if not cutoff:
        return oracle(qrels, run, {"map": "map", "ndcg": "ndcg", "rprec": "Rprec"}[family], level)
    return oracle(qrels, run, f"{trec_names[family]}.{cutoff}", level)


def num_relevant(qrels: dict, level: int) -> dict[str, int]:
    return {q: sum(g >= level for g in docs.values()) for q, docs in qrels.items()}


METRICS = [
    *(f"{m}@{k}" for m in ("P", "recall", "ndcg", "map", "success", "mrr", "judged", "ndcg(gain=exp)")
      for k in CUTOFFS),
    "map", "ndcg", "rprec", "mrr",
]


@contextmanager
def encoded_in_parts(rows_per_part: int = 2, threads: int = 3) -> Iterator[None]:
    """Make Run.from_arrays encode pyarrow doc ids in several parts, on several threads,
    and evaluate match them on several threads, even for tiny runs."""
    saved = evalsuite._ids._PART_ROWS, evalsuite._ids._PARALLEL_MIN_ROWS, evalsuite._ids._MAX_PARTS
    evalsuite._ids._PART_ROWS, evalsuite._ids._PARALLEL_MIN_ROWS, evalsuite._ids._MAX_PARTS = (
        rows_per_part, 1, threads)
    try:
        yield
    finally:
        evalsuite._ids._PART_ROWS, evalsuite._ids._PARALLEL_MIN_ROWS, evalsuite._ids._MAX_PARTS = saved


def arrow_run(run: dict) -> Run:
    rows = [(q, d, s) for q, docs in run.items() for d, s in docs.items()]
    with encoded_in_parts():
        built = Run.from_arrays(pa.array([r[0] for r in rows], pa.string()).dictionary_encode(),
                                pa.array([r[1] for r in rows], pa.string()), [r[2] for r in rows])
    assert built.doc_codes() is not None
    return built


def check(qrels: dict, run: dict, level: int, empty: str, via: str) -> None:
    """``via``: 'dicts' passes plain dicts to evaluate (judgements looked up in the run dict);
    'run' and 'frame' pass Run objects built from dicts / a DataFrame (run scanned against qrels);
    'arrow' a Run built from pyarrow columns (doc codes joined with the qrels)."""
    if via == "dicts":
        run_arg: dict | Run = run
    elif via == "run":
        run_arg = Run.from_dict(run)
    elif via == "arrow":
        run_arg = arrow_run(run)
    else:
        run_arg = Run.from_frame(
            pd.DataFrame([(q, d, s) for q, docs in run.items() for d, s in docs.items()],
                         columns=["query_id", "doc_id", "score"])
        )
    qrels_arg = qrels if via == "dicts" else Qrels.from_dict(qrels)
    with encoded_in_parts() if via == "arrow" else nullcontext():
        result = evaluate(qrels_arg, run_arg, METRICS, relevance_level=level, empty_queries=empty)
    rel = num_relevant(qrels, level)
    for metric in METRICS:
        expected = expected_values(qrels, run, metric, level)
        included = [q for q in qrels if empty == "zero" or rel[q] > 0]
        for q in qrels:
            got = result.per_query.loc[q, metric]
            if q in included:
                assert got == pytest.approx(expected[q], abs=TOL), (metric, q)
            else:
                assert math.isnan(got), (metric, q)
        mean = sum(expected[q] for q in included) / len(included) if included else math.nan
        assert result.aggregate[metric] == pytest.approx(mean, abs=TOL, nan_ok=True), metric
        assert result.n_queries[metric] == len(included)


# A query judged only negatively, after a graded one: the case trec_eval itself mishandles.
ALL_NEGATIVE = {"q0": {"d0": 3, "d1": 1}, "q1": {"d2": -1, "d3": -1}}
ALL_NEGATIVE_RUN = {"q0": {"d0": 1.0, "d2": 0.5}, "q1": {"d2": 2.0, "d0": 1.0}}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(qrels=ALL_NEGATIVE, run=ALL_NEGATIVE_RUN, level=1, empty="zero", via="run")
@example(qrels=ALL_NEGATIVE, run=ALL_NEGATIVE_RUN, level=1, empty="exclude", via="arrow")
@given(qrels=qrels_strategy, run=run_strategy, level=st.sampled_from([1, 1, 2]),
       empty=st.sampled_from(["exclude", "zero"]), via=st.sampled_from(["dicts", "run", "frame", "arrow"]))
def test_every_metric_matches_trec_eval(qrels: dict, run: dict, level: int, empty: str, via: str) -> None:
    check(qrels, run, level, empty, via)


@settings(max_examples=100, deadline=None)
@example(qrels=ALL_NEGATIVE, run=ALL_NEGATIVE_RUN)
@given(qrels=qrels_strategy, run=run_strategy)
def test_zero_mode_mean_equals_trec_eval_complete_mean(qrels: dict, run: dict) -> None:
    """With empty_queries='zero' the mean is trec_eval's ``-c`` mean over all judged queries."""
    present = {q: docs for q, docs in run.items() if docs}
    evaluator = pytrec_eval.RelevanceEvaluator(with_a_nonnegative_grade(qrels), {"map", "ndcg_cut.10"})
    per_query = evaluator.evaluate(present)
    result = evaluate(qrels, run, ["map", "ndcg@10"], empty_queries="zero")
    for metric, key in (("map", "map"), ("ndcg@10", "ndcg_cut_10")):
        mean = sum(per_query[q][key] if q in per_query else 0.0 for q in qrels) / len(qrels)
        assert result[metric] == pytest.approx(mean, abs=TOL)


def test_both_join_strategies_agree_on_a_tie_heavy_run() -> None:
    qrels = {"q": {f"d{i}": i % 3 for i in range(50)}}
    run = {"q": {f"d{i}": float(i % 2) for i in range(0, 100, 3)}}
    for via in ("dicts", "run", "frame", "arrow"):
        check(qrels, run, 1, "exclude", via)
