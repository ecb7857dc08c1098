"""Check a workflow against the ops it uses, before anything runs.

Catches unknown ops, unknown or missing inputs, references to unknown steps or outputs, type
mismatches between an output and an input, cycles, bad parameters and bad op configuration.
Every problem is collected and reported with file, line, step and field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from amml._exceptions import ValidationIssue, WorkflowValidationError
from amml._types import is_compatible
from amml.lang.ir import LoadedWorkflow, StepIR, WorkflowIR
from amml.lang.params import (
    ParamProblem,
    coerce_override,
    did_you_mean,
    references,
    substitute,
)
from amml.lang.spec import OpCatalog, OpSpec
from amml.lang.triggers import check as check_trigger
from amml.lang.yaml_limits import INT_MAX, INT_MIN

InputBinding = tuple[str, str]  # (step, output)


@dataclass(frozen=True)
class ResolvedStep:
    """A step ready to plan: its op, validated config and resolved input bindings."""

    name: str
    op: OpSpec
    config: BaseModel
    inputs: Mapping[str, InputBinding | tuple[InputBinding, ...]]
    upstream: frozenset[str]


@dataclass(frozen=True)
class ValidatedWorkflow:
    """A workflow that passed every check: normalized IR, resolved params, steps in run order."""

    ir: WorkflowIR
    params: Mapping[str, Any]
    steps: Mapping[str, ResolvedStep]
    order: tuple[str, ...]
    source_file: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)


def validate(
    loaded: LoadedWorkflow,
    catalog: OpCatalog,
    overrides: Mapping[str, Any] | None = None,
) -> ValidatedWorkflow:
    """Validate ``loaded`` against ``catalog``; raise :class:`WorkflowValidationError` if bad.

    ``overrides`` maps parameter names to values (already parsed, e.g. from ``--param``).
    """
    ir, source = loaded.ir, loaded.source
    issues: list[ValidationIssue] = []

    def issue(path: tuple[Any, ...], message: str, hint: str | None = None,
              step: str | None = None, field_name: str | None = None) -> None:
        line, column = source.locate(path)
        issues.append(ValidationIssue(message, source.file, line, column, step=step,
                                      field=field_name, hint=hint))

    _check_integers([(("params",), ir.params, None)]
                    + [(("steps", name, "with"), step.with_, name)
                       for name, step in ir.steps.items()], issue)
    if issues:  # before anything formats such a number (repr of 10**5000 raises)
        raise WorkflowValidationError(issues)
    params = _resolve_params(ir, overrides or {}, issue)
    found = len(issues)
    _check_integers([(("params",), params, None)], issue)
    if len(issues) > found:  # an override out of range ("-p seed=99999999999999999999")
        raise WorkflowValidationError(issues)

    normalized: dict[str, StepIR] = {}
    resolved: dict[str, ResolvedStep] = {}
    specs: dict[str, OpSpec] = {}
    for name, step in ir.steps.items():
        spec = catalog.find(step.op)
        if spec is None:
            hint = did_you_mean(step.op, catalog.names()) or "run 'amml ops' to list the ops"
            issue(("steps", name, "op"), f"unknown op '{step.op}'", hint, name, "op")
            continue
        specs[name] = spec

    for name, step in ir.steps.items():
        spec = specs.get(name)
        if spec is None:
            continue
        inputs, qualified = _check_inputs(name, step, spec, ir, specs, issue)
        config = _check_config(name, step, spec, params, issue)
        normalized[name] = StepIR(op=step.op, with_=step.with_, inputs=qualified,
                                  resources=step.resources)
        if config is not None and inputs is not None:
            upstream = frozenset(up for up, _ in _all_bindings(inputs))
            resolved[name] = ResolvedStep(name, spec, config, inputs, upstream)

    order = _check_cycles(ir, issue)
    _check_triggers(ir, issue)
    if issues:
        issues.sort(key=lambda i: (i.line is None, i.line or 0, i.column or 0))
        raise WorkflowValidationError(issues)
    final_ir = WorkflowIR(amml=ir.amml, name=ir.name, description=ir.description,
                          params=ir.params, imports=ir.imports, steps=normalized,
                          triggers=ir.triggers)
    return ValidatedWorkflow(final_ir, params, resolved, tuple(order), source.file,
                             dict(overrides or {}))


def _check_triggers(ir: WorkflowIR, issue) -> None:
    """Each trigger's fields (again: a Python workflow did not pass the YAML loader) and the
    step a ``data`` trigger watches, which must be a source of this workflow."""
    for index, trigger in enumerate(ir.triggers):
        for path, message, hint in check_trigger(trigger.kind, dict(trigger.with_)):
            where = ("triggers", index, *path)
            issue(where, message, hint, field_name=".".join(map(str, where)))
        step = trigger.with_.get("step") if trigger.kind == "data" else None
        if not isinstance(step, str):
            continue
        where = ("triggers", index, "data", "step")
        field_name = ".".join(map(str, where))
        if step not in ir.steps:
            hint = did_you_mean(step, ir.steps) or f"steps: {', '.join(ir.steps)}"
            issue(where, f"data trigger watches unknown step '{step}'", hint,
                  field_name=field_name)
        elif not ir.steps[step].op.startswith("source."):
            issue(where, f"data trigger watches step '{step}' (op '{ir.steps[step].op}'), "
                  "which is not a source", "name a step whose op is a source.* op",
                  field_name=field_name)


def _check_integers(roots: list[tuple[tuple[Any, ...], Any, str | None]], issue) -> None:
    """Integers beyond 64 bits: the YAML loader refuses them, a Python workflow or an override
    can hold them (``10**5000``), and past 4,300 digits Python cannot even print one.
    ``roots``: (path, value, step name or None) of each part to search."""
    for root_path, root, step in roots:
        pending: list[tuple[tuple[Any, ...], Any]] = [(root_path, root)]
        while pending:  # iterative: a deep value must not overflow the stack here either
            path, value = pending.pop()
            if isinstance(value, dict):
                pending.extend(((*path, k), v) for k, v in value.items())
            elif isinstance(value, list | tuple):
                pending.extend(((*path, i), v) for i, v in enumerate(value))
            elif (isinstance(value, int) and not isinstance(value, bool)
                  and not INT_MIN <= value <= INT_MAX):
                where = ".".join(str(p) for p in path[2 if step else 0:])
                issue(path, f"integer with {value.bit_length()} bits is out of range: integers "
                      f"must fit in 64 bits", "pass it as a string or a float", step, where)


def _all_bindings(inputs: Mapping[str, Any]) -> list[InputBinding]:
    found: list[InputBinding] = []
    for value in inputs.values():
        if value and isinstance(value[0], tuple):
            found.extend(value)
        elif value:
            found.append(value)
    return found


def _resolve_params(ir: WorkflowIR, overrides: Mapping[str, Any], issue) -> dict[str, Any]:
    params = dict(ir.params)
    for name, value in overrides.items():
        raw = None
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], str):
            value, raw = value  # (parsed, raw text) from the command line
        if name not in ir.params:
            known = ", ".join(sorted(ir.params)) or "none declared"
            hint = did_you_mean(name, ir.params) or f"known parameters: {known}"
            issue(("params",), f"--param '{name}' is not a parameter of this workflow", hint,
                  field_name=f"params.{name}")
            continue
        try:
            params[name] = coerce_override(name, ir.params[name], value, raw)
        except ParamProblem as problem:
            issue(("params", name), str(problem), problem.hint, field_name=f"params.{name}")
    for name, value in params.items():
        if references(value):
            issue(("params", name), f"parameter '{name}' refers to another parameter",
                  "parameter defaults must be plain values", field_name=f"params.{name}")
    return params


def _parse_ref(ref: str) -> tuple[str, str | None]:
    step, _, output = ref.partition(".")
    return step, (output or None)


def _check_inputs(name: str, step: StepIR, spec: OpSpec, ir: WorkflowIR,
                  specs: dict[str, OpSpec], issue):
    ok = True
    bindings: dict[str, Any] = {}
    qualified: dict[str, str | list[str]] = {}
    for port, refs in step.inputs.items():
        path = ("steps", name, "inputs", port)
        port_spec = spec.inputs.get(port)
        if port_spec is None:
            known = ", ".join(spec.inputs) or "none"
            hint = did_you_mean(port, spec.inputs) or f"op '{spec.name}' takes inputs: {known}"
            issue(path, f"op '{spec.name}' has no input '{port}'", hint, name, f"inputs.{port}")
            ok = False
            continue
        if isinstance(refs, list) and not port_spec.many:
            issue(path, f"input '{port}' takes one step, got a list of {len(refs)}",
                  None, name, f"inputs.{port}")
            ok = False
            continue
        ref_list = refs if isinstance(refs, list) else [refs]
        port_bindings: list[tuple[str, str]] = []
        for index, ref in enumerate(ref_list):
            ref_path = (*path, index) if isinstance(refs, list) else path
            up, output = _parse_ref(ref)
            if up not in ir.steps:
                hint = did_you_mean(up, ir.steps) or f"steps: {', '.join(ir.steps)}"
                issue(ref_path, f"input '{port}' refers to unknown step '{up}'", hint, name,
                      f"inputs.{port}")
                ok = False
                continue
            if up == name:
                issue(ref_path, f"step '{name}' uses its own output as input '{port}'",
                      "a step cannot depend on itself", name, f"inputs.{port}")
                ok = False
                continue
            up_spec = specs.get(up)
            if up_spec is None:
                ok = False
                continue
            if output is None:
                output = next(iter(up_spec.outputs))
            elif output not in up_spec.outputs:
                known = ", ".join(up_spec.outputs)
                hint = did_you_mean(output, up_spec.outputs) or f"outputs of '{up}': {known}"
                issue(ref_path, f"step '{up}' (op '{up_spec.name}') has no output '{output}'",
                      hint, name, f"inputs.{port}")
                ok = False
                continue
            produced = up_spec.outputs[output]
            if not is_compatible(produced, port_spec.type):
                issue(ref_path, f"type mismatch: input '{port}' of op '{spec.name}' expects "
                      f"{port_spec.type}, but '{up}.{output}' is {produced}",
                      _type_hint(port_spec.type, up, up_spec), name, f"inputs.{port}")
                ok = False
                continue
            port_bindings.append((up, output))
        qualified[port] = ([f"{u}.{o}" for u, o in port_bindings] if isinstance(refs, list)
                           else (f"{port_bindings[0][0]}.{port_bindings[0][1]}"
                                 if port_bindings else refs))
        bindings[port] = tuple(port_bindings) if port_spec.many else (
            port_bindings[0] if port_bindings else None)
    for port, port_spec in spec.inputs.items():
        if port_spec.required and port not in step.inputs:
            issue(("steps", name), f"missing required input '{port}' ({port_spec.type}) "
                  f"of op '{spec.name}'", f"add 'inputs: {{{port}: <step>}}'", name,
                  f"inputs.{port}")
            ok = False
    return (bindings if ok else None), qualified


def _type_hint(expected: str, up: str, up_spec: OpSpec) -> str | None:
    matching = [o for o, t in up_spec.outputs.items() if is_compatible(t, expected)]
    if matching:
        return f"use '{up}.{matching[0]}'"
    return f"connect a step that produces a {expected}"


_QUOTED = re.compile(r"'([^']*)'")


def _check_config(name: str, step: StepIR, spec: OpSpec, params: dict[str, Any], issue):
    ok = True

    def on_problem(path: tuple[Any, ...], problem: ParamProblem) -> None:
        nonlocal ok
        ok = False
        field_name = "with." + ".".join(str(p) for p in path)
        issue(("steps", name, "with", *path), str(problem), problem.hint, name, field_name)

    values = substitute(dict(step.with_), params, on_problem)
    if not ok:
        return None
    try:
        return spec.Config.model_validate(values)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            field_name = ".".join(("with", *map(str, loc)))
            message, hint = _describe(error, spec)
            issue(("steps", name, "with", *loc), message, hint, name, field_name)
        return None


def _describe(error: dict[str, Any], spec: OpSpec) -> tuple[str, str | None]:
    kind = error["type"]
    got = error.get("input")
    loc = error["loc"]
    field_name = str(loc[-1]) if loc else ""
    fields = spec.Config.model_fields
    if kind == "extra_forbidden":
        hint = did_you_mean(field_name, fields) or (
            f"op '{spec.name}' accepts: {', '.join(fields) or 'no configuration'}")
        return f"op '{spec.name}' has no configuration field '{field_name}'", hint
    if kind == "missing":
        info = fields.get(field_name)
        expected = _annotation_name(info.annotation) if info else "a value"
        return f"missing required field '{field_name}' (expected {expected})", \
            f"add '{field_name}: ...' under 'with:'"
    if kind in ("literal_error", "enum"):
        choices = _QUOTED.findall(str(error.get("ctx", {}).get("expected", "")))
        hint = did_you_mean(got, choices) if isinstance(got, str) else None
        return (f"expected one of {', '.join(repr(c) for c in choices)}, got {got!r}", hint)
    message = error["msg"]
    if kind == "value_error" and "error" in error.get("ctx", {}):
        message = str(error["ctx"]["error"])  # the validator's own words, not "Value error, ..."
    if "got " in message or isinstance(got, dict):
        return message, None  # it says what it got already, or got a whole section
    return f"{message}, got {got!r}", None


def _annotation_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _check_cycles(ir: WorkflowIR, issue) -> list[str]:
    """Topological order (Kahn, stable by declaration); report each cycle once."""
    deps: dict[str, list[str]] = {}
    for name, step in ir.steps.items():
        ups = []
        for refs in step.inputs.values():
            for ref in refs if isinstance(refs, list) else [refs]:
                up = _parse_ref(ref)[0]
                if up in ir.steps and up != name:
                    ups.append(up)
        deps[name] = ups
    order: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done
    reported: set[frozenset[str]] = set()

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for up in deps[node]:
            if state.get(up) == 1:
                cycle = [*stack[stack.index(up):], up]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    issue(("steps", up, "inputs"), "cycle: " + " -> ".join(reversed(cycle)),
                          "a workflow must be acyclic: remove one of these inputs", up, "inputs")
            elif state.get(up) is None:
                visit(up, stack)
        stack.pop()
        state[node] = 2
        order.append(node)

    for name in ir.steps:
        if state.get(name) is None:
            visit(name, [])
    return order
