"""Running one bad-input case in-process and classifying the outcome (shared by the test and totals)."""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

from tests.badinput.cases import Case
from tests.badinput.world import copy, run_folder, snapshot


@dataclass
class Outcome:
    code: int
    stderr: str
    changed: list[str]  # paths created, removed or modified under the case folder (other than its inputs)

    @property
    def lines(self) -> list[str]:
        return self.stderr.strip().splitlines()

    def verdict(self, case: Case) -> str:
        """'clean', 'traceback', 'wrongly accepted', 'half-written' or 'unclear message'."""
        if self.code == 3 or "Traceback" in self.stderr:
            return "traceback"
        if self.code == 0 and case.code != 0:
            return "wrongly accepted"
        if self.changed:
            return "half-written"
        line = self.lines[0] if len(self.lines) == 1 else ""
        if self.code != case.code or not line.startswith("evalsuite: error: ") or not all(w in line
                                                                                        for w in case.where):
            return "unclear message"
        return "clean"


def run_case(case: Case, world: Path, folder: Path) -> Outcome:
    """Copy the world to ``folder``, write the case's files, run its command there."""
    from evalsuite.cli import main

    root = copy(world, folder)
    run = str(run_folder(root))
    for name, content in case.files.items():
        value = content(root) if callable(content) else content
        target = root / name.replace("{run}", run)
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(value, bytes):
            target.write_bytes(value)
        else:
            target.write_text(value, encoding="utf-8", errors="surrogatepass")
    argv = [a.replace("{run}", run) for a in case.argv]
    if case.setup is not None:
        case.setup(root)
    before = snapshot(root)
    err, out = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse usage errors
                code = int(exc.code or 0)
    finally:
        os.chdir(cwd)
    after = snapshot(root)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    return Outcome(code, err.getvalue(), changed)
