"""The MTEB adapter: mteb's own evaluator on local data, offline.

Every comparison here is between two independent computations on the same system output:
mteb's scores (pytrec_eval / scipy inside mteb) and evalsuite's (its own metrics and
correlations). mteb rounds retrieval metrics to 5 decimals, hence the 1e-5 tolerance.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evalsuite.errors import ConfigError, DataError
from evalsuite.io.beir import read_beir
from evalsuite.metrics.evaluate import evaluate
from evalsuite.retrievers import get_retriever
from evalsuite.retrievers.base import RetrieverMeta
from evalsuite.tasks.base import STSData, content_hash, sts_content_hash
from evalsuite.tasks.mteb import MtebTask, mteb_metric_name
from evalsuite.tasks.sts import evaluate_sts, load_sts
from evalsuite.types import TaskData
from tests.conftest import data_dir
from tests.unit.retrievers.conftest import DOCS, QRELS, QUERIES

pytest.importorskip("mteb")

ROUNDING = 1e-5  # mteb rounds retrieval metrics to 5 decimals
STSB_REVISION = "b0fddb56ed78048fa8b90373c8a3cfc37b684831"  # mteb's pinned revision of mteb/stsbenchmark-sts


# -- fixtures ------------------------------------------------------------------------------------


def write_beir(folder: Path) -> Path:
    folder.mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for doc_id, doc in DOCS.items():
            fh.write(json.dumps({"_id": doc_id, **doc}) + "\n")
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for qid, text in QUERIES.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    (folder / "qrels").mkdir()
    rows = [f"{q}\t{d}\t{g}" for q, docs in QRELS.items() for d, g in docs.items()]
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")
    return folder


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    return write_beir(tmp_path / "tiny-beir")


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """datasets writes Arrow caches of local files: keep them in the test's folder."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")


def sts_rows(n: int = 40) -> list[dict[str, Any]]:
    """Sentence pairs sharing more or fewer words, scored by overlap plus noise (0-5)."""
    rng = np.random.default_rng(7)
    words = ["wing", "flow", "shock", "heat", "plate", "layer", "lift", "drag", "speed", "wave", "boundary", "nose",
             "body", "jet", "fuel"]
    rows = []
    for _ in range(n):
        a = list(rng.choice(words, size=6, replace=False))
        keep = int(rng.integers(0, 6))  # never an identical pair (cosine 1: ties)
        others = [w for w in words if w not in a]
        b = a[:keep] + list(rng.choice(others, size=6 - keep, replace=False))
        score = float(np.clip(keep + rng.normal(0, 0.7), 0, 5))
        rows.append({"sentence1": " ".join(a), "sentence2": " ".join(b), "score": round(score, 2)})
    return rows


class HashingEncoder:
    """A deterministic bag-of-words encoder (sum of a fixed random vector per word).

    A cheap stand-in for a model. Continuous vectors, so that no two pairs tie exactly
    (ties would be broken differently by float32 and float64 cosines)."""

    name = "hashing-bow"
    dim = 64

    def __init__(self) -> None:
        self.fingerprint: dict[str, Any] = {"name": self.name}
        self.calls: list[tuple[int, str]] = []

    def encode(self, texts: Any, *, kind: str, batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        self.calls.append((len(texts), kind))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.split():
                seed = int(hashlib.md5(word.encode()).hexdigest()[:8], 16)
                out[i] += np.random.default_rng(seed).normal(size=self.dim).astype(np.float32)
        return out


class EncoderOnly:
    """A retriever-shaped object whose only use here is its sentence encoder."""

    def __init__(self) -> None:
        self.encoder = HashingEncoder()
        self.meta = RetrieverMeta(name="bow", kind="dense", label="hashed bag of words (test)")
        self.stats: dict[str, float] = {}

    def index(self, corpus: Any) -> None:
        raise NotImplementedError

    def search(self, queries: Any, *, k: int = 100) -> Any:
        raise NotImplementedError


# -- metric names --------------------------------------------------------------------------------


@pytest.mark.parametrize(("mteb_name", "ours"), [
    ("ndcg_at_10", "ndcg@10"), ("map_at_100", "map@100"), ("recall_at_1000", "recall@1000"),
    ("precision_at_5", "P@5"), ("mrr_at_10", "mrr@10"), ("hit_rate_at_3", "success@3"),
    ("cosine_spearman", "spearman"), ("cosine_pearson", "pearson"),
    ("nauc_ndcg_at_10_max", None), ("accuracy", None), ("manhattan_spearman", None),
])
def test_metric_names(mteb_name: str, ours: str | None) -> None:
    assert mteb_metric_name(mteb_name) == ours


# -- retrieval -----------------------------------------------------------------------------------


def test_custom_beir_task_through_mteb_agrees_with_evalsuite(beir_dir: Path) -> None:
    task = MtebTask("tiny-local", name="tiny", data_path=beir_dir)
    assert (task.metadata.type, task.metadata.source, task.metadata.main_metric) == ("retrieval", "mteb", "ndcg@10")
    data = task.load()
    assert isinstance(data, TaskData)
    assert task.metadata.content_hash == content_hash(read_beir(beir_dir))

    cell = task.evaluate(get_retriever("bm25"), k=10)
    assert (cell.task, cell.system, cell.kind) == ("tiny", "bm25", "retrieval")
    assert task.last_run is not None and len(task.last_run) == len(QUERIES)
    assert any("computed by mteb" in note for note in cell.notes)
    assert cell.stats["mteb"]["main_score"] == "ndcg_at_10"
    assert set(cell.aggregate) >= {"ndcg@10", "recall@10", "map@10", "mrr@10", "P@5", "success@1", "map", "mrr"}
    assert not any(m.endswith("@20") or m.endswith("@100") for m in cell.aggregate)  # cut-offs above k dropped

    # mteb's numbers vs evalsuite's metrics on the same run
    ours = evaluate(data.qrels, task.last_run, ["ndcg@10", "recall@10", "map@10", "mrr@10", "P@5", "map"])
    for metric, value in ours.aggregate.items():
        assert cell.aggregate[metric] == pytest.approx(value, abs=ROUNDING), metric
    # ... and vs evalsuite's own path (BM25 indexed by evalsuite, not through mteb)
    bm25 = get_retriever("bm25")
    bm25.index(data.corpus)
    direct = evaluate(data.qrels, bm25.search(data.queries, k=10), ["ndcg@10"])
    assert cell.aggregate["ndcg@10"] == pytest.approx(direct["ndcg@10"], abs=ROUNDING)
    assert cell.per_query["ndcg@10"].keys() == set(QRELS)
    assert cell.timing["mteb_evaluate"] > 0 and "index" in cell.timing and "search" in cell.timing


def test_a_query_without_hits_scores_zero_in_both(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "beir")
    with (folder / "queries.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"_id": "q7", "text": "xylophone quartz"}) + "\n")  # no word of the corpus
    with (folder / "qrels" / "test.tsv").open("a", encoding="utf-8") as fh:
        fh.write("q7\td10\t1\n")
    task = MtebTask("tiny", data_path=folder)
    cell = task.evaluate(get_retriever("bm25"), k=10)
    assert task.last_run is not None and task.last_run.ranking("q7") == []
    assert cell.per_query["ndcg@10"]["q7"] == 0.0
    ours = evaluate(task.load().qrels, task.last_run, ["ndcg@10", "mrr@10"])  # type: ignore[union-attr]
    assert ours.n_queries["ndcg@10"] == len(QUERIES) + 1
    for metric in ("ndcg@10", "mrr@10"):
        assert cell.aggregate[metric] == pytest.approx(ours[metric], abs=ROUNDING)
    assert not any("absent" in note for note in cell.notes)


def test_known_mteb_task_reads_a_local_beir_folder(beir_dir: Path) -> None:
    task = MtebTask("SciFact", data_path=beir_dir)
    assert task.metadata.name == "SciFact" and task.metadata.main_metric == "ndcg@10"
    cell = task.evaluate(get_retriever("bm25"), k=20)
    assert cell.stats["mteb"]["task"] == "SciFact"
    assert task.last_run is not None
    ours = evaluate(task.load().qrels, task.last_run, ["ndcg@10", "recall@20"])  # type: ignore[union-attr]
    assert cell.aggregate["ndcg@10"] == pytest.approx(ours["ndcg@10"], abs=ROUNDING)
    assert cell.aggregate["recall@20"] == pytest.approx(ours["recall@20"], abs=ROUNDING)


def test_k_below_the_main_score_cutoff_is_an_error(beir_dir: Path) -> None:
    with pytest.raises(ConfigError, match="k >= 10"):
        MtebTask("tiny", data_path=beir_dir).evaluate(get_retriever("bm25"), k=5)


# -- STS -----------------------------------------------------------------------------------------


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as fh:  # type: ignore[operator]
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return path


def write_senteval(folder: Path, rows: list[dict[str, Any]], split: str = "test") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"main-news\tx\t2017\t{i:04d}\t{r['score']}\t{r['sentence1']}\t{r['sentence2']}"
             for i, r in enumerate(rows)]
    (folder / f"sts-{split}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def check_sts(task: MtebTask, rows: list[dict[str, Any]]) -> None:
    data = task.load()
    assert isinstance(data, STSData) and len(data) == len(rows)
    assert [float(s) for s in data.scores] == [r["score"] for r in rows]
    assert task.metadata.content_hash == sts_content_hash(data)
    system = EncoderOnly()
    cell = task.evaluate(system)
    assert cell.kind == "sts" and set(cell.aggregate) == {"spearman", "pearson"}
    assert cell.stats["mteb"]["main_score"] == "cosine_spearman"
    assert all(kind == "query" for _, kind in system.encoder.calls)  # symmetric task: no document prompt
    ours = evaluate_sts(data, HashingEncoder())
    assert cell.aggregate["spearman"] == pytest.approx(ours.spearman, abs=1e-9)
    assert cell.aggregate["pearson"] == pytest.approx(ours.pearson, abs=1e-6)
    assert cell.n_queries["spearman"] == len(rows)


def test_sts_from_a_senteval_folder(tmp_path: Path) -> None:
    rows = sts_rows()
    task = MtebTask("STSBenchmark", name="stsb", data_path=write_senteval(tmp_path / "stsb", rows))
    check_sts(task, rows)
    assert any("superseded by STSBenchmark.v2" in note for note in task.evaluate(EncoderOnly()).notes)


def test_sts_from_a_jsonl_file_as_a_custom_task(tmp_path: Path) -> None:
    rows = sts_rows(30)
    task = MtebTask("my-sts", data_path=write_jsonl(tmp_path / "pairs.jsonl", rows))
    assert task.metadata.type == "sts" and task.metadata.main_metric == "spearman"
    check_sts(task, rows)


def test_sts_from_a_parquet_file(tmp_path: Path) -> None:
    import pandas as pd

    rows = sts_rows(25)
    path = tmp_path / "test.parquet"
    pd.DataFrame(rows).to_parquet(path)
    check_sts(MtebTask("STSBenchmark", data_path=path), rows)


def test_sts_from_a_save_to_disk_folder(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    rows = sts_rows(30)
    folder = tmp_path / "saved"
    DatasetDict({"test": Dataset.from_list(rows), "train": Dataset.from_list(rows[:5])}).save_to_disk(str(folder))
    check_sts(MtebTask("STSBenchmark", data_path=folder), rows)


def test_sts_from_a_local_copy_of_the_dataset_repo(tmp_path: Path) -> None:
    """A folder like the hub repo (test.jsonl.gz, train.jsonl.gz, README.md): mteb's own loader reads it."""
    rows = sts_rows(30)
    folder = tmp_path / "stsbenchmark-sts"
    write_jsonl(folder / "test.jsonl.gz", rows)
    write_jsonl(folder / "train.jsonl.gz", rows[:4])
    (folder / "README.md").write_text("---\nlicense: other\n---\n")
    check_sts(MtebTask("STSBenchmark", data_path=folder), rows)


def test_sts_from_the_local_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No path: the task's dataset at mteb's pinned revision, already in the hub cache, is used offline."""
    from huggingface_hub import constants

    rows = sts_rows(30)
    cache = tmp_path / "hub"
    snapshot = cache / "datasets--mteb--stsbenchmark-sts" / "snapshots" / STSB_REVISION
    write_jsonl(snapshot / "test.jsonl.gz", rows)
    (snapshot / "README.md").write_text("---\nlicense: other\n---\n")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    task = MtebTask("STSBenchmark")
    check_sts(task, rows)
    assert task.evaluate(EncoderOnly()).stats["mteb"]["source"] == "hf-cache"


def test_sts_with_bm25_is_not_applicable(tmp_path: Path) -> None:
    task = MtebTask("STSBenchmark", data_path=write_senteval(tmp_path / "stsb", sts_rows(10)))
    cell = task.evaluate(get_retriever("bm25"))
    assert cell.aggregate == {} and cell.notes and cell.notes[0].startswith("not applicable")


# -- errors --------------------------------------------------------------------------------------


def test_missing_data_names_the_task_and_how_to_point_at_data(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    task = MtebTask("STSBenchmark")
    with pytest.raises(DataError) as info:
        task.load()
    message = str(info.value)
    assert "'STSBenchmark'" in message and "download" in message and "path:" in message
    assert "\n" not in message


def test_missing_path_and_wrong_layout(tmp_path: Path, beir_dir: Path) -> None:
    with pytest.raises(DataError, match="data not found"):
        MtebTask("STSBenchmark", data_path=tmp_path / "nope").load()
    with pytest.raises(DataError, match="BEIR folder"):
        MtebTask("SciFact", data_path=write_jsonl(tmp_path / "x.jsonl", sts_rows(3))).load()
    with pytest.raises(DataError, match="no split 'validation'"):
        folder = tmp_path / "saved"
        from datasets import Dataset, DatasetDict

        DatasetDict({"test": Dataset.from_list(sts_rows(5))}).save_to_disk(str(folder))
        MtebTask("STSBenchmark", split="validation", data_path=folder).load()


def test_unknown_or_unsupported_tasks() -> None:
    with pytest.raises(ConfigError, match=re.escape("STSBenchmark")):  # mteb's "did you mean"
        MtebTask("STSBenchmrk")
    with pytest.raises(ConfigError, match="Classification"):
        MtebTask("Banking77Classification")
    with pytest.raises(ConfigError):
        MtebTask("")


# -- real data (slow) ----------------------------------------------------------------------------


def stsb_dir() -> Path:
    path = data_dir() / "stsb"
    if not (path / "sts-test.csv").is_file():
        pytest.skip(f"STS Benchmark not found at {path} (set EVALSUITE_DATA_DIR)")
    return path


@pytest.mark.slow
def test_stsbenchmark_through_mteb_matches_evalsuite_sts() -> None:
    """STS-B test with the packaged all-MiniLM-L6-v2: mteb's Spearman = evalsuite's STS task (0.8203)."""
    path = stsb_dir()
    dense = get_retriever("dense", backend="sentence-transformers", cache=False)
    cell = MtebTask("STSBenchmark", data_path=path).evaluate(dense)
    ours = evaluate_sts(load_sts(path / "sts-test.csv"), dense.encoder)  # type: ignore[attr-defined]
    assert cell.aggregate["spearman"] == pytest.approx(ours.spearman, abs=1e-3)
    assert cell.aggregate["pearson"] == pytest.approx(ours.pearson, abs=1e-3)
    assert cell.aggregate["spearman"] == pytest.approx(0.8203, abs=1e-3)  # MTEB's published score for this model


@pytest.mark.slow
@pytest.mark.parametrize("system", ["bm25", "dense"])
def test_cranfield_through_mteb_matches_evalsuite(cranfield_dir: Path, system: str) -> None:
    params = {"backend": "sentence-transformers", "cache": False} if system == "dense" else {}
    task = MtebTask("cranfield", data_path=cranfield_dir)
    cell = task.evaluate(get_retriever(system, **params), k=100)
    assert task.last_run is not None
    data = read_beir(cranfield_dir)
    ours = evaluate(data.qrels, task.last_run, ["ndcg@10", "recall@100", "map", "mrr@10"])
    for metric, value in ours.aggregate.items():
        assert cell.aggregate[metric] == pytest.approx(value, abs=ROUNDING), metric
