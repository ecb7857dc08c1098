"""The workflow IR: the one validated form both front-ends (Python and YAML) compile to.

The canonical form is JSON with sorted keys and no whitespace; two workflows are the same
workflow exactly when their canonical IR bytes are equal.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from amml.lang.triggers import TriggerIR

IR_VERSION = 1
STEP_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
STEP_NAME_RE = re.compile(STEP_NAME_PATTERN)

InputRefs = str | list[str]


class StepIR(BaseModel):
    """One step: an op, its configuration (``with``) and its inputs (port -> ``step[.output]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    op: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    inputs: dict[str, InputRefs] = Field(default_factory=dict)
    #: What the step needs of its worker (``memory``, ``gpu``, ``cpu``; see
    #: :mod:`amml.lang.resources`): placement only, never part of the cache key.
    resources: dict[str, Any] = Field(default_factory=dict)

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"op": self.op}
        if self.inputs:
            data["inputs"] = dict(self.inputs)
        if self.with_:
            data["with"] = dict(self.with_)
        if self.resources:  # absent when empty: workflows without hints keep their IR bytes
            data["resources"] = dict(self.resources)
        return data


class WorkflowIR(BaseModel):
    """A whole workflow: name, parameters with defaults, modules to import for ops, steps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    amml: int = IR_VERSION
    name: str
    description: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    imports: list[str] = Field(default_factory=list)
    steps: dict[str, StepIR]
    #: When ``amml agent`` runs the workflow by itself (:mod:`amml.lang.triggers`).
    triggers: list[TriggerIR] = Field(default_factory=list)

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"amml": self.amml, "name": self.name}
        if self.description:
            data["description"] = self.description
        if self.params:
            data["params"] = dict(self.params)
        if self.imports:
            data["imports"] = list(self.imports)
        data["steps"] = {name: step.to_data() for name, step in self.steps.items()}
        if self.triggers:  # absent when empty: workflows without triggers keep their IR bytes
            data["triggers"] = [trigger.to_data() for trigger in self.triggers]
        return data

    def canonical_json(self) -> str:
        return canonical_json(self.to_data())

    def digest(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_data(), sort_keys=False, allow_unicode=True, width=100)


def canonical_json(data: Any) -> str:
    """JSON with sorted keys, no whitespace, UTF-8 kept: equal data gives equal bytes.

    >>> canonical_json({"b": 1, "a": [1.5, "x"]})
    '{"a":[1.5,"x"],"b":1}'
    """
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass
class SourceMap:
    """Where each part of a workflow was written: path tuple -> (line, column), 1-based."""

    file: str | None = None
    positions: dict[tuple[Any, ...], tuple[int, int | None]] = field(default_factory=dict)

    def locate(self, path: tuple[Any, ...]) -> tuple[int | None, int | None]:
        """The position of ``path``, or of its nearest recorded ancestor."""
        probe = tuple(path)
        while True:
            if probe in self.positions:
                return self.positions[probe]
            if not probe:
                return None, None
            probe = probe[:-1]


@dataclass
class LoadedWorkflow:
    """An unvalidated IR with the source map needed to report errors where they were written."""

    ir: WorkflowIR
    source: SourceMap
