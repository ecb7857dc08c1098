"""The command line end to end: run, runs, show, lineage, export, validate, ops."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from amml.cli.main import app
from tests.helpers import SMALL_YAML

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sensors" / "workflow.yaml"


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_run_then_rerun_cached_then_param_change(tmp_path: Path) -> None:
    first = _invoke("run", str(EXAMPLE), "--json")
    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)
    assert data["status"] == "succeeded" and data["counts"]["ran"] == 8
    second = json.loads(_invoke("run", str(EXAMPLE), "--json").stdout)
    assert second["counts"] == {"ran": 0, "cached": 8, "failed": 0, "skipped": 0}
    third = json.loads(_invoke("run", str(EXAMPLE), "--json", "--param", "horizon=12").stdout)
    ran = sorted(s["name"] for s in third["steps"] if s["status"] == "ran")
    assert ran == ["baseline", "baseline_evaluation", "evaluation", "model"]


def test_human_output_has_progress_and_summary(tmp_path: Path) -> None:
    result = _invoke("run", str(EXAMPLE))
    assert result.exit_code == 0
    assert "succeeded" in result.output and "8 ran, 0 cached" in result.output
    again = _invoke("run", str(EXAMPLE))
    assert "0 ran, 8 cached" in again.output


def test_runs_show_and_lineage(tmp_path: Path) -> None:
    run_id = json.loads(_invoke("run", str(EXAMPLE), "--json").stdout)["run_id"]
    runs = json.loads(_invoke("runs", "--json").stdout)
    assert runs[0]["id"] == run_id and runs[0]["status"] == "succeeded"
    table = _invoke("runs")
    assert run_id in table.output
    shown = json.loads(_invoke("show", run_id[:6], "--json").stdout)
    assert shown["params"]["horizon"] == 24
    assert any(m["key"] == "mse" for m in shown["metrics"])
    human = _invoke("show", run_id)
    assert "evaluation" in human.output and "mse" in human.output
    tree = _invoke("lineage", "evaluation")
    assert tree.exit_code == 0 and "splits" in tree.output and "sensors" in tree.output
    assert tree.output.count("← sensors") == 1 and "(shown above)" in tree.output
    graph = json.loads(_invoke("lineage", f"{run_id}:model", "--json").stdout)
    assert graph["outputs"][0]["consumed_by"][0]["step"] == "evaluation"


def test_unknown_run_and_lineage_target_fail_cleanly(tmp_path: Path) -> None:
    _invoke("run", str(EXAMPLE), "--json")
    missing = _invoke("show", "ffffffffff")
    assert missing.exit_code == 1 and "no run" in missing.output
    lineage = _invoke("lineage", "no_such_step")
    assert lineage.exit_code == 1 and "neither" in lineage.output


def test_failed_step_exits_1_and_shows_the_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(SMALL_YAML.replace("target: \"${params.target}\", lookback",
                                       "target: nothing_here, lookback"))
    result = _invoke("run", str(path))
    assert result.exit_code == 1
    assert "target column 'nothing_here' not found" in result.output
    assert "failed" in result.output and "Traceback" not in result.output
    with_tb = _invoke("run", str(path), "--traceback")
    assert "Traceback" in with_tb.output


def test_rerun_unknown_step_is_a_usage_error(tmp_path: Path) -> None:
    result = _invoke("run", str(EXAMPLE), "--rerun", "modle")
    assert result.exit_code == 2 and "did you mean 'model'" in result.output


def test_validate_and_export(tmp_path: Path) -> None:
    valid = json.loads(_invoke("validate", str(EXAMPLE), "--json").stdout)
    assert valid["valid"] and len(valid["steps"]) == 8
    exported = _invoke("export", str(EXAMPLE.with_suffix(".py")), "--format", "json",
                       "--allow-imports")
    assert json.loads(exported.stdout)["name"] == "sensor-monitoring"
    assert not (tmp_path / ".amml").exists()


def test_ops_lists_builtins(tmp_path: Path) -> None:
    listed = json.loads(_invoke("ops", "--json").stdout)
    names = {o["name"] for o in listed}
    assert {"source.csv", "source.synthetic", "preprocess", "split", "train", "evaluate",
            "detect.zscore"} <= names


def test_process_executor_and_sequential_executor(tmp_path: Path) -> None:
    for executor in ("process", "sequential"):
        result = _invoke("run", str(EXAMPLE), "--json", "--no-cache", "--executor", executor)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["counts"]["ran"] == 8


def test_console_script_is_installed(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "amml.cli", "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and "lineage" in result.stdout


def test_help_shows_defaults_in_plain_brackets() -> None:
    # a subprocess: the help a user's terminal gets, with Rich installed
    result = subprocess.run([sys.executable, "-m", "amml.cli", "bench", "nab", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "[default: amml]" in result.stdout and "\\[" not in result.stdout


def test_show_without_run_id_shows_the_latest(tmp_path: Path) -> None:
    assert _invoke("show").exit_code == 1  # nothing recorded yet
    run_id = json.loads(_invoke("run", str(EXAMPLE), "--json").stdout)["run_id"]
    assert json.loads(_invoke("show", "--json").stdout)["id"] == run_id


def test_yaml_imports_a_python_file_of_ops(tmp_path: Path) -> None:
    (tmp_path / "my_ops.py").write_text(
        "import pandas as pd\nfrom amml import op\n\n"
        "@op(name='local.double')\n"
        "def double(table: pd.DataFrame, *, columns: list[str]) -> pd.DataFrame:\n"
        "    return table[columns] * 2\n")
    (tmp_path / "flow.yaml").write_text(
        "name: imported\nimports: [my_ops.py]\nsteps:\n"
        "  raw: {op: source.synthetic, with: {periods: 100}}\n"
        "  doubled: {op: local.double, inputs: {table: raw}, with: {columns: [load]}}\n")
    result = _invoke("run", str(tmp_path / "flow.yaml"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["ran"] == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text((tmp_path / "flow.yaml").read_text().replace("[load]", "load"))
    rejected = _invoke("validate", str(bad), "--allow-imports")
    assert rejected.exit_code == 2 and "bad.yaml:5:" in rejected.output
