"""Turn a validated workflow into a plan: steps in dependency order with their partial keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from amml.engine.fingerprint import code_digest, partial_key
from amml.lang.validate import InputBinding, ValidatedWorkflow


@dataclass(frozen=True)
class PlannedStep:
    name: str
    op_name: str
    op_version: str
    config: Mapping[str, Any]            # resolved, defaults filled, JSON-able
    inputs: Mapping[str, InputBinding | tuple[InputBinding, ...]]
    upstream: frozenset[str]
    partial_key: str
    output_types: Mapping[str, str]
    code_digest: str = ""
    op: Any = None  # the op class


@dataclass(frozen=True)
class Plan:
    workflow: ValidatedWorkflow
    steps: Mapping[str, PlannedStep]
    order: tuple[str, ...]
    downstream: Mapping[str, tuple[str, ...]]

    def descendants(self, names: set[str]) -> set[str]:
        found: set[str] = set()
        stack = list(names)
        while stack:
            for child in self.downstream.get(stack.pop(), ()):
                if child not in found:
                    found.add(child)
                    stack.append(child)
        return found


def _references(op: Any, config: Any) -> tuple[Any, ...]:
    """What the step's configuration selects whose code its key must cover (only ops that
    say so are instantiated here)."""
    from amml.ops.base import Op

    if not isinstance(op, type) or not issubclass(op, Op) or (
            op.code_references is Op.code_references):
        return ()
    return tuple(op(config).code_references())


def make_plan(workflow: ValidatedWorkflow) -> Plan:
    steps: dict[str, PlannedStep] = {}
    downstream: dict[str, list[str]] = {name: [] for name in workflow.order}
    for name in workflow.order:
        step = workflow.steps[name]
        op = step.op
        config = step.config.model_dump(mode="json")
        target = op.fingerprint_target() if hasattr(op, "fingerprint_target") else op
        code = code_digest(target, getattr(op, "depends_on", ()), _references(op, step.config))
        steps[name] = PlannedStep(
            name=name,
            op_name=op.name,
            op_version=op.version,
            config=config,
            inputs=step.inputs,
            upstream=step.upstream,
            partial_key=partial_key(op.name, op.version, code, config),
            output_types=dict(op.outputs),
            code_digest=code,
            op=op,
        )
        for up in step.upstream:
            downstream[up].append(name)
    return Plan(workflow, steps, workflow.order,
                {k: tuple(v) for k, v in downstream.items()})
