"""Code versions against real git repositories: commit, dirty flag, workflow digest, and the
runs, model versions and ledger entries that record them."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

import amml
from amml import Client, Workflow, compile_workflow, ops, run_workflow
from amml.lang import load_yaml_text
from amml.store import Store
from amml.store import code_version as code_version_module
from amml.store.code_version import CodeVersion, detect, git_state
from amml.store.model_registry import ModelRegistry
from tests.helpers import SMALL_YAML


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def _repo(path: Path, files: dict[str, str]) -> Path:
    """A real git work tree with ``files`` committed."""
    path.mkdir(parents=True, exist_ok=True)
    _git(path, "init", "-q")
    _git(path, "config", "user.email", "test@example.com")
    _git(path, "config", "user.name", "Test")
    _git(path, "config", "commit.gpgsign", "false")
    for name, text in files.items():
        (path / name).write_text(text)
    _git(path, "add", *files)
    _git(path, "commit", "-q", "-m", "initial")
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- detecting ------------------------------------------------------------------------------
def test_clean_commit_then_modified_tracked_file_is_dirty(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo", {"flow.yaml": SMALL_YAML, "notes.txt": "x\n"})
    head = _git(repo, "rev-parse", "HEAD")
    assert git_state(repo) == (head, False)
    (repo / "notes.txt").write_text("changed\n")
    assert git_state(repo) == (head, True)
    _git(repo, "add", "notes.txt")  # staged but not committed is still uncommitted
    assert git_state(repo) == (head, True)
    _git(repo, "commit", "-q", "-m", "second")
    assert git_state(repo) == (_git(repo, "rev-parse", "HEAD"), False)


def test_untracked_files_do_not_make_a_tree_dirty(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo", {"flow.yaml": SMALL_YAML})
    (repo / "scratch.csv").write_text("a,b\n")
    assert git_state(repo)[1] is False


def test_outside_a_work_tree_and_without_git_nothing_is_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert git_state(plain) == (None, None)
    assert git_state(tmp_path / "does-not-exist") == (None, None)
    repo = _repo(tmp_path / "repo", {"a.txt": "a"})
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no git binary to be found
    assert git_state(repo) == (None, None)
    assert detect(repo / "a.txt").commit is None


def test_a_slow_git_is_given_up_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _repo(tmp_path / "repo", {"a.txt": "a"})
    monkeypatch.setattr(code_version_module, "GIT_TIMEOUT_S", 1e-6)
    assert git_state(repo) == (None, None)


def test_a_repository_without_commits_has_no_commit_but_a_dirty_flag(tmp_path: Path) -> None:
    repo = tmp_path / "fresh"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("a")
    assert git_state(repo) == (None, False)
    _git(repo, "add", "a.txt")
    assert git_state(repo) == (None, True)


def test_git_is_asked_about_the_workflow_files_folder_not_the_current_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _repo(tmp_path / "repo", {"flow.yaml": SMALL_YAML})
    other = _repo(tmp_path / "other", {"b.txt": "b"})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "flow.yaml").write_text(SMALL_YAML)
    repo_head, other_head = _git(repo, "rev-parse", "HEAD"), _git(other, "rev-parse", "HEAD")
    monkeypatch.chdir(other)
    # a GIT_DIR left in the environment must not redirect the question either
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    assert detect(repo / "flow.yaml").commit == repo_head
    assert detect(outside / "flow.yaml").commit is None
    assert detect(None).commit == other_head  # no file: the current folder


def test_workflow_digest_is_the_files_bytes_else_the_ir_digest(tmp_path: Path) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text(SMALL_YAML)
    first = detect(path, ir_digest="f" * 64)
    assert first.workflow_digest == _sha256(path)
    path.write_text(SMALL_YAML + "# a comment changes the file, not the IR\n")
    assert detect(path, ir_digest="f" * 64).workflow_digest == _sha256(path) != \
        first.workflow_digest
    assert detect(None, ir_digest="f" * 64).workflow_digest == "f" * 64
    assert detect("<stdin>", ir_digest="e" * 64).workflow_digest == "e" * 64
    assert first.amml_version == amml.__version__


# -- runs -----------------------------------------------------------------------------------
def test_runs_record_commit_dirty_flag_and_workflow_digest(any_store: Store,
                                                            tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo", {"flow.yaml": SMALL_YAML})
    flow = repo / "flow.yaml"
    head = _git(repo, "rev-parse", "HEAD")
    client = Client(store=any_store)
    clean = client.run(run_workflow(flow, store=any_store).run_id)
    assert clean["code_version"] == {"workflow_digest": _sha256(flow), "commit": head,
                                     "dirty": False, "amml_version": amml.__version__}
    assert "code_commit" not in clean  # one place for it: the code_version dict
    flow.write_text(SMALL_YAML.replace("seed: 3", "seed: 4"))
    edited = client.run(run_workflow(flow, store=any_store).run_id)
    assert edited["code_version"]["dirty"] is True
    assert edited["code_version"]["commit"] == head
    assert edited["code_version"]["workflow_digest"] == _sha256(flow)
    assert edited["code_version"]["workflow_digest"] != clean["code_version"][
        "workflow_digest"]


def test_a_workflow_without_a_file_records_its_ir_digest(store: Store) -> None:
    workflow = compile_workflow(load_yaml_text(SMALL_YAML))
    run = Client(store=store).run(run_workflow(workflow, store=store).run_id)
    assert run["code_version"]["workflow_digest"] == run["ir_digest"] == workflow.ir.digest()
    # the test's working folder is a fresh tmp_path, not a git work tree
    assert run["code_version"]["commit"] is None and run["code_version"]["dirty"] is None


def test_a_python_workflow_records_the_file_it_was_declared_in(store: Store) -> None:
    with Workflow("declared-here") as wf:
        ops.source.synthetic(periods=50, seed=1)
    run = Client(store=store).run(run_workflow(wf, store=store).run_id)
    assert run["code_version"]["workflow_digest"] == _sha256(Path(__file__))


def test_tracked_runs_record_the_current_folders_git_state(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _repo(tmp_path / "repo", {"train.py": "print(1)\n"})
    monkeypatch.chdir(repo)
    client = Client(store=store)
    with client.start_run("by-hand") as run:
        run.log_metric("loss", 0.5)
    recorded = client.run(run.id)["code_version"]
    assert recorded["commit"] == _git(repo, "rev-parse", "HEAD")
    assert recorded["dirty"] is False and recorded["workflow_digest"] is None


# -- model versions -------------------------------------------------------------------------
def test_registered_versions_carry_their_runs_code_version(any_store: Store,
                                                             tmp_path: Path) -> None:
    from tests.registry.test_register_op import FLOW

    repo = _repo(tmp_path / "repo", {"flow.yaml": FLOW})
    (repo / "flow.yaml").write_text(FLOW + "# uncommitted\n")
    result = run_workflow(repo / "flow.yaml", store=any_store)
    version = ModelRegistry(any_store).resolve("sensors")
    run = Client(store=any_store).run(result.run_id)
    assert version.code_version.to_json() == run["code_version"]
    assert version.code_version.commit == _git(repo, "rev-parse", "HEAD")
    assert version.code_version.dirty is True
    assert version.to_json()["code_version"]["workflow_digest"] == _sha256(repo / "flow.yaml")


def test_a_version_registered_outside_a_run_records_the_current_folder(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from amml.ops.models.forecaster import Forecaster

    repo = _repo(tmp_path / "repo", {"a.txt": "a"})
    monkeypatch.chdir(repo)
    registry = ModelRegistry(store)
    version = registry.register("m", Forecaster("naive", 24, 6))
    assert version.code_version == CodeVersion(None, _git(repo, "rev-parse", "HEAD"), False,
                                               amml.__version__)
    assert registry.get("m", 1).code_version == version.code_version


def test_run_code_version_lookup_is_exact(store: Store) -> None:
    store.metadata.create_run(run_id="abc123", workflow="w",
                              code_version=CodeVersion("d" * 64, "c" * 40, False, "9"))
    assert store.metadata.code_version("abc123") == CodeVersion("d" * 64, "c" * 40, False, "9")
    assert store.metadata.code_version("abc") is None  # a prefix is not a run


def test_json_round_trip() -> None:
    version = CodeVersion("d" * 64, None, None, "0.1.0")
    assert CodeVersion.from_json(json.loads(json.dumps(version.to_json()))) == version
    assert CodeVersion.from_json(None) == CodeVersion()
