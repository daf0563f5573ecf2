"""Fault tests: a run killed (SIGKILL) or stopped (SIGTERM) midway, then a second run; two concurrent runs of
one suite; a full disk; a read-only output folder and a read-only cache.

Each run is a real ``evalsuite run`` subprocess on the tiny world (BM25, 4 documents); a wrapper
(:data:`PAUSING`) makes the first one stop just after its temporary folder holds the run files,
so the signal lands mid-run deterministically.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.badinput.world import build, copy

REPO = Path(__file__).resolve().parents[2]
RUN = ["run", "suite.yaml", "-q", "--no-progress", "--no-report"]

# Runs the CLI with runner.write_details pausing (after writing) until the test signals it.
PAUSING = """
import sys, time
from pathlib import Path
import evalsuite.runner as runner
marker = Path(sys.argv[1])
original = runner.write_details
def paused(*args, **kwargs):
    original(*args, **kwargs)
    marker.write_text("paused")
    time.sleep(120)
runner.write_details = paused
from evalsuite.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("faults-world")
    build(root)
    return root


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def start(root: Path, *argv: str, pause: Path | None = None) -> subprocess.Popen[str]:
    command = [sys.executable, "-c", PAUSING, str(pause), *argv] if pause else [sys.executable, "-m", "evalsuite",
                                                                                 *argv]
    return subprocess.Popen(command, cwd=root, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(marker: Path, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before pausing: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the run never reached the pause")
        time.sleep(0.05)


def stored_ids(root: Path) -> list[str]:
    with sqlite3.connect(root / "out" / "history.sqlite") as conn:
        rows = [r[0] for r in conn.execute("SELECT run_id FROM runs ORDER BY run_id")]
    conn.close()
    return rows


def visible_runs(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "out" / "tiny").iterdir() if not p.name.startswith(".")
                  and p.name != "latest")


def hidden(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "out" / "tiny").iterdir() if p.name.startswith("."))


def check_consistent(root: Path) -> None:
    """Every visible run folder is complete and stored; the store names only visible folders; latest is one."""
    runs = visible_runs(root)
    assert runs == stored_ids(root)
    for run in runs:
        data = json.loads((root / "out" / "tiny" / run / "results.json").read_text())
        assert data["run_id"] == run and (root / "out" / "tiny" / run / "gates.json").is_file()
    assert os.readlink(root / "out" / "tiny" / "latest") == max(runs)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_signal_mid_run_then_a_second_run(world: Path, tmp_path: Path, sig: signal.Signals) -> None:
    root = copy(world, tmp_path / "w")
    before = visible_runs(root)
    marker = tmp_path / "paused"
    proc = start(root, *RUN, pause=marker)
    wait_for(marker, proc)
    assert any(name.endswith(".partial") for name in hidden(root))  # it was mid-run
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGTERM:  # handled like Ctrl-C: exit 130, one line, its partial folder removed
        assert proc.returncode == 130 and err.strip().splitlines() == ["evalsuite: interrupted"], err
        assert hidden(root) == []
    else:  # nothing could run: a hidden partial folder stays, invisible to readers
        assert proc.returncode == -signal.SIGKILL
        assert len(hidden(root)) == 1
    assert visible_runs(root) == before  # no visible partial results
    check_consistent(root)
    second = subprocess.run([sys.executable, "-m", "evalsuite", *RUN], cwd=root, env=env(), capture_output=True,
                            text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert hidden(root) == []  # the dead run's leftovers were cleaned
    assert len(visible_runs(root)) == len(before) + 1
    check_consistent(root)


# `python -m evalsuite run` with Ctrl-C landing inside code that exec() builds from a string (as dataclasses and
# namedtuple do during a lazy import): CPython then remembers an "unhandled" KeyboardInterrupt even though
# evalsuite handles it, and under -m killed itself with SIGINT at exit (return code -2, not 130).
INTERRUPTED_IN_EXEC = """
import runpy, sys
import evalsuite.runner as runner
def interrupted(*args, **kwargs):
    exec("raise KeyboardInterrupt")
runner.write_details = interrupted
sys.argv = ["evalsuite", *sys.argv[1:]]
runpy.run_module("evalsuite", run_name="__main__", alter_sys=True)
"""


def test_ctrl_c_inside_exec_code_exits_130_under_python_m(world: Path, tmp_path: Path) -> None:
    root = copy(world, tmp_path / "w")
    probe = tmp_path / "probe" / "interrupted_in_exec"
    probe.mkdir(parents=True)
    (probe / "__main__.py").write_text(INTERRUPTED_IN_EXEC)
    environment = env()
    environment["PYTHONPATH"] = f"{probe.parent}{os.pathsep}{environment['PYTHONPATH']}"
    proc = subprocess.run([sys.executable, "-m", "interrupted_in_exec", *RUN], cwd=root, env=environment,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 130 and proc.stderr.strip().splitlines() == ["evalsuite: interrupted"], proc
    assert hidden(root) == []
    check_consistent(root)


def test_two_concurrent_runs_both_complete(world: Path, tmp_path: Path) -> None:
    root = copy(world, tmp_path / "w")
    before = visible_runs(root)
    procs = [start(root, *RUN) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    after = visible_runs(root)
    assert len(after) == len(before) + 2  # distinct folders
    assert hidden(root) == []
    check_consistent(root)  # latest names the later of the two


def test_concurrent_latest_updates_never_fail(tmp_path: Path) -> None:
    """16 threads moving ``latest`` at once (the old code raised IsADirectoryError 1,088 times)."""
    from concurrent.futures import ThreadPoolExecutor

    from evalsuite._runfolder import point_latest

    ids = [f"20260101T0000{i:02d}Z-abcdef" for i in range(16)]
    for run_id in ids:
        (tmp_path / run_id).mkdir()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda r: point_latest(tmp_path, r), ids * 4))
    assert os.readlink(tmp_path / "latest") == max(ids)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 600 kB tmpfs (needs root / CAP_SYS_ADMIN; skipped with the reason otherwise)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or done.returncode})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def run_cli(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``evalsuite ARGV`` in-process in ``root`` (cheaper than a subprocess; the result has the same fields)."""
    import contextlib
    import io

    from evalsuite.cli import main

    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
    finally:
        os.chdir(cwd)
    return subprocess.CompletedProcess(list(argv), code, out.getvalue(), err.getvalue())


def test_full_disk_leaves_nothing_and_says_so(world: Path, tmp_path: Path, tmpfs: Path) -> None:
    root = copy(world, tmp_path / "w")
    filler = tmpfs / "filler"
    with open(filler, "wb") as fh:  # leave ~40 kB: the run folder (~100 kB with the report) cannot fit
        fh.write(b"\0" * (560 * 1024))
    done = run_cli(root, "run", "suite.yaml", "-q", "--no-progress", "--no-cache", "--output", str(tmpfs / "out"))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and "Traceback" not in done.stderr
    assert sorted(p.name for p in tmpfs.iterdir()) == ["filler"]  # no results folder, no store, no latest


def test_read_only_output_folder(world: Path, tmp_path: Path, tmpfs: Path) -> None:
    root = copy(world, tmp_path / "w")
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    done = run_cli(root, "run", "suite.yaml", "-q", "--no-progress", "--no-cache", "--output", str(tmpfs / "out"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Read-only file system" in lines[0] and str(tmpfs) in lines[0], lines


def test_read_only_cache_falls_back_with_a_note(world: Path, tmp_path: Path, tmpfs: Path) -> None:
    root = copy(world, tmp_path / "w")
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    done = run_cli(root, "run", "suite.yaml", "--no-progress", "--cache-dir", str(tmpfs / "cache"))
    assert done.returncode == 0, done.stderr
    assert "leakage summary not cached" in done.stderr and "Traceback" not in done.stderr
    assert "evalsuite: warning: statistics memo not usable (" in done.stderr  # one line, like the notes
    assert "RuntimeWarning" not in done.stderr
    check_consistent(root)


def test_store_on_a_read_only_file_system(world: Path, tmp_path: Path, tmpfs: Path) -> None:
    """History still reads it; a run refuses before any work (it could not record itself at the end)."""
    import shutil

    root = copy(world, tmp_path / "w")
    shutil.copy(root / "out" / "history.sqlite", tmpfs / "history.sqlite")
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    done = run_cli(root, "history", "--store", str(tmpfs / "history.sqlite"))
    assert done.returncode == 0 and stored_ids(root)[0] in done.stdout, done.stderr
    before = visible_runs(root)
    done = run_cli(root, "run", "suite.yaml", "-q", "--no-progress", "--no-cache", "--store",
                   str(tmpfs / "history.sqlite"))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "history.sqlite" in lines[0], done.stderr
    assert "cannot be written" in lines[0] and "Traceback" not in done.stderr
    assert visible_runs(root) == before and hidden(root) == []
