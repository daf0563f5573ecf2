"""Leakage checks on small hand-made cases, and MinHash LSH against brute force."""

from __future__ import annotations

import itertools

import numpy as np

from evalsuite import Corpus, Qrels, Queries, TaskData
from evalsuite.metrics.leakage import (
    TrainingPairs,
    _jaccard,
    _shingles,
    check_leakage,
    near_duplicate_pairs,
    normalize,
)


def test_normalize() -> None:
    assert normalize("  What IS the\tLift-to-drag ratio?? ") == "what is the lift to drag ratio"


def test_lsh_finds_every_pair_brute_force_finds() -> None:
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(40)]
    base = [" ".join(rng.choice(words, 25)) for _ in range(30)]
    texts = base + [t.replace(t.split()[3], "edited", 1) for t in base[:15]] + [t + " x" for t in base[15:]]
    found = {(a, b) for a, b, _ in near_duplicate_pairs(texts, threshold=0.7)}
    sets = [_shingles(t) for t in texts]
    truth = {(a, b) for a, b in itertools.combinations(range(len(texts)), 2) if _jaccard(sets[a], sets[b]) >= 0.7}
    assert found == truth and len(truth) >= 25


def toy_task() -> TaskData:
    corpus = Corpus.from_dict({
        "d1": "Lift of a wing in a propeller slipstream at several angles of attack.",
        "d2": "Lift of a wing in a propeller slipstream at several angles of attack!",  # exact duplicate of d1
        "d3": "Heat transfer in a hypersonic boundary layer over a cooled flat plate.",
        "q2": "Flutter of swept wings with low structural damping is analysed in detail.",
    })
    queries = Queries.from_dict({"q1": "propeller slipstream lift", "q2": "flutter of swept wings with low "
                                 "structural damping is analysed in detail", "q3": "hypersonic boundary layer heat"})
    qrels = Qrels({"q1": {"d1": 2}, "q3": {"d3": 1, "d9": 1}, "q4": {"d3": 1}})
    return TaskData(corpus, queries, qrels, name="toy")


def test_findings_on_a_toy_task() -> None:
    training = TrainingPairs(
        queries=("Propeller slipstream, LIFT?", "something unrelated entirely here"),
        positives=("Heat transfer in a hypersonic boundary layer over a cooled flat plate", "nothing"),
        negatives=(None, None),
    )
    report = check_leakage(toy_task(), training)
    counts = report.summary()["counts"]
    assert counts["train_eval_query_exact"] == 1  # normalisation makes them equal
    assert counts["train_positive_relevant_doc"] == 1  # d3 is relevant to q3
    assert counts["query_is_its_own_doc"] == 1  # q2's id names a doc with its text
    assert counts["corpus_duplicates"] == 1 and counts["duplicates_split_relevance"] == 1  # d1/d2, q1
    assert counts["qrels_missing_docs"] == 1 and counts["qrels_missing_queries"] == 1  # d9; q4
    # q2 has no judgement, so no metric evaluates it: its self-retrieval is reported (above) but it is not a
    # leaked *evaluated* query, and the rate divides by the evaluated queries q1, q3 (issue 13, item 8)
    assert report.leaked_queries == {"q1", "q3"} and report.n_evaluated == 2
    assert report.leakage_rate == 1.0


def test_clean_task_reports_nothing() -> None:
    data = TaskData(Corpus.from_dict({"a": "alpha text about pumps and valves", "b": "beta text on gears"}),
                    Queries.from_dict({"x": "pumps", "y": "gears"}), Qrels({"x": {"a": 1}, "y": {"b": 1}}))
    report = check_leakage(data, TrainingPairs(("rotors",), ("a text on rotors",), (None,)))
    assert all(f.count == 0 for f in report.findings) and report.leakage_rate == 0.0
