"""A ``.py`` workflow imports a module beside it without ``PYTHONPATH=.``, and ``amml export``
names that module under ``imports:`` so the exported YAML validates and runs (issue 19).

Both run the real command line in fresh processes started from another folder, as a user
would: the sibling module must be found from the workflow's folder, not the current one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

AMML = [sys.executable, "-m", "amml.cli"]

HELPERS = '''\
import amml
import pandas as pd


@amml.op
def shift_up(table: pd.DataFrame, *, by: float = 1.0) -> pd.DataFrame:
    return table + by
'''

WORKFLOW = '''\
from amml import Workflow, ops

import helpers_{tag}

with Workflow("sibling-{tag}", params={{"by": 2.0}}) as wf:
    sensors = ops.source.synthetic(periods=50, seed=1)
    shifted = helpers_{tag}.shift_up(sensors, by=wf.params.by)
'''


def _project(tmp_path: Path, tag: str) -> Path:
    # a module name of its own per test: the op name stays the same, the module never clashes
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / f"helpers_{tag}.py").write_text(HELPERS)
    (folder / "workflow.py").write_text(WORKFLOW.format(tag=tag))
    return folder


def _amml(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(AMML_HOME=str(home), NO_COLOR="1", COLUMNS="200")
    return subprocess.run([*AMML, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_python_workflow_imports_a_sibling_module(tmp_path: Path) -> None:
    folder = _project(tmp_path, "run")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = _amml("run", str(folder / "workflow.py"), cwd=elsewhere, home=tmp_path / "store")
    assert done.returncode == 0, done.stdout + done.stderr
    # a worker process loads the workflow file itself and needs the folder just the same
    done = _amml("run", str(folder / "workflow.py"), "--executor", "process", "--no-cache",
                 cwd=elsewhere, home=tmp_path / "store")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "shift_up" in done.stdout + done.stderr
    # loading leaves sys.path as it found it: the folder is there only while importing
    from amml.engine.loading import compile_workflow

    before = list(sys.path)
    compile_workflow(folder / "workflow.py")
    assert sys.path == before


def test_export_keeps_the_imports_a_python_workflow_needs(tmp_path: Path) -> None:
    folder = _project(tmp_path, "export")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    home = tmp_path / "store"
    done = _amml("export", str(folder / "workflow.py"), "--allow-imports", cwd=elsewhere,
                 home=home)
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["imports"] == ["helpers_export"]
    exported = folder / "exported.yaml"
    exported.write_text(done.stdout)

    checked = _amml("validate", str(exported), "--allow-imports", cwd=elsewhere, home=home)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for executor in ("sequential", "process"):
        ran = _amml("run", str(exported), "--executor", executor, "--no-cache", cwd=elsewhere,
                    home=home)
        assert ran.returncode == 0, ran.stdout + ran.stderr
    # the canonical IR of the Python workflow and of its exported YAML are the same
    as_json = [_amml("export", str(path), "--allow-imports", "--format", "json",
                     cwd=elsewhere, home=home).stdout
               for path in (folder / "workflow.py", exported)]
    assert as_json[0] == as_json[1]
