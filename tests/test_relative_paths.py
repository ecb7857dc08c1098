"""Paths in a workflow are the workflow file's, whatever folder it is run from."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from amml import StepFailedError, run_workflow
from amml.store import open_store

WORKFLOW = """\
name: relative
params:
  csv: data/readings.csv
steps:
  csv:
    op: source.csv
    with: {path: "${params.csv}", time: ts}
  parquet:
    op: source.parquet
    with: {path: data/readings.parquet, time: ts}
  logs:
    op: source.logs
    with: {path: "logs/*.log", format: jsonl, interval: 1h}
  load:
    op: sink.sql
    inputs: {data: csv}
    with: {url: "sqlite:///db/staged.db", table: readings}
  extracted:
    op: source.sql
    inputs: {wait_for: load}
    with: {url: "sqlite:///db/staged.db", table: readings, time: ts, columns: [value]}
"""


def _project(root: Path) -> tuple[Path, pd.DataFrame]:
    """A workflow folder holding its data in subfolders, named relative to itself."""
    folder = root / "project"
    (folder / "data").mkdir(parents=True)
    (folder / "logs").mkdir()
    frame = pd.DataFrame({"value": [1.0, 2.0, 3.0]},
                         index=pd.date_range("2024-01-01", periods=3, freq="h", name="ts"))
    frame.to_csv(folder / "data" / "readings.csv")
    frame.to_parquet(folder / "data" / "readings.parquet")
    (folder / "logs" / "app.log").write_text(
        "".join(json.dumps({"time": f"2024-01-01T0{h}:00:00Z"}) + "\n" for h in range(3)))
    (folder / "workflow.yaml").write_text(WORKFLOW)
    return folder, frame


def test_relative_paths_resolve_from_the_workflow_file(tmp_path: Path, monkeypatch) -> None:
    folder, frame = _project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    store = open_store(tmp_path / ".amml")
    monkeypatch.chdir(elsewhere)
    first = run_workflow(folder / "workflow.yaml", store=store)
    for step in ("csv", "parquet", "extracted"):
        pd.testing.assert_frame_equal(first.output(step), frame, check_freq=False,
                                      check_index_type=False)
    assert first.output("logs")["count"].tolist() == [1, 1, 1]
    assert (folder / "db" / "staged.db").is_file()  # the SQLite file too, folder created
    assert not (elsewhere / "db").exists()

    # the same workflow from its own folder, named relatively: every step a cache hit (the
    # keys cover the absolute paths, not how they were spelled from the current folder)
    monkeypatch.chdir(folder)
    second = run_workflow("workflow.yaml", store=store)
    assert {name: s.status for name, s in second.steps.items()} == {
        name: "cached" for name in first.steps}
    # (the sink is found under the state its write left: its table now holds the rows)
    assert {n: s.cache_key for n, s in second.steps.items() if n != "load"} == {
        n: s.cache_key for n, s in first.steps.items() if n != "load"}
    store.close()


PY_WORKFLOW = """\
from amml import Workflow, ops

with Workflow("py-relative") as wf:
    ops.source.csv(path="data/readings.csv", time="ts")
"""


def test_a_python_workflow_resolves_from_its_file_and_one_without_a_file_from_here(
        tmp_path: Path, monkeypatch) -> None:
    folder, frame = _project(tmp_path)
    (folder / "workflow.py").write_text(PY_WORKFLOW)
    store = open_store(tmp_path / ".amml")
    monkeypatch.chdir(tmp_path)  # not the project's folder
    result = run_workflow(str(folder / "workflow.py"), store=store)
    pd.testing.assert_frame_equal(result.output(next(iter(result.steps))), frame,
                                  check_freq=False, check_index_type=False)

    # declared where no file is (a notebook cell, exec'd text): the current folder's
    monkeypatch.chdir(folder)
    namespace: dict[str, object] = {}
    exec(compile(PY_WORKFLOW.replace("py-relative", "cell"), "<cell>", "exec"), namespace)
    result = run_workflow(namespace["wf"], store=store)  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(result.output(next(iter(result.steps))), frame,
                                  check_freq=False, check_index_type=False)
    store.close()


def test_missing_file_error_shows_the_absolute_path_and_the_param_hint(
        tmp_path: Path, monkeypatch) -> None:
    folder, _ = _project(tmp_path)
    (folder / "data" / "readings.csv").unlink()
    (folder / "logs" / "app.log").unlink()
    monkeypatch.chdir(tmp_path)
    store = open_store(tmp_path / ".amml")
    result = run_workflow(Path("project") / "workflow.yaml", store=store,
                          raise_on_failure=False)
    csv_error = result.steps["csv"].error or ""
    assert f"CSV file not found: {folder / 'data' / 'readings.csv'}" in csv_error
    assert "-p csv=PATH" in csv_error
    logs_error = result.steps["logs"].error or ""
    assert f"no log files match {folder / 'logs' / '*.log'}" in logs_error
    assert "-p " not in logs_error  # its path is written in the workflow, not a parameter
    with pytest.raises(StepFailedError):
        result.raise_for_status()
    store.close()


def test_a_path_given_with_p_is_the_current_folders(tmp_path: Path, monkeypatch) -> None:
    # typed on the command line, a path means what it means in the shell it was typed in
    folder, frame = _project(tmp_path)
    monkeypatch.chdir(tmp_path)
    store = open_store(tmp_path / ".amml")
    result = run_workflow(folder / "workflow.yaml", {"csv": "project/data/readings.csv"},
                          store=store)
    pd.testing.assert_frame_equal(result.output("csv"), frame, check_freq=False,
                                  check_index_type=False)
    store.close()
