"""``amml compile kfp``: the pipeline spec loads with kfp's own loader (both variants), each
step is a task running ``amml step`` after its upstream steps, parameters are pipeline
parameters, resource hints are task requests, and the lightweight variant runs end to end in
kfp's local SubprocessRunner with the artifact digests of ``amml run``."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from kfp import components
from typer.testing import CliRunner

from amml.cli.main import app
from amml.store import open_store

FLOW = """\
name: kfp-round-trip
params: {periods: 120, seed: 4}
steps:
  raw: {op: source.synthetic, with: {periods: "${params.periods}", seed: "${params.seed}"}}
  right:
    op: difference
    inputs: {table: raw}
    resources: {memory: 2GB, gpu: 1, cpu: 2}
  joined: {op: align, inputs: {tables: [raw, right]}}
"""
UPSTREAM = {"raw": [], "right": ["raw"], "joined": ["raw", "right"]}


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _compile(tmp_path: Path, *extra: str, periods: int = 120) -> dict:
    (tmp_path / "flow.yaml").write_text(FLOW)
    done = _invoke("compile", "kfp", "flow.yaml", "-o", "pipeline.yaml", "--json", *extra)
    assert done.exit_code == 0, done.output
    info = json.loads(done.stdout)
    assert info["steps"] == list(UPSTREAM)
    loaded = components.load_component_from_file(str(tmp_path / "pipeline.yaml"))
    assert loaded.name == "kfp-round-trip"
    spec = yaml.safe_load((tmp_path / "pipeline.yaml").read_text())
    assert spec["root"]["inputDefinitions"]["parameters"]["periods"] == {
        "defaultValue": float(periods), "isOptional": True, "parameterType": "NUMBER_INTEGER"}
    tasks = spec["root"]["dag"]["tasks"]
    by_step = {task["taskInfo"]["name"]: task for task in tasks.values()}
    assert set(by_step) == set(UPSTREAM)
    for step, task in by_step.items():
        names = {t: by_step[t] for t in UPSTREAM[step]}
        wanted = sorted(key for key, t in tasks.items() if t in names.values())
        assert sorted(task.get("dependentTasks", [])) == wanted, step
        assert task["inputs"]["parameters"]["amml_run_id"] == {
            "runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}}
        assert task["inputs"]["parameters"]["seed"] == {"componentInputParameter": "seed"}
    return spec


def test_container_pipeline_runs_amml_step_in_the_image(tmp_path: Path) -> None:
    spec = _compile(tmp_path, "--image", "registry.example/amml:1.0", "-p", "periods=90",
                    periods=90)
    assert spec["root"]["inputDefinitions"]["parameters"]["amml_home"]["defaultValue"] == (
        "/mnt/amml")
    executors = spec["deploymentSpec"]["executors"]
    tasks = spec["root"]["dag"]["tasks"]
    for task in tasks.values():
        step = task["taskInfo"]["name"]
        executor = spec["components"][task["componentRef"]["name"]]["executorLabel"]
        container = executors[executor]["container"]
        assert container["image"] == "registry.example/amml:1.0"
        assert container["command"] == ["amml", "step"]
        assert container["args"][:3] == ["flow.yaml", step, "--run-id"]
        if step == "right":  # its resource hints
            assert container["resources"]["memoryRequest"] == 2.0
            assert container["resources"]["cpuRequest"] == 2.0
            assert container["resources"]["accelerator"]["resourceCount"] == "1"
        else:
            assert "resources" not in container


def test_lightweight_pipeline_runs_locally_with_amml_runs_digests(tmp_path: Path) -> None:
    from kfp import local

    # a parameter's default changed at compile time reaches every task, as -p reaches amml run
    _compile(tmp_path, "--lightweight", "--store-home", str(tmp_path / "kfp-store"),
             "-p", "periods=90", periods=90)
    whole = _invoke("run", "flow.yaml", "--json", "--home", str(tmp_path / "run-store"),
                    "-p", "periods=90")
    assert whole.exit_code == 0, whole.output
    expected = {s["name"]: s["outputs"] for s in json.loads(whole.stdout)["steps"]}
    local.init(runner=local.SubprocessRunner(use_venv=False),
               pipeline_root=str(tmp_path / "kfp-outputs"))
    pipeline = components.load_component_from_file(str(tmp_path / "pipeline.yaml"))
    pipeline()  # raises if a task fails
    store = open_store(tmp_path / "kfp-store", read_only=True)
    try:
        (run,) = store.metadata.list_runs()
        assert run["status"] == "succeeded" and run["workflow"] == "kfp-round-trip"
        steps = store.metadata.run_steps(run["id"])
        assert sorted((s["name"], s["status"]) for s in steps) == sorted(
            (name, "ran") for name in UPSTREAM)
        edges = store.metadata.edges_for_steps([(run["id"], name) for name in UPSTREAM])
    finally:
        store.close()
    got: dict[str, dict[str, str]] = {name: {} for name in UPSTREAM}
    for edge in edges:
        if edge["direction"] == "out":
            got[edge["step_name"]][edge["port"]] = edge["artifact_digest"]
    assert got == expected
