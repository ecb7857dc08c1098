"""``amml store verify [--repair]`` and ``amml artifact`` on damaged and healthy stores."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from amml.cli.main import app
from amml.store import open_store

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "anomaly" / "workflow.yaml"


def _step_outputs(home: Path) -> dict[str, dict[str, str]]:
    """step -> output -> digest, for the latest run."""
    with open_store(home) as store:
        run_id = store.metadata.list_runs(limit=1)[0]["id"]
    runner = CliRunner()
    outputs: dict[str, dict[str, str]] = {}
    for step in ("anomalies", "plot"):
        graph = json.loads(runner.invoke(app, ["lineage", f"{run_id}:{step}", "--json"]).output)
        outputs[step] = {o["port"]: o["artifact"]["digest"] for o in graph["outputs"]}
    return outputs


def _path(home: Path, digest: str) -> Path:
    return home / "artifacts" / digest[:2] / digest


def _run(home: Path) -> dict:
    result = CliRunner().invoke(app, ["run", str(EXAMPLE), "-p", "periods=1500", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_store_verify_reports_and_repairs(tmp_path: Path) -> None:
    home = tmp_path / ".amml"  # AMML_HOME (conftest)
    runner = CliRunner()
    _run(home)
    assert runner.invoke(app, ["store", "verify"]).exit_code == 0
    outputs = _step_outputs(home)
    table, plot = outputs["anomalies"]["out"], outputs["plot"]["plot"]
    data = bytearray(_path(home, table).read_bytes())
    data[len(data) // 2: len(data) // 2 + 4] = b"\x7f\xef\xff\xff"
    _path(home, table).write_bytes(bytes(data))
    _path(home, plot).write_bytes(b"")

    checked = runner.invoke(app, ["store", "verify", "--json"])
    assert checked.exit_code == 1, checked.output
    report = json.loads(checked.stdout)
    assert {(p["digest"], p["problem"]) for p in report["problems"]} == {
        (table, "corrupt"), (plot, "empty")}
    assert _path(home, table).exists()  # without --repair nothing moves

    repaired = runner.invoke(app, ["store", "verify", "--repair"])
    assert repaired.exit_code == 0, repaired.output
    assert "next run rebuilds" in repaired.stdout and table in repaired.output
    assert len(list((home / "artifacts" / "quarantine").iterdir())) == 2
    assert runner.invoke(app, ["store", "verify"]).exit_code == 0

    rerun = _run(home)
    statuses = {s["name"]: s["status"] for s in rerun["steps"]}
    assert statuses["anomalies"] == "ran" and statuses["plot"] == "ran"
    assert _path(home, table).exists() and _path(home, plot).stat().st_size > 0
    assert runner.invoke(app, ["store", "verify"]).exit_code == 0


def test_artifact_command_refuses_a_corrupt_table(tmp_path: Path) -> None:
    home = tmp_path / ".amml"
    _run(home)
    table = _step_outputs(home)["anomalies"]["out"]
    data = bytearray(_path(home, table).read_bytes())
    data[-20:-16] = b"\x00\x00\x00\x00"
    _path(home, table).write_bytes(bytes(data))
    target = tmp_path / "scores.csv"
    result = CliRunner().invoke(app, ["artifact", "anomalies.out", "-o", str(target)])
    assert result.exit_code == 1 and "corrupt" in result.output
    assert not target.exists()


def test_artifact_csv_keeps_the_time_index(tmp_path: Path) -> None:
    home = tmp_path / ".amml"
    _run(home)
    target = tmp_path / "scores.csv"
    result = CliRunner().invoke(app, ["artifact", "anomalies.out", "-o", str(target)])
    assert result.exit_code == 0, result.output
    with open_store(home) as store:
        ref_digest = _step_outputs(home)["anomalies"]["out"]
        info = store.metadata.artifact_info([ref_digest])[ref_digest]
        from amml.store.artifacts import ArtifactRef

        stored = store.artifacts.load(ArtifactRef(ref_digest, info["type"], info["size"]))
    frame = pd.read_csv(target, index_col=0, parse_dates=True)
    assert frame.index.name == stored.index.name is not None
    assert (frame.index == stored.index).all() and len(frame) == 1500
    assert list(frame.columns) == list(stored.columns)
