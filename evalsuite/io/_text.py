"""Opening text files: existence checks, gzip, encodings, and problems with line numbers."""

from __future__ import annotations

import csv
import errno
import gzip
import io
import json
import os
import re
import stat
import sys
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from evalsuite.errors import DataError

__all__ = ["Problems", "atomic_write", "check_file", "csv_rows", "is_process_stream", "json_loads", "naming_errors",
           "read_text"]

# Long documents in CSV corpora are normal; csv's default limit (131,072 characters per field) is not a
# property of the data. Raised once, for the whole process.
csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
_SURROGATE = re.compile("[\ud800-\udfff]")

_BOMS = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)


def check_file(path: str | Path, what: str) -> Path:
    """``path`` as a Path, after checking that it is a readable, non-empty file."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{what} file not found", path=p, hint="check the path")
    if p.is_dir():
        raise DataError(f"{what} path is a folder, expected a file", path=p)
    info = p.stat()
    if stat.S_ISFIFO(info.st_mode):  # a pipe (``<(zcat run.gz)``) has no size until read
        return p
    if not stat.S_ISREG(info.st_mode):  # /dev/zero would be read until memory runs out
        raise DataError(f"{what} path is a device, expected a file", path=p)
    if info.st_size == 0:
        raise DataError(f"{what} file is empty", path=p)
    return p


def read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()  # read once: a pipe cannot be opened a second time
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"corrupt gzip file ({exc})", path=path, hint="re-create or re-download it") from None
    return raw


def read_text(path: Path, what: str) -> str:
    """The decoded text of ``path`` (gzip-aware; UTF-8, or UTF-16 with a byte-order mark).

    Undecodable bytes raise a :class:`DataError` naming the line.
    """
    raw = read_bytes(path)
    encoding = "utf-8"
    for bom, name in _BOMS:
        if raw.startswith(bom):
            raw, encoding = raw[len(bom):], name
            break
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataError(
            f"{what} is not valid {encoding.upper()} text (byte {raw[exc.start:exc.start + 1]!r} at column {column})",
            path=path,
            line=line,
            hint="re-save the file as UTF-8",
        ) from None
    if not text.strip(" \t\n\r\v\f"):  # ASCII whitespace: a file of U+001C is not "only whitespace"
        raise DataError(f"{what} file has no content (only whitespace)", path=path)
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise DataError(f"{what} contains NUL bytes, so it is not UTF-8 text (UTF-16 without a byte-order mark?)",
                        path=path, line=line, hint="re-save the file as UTF-8")
    return text


def surrogate_problem(value: object) -> str | None:
    """Why ``value`` (a parsed JSON value) is not valid Unicode text, or None.

    JSON may escape half of a UTF-16 surrogate pair (``"\\ud800"``); Python decodes it to a
    lone surrogate, which no UTF-8 writer accepts later (results, TREC files, the terminal)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found = _SURROGATE.search(item)
            if found:
                return (f"text contains a lone surrogate {found.group()!r} (half of a UTF-16 pair, not valid "
                        "Unicode)")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def json_loads(text: str) -> Any:
    """``json.loads`` that also refuses lone surrogates and nesting too deep to parse.

    Raises ``json.JSONDecodeError`` (with ``msg``/``lineno``) for invalid JSON and a plain
    ``ValueError`` (its message says why) for the other two."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if "\\u" in text or "\\U" in text:
        problem = surrogate_problem(value)
        if problem is not None:
            raise ValueError(problem)
    return value


def csv_rows(text: str, path: Path, *, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of CSV or TSV ``text``.

    Tab-separated text is read without quoting: a ``"`` is an ordinary character (as in the
    BEIR, SentEval and MS MARCO files); quoting would swallow tabs and line breaks. Comma-
    separated text uses standard CSV quoting. A malformed line raises a DataError naming it."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter,
                        quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL)
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as exc:
        raise DataError(f"malformed CSV: {exc}", path=path, line=reader.line_num) from None


def csv_records(rows: Iterable[tuple[int, list[str]]]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, {header: value}) from :func:`csv_rows`, the first non-blank row being the header."""
    header: list[str] | None = None
    for lineno, row in rows:
        if not row or all(not c.strip() for c in row):
            continue
        if header is None:
            header = [c.strip() for c in row]
            continue
        yield lineno, dict(zip(header, row))


class Problems:
    """Collects every problem found in a file, then raises them as one :class:`DataError`.

    The message names the first problem with its line and summarises the others, so
    that a user fixes a file in one pass rather than one error per run.
    """

    _SHOWN = 3

    def __init__(self, path: Path, limit: int = 1000) -> None:
        self.path = path
        self.limit = limit
        self.items: list[tuple[int | None, str]] = []
        self.total = 0

    def add(self, line: int | None, message: str) -> None:
        self.total += 1
        if len(self.items) < self.limit:
            self.items.append((line, message))

    def __bool__(self) -> bool:
        return self.total > 0

    def raise_if_any(self, hint: str | None = None) -> None:
        if not self.total:
            return
        line, message = self.items[0]
        if self.total > 1:
            others = "; ".join(f"line {ln}: {msg}" if ln else msg for ln, msg in self.items[1:self._SHOWN])
            more = self.total - min(self.total, self._SHOWN)
            message += f" [{self.total - 1} more problem(s): {others}" + (f"; ... {more} more" if more else "") + "]"
        error = DataError(message, path=self.path, line=line, hint=hint)
        error.problems = list(self.items)  # type: ignore[attr-defined]
        raise error


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _own_fd(path: Path) -> int | None:
    """N when ``path`` leads, through links, to this process's ``/proc/self/fd/N`` (``/dev/stdout``,
    ``/dev/fd/3``): an open file of the process, written through, never replaced."""
    here = os.path.abspath(path)
    for _ in range(40):  # the kernel follows at most 40 links
        parent, name = os.path.split(here)
        here = os.path.join(os.path.realpath(parent), name)
        found = re.fullmatch(rf"/proc/(?:self|{os.getpid()})/fd/(\d+)", here)
        if found:
            return int(found.group(1))
        try:
            here = os.path.join(os.path.dirname(here), os.readlink(here))
        except OSError:  # not a link (or not there): an ordinary path
            return None
    return None


def is_process_stream(path: str | Path) -> bool:
    """Whether ``path`` leads to one of this process's open files (``/dev/stdout``, ``/dev/fd/3``),
    whatever that file is: nothing can be written *beside* such a path."""
    return _own_fd(Path(path)) is not None


@contextmanager
def naming_errors(path: str | Path) -> Iterator[None]:
    """An OSError raised inside that names no file (a full disk, a file-size limit: the write
    or close fails, not the open) is raised again naming ``path``, so the message says which."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise


@contextmanager
def _opened(where: int | str | Path, *, gz: bool, binary: bool) -> Iterator[Any]:
    """``where`` (a path or a file descriptor) opened for writing: text as UTF-8 with LF line
    ends, or bytes; gzip-compressed with ``gz``."""
    encoding = None if binary else "utf-8"
    if gz:
        with open(where, "wb") as raw, gzip.open(raw, "wb" if binary else "wt", encoding=encoding) as out:
            yield out
    else:
        with open(where, "wb" if binary else "w", encoding=encoding, newline=None if binary else "\n") as out:
            yield out


@contextmanager
def atomic_write(path: str | Path, *, binary: bool = False) -> Iterator[Any]:
    """Write to a temporary file beside ``path`` and move it in place only on success,
    so that a failure never leaves a half-written file. ``.gz`` paths are gzip-compressed.

    A folder is refused (naming ``path``, not the temporary file); a device or a pipe
    (``/dev/stdout``, ``/dev/null``, a FIFO) is written in place: replacing it would put a
    regular file where the device was; so is an open file of the process (``/dev/stdout`` when
    the output is redirected to a file). A symlink to a file is kept: the file it names is replaced.
    """
    target = Path(path)
    gz = target.suffix == ".gz"
    try:
        mode = target.stat().st_mode  # follows links: /dev/stdout -> /proc/self/fd/1 -> a pipe
    except OSError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a folder; give a file path", str(target))
    own_fd = _own_fd(target)
    if own_fd is not None or (mode is not None and not stat.S_ISREG(mode)):
        if own_fd is not None:  # /dev/stdout > log.txt: write after what the process wrote there, not over it
            for stream in (sys.stdout, sys.stderr):
                try:
                    if stream is not None and stream.fileno() == own_fd:
                        stream.flush()
                except (OSError, ValueError, AttributeError):
                    pass
        with naming_errors(target), _opened(os.dup(own_fd) if own_fd is not None else target, gz=gz,
                                            binary=binary) as out:
            yield out
        return
    if target.is_symlink():  # summary.md -> shared/summary.md: replace the file it names, keep the link
        target = Path(os.path.realpath(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
    try:
        with naming_errors(target), _opened(tmp, gz=gz, binary=binary) as out:
            yield out
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
