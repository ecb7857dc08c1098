"""Per-step resource hints: written in YAML, checked where they are written, carried to the
plan, and never part of the IR of a workflow without them nor of any cache key."""

from __future__ import annotations

from pathlib import Path

import pytest

from amml._exceptions import WorkflowValidationError
from amml.engine import compile_workflow, make_plan

FLOW = """\
name: hints
steps:
  raw: {{op: source.synthetic, with: {{periods: 50}}{hints}}}
"""


def _compile(tmp_path: Path, hints: str):
    path = tmp_path / "flow.yaml"
    path.write_text(FLOW.format(hints=hints))
    return compile_workflow(path)


def test_hints_reach_the_plan_normalized_and_leave_the_key_alone(tmp_path: Path) -> None:
    hinted = _compile(tmp_path, ", resources: {memory: 1.5GiB, gpu: 1, cpu: 2}")
    plain = _compile(tmp_path, "")
    step = make_plan(hinted).steps["raw"]
    assert step.resources == {"memory": 1610612736, "gpu": 1.0, "cpu": 2.0}
    assert step.partial_key == make_plan(plain).steps["raw"].partial_key
    assert "resources" not in plain.ir.canonical_json()  # old workflows keep their IR bytes
    assert hinted.ir.to_data()["steps"]["raw"]["resources"]["memory"] == "1.5GiB"


@pytest.mark.parametrize(("hints", "message"), [
    (", resources: {ram: 2GB}", "unknown resource 'ram'; did you mean 'memory'?"),
    (", resources: {memory: lots}", "expected a size such as 4GB or 512MiB, got 'lots'"),
    (", resources: {gpu: -1}", "resource 'gpu' must be a positive number, got -1"),
    (", resources: [gpu]", "'resources' must be a mapping"),
])
def test_a_bad_hint_is_reported_where_it_is_written(tmp_path: Path, hints: str,
                                                    message: str) -> None:
    with pytest.raises(WorkflowValidationError) as caught:
        _compile(tmp_path, hints)
    (issue,) = caught.value.issues
    assert message in issue.message
    assert issue.line == 3 and issue.file and issue.file.endswith("flow.yaml")
