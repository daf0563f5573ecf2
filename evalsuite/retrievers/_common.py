"""Helpers the retrievers share: parameter checks, the embedding cache option, the
trec_eval ranking order at a top-k cut-off, and quiet model loading."""

from __future__ import annotations

import contextlib
import copy
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from evalsuite.errors import ConfigError
from evalsuite.models import ModelSource, model_not_found
from evalsuite.retrievers.cache import EmbeddingCache

__all__ = ["HUB_IGNORE", "WorkerJob", "check_positive", "id_rank", "local_model_folder", "make_cache",
           "quiet_transformers", "read_json_object", "top_k"]

#: Files a PyTorch model never needs from the hub: other frameworks' weights and exports.
HUB_IGNORE = ["*.onnx", "onnx/*", "openvino/*", "*.h5", "*.msgpack", "*.ot", "flax_model*", "tf_model*",
              "rust_model*", "coreml/*"]


def local_model_folder(source: ModelSource, revision: str | None = None) -> tuple[Path, str | None]:
    """A local folder holding ``source`` and the hub revision (commit) it came from.

    Hub ids are fetched with huggingface_hub (or found in its cache when offline); a hub id
    that cannot be had raises :func:`evalsuite.models.model_not_found`, which names the
    model and the packaged alternatives.
    """
    if source.path is not None:
        if revision is not None:
            raise ConfigError(f"revision={revision!r} applies to hub ids, but model {source.name!r} is local "
                              f"({source.path})")
        return source.path, None
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(source.name, revision=revision, ignore_patterns=HUB_IGNORE))
    except Exception as exc:  # offline and not cached, unknown repo, invalid id, ...
        raise model_not_found(source.name, exc) from exc
    return folder, folder.name  # the snapshot folder is named by its commit hash


def check_positive(what: str, value: object) -> None:
    """Raise :class:`ConfigError` unless ``value`` is an int >= 1 (bools are not ints here)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{what} must be a positive integer, got {value!r}")


def make_cache(cache: bool | EmbeddingCache, cache_dir: str | os.PathLike[str] | None) -> EmbeddingCache | None:
    """The cache a retriever's ``cache`` / ``cache_dir`` options ask for (``cache_dir/embeddings``)."""
    if isinstance(cache, EmbeddingCache):
        return cache
    if not isinstance(cache, bool):
        raise ConfigError(f"cache must be True, False or an EmbeddingCache, got {cache!r}")
    if not cache:
        return None
    return EmbeddingCache(Path(cache_dir) / "embeddings" if cache_dir is not None else None)


def read_json_object(path: Path) -> dict[str, Any]:
    """A model folder's JSON config file as a dict; unreadable or not an object: ConfigError."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return data


def id_rank(doc_ids: NDArray[np.object_]) -> NDArray[np.int64]:
    """Rank of every doc id in ascending string order (for the doc-id tie-break)."""
    order = np.argsort(doc_ids, kind="stable")
    rank = np.empty(len(doc_ids), dtype=np.int64)
    rank[order] = np.arange(len(doc_ids), dtype=np.int64)
    return rank


def top_k(docs: NDArray[np.int64], scores: NDArray[Any], k: int,
          id_rank: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """The ``k`` best ``docs`` in ranking order: score descending (compared at float32, as
    :class:`~evalsuite.types.Run` does), then doc id descending -- so that the documents kept
    at the cut-off are the ones the evaluation would rank first."""
    keys = np.negative(scores.astype(np.float32))
    if len(docs) > k:
        threshold = keys[np.argpartition(keys, k - 1)[:k]].max()
        keep = np.flatnonzero(keys <= threshold)  # the k best and every tie of the k-th
        docs, scores, keys = docs[keep], scores[keep], keys[keep]
    order = np.lexsort((-id_rank[docs], keys))[:k]
    return docs[order], scores[order].astype(np.float64)


@contextlib.contextmanager
def quiet_transformers(progress: bool) -> Iterator[None]:
    """Silence transformers' "Loading weights" progress bar unless progress is wanted."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    if was_enabled and not progress:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled and not progress:
            hf_logging.enable_progress_bar()


class WorkerJob:
    """``getattr(owner, method)(texts, *args)`` as a picklable callable, for a distributed
    executor (:mod:`evalsuite.executors`) to run on its workers.

    ``owner`` (a retriever) travels as a shallow copy with the attributes named in ``drop``
    cleared -- its loaded model, its index, its executor, its cache -- so the worker loads the
    model on the first call (once per worker) and never writes the cache (the driver does).
    """

    def __init__(self, owner: Any, method: str, *args: Any, drop: Iterable[str] = ()) -> None:
        light = copy.copy(owner)
        for name in drop:
            setattr(light, name, None)
        self.owner, self.method, self.args = light, method, args

    def setup(self, cpus: int) -> None:
        """Nothing to do: torch follows ``OMP_NUM_THREADS``, which Ray sets per worker."""

    def __call__(self, texts: list[str]) -> list[Any]:
        return list(getattr(self.owner, self.method)(texts, *self.args))
