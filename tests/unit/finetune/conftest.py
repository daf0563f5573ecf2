"""Tiny fixtures for the fine-tune loop: a corpus with titles, judged queries, and a miner whose
scores are fixed by hand (so every negative filter can be checked against a worked example)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from evalsuite import Corpus, Qrels, Queries, Run
from evalsuite.retrievers.base import RetrieverMeta

DOCS = {
    "d1": {"title": "Boundary layer growth", "text": "The layer thickens along a flat plate as the flow slows."},
    "d2": {"title": "Wing flutter", "text": "Aeroelastic instability of a swept wing grows when damping is low."},
    "d3": {"title": "Heat transfer", "text": "Conduction in composite slabs of two materials was solved exactly."},
    "d4": {"title": "Shock waves", "text": "A normal shock forms ahead of a blunt body at supersonic speed."},
    "d5": {"title": "Propellers", "text": "A propeller slipstream increases the lift of the wing behind it."},
    "d6": {"title": "Cooking", "text": "Bake the bread in a hot oven for forty minutes until golden."},
    "d7": {"title": "Gardening", "text": "Tomatoes need sun, water and well drained soil to grow."},
    "d8": {"title": "Hypersonic heating", "text": "Heating of a blunt nose at hypersonic speed is severe."},
    "d9": {"title": "", "text": "Laminar flow becomes turbulent when the Reynolds number is high."},
    "d10": {"title": "Music", "text": "the orchestra played music in a minor key."},
}
QUERIES = {
    "q1": "how does the boundary layer grow on a flat plate",
    "q2": "flutter of swept wings and structural damping",
    "q3": "heat conduction through composite slabs",
    "q4": "shock wave in front of a blunt body at supersonic speeds",
    "q5": "effect of propeller slipstream on wing lift",
    "q6": "when does laminar flow turn turbulent",
}
QRELS = {"q1": {"d1": 2, "d9": 1, "d6": 0}, "q2": {"d2": 2}, "q3": {"d3": 2}, "q4": {"d4": 2, "d8": 1},
         "q5": {"d5": 2}, "q6": {"d9": 2, "d1": 1}}


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
def one_torch_thread() -> Any:
    """Torch on one thread while these tests run: on a shared 2-core machine two spinning
    threads made the tiny model ~9x slower (encoding 600 texts: 3.2 s on 1 thread, 28 s on 2
    at load 29)."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
