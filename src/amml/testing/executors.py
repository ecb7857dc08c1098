"""Conformance check for executors: the same workflow gives the same artifacts on any of them.

Use it in an executor plugin's own tests::

    from amml.testing import check_executor
    check_executor(DaskExecutor(workers=2))
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from amml.engine.executors import Executor, SequentialExecutor
from amml.engine.loading import compile_workflow
from amml.engine.runner import Runner
from amml.lang.yaml_loader import load_yaml_text
from amml.store import open_store

#: A diamond (``raw`` feeds two branches that ``joined`` aligns again), a step that fails
#: (a column that does not exist) with a descendant that must be skipped, and a branch
#: independent of the failure that must still finish.
DIAMOND = """\
name: executor-check
steps:
  raw: {op: source.synthetic, with: {periods: 300, seed: 7}}
  left: {op: fill, inputs: {table: raw}, with: {method: linear}}
  right: {op: difference, inputs: {table: raw}}
  joined: {op: align, inputs: {tables: [left, right]}}
  broken: {op: select, inputs: {table: raw}, with: {columns: [no_such_column]}}
  after_broken: {op: difference, inputs: {table: broken}}
"""
EXPECTED = {"raw": "ran", "left": "ran", "right": "ran", "joined": "ran", "broken": "failed",
            "after_broken": "skipped"}


def _outcomes(executor: Executor, folder: Path) -> dict[str, tuple[str, dict[str, str]]]:
    workflow = compile_workflow(load_yaml_text(DIAMOND))
    store = open_store(folder)
    try:
        with executor:
            result = Runner(store, executor).run(workflow)
    finally:
        store.close()
    return {name: (outcome.status, {port: ref.digest for port, ref in outcome.outputs.items()})
            for name, outcome in result.steps.items()}


def check_executor(executor: Executor) -> None:
    """Raise ``AssertionError`` unless ``executor`` runs the check workflow like the
    sequential executor does: the same status and the same artifact digests per step, each
    in a fresh store. ``executor`` is shut down afterwards."""
    assert isinstance(executor, Executor), f"{executor!r} is not an amml Executor"
    with tempfile.TemporaryDirectory(prefix="amml-executor-check-") as folder:
        expected = _outcomes(SequentialExecutor(), Path(folder, "sequential"))
        got = _outcomes(executor, Path(folder, "checked"))
    statuses = {name: status for name, (status, _) in expected.items()}
    assert statuses == EXPECTED, f"the sequential reference run went wrong: {statuses}"
    for name, (status, digests) in expected.items():
        their_status, their_digests = got.get(name, ("missing", {}))
        assert their_status == status, (
            f"executor {type(executor).__name__}: step '{name}' {their_status}"
            f", expected {status}")
        assert their_digests == digests, (
            f"executor {type(executor).__name__}: step '{name}' produced "
            f"{their_digests}, the sequential executor {digests}")
