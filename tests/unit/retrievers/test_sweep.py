"""The quality/cost sweep, one axis at a time, against computations written out here with numpy:
truncation renormalises; int8 scores are int8 x int8 inner products under the corpus-calibrated
ranges; binary scores are dim - 2 * Hamming; rescoring re-ranks exactly the first stage's top
k*r; every point comes from one encoding; the float32/full/flat point is the dense retriever."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evalsuite import Corpus, Queries
from evalsuite.config import load_suite
from evalsuite.errors import ConfigError
from evalsuite.retrievers.sweep import IndexSpec, PointSpec, SharedEncoding, SweepPoint, expand_sweep, parse_sweep

pytest.importorskip("faiss")
pytest.importorskip("sentence_transformers")

from evalsuite.retrievers.dense import DenseRetriever

from .test_dense import HashEncoder

ISSUE_GRID = {"dim": [384, 256, 128, 64], "precision": ["float32", "int8", "ubinary"], "rescore": [1, 4],
              "index": ["flat", {"hnsw": {"M": 16, "ef_search": [32, 128]}}, {"ivf": {"nlist": 64, "nprobe": [4, 16]}}]}
N_DOCS, N_QUERIES, DIM = 300, 12, 32


@pytest.fixture()
def data() -> tuple[Corpus, Queries]:
    corpus = Corpus.from_dict({f"d{i:03d}": {"title": "", "text": f"document {i}"} for i in range(N_DOCS)})
    queries = Queries.from_dict({f"q{i}": f"query {i}" for i in range(N_QUERIES)})
    return corpus, queries


@pytest.fixture()
def shared(tmp_path: Path) -> SharedEncoding:
    return SharedEncoding(DenseRetriever(HashEncoder(dim=DIM), cache_dir=tmp_path, progress=False))


def _point(shared: SharedEncoding, dim: int | None, precision: str, rescore: int = 1,
           index: IndexSpec | None = None) -> SweepPoint:
    spec = PointSpec(dim, precision, rescore, index or IndexSpec("flat"))
    return SweepPoint(spec.name("h", DIM), spec, shared)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _vectors(shared: SharedEncoding, corpus: Corpus, queries: Queries, dim: int) -> tuple[np.ndarray, np.ndarray]:
    encoder = shared.dense.encoder
    docs = encoder.encode(corpus.contents(), kind="document")
    qs = encoder.encode([str(t) for t in queries.texts], kind="query")
    return _unit(docs[:, :dim]), _unit(qs[:, :dim])


def _ranking(scores: np.ndarray, ids: list[str], k: int) -> list[str]:
    """Score descending (compared at float32), then doc id descending: the evaluation's order."""
    order = sorted(range(len(ids)), key=lambda i: (-np.float32(scores[i]), tuple(-ord(c) for c in ids[i])))
    return [ids[i] for i in order[:k]]


def _int8(x: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    step = (high - low) / 255
    return (np.clip(np.floor((x - low) / step), 0, 255) - 128).astype(np.int64)


# -- the grid ---------------------------------------------------------------------------------------


def test_the_issue_grid_has_readable_names_and_no_float32_rescoring() -> None:
    points = parse_sweep(ISSUE_GRID)
    assert len(points) == 4 * (1 + 2 + 2) * 5
    names = [p.name("minilm") for p in points]
    assert len(set(names)) == len(names)
    for expected in ("minilm@128/int8/hnsw-M16-ef128", "minilm@384/float32/flat",
                     "minilm@64/ubinary+rescore4/ivf-nlist64-np16", "minilm@256/int8+rescore4/hnsw-M16-ef32"):
        assert expected in names
    assert not any("float32+rescore" in n for n in names)


@pytest.mark.parametrize(("grid", "message"), [
    ({"dims": [64]}, "did you mean 'dim'"),
    ({"precision": ["fp16"]}, "precision must be one of"),
    ({"precision": ["ubinary"], "dim": [12]}, "multiple of 8"),
    ({"index": [{"hnsw": {"efsearch": 3}}]}, "did you mean 'ef_search'"),
    ({"rescore": [0]}, "positive integer"),
    ({"encoder": ["fp8"]}, "encoder must be one of"),
])
def test_bad_grids_are_one_line_errors(grid: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_sweep(grid)


def test_a_bad_sweep_in_a_suite_names_file_line_and_field(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ntasks:\n  - {name: t, type: golden, path: x}\nretrievers:\n  - name: m\n"
                     "    type: dense\n    sweep:\n      precision: [int4]\n")
    with pytest.raises(ConfigError, match=r"s\.yaml:8: retrievers\[0\]\.sweep: sweep: precision must be one of"):
        load_suite(suite)


# -- each axis against numpy ------------------------------------------------------------------------------


def test_truncation_renormalises_and_ranks_by_cosine(shared: SharedEncoding, data: tuple[Corpus, Queries]) -> None:
    corpus, queries = data
    point = _point(shared, 8, "float32")
    point.index(corpus)
    run = point.search(queries, k=10)
    docs, qs = _vectors(shared, corpus, queries, 8)
    ids = corpus.ids.tolist()
    for i, qid in enumerate(queries.ids.tolist()):
        scores = docs @ qs[i]
        got = run.ranking(qid)
        assert [d for d, _ in got] == _ranking(scores, ids, 10)
        assert [s for _, s in got] == pytest.approx([scores[ids.index(d)] for d, _ in got], abs=1e-6)
        assert max(s for _, s in got) <= 1 + 1e-6  # cosine of unit vectors


def test_int8_scores_are_int8_inner_products_under_corpus_ranges(shared: SharedEncoding,
                                                                 data: tuple[Corpus, Queries]) -> None:
    corpus, queries = data
    point = _point(shared, 16, "int8")
    point.index(corpus)
    run = point.search(queries, k=20)
    docs, qs = _vectors(shared, corpus, queries, 16)
    low, high = docs.min(axis=0), docs.max(axis=0)
    dq, qq = _int8(docs, low, high), _int8(qs, low, high)
    ids = corpus.ids.tolist()
    for i, qid in enumerate(queries.ids.tolist()):
        scores = (dq @ qq[i]).astype(np.float64)
        got = run.ranking(qid)
        assert [d for d, _ in got] == _ranking(scores, ids, 20)
        assert [s for _, s in got] == [scores[ids.index(d)] for d, _ in got]  # exact integers


def test_binary_scores_are_dim_minus_twice_the_hamming_distance(shared: SharedEncoding,
                                                                data: tuple[Corpus, Queries]) -> None:
    corpus, queries = data
    point = _point(shared, 24, "ubinary")
    point.index(corpus)
    run = point.search(queries, k=15)
    docs, qs = _vectors(shared, corpus, queries, 24)
    signs_d, signs_q = np.where(docs > 0, 1, -1), np.where(qs > 0, 1, -1)
    ids = corpus.ids.tolist()
    for i, qid in enumerate(queries.ids.tolist()):
        scores = (signs_d @ signs_q[i]).astype(np.float64)  # = 24 - 2 * hamming
        hamming = (docs > 0) != (qs[i] > 0)
        assert np.array_equal(scores, 24 - 2 * hamming.sum(axis=1))
        got = run.ranking(qid)
        assert [d for d, _ in got] == _ranking(scores, ids, 15)  # ties broken by doc id, as everywhere
        assert [s for _, s in got] == [scores[ids.index(d)] for d, _ in got]


@pytest.mark.parametrize("precision", ["int8", "ubinary"])
def test_rescoring_reranks_exactly_the_top_k_times_r(shared: SharedEncoding, data: tuple[Corpus, Queries],
                                                     precision: str) -> None:
    corpus, queries = data
    k, r = 5, 4
    point = _point(shared, 16, precision, rescore=r)
    point.index(corpus)
    run = point.search(queries, k=k)
    docs, qs = _vectors(shared, corpus, queries, 16)
    low, high = docs.min(axis=0), docs.max(axis=0)
    step = (high - low) / 255
    dequant = low + (_int8(docs, low, high) + 128.5) * step  # centre of each int8 bucket
    ids = corpus.ids.tolist()
    differs = 0
    for i, qid in enumerate(queries.ids.tolist()):
        if precision == "int8":
            first = (_int8(docs, low, high) @ _int8(qs[i:i + 1], low, high)[0]).astype(np.float64)
        else:
            first = (np.where(docs > 0, 1, -1) @ np.where(qs[i] > 0, 1, -1)).astype(np.float64)
        candidates = _ranking(first, ids, k * r)
        rescored = dequant @ qs[i]
        cand_scores = np.array([rescored[ids.index(d)] for d in candidates])
        expected = _ranking(cand_scores, candidates, k)
        got = [d for d, _ in run.ranking(qid)]
        assert got == expected
        assert [s for _, s in run.ranking(qid)] == pytest.approx([rescored[ids.index(d)] for d in got], abs=1e-5)
        differs += got != _ranking(first, ids, k)
        # a document outside the first stage's top k*r is never brought back, however well it scores
        assert set(got) <= set(candidates)
    assert differs > 0  # rescoring changed some rankings: the test can tell it happened


def test_float32_full_flat_point_is_the_dense_retriever(shared: SharedEncoding, data: tuple[Corpus, Queries],
                                                        tmp_path: Path) -> None:
    corpus, queries = data
    point = _point(shared, None, "float32")
    point.index(corpus)
    dense = DenseRetriever(HashEncoder(dim=DIM), cache_dir=tmp_path / "other", progress=False)
    dense.index(corpus)
    a, b = point.search(queries, k=30).to_dict(), dense.search(queries, k=30).to_dict()
    assert a == b


def test_every_point_derives_from_one_encoding(tmp_path: Path, data: tuple[Corpus, Queries]) -> None:
    corpus, queries = data
    encoder = HashEncoder(dim=DIM)
    dense = DenseRetriever(encoder, cache=False, progress=False)
    points = expand_sweep("h", dense, {"dim": [32, 16], "precision": ["float32", "int8", "ubinary"],
                                       "rescore": [1, 2], "index": ["flat", {"hnsw": {"M": 8, "ef_search": [16]}},
                                                                    {"ivf": {"nlist": 64, "nprobe": 2}}]})
    assert len(points) == 2 * 5 * 3
    for point in points.values():
        point.index(corpus)
        run = point.search(queries, k=10)
        assert len(run) == N_QUERIES and all(len(run.ranking(q)) == 10 for q in queries.ids)
    assert encoder.encoded == N_DOCS + N_QUERIES
    ivf = points["h@16/int8/ivf-nlist64-np2"]
    assert ivf.stats["ivf_nlist"] == N_DOCS // 39 and "capped" in ivf.notes[0]
    sizes = {n: p.index_nbytes() for n, p in points.items()}
    assert sizes["h@32/int8/flat"] < sizes["h@32/float32/flat"] / 3  # 1 byte vs 4 bytes per dimension
    assert sizes["h@32/ubinary/flat"] < sizes["h@32/int8/flat"] / 4  # 1 bit vs 1 byte


def test_points_differing_in_search_knobs_share_one_index_and_rank_as_if_built_alone(
        tmp_path: Path, data: tuple[Corpus, Queries]) -> None:
    corpus, queries = data
    grid = {"dim": [16], "precision": ["float32", "int8", "ubinary"], "rescore": [1, 2],
            "index": [{"hnsw": {"M": 8, "ef_search": [4, 64]}}, {"ivf": {"nlist": 8, "nprobe": [1, 4]}}]}
    points = expand_sweep("h", DenseRetriever(HashEncoder(dim=DIM), cache=False, progress=False), grid)
    runs = {}
    for point in points.values():
        point.index(corpus)
    for name in reversed(list(points)):  # search in another order than built: no knob leaks between points
        runs[name] = points[name].search(queries, k=10).to_dict()
    indexes = {id(p._shared_index) for p in points.values()}
    assert len(indexes) == 3 * 2  # one per precision x index structure; ef_search, nprobe, rescore share
    assert points["h@16/int8+rescore2/hnsw-M8-ef64"]._built.index is points["h@16/int8/hnsw-M8-ef4"]._built.index
    for name, point in points.items():
        alone = expand_sweep("h", DenseRetriever(HashEncoder(dim=DIM), cache=False, progress=False), grid)[name]
        alone.index(corpus)
        assert alone.search(queries, k=10).to_dict() == runs[name], name
        extras = point.cost_extras()
        assert extras["index_seconds"] >= point._shared_index.build_seconds > 0
        assert ("index_shared_with" in extras) == (point._shared_index.built_by != name)
    np1, np4 = points["h@16/float32/ivf-nlist8-np1"], points["h@16/float32/ivf-nlist8-np4"]
    assert np1._built.index is np4._built.index and runs[np1.meta.name] != runs[np4.meta.name]


def test_faiss_runs_on_one_thread_in_the_sweep_and_the_setting_is_restored(shared: SharedEncoding,
                                                                           data: tuple[Corpus, Queries]) -> None:
    import faiss

    from evalsuite.retrievers.sweep import faiss_single_thread

    corpus, queries = data
    before = faiss.omp_get_max_threads()
    seen = []
    point = _point(shared, 16, "ubinary", index=IndexSpec("hnsw", m=8))
    point.index(corpus)
    real = point._built.index.search

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(faiss.omp_get_max_threads())
        return real(*args, **kwargs)

    point._built.index.search = spy
    point.search(queries, k=10)
    assert seen and set(seen) == {1}
    assert faiss.omp_get_max_threads() == before
    with pytest.raises(RuntimeError), faiss_single_thread(faiss):
        raise RuntimeError
    assert faiss.omp_get_max_threads() == before


def test_ef_search_below_the_search_depth_is_said_to_search_alike(data: tuple[Corpus, Queries]) -> None:
    from evalsuite.retrievers.sweep import sweep_summaries

    corpus, queries = data
    grid = {"dim": [16], "precision": ["float32"], "index": [{"hnsw": {"M": 8, "ef_search": [4, 12, 64]}}]}
    points = expand_sweep("h", DenseRetriever(HashEncoder(dim=DIM), cache=False, progress=False), grid)
    runs = {}
    for name, point in points.items():
        point.index(corpus)
        runs[name] = point.search(queries, k=10).to_dict()
    ef4, ef12, ef64 = (points[f"h@16/float32/hnsw-M8-ef{ef}"] for ef in (4, 12, 64))
    # k = 10: the first request is 10 + 8 (ties) deep, so ef_search 4 and 12 both search with efSearch 18
    assert ef4.cost_extras()["hnsw_ef_search_effective"] == ef12.cost_extras()["hnsw_ef_search_effective"] == 18
    assert ef64.cost_extras()["hnsw_ef_search_effective"] == 64
    assert runs[ef4.meta.name] == runs[ef12.meta.name]
    assert any("efSearch 4 raised to 18" in n for n in ef4.notes) and not ef64.notes
    lines = sweep_summaries(points)
    assert any("@16/float32/hnsw-M8: ef_search 4, 12 all searched with efSearch 18" in line and "identical" in line
               for line in lines), lines
    assert any("3 points from one encoding" in line and "1 index built" in line for line in lines), lines


def test_cost_extras_time_exhaustive_search_at_two_sizes(shared: SharedEncoding,
                                                         data: tuple[Corpus, Queries]) -> None:
    corpus, _ = data
    point = _point(shared, 16, "int8", rescore=2)
    point.index(corpus)
    extras = point.cost_extras()
    assert extras["sweep"] == {"dim": 16, "precision": "int8", "rescore": 2, "index": "flat", "encoder": "fp32"}
    assert extras["rescore_bytes_per_doc"] == 16
    scaling = extras["exhaustive_search"]
    assert scaling["docs"] == [10_000, 100_000] and all(ms > 0 for ms in scaling["ms_per_query"])


def test_sweep_on_a_non_dense_retriever_is_refused() -> None:
    from evalsuite.retrievers import get_retriever

    with pytest.raises(ConfigError, match="sweep applies to dense retrievers"):
        expand_sweep("b", get_retriever("bm25"), {"dim": [8]})
