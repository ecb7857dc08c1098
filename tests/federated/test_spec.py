"""The federation plan: its file, its checks, its defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from amml._exceptions import ConfigurationError
from amml.federated.spec import FederationSpec, default_plan_path, load_plan
from tests.federated.conftest import write_federation


def test_plan_file_resolves_the_workflow_and_client_paths(tmp_path: Path) -> None:
    workflow, plan_file = write_federation(tmp_path)
    assert default_plan_path(workflow) == plan_file
    plan = load_plan(plan_file, workflow)
    assert plan.workflow == str(workflow.resolve())
    assert [c.params["path"] for c in plan.clients] == [
        str(tmp_path / "alpha.csv"), str(tmp_path / "beta.csv")]
    assert plan.strategy.name == "fedavg" and plan.model_name == "toy"
    assert plan.ledger_name == "federated-toy"
    assert FederationSpec.from_json(plan.to_json()) == plan


@pytest.mark.parametrize(("change", "message"), [
    ("strategy: fedsgd", "strategy"),
    ("min_clients: 5", "min_clients is 5 but only 2 clients"),
    ("rounds: 0", "rounds"),
    ("schedule: {}", "cron' or 'min_new_rows"),
    ("bogus: 1", "bogus"),
])
def test_plan_mistakes_are_reported_with_the_field(tmp_path: Path, change: str,
                                                   message: str) -> None:
    workflow, plan_file = write_federation(tmp_path)
    plan_file.write_text(plan_file.read_text() + f"  {change}\n")
    with pytest.raises(ConfigurationError, match=message):
        load_plan(plan_file, workflow)


def test_a_missing_plan_names_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"no federation plan at .*nowhere\.yaml"):
        load_plan(tmp_path / "nowhere.yaml")


def test_availability_windows_are_checked_when_the_plan_loads() -> None:
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        FederationSpec.model_validate({"name": "x", "model": {"target": "y"},
                                       "min_clients": 1,
                                       "clients": [{"name": "a", "available": "soon"}]})
