"""Count the bad-input corpus: ``python -m tests.badinput.totals`` (from the repository root).

Prints, per verdict, how many cases got it (clean errors, tracebacks, wrongly accepted,
half-written, unclear message) and lists every case that is not clean. Exit 1 if any is not.
"""

from __future__ import annotations

import sys
import tempfile
from collections import Counter
from pathlib import Path

from tests.badinput.cases import CASES
from tests.badinput.runner import run_case
from tests.badinput.world import build


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        world = Path(tmp) / "world"
        world.mkdir()
        build(world)
        verdicts: Counter[str] = Counter()
        bad = []
        for i, case in enumerate(CASES):
            outcome = run_case(case, world, Path(tmp) / f"case{i}")
            verdict = outcome.verdict(case)
            verdicts[verdict] += 1
            if verdict != "clean":
                bad.append(f"  {verdict:16} {case.id}{' (pending ' + case.pending + ')' if case.pending else ''}: "
                           f"exit {outcome.code}: "
                           f"{outcome.stderr.strip()[-300:]!r} {outcome.changed[:3]}")
    print(f"cases: {len(CASES)}")
    for verdict in ("clean", "traceback", "wrongly accepted", "half-written", "unclear message"):
        print(f"{verdict}: {verdicts[verdict]}")
    print("\n".join(bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
