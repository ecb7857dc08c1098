"""``amml artifact``: a step's output saved to a file (PNG plot, CSV table, JSON report)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from amml.cli.main import app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "anomaly" / "workflow.yaml"


def test_step_outputs_are_saved_as_files(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(EXAMPLE), "-p", "periods=1500"])
    assert result.exit_code == 0, result.output

    png = tmp_path / "alarms.png"
    result = runner.invoke(app, ["artifact", "plot", "-o", str(png)])
    assert result.exit_code == 0, result.output
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    table = tmp_path / "scores.csv"
    assert runner.invoke(app, ["artifact", "anomalies.out", "-o", str(table)]).exit_code == 0
    frame = pd.read_csv(table)
    assert {"score", "alarm"} <= set(frame.columns) and len(frame) == 1500

    report = tmp_path / "report.json"
    assert runner.invoke(app, ["artifact", "anomalies.report", "-o", str(report)]).exit_code == 0
    assert json.loads(report.read_text())["alarms"] == int(frame["alarm"].sum())

    digest = json.loads(runner.invoke(app, ["lineage", "plot", "--json"]).output)
    prefix = digest["outputs"][0]["artifact"]["digest"][:12]
    again = tmp_path / "again.png"
    assert runner.invoke(app, ["artifact", prefix, "-o", str(again)]).exit_code == 0
    assert again.read_bytes() == png.read_bytes()


def test_ambiguous_or_unknown_output_is_a_clear_error(tmp_path):
    runner = CliRunner()
    assert runner.invoke(app, ["run", str(EXAMPLE), "-p", "periods=1500"]).exit_code == 0
    result = runner.invoke(app, ["artifact", "anomalies"])
    assert result.exit_code == 1 and "name one as STEP.OUTPUT" in result.output
    result = runner.invoke(app, ["artifact", "anomalies.nope"])
    assert result.exit_code == 1 and "has no output 'nope'" in result.output
