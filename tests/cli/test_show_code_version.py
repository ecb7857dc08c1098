"""``amml show`` and ``amml models show`` print the code version, and put it in ``--json``."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from typer.testing import CliRunner

import amml
from amml import run_workflow
from amml.cli.main import app
from tests.helpers import SMALL_YAML


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def _repo(path: Path, name: str, content: str) -> Path:
    path.mkdir(parents=True)
    _git(path, "init", "-q")
    _git(path, "config", "user.email", "test@example.com")
    _git(path, "config", "user.name", "Test")
    (path / name).write_text(content)
    _git(path, "add", name)
    _git(path, "-c", "commit.gpgsign=false", "commit", "-q", "-m", "initial")
    return path / name


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_show_prints_commit_dirty_flag_digest_and_version(tmp_path: Path) -> None:
    flow = _repo(tmp_path / "repo", "flow.yaml", SMALL_YAML)
    head = _git(flow.parent, "rev-parse", "HEAD")
    digest = hashlib.sha256(flow.read_bytes()).hexdigest()
    clean = run_workflow(flow).run_id
    shown = json.loads(_invoke("show", clean, "--json").stdout)
    assert shown["code_version"] == {"workflow_digest": digest, "commit": head,
                                     "dirty": False, "amml_version": amml.__version__}
    human = _invoke("show", clean).output
    assert (f"code: commit {head[:12]} · workflow {digest[:12]} · amml {amml.__version__}"
            in human)
    flow.write_text(SMALL_YAML.replace("seed: 3", "seed: 5"))
    dirty = run_workflow(flow).run_id
    assert f"code: commit {head[:12]} (dirty)" in _invoke("show", dirty).output
    assert json.loads(_invoke("show", dirty, "--json").stdout)["code_version"]["dirty"] is True


def test_show_outside_a_work_tree(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(SMALL_YAML)
    run_id = run_workflow(flow).run_id
    assert "code: not in a git work tree · workflow" in _invoke("show", run_id).output
    assert json.loads(_invoke("show", run_id, "--json").stdout)["code_version"]["commit"] is None


def test_models_show_prints_the_versions_code_version(tmp_path: Path) -> None:
    from tests.registry.test_register_op import FLOW

    flow = _repo(tmp_path / "repo", "flow.yaml", FLOW)
    head = _git(flow.parent, "rev-parse", "HEAD")
    run_workflow(flow)
    shown = json.loads(_invoke("models", "show", "sensors@1", "--json").stdout)
    assert shown["code_version"]["commit"] == head
    assert shown["code_version"]["dirty"] is False
    assert f"code      commit {head[:12]} · workflow" in _invoke("models", "show",
                                                               "sensors").output
