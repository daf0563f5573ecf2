"""The small, valid world every bad-input case starts from (built once, copied per case).

* ``golden/``: a 4-document, 3-query golden set in BEIR layout;
* ``suite.yaml``: BM25 on it, two gates (an absolute one that warns, a regression one whose
  configured baseline file does not exist yet), output ``out/``;
* ``out/tiny/<run id>/`` with ``latest`` and ``out/history.sqlite``: one completed run;
* ``run.trec``, ``qrels.trec``: a valid run and qrels for ``evaluate``;
* ``train.jsonl``: valid training pairs for ``check-leakage``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from pathlib import Path

CORPUS = [
    {"_id": "d1", "title": "wing", "text": "lift on a swept wing at high speed"},
    {"_id": "d2", "title": "shock", "text": "shock waves in supersonic flow past a cone"},
    {"_id": "d3", "title": "heat", "text": "heat transfer in a laminar boundary layer"},
    {"_id": "d4", "title": "panel", "text": "flutter of thin panels in supersonic flow"},
]
QUERIES = [
    {"_id": "q1", "text": "swept wing lift"},
    {"_id": "q2", "text": "supersonic shock waves"},
    {"_id": "q3", "text": "boundary layer heat transfer"},
]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t2\nq2\td2\t1\nq2\td4\t1\nq3\td3\t1\n"

SUITE = """name: tiny
metrics: [ndcg@10, recall@10]
tasks:
  - name: golden
    type: golden
    path: golden
retrievers:
  - name: bm25
    type: bm25
gates:
  - name: floor
    metric: ndcg@10
    below: 0.01
    on_fire: warn
  - name: regress
    metric: ndcg@10
    max_drop: 0.05
baseline: baseline.json
output: out
"""


def jsonl(rows: list[dict[str, object]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def build(root: Path) -> None:
    """Write the world into ``root`` and run the suite once (in-process)."""
    from evalsuite.cli import main

    golden = root / "golden"
    (golden / "qrels").mkdir(parents=True)
    (golden / "corpus.jsonl").write_text(jsonl(CORPUS))
    (golden / "queries.jsonl").write_text(jsonl(QUERIES))
    (golden / "qrels" / "test.tsv").write_text(QRELS)
    (root / "suite.yaml").write_text(SUITE)
    (root / "run.trec").write_text("q1 Q0 d1 1 2.5 t\nq1 Q0 d3 2 1.5 t\nq2 Q0 d2 1 3.0 t\n")
    (root / "qrels.trec").write_text("q1 0 d1 2\nq2 0 d2 1\nq3 0 d3 1\n")
    (root / "train.jsonl").write_text(jsonl([{"query": "wing lift", "positive": "lift on a swept wing"}]))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = main(["run", "suite.yaml", "-q", "--no-progress", "--no-cache", "--no-report"])
    finally:
        os.chdir(cwd)
    if code != 0:
        raise RuntimeError(f"the valid world does not run (exit {code})")


def copy(world: Path, target: Path) -> Path:
    shutil.copytree(world, target, symlinks=True)
    return target


def run_folder(root: Path) -> Path:
    """The completed run's folder (relative to ``root``)."""
    return Path("out/tiny") / os.readlink(root / "out" / "tiny" / "latest")


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Every path under ``root`` with its type, and for files their size and mtime, for links their target.

    A folder's own mtime is left out: a failed run may create its hidden temporary folder and
    remove it again, which changes the parent's mtime and nothing else."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            link = os.readlink(p) if p.is_symlink() else None
            is_dir = p.is_dir() and not p.is_symlink()
            out[str(p.relative_to(root))] = (st.st_mode, 0 if is_dir else st.st_size, 0 if is_dir else st.st_mtime_ns,
                                             link)
    return out
