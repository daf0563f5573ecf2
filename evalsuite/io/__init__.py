"""Readers and writers: the only place in evalsuite that knows file formats.

``read_run`` / ``read_qrels`` pick the format from the file name and, for qrels, the
first line; pass ``format=`` to force one. Every reader raises
:class:`evalsuite.errors.DataError` with ``path:line`` on malformed input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from evalsuite.errors import ConfigError, DataError
from evalsuite.io._table import Engine, split_whitespace
from evalsuite.io._text import check_file
from evalsuite.io.beir import available_splits, read_beir, read_beir_qrels, read_corpus, read_queries
from evalsuite.io.jsonio import (
    read_json_qrels,
    read_json_run,
    read_jsonl_qrels,
    read_jsonl_run,
    write_json_qrels,
    write_json_run,
    write_jsonl_run,
)
from evalsuite.io.trec import read_trec_qrels, read_trec_run, write_trec_qrels, write_trec_run
from evalsuite.types import Qrels, Run

__all__ = [
    "available_splits",
    "read_beir",
    "read_beir_qrels",
    "read_corpus",
    "read_qrels",
    "read_queries",
    "read_run",
    "read_trec_qrels",
    "read_trec_run",
    "write_qrels",
    "write_run",
]

RunFormat = Literal["auto", "trec", "json", "jsonl"]
QrelsFormat = Literal["auto", "trec", "beir", "json", "jsonl"]


def _suffix(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return Path(name).suffix


def _first_line(path: Path) -> str:
    from evalsuite.io._text import read_bytes

    for raw in read_bytes(path).split(b"\n"):  # a corrupt gzip stream is a DataError here
        line = raw.decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r")
        if line.strip():
            return line
    return ""


def read_run(path: str | Path, *, format: RunFormat = "auto", name: str | None = None,
             engine: Engine = "auto") -> Run:
    """Read a run: TREC (default), ``.json`` (dict form) or ``.jsonl`` (one row per line)."""
    p = check_file(path, "run")
    fmt = format
    if fmt == "auto":
        fmt = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(_suffix(p), "trec")  # type: ignore[assignment]
    if fmt == "trec":
        return read_trec_run(p, name=name, engine=engine)
    if fmt == "json":
        return read_json_run(p, name=name)
    if fmt == "jsonl":
        return read_jsonl_run(p, name=name)
    raise ConfigError(f"unknown run format {format!r}; use trec, json or jsonl")


def read_qrels(path: str | Path, *, format: QrelsFormat = "auto", engine: Engine = "auto") -> Qrels:
    """Read qrels: TREC (4 columns), BEIR TSV (3 tab-separated columns), ``.json`` or ``.jsonl``."""
    p = check_file(path, "qrels")
    fmt = format
    if fmt == "auto":
        suffix = _suffix(p)
        if suffix == ".json":
            fmt = "json"
        elif suffix in (".jsonl", ".ndjson"):
            fmt = "jsonl"
        else:
            if not p.is_file():  # a pipe (``<(zcat qrels.gz)``) can be read only once
                raise DataError("qrels from a pipe: its format is told from the first line, which would use the "
                                "pipe up", path=p, hint="save it to a file first")
            line = _first_line(p)
            if len(line.split("\t")) == 3:
                fmt = "beir"
            elif len(split_whitespace(line)) == 4:
                fmt = "trec"
            else:
                raise DataError(
                    "cannot tell the qrels format from the first line",
                    path=p,
                    line=1,
                    hint="expected TREC 'query_id 0 doc_id relevance' or BEIR 'query-id<TAB>corpus-id<TAB>score'; "
                    "or pass the format explicitly",
                )
    if fmt == "trec":
        return read_trec_qrels(p, engine=engine)
    if fmt == "beir":
        return read_beir_qrels(p, engine=engine)
    if fmt == "json":
        return read_json_qrels(p)
    if fmt == "jsonl":
        return read_jsonl_qrels(p)
    raise ConfigError(f"unknown qrels format {format!r}; use trec, beir, json or jsonl")


def write_run(run: Run, path: str | Path, *, format: RunFormat = "auto", depth: int | None = None) -> Path:
    """Write a run as TREC (default), ``.json`` or ``.jsonl`` (chosen by suffix when ``auto``)."""
    p = Path(path)
    fmt = format if format != "auto" else {".json": "json", ".jsonl": "jsonl"}.get(_suffix(p), "trec")
    if depth is not None:
        run = run.top_k(depth)
    if fmt == "trec":
        return write_trec_run(run, p)
    if fmt == "json":
        return write_json_run(run, p)
    if fmt == "jsonl":
        return write_jsonl_run(run, p)
    raise ConfigError(f"unknown run format {format!r}; use trec, json or jsonl")


def write_qrels(qrels: Qrels, path: str | Path, *, format: Literal["auto", "trec", "json"] = "auto") -> Path:
    """Write qrels as TREC (default) or ``.json``."""
    p = Path(path)
    fmt = format if format != "auto" else ("json" if _suffix(p) == ".json" else "trec")
    if fmt == "json":
        return write_json_qrels(qrels, p)
    return write_trec_qrels(qrels, p)
