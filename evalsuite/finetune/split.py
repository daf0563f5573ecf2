"""Split discipline: train and evaluate on different *queries*, and refuse leaked training data.

:func:`split_queries` splits query ids (never pairs) with a recorded seed: the ids are sorted,
grouped so that exact and near-duplicate query texts (Jaccard of character 5-grams >=
``threshold``, :func:`evalsuite.metrics.leakage.near_duplicate_pairs`) stay on one side, the
groups shuffled by ``numpy.random.default_rng(seed)``, and the first ``ceil(n *
test_fraction)`` queries' groups held out. An optional ``dev_fraction`` of the training
queries selects the checkpoint during training. The same seed and ids give the same split.

:func:`guard_leakage` runs evalsuite's leakage checks between the training pairs and the
held-out queries and documents. A training anchor that equals or nearly equals a held-out
query is a leak: the run is refused (:class:`LeakageRefused`, exit 2, naming the lines)
unless the caller passes ``allow=True``, which the results then state. Training positives
that equal documents relevant to held-out queries are counted and reported, not refused:
with a query split over one corpus every document may serve both sides, which is how the
evaluation corpus is meant to be used (what must not leak is the held-out *query*).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evalsuite.errors import ConfigError, DataError
from evalsuite.metrics.leakage import check_leakage, near_duplicate_pairs, normalize
from evalsuite.types import Qrels, TaskData

__all__ = ["LeakageRefused", "QuerySplit", "drop_leaking_pairs", "guard_leakage", "heldout_data", "split_queries"]

_QUERY_LEAKS = ("train_eval_query_exact", "train_eval_query_near")


@dataclass(frozen=True)
class QuerySplit:
    """Query ids on each side of a split, and how the split was drawn."""

    train: tuple[str, ...]
    dev: tuple[str, ...]
    test: tuple[str, ...]
    seed: int
    test_fraction: float
    dev_fraction: float
    grouped: int = 0  # queries that were kept with a near-duplicate

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "test_fraction": self.test_fraction, "dev_fraction": self.dev_fraction,
                "n_train": len(self.train), "n_dev": len(self.dev), "n_test": len(self.test),
                "near_duplicate_queries_grouped": self.grouped}


def _groups(ids: list[str], texts: list[str], threshold: float) -> list[list[int]]:
    """Positions of ``ids`` grouped by exact / near-duplicate text (union-find), in id order."""
    parent = list(range(len(ids)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    by_text: dict[str, int] = {}
    for i, text in enumerate(texts):
        key = hashlib.blake2b(normalize(text).encode(), digest_size=16).hexdigest()
        if key in by_text:
            union(by_text[key], i)
        else:
            by_text[key] = i
    for a, b, _ in near_duplicate_pairs(texts, threshold=threshold):
        union(a, b)
    groups: dict[int, list[int]] = {}
    for i in range(len(ids)):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: ids[g[0]])


def split_queries(query_ids: Iterable[str], *, test_fraction: float = 0.5, dev_fraction: float = 0.0, seed: int = 0,
                  texts: Sequence[str] | None = None, threshold: float = 0.8) -> QuerySplit:
    """Split ``query_ids`` into train / dev / test (see the module docstring).

    ``texts`` (aligned with ``query_ids``) lets near-duplicate queries be kept together;
    ``test_fraction`` 1.0 holds every query out (pairs that use no query, e.g. titles).
    """
    ids = [str(q) for q in query_ids]
    if len(set(ids)) != len(ids):
        raise DataError("query ids to split are not unique")
    if not ids:
        raise DataError("no query to split: the task has no judged query")
    if not 0 < test_fraction <= 1:
        raise ConfigError(f"test_fraction must be in (0, 1], got {test_fraction}")
    if not 0 <= dev_fraction < 1:
        raise ConfigError(f"dev_fraction must be in [0, 1), got {dev_fraction}")
    order = sorted(range(len(ids)), key=lambda i: ids[i])
    ids = [ids[i] for i in order]
    aligned = [str(texts[i]) for i in order] if texts is not None else None
    groups = _groups(ids, aligned, threshold) if aligned is not None else [[i] for i in range(len(ids))]
    rng = np.random.default_rng(seed)
    shuffled = [groups[i] for i in rng.permutation(len(groups))]
    n_test = len(ids) if test_fraction >= 1 else min(len(ids), max(1, math.ceil(len(ids) * test_fraction)))
    test: list[str] = []
    rest: list[list[int]] = []
    for group in shuffled:
        if len(test) < n_test:
            test += [ids[i] for i in group]
        else:
            rest.append(group)
    n_dev = round(sum(len(g) for g in rest) * dev_fraction)
    dev: list[str] = []
    train: list[str] = []
    for group in rest:
        (dev if len(dev) < n_dev else train).extend(ids[i] for i in group)
    grouped = sum(len(g) for g in groups if len(g) > 1)
    return QuerySplit(tuple(sorted(train)), tuple(sorted(dev)), tuple(sorted(test)), seed, test_fraction,
                      dev_fraction, grouped)


def heldout_data(data: TaskData, query_ids: Iterable[str]) -> TaskData:
    """``data`` restricted to ``query_ids`` (queries and their judgements; the corpus is kept)."""
    keep = set(query_ids)
    grade_maps = {q: docs for q, docs in data.qrels.grade_maps().items() if q in keep}
    return TaskData(data.corpus, data.queries.subset(q for q in data.queries.ids.tolist() if q in keep),
                    Qrels.from_dict(grade_maps), name=data.name, notes=data.notes)


class LeakageRefused(DataError):
    """Training pairs hold held-out queries; the fine-tune is refused."""


@dataclass
class LeakageSummary:
    """What the guard found, for the results and the report."""

    query_leaks: list[dict[str, Any]]
    leaked_queries: list[str]
    positives_relevant_to_heldout: int
    allowed: bool
    threshold: float
    checked_pairs: int
    findings: dict[str, int] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)  # the full check, for the report's leakage section

    def to_dict(self) -> dict[str, Any]:
        return {"checked_pairs": self.checked_pairs, "threshold": self.threshold,
                "leaked_heldout_queries": len(self.leaked_queries), "query_leaks": self.query_leaks[:20],
                "n_query_leaks": len(self.query_leaks),
                "training_positives_relevant_to_heldout": self.positives_relevant_to_heldout,
                "override": self.allowed, "findings": self.findings}


def drop_leaking_pairs(pairs: Any, heldout: TaskData, *, threshold: float = 0.8) -> tuple[Any, list[dict[str, Any]]]:
    """``pairs`` without the pairs whose anchor equals or nearly equals (the guard's Jaccard
    ``threshold``) a held-out query, and what was dropped (pair number, line, anchor, the
    held-out query id). The opt-in alternative to refusing the run (``drop_leaked: true``):
    e.g. title -> body pairs where a document title happens to be a held-out query."""
    from dataclasses import replace

    ids = heldout.queries.ids.tolist()
    texts = [str(t) for t in heldout.queries.texts.tolist()]
    exact = {normalize(t): q for q, t in zip(ids, texts)}
    anchors = [p.anchor for p in pairs.pairs]
    hit: dict[int, str] = {}
    for i, anchor in enumerate(anchors):
        if normalize(anchor) in exact:
            hit[i] = exact[normalize(anchor)]
    for i, j, _ in near_duplicate_pairs(anchors, texts, threshold=threshold):
        hit.setdefault(i, ids[j])
    dropped = [{"pair": i + 1, "line": pairs.pairs[i].line, "anchor": anchors[i], "heldout_query_id": q}
               for i, q in sorted(hit.items())]
    kept = [p for i, p in enumerate(pairs.pairs) if i not in hit]
    stats = {**pairs.stats, "dropped_leaking_heldout": len(dropped)}
    notes = [*pairs.notes] + ([f"{len(dropped)} pairs dropped: their anchor (nearly) equals a held-out query"]
                              if dropped else [])
    return replace(pairs, pairs=kept, stats=stats, notes=notes), dropped


def guard_leakage(pairs: Any, heldout: TaskData, *, threshold: float = 0.8, allow: bool = False,
                  source: str = "training pairs") -> LeakageSummary:
    """Refuse ``pairs`` (a :class:`~evalsuite.finetune.pairs.PairSet`) whose anchors equal or
    nearly equal a held-out query, unless ``allow``; see the module docstring."""
    report = check_leakage(heldout, pairs.as_training_pairs(), threshold=threshold)
    leaks: list[dict[str, Any]] = []
    leaked: set[str] = set()
    positives = 0
    counts: dict[str, int] = {}
    for finding in report.findings:
        counts[finding.check] = finding.count
        if finding.check in _QUERY_LEAKS:
            leaked |= finding.affected_queries
            for example in finding.examples:
                pair = pairs.pairs[example["training_line"] - 1]
                leaks.append({"check": finding.check, "pair": example["training_line"], "line": pair.line,
                              "training_query": example["training_query"], "heldout_query_id": example["eval_query_id"],
                              "heldout_query": example["eval_query"], **({"jaccard": example["jaccard"]}
                                                                         if "jaccard" in example else {})})
        elif finding.check == "train_positive_relevant_doc":
            positives = finding.count
    n_leaks = counts.get(_QUERY_LEAKS[0], 0) + counts.get(_QUERY_LEAKS[1], 0)
    full = report.to_dict()
    for finding in full["findings"]:
        if finding["check"] == "train_positive_relevant_doc":  # see the module docstring: reported, not a leak
            finding["severity"] = "info"
            finding["title"] += " (documents of the shared corpus; the held-out queries themselves did not leak)"
        finding["examples"] = finding["examples"][:5]
    summary = LeakageSummary(leaks, sorted(leaked), positives, allow, threshold, len(pairs.pairs), counts, full)
    if n_leaks and not allow:
        first = leaks[0]
        where = f"line {first['line']}" if first["line"] else f"pair {first['pair']}"
        more = f" (and {n_leaks - 1} more)" if n_leaks > 1 else ""
        raise LeakageRefused(
            f"{source}: {where}: training query {first['training_query'][:80]!r} "
            f"{'equals' if first['check'] == _QUERY_LEAKS[0] else 'nearly equals'} held-out query "
            f"{first['heldout_query_id']} {first['heldout_query'][:80]!r}{more}; {len(leaked)} held-out "
            "quer" + ("y" if len(leaked) == 1 else "ies") + " leaked into training",
            hint="remove those pairs, or pass --allow-leakage (allow_leakage: true) to train anyway; the results "
                 "and report will say so")
    return summary
