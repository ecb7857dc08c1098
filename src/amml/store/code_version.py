"""Which code produced a run: the workflow file's digest, the git commit and dirty flag, and
the AMML version.

The workflow digest is the sha256 of the workflow file's bytes (YAML or ``.py``). A workflow
with no file on disk (built in a notebook or a REPL, or handed over as an IR) gets the sha256
of its canonical IR instead, the same value as the run's ``ir_digest``: it still says exactly
which workflow ran and compares equal between such runs.

Inside a git work tree (the workflow file's folder, else the current folder) the commit of
``HEAD`` and a dirty flag are recorded, as MLflow tags its runs with
``mlflow.source.git.commit``. Dirty means uncommitted changes to tracked files (staged or
not); untracked files do not count. One ``git status`` call answers both. Without git, outside
a work tree, or when git is slow or fails, both are None: a run never fails over its code
version.

>>> version = CodeVersion("ab" * 32, "cd" * 20, True, "0.1.0")
>>> version.describe()
'commit cdcdcdcdcdcd (dirty) · workflow abababababab · amml 0.1.0'
>>> CodeVersion.from_columns(version.columns()) == version
True
>>> CodeVersion(None, None, None, "0.1.0").describe()
'not in a git work tree · amml 0.1.0'
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: Seconds one ``git status`` may take; on a slow or hung repository we record nothing.
GIT_TIMEOUT_S = 3.0

#: Variables that would point git at another repository than the folder we ask about.
_GIT_REDIRECTS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR",
                  "GIT_OBJECT_DIRECTORY", "GIT_NAMESPACE", "GIT_CEILING_DIRECTORIES")


@dataclass(frozen=True)
class CodeVersion:
    """The code behind a run (every field None when unknown)."""

    workflow_digest: str | None = None
    commit: str | None = None
    dirty: bool | None = None
    amml_version: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> CodeVersion:
        data = data or {}
        return cls(data.get("workflow_digest"), data.get("commit"), data.get("dirty"),
                   data.get("amml_version"))

    def columns(self) -> dict[str, Any]:
        """The table columns (``runs`` and ``model_versions`` share the names)."""
        return {"workflow_digest": self.workflow_digest, "code_commit": self.commit,
                "code_dirty": self.dirty, "amml_version": self.amml_version}

    @classmethod
    def from_columns(cls, row: Mapping[str, Any]) -> CodeVersion:
        dirty = row.get("code_dirty")
        return cls(row.get("workflow_digest"), row.get("code_commit"),
                   None if dirty is None else bool(dirty), row.get("amml_version"))

    def describe(self) -> str:
        """One line for people: commit (and whether dirty), workflow digest, AMML version."""
        if self == CodeVersion():  # a row from before code versions were recorded
            return "not recorded"
        if self.commit:
            git = f"commit {self.commit[:12]}" + (" (dirty)" if self.dirty else "")
        elif self.dirty is not None:  # a work tree whose branch has no commit yet
            git = "no commit yet" + (" (dirty)" if self.dirty else "")
        else:
            git = "not in a git work tree"
        workflow = f"workflow {self.workflow_digest[:12]}" if self.workflow_digest else None
        amml = f"amml {self.amml_version}" if self.amml_version else None
        return " · ".join(part for part in (git, workflow, amml) if part)


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@functools.cache  # fixed for the life of the process; the metadata lookup reads files
def amml_version() -> str | None:
    # The installed distribution's version: importing ``amml`` itself from the store layer
    # would pull every layer above it into the import graph.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("amml")
    except PackageNotFoundError:
        return None


def git_state(folder: str | Path) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the git work tree containing ``folder``; ``(None, None)``
    outside one, without git, or when git fails or takes longer than :data:`GIT_TIMEOUT_S`.

    The commit is None in a work tree with no commit yet (dirty is still answered).
    """
    env = {k: v for k, v in os.environ.items() if k not in _GIT_REDIRECTS}
    env["LC_ALL"] = "C"
    try:
        # --no-optional-locks: a status that only looks never takes index.lock, so it cannot
        # collide with a commit the user runs at the same moment.
        done = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(folder), "status", "--porcelain=v2",
             "--branch", "--untracked-files=no"],
            capture_output=True, text=True, timeout=GIT_TIMEOUT_S, env=env, check=False,
            stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):  # no git binary, a timeout, a bad folder
        return None, None
    if done.returncode != 0:  # not a work tree (or a repository git refuses to read)
        return None, None
    commit: str | None = None
    dirty = False
    for line in done.stdout.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.removeprefix("# branch.oid ").strip()
            commit = None if oid == "(initial)" else oid
        elif line and not line.startswith("#"):  # an entry: a changed tracked file
            dirty = True
    return commit, dirty


def detect(path: str | Path | None = None, *, ir_digest: str | None = None) -> CodeVersion:
    """The code version of a run of the workflow file ``path``.

    ``path`` None, or not a file on disk: the workflow digest is ``ir_digest`` and git is
    asked about the current folder. Never raises.
    """
    file: Path | None = None
    if path is not None:
        candidate = Path(path)
        try:
            file = candidate.resolve() if candidate.is_file() else None
        except OSError:
            file = None
    workflow_digest = ir_digest
    if file is not None:
        try:
            workflow_digest = file_digest(file)
        except OSError:  # vanished or unreadable since it was loaded
            workflow_digest = ir_digest
    try:
        folder = file.parent if file is not None else Path.cwd()
    except OSError:  # the current folder was deleted
        folder = None
    commit, dirty = git_state(folder) if folder is not None else (None, None)
    return CodeVersion(workflow_digest, commit, dirty, amml_version())
