"""Tiny fixtures for the fine-tune loop: a corpus with titles, judged queries, and a miner whose
scores are fixed by hand (so every negative filter can be checked against a worked example)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evalsuite import Corpus, Qrels, Queries, Run
from evalsuite.retrievers.base import RetrieverMeta
from tests import _tinydata as _tiny
from tests._tinymodel import build_tiny_model

#: the tiny corpus (tests/_tinydata.py) with six documents reworded to share fewer words with
#: their queries (what these tests' hand-set scores, pairs and leakage findings were written for)
DOCS = {
    **_tiny.DOCS,
    "d1": {"title": "Boundary layer growth", "text": "The layer thickens along a flat plate as the flow slows."},
    "d2": {"title": "Wing flutter", "text": "Aeroelastic instability of a swept wing grows when damping is low."},
    "d3": {"title": "Heat transfer", "text": "Conduction in composite slabs of two materials was solved exactly."},
    "d4": {"title": "Shock waves", "text": "A normal shock forms ahead of a blunt body at supersonic speed."},
    "d8": {"title": "Hypersonic heating", "text": "Heating of a blunt nose at hypersonic speed is severe."},
    "d10": {"title": "Music", "text": "the orchestra played music in a minor key."},
}
QUERIES = _tiny.QUERIES
QRELS = {**_tiny.QRELS, "q1": {"d1": 2, "d9": 1, "d6": 0}}  # plus a judged non-relevant document


@pytest.fixture
def corpus() -> Corpus:
    return Corpus.from_dict(DOCS)


@pytest.fixture
def queries() -> Queries:
    return Queries.from_dict(QUERIES)


@pytest.fixture
def qrels() -> Qrels:
    return Qrels(QRELS)


class FixedMiner:
    """A retriever whose scores are given per query *text*: ``scores[text][doc] = score``.

    Documents without a given score are not retrieved. Counts its index/search calls.
    """

    def __init__(self, scores: Mapping[str, Mapping[str, float]]) -> None:
        self.scores = scores
        self.meta = RetrieverMeta(name="fixed", kind="bm25", label="fixed scores")
        self.stats: dict[str, float] = {}
        self.indexed = 0
        self.searches: list[int] = []

    def index(self, corpus: Corpus) -> None:
        self.indexed += 1

    def search(self, queries: Queries, *, k: int = 100) -> Run:
        self.searches.append(k)
        out: dict[str, dict[str, float]] = {}
        for qid, text in zip(queries.ids.tolist(), queries.texts.tolist()):
            ranked = sorted(self.scores.get(text, {}).items(), key=lambda x: (-x[1], x[0]))[:k]
            out[qid] = dict(ranked)
        return Run.from_dict(out)


class EmbedMiner(FixedMiner):
    """A 'dense' miner: ``embed`` returns one-hot-ish vectors whose dot products are the scores."""

    def __init__(self, scores: Mapping[str, Mapping[str, float]], corpus: Corpus) -> None:
        super().__init__(scores)
        self.texts = dict(zip(corpus.contents(), corpus.ids.tolist()))
        self.doc_index = {d: i for i, d in enumerate(corpus.ids.tolist())}

    def embed(self, texts: list[str], *, kind: str = "query") -> Any:
        n = len(self.doc_index)
        out = np.zeros((len(texts), n), dtype=np.float32)
        for i, text in enumerate(texts):
            if kind == "document":
                out[i, self.doc_index[self.texts[text]]] = 1.0
            else:
                for doc, score in self.scores.get(text, {}).items():
                    out[i, self.doc_index[doc]] = score
        return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, one_torch_thread: None) -> Path:
    """The tiny sentence-transformers model of tests/_tinymodel.py, built once per session."""
    pytest.importorskip("sentence_transformers")
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-st")


@pytest.fixture(scope="session")
def one_torch_thread() -> Any:
    """Torch on one thread while these tests run: on a shared 2-core machine two spinning
    threads made the tiny model ~9x slower (encoding 600 texts: 3.2 s on 1 thread, 28 s on 2
    at load 29)."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
