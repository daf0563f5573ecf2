"""HybridRetriever and weight_sweep with in-test toy retrievers, and once with the real default
BM25 and dense components on the tiny fixture corpus.

The fusion of BM25 and dense on full Cranfield (RRF above both; a convex weight tuned on a dev
half) is checked by tests/integration/test_retrievers_cranfield.py (``-m slow``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from evalsuite import Corpus, Qrels, Queries, Run, evaluate
from evalsuite.errors import ConfigError, UnknownNameError
from evalsuite.retrievers import Retriever, get_retriever, register_retriever
from evalsuite.retrievers.base import RetrieverMeta
from evalsuite.retrievers.fusion import convex, rrf
from evalsuite.retrievers.hybrid import DEFAULT_SWEEP, HybridRetriever, build_retriever, weight_sweep

TOKEN = re.compile(r"[a-z]+")


class LexicalToy:
    """Scores a doc by the number of distinct query words it contains (title or text only)."""

    def __init__(self, field: str = "text", *, name: str = "lexical") -> None:
        self.field = field
        self.meta = RetrieverMeta(name=name, kind="bm25", label=f"word overlap on {field}", params={"field": field})
        self.stats: dict[str, float] = {}
        self.asked_k: list[int] = []
        self._docs: dict[str, set[str]] = {}

    def index(self, corpus: Corpus) -> None:
        texts = corpus.titles if self.field == "title" else corpus.texts
        self._docs = {d: set(TOKEN.findall(t.lower())) for d, t in zip(corpus.ids.tolist(), texts.tolist())}
        self.stats = {"docs": float(len(self._docs))}

    def search(self, queries: Queries, *, k: int = 100) -> Run:
        self.asked_k.append(k)
        results = {}
        for qid, text in zip(queries.ids.tolist(), queries.texts.tolist()):
            words = set(TOKEN.findall(text.lower()))
            scores = {d: float(len(words & w)) for d, w in self._docs.items() if words & w}
            results[qid] = scores
        self.stats = {**self.stats, "queries": float(len(queries))}
        return Run(results, name=self.meta.name).top_k(k)


class FixedToy:
    """Returns a fixed run (cut to k)."""

    def __init__(self, results: Mapping[str, Mapping[str, float]], *, name: str = "fixed") -> None:
        self.results = results
        self.meta = RetrieverMeta(name=name, kind="dense", label=f"fixed run {name}")
        self.stats: dict[str, float] = {}
        self.indexed: Corpus | None = None
        self.asked_k: list[int] = []

    def index(self, corpus: Corpus) -> None:
        self.indexed = corpus

    def search(self, queries: Queries, *, k: int = 100) -> Run:
        self.asked_k.append(k)
        return Run({q: dict(self.results.get(q, {})) for q in queries}, name=self.meta.name).top_k(k)


register_retriever("toy-lexical", f"{__name__}:LexicalToy")


def test_toys_follow_the_protocol() -> None:
    assert isinstance(LexicalToy(), Retriever) and isinstance(FixedToy({}), Retriever)


def test_rrf_hybrid_indexes_every_component_and_fuses_their_runs(tiny_corpus: Corpus, tiny_queries: Queries,
                                                                 tiny_qrels: Qrels) -> None:
    text, title = LexicalToy("text", name="text"), LexicalToy("title", name="title")
    hybrid = HybridRetriever([text, title], depth=5)
    hybrid.index(tiny_corpus)
    run = hybrid.search(tiny_queries, k=3)
    assert text.asked_k == [5] and title.asked_k == [5]  # each component searched `depth` deep
    expected = rrf([text.search(tiny_queries, k=5), title.search(tiny_queries, k=5)], k=60).top_k(3)
    assert run.to_dict() == expected.to_dict()
    assert run.name == "hybrid" and set(run.query_ids) == set(tiny_queries.ids)
    assert max(np.diff(run.offsets)) <= 3
    assert evaluate(tiny_qrels, run, "ndcg@10")["ndcg@10"] > 0.5  # sanity: the toys find the answers


def test_k_above_depth_searches_k_deep() -> None:
    a = FixedToy({"q": {f"d{i}": float(i) for i in range(10)}}, name="a")
    b = FixedToy({"q": {f"d{i}": float(-i) for i in range(10)}}, name="b")
    hybrid = HybridRetriever([a, b], depth=2)
    run = hybrid.search(Queries.from_dict({"q": "x"}), k=6)
    assert a.asked_k == [6] and b.asked_k == [6]
    assert len(run.ranking("q")) == 6 and hybrid.stats["depth"] == 6


def test_convex_hybrid_equals_the_convex_function(tiny_corpus: Corpus, tiny_queries: Queries) -> None:
    text, title = LexicalToy("text", name="text"), LexicalToy("title", name="title")
    hybrid = HybridRetriever([text, title], method="convex", weights=[3, 1], normalization="z-score", depth=10)
    hybrid.index(tiny_corpus)
    run = hybrid.search(tiny_queries, k=4)
    runs = [text.search(tiny_queries, k=10), title.search(tiny_queries, k=10)]
    assert run.to_dict() == convex(runs, [0.75, 0.25], normalization="z-score").top_k(4).to_dict()


def test_meta_names_the_method_and_every_component(tiny_corpus: Corpus) -> None:
    text, title = LexicalToy("text", name="bm25"), LexicalToy("title", name="dense")
    rrf_hybrid = HybridRetriever([text, title])
    meta = rrf_hybrid.meta
    assert meta.kind == "hybrid" and meta.name == "hybrid"
    assert meta.label == "RRF(k=60) of bm25 + dense"
    assert meta.components == (text.meta, title.meta)
    assert meta.params == {"method": "rrf", "depth": 1000, "rrf_k": 60.0}
    assert meta.to_dict()["components"][0]["label"] == "word overlap on text"

    convex_hybrid = HybridRetriever([text, title], method="convex", weights=[1, 3], name="cc")
    assert convex_hybrid.meta.label == "convex(min-max) of 0.25 bm25 + 0.75 dense"
    assert convex_hybrid.meta.params["weights"] == [0.25, 0.75]
    assert convex_hybrid.meta.params["normalization"] == "min-max"

    same = HybridRetriever([LexicalToy(name="x"), LexicalToy("title", name="x")], rrf_k=10)
    assert same.meta.label == "RRF(k=10) of x#1 + x#2"


def test_stats_hold_every_component(tiny_corpus: Corpus, tiny_queries: Queries) -> None:
    hybrid = HybridRetriever([LexicalToy(name="a"), LexicalToy("title", name="b")])
    hybrid.index(tiny_corpus)
    hybrid.search(tiny_queries, k=2)
    assert hybrid.stats["a/docs"] == 10 and hybrid.stats["b/queries"] == len(tiny_queries)
    for key in ("seconds_index", "a/seconds_index", "a/seconds_search", "b/seconds_search", "seconds_fusion"):
        assert hybrid.stats[key] >= 0
    assert all(isinstance(v, float) for v in hybrid.stats.values())


class CountingToy(LexicalToy):
    """A LexicalToy that counts its index() calls."""

    def __init__(self, field: str = "text", *, name: str = "lexical") -> None:
        super().__init__(field, name=name)
        self.index_calls = 0

    def index(self, corpus: Corpus) -> None:
        self.index_calls += 1
        super().index(corpus)


def test_components_indexed_by_the_caller_need_no_index_call(tiny_corpus: Corpus, tiny_queries: Queries) -> None:
    # the suite runner indexes bm25 and dense for their own cells, then searches the hybrid
    text, title = CountingToy("text", name="text"), CountingToy("title", name="title")
    text.index(tiny_corpus)
    title.index(tiny_corpus)
    hybrid = HybridRetriever([text, title], depth=5)
    assert hybrid.components == (text, title)  # what the runner reads to skip indexing
    run = hybrid.search(tiny_queries, k=3)
    expected = rrf([text.search(tiny_queries, k=5), title.search(tiny_queries, k=5)]).top_k(3)
    assert run.to_dict() == expected.to_dict()
    hybrid.index(tiny_corpus, components_indexed=True)  # explicit: nothing indexed again
    assert (text.index_calls, title.index_calls) == (1, 1)
    assert hybrid.stats["text/docs"] == len(tiny_corpus)
    hybrid.index(tiny_corpus)  # a plain index() indexes every component
    assert (text.index_calls, title.index_calls) == (2, 2)


def test_bm25_plus_dense_by_registry_names(tiny_corpus: Corpus, tiny_queries: Queries, tiny_qrels: Qrels,
                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real default components (bm25s, packaged MiniLM): the fused run is RRF of theirs."""
    pytest.importorskip("bm25s")
    pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("EVALSUITE_CACHE_DIR", str(tmp_path / "cache"))
    hybrid = get_retriever("hybrid", retrievers=["bm25", "dense"], depth=10)
    assert isinstance(hybrid, HybridRetriever)
    bm25, dense = hybrid.components
    assert [c.meta.kind for c in hybrid.components] == ["bm25", "dense"]
    hybrid.index(tiny_corpus)
    run = hybrid.search(tiny_queries, k=5)
    bm25_run, dense_run = bm25.search(tiny_queries, k=10), dense.search(tiny_queries, k=10)
    assert run.to_dict() == rrf([bm25_run, dense_run], k=60).top_k(5).to_dict()
    # every tiny query has one unambiguous best document; both components and the fusion find it
    for system in (bm25_run, dense_run, run):
        assert evaluate(tiny_qrels, system, "success@1")["success@1"] == 1.0, system.name
    assert hybrid.meta.label == "RRF(k=60) of bm25 + dense"
    assert hybrid.meta.components == (bm25.meta, dense.meta)
    assert hybrid.meta.components[1].model_fingerprint  # the dense model is identified
    assert hybrid.stats["dense/seconds_search"] >= 0 and hybrid.stats["depth"] == 10

    convex_hybrid = HybridRetriever([bm25, dense], method="convex", weights=[0.3, 0.7], depth=10)
    fused = convex_hybrid.search(tiny_queries, k=5)  # components already indexed above
    assert fused.to_dict() == convex([bm25_run, dense_run], [0.3, 0.7]).top_k(5).to_dict()


def test_components_from_names_and_dicts(tiny_corpus: Corpus, tiny_queries: Queries) -> None:
    hybrid = HybridRetriever(["toy-lexical", {"name": "toy-lexical", "field": "title"}])
    assert [c.meta.label for c in hybrid.components] == ["word overlap on text", "word overlap on title"]
    renamed = build_retriever({"retriever": "toy-lexical", "name": "titles", "field": "title"})
    assert renamed.meta.name == "titles"
    via_registry = get_retriever("hybrid", retrievers=["toy-lexical", renamed], method="convex")
    assert isinstance(via_registry, HybridRetriever)
    via_registry.index(tiny_corpus)
    assert via_registry.search(tiny_queries, k=2).n_rows > 0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"retrievers": ["toy-lexical"]}, "at least two retrievers, got 1"),
    ({"retrievers": "toy-lexical"}, "must be a list of two or more"),
    ({"method": "rff"}, "method must be one of 'rrf', 'convex', got 'rff'"),
    ({"weights": [1, 2]}, "weights is only used by method='convex'"),
    ({"weights": [1, 2], "normalization": "none"}, "weights and normalization are only used by method='convex'"),
    ({"normalization": "z-score"}, "normalization is only used by method='convex'"),
    ({"method": "convex", "rrf_k": 10}, "rrf_k is only used by method='rrf'"),
    ({"rrf_k": -1}, r"rrf_k \(the RRF rank constant\) must be a finite number >= 0"),
    ({"method": "convex", "weights": [1]}, r"one weight per run \(2 runs\)"),
    ({"method": "convex", "weights": [-1, 2]}, ">= 0"),
    ({"method": "convex", "weights": [0, 0]}, "all zero"),
    ({"method": "convex", "normalization": "l2"}, "normalization must be one of"),
    ({"depth": 0}, "depth must be a positive integer"),
    ({"retrievers": ["toy-lexical", {"field": "title"}]}, r"retrievers\[1\]: .* needs its registered name"),
    ({"retrievers": ["toy-lexical", 42]}, r"retrievers\[1\]: expected a Retriever"),
    ({"retrievers": ["toy-lexical", {"name": "toy-lexical", "feild": "x"}]}, "did you mean 'field'"),
])
def test_invalid_configs_raise_config_errors(kwargs: dict[str, object], message: str) -> None:
    args = {"retrievers": ["toy-lexical", "toy-lexical"], **kwargs}
    with pytest.raises(ConfigError, match=message):
        HybridRetriever(**args)  # type: ignore[arg-type]


def test_unknown_component_name_suggests_the_closest() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'toy-lexical'"):
        HybridRetriever(["toy-lexical", "toy-lexicl"])


def test_search_validates_k(tiny_queries: Queries) -> None:
    with pytest.raises(ConfigError, match="k must be a positive integer"):
        HybridRetriever([FixedToy({}), FixedToy({})]).search(tiny_queries, k=0)


# -- weight sweep ----------------------------------------------------------------------------

# One query; d1 is the only relevant doc. Min-max scores: A d1 .55, d2 1, d3 0; B d1 .55, d2 0, d3 1.
# Fused at weight w: d1 .55, d2 w, d3 1 - w, so d1 is first only when .45 < w < .55: at w = 0.5.
SWEEP_A = {"q": {"d1": 0.55, "d2": 1.0, "d3": 0.0}}
SWEEP_B = {"q": {"d1": 0.55, "d2": 0.0, "d3": 1.0}}
SWEEP_QRELS = {"q": {"d1": 1}}


def test_weight_sweep_finds_the_best_weight() -> None:
    frame = weight_sweep([Run(SWEEP_A, name="a"), Run(SWEEP_B, name="b")], SWEEP_QRELS, metric="nDCG@10")
    assert list(frame.columns) == ["weight", "ndcg@10", "queries", "best"]
    assert frame.shape == (11, 4)
    assert frame["weight"].tolist() == list(DEFAULT_SWEEP)
    assert frame.loc[frame["best"], "weight"].tolist() == [0.5]
    assert frame.loc[frame["best"], "ndcg@10"].item() == 1.0
    assert (frame.loc[~frame["best"], "ndcg@10"] < 1.0).all()
    assert frame.attrs == {"first": "a", "second": "b", "metric": "ndcg@10", "normalization": "min-max"}
    assert (frame["queries"] == 1).all()


def test_weight_sweep_rows_equal_direct_evaluation(tiny_corpus: Corpus, tiny_queries: Queries,
                                                   tiny_qrels: Qrels) -> None:
    text, title = LexicalToy("text", name="text"), LexicalToy("title", name="title")
    grid = [0.0, 0.25, 0.9]
    frame = weight_sweep([text, {"name": "toy-lexical", "field": "title"}], tiny_qrels, metric="mrr@10",
                         weights=grid, normalization="z-score", queries=tiny_queries, corpus=tiny_corpus, depth=5)
    assert text.asked_k == [5]
    title.index(tiny_corpus)
    runs = [text.search(tiny_queries, k=5), title.search(tiny_queries, k=5)]
    for w, value in zip(frame["weight"], frame["mrr@10"]):
        fused = convex(runs, [w, 1 - w], normalization="z-score")
        assert value == pytest.approx(evaluate(tiny_qrels, fused, "mrr@10")["mrr@10"])
    assert frame["weight"].tolist() == grid


def test_weight_sweep_rejects_bad_input() -> None:
    runs = [Run(SWEEP_A), Run(SWEEP_B)]
    with pytest.raises(ConfigError, match="exactly two"):
        weight_sweep([*runs, Run(SWEEP_A)], SWEEP_QRELS)
    with pytest.raises(ConfigError, match=r"in \[0, 1\]"):
        weight_sweep(runs, SWEEP_QRELS, weights=[0.5, 1.5])
    with pytest.raises(ConfigError, match="pass queries="):
        weight_sweep([runs[0], LexicalToy()], SWEEP_QRELS)
    with pytest.raises(ConfigError, match="normalization must be one of"):
        weight_sweep(runs, SWEEP_QRELS, normalization="max")  # type: ignore[arg-type]
