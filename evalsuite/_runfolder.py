"""A run's results folder: assembled under a hidden name, renamed last, ``latest`` moved atomically.

``<suite folder>/.<run id>.partial/`` is created and locked (``flock`` on the folder) for
as long as the run is alive; everything (results, runs, details, gates, report) is
written there. :meth:`RunFolder.commit` renames it to ``<run id>/``, then adds the run to
the results store (on failure the rename is undone, so no visible folder lacks its store
row), then points ``latest`` at it by creating a symlink under a temporary name and
``rename``-ing it over ``latest`` (atomic: a reader sees the old or the new target, never
neither). Concurrent runs of one suite serialise that step on a lock, and ``latest`` only
moves forward (to a later run id).

Partial folders left by killed runs (SIGKILL, power loss) are not locked by a live
process; the next run of the suite removes those older than its own start.

:func:`building` is the same discipline for a folder that replaces an earlier one whole
(``evalsuite finetune --output DIR``): it is built in a hidden, locked sibling
``.<name>.<random>.partial`` and swapped in by :func:`replace_folder` only when complete.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from evalsuite.errors import DataError
from evalsuite.safepaths import contained

try:  # POSIX; elsewhere partial folders are only cleaned once a day old
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["RunFolder", "building", "clean_stale_partials", "point_latest", "replace_folder"]

_RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")
_UNLOCKED_STALE_SECONDS = 24 * 3600


def _try_lock(fd: int) -> bool:
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


#: how long moving ``latest`` waits for another process's lock on the suite folder (evalsuite
#: itself holds it for milliseconds; a stopped run or another program could hold it forever)
_LOCK_TIMEOUT_S = 30.0


@contextlib.contextmanager
def _locked(folder: Path, what: str, hint: str) -> Iterator[None]:
    """An exclusive lock on ``folder``, for the read-compare-replace of ``latest``.

    Waits at most :data:`_LOCK_TIMEOUT_S`, then raises a :class:`DataError` saying that
    ``what`` (the step that needed the lock) was not done, and ``hint``."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        deadline = time.monotonic() + _LOCK_TIMEOUT_S
        while not _try_lock(fd):
            if time.monotonic() >= deadline:
                raise DataError(f"another process has held the lock on this folder for {_LOCK_TIMEOUT_S:g} s, "
                                f"so {what}", path=folder,
                                hint=f"find it with 'fuser -v {folder}'; {hint}")
            time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def clean_stale_partials(folder: Path, started: float, *, prefix: str | None = None) -> list[Path]:
    """Remove ``.<id>.partial`` folders (and ``.latest.*`` temporaries) left by dead runs; return them.

    A partial folder is stale when no live process holds its lock and it was last changed
    before ``started`` (the cleaning run's start), so a run that has just created its
    folder and not yet locked it is never touched. With ``prefix``, only partial folders
    whose name starts with it are considered (and no ``.latest.*`` temporaries)."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        name = entry.name
        try:
            if prefix is not None:
                if not name.startswith(prefix):
                    continue
            elif name.startswith(".latest.") and name.endswith(".tmp"):
                if entry.lstat().st_mtime < started:
                    entry.unlink()
                    removed.append(entry)
                continue
            if not (name.startswith(".") and name.endswith(".partial")) or entry.is_symlink() or not entry.is_dir():
                continue
            if entry.stat().st_mtime >= started:
                continue
            fd = os.open(entry, os.O_RDONLY)
            try:
                stale = _try_lock(fd) if fcntl is not None else (time.time() - entry.stat().st_mtime
                                                                  > _UNLOCKED_STALE_SECONDS)
                if stale:
                    shutil.rmtree(entry)
                    removed.append(entry)
            finally:
                os.close(fd)
        except FileNotFoundError:  # another run cleaned it first
            continue
    return removed


def _current(link: Path) -> str | None:
    try:
        if link.is_symlink():
            return os.readlink(link)
        if link.is_file():
            return link.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return None


def point_latest(folder: Path, run_id: str) -> None:
    """``<suite folder>/latest`` -> ``run_id`` (a symlink where possible, else a text file), atomically.

    Does nothing when ``latest`` already names a later run that exists (concurrent runs)."""
    link = folder / "latest"
    with _locked(folder, f"'latest' was not moved to run {run_id}, which is saved in {folder / run_id}",
                 f"then point 'latest' at the run with 'ln -sfn {run_id} {link}'"):
        current = _current(link)
        if (current is not None and _RUN_ID.fullmatch(current) and _RUN_ID.fullmatch(run_id)
                and current > run_id and (folder / current).is_dir()):
            return
        tmp = folder / f".latest.{run_id}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        try:
            os.symlink(run_id, tmp, target_is_directory=True)
        except OSError:  # no symlinks (some Windows setups): a text file naming the run
            tmp.write_text(run_id + "\n", encoding="utf-8")
        try:
            os.replace(tmp, link)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise


def process_gone(pid: int) -> bool:
    """Whether no process has id ``pid`` (so what it left behind by that id is stale). Another
    user's process, and a number no process can have, count as not gone: left alone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


def recover_interrupted_swap(target: Path) -> list[Path]:
    """Finish a :func:`replace_folder` whose process was killed between its two renames.

    Such a process leaves the old folder aside as ``.<name>.old-<pid>``: when ``target`` is
    missing, the old folder is put back (the new one never arrived); when ``target`` exists,
    the new folder is in place and the old one is removed. Folders of live processes are left
    alone. Returns the folders handled."""
    handled: list[Path] = []
    prefix = f".{target.name}.old-"
    if not target.parent.is_dir():
        return handled
    for entry in sorted(target.parent.iterdir()):
        pid = entry.name[len(prefix):]
        if (not entry.name.startswith(prefix) or not pid.isdigit() or entry.is_symlink() or not entry.is_dir()
                or not process_gone(int(pid))):
            continue
        if target.exists() or target.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.rename(target)
        handled.append(entry)
    return handled


def replace_folder(staged: Path, target: Path) -> None:
    """Move the complete folder ``staged`` to ``target``, replacing an existing one only then.

    The old folder is renamed aside (``.<name>.old-<pid>``) and back again if the new one
    cannot be renamed into place, so ``target`` is the old or the new folder, never a mix."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        target.rename(old)
        try:
            staged.rename(target)
        except BaseException:
            old.rename(target)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        staged.rename(target)


@contextlib.contextmanager
def building(target: Path) -> Iterator[Path]:
    """Build the folder ``target`` whole: yields a hidden, locked sibling ``.<name>.<random>.partial``.

    When the block ends normally, the folder built there replaces ``target`` (an existing
    one only then, :func:`replace_folder`). On any exception, Ctrl-C or SIGTERM it is
    removed, ``target`` is left as it was, and the parent folders made for it are removed
    again. Partial folders of ``target`` left by killed processes are cleaned first, and a
    swap a killed process left half done is finished (:func:`recover_interrupted_swap`)."""
    started = time.time()
    parent = target.parent
    created = [p for p in (parent, *parent.parents) if not p.exists()]
    parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}."
    clean_stale_partials(parent, started, prefix=prefix)
    recover_interrupted_swap(target)
    work = Path(tempfile.mkdtemp(prefix=prefix, suffix=".partial", dir=parent))
    fd = os.open(work, os.O_RDONLY)
    try:
        _try_lock(fd)
        yield work
        replace_folder(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        for made in created:
            with contextlib.suppress(OSError):
                made.rmdir()
        raise
    finally:
        os.close(fd)


class RunFolder:
    """The folder of one run (see the module docstring)."""

    def __init__(self, suite_folder: Path, run_id: str) -> None:
        self.suite_folder = suite_folder
        self.run_id = run_id
        self.partial = suite_folder / f".{run_id}.partial"
        self.final = suite_folder / run_id
        self._fd: int | None = None
        self._created: list[Path] = []  # folders that create() made (removed again by abort() when empty)

    def check(self) -> None:
        """Problems that would stop the run at its end, found before any work."""
        existing = next(p for p in (self.suite_folder, *self.suite_folder.parents) if p.exists())
        if not existing.is_dir():
            raise DataError("is a file, so the results folder cannot be made inside it", path=existing,
                            hint="move it away, or choose another --output or 'output:' in the suite")
        link = self.suite_folder / "latest"
        if link.is_dir() and not link.is_symlink():
            raise DataError("'latest' is a folder, so it cannot point to the newest run", path=link,
                            hint="move it away")

    def create(self, started: float) -> Path:
        """Clean stale partial folders, then create and lock this run's partial folder."""
        self.check()
        clean_stale_partials(self.suite_folder, started)
        self._created = [p for p in (self.suite_folder, *self.suite_folder.parents) if not p.exists()]
        self.partial.mkdir(parents=True, exist_ok=False)
        self._fd = os.open(self.partial, os.O_RDONLY)
        _try_lock(self._fd)
        return self.partial

    def path(self, relative: str | Path) -> Path:
        """A path inside the partial folder (checked to stay inside it)."""
        return contained(self.partial, relative, what="output path")

    def commit(self, add_to_store: Callable[[], None]) -> Path:
        """Rename to the final name, add to the store (undoing the rename if that fails), move ``latest``."""
        os.rename(self.partial, self.final)
        try:
            add_to_store()
        except BaseException:
            try:
                os.rename(self.final, self.partial)
            except OSError:
                shutil.rmtree(self.final, ignore_errors=True)
            self.abort()
            raise
        try:
            point_latest(self.suite_folder, self.run_id)
        finally:
            self._release()
        return self.final

    def abort(self) -> None:
        """Remove the partial folder (a failed or interrupted run leaves nothing)."""
        shutil.rmtree(self.partial, ignore_errors=True)
        self._release()
        for made in self._created:
            with contextlib.suppress(OSError):
                made.rmdir()

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
