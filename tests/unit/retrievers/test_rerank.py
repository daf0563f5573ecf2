"""RerankRetriever plumbing on a tiny *random* BERT cross-encoder (tests/_tinymodel.py).

No trained cross-encoder ships on PyPI (MODELS.md): these tests check what is reranked,
in which order and under which name -- never retrieval quality.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from evalsuite import Corpus, Queries, Run
from evalsuite.errors import ConfigError, DataError
from evalsuite.models import content_fingerprint
from evalsuite.retrievers import Retriever, get_retriever, register_retriever
from evalsuite.retrievers.base import RetrieverMeta
from evalsuite.retrievers.rerank import RerankRetriever
from tests._tinymodel import save_tiny_bert

pytest.importorskip("sentence_transformers")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-random-bert-ce")


@pytest.fixture(scope="module")
def direct(tiny_cross_encoder: Path) -> object:
    """The same model loaded directly with sentence-transformers, to compare scores with."""
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(tiny_cross_encoder), device="cpu")


class FixedToy:
    """A first stage that returns a fixed run (cut to k)."""

    def __init__(self, results: Mapping[str, Mapping[str, float]] | None = None, *, name: str = "fixed") -> None:
        self.results = results or {}
        self.meta = RetrieverMeta(name=name, kind="bm25", label=f"fixed run {name}")
        self.stats: dict[str, float] = {}
        self.asked_k: list[int] = []

    def index(self, corpus: Corpus) -> None:
        self.stats = {"docs": float(len(corpus))}

    def search(self, queries: Queries, *, k: int = 100) -> Run:
        self.asked_k.append(k)
        return Run({q: dict(self.results.get(q, {})) for q in queries}, name=self.meta.name).top_k(k)


register_retriever("toy-rerank-first-stage", f"{__name__}:FixedToy")

# first stage for every tiny query: d9 (no title) d1 d2 ... d8 d10, scores descending
ORDER = ["d9", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d10"]


def first_stage_run(queries: Queries) -> dict[str, dict[str, float]]:
    return {q: {d: float(10 - i) for i, d in enumerate(ORDER)} for q in queries}


def doc_text(corpus: Corpus, doc_id: str) -> str:
    title, text = corpus[doc_id]
    return f"{title} {text}" if title else text


def ranked(run: Run, query: str) -> list[str]:
    return [d for d, _ in run.ranking(query)]


def test_only_top_n_are_reranked_in_the_cross_encoders_order(tiny_corpus: Corpus, tiny_queries: Queries,
                                                             tiny_cross_encoder: Path, direct: object) -> None:
    first = FixedToy(first_stage_run(tiny_queries))
    reranker = RerankRetriever(first, tiny_cross_encoder, top_n=4)
    assert isinstance(reranker, Retriever)
    reranker.index(tiny_corpus)
    run = reranker.search(tiny_queries, k=4)
    assert first.asked_k == [4]
    assert reranker.stats["pairs_scored"] == 4 * len(tiny_queries)
    assert run.name == "rerank"
    for qid in tiny_queries:
        docs = ORDER[:4]  # only the first stage's top 4, d9 with its empty title
        pairs = [(tiny_queries[qid], doc_text(tiny_corpus, d)) for d in docs]
        expected = direct.predict(pairs, activation_fn=torch.nn.Identity(), show_progress_bar=False)  # type: ignore[attr-defined]
        got = run.to_dict()[qid]
        assert set(got) == set(docs)
        np.testing.assert_allclose([got[d] for d in docs], expected, atol=1e-5)
        assert ranked(run, qid) == [docs[i] for i in np.argsort(-np.asarray(expected))]


def test_k_above_top_n_appends_the_first_stage_tail_below(tiny_corpus: Corpus, tiny_queries: Queries,
                                                          tiny_cross_encoder: Path) -> None:
    first = FixedToy(first_stage_run(tiny_queries))
    reranker = RerankRetriever(first, tiny_cross_encoder, top_n=3)
    reranker.index(tiny_corpus)
    run = reranker.search(tiny_queries, k=7)
    assert first.asked_k == [7] and reranker.stats["pairs_scored"] == 3 * len(tiny_queries)
    for qid in tiny_queries:
        ranking = run.ranking(qid)
        assert len(ranking) == 7
        head, tail = ranking[:3], ranking[3:]
        assert {d for d, _ in head} == set(ORDER[:3])
        assert [d for d, _ in tail] == ORDER[3:7]  # the first stage's ranks 4..7, in its order
        lowest = min(s for _, s in head)
        assert [s for _, s in tail] == [lowest - 1, lowest - 2, lowest - 3, lowest - 4]


def test_k_below_top_n_keeps_the_best_k_of_the_reranking(tiny_corpus: Corpus, tiny_queries: Queries,
                                                         tiny_cross_encoder: Path) -> None:
    first = FixedToy(first_stage_run(tiny_queries))
    reranker = RerankRetriever(first, tiny_cross_encoder, top_n=5)
    reranker.index(tiny_corpus)
    full = reranker.search(tiny_queries, k=5)
    short = reranker.search(tiny_queries, k=2)
    assert first.asked_k == [5, 5]
    for qid in tiny_queries:
        assert ranked(short, qid) == ranked(full, qid)[:2]


def test_pairs_use_title_and_text_and_scores_decide_the_order(tiny_corpus: Corpus, tiny_queries: Queries,
                                                              tiny_cross_encoder: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str]] = []

    def by_length(pairs: list[tuple[str, str]]) -> np.ndarray:
        seen.extend(pairs)
        return np.array([float(len(d)) for _, d in pairs])

    reranker = RerankRetriever(FixedToy({"q1": {"d9": 3.0, "d6": 2.0, "d10": 1.0}}), tiny_cross_encoder, top_n=3)
    monkeypatch.setattr(reranker, "score_pairs", by_length)
    reranker.index(tiny_corpus)
    run = reranker.search(Queries.from_dict({"q1": "a query", "q2": "nothing retrieved"}), k=10)
    assert seen == [("a query", doc_text(tiny_corpus, d)) for d in ("d9", "d6", "d10")]
    assert seen[0][1] == "Laminar flow becomes turbulent when the Reynolds number is high."  # empty title
    assert seen[1][1].startswith("Cooking Bake the bread")
    assert ranked(run, "q1") == sorted(["d9", "d6", "d10"], key=lambda d: -len(doc_text(tiny_corpus, d)))
    assert run.to_dict()["q2"] == {}  # a query with no first-stage result stays, empty
    assert reranker.stats["pairs_scored"] == 3 and reranker.stats["queries"] == 2


def test_meta_names_the_cross_encoder_and_the_first_stage(tiny_cross_encoder: Path) -> None:
    first = FixedToy(name="bm25")
    reranker = RerankRetriever(first, tiny_cross_encoder, top_n=20, name="ce")
    meta = reranker.meta
    assert meta.kind == "rerank" and meta.name == "ce"
    assert meta.model == str(tiny_cross_encoder.resolve())
    assert meta.model_fingerprint == content_fingerprint(tiny_cross_encoder)
    assert meta.components == (first.meta,)
    assert "tiny-random-bert-ce" in meta.label and "cross-encoder" in meta.label
    assert "top 20 of fixed run bm25" in meta.label
    assert "WARNING" not in meta.label
    assert meta.params["top_n"] == 20
    assert meta.to_dict()["components"][0]["name"] == "bm25"


def test_checkpoint_without_a_classification_head_is_flagged(tmp_path: Path) -> None:
    bare = save_tiny_bert(tmp_path / "bare-bert", head=False)
    reranker = RerankRetriever(FixedToy(), bare)
    assert "WARNING" in reranker.meta.label and "randomly initialised" in reranker.meta.label


def test_a_model_with_several_outputs_is_refused(tmp_path: Path, tiny_corpus: Corpus, tiny_queries: Queries) -> None:
    two = save_tiny_bert(tmp_path / "two-labels", num_labels=2)
    reranker = RerankRetriever(FixedToy(first_stage_run(tiny_queries)), two, top_n=2)
    reranker.index(tiny_corpus)
    with pytest.raises(ConfigError, match=r"2 outputs.*num_labels=1"):
        reranker.search(tiny_queries, k=2)


def test_unknown_or_unsuitable_models_raise_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'org/no-such-cross-encoder' could not be loaded"):
        RerankRetriever(FixedToy(), "org/no-such-cross-encoder")  # offline in tests: never fetched
    with pytest.raises(ConfigError, match="does not exist"):
        RerankRetriever(FixedToy(), "./no/such/model")
    with pytest.raises(ConfigError, match="not a cross-encoder"):
        RerankRetriever(FixedToy(), "minilm")  # the packaged bi-encoder
    (tmp_path / "empty").mkdir()
    reranker = RerankRetriever(FixedToy({"q": {"d1": 1.0}}), tmp_path / "empty")
    reranker.index(Corpus.from_dict({"d1": "text"}))
    with pytest.raises(ConfigError, match="could not be loaded as a sentence-transformers CrossEncoder"):
        reranker.search(Queries.from_dict({"q": "x"}), k=1)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"top_n": 0}, "top_n must be a positive integer"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"max_length": -1}, "max_length must be a positive integer"),
    ({"first_stage": 3}, "first_stage: expected a Retriever"),
])
def test_invalid_parameters(kwargs: dict[str, object], message: str, tiny_cross_encoder: Path) -> None:
    args = {"first_stage": FixedToy(), "model": tiny_cross_encoder, **kwargs}
    with pytest.raises(ConfigError, match=message):
        RerankRetriever(**args)  # type: ignore[arg-type]


def test_usage_errors(tiny_corpus: Corpus, tiny_queries: Queries, tiny_cross_encoder: Path) -> None:
    reranker = RerankRetriever(FixedToy(first_stage_run(tiny_queries)), tiny_cross_encoder)
    with pytest.raises(ConfigError, match=r"call index\(corpus\) before search\(\)"):
        reranker.search(tiny_queries, k=3)
    reranker.index(tiny_corpus.subset(["d1", "d2"]))
    with pytest.raises(DataError, match=r"doc 'd9' .* not in the indexed corpus"):
        reranker.search(tiny_queries, k=3)


def test_built_by_name_with_max_length(tiny_corpus: Corpus, tiny_queries: Queries, tiny_cross_encoder: Path) -> None:
    reranker = get_retriever("rerank", first_stage={"name": "toy-rerank-first-stage",
                                                    "results": first_stage_run(tiny_queries)},
                             model=str(tiny_cross_encoder), top_n=2, max_length=16)
    assert isinstance(reranker, RerankRetriever)
    reranker.index(tiny_corpus)
    run = reranker.search(tiny_queries, k=2)
    assert run.n_rows == 2 * len(tiny_queries)
    assert reranker._load().max_seq_length == 16
    assert reranker.stats["first_stage/docs"] == len(tiny_corpus)


def test_first_stage_indexed_by_the_caller_is_not_indexed_again(tiny_corpus: Corpus, tiny_queries: Queries,
                                                                tiny_cross_encoder: Path) -> None:
    # the suite runner indexes the first stage for its own cell, then the rerank composite
    class Counting(FixedToy):
        calls = 0

        def index(self, corpus: Corpus) -> None:
            Counting.calls += 1
            super().index(corpus)

    first = Counting(first_stage_run(tiny_queries))
    first.index(tiny_corpus)
    reranker = RerankRetriever(first, tiny_cross_encoder, top_n=2)
    assert reranker.first_stage is first  # what the runner reads to skip indexing
    reranker.index(tiny_corpus, components_indexed=True)
    assert Counting.calls == 1
    run = reranker.search(tiny_queries, k=3)
    assert run.n_rows == 3 * len(tiny_queries) and reranker.stats["first_stage/docs"] == len(tiny_corpus)
    reranker.index(tiny_corpus)
    assert Counting.calls == 2
