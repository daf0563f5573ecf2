"""Hard-negative mining with any evalsuite retriever, and the false-negative filters.

For every distinct anchor (training query) the miner -- any retriever: the base dense model by
default, BM25 and hybrid work too -- ranks the corpus; the ranking without the anchor's known
positives, cut at ``top_k``, is the candidate list. Candidates are then removed, in this order,
by each configured filter (the counts of every filter are reported):

1. ``skip_top``: the first r candidates (the nearest are the likeliest unlabelled positives);
2. ``absolute_margin``: candidates with ``score > s_pos - absolute_margin``;
3. ``relative_margin``: candidates with ``score > s_pos - |s_pos| * relative_margin``
   (NV-Retriever's "TopK-PercPos": 0.05 keeps candidates below 95% of the positive's score);
4. ``max_score``: candidates with ``score > max_score``;
5. ``cross_encoder``: candidates a cross-encoder scores at least as high as the anchor's
   weakest known positive, minus ``cross_encoder_margin``.

``s_pos`` is, with ``positive_score="weakest"`` (the default), the miner's score of the
anchor's *weakest* known positive among its pairs (the convention of sentence-transformers'
``util.mine_hard_negatives``: a candidate above a known positive may itself be relevant); the
margins then apply to the anchor as a whole. With ``positive_score="pair"`` each pair's own
positive sets its threshold (NV-Retriever's TopK-PercPos is defined per positive): a pair with a
strong positive may take candidates that score above the anchor's weakest positive. The margin
counts then report candidates removed for *every* pair of the anchor (above the threshold of
its strongest positive); the per-pair cut happens at sampling. Dense miners score the positive exactly (cosine or inner
product of the same vectors the index holds); other miners score it from a ranking of the whole
corpus, and a positive that ranking does not contain is taken as scoring its lowest score.

``per_pair`` negatives are then taken per pair from the surviving candidates, the best first
(``strategy="top"``, as NV-Retriever) or drawn at random with the seed (``"random"``). The pairs
of one anchor take different negatives while unused survivors remain (so an anchor with seven
positives trains against seven hard negatives, not one negative seven times); only then is a
survivor used again. A pair
with too few survivors is completed with random corpus documents outside the anchor's
candidate list and known positives (``fill="random"``, counted) or dropped (``fill="drop"``).

:func:`false_negative_check` measures the filters: it hides half of each training query's
judged positives from the miner and counts how many of the hidden positives end up among the
candidates and the sampled negatives, with and without the filters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np

from evalsuite.errors import ConfigError
from evalsuite.finetune.pairs import Pair, PairSet, doc_text
from evalsuite.metrics.leakage import normalize
from evalsuite.types import Corpus, Queries

__all__ = ["MiningConfig", "MiningResult", "false_negative_check", "mine_negatives"]

FILTERS = ("skip_top", "absolute_margin", "relative_margin", "max_score", "cross_encoder")


@dataclass(frozen=True)
class MiningConfig:
    """How negatives are mined (see the module docstring)."""

    top_k: int = 50
    per_pair: int = 1
    skip_top: int = 0
    absolute_margin: float | None = None
    relative_margin: float | None = None
    max_score: float | None = None
    cross_encoder: str | None = None
    cross_encoder_margin: float = 0.0
    strategy: Literal["top", "random"] = "top"
    fill: Literal["random", "drop"] = "random"
    positive_score: Literal["weakest", "pair"] = "weakest"
    seed: int = 0

    def __post_init__(self) -> None:
        for what in ("top_k", "per_pair"):
            value = getattr(self, what)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"negatives: {what} must be a positive integer, got {value!r}")
        if not isinstance(self.skip_top, int) or self.skip_top < 0 or self.skip_top >= self.top_k:
            raise ConfigError(f"negatives: skip_top must be an integer in [0, top_k), got {self.skip_top!r}")
        if self.relative_margin is not None and not 0 <= self.relative_margin < 1:
            raise ConfigError(f"negatives: relative_margin must be in [0, 1), got {self.relative_margin}")
        if self.absolute_margin is not None and self.absolute_margin < 0:
            raise ConfigError(f"negatives: absolute_margin must be >= 0, got {self.absolute_margin}")
        if self.strategy not in ("top", "random"):
            raise ConfigError(f"negatives: strategy must be 'top' or 'random', got {self.strategy!r}")
        if self.fill not in ("random", "drop"):
            raise ConfigError(f"negatives: fill must be 'random' or 'drop', got {self.fill!r}")
        if self.positive_score not in ("weakest", "pair"):
            raise ConfigError(f"negatives: positive_score must be 'weakest' or 'pair', got {self.positive_score!r}")

    @property
    def filtered(self) -> bool:
        """Whether any false-negative filter is on."""
        return bool(self.skip_top) or any(v is not None for v in (self.absolute_margin, self.relative_margin,
                                                                   self.max_score, self.cross_encoder))

    def without_filters(self) -> MiningConfig:
        return replace(self, skip_top=0, absolute_margin=None, relative_margin=None, max_score=None,
                       cross_encoder=None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MiningResult:
    """Pairs with negatives, and what every stage removed or added."""

    pairs: list[Pair]
    counts: dict[str, int]
    candidates: dict[str, list[str]] = field(default_factory=dict)  # anchor -> doc ids surviving every filter
    unfiltered: dict[str, list[str]] = field(default_factory=dict)  # anchor -> top_k doc ids, positives removed
    sampled: dict[str, list[str]] = field(default_factory=dict)  # anchor -> doc ids sampled as negatives
    positive_scores: dict[str, float] = field(default_factory=dict)  # anchor -> its weakest positive's score
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {**self.counts, "seconds": self.seconds}


def _positive_scores(retriever: Any, anchors: list[str], positives: dict[str, list[Pair]], corpus: Corpus,
                     full_run: Any) -> dict[str, list[float]]:
    """The miner's score of each pair's positive, by anchor in pair order (see the module docstring)."""
    embed = getattr(retriever, "embed", None)
    out: dict[str, list[float]] = {}
    if callable(embed):
        texts = [p.positive for a in anchors for p in positives[a]]
        q = np.asarray(embed(anchors, kind="query"), dtype=np.float64)
        d = np.asarray(embed(texts, kind="document"), dtype=np.float64)
        at = 0
        for i, anchor in enumerate(anchors):
            n = len(positives[anchor])
            out[anchor] = [float(x) for x in d[at:at + n] @ q[i]]
            at += n
        return out
    for i, anchor in enumerate(anchors):
        ranking = dict(full_run.ranking(f"a{i}")) if f"a{i}" in full_run else {}
        floor = min(ranking.values(), default=0.0)
        out[anchor] = [float(ranking.get(p.positive_id, floor)) if p.positive_id else floor
                       for p in positives[anchor]]
    return out


def _limit(s_pos: float, config: MiningConfig) -> float:
    """The highest candidate score the margin filters let through for a positive scoring ``s_pos``."""
    limit = math.inf
    if config.absolute_margin is not None:
        limit = min(limit, s_pos - config.absolute_margin)
    if config.relative_margin is not None:
        limit = min(limit, s_pos - abs(s_pos) * config.relative_margin)
    return limit


def mine_negatives(
    pairs: PairSet | Sequence[Pair],
    corpus: Corpus,
    retriever: Any,
    config: MiningConfig | None = None,
    *,
    known_positives: Mapping[str, set[str]] | None = None,
    indexed: bool = False,
) -> MiningResult:
    """Add hard negatives to ``pairs`` (see the module docstring).

    ``retriever``: an evalsuite retriever (indexed on ``corpus`` already when ``indexed``).
    ``known_positives``: extra document ids known to be relevant, by query id (e.g. every
    judged-relevant document of a training query); they are never mined as negatives.
    """
    import time

    config = config or MiningConfig()
    began = time.perf_counter()
    items = list(pairs.pairs if isinstance(pairs, PairSet) else pairs)
    if not items:
        raise ConfigError("no training pairs to mine negatives for")
    if not indexed:
        retriever.index(corpus)
    by_anchor: dict[str, list[Pair]] = {}
    for p in items:
        by_anchor.setdefault(p.anchor, []).append(p)
    anchors = list(by_anchor)
    known: dict[str, set[str]] = {}
    positive_texts: dict[str, set[str]] = {}
    for anchor, group in by_anchor.items():
        ids = {p.positive_id for p in group if p.positive_id}
        for p in group:
            if p.query_id is not None and known_positives is not None:
                ids |= set(known_positives.get(p.query_id, ()))
        known[anchor] = ids
        positive_texts[anchor] = {normalize(p.positive) for p in group if not p.positive_id}
    depth = min(len(corpus), config.top_k + max(len(v) for v in known.values()) + 1)
    queries = Queries.from_dict({f"a{i}": a for i, a in enumerate(anchors)})
    run = retriever.search(queries, k=depth)
    margins = config.absolute_margin is not None or config.relative_margin is not None
    full_run = None
    if margins and not callable(getattr(retriever, "embed", None)):
        full_run = retriever.search(queries, k=len(corpus))
    scores_pos = _positive_scores(retriever, anchors, by_anchor, corpus, full_run) if margins else {}

    counts = {"anchors": len(anchors), "pairs_in": len(items), "candidates_considered": 0,
              "known_positives_removed": 0, **{f"removed_{f}": 0 for f in FILTERS}, "candidates_left": 0,
              "negatives_mined": 0, "negatives_random_fill": 0, "pairs_dropped_too_few_negatives": 0}
    unfiltered: dict[str, list[str]] = {}
    survivors: dict[str, list[tuple[str, float]]] = {}
    for i, anchor in enumerate(anchors):
        ranking = run.ranking(f"a{i}") if f"a{i}" in run else []
        kept: list[tuple[str, float]] = []
        for doc_id, score in ranking:
            if doc_id in known[anchor] or (positive_texts[anchor] and
                                           normalize(doc_text(corpus, doc_id)) in positive_texts[anchor]):
                counts["known_positives_removed"] += 1
                continue
            kept.append((doc_id, float(score)))
        kept = kept[:config.top_k]
        counts["candidates_considered"] += len(kept)
        unfiltered[anchor] = [d for d, _ in kept]
        if config.skip_top:
            counts["removed_skip_top"] += min(config.skip_top, len(kept))
            kept = kept[config.skip_top:]
        pair_scores = scores_pos.get(anchor)
        s_pos = None
        if pair_scores:
            s_pos = max(pair_scores) if config.positive_score == "pair" else min(pair_scores)
        if config.absolute_margin is not None and s_pos is not None:
            limit = s_pos - config.absolute_margin
            counts["removed_absolute_margin"] += sum(s > limit for _, s in kept)
            kept = [(d, s) for d, s in kept if s <= limit]
        if config.relative_margin is not None and s_pos is not None:
            limit = s_pos - abs(s_pos) * config.relative_margin
            counts["removed_relative_margin"] += sum(s > limit for _, s in kept)
            kept = [(d, s) for d, s in kept if s <= limit]
        if config.max_score is not None:
            counts["removed_max_score"] += sum(s > config.max_score for _, s in kept)
            kept = [(d, s) for d, s in kept if s <= config.max_score]
        survivors[anchor] = kept
    if config.cross_encoder:
        _cross_encoder_filter(config, retriever, corpus, by_anchor, survivors, counts)

    rng = np.random.default_rng(config.seed)
    all_ids = corpus.ids.tolist()
    out: list[Pair] = []
    sampled: dict[str, list[str]] = {}
    for anchor in anchors:
        counts["candidates_left"] += len(survivors[anchor])
        excluded = known[anchor] | set(unfiltered[anchor])
        used: set[str] = set()
        pair_scores = scores_pos.get(anchor) or []
        for j, pair in enumerate(by_anchor[anchor]):
            pool = survivors[anchor]
            if config.positive_score == "pair" and pair_scores:
                limit = _limit(pair_scores[j], config)
                pool = [(d, s) for d, s in pool if s <= limit]
            pool_ids = [d for d, _ in pool]
            chosen = _pick(pool_ids, used, config, rng)
            used.update(chosen)
            missing = config.per_pair - len(chosen)
            if missing and config.fill == "drop":
                counts["pairs_dropped_too_few_negatives"] += 1
                continue
            if missing:
                fill = _random_docs(rng, all_ids, excluded | set(chosen), missing)
                counts["negatives_random_fill"] += len(fill)
                chosen += fill
            counts["negatives_mined"] += len(chosen)
            sampled.setdefault(anchor, []).extend(chosen)
            out.append(pair.with_negatives([doc_text(corpus, d) for d in chosen], chosen))
    counts["pairs_out"] = len(out)
    weakest = {a: min(v) for a, v in scores_pos.items() if v}
    return MiningResult(out, counts, {a: [d for d, _ in v] for a, v in survivors.items()}, unfiltered, sampled,
                        weakest, time.perf_counter() - began)


def _pick(pool: list[str], used: set[str], config: MiningConfig, rng: np.random.Generator) -> list[str]:
    """``per_pair`` negatives from ``pool`` (best first), the anchor's unused ones before used ones."""
    ordered = [d for d in pool if d not in used] + [d for d in pool if d in used]
    if config.strategy == "top":
        return ordered[:config.per_pair]
    fresh = [d for d in pool if d not in used]
    take = min(config.per_pair, len(fresh))
    chosen = [fresh[j] for j in sorted(rng.choice(len(fresh), size=take, replace=False))] if take else []
    if len(chosen) < config.per_pair:
        again = [d for d in pool if d in used]
        more = min(config.per_pair - len(chosen), len(again))
        chosen += [again[j] for j in sorted(rng.choice(len(again), size=more, replace=False))] if more else []
    return chosen


def _random_docs(rng: np.random.Generator, all_ids: list[str], excluded: set[str], n: int) -> list[str]:
    """``n`` distinct random documents outside ``excluded`` (fewer if the corpus is too small)."""
    out: list[str] = []
    tries = 0
    while len(out) < n and tries < 50 * n + 100:
        tries += 1
        doc = all_ids[int(rng.integers(len(all_ids)))]
        if doc not in excluded and doc not in out:
            out.append(doc)
    if len(out) < n:
        rest = [d for d in all_ids if d not in excluded and d not in out]
        out += rest[: n - len(out)]
    return out


def _cross_encoder_filter(config: MiningConfig, retriever: Any, corpus: Corpus, by_anchor: dict[str, list[Pair]],
                          survivors: dict[str, list[tuple[str, float]]], counts: dict[str, int]) -> None:
    """Drop candidates the cross-encoder scores at least as high as the weakest known positive."""
    from evalsuite.retrievers.rerank import RerankRetriever

    scorer = RerankRetriever(retriever, str(config.cross_encoder), progress=False)
    for anchor, kept in survivors.items():
        if not kept:
            continue
        pos = scorer.score_pairs([(anchor, p.positive) for p in by_anchor[anchor]])
        cand = scorer.score_pairs([(anchor, doc_text(corpus, d)) for d, _ in kept])
        limit = float(pos.min()) - config.cross_encoder_margin
        keep = cand < limit
        counts["removed_cross_encoder"] += int((~keep).sum())
        survivors[anchor] = [c for c, k in zip(kept, keep.tolist()) if k]


def false_negative_check(
    queries: Queries,
    corpus: Corpus,
    qrels_train: Mapping[str, Mapping[str, int]],
    retriever: Any,
    config: MiningConfig,
    *,
    seed: int = 0,
    indexed: bool = False,
) -> dict[str, Any]:
    """Measure how many true positives the miner would take as negatives, with and without the filters.

    For every training query with at least two relevant documents, a seeded half of them
    (rounded down, at least one) is hidden: pairs are built from the visible half only and the
    miner is told only those. A hidden positive among the candidates or the sampled negatives
    is a false negative that the miner cannot know about -- exactly the situation of
    unlabelled relevant documents. Reported for the configured filters and without them.
    """
    from evalsuite.finetune.pairs import pairs_from_qrels
    from evalsuite.types import Qrels

    rng = np.random.default_rng(seed)
    visible: dict[str, dict[str, int]] = {}
    hidden: dict[str, set[str]] = {}
    for qid in sorted(qrels_train):
        relevant = sorted(d for d, g in qrels_train[qid].items() if g >= 1 and d in corpus)
        if len(relevant) < 2 or qid not in queries:
            continue
        n_hide = max(1, len(relevant) // 2)
        order = rng.permutation(len(relevant))
        hide = {relevant[i] for i in order[:n_hide]}
        hidden[qid] = hide
        visible[qid] = {d: g for d, g in qrels_train[qid].items() if d not in hide}
    if not hidden:
        raise ConfigError("false-negative check: no training query has two or more relevant documents")
    pair_set = pairs_from_qrels(queries, corpus, Qrels.from_dict(visible), list(visible))
    known = {q: {d for d, g in docs.items() if g >= 1} for q, docs in visible.items()}
    anchor_of = {str(queries[q]).strip(): q for q in visible}
    out: dict[str, Any] = {"queries": len(hidden), "hidden_positives": sum(len(h) for h in hidden.values())}
    variants = [("unfiltered", config.without_filters())]
    if config.filtered:
        variants.append(("filtered", config))
    for label, cfg in variants:
        result = mine_negatives(pair_set, corpus, retriever, cfg, known_positives=known, indexed=indexed)
        indexed = True
        hits_candidates = hits_pool = hits_sampled = 0
        sampled_total = 0
        for anchor, qid in anchor_of.items():
            hide = hidden[qid]
            hits_candidates += len(hide & set(result.unfiltered.get(anchor, [])))
            hits_pool += len(hide & set(result.candidates.get(anchor, [])))
            chosen = result.sampled.get(anchor, [])
            sampled_total += len(chosen)
            hits_sampled += sum(d in hide for d in chosen)
        out[label] = {
            "hidden_in_top_k": hits_candidates,
            "hidden_left_after_filters": hits_pool,
            "hidden_sampled_as_negative": hits_sampled,
            "negatives_sampled": sampled_total,
            "false_negative_rate": hits_sampled / sampled_total if sampled_total else math.nan,
            "hidden_kept_rate": hits_pool / out["hidden_positives"],
            "counts": result.counts,
        }
    out["config"] = config.to_dict()
    return out
