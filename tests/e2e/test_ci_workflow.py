"""The shipped GitHub Actions example runs: its `run:` steps, in order, in a fresh clone.

``examples/github-actions/retrieval-gate.yml`` is parsed; every ``run:`` step of the ``gate`` job
runs with ``bash -eo pipefail`` (GitHub's default shell) in a fresh ``git clone`` of this
repository, with the GitHub variables pointing at temporary paths. ``uses:`` steps are GitHub's
own actions and are played by the test: the clone is the checkout, a new virtual environment is
setup-python, and the pip steps are answered offline from the packages this environment already
has (``PIP_NO_INDEX``; a ``.pth`` line makes them visible), so the install commands run as
written without a network. The embedding cache is the test session's (``EVALSUITE_CACHE_DIR``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import REPO

WORKFLOW = REPO / "examples" / "github-actions" / "retrieval-gate.yml"


def expand(text: str, context: dict[str, str]) -> str:
    """Replace ``${{ expr }}`` by the test's value for it (every expression must be known)."""
    def one(match: re.Match[str]) -> str:
        expr = match.group(1).strip()
        if expr not in context:
            raise AssertionError(f"the workflow uses ${{{{ {expr} }}}}, which this test does not provide")
        return context[expr]

    return re.sub(r"\$\{\{(.*?)\}\}", one, text)


def test_workflow_is_well_formed() -> None:
    flow = yaml.safe_load(WORKFLOW.read_text())
    steps = flow["jobs"]["gate"]["steps"]
    uses = [s["uses"].split("@")[0] for s in steps if "uses" in s]
    assert uses == ["actions/checkout", "actions/setup-python", "actions/cache", "actions/upload-artifact"]
    cache = next(s for s in steps if s.get("uses", "").startswith("actions/cache"))
    assert cache["with"]["path"] == "~/.cache/evalsuite"
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and "report.html" in upload["with"]["path"]
    runs = "\n".join(s["run"] for s in steps if "run" in s)
    assert '--markdown "$GITHUB_STEP_SUMMARY"' in runs and "--junit" in runs and 'torch==2.13.0' in runs


def test_workflow_run_steps_pass_in_a_fresh_clone(tmp_path: Path, default_cache: Path, default_run: Path) -> None:
    """``default_run`` first: the default suite's embeddings are then in the session cache."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the workflow runs in a clone of this repository")
    workspace = tmp_path / "workspace"
    subprocess.run(["git", "clone", "-q", str(REPO), str(workspace)], check=True, capture_output=True)
    # setup-python: a fresh environment that sees this environment's packages, not its evalsuite
    env_dir = tmp_path / "python"
    venv.create(env_dir, with_pip=False)  # pip and setuptools come from the shared packages too
    site = next((env_dir / "lib").glob("python3*/site-packages"))
    (site / "shared-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    summary = tmp_path / "step-summary.md"
    flow: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    job = flow["jobs"]["gate"]
    context = {"github.workspace": str(workspace), "runner.os": "Linux", "runner.temp": str(runner_temp)}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "EVALSUITE_BASELINE",
                                                             "EVALSUITE_DATA_DIR")}
    env.update({k: expand(str(v), context) for k, v in {**flow.get("env", {}), **job.get("env", {})}.items()})
    env.update({
        "PATH": f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}", "VIRTUAL_ENV": str(env_dir),
        "GITHUB_WORKSPACE": str(workspace), "GITHUB_STEP_SUMMARY": str(summary), "RUNNER_TEMP": str(runner_temp),
        "CI": "true", "GITHUB_ACTIONS": "true",
        # the pip steps, answered offline from what is installed (see the module docstring)
        "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "EVALSUITE_CACHE_DIR": str(default_cache),
    })
    ran = []
    for step in job["steps"]:
        if "run" not in step:
            continue
        script = expand(step["run"], context)
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=workspace,
                              env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"step {step.get('name')!r} failed ({done.returncode}):\n{done.stdout[-3000:]}" \
                                     f"\n{done.stderr[-3000:]}"
        ran.append((step.get("name"), done.stdout))
    assert [name for name, _ in ran] == ["Install evalsuite (CPU torch, pinned, first)", "Evaluation data",
                                         "Run the suite and its gates"]
    # the installed command is the clone's, not this checkout's
    where = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import evalsuite; print(evalsuite.__file__)"],
                           env=env, capture_output=True, text=True, check=True, cwd=tmp_path).stdout.strip()
    assert where == str(workspace / "evalsuite" / "__init__.py")
    out = ran[-1][1]
    assert "gates: 0 failed, " in out and "skipped task cranfield" in out  # no data in this CI: skipped, said so
    assert summary.read_text().startswith("### evalsuite gates ")
    assert (runner_temp / "gates.junit.xml").is_file()
    latest = workspace / "reports" / "default" / "latest"
    assert (latest / "report.html").is_file() and (latest / "results.json").is_file()
    assert sys.executable  # the test itself ran under this interpreter; the steps under the new environment
