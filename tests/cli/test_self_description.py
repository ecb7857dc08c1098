"""The command line describes itself: ``amml ops NAME``, ``--version``, messages printed as
written, training progress, where output goes, ``amml artifact RUN:STEP`` and where
``amml bench nab`` writes (issue 19, "Self-description" and "The README as written")."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from amml.cli.main import app
from amml.cli.progress import RichProgress
from tests.cli.test_bench_cli import _corpus

ROOT = Path(__file__).resolve().parents[2]
ANOMALY = ROOT / "examples" / "anomaly" / "workflow.yaml"
TRAINING = """\
name: epochs
steps:
  raw:
    op: source.synthetic
    with: {periods: 400, seed: 3}
  clean:
    op: preprocess
    inputs: {table: raw}
    with: {scale: zscore, exclude: [is_anomaly]}
  splits:
    op: split
    inputs: {table: clean}
    with: {train: 0.6, val: 0.2}
  model:
    op: train
    inputs: {train: splits.train, val: splits.val}
    with: {model: nlinear, target: temperature, lookback: 24, horizon: 6, epochs: 3}
"""


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def test_ops_name_shows_types_defaults_constraints_and_descriptions() -> None:
    shown = _invoke("ops", "detect")
    assert shown.exit_code == 0, shown.output
    text = shown.stdout
    assert "Score a table with a registered detector" in text  # the docstring
    assert "table: table" in text and "report: json" in text  # inputs and outputs, typed
    # the nested threshold model, expanded: kinds, defaults, constraints, descriptions
    assert "threshold.kind" in text and "'fixed' | 'quantile' | 'labels'" in text
    assert "threshold.quantile" in text and "0.995" in text and ">= 0, <= 1" in text
    assert "this quantile of the reference scores" in text

    data = json.loads(_invoke("ops", "train", "--json").stdout)
    fields = {f["name"]: f for f in data["config"]}
    assert fields["epochs"]["type"] == "int" and fields["epochs"]["default"] == 10
    assert fields["epochs"]["constraints"] == [">= 1"]
    assert [p["name"] for p in data["inputs"]] == ["train", "val"]
    assert data["inputs"][1]["required"] is False

    compact = _invoke("ops")  # the list stays a list: one row per op, field names only
    assert compact.exit_code == 0 and "detect" in compact.stdout
    assert "this quantile of the reference scores" not in compact.stdout


def test_ops_unknown_name_suggests_and_exits_2() -> None:
    result = _invoke("ops", "detec")
    assert result.exit_code == 2
    assert "unknown op 'detec'" in result.stderr and "did you mean 'detect'" in result.stderr


def test_error_containing_brackets_prints_intact(tmp_path: Path) -> None:
    # Rich read "[torch]" as a style tag and dropped it: "pip install 'amml'"
    for command in ("run", "validate"):
        result = _invoke(command, "amml[torch].yaml")
        assert result.exit_code == 2
        assert "amml[torch].yaml" in result.stderr, result.stderr


def test_version_prints_the_version_without_importing_the_engine() -> None:
    from importlib.metadata import version

    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "amml.cli", "--version"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"amml {version('amml')}"
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert not {m for m in imported if m.startswith(("amml.engine", "amml.ops", "amml.store"))}


def test_run_summary_goes_to_stdout_and_progress_to_stderr() -> None:
    result = _invoke("run", str(ANOMALY), "-p", "periods=600")
    assert result.exit_code == 0, result.output
    assert "succeeded in" in result.stdout and "ran" in result.stdout  # the summary
    assert "succeeded in" not in result.stderr
    assert "· workflow" in result.stderr and "· workflow" not in result.stdout  # progress
    as_json = _invoke("run", str(ANOMALY), "-p", "periods=600", "--json")
    assert json.loads(as_json.stdout)["counts"]["cached"] > 0


def test_training_progress_shows_epoch_loss_and_val(tmp_path: Path) -> None:
    (tmp_path / "train.yaml").write_text(TRAINING)
    result = _invoke("run", "train.yaml")
    assert result.exit_code == 0, result.output
    # the finished line keeps where the training ended
    line = next(x for x in result.stderr.splitlines() if " model " in x)
    assert "epoch 3/3" in line and "loss " in line and "val " in line, result.stderr


def test_training_progress_shows_time_left_while_it_trains() -> None:
    hook = RichProgress(Console(file=io.StringIO(), width=200))
    hook.before_run(run_id="r1", workflow="w", steps=["model"])
    hook.before_step(run_id="r1", step="model", op="train", config={"epochs": 10})
    for epoch in range(7):
        hook.after_metrics(run_id="r1", step="model", index=epoch,
                           metrics={"train_loss": 0.412, "val_loss": 0.433, "lr": 1e-3})
    hook.after_metrics(run_id="r1", step="model", index=0,  # the fit's summary, not an epoch
                       metrics={"train_loss": 0.4, "val_loss": 0.4})
    assert hook.progress is not None
    shown = [t.description for t in hook.progress.tasks]
    hook.after_run(run_id="r1", status="succeeded", duration_s=1.0)
    assert any("model  epoch 7/10  loss 0.412  val 0.433  ~" in d and d.endswith(" left")
               for d in shown), shown


def test_artifact_accepts_a_run_prefix() -> None:
    first = json.loads(_invoke("run", str(ANOMALY), "-p", "periods=1500", "--json").stdout)
    assert _invoke("run", str(ANOMALY), "-p", "periods=1600", "--json").exit_code == 0
    older = _invoke("artifact", f"{first['run_id'][:8]}:anomalies.report", "-o", "old.json")
    assert older.exit_code == 0, older.output
    latest = _invoke("artifact", "anomalies.report", "-o", "new.json")
    assert latest.exit_code == 0, latest.output
    assert json.loads(Path("old.json").read_text())["rows"] == 1500
    assert json.loads(Path("new.json").read_text())["rows"] == 1600
    wrong = _invoke("artifact", f"{first['run_id'][:8]}:anomalies.nope")
    assert wrong.exit_code == 1 and "no output 'nope'" in wrong.stderr


def test_bench_nab_results_go_under_the_store_home(tmp_path: Path) -> None:
    _corpus(tmp_path / "nab")
    result = _invoke("bench", "nab", "--data", str(tmp_path / "nab"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / ".amml" / "nab-results" / "amml").is_dir()  # AMML_HOME of the test
    assert not (tmp_path / "nab-results").exists()
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "/nab-results/" in ignored
