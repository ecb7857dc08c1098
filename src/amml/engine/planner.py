"""Turn a validated workflow into a plan: steps in dependency order with their partial keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amml.engine.fingerprint import code_digest, partial_key
from amml.lang.params import PLACEHOLDER
from amml.lang.resources import parse_resources
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
    #: path fields whose value is a whole parameter (field -> parameter), for messages
    param_fields: Mapping[str, str] = field(default_factory=dict)
    #: what the step needs of its worker (memory in bytes, gpu, cpu), for cluster executors
    resources: Mapping[str, float | int] = field(default_factory=dict)


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


def _paths(workflow: ValidatedWorkflow, name: str, op: Any,
           config: Any) -> tuple[Any, dict[str, str]]:
    """The step's config with its path fields made absolute against the workflow file's
    folder (before the key is computed: the key covers the file read, not the spelling),
    and which of them a parameter gave whole."""
    from amml.ops.paths import resolve_path_fields

    kinds = getattr(op, "path_fields", None) or {}
    if not kinds:
        return config, {}
    # the file that declared the workflow (YAML, or the .py a Workflow was built in); one
    # built where no file is (a REPL, a notebook cell, exec'd text): the current folder
    source = workflow.source_file
    base = Path(source).resolve().parent if source and Path(source).is_file() else Path.cwd()
    raw = workflow.ir.steps[name].with_ if name in workflow.ir.steps else {}
    params: dict[str, str] = {}
    for key in kinds:
        whole = PLACEHOLDER.fullmatch(raw[key].strip()) if isinstance(raw.get(key), str) else None
        if whole:
            params[key] = whole.group(1)
    # a value typed on the command line (-p csv=data/x.csv) is the current folder's, as any
    # command's argument is; one written in the workflow is the workflow's
    typed = {key for key, param in params.items() if param in workflow.overrides}
    resolved = resolve_path_fields({k: v for k, v in kinds.items() if k not in typed},
                                   config.model_dump(), base)
    resolved = resolve_path_fields({k: v for k, v in kinds.items() if k in typed},
                                   resolved, Path.cwd())
    return config.model_copy(update=resolved), params


def make_plan(workflow: ValidatedWorkflow) -> Plan:
    steps: dict[str, PlannedStep] = {}
    downstream: dict[str, list[str]] = {name: [] for name in workflow.order}
    for name in workflow.order:
        step = workflow.steps[name]
        op = step.op
        step_config, param_fields = _paths(workflow, name, op, step.config)
        config = step_config.model_dump(mode="json")
        target = op.fingerprint_target() if hasattr(op, "fingerprint_target") else op
        code = code_digest(target, getattr(op, "depends_on", ()), _references(op, step_config))
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
            param_fields=param_fields,
            resources=parse_resources(workflow.ir.steps[name].resources)
            if name in workflow.ir.steps else {},
        )
        for up in step.upstream:
            downstream[up].append(name)
    return Plan(workflow, steps, workflow.order,
                {k: tuple(v) for k, v in downstream.items()})
