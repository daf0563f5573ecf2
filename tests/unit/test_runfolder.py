"""evalsuite._runfolder.building: a folder that replaces an earlier one whole, or not at all."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from evalsuite._runfolder import building


def test_building_swaps_in_only_when_the_block_ends_normally(tmp_path: Path) -> None:
    target = tmp_path / "DIR"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt), building(target) as work:
        assert work.parent == tmp_path and work.name.startswith(".DIR.") and work.name.endswith(".partial")
        (work / "new.txt").write_text("new")
        raise KeyboardInterrupt
    assert [p.name for p in target.iterdir()] == ["old.txt"] and sorted(os.listdir(tmp_path)) == ["DIR"]
    with building(target) as work:
        (work / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"] and sorted(os.listdir(tmp_path)) == ["DIR"]


def test_building_removes_the_parents_it_made_on_failure(tmp_path: Path) -> None:
    with pytest.raises(OSError), building(tmp_path / "a" / "b" / "DIR"):
        raise OSError(28, "No space left on device")
    assert os.listdir(tmp_path) == []


def test_building_cleans_only_its_own_stale_partial_folders(tmp_path: Path) -> None:
    stale, other = tmp_path / ".DIR.x1y2.partial", tmp_path / ".download.partial"
    for folder in (stale, other):
        folder.mkdir()
        (folder / "f").write_text("left by a killed process")
        past = time.time() - 60
        os.utime(folder, (past, past))
    with building(tmp_path / "DIR") as work:
        (work / "f").write_text("x")
    assert sorted(os.listdir(tmp_path)) == [".download.partial", "DIR"]


def dead_pid() -> int:
    """The pid of a process that has ended."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("new_arrived", [False, True])
def test_a_swap_killed_between_its_renames_is_finished_by_the_next_build(tmp_path: Path, new_arrived: bool) -> None:
    """SIGKILL after the old folder went aside: without the new one, the old one comes back;
    with it, the old one goes. A live process's folder aside is left alone."""
    target, aside = tmp_path / "DIR", tmp_path / f".DIR.old-{dead_pid()}"
    aside.mkdir()
    (aside / "old.txt").write_text("old")
    live = tmp_path / f".DIR.old-{os.getpid()}"
    live.mkdir()
    if new_arrived:
        target.mkdir()
        (target / "new.txt").write_text("new")
    with pytest.raises(KeyboardInterrupt), building(target):
        assert not aside.exists()
        assert sorted(p.name for p in target.iterdir()) == (["new.txt"] if new_arrived else ["old.txt"])
        raise KeyboardInterrupt
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, "DIR"])


@pytest.mark.skipif(os.name != "posix", reason="flock")
def test_moving_latest_waits_for_a_held_lock_only_so_long(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process holding the suite folder's lock (a stopped run, any program) must not
    hang the run forever: after a bounded wait, one error says what was not done and what to do."""
    import subprocess
    import sys

    from evalsuite import _runfolder
    from evalsuite.errors import DataError

    (tmp_path / "20261203T000000Z-aaaaaa").mkdir()
    holder = subprocess.Popen([sys.executable, "-c",
                               "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); "
                               "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
                               str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        monkeypatch.setattr(_runfolder, "_LOCK_TIMEOUT_S", 0.3, raising=False)
        started = time.monotonic()
        with pytest.raises(DataError, match=r"another process has held the lock on this folder for 0.3 s, so "
                                            r"'latest' was not moved to run 20261203T000000Z-aaaaaa.*ln -sfn"):
            _runfolder.point_latest(tmp_path, "20261203T000000Z-aaaaaa")
        assert time.monotonic() - started < 5
        assert not (tmp_path / "latest").exists()
    finally:
        holder.kill()
        holder.wait(timeout=10)
    _runfolder.point_latest(tmp_path, "20261203T000000Z-aaaaaa")  # released: moves at once
    assert os.readlink(tmp_path / "latest") == "20261203T000000Z-aaaaaa"
