"""The Dask executor on a real local cluster (worker processes): a worker killed mid-step,
resource hints placed as Dask resources, an existing scheduler named on the command line.

The executor conformance check (``check_executor``: the sequential executor's digests) runs
over every registered executor, ``dask`` with its own local cluster included, in
``test_executors.py``."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import distributed
import pytest
from typer.testing import CliRunner

from amml import compile_workflow, run_workflow
from amml.cli.main import app
from amml.engine.executors import SequentialExecutor
from amml.engine.executors.dask import SCHEDULER_ENV, DaskExecutor
from amml.store import open_store

#: An op that says which process ran it (and, on a GPU-hinted step, what Dask was asked
#: for), then takes its time: long enough to kill its worker in the middle.
OPS = """\
import json, os, time
from pathlib import Path

import pandas as pd
from amml import op


@op(name="dasktest.slow_double")
def slow_double(table: pd.DataFrame, *, marker_dir: str, seconds: float = 0.0) -> pd.DataFrame:
    marker = Path(marker_dir)
    marker.mkdir(parents=True, exist_ok=True)
    restrictions = None
    try:
        from distributed import get_worker
        from distributed.worker import thread_state

        restrictions = get_worker().state.tasks[thread_state.key].resource_restrictions
    except (ImportError, ValueError, AttributeError, KeyError):
        pass
    (marker / f"attempt-{os.getpid()}-{time.time_ns()}").write_text(
        json.dumps({"pid": os.getpid(), "resources": restrictions, "at": time.time_ns()}))
    time.sleep(seconds)
    return table[["temperature"]] * 2
"""

FLOW = """\
name: dask-check
imports: [ops.py]
steps:
  raw: {{op: source.synthetic, with: {{periods: 200, seed: 3}}}}
  doubled:
    op: dasktest.slow_double
    inputs: {{table: raw}}
    with: {{marker_dir: "{markers}", seconds: {seconds}}}
    resources: {resources}
  diff: {{op: difference, inputs: {{table: raw}}}}
"""


@pytest.fixture(scope="module")
def ops_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ops file for the module: an op name defined by two files would clash."""
    folder = tmp_path_factory.mktemp("dask-ops")
    (folder / "ops.py").write_text(OPS)
    return folder


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    """Two single-threaded worker processes that each declare one (pretend) GPU."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", memory_limit="1GB",
                                  resources={"GPU": 1, "MEMORY": 1e9}) as local:
        yield local


def _flow(tmp_path: Path, ops_folder: Path, *, seconds: float = 0.0,
          resources: str = "{}") -> Path:
    path = ops_folder / f"{tmp_path.name}.yaml"
    path.write_text(FLOW.format(markers=tmp_path / "markers", seconds=seconds,
                                resources=resources))
    return path


def _digests(result) -> dict[str, tuple[str, dict[str, str]]]:
    return {n: (o.status, {p: r.digest for p, r in o.outputs.items()})
            for n, o in result.steps.items()}


def _attempts(tmp_path: Path) -> list[dict]:
    found = [json.loads(p.read_text()) for p in (tmp_path / "markers").glob("attempt-*")]
    return sorted(found, key=lambda attempt: attempt["at"])  # in the order they started


def test_a_worker_killed_mid_step_is_survived(cluster, ops_folder: Path, tmp_path: Path) -> None:
    workflow = compile_workflow(_flow(tmp_path, ops_folder, seconds=4.0))
    expected = run_workflow(workflow, store=open_store(tmp_path / "sequential"),
                            executor=SequentialExecutor())
    for marker in (tmp_path / "markers").glob("*"):
        marker.unlink()
    killed: list[int] = []
    finished = threading.Event()

    def kill_the_first_attempt() -> None:
        while not finished.is_set() and not killed:
            try:
                attempts = _attempts(tmp_path)
            except json.JSONDecodeError:  # caught mid-write: look again
                continue
            if attempts:
                killed.append(attempts[0]["pid"])
                os.kill(attempts[0]["pid"], signal.SIGKILL)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_first_attempt)
    killer.start()
    with DaskExecutor(workers=2, scheduler=cluster.scheduler_address) as executor:
        try:
            result = run_workflow(workflow, store=open_store(tmp_path / "dask"),
                                  executor=executor, raise_on_failure=False)
        finally:
            finished.set()
    killer.join()
    assert killed, "the step never started"
    assert result.status == "succeeded", {n: o.error for n, o in result.steps.items()}
    pids = [a["pid"] for a in _attempts(tmp_path)]
    assert len(pids) == 2 and pids[0] == killed[0] and pids[1] != killed[0], pids
    assert _digests(result) == _digests(expected)


def test_resource_hints_become_dask_resources(cluster, ops_folder: Path, tmp_path: Path) -> None:
    path = _flow(tmp_path, ops_folder, resources="{gpu: 1, memory: 500MB}")
    with DaskExecutor(workers=2, scheduler=cluster.scheduler_address) as executor:
        result = run_workflow(compile_workflow(path), store=open_store(tmp_path / "s"),
                              executor=executor)
    assert result.status == "succeeded"
    (attempt,) = _attempts(tmp_path)
    assert attempt["resources"] == {"GPU": 1.0, "MEMORY": 500_000_000.0}


def test_a_hint_no_worker_satisfies_fails_the_step_at_once(
        cluster, ops_folder: Path, tmp_path: Path) -> None:
    path = _flow(tmp_path, ops_folder, resources="{gpu: 2}")
    started = time.monotonic()
    with DaskExecutor(workers=2, scheduler=cluster.scheduler_address) as executor:
        result = run_workflow(compile_workflow(path), store=open_store(tmp_path / "s"),
                              executor=executor, raise_on_failure=False)
    assert time.monotonic() - started < 30
    doubled = result.steps["doubled"]
    assert doubled.status == "failed"
    assert "no Dask worker offers the resources the step asks for (GPU=2)" in doubled.error
    assert "GPU=1" in doubled.error  # what the workers do offer
    assert result.steps["diff"].status == "ran"  # the rest of the workflow went on


def test_cli_runs_on_the_scheduler_named_in_the_environment(
        cluster, ops_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SCHEDULER_ENV, cluster.scheduler_address)
    path = _flow(tmp_path, ops_folder)
    ran = CliRunner().invoke(app, ["run", str(path), "--executor", "dask", "--json"])
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout)["counts"]["ran"] == 3
    assert len(_attempts(tmp_path)) == 1
