"""Path containment: every name that becomes a path component (suite, task, system, gate, run id) is
validated, and a results folder is read only from inside itself (``details_file``, ``run_file``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from evalsuite.config import load_suite
from evalsuite.errors import ConfigError, DataError
from evalsuite.results import load_results
from evalsuite.safepaths import contained
from tests.badinput.world import SUITE, build, run_folder

HOSTILE = ["../../victim", "/tmp/abs", "", ".", "..", "a\x00b", "a/b", "a\\b", "my system", "x" * 101, "-rf",
           "tab\tname", "new\nline", "é"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("containment-world")
    build(root)
    return root


FIELDS = {
    "suite": ("name: tiny\n", "name: {}\n"),
    "task": ("  - name: golden\n", "  - name: {}\n"),
    "system": ("  - name: bm25\n", "  - name: {}\n"),
    "gate": ("  - name: floor\n", "  - name: {}\n"),
}


@pytest.mark.parametrize("field", sorted(FIELDS))
@pytest.mark.parametrize("value", HOSTILE, ids=[repr(v)[1:-1][:12] or "empty" for v in HOSTILE])
def test_hostile_names_are_refused_with_file_and_line(tmp_path: Path, field: str, value: str) -> None:
    old, new = FIELDS[field]
    path = tmp_path / "suite.yaml"
    path.write_text(SUITE.replace(old, new.format(json.dumps(value))))
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    message = str(info.value)
    assert f"{path}:" in message and "name" in message and "\n" not in message


def test_safe_names_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "suite.yaml"
    text = SUITE
    for old, new in FIELDS.values():
        text = text.replace(old, new.format("A.b_c-9"))
    path.write_text(text)
    suite = load_suite(path)
    assert suite.name == suite.tasks[0].name == suite.retrievers[0].name == suite.gates[0].name == "A.b_c-9"


@pytest.mark.parametrize("run_id", ["../../etc", "/abs", "", "..", "a/b"])
def test_hostile_run_ids_and_suite_names_in_results_are_refused(world: Path, tmp_path: Path, run_id: str) -> None:
    data = json.loads((world / run_folder(world) / "results.json").read_text())
    for key in ("run_id", "suite"):
        bad = tmp_path / f"{key}.json"
        bad.write_text(json.dumps({**data, key: run_id}))
        with pytest.raises(DataError, match=r"not allowed|must be"):
            load_results(bad)


def make_report_input(world: Path, tmp_path: Path, edit: dict[str, str], where: str) -> Path:
    """A copy of the world's results folder whose first task/cell refers to ``edit``."""
    import shutil

    folder = tmp_path / "results"
    shutil.copytree(world / run_folder(world), folder)
    data = json.loads((folder / "results.json").read_text())
    (data["tasks"][0] if where == "task" else data["results"][0]).update(edit)
    (folder / "results.json").write_text(json.dumps(data))
    return folder


@pytest.mark.parametrize(
    ("where", "key", "value"),
    [("task", "details_file", "../secret.json"), ("task", "details_file", "{abs}"),
     ("task", "details_file", "details/../../secret.json"), ("task", "details_file", "link.json"),
     ("cell", "run_file", "../secret.json"), ("cell", "run_file", "{abs}"), ("cell", "run_file", "link.json")],
)
def test_report_reads_only_inside_the_results_folder(world: Path, tmp_path: Path, where: str, key: str,
                                                     value: str) -> None:
    from evalsuite.report import build_report

    secret = tmp_path / "secret.json"
    secret.write_text('{"queries": {"q1": "SECRET"}, "qrels": {}, "docs": {}}')
    folder = make_report_input(world, tmp_path, {key: value.replace("{abs}", str(secret))}, where)
    os.symlink(secret, folder / "link.json")
    with pytest.raises(DataError, match=f"{key} .* (outside|absolute)"):
        build_report(load_results(folder))


def test_report_of_an_intact_folder_still_reads_its_own_files(world: Path, tmp_path: Path) -> None:
    from evalsuite.report import build_report

    folder = make_report_input(world, tmp_path, {}, "task")
    report = build_report(load_results(folder))
    assert report.tasks[0].drilldown is not None and report.tasks[0].recall  # details and run file were read


def test_contained_allows_inside_and_refuses_outside(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    assert contained(tmp_path, "a/../b.json") == tmp_path.resolve() / "a/../b.json"
    for bad in ("../x", "/etc/passwd", "a/../../x", "x\x00y"):
        with pytest.raises(DataError):
            contained(tmp_path, bad)
