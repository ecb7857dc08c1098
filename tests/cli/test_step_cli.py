"""``amml step``: one step at a time, inputs from the store, recorded under one run."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from amml.cli.main import app
from amml.store import open_store

FLOW = """\
name: steps
params: {periods: 200}
steps:
  raw: {op: source.synthetic, with: {periods: "${params.periods}", seed: 3}}
  left: {op: fill, inputs: {table: raw}, with: {method: linear}}
  right: {op: difference, inputs: {table: raw}}
  joined: {op: align, inputs: {tables: [left, right]}}
"""


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _digests(payload: dict) -> dict[str, dict[str, str]]:
    return {s["name"]: s["outputs"] for s in payload["steps"]}


def test_steps_one_by_one_make_the_run_amml_run_makes(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW)
    whole = _invoke("run", "flow.yaml", "--json", "-p", "periods=150",
                    "--home", str(tmp_path / "other"))
    assert whole.exit_code == 0, whole.output
    stepped: dict[str, dict[str, str]] = {}
    for name in ("raw", "right", "left", "joined"):
        one = _invoke("step", "flow.yaml", name, "--run-id", "kfp1", "-p", "periods=150",
                      "--json")
        assert one.exit_code == 0, one.output
        payload = json.loads(one.stdout)
        assert payload["run_id"] == "kfp1" and [s["status"] for s in payload["steps"]] == ["ran"]
        stepped.update(_digests(payload))
    assert stepped == _digests(json.loads(whole.stdout))
    store = open_store(read_only=True)
    try:
        run = store.metadata.get_run("kfp1")
        steps = store.metadata.run_steps("kfp1")
        assert run["status"] == "succeeded" and run["workflow"] == "steps"
        assert store.metadata.run_params("kfp1") == {"periods": 150}
        assert sorted(s["name"] for s in steps) == ["joined", "left", "raw", "right"]
        lineage = store.metadata.edges_for_steps([("kfp1", "joined")])
        inputs = sorted(e["artifact_digest"] for e in lineage if e["direction"] == "in")
        assert inputs == sorted([stepped["left"]["out"], stepped["right"]["out"]])
    finally:
        store.close()
    # a step already recorded in the run is not run twice (a retried component)
    again = _invoke("step", "flow.yaml", "joined", "--run-id", "kfp1", "-p", "periods=150",
                    "--json")
    assert again.exit_code == 0, again.output
    assert _digests(json.loads(again.stdout)) == {"joined": stepped["joined"]}


def test_a_step_finds_its_inputs_in_the_cache_of_another_run(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW)
    whole = _invoke("run", "flow.yaml", "--json")
    assert whole.exit_code == 0, whole.output
    one = _invoke("step", "flow.yaml", "joined", "--json")
    assert one.exit_code == 0, one.output
    payload = json.loads(one.stdout)
    # cached: the whole run stored it for these inputs; --no-cache runs it, same bytes
    assert payload["steps"][0]["status"] == "cached"
    assert _digests(payload)["joined"] == _digests(json.loads(whole.stdout))["joined"]
    forced = json.loads(_invoke("step", "flow.yaml", "joined", "--no-cache", "--json").stdout)
    assert forced["steps"][0]["status"] == "ran"
    assert _digests(forced) == _digests(payload)
    # other parameters: other inputs, which no run produced
    missing = _invoke("step", "flow.yaml", "joined", "-p", "periods=120")
    assert missing.exit_code == 1
    assert "step 'joined' needs the outputs of step 'raw'" in missing.output
    assert "run it first" in missing.output


def test_an_unknown_step_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "flow.yaml").write_text(FLOW)
    bad = _invoke("step", "flow.yaml", "joind")
    assert bad.exit_code == 2
    assert "no step named 'joind'; did you mean 'joined'?" in bad.output


CSV_FLOW = """\
name: relative
params: {csv: data.csv}
steps:
  raw: {op: source.csv, with: {path: "${params.csv}", time: time}}
  diff: {op: difference, inputs: {table: raw}}
"""


def test_a_parameter_passed_at_its_default_resolves_paths_as_the_workflow_does(
        tmp_path: Path) -> None:
    """A compiled pipeline passes every parameter with -p: a relative path among them is
    still the workflow file's, not the task's working folder's."""
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "flow.yaml").write_text(CSV_FLOW)
    (tmp_path / "flows" / "data.csv").write_text(
        "time,value\n" + "".join(f"2024-01-01 {h:02d}:00,{h * 1.5}\n" for h in range(10)))
    for name in ("raw", "diff"):
        done = _invoke("step", "flows/flow.yaml", name, "--run-id", "rel", "-p", "csv=data.csv")
        assert done.exit_code == 0, done.output
    elsewhere = _invoke("step", "flows/flow.yaml", "raw", "-p", "csv=other.csv", "--json")
    assert elsewhere.exit_code == 1  # another value typed here: the current folder's
    assert str(tmp_path / "other.csv") in json.loads(elsewhere.stdout)["steps"][0]["error"]
