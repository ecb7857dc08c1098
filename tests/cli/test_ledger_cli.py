"""``amml ledger`` end to end on a workflow that trains a PyTorch model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sqlalchemy import update
from typer.testing import CliRunner

from amml.cli.main import app
from amml.store import open_store
from amml.store.metadata.schema import ledger_entries

FLOW = """\
name: ledgered
steps:
  raw: {op: source.synthetic, with: {periods: 1500}}
  clean: {op: preprocess, inputs: {table: raw}, with: {scale: zscore, exclude: [is_anomaly]}}
  splits: {op: split, inputs: {table: clean}}
  model:
    op: train
    inputs: {train: splits.train, val: splits.val}
    with: {model: nlinear, target: temperature, lookback: 24, horizon: 6, epochs: 6,
           batch_size: 128, patience: null, lr_schedule: constant, lr: 0.001}
  score: {op: evaluate, inputs: {model: model, table: splits.test}, with: {target: temperature}}
"""


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _run(tmp_path: Path) -> str:
    (tmp_path / "flow.yaml").write_text(FLOW)
    result = _invoke("run", str(tmp_path / "flow.yaml"), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["run_id"]


def test_workflow_training_writes_a_verifiable_ledger(tmp_path: Path) -> None:
    run_id = _run(tmp_path)
    listed = json.loads(_invoke("ledger", "list", "--json").stdout)
    assert listed == [{"ledger": f"{run_id}/model", "entries": 6, "head": listed[0]["head"],
                       "last_kind": "epoch"}]
    verified = _invoke("ledger", "verify", run_id[:8])
    assert verified.exit_code == 0 and "6 entries, 6 checkpoints" in verified.output
    shown = json.loads(_invoke("ledger", "show", run_id, "--json").stdout)
    assert [e["epoch"] for e in shown] == list(range(6))
    assert all("val_loss" in e["metrics"] for e in shown)


def test_rollback_restores_the_recorded_bytes_and_appends(tmp_path: Path) -> None:
    run_id = _run(tmp_path)
    out = tmp_path / "restored.safetensors"
    result = _invoke("ledger", "rollback", run_id, "--to", "2", "--out", str(out), "--json",
                     "--reason", "overfitting")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == info["digest"]
    assert info["rollback_entry"] == 6
    shown = json.loads(_invoke("ledger", "show", run_id, "--json").stdout)
    assert shown[-1]["kind"] == "rollback" and shown[-1]["extra"]["reason"] == "overfitting"
    assert _invoke("ledger", "rollback", run_id, "--to", "42").exit_code == 1
    assert _invoke("ledger", "rollback", run_id).exit_code == 2


def test_verify_names_the_tampered_entry_and_exits_1(tmp_path: Path) -> None:
    run_id = _run(tmp_path)
    head_file = tmp_path / "head.json"
    assert _invoke("ledger", "head", run_id, "--out", str(head_file)).exit_code == 0
    assert _invoke("ledger", "verify", "--against", str(head_file)).exit_code == 0
    store = open_store(tmp_path / ".amml")
    with store.metadata.engine.begin() as conn:
        conn.execute(update(ledger_entries).where(ledger_entries.c.seq == 3)
                     .values(body=ledger_entries.c.body + " "))
    store.close()
    result = _invoke("ledger", "verify", run_id)
    assert result.exit_code == 1
    assert "broken at entry 3" in result.output and "was modified" in result.output


def test_key_trust_and_rotation_commands(tmp_path: Path) -> None:
    shown = _invoke("ledger", "key")
    assert shown.exit_code == 0 and "public key" in shown.output
    public = shown.output.split("public key", 1)[1].split()[0]
    assert "trusted key" in _invoke("ledger", "trust", public).output
    assert _invoke("ledger", "trust", "zz").exit_code == 2
    assert "new signing key" in _invoke("ledger", "rotate-key").output


def test_workflow_training_resumes_from_a_rollback_entry(tmp_path: Path) -> None:
    run_id = _run(tmp_path)
    ledger = f"{run_id}/model"
    rollback = json.loads(_invoke("ledger", "rollback", ledger, "--to", "3", "--json").stdout)
    resumed = FLOW.replace("epochs: 6,", f"epochs: 2, resume_from: '{ledger}@"
                                        f"{rollback['rollback_entry']}',")
    (tmp_path / "resume.yaml").write_text(resumed)
    result = _invoke("run", str(tmp_path / "resume.yaml"), "--json")
    assert result.exit_code == 0, result.output
    # the resuming run writes its own ledger, which starts by naming the entry it resumed
    own = f"{json.loads(result.stdout)['run_id']}/model"
    assert json.loads(_invoke("ledger", "show", ledger, "--json").stdout)[-1]["kind"] == \
        "rollback"
    shown = json.loads(_invoke("ledger", "show", own, "--json").stdout)
    assert [(e["kind"], e.get("epoch")) for e in shown] == [
        ("resume", 3), ("epoch", 4), ("epoch", 5)]
    assert shown[-1]["code_digest"] and shown[-1]["data_digest"] and shown[-1]["config_digest"]
    assert _invoke("ledger", "verify", ledger).exit_code == 0
    assert _invoke("ledger", "verify", own).exit_code == 0
