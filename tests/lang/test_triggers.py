"""``triggers:`` in both front-ends: the same IR, errors with file, line and field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from amml import ops
from amml._exceptions import WorkflowValidationError
from amml.engine.loading import compile_workflow
from amml.lang import Cron, Drift, Labels, NewData, Workflow, load_yaml_text
from amml.lang.cron import CronError, CronSchedule

YAML = """\
name: retrain
steps:
  raw:
    op: source.synthetic
    with: {periods: 50}
triggers:
  - cron: "*/30 * * * *"
  - drift: {model: oil, detector: attribution}
  - labels: {count: 20, model: oil}
  - data: raw
"""


def test_yaml_and_python_give_the_same_ir() -> None:
    from_yaml = load_yaml_text(YAML).ir
    with Workflow("retrain", triggers=[Cron("*/30 * * * *"), Drift("oil", "attribution")]) as wf:
        raw = ops.source.synthetic(periods=50)
        wf.trigger(Labels(20, model="oil"), NewData(raw))
    assert wf.to_ir().canonical_json() == from_yaml.canonical_json()
    assert [t.kind for t in from_yaml.triggers] == ["cron", "drift", "labels", "data"]
    assert from_yaml.triggers[3].with_ == {"step": "raw"}


def test_a_workflow_without_triggers_keeps_its_ir_bytes() -> None:
    text = YAML.split("triggers:")[0]
    assert "triggers" not in load_yaml_text(text).ir.canonical_json()


@pytest.mark.parametrize(("item", "line", "field", "words"), [
    ('  - cron: "61 * * * *"', 8, "triggers.1.cron.schedule", "minute: 61 is out of range"),
    ("  - labels: {count: 0}", 8, "triggers.1.labels.count", "at least 1"),
    ("  - drfit: oil", 8, "triggers.1.drfit", "unknown trigger kind 'drfit'"),
    ("  - drift: {model: oil, detectr: x}", 8, "triggers.1.drift.detectr", "unknown field"),
    ("  - {cron: '* * * * *', drift: oil}", 8, "triggers.1", "exactly one kind key"),
])
def test_a_malformed_trigger_names_file_line_and_field(item, line, field, words) -> None:
    text = YAML.split("triggers:")[0] + "triggers:\n  - drift: oil\n" + item + "\n"
    with pytest.raises(WorkflowValidationError) as caught:
        load_yaml_text(text, filename="retrain.yaml")
    [issue] = caught.value.issues
    assert (issue.file, issue.line, issue.field) == ("retrain.yaml", line, field)
    assert words in issue.message


def test_a_data_trigger_must_watch_a_source_step_of_the_workflow(tmp_path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(YAML.replace("data: raw", "data: rwa"))
    with pytest.raises(WorkflowValidationError) as caught:
        compile_workflow(path)
    [issue] = caught.value.issues
    assert issue.field == "triggers.3.data.step" and issue.line == 10
    assert "unknown step 'rwa'" in issue.message and "raw" in (issue.hint or "")


def test_python_workflows_are_validated_too() -> None:
    from amml.lang import validate
    from amml.ops.registry import REGISTRY

    with Workflow("bad", triggers=[Cron("every minute")]) as wf:
        ops.source.synthetic(periods=10)
    with pytest.raises(WorkflowValidationError) as caught:
        validate(wf.to_loaded(), REGISTRY)
    assert caught.value.issues[0].field == "triggers.0.cron.schedule"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("expression", "after", "expected"), [
    ("*/15 * * * *", "2026-01-01T10:14:59", "2026-01-01T10:15:00"),
    ("0 9 * * mon-fri", "2026-11-27T09:00:00", "2026-11-30T09:00:00"),  # Fri -> Mon
    ("30 2 1,15 * *", "2026-02-01T03:00:00", "2026-02-15T02:30:00"),
    ("0 0 13 * 5", "2026-02-01T00:00:00", "2026-02-06T00:00:00"),  # day OR weekday
    ("@monthly", "2026-12-15T00:00:00", "2027-01-01T00:00:00"),
    ("0 12 * * 7", "2026-11-29T12:00:00", "2026-12-06T12:00:00"),  # 7 is Sunday
])
def test_cron_next_times(expression, after, expected) -> None:
    found = CronSchedule.parse(expression).next_after(_at(after))
    assert found == _at(expected)


def test_a_date_that_never_comes_never_fires() -> None:
    assert CronSchedule.parse("0 0 30 2 *").next_after(_at("2026-01-01T00:00:00")) is None


@pytest.mark.parametrize("bad", ["* * * *", "*/0 * * * *", "5-1 * * * *", "* * * foo *",
                                 "@fortnightly", ""])
def test_bad_schedules_are_refused(bad) -> None:
    with pytest.raises(CronError):
        CronSchedule.parse(bad)


def test_triggers_survive_the_yaml_round_trip() -> None:
    ir = load_yaml_text(YAML).ir
    again = load_yaml_text(ir.to_yaml()).ir
    assert again.canonical_json() == ir.canonical_json()
    assert [t.key for t in again.triggers] == [t.key for t in ir.triggers]
