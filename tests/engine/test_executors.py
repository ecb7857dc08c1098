"""Executors by registry: the same artifacts on every registered executor, futures that are
not ``concurrent.futures`` ones, spawned workers that import the workflow's ops, the CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from amml import compile_workflow, run_workflow
from amml.cli.main import app
from amml.engine.executors import (
    Executor,
    SequentialExecutor,
    executor_names,
    make_executor,
    register_executor,
)
from amml.engine.task import StepResult, StepTask, execute_task
from amml.store import Store
from amml.testing import check_executor


class _ThreadFuture:
    """A future with only ``done()`` and ``result()``, as a Dask future offers (and no
    ``concurrent.futures`` machinery behind it)."""

    def __init__(self, fn: Callable[..., StepResult], *args: Any) -> None:
        self._finished = threading.Event()
        self._result: StepResult | None = None
        threading.Thread(target=self._run, args=(fn, args), daemon=True).start()

    def _run(self, fn: Callable[..., StepResult], args: tuple[Any, ...]) -> None:
        self._result = fn(*args)
        self._finished.set()

    def done(self) -> bool:
        return self._finished.is_set()

    def result(self) -> StepResult:
        self._finished.wait()
        assert self._result is not None
        return self._result


@register_executor
class PollingThreadExecutor(Executor):
    """Each step on its own thread, handing back plain futures (stands in for Dask)."""

    name = "_test_polling"

    def __init__(self, workers: int | None = None) -> None:
        self.max_workers = workers or 4

    def submit(self, task: StepTask, store: Store) -> _ThreadFuture:
        return _ThreadFuture(execute_task, task)


@pytest.mark.parametrize("name", executor_names())
def test_every_registered_executor_matches_the_sequential_one(name: str) -> None:
    check_executor(make_executor(name, workers=2))


def test_the_check_catches_an_executor_that_changes_a_result() -> None:
    class Reseeding(SequentialExecutor):
        """Runs the source with another seed: different bytes, same statuses."""

        in_process = False  # else the runner may run a lone ready step itself

        def submit(self, task: StepTask, store: Store):
            if task.op_name == "source.synthetic":
                task = dataclasses.replace(task, config={**task.config, "seed": 8})
            return super().submit(task, store)

    with pytest.raises(AssertionError, match="step 'raw' produced"):
        check_executor(Reseeding())


def test_builtins_are_registered_with_their_options() -> None:
    assert {"thread", "process", "sequential"} <= set(executor_names())
    process = make_executor("process", workers=3, start_method="spawn")
    assert process.max_workers == 3 and not process.in_process
    assert make_executor("thread", workers=2).in_process
    with pytest.raises(Exception, match=r"unknown executor 'thred'; did you mean 'thread'\?"):
        make_executor("thred")


OPS_FILE = """\
import pandas as pd
from amml import op


@op(name="spawned.tripled")
def tripled(table: pd.DataFrame) -> pd.DataFrame:
    return table[["temperature"]] * 3
"""

SPAWN_FLOW = """\
name: spawned
imports: [my_ops.py]
steps:
  raw: {op: source.synthetic, with: {periods: 100}}
  tripled: {op: spawned.tripled, inputs: {table: raw}}
"""


def test_a_spawned_worker_imports_the_workflows_ops(tmp_path: Path, store: Store) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "my_ops.py").write_text(OPS_FILE)
    (tmp_path / "flows" / "flow.yaml").write_text(SPAWN_FLOW)
    workflow = compile_workflow(tmp_path / "flows" / "flow.yaml")
    # a spawned worker starts from nothing: only the task tells it where spawned.tripled is
    with make_executor("process", workers=1, start_method="spawn") as executor:
        result = run_workflow(workflow, store=store, executor=executor,
                              raise_on_failure=False)
    assert {n: o.status for n, o in result.steps.items()} == {"raw": "ran", "tripled": "ran"}, (
        result.steps["tripled"].error)
    raw = result["raw"]
    assert (result["tripled"]["temperature"] == raw["temperature"] * 3).all()


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_cli_lists_executors_and_rejects_an_unknown_one(tmp_path: Path) -> None:
    listed = _invoke("executors", "--json")
    assert listed.exit_code == 0, listed.output
    names = [row["name"] for row in json.loads(listed.stdout)]
    assert names == executor_names() and "process" in names
    (tmp_path / "flow.yaml").write_text(SPAWN_FLOW.replace("imports: [my_ops.py]\n", "")
                                        .replace("spawned.tripled", "difference"))
    bad = _invoke("run", str(tmp_path / "flow.yaml"), "--executor", "proces")
    assert bad.exit_code == 2
    assert "unknown executor 'proces'; did you mean 'process'?" in bad.output
    assert "known: " in bad.output and "sequential" in bad.output
    ran = _invoke("run", str(tmp_path / "flow.yaml"), "--executor", "_test_polling", "--json")
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout)["counts"]["ran"] == 2


def test_a_third_party_executor_plugs_in_by_entry_point(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "inline_executor").mkdir(parents=True)
    (site / "inline_executor" / "__init__.py").write_text(textwrap.dedent("""\
        from amml.engine.executors import SequentialExecutor


        class InlineExecutor(SequentialExecutor):
            \"\"\"A plugin's executor.\"\"\"

            name = "inline"
        """))
    info = site / "inline_executor-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: inline-executor\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[amml.executors]\ninline = inline_executor:InlineExecutor\n")
    (tmp_path / "flow.yaml").write_text(
        "name: plug\nsteps:\n  raw: {op: source.synthetic, with: {periods: 50}}\n")
    env = {**os.environ, "PYTHONPATH": str(site), "AMML_HOME": str(tmp_path / ".amml")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "amml.cli", *args], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=300)

    listed = cli("executors", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {"name": "inline", "class": "inline_executor.InlineExecutor",
            "description": "A plugin's executor."} in json.loads(listed.stdout)
    ran = cli("run", "flow.yaml", "--executor", "inline", "--json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["counts"]["ran"] == 1
