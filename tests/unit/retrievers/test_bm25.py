"""The embedded BM25 retriever (bm25s) on the tiny corpus, plus one opt-in Cranfield run."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalsuite import Corpus, Qrels, Queries, evaluate
from evalsuite.errors import ConfigError, DataError
from evalsuite.retrievers import get_retriever
from evalsuite.retrievers.base import Retriever
from evalsuite.retrievers.bm25 import BM25Retriever

pytest.importorskip("bm25s", reason="the bm25 retriever needs bm25s (pip install 'evalsuite[bm25]')")


@pytest.fixture(scope="module")
def default_retriever(tiny_corpus: Corpus) -> BM25Retriever:
    retriever = get_retriever("bm25")
    assert isinstance(retriever, BM25Retriever)
    retriever.index(tiny_corpus)
    return retriever


def test_right_document_first(default_retriever: BM25Retriever, tiny_queries: Queries, tiny_qrels: Qrels) -> None:
    run = default_retriever.search(tiny_queries, k=5)
    assert run.name == "bm25"
    assert set(run.query_ids.tolist()) == set(tiny_queries.ids.tolist())
    for query_id in tiny_queries:
        best = max(tiny_qrels.judgements(query_id).items(), key=lambda item: item[1])[0]
        assert run.ranking(query_id)[0][0] == best, query_id
        assert len(run.ranking(query_id)) <= 5
    assert evaluate(tiny_qrels, run, ["mrr@10"])["mrr@10"] == 1.0


def test_registry_defaults() -> None:
    retriever = get_retriever("bm25")
    assert isinstance(retriever, Retriever)
    meta = retriever.meta
    assert (meta.name, meta.kind) == ("bm25", "bm25")
    params = dict(meta.params)
    assert params["engine"] == "bm25s"
    assert (params["k1"], params["b"], params["method"]) == (1.5, 0.75, "lucene")
    assert params["stopwords"] == "english"
    assert params["stemmer"] is None
    assert params["document"] == "title + ' ' + text"
    assert meta.label == "BM25 (bm25s, k1=1.5, b=0.75, English stopwords, no stemming)"
    assert get_retriever("bm25s").meta.params == meta.params  # alias
    meta.to_dict()  # JSON-ready


def test_documents_are_title_plus_text() -> None:
    corpus = Corpus.from_dict({"a": {"title": "zeppelin", "text": "airship"}, "b": {"title": "", "text": "ship"}})
    retriever = BM25Retriever()
    retriever.index(corpus)
    run = retriever.search(Queries.from_dict({"q": "zeppelin"}))
    assert [doc for doc, _ in run.ranking("q")] == ["a"]


def test_stemming_changes_matches(tiny_corpus: Corpus) -> None:
    queries = Queries.from_dict({"q": "wings"})  # the corpus only has "wing"
    plain = BM25Retriever()
    plain.index(tiny_corpus)
    assert plain.search(queries).ranking("q") == []
    stemmed = BM25Retriever(stemmer="english")
    stemmed.index(tiny_corpus)
    assert {doc for doc, _ in stemmed.search(queries).ranking("q")} == {"d2", "d5"}
    assert stemmed.meta.params["stemmer"] == "english"
    assert "english stemming" in stemmed.meta.label
    assert stemmed.stats["vocabulary_size"] < plain.stats["vocabulary_size"]


def test_stopwords_change_matches(tiny_corpus: Corpus) -> None:
    queries = Queries.from_dict({"q": "the"})
    english = BM25Retriever()
    english.index(tiny_corpus)
    assert english.search(queries).ranking("q") == []
    none = BM25Retriever(stopwords=None)
    none.index(tiny_corpus)
    assert {doc for doc, _ in none.search(queries).ranking("q")} == {"d1", "d5", "d6", "d9", "d10"}
    assert none.meta.params["stopwords"] is None and "no stopwords" in none.meta.label
    custom = BM25Retriever(stopwords=["Boundary"])
    custom.index(tiny_corpus)
    assert custom.search(Queries.from_dict({"q": "boundary"})).ranking("q") == []
    assert custom.meta.params["stopwords"] == ["boundary"]
    assert "1 custom stopwords" in custom.meta.label


def test_k_is_clipped_and_ties_follow_trec_eval(tiny_corpus: Corpus) -> None:
    retriever = BM25Retriever(stopwords=None)
    retriever.index(tiny_corpus)
    queries = Queries.from_dict({"q": "a the"})
    run = retriever.search(queries, k=1000)
    assert 0 < len(run.ranking("q")) <= len(tiny_corpus)
    top2 = retriever.search(queries, k=2)
    assert top2.ranking("q") == run.ranking("q")[:2]
    with pytest.raises(ConfigError, match="k must be a positive integer"):
        retriever.search(queries, k=0)


def test_queries_without_indexed_terms(default_retriever: BM25Retriever) -> None:
    queries = Queries.from_dict({"empty": "", "stop": "the of and", "unseen": "xylophone quasar", "ok": "oven"})
    run = default_retriever.search(queries, k=10)
    assert run.query_ids.tolist() == ["empty", "stop", "unseen", "ok"]
    assert run.ranking("empty") == run.ranking("stop") == run.ranking("unseen") == []
    assert [doc for doc, _ in run.ranking("ok")] == ["d6"]  # only matching documents are returned
    assert default_retriever.stats["queries_without_terms"] == 3
    assert default_retriever.stats["hits"] == 1


def test_stats_and_degenerate_corpora() -> None:
    retriever = BM25Retriever()
    retriever.index(Corpus.from_dict({"a": "the of", "b": ""}))  # nothing to index
    assert retriever.stats["vocabulary_size"] == 0 and retriever.stats["empty_documents"] == 2
    assert retriever.search(Queries.from_dict({"q": "the anything"})).ranking("q") == []
    with pytest.raises(DataError, match="empty corpus"):
        retriever.index(Corpus.from_dict({}))
    with pytest.raises(ConfigError, match="before index"):
        BM25Retriever().search(Queries.from_dict({"q": "x"}))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"k1": -1}, "k1 must be >= 0"),
        ({"k1": float("nan")}, "k1 must be a finite number"),
        ({"b": 1.5}, "b must be between 0 and 1"),
        ({"b": "0.75"}, "b must be a finite number"),
        ({"method": "okapi"}, "unknown method 'okapi'; choose one of lucene, robertson"),
        ({"stopwords": "klingon"}, "unknown stopwords language 'klingon'; choose one of .*english"),
        ({"stopwords": [1, 2]}, "stopwords must be a language name, a list of words"),
        ({"stemmer": "klingon"}, "unknown stemmer 'klingon'; PyStemmer languages: .*english.*porter"),
        ({"name": ""}, "name must be a non-empty string"),
        ({"k_1": 1.2}, "has no parameter 'k_1'; did you mean 'k1'"),
    ],
)
def test_bad_parameters(params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        get_retriever("bm25", **params)


def test_other_methods_run(tiny_corpus: Corpus, tiny_queries: Queries) -> None:
    for method in ("robertson", "atire", "bm25l", "bm25+"):
        retriever = BM25Retriever(method=method)
        retriever.index(tiny_corpus)
        run = retriever.search(tiny_queries, k=3)
        assert run.ranking("q3")[0][0] == "d3", method
        assert f"method={method}" in retriever.meta.label


@pytest.mark.slow
def test_cranfield_reference_numbers(cranfield_dir: Path) -> None:
    """bm25s 0.3.16 defaults + English stopwords, title + text, 225 queries (pytrec_eval reference)."""
    from evalsuite.io import read_beir

    data = read_beir(cranfield_dir)
    retriever = get_retriever("bm25")
    retriever.index(data.corpus)
    run = retriever.search(data.queries, k=100)
    result = evaluate(data.qrels, run, ["ndcg@10", "recall@100"])
    assert result.n_queries["ndcg@10"] == 225
    assert result["ndcg@10"] == pytest.approx(0.3369, abs=0.005)
    assert result["recall@100"] == pytest.approx(0.7039, abs=0.005)
