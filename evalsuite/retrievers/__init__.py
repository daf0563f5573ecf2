"""Retrievers behind one interface, built by name: ``get_retriever("bm25", k1=1.2)``.

Names and the extra each needs (``pip install 'evalsuite[<extra>]'``):

=============  ===========================================  =========
name           what                                         extra
=============  ===========================================  =========
bm25           BM25 with bm25s (pure Python, the default)   bm25
lucene         BM25 with Pyserini / Lucene (needs Java 21)  lucene
dense          bi-encoder + FAISS (sentence-transformers    dense
               or ONNX Runtime)
splade         learned sparse (SPLADE) + inverted index     dense
colbert        late interaction (MaxSim) over token         dense
               embeddings
hybrid         fusion of two or more retrievers (RRF,       -
               convex combination)
rerank         cross-encoder over another retriever's top N dense
=============  ===========================================  =========
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from typing import Any

from evalsuite.errors import ConfigError
from evalsuite.registry import Registry
from evalsuite.retrievers.base import Retriever, RetrieverMeta

__all__ = ["RETRIEVERS", "Retriever", "RetrieverMeta", "get_retriever", "register_retriever", "retriever_class"]

#: name -> "module:Class" (imported on first use, so optional dependencies stay optional)
RETRIEVERS: Registry[str] = Registry("retriever")


def register_retriever(name: str, target: str, *, aliases: tuple[str, ...] = ()) -> None:
    """Register a retriever class by import path (``"package.module:Class"``)."""
    RETRIEVERS.add(name, target, aliases=aliases)


register_retriever("bm25", "evalsuite.retrievers.bm25:BM25Retriever", aliases=("bm25s",))
register_retriever("lucene", "evalsuite.retrievers.lucene:LuceneBM25Retriever",
                   aliases=("bm25-lucene", "pyserini", "lucene-bm25"))
register_retriever("dense", "evalsuite.retrievers.dense:DenseRetriever", aliases=("bi-encoder", "faiss"))
register_retriever("splade", "evalsuite.retrievers.splade:SpladeRetriever", aliases=("sparse", "learned-sparse"))
register_retriever("colbert", "evalsuite.retrievers.colbert:ColbertRetriever", aliases=("late-interaction",))
register_retriever("hybrid", "evalsuite.retrievers.hybrid:HybridRetriever", aliases=("fusion",))
register_retriever("rerank", "evalsuite.retrievers.rerank:RerankRetriever", aliases=("cross-encoder", "reranker"))


def retriever_class(name: str) -> Any:
    """The class registered under ``name`` (imported now)."""
    target = RETRIEVERS.get(name)
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def get_retriever(name: str, /, **params: Any) -> Retriever:
    """Build the retriever registered as ``name`` with ``params``.

    Unknown names and parameters raise with "did you mean"; a missing optional dependency
    raises :class:`~evalsuite.errors.MissingExtraError` naming the extra to install.
    """
    cls = retriever_class(name)
    signature = inspect.signature(cls)
    accepted = list(signature.parameters)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    if not takes_any:
        for key in params:
            if key not in accepted:
                close = difflib.get_close_matches(key, accepted, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"retriever {RETRIEVERS.canonical(name)!r} has no parameter {key!r}{hint} "
                                  f"(parameters: {', '.join(accepted)})")
    retriever: Retriever = cls(**params)
    return retriever
