"""Parallel dispatch, failures that skip only dependents, and crash safety (kill -9)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from amml import (
    LocalExecutor,
    StepFailedError,
    Workflow,
    compile_workflow,
    op,
    ops,
    run_workflow,
)
from amml.store import Store, open_store


@op
def explode(table: pd.DataFrame, *, message: str = "boom") -> pd.DataFrame:
    raise ValueError(message)


#: Three steps meet here; only steps that run at the same time can all pass it.
MEETING = threading.Barrier(3)


@op
def meet(table: pd.DataFrame, *, tag: str = "") -> pd.DataFrame:
    # a generous timeout: a sequential executor leaves the first step waiting alone and
    # breaks the barrier, however fast or loaded the machine
    MEETING.wait(timeout=60)
    return table.assign(tag=tag)


def test_independent_steps_run_in_parallel(store: Store) -> None:
    """No wall-clock bound: three steps wait for each other at a barrier, which only
    steps that run at the same time can pass."""
    MEETING.reset()
    with Workflow("parallel") as wf:
        raw = ops.source.synthetic(periods=50)
        meet(raw, tag="a", name="left")
        meet(raw, tag="b", name="right")
        meet(raw, tag="c", name="third")
    workflow = compile_workflow(wf)
    result = run_workflow(workflow, store=store, executor=LocalExecutor(max_workers=3),
                          raise_on_failure=False)
    assert result.status == "succeeded", {n: o.error for n, o in result.steps.items()}
    assert result.count("ran") == 4


def test_failure_skips_dependents_but_finishes_independent_branches(store: Store) -> None:
    with Workflow("failing") as wf:
        raw = ops.source.synthetic(periods=200)
        bad = explode(raw, message="sensor offline")
        ops.preprocess(bad, name="after_bad")
        ops.detect.zscore(raw, name="independent")
    workflow = compile_workflow(wf)
    result = run_workflow(workflow, store=store, raise_on_failure=False)
    statuses = {n: o.status for n, o in result.steps.items()}
    assert statuses == {"raw": "ran", "bad": "failed", "after_bad": "skipped",
                        "independent": "ran"}
    assert result.status == "failed"
    assert "sensor offline" in result.steps["bad"].error
    with pytest.raises(StepFailedError, match="sensor offline"):
        result.raise_for_status()
    run = store.metadata.get_run(result.run_id)
    assert run["status"] == "failed" and "sensor offline" in run["error"]
    again = run_workflow(workflow, store=store, raise_on_failure=False)
    assert {n: o.status for n, o in again.steps.items()}["independent"] == "cached"


CRASH_FLOW = """\
import os
import pathlib
import time

import pandas as pd
from amml import Workflow, op, ops


@op
def slow(table: pd.DataFrame, *, marker: str) -> pd.DataFrame:
    pathlib.Path(marker).write_text("started")
    time.sleep(float(os.environ.get("SLOW_SECONDS", "0")))
    return table


with Workflow("crash") as wf:
    raw = ops.source.synthetic(periods=3000)
    clean = ops.preprocess(raw, scale="zscore")
    held = slow(clean, marker="{marker}")
    ops.detect.zscore(held, name="final")
"""


def _verify_artifacts(root: Path) -> int:
    """Every visible artifact holds exactly the bytes its name promises."""
    count = 0
    for path in root.rglob("*"):
        if path.is_file() and not path.name.startswith(".tmp-"):
            assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name
            count += 1
    return count


def test_kill_9_mid_run_leaves_store_consistent_and_next_run_resumes(tmp_path: Path) -> None:
    marker = tmp_path / "slow-started"
    flow = tmp_path / "flow.py"
    flow.write_text(CRASH_FLOW.format(marker=marker))
    env = {**os.environ, "SLOW_SECONDS": "60", "AMML_HOME": str(tmp_path / ".amml")}
    process = subprocess.Popen([sys.executable, "-m", "amml.cli", "run", str(flow), "--json"],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not marker.exists():
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "the slow step never started"
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)

    assert _verify_artifacts(tmp_path / ".amml" / "artifacts") >= 3
    env["SLOW_SECONDS"] = "0"
    rerun = subprocess.run([sys.executable, "-m", "amml.cli", "run", str(flow), "--json"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    steps = {s["name"]: s["status"] for s in json.loads(rerun.stdout)["steps"]}
    assert steps == {"raw": "cached", "clean": "cached", "held": "ran", "final": "ran"}

    store = open_store(tmp_path / ".amml")
    runs = {r["id"]: r["status"] for r in store.metadata.list_runs()}
    assert sorted(runs.values()) == ["interrupted", "succeeded"]
    _verify_artifacts(tmp_path / ".amml" / "artifacts")
    store.close()
