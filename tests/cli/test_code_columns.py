"""``amml ledger show`` prints each entry's code version; ``amml runs`` a short commit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from amml.cli.main import app
from amml.store import open_store
from amml.store.keys import KeyRing
from amml.store.ledger import Ledger
from tests.cli.test_show_code_version import _git, _repo
from tests.helpers import SMALL_YAML


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def test_ledger_show_prints_each_entrys_commit_and_dirty_flag(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notes = _repo(tmp_path / "repo", "notes.txt", "v1\n")
    head = _git(notes.parent, "rev-parse", "HEAD")
    monkeypatch.chdir(notes.parent)  # entries without a run record the current folder's git
    store = open_store(tmp_path / ".amml")
    Ledger(store, "clean", KeyRing()).append("epoch", epoch=0, checkpoint=b"w0")
    notes.write_text("v2\n")  # an uncommitted change to a tracked file
    Ledger(store, "dirty", KeyRing()).append("epoch", epoch=0, checkpoint=b"w0")
    store.close()
    assert f"{head[:8]} " in _invoke("ledger", "show", "clean").output
    dirty = _invoke("ledger", "show", "dirty")
    assert dirty.exit_code == 0 and f"{head[:8]}+dirty" in dirty.output
    shown = json.loads(_invoke("ledger", "show", "dirty", "--json").stdout)
    assert shown[0]["code_version"]["commit"] == head and shown[0]["code_version"]["dirty"]


def test_runs_lists_a_short_commit_when_runs_were_made_in_git(tmp_path: Path) -> None:
    flow = _repo(tmp_path / "repo", "flow.yaml", SMALL_YAML)
    head = _git(flow.parent, "rev-parse", "HEAD")
    assert _invoke("run", str(flow), "--json").exit_code == 0
    table = _invoke("runs").output
    assert "commit" in table and head[:8] in table
    listed = json.loads(_invoke("runs", "--json").stdout)
    assert listed[0]["code_commit"] == head and listed[0]["code_dirty"] is False
