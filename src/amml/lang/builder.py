"""The Python front-end: declare a workflow with ordinary calls inside ``with Workflow(...)``.

    with Workflow("sensors", params={"periods": 2000}) as wf:
        raw = ops.source.synthetic(periods=wf.params.periods)
        clean = ops.preprocess(raw, fill="linear")

Steps are named after the variables they are assigned to (``raw``, ``clean``), or ``name=``.
Calls record steps; nothing runs until the workflow is run. The result is the same IR a YAML
document gives, so both forms share validation, caching and export.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from amml._exceptions import WorkflowError
from amml.lang.ir import IR_VERSION, STEP_NAME_RE, LoadedWorkflow, SourceMap, StepIR, WorkflowIR
from amml.lang.spec import OpSpec
from amml.lang.triggers import TriggerIR, TriggerLike, normalise

_active: contextvars.ContextVar[Workflow | None] = contextvars.ContextVar(
    "amml_active_workflow", default=None
)
#: Workflows declared since the last :func:`collect_declared` (how ``amml run file.py`` finds them).
_declared: list[Workflow] = []


def active_workflow() -> Workflow | None:
    """The workflow whose ``with`` block is open in this context, if any."""
    return _active.get()


def collect_declared() -> list[Workflow]:
    found = list(_declared)
    _declared.clear()
    return found


class ParamRef:
    """A reference to a workflow parameter; becomes ``${params.name}`` in the IR."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __str__(self) -> str:
        return f"${{params.{self.name}}}"

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return str(self)


class _Params:
    def __init__(self, names: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_names", dict(names))

    def __getattr__(self, name: str) -> ParamRef:
        if name.startswith("__"):
            raise AttributeError(name)
        if name not in self._names:
            known = ", ".join(sorted(self._names)) or "none"
            raise WorkflowError(f"unknown parameter '{name}' (declared: {known})")
        return ParamRef(name)

    __getitem__ = __getattr__


@dataclass(eq=False)
class _Node:
    op: OpSpec
    config: dict[str, Any]
    inputs: dict[str, StepRef | list[StepRef]]
    explicit_name: str | None
    location: tuple[str, int] | None
    inferred_name: str | None = None
    name: str = ""


@dataclass(frozen=True, eq=False)
class StepRef:
    """The output of a step; pass it to another op call to connect the two.

    ``ref["train"]`` selects a named output; ``train, test = ops.split(...)`` unpacks them.
    """

    node: _Node
    output: str | None = None
    workflow: Workflow | None = field(default=None, repr=False)

    def __getitem__(self, output: str) -> StepRef:
        if output not in self.node.op.outputs:
            known = ", ".join(self.node.op.outputs)
            raise WorkflowError(f"op '{self.node.op.name}' has no output '{output}' "
                                f"(outputs: {known})")
        return StepRef(self.node, output, self.workflow)

    def __iter__(self) -> Iterator[StepRef]:
        return (self[name] for name in self.node.op.outputs)

    def ref(self) -> str:
        return self.node.name if self.output is None else f"{self.node.name}.{self.output}"


class Workflow:
    """A workflow declared in Python. Use as a context manager, then run or export it."""

    def __init__(self, name: str, params: Mapping[str, Any] | None = None, *,
                 description: str = "", imports: list[str] | None = None,
                 triggers: Iterable[TriggerLike] = ()) -> None:
        self.name = name
        self._triggers: list[TriggerLike] = list(triggers)
        self.description = description
        self.imports = list(imports or [])
        self._params = dict(params or {})
        self.params = _Params(self._params)
        self._nodes: list[_Node] = []
        self._token: contextvars.Token | None = None
        self._frame_globals: dict[str, Any] | None = None
        self.file: str | None = None
        _declared.append(self)

    def __enter__(self) -> Workflow:
        self._token = _active.set(self)
        frame = sys._getframe(1)
        self.file = frame.f_code.co_filename
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _active.reset(self._token)
            self._token = None
        self._infer_names(sys._getframe(1).f_locals)
        if not any(exc):
            self._assign_names()

    def _infer_names(self, namespace: Mapping[str, Any]) -> None:
        """Name steps after the variables they were assigned to (``raw = ops.source...``)."""
        seen: dict[int, str] = {}
        for var, value in namespace.items():
            if (isinstance(value, StepRef) and value.output is None and value.workflow is self
                    and id(value.node) not in seen and not var.startswith("_")):
                seen[id(value.node)] = var
                if STEP_NAME_RE.match(var):
                    value.node.inferred_name = var

    def trigger(self, *triggers: TriggerLike) -> None:
        """Add triggers (:class:`~amml.lang.triggers.Cron`, ``Drift``, ``Labels``,
        ``NewData``, or the YAML form as a mapping) to the workflow."""
        self._triggers.extend(triggers)

    # -- recording -------------------------------------------------------------------------
    def add_step(self, op: OpSpec, args: tuple[Any, ...], kwargs: dict[str, Any],
                 *, name: str | None = None, depth: int = 2) -> StepRef:
        """Record a call of ``op``; positional args fill its inputs in declared order."""
        frame = sys._getframe(depth)
        location = (frame.f_code.co_filename, frame.f_lineno)
        where = f"{location[0]}:{location[1]}"
        input_names = list(op.inputs)
        if len(args) > len(input_names):
            raise WorkflowError(f"{where}: op '{op.name}' takes {len(input_names)} input(s) "
                                f"({', '.join(input_names) or 'none'}), got {len(args)}")
        inputs: dict[str, StepRef | list[StepRef]] = dict(zip(input_names, args, strict=False))
        config: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key in op.inputs:
                if key in inputs:
                    raise WorkflowError(f"{where}: input '{key}' given twice")
                inputs[key] = value
            else:
                config[key] = _to_ir_value(value, f"{where}: op '{op.name}', field '{key}'")
        for key, value in inputs.items():
            refs = value if isinstance(value, list) else [value]
            for ref in refs:
                if not isinstance(ref, StepRef):
                    raise WorkflowError(f"{where}: input '{key}' of op '{op.name}' must be the "
                                        f"result of another op call, got {type(ref).__name__}")
                if ref.workflow is not self:
                    raise WorkflowError(f"{where}: input '{key}' comes from another workflow")
        if name is not None and not STEP_NAME_RE.match(name):
            raise WorkflowError(f"{where}: invalid step name '{name}'")
        node = _Node(op, config, inputs, name, location)
        self._nodes.append(node)
        return StepRef(node, None, self)

    # -- compiling -------------------------------------------------------------------------
    def _assign_names(self) -> None:
        taken: set[str] = set()
        for node in self._nodes:
            node.name = ""
        for node in self._nodes:
            if node.explicit_name:
                if node.explicit_name in taken:
                    raise WorkflowError(f"two steps are named '{node.explicit_name}'")
                node.name = node.explicit_name
                taken.add(node.name)
        for node in self._nodes:
            if not node.name and node.inferred_name and node.inferred_name not in taken:
                node.name = node.inferred_name
                taken.add(node.name)
        for node in self._nodes:
            if not node.name:
                base = node.op.name.rsplit(".", 1)[-1].replace(".", "_")
                candidate, index = base, 2
                while candidate in taken:
                    candidate, index = f"{base}_{index}", index + 1
                node.name = candidate
                taken.add(candidate)

    def to_loaded(self) -> LoadedWorkflow:
        """The IR with a source map pointing at the lines that declared each step."""
        self._assign_names()
        steps: dict[str, StepIR] = {}
        source = SourceMap(file=self.file)
        for node in self._nodes:
            inputs: dict[str, str | list[str]] = {}
            for key, value in node.inputs.items():
                inputs[key] = [r.ref() for r in value] if isinstance(value, list) else value.ref()
            steps[node.name] = StepIR(op=node.op.name, with_=node.config, inputs=inputs)
            if node.location:
                source.positions[("steps", node.name)] = (node.location[1], None)
        params = {k: _to_ir_value(v, f"parameter '{k}'") for k, v in self._params.items()}
        triggers = [self._trigger_ir(index, t) for index, t in enumerate(self._triggers)]
        ir = WorkflowIR(amml=IR_VERSION, name=self.name, description=self.description,
                        params=params, imports=self.imports, steps=steps, triggers=triggers)
        return LoadedWorkflow(ir=ir, source=source)

    def to_ir(self) -> WorkflowIR:
        return self.to_loaded().ir

    def _trigger_ir(self, index: int, trigger: TriggerLike) -> TriggerIR:
        data = trigger if isinstance(trigger, dict) else getattr(trigger, "to_trigger", None)
        if callable(data):
            data = data()
        if not isinstance(data, dict):
            raise WorkflowError(f"workflow '{self.name}': trigger {index} must be Cron(...), "
                                f"Drift(...), Labels(...), NewData(...) or a mapping, got "
                                f"{type(trigger).__name__}")
        kind, fields, problems = normalise(_to_ir_value(data, f"trigger {index}"))
        if kind is None or fields is None:
            raise WorkflowError(f"workflow '{self.name}': trigger {index}: {problems[0][1]}")
        # field problems (a bad cron schedule) are reported by validation with the others
        return TriggerIR(kind=kind, with_=fields)


def _to_ir_value(value: Any, where: str) -> Any:
    """Plain JSON-like data for the IR: params become placeholders, paths strings."""
    if isinstance(value, ParamRef):
        return str(value)
    if isinstance(value, StepRef):
        raise WorkflowError(f"{where}: a step output cannot be a configuration value; "
                            "pass it as an input")
    if isinstance(value, PurePath | Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _to_ir_value(v, where) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_ir_value(v, where) for v in value]
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise WorkflowError(f"{where}: {type(value).__name__} is not a plain value "
                        "(use strings, numbers, booleans, lists and mappings)")
