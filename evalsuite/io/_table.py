"""Reading column-oriented text files (TREC runs, TREC qrels, BEIR qrels TSV).

Two engines, one contract: they accept the same files and return the same values.

* ``python``: a line-by-line parser that checks every field and reports every problem
  with its line number. It *defines* what a valid file is:

  - UTF-8 (or UTF-16 with a byte-order mark), gzip allowed; lines end with ``\\n`` and
    any ``\\r`` before it is dropped; lines of ASCII whitespace only are skipped;
  - fields are separated by runs of ASCII whitespace (space, tab, ``\\v``, ``\\f``, ``\\r``:
    C ``isspace``, as trec_eval), or by tabs for TSV formats (fields then stripped of
    ASCII whitespace);
  - no field contains a control character (U+0000-U+001F, U+007F);
  - numbers are what Python's ``float``/``int`` accept; NaN is refused; an integer must
    fit in 64 bits (a float string such as ``2.0`` is accepted when integral).

* ``arrow``: pyarrow's multi-threaded CSV reader, for large files. It returns a result
  only when the file is *canonical* -- every line has exactly the expected fields, one
  delimiter apart, no leading/trailing whitespace, LF or CRLF endings, no control bytes,
  valid UTF-8 -- which one vectorised pass over the bytes verifies (:func:`_canonical`).
  On such a file both engines split every line into the same fields. Anything else
  (including any value Arrow parses differently from Python, e.g. ``0x10`` as an integer)
  makes it return None, and the python engine reads the file and names the problem.

``engine="auto"`` tries arrow for files of at least :data:`FAST_MIN_BYTES`. String
columns come back as object arrays from the python engine and as pyarrow arrays from
the arrow engine (the query id column dictionary-encoded); :meth:`evalsuite.types.Run.from_arrays`
takes either, so a 10M-line run never becomes 10M Python strings.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import mmap
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from evalsuite._ids import arrow_numbers
from evalsuite.errors import ConfigError, DataError
from evalsuite.io._text import Problems, read_text

__all__ = ["Column", "TableData", "TableFormat", "read_table", "split_whitespace"]

Engine = Literal["auto", "arrow", "python"]
_ASCII_SPACE = " \t\n\r\v\f"
_ASCII_SPLIT = re.compile(r"[ \t\n\r\v\f]+")
# a control character that is not a separator somewhere on the line: the fields are checked
_LINE_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_FIELD_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_EXACT_FLOAT_INT = 2**53  # integers read through float64 (arrow engine) are exact below this
FAST_MIN_BYTES = 1 << 16
_SCAN_CHUNK = 1 << 23


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
    """Parsed columns. ``columns`` holds numpy arrays for numbers; string columns are object
    arrays (python engine) or pyarrow arrays (arrow engine: the first one dictionary-encoded).
    """

    columns: dict[str, Any]
    first_row: tuple[str, ...]
    lines: np.ndarray | None = None  # 1-based line number of every row (None: row i is on line first_line + i)
    first_line: int = 1
    engine: Literal["arrow", "python"] = "python"

    def line_of(self, row: int) -> int:
        """The 1-based line number of data row ``row``."""
        return int(self.lines[row]) if self.lines is not None else self.first_line + row


def read_table(path: Path, fmt: TableFormat, engine: Engine = "auto") -> TableData:
    """Parse ``path`` (already checked to exist and be non-empty) as ``fmt``."""
    if engine not in ("auto", "arrow", "python"):
        raise ConfigError(f"engine must be 'auto', 'arrow' or 'python', got {engine!r}")
    if engine == "arrow" or (engine == "auto" and path.stat().st_size >= FAST_MIN_BYTES):
        data = read_arrow(path, fmt)
        if data is not None:
            return data
    return _read_python(path, fmt)


def split_whitespace(line: str) -> list[str]:
    """Fields of a whitespace-separated line. Like trec_eval, only ASCII whitespace separates
    (``str.split()`` would also split on U+001C-U+001F, U+0085, U+00A0, ...)."""
    if line.isascii() and _LINE_CONTROL.search(line) is None:
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
        integer = int(value)
    except ValueError:
        number = float(value)
        if not number.is_integer():
            raise
        integer = int(number)
    if not _INT64_MIN <= integer <= _INT64_MAX:
        raise OverflowError(value)
    return integer


def _describe(column: Column, value: str, exc: Exception) -> str:
    if isinstance(exc, OverflowError):
        return f"{column.name} {value!r} is out of range (integers must fit in 64 bits)"
    if column.kind == "float":
        return f"{column.name} {value!r} is not a number"
    return f"{column.name} {value!r} is not an integer"


def _control_problem(fields: list[str], fmt: TableFormat) -> str | None:
    for i, value in enumerate(fields):
        found = _FIELD_CONTROL.search(value)
        if found is not None:
            name = fmt.columns[i].name if i < len(fmt.columns) else f"field {i + 1}"
            return (f"{name} {value!r} contains a control character (U+{ord(found.group()):04X}); "
                    "ids and fields must be printable text")
    return None


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
        if not line.strip(_ASCII_SPACE):
            continue
        if fmt.sep == "tab":
            fields = [f.strip(_ASCII_SPACE) for f in line.split("\t")]
        else:
            fields = split_whitespace(line)
        if first_line:
            first_line = False
            if fmt.may_have_header and _is_header(tuple(fields), fmt):
                continue
        if _LINE_CONTROL.search(line) is not None and (problem := _control_problem(fields, fmt)) is not None:
            problems.add(lineno, problem)
            continue
        if len(fields) != n_columns:
            problems.add(lineno, f"expected {n_columns} columns ({fmt.layout}), found {len(fields)}")
            continue
        parsed: list[Any] = []
        for i, column in kept:
            try:
                parsed.append(_parse_value(column.kind, fields[i]))
            except (ValueError, OverflowError) as exc:
                problems.add(lineno, _describe(column, fields[i], exc))
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
    return TableData(columns, first_row, lines=np.asarray(lines, dtype=np.int64), engine="python")


def _to_array(kind: str, values: list[Any]) -> np.ndarray:
    if kind == "str":
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    return np.asarray(values, dtype=np.float64 if kind == "float" else np.int64)


def _open_bytes(path: Path) -> Any:
    """The file's bytes as a buffer: a read-only memory map, or the decompressed gzip data."""
    with open(path, "rb") as fh:
        if fh.read(2) == b"\x1f\x8b":
            try:
                return gzip.decompress(path.read_bytes())
            except (OSError, EOFError, ValueError):
                return None  # the python engine names the problem
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)


def _canonical(data: np.ndarray, *, rows: int, n_fields: int, tab_fields: bool, crlf: bool) -> bool:
    """Whether the bytes are a canonical table: ``rows`` lines of ``n_fields`` fields each (as
    Arrow parsed them), where the Python engine splits every line into the same fields.

    Checked in one vectorised pass (chunks of 8 MB): no two consecutive bytes are ASCII
    whitespace or control bytes (no empty field, no leading/trailing blank, no blank line,
    CRLF excepted); the only bytes below 0x20 are the delimiters and line ends, i.e.
    exactly ``(n_fields - 1) * rows`` of them plus one per line end (two with CRLF);
    with whitespace-separated fields a space also counts, since Python splits on it.
    No byte 0x7F, and valid UTF-8 when the file is not pure ASCII. (Without ``crlf``
    the caller has checked that no CR byte is present: Arrow also ends lines at a lone CR.)
    """
    n = len(data)
    if n == 0 or data[0] <= 0x20:
        return False
    line_ends = rows if data[-1] == 0x0A else rows - 1
    if crlf and data[-1] != 0x0A:
        return False
    expected = (n_fields - 1) * rows + line_ends * (2 if crlf else 1)
    low = adjacent = crlf_pairs = 0
    high = False
    for start in range(0, n, _SCAN_CHUNK):
        chunk = data[start:start + _SCAN_CHUNK + 1]  # one byte of overlap for the pairs
        blank = chunk <= 0x20
        adjacent += int(np.count_nonzero(np.logical_and(blank[1:], blank[:-1])))
        body = chunk[:_SCAN_CHUNK]
        low += int(np.count_nonzero(body < 0x20 if tab_fields else blank[:_SCAN_CHUNK]))
        high = high or int(body.max()) >= 0x7F
        if crlf:
            crlf_pairs += int(np.count_nonzero((chunk[:-1] == 0x0D) & (chunk[1:] == 0x0A)))
    if low != expected:
        return False
    # the only neighbouring blanks allowed are the CR LF line ends, one per line end
    if adjacent != (line_ends if crlf else 0) or crlf_pairs != (line_ends if crlf else 0):
        return False
    if high:
        if bool((data == 0x7F).any()):
            return False
        import pyarrow as pa

        whole = pa.Array.from_buffers(pa.large_string(), 1, [None, pa.py_buffer(np.array([0, n], np.int64)),
                                                             pa.py_buffer(data)])
        try:
            whole.validate(full=True)  # UTF-8 check without decoding into a Python str
        except pa.ArrowInvalid:
            return False
    return True


def read_arrow(path: Path, fmt: TableFormat) -> TableData | None:
    """Parse with pyarrow; None when pyarrow is missing or the file is not canonical
    (see the module docstring), so that the python engine reads it."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:  # pragma: no cover - pyarrow is a core dependency
        return None
    raw = _open_bytes(path)
    if raw is None:
        return None
    try:
        return _read_arrow_buffer(raw, fmt, pa, pacsv)
    finally:
        if isinstance(raw, mmap.mmap):
            with contextlib.suppress(BufferError):  # a result still views it: it closes when that is freed
                raw.close()


def _read_arrow_buffer(raw: Any, fmt: TableFormat, pa: Any, pacsv: Any) -> TableData | None:
    head = bytes(raw[: 1 << 16])
    if head.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return None
    head_lines = head.split(b"\n", 2)
    crlf = head_lines[0].endswith(b"\r")
    first_line = head_lines[0].rstrip(b"\r")
    delimiter = "\t" if b"\t" in first_line else " "
    if fmt.sep == "tab" and delimiter != "\t":
        return None
    try:
        first_fields = tuple(first_line.decode("utf-8").split(delimiter))
        skip = 1 if fmt.may_have_header and _is_header(first_fields, fmt) else 0
        if skip:
            if len(head_lines) < 2:
                return None
            first_fields = tuple(head_lines[1].rstrip(b"\r").decode("utf-8").split(delimiter))
    except UnicodeDecodeError:
        return None
    names = [f"c{i}" for i in range(len(fmt.columns))]
    kinds = {"str": pa.string(), "float": pa.float64(), "int": pa.float64()}  # int via float64: see below
    types = {names[i]: kinds[c.kind] for i, c in enumerate(fmt.columns) if c.kind != "skip"}
    first_str = next(i for i, c in enumerate(fmt.columns) if c.kind == "str")
    types[names[first_str]] = pa.dictionary(pa.int32(), pa.string())  # query ids: few distinct values
    data = np.frombuffer(raw, dtype=np.uint8)
    try:
        table = pacsv.read_csv(
            pa.BufferReader(pa.py_buffer(raw)),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=skip, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, quote_char=False, double_quote=False, escape_char=False,
                newlines_in_values=False, ignore_empty_lines=False,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=types, include_columns=list(types), null_values=[], strings_can_be_null=False,
                check_utf8=False,  # the whole buffer is validated by _canonical
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    if table.num_rows == 0:
        return None
    if not crlf and raw.find(b"\r") != -1:
        return None  # Arrow ends a line at a lone CR, Python does not
    if not _canonical(data, rows=table.num_rows + skip, n_fields=len(fmt.columns),
                      tab_fields=fmt.sep == "tab", crlf=crlf):
        return None
    columns: dict[str, Any] = {}
    for i, column in enumerate(fmt.columns):
        if column.kind == "skip":
            continue
        array = table.column(names[i])
        if column.kind == "str":
            columns[column.name] = array.unify_dictionaries() if i == first_str else array
            continue
        values = arrow_numbers(array, np.float64)
        if np.isnan(values).any():
            return None  # let the python engine name the line
        if column.kind == "int":
            # Arrow's integer parser reads "0x10" as 16, Python refuses it: read through float64
            # (which refuses it too) and keep only exactly representable integral values
            if not (np.all(np.abs(values) < _EXACT_FLOAT_INT) and np.array_equal(values, np.trunc(values))):
                return None
            values = values.astype(np.int64)
        columns[column.name] = values
    return TableData(columns, first_fields, first_line=1 + skip, engine="arrow")


def _is_header(fields: tuple[str, ...], fmt: TableFormat) -> bool:
    """A first line with the right column count whose numeric fields are not numbers."""
    if len(fields) != len(fmt.columns):
        return False
    for value, column in zip(fields, fmt.columns):
        if column.kind in ("int", "float"):
            try:
                _parse_value(column.kind, value.strip())
            except (ValueError, OverflowError):
                return True
    return False
