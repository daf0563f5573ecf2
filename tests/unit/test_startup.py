"""Start-up stays light: what `import evalsuite`, `--help`, `metrics` and `evaluate` import.

Each check runs in a fresh interpreter (the test process has everything imported already)
and lists the heavy top-level packages loaded. bench/cli_file.py times the same commands.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "pandas", "scipy", "pyarrow", "torch", "mteb", "sentence_transformers", "transformers", "faiss",
         "jinja2", "sklearn", "onnxruntime", "pydantic", "yaml", "ray")

PROBE = """
import json, sys
argv = json.loads(sys.argv[1])
if argv is None:
    import evalsuite
else:
    from evalsuite.cli import main
    try:
        main(argv)
    except SystemExit:
        pass
heavy = json.loads(sys.argv[2])
print(json.dumps(sorted(m for m in heavy if m in sys.modules)), file=sys.stderr)
"""


def loaded(argv: list[str] | None) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv), json.dumps(HEAVY)], capture_output=True,
                          text=True, cwd=REPO, check=False, env=None)
    return json.loads(proc.stderr.strip().splitlines()[-1])


def test_import_evalsuite_loads_nothing_heavy() -> None:
    assert loaded(None) == []


def test_help_loads_nothing_heavy() -> None:
    assert loaded(["--help"]) == []
    assert loaded(["evaluate", "--help"]) == []


def test_metrics_listing_needs_only_numpy() -> None:
    assert loaded(["metrics"]) == ["numpy"]


@pytest.mark.parametrize(("lines", "expected"), [(20, ["numpy"]), (4000, ["numpy", "pyarrow"])],
                         ids=["small file (line parser)", "large file (Arrow)"])
def test_evaluate_on_trec_files_does_not_load_pandas(tmp_path: Path, lines: int, expected: list[str]) -> None:
    run = tmp_path / "r.trec"
    run.write_text("".join(f"q{i % 7} Q0 d{i} {i + 1} {1.0 / (i + 1)!r} tag\n" for i in range(lines)))
    qrels = tmp_path / "q.qrels"
    qrels.write_text("".join(f"q{i % 7} 0 d{i * 3} {i % 3}\n" for i in range(lines)))
    assert loaded(["evaluate", str(qrels), str(run), "--format", "json"]) == expected


def test_bm25_retriever_does_not_import_numba() -> None:
    """bm25s imports numba when installed (for a backend evalsuite does not use): hidden."""
    probe = ("import sys; from evalsuite.retrievers import get_retriever; get_retriever('bm25'); "
             "print('numba' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    assert proc.stdout.strip() == "False"


def test_suite_modules_load_neither_pandas_nor_scipy() -> None:
    """What every `evalsuite run` imports before any work (suite config, gates, results, the report
    model, statistics): pandas and scipy are imported where a frame or a test asks for them."""
    probe = ("import json, sys; import evalsuite.config, evalsuite.gates, evalsuite.results, evalsuite.metrics.stats, "
             "evalsuite.metrics.correlation, evalsuite.report.model, evalsuite.runner; "
             "print(json.dumps(sorted(m for m in ('pandas', 'scipy') if m in sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    assert json.loads(proc.stdout) == []


def test_a_suite_run_with_its_report_loads_no_pandas(tmp_path: Path) -> None:
    """A whole `evalsuite run` (BM25, a second BM25, their hybrid, gates, report): ids are
    factorized, per-query values stored and run files written without a DataFrame."""
    from tests.unit.test_runner import SUITE

    (tmp_path / "s.yaml").write_text(SUITE)
    argv = ["run", str(tmp_path / "s.yaml"), "-q", "--cache-dir", str(tmp_path / "cache")]
    found = loaded(argv)
    assert (tmp_path / "out" / "small" / "latest" / "report.html").is_file()
    assert "pandas" not in found
