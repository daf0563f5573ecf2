"""Names that become path components, and paths that must stay inside a folder.

Suite, task, system (retriever) and gate names and run ids end up in file names
(``<output>/<suite>/<run id>/runs/<task>__<system>.trec``), so they are validated before
anything is written: a name is 1 to 100 characters from ``A-Z a-z 0-9 . _ -``, starting
with a letter or digit (:data:`NAME_PATTERN`). That excludes ``/``, ``\\``, ``..``, ``.``,
the empty name, whitespace and control characters, so a name can never leave its folder;
names that differ only in case are refused as well (they collide on macOS/Windows file
systems).

Every path evalsuite writes inside a results folder, and every path a results folder
refers to (``details_file``, ``run_file``), is checked with :func:`contained`: it must
resolve (symlinks followed) inside that folder. A results folder is read only from inside
itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from evalsuite.errors import DataError

__all__ = ["NAME_PATTERN", "NAME_RULE", "check_name", "contained", "name_problem", "names_collide", "safe_filename"]

#: what a suite/task/system/gate name or run id must match (the whole string)
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
NAME_RULE = "1-100 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit"


def _show(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def name_problem(kind: str, value: object) -> str | None:
    """Why ``value`` is not a valid ``kind`` name, or None when it is."""
    if not isinstance(value, str):
        return f"{kind} name must be a string, got {type(value).__name__}"
    if NAME_PATTERN.fullmatch(value) is None:
        return f"{kind} name {_show(value)} is not allowed: use {NAME_RULE} (it becomes part of file names)"
    return None


def check_name(kind: str, value: object) -> str:
    """``value`` if it is a valid ``kind`` name, else ``ValueError`` saying why (for pydantic validators)."""
    problem = name_problem(kind, value)
    if problem is not None:
        raise ValueError(problem)
    return str(value)


def names_collide(names: Iterable[str]) -> tuple[str, str] | None:
    """The first two names that are equal ignoring case (they would share a file), or None."""
    seen: dict[str, str] = {}
    for name in names:
        key = name.casefold()
        if key in seen and seen[key] != name:
            return seen[key], name
        seen.setdefault(key, name)
    return None


def safe_filename(name: str) -> str:
    """``name`` as a file-name part: every character but letters, digits, ``-``, ``_`` and
    ``.`` replaced by ``_`` (run files, details files, default report names)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def contained(root: str | Path, relative: str | Path, *, what: str = "path", source: str | Path | None = None) -> Path:
    """``root / relative``, after checking that it resolves inside ``root``.

    ``relative`` must be a relative path; ``..`` components and symlinks are allowed only
    when the resolved target is still inside ``root``. Raises :class:`DataError` naming
    ``source`` (the file that named the path) otherwise.
    """
    rel = Path(relative)
    if "\x00" in str(relative):
        raise DataError(f"{what} {_show(str(relative))} contains a NUL character", path=source)
    if rel.is_absolute() or rel.drive:
        raise DataError(f"{what} {_show(str(relative))} is absolute; it must be relative to {root}", path=source,
                        hint="a results folder only refers to files inside itself")
    base = Path(root).resolve()
    target = (base / rel).resolve()
    if target != base and base not in target.parents:
        raise DataError(f"{what} {_show(str(relative))} leads outside {base}", path=source,
                        hint="a results folder only refers to files inside itself")
    return base / rel
