"""Reading column-oriented text files (TREC runs, TREC qrels, BEIR qrels TSV).

Two engines return identical results:

* ``arrow``: pyarrow's multi-threaded CSV reader, for large well-formed files
  (a 10M-line run in well under a second of parsing).
* ``python``: a line-by-line parser that checks every field and reports every problem
  with its line number.

``engine="auto"`` uses arrow for files over 1 MB and falls back to the python engine
whenever arrow refuses the file, so malformed input always gets the exact report.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from evalsuite.errors import ConfigError, DataError
from evalsuite.io._text import Problems, read_bytes, read_text

__all__ = ["Column", "TableData", "TableFormat", "read_table", "split_whitespace"]

Engine = Literal["auto", "arrow", "python"]
_ASCII_SPACE = " \t\n\r\v\f"
_ASCII_SPLIT = re.compile(r"[ \t\n\r\v\f]+")
FAST_MIN_BYTES = 1 << 20


@dataclass(frozen=True)
class Column:
    name: str
    kind: Literal["str", "float", "int", "skip"]


@dataclass(frozen=True)
class TableFormat:
    """The layout of one line-oriented format."""

    what: str
    columns: tuple[Column, ...]
    sep: Literal["whitespace", "tab"]
    may_have_header: bool = False

    @property
    def layout(self) -> str:
        return " ".join(c.name for c in self.columns)

    @property
    def kept(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.kind != "skip")


@dataclass(frozen=True)
class TableData:
    columns: dict[str, Any]  # numpy arrays; the query id column may be a pandas.Categorical
    lines: np.ndarray  # 1-based line number of every row
    first_row: tuple[str, ...]
    ids_checked: bool = True  # string columns hold only non-empty str


def read_table(path: Path, fmt: TableFormat, engine: Engine = "auto") -> TableData:
    """Parse ``path`` (already checked to exist and be non-empty) as ``fmt``."""
    if engine not in ("auto", "arrow", "python"):
        raise ConfigError(f"engine must be 'auto', 'arrow' or 'python', got {engine!r}")
    if engine == "arrow" or (engine == "auto" and path.stat().st_size >= FAST_MIN_BYTES):
        data = _read_arrow(path, fmt)
        if data is not None:
            return data
    return _read_python(path, fmt)


def split_whitespace(line: str) -> list[str]:
    """Fields of a whitespace-separated line. Like trec_eval, only ASCII whitespace separates
    (``str.split()`` would also split on e.g. U+00A0)."""
    if line.isascii():
        return line.split()
    stripped = line.strip(_ASCII_SPACE)
    return _ASCII_SPLIT.split(stripped) if stripped else []


def _parse_value(kind: str, value: str) -> Any:
    if kind == "str":
        return value
    if kind == "float":
        number = float(value)
        if math.isnan(number):
            raise ValueError("NaN")
        return number
    try:
        return int(value)
    except ValueError:
        number = float(value)
        if not number.is_integer():
            raise
        return int(number)


def _describe(column: Column, value: str) -> str:
    if column.kind == "float":
        return f"{column.name} {value!r} is not a number"
    return f"{column.name} {value!r} is not an integer"


def _read_python(path: Path, fmt: TableFormat) -> TableData:
    text = read_text(path, fmt.what)
    problems = Problems(path)
    n_columns = len(fmt.columns)
    kept = [(i, c) for i, c in enumerate(fmt.columns) if c.kind != "skip"]
    values: dict[str, list[Any]] = {c.name: [] for _, c in kept}
    lines: list[int] = []
    first_row: tuple[str, ...] = ()
    first_line = True
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        if fmt.sep == "tab":
            fields = [f.strip(_ASCII_SPACE) for f in line.split("\t")]
        else:
            fields = split_whitespace(line)
        if first_line:
            first_line = False
            if fmt.may_have_header and _is_header(tuple(fields), fmt):
                continue
        if len(fields) != n_columns:
            problems.add(lineno, f"expected {n_columns} columns ({fmt.layout}), found {len(fields)}")
            continue
        parsed: list[Any] = []
        for i, column in kept:
            try:
                parsed.append(_parse_value(column.kind, fields[i]))
            except ValueError:
                problems.add(lineno, _describe(column, fields[i]))
                break
        else:
            if not first_row:
                first_row = tuple(fields)
            for (_, column), value in zip(kept, parsed):
                values[column.name].append(value)
            lines.append(lineno)
    problems.raise_if_any(hint=f"each line must be: {fmt.layout}")
    if not lines:
        raise DataError(f"{fmt.what} file has no data rows (expected lines of: {fmt.layout})", path=path)
    columns = {c.name: _to_array(c.kind, values[c.name]) for _, c in kept}
    return TableData(columns, np.asarray(lines, dtype=np.int64), first_row)


def _to_array(kind: str, values: list[Any]) -> np.ndarray:
    if kind == "str":
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    return np.asarray(values, dtype=np.float64 if kind == "float" else np.int64)


def _read_arrow(path: Path, fmt: TableFormat) -> TableData | None:
    """Parse with pyarrow; None when arrow is unavailable or the file is not perfectly regular.

    String columns come back as object arrays, except the first (query id) column, which
    comes back as a ``pandas.Categorical`` (few distinct values, cheap to group by).
    """
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pacsv
    except ImportError:
        return None
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    if head.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return None
    source: object
    if head[:2] == b"\x1f\x8b":
        raw = read_bytes(path)
        head, source = raw[: 1 << 16], pa.BufferReader(raw)
    else:
        source = pa.memory_map(str(path))
    lines_in_head = head.split(b"\n", 2)
    first_line = lines_in_head[0].rstrip(b"\r")
    delimiter = "\t" if b"\t" in first_line else " "
    if fmt.sep == "tab" and delimiter != "\t":
        return None
    try:
        first_fields = tuple(first_line.decode("utf-8").split(delimiter))
        skip = 1 if fmt.may_have_header and _is_header(first_fields, fmt) else 0
        if skip:
            first_fields = tuple(lines_in_head[1].rstrip(b"\r").decode("utf-8").split(delimiter))
    except (UnicodeDecodeError, IndexError):
        return None
    names = [f"c{i}" for i in range(len(fmt.columns))]
    types = {
        names[i]: {"str": pa.string(), "float": pa.float64(), "int": pa.int64()}[c.kind]
        for i, c in enumerate(fmt.columns)
        if c.kind != "skip"
    }
    try:
        table = pacsv.read_csv(
            source,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=skip, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, quote_char=False, double_quote=False, escape_char=False,
                newlines_in_values=False, ignore_empty_lines=False,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=types, include_columns=list(types), null_values=[], strings_can_be_null=False,
                check_utf8=True,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    if table.num_rows == 0:
        return None
    columns: dict[str, Any] = {}
    first_str = True
    for i, column in enumerate(fmt.columns):
        if column.kind == "skip":
            continue
        array = table.column(names[i]).combine_chunks()
        if array.null_count:
            return None
        if column.kind == "float":
            values = array.to_numpy()
            if np.isnan(values).any():
                return None  # let the python engine name the line
        elif column.kind == "int":
            values = array.to_numpy()
        else:
            if pc.any(pc.equal(pc.utf8_length(array), 0)).as_py():
                return None  # empty fields come from repeated delimiters: not a regular file
            if first_str:
                import pandas as pd

                values = pd.Categorical(array.dictionary_encode().to_pandas())
            else:
                values = np.asarray(array.to_numpy(zero_copy_only=False), dtype=object)
            first_str = False
        columns[column.name] = values
    lines = np.arange(1 + skip, table.num_rows + 1 + skip, dtype=np.int64)
    return TableData(columns, lines, first_fields, ids_checked=True)


def _is_header(fields: tuple[str, ...], fmt: TableFormat) -> bool:
    """A first line with the right column count whose numeric fields are not numbers."""
    if len(fields) != len(fmt.columns):
        return False
    for value, column in zip(fields, fmt.columns):
        if column.kind in ("int", "float"):
            try:
                _parse_value(column.kind, value.strip())
            except ValueError:
                return True
    return False
