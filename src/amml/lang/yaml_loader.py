"""The YAML front-end: one document per workflow, compiled to :class:`WorkflowIR`.

.. code-block:: yaml

    name: sensor-anomalies
    params: {periods: 2000}
    steps:
      raw:
        op: source.synthetic
        with: {periods: "${params.periods}"}
      clean:
        op: preprocess
        inputs: {table: raw}
        with: {fill: linear, scale: zscore}

Every problem is reported with file, line and column; all structural problems of a document
are collected before raising, so a user fixes them in one pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from amml._exceptions import ValidationIssue, WorkflowError, WorkflowValidationError
from amml.lang.ir import IR_VERSION, STEP_NAME_RE, LoadedWorkflow, SourceMap, StepIR, WorkflowIR
from amml.lang.params import PARAM_NAME, did_you_mean
from amml.lang.resources import parse_resources
from amml.lang.triggers import TriggerIR, normalise
from amml.lang.yaml_limits import (
    DocumentLimits,
    DocumentProblem,
    LimitedLoader,
    check_expanded,
)

TOP_LEVEL_KEYS = ("amml", "name", "description", "params", "imports", "steps", "triggers")
STEP_KEYS = ("op", "with", "inputs", "resources")


def load_yaml_file(path: str | Path, limits: DocumentLimits | None = None) -> LoadedWorkflow:
    path = Path(path)
    limits = limits or DocumentLimits.from_env()
    try:
        size = path.stat().st_size
        if size > limits.max_bytes:  # refused before reading: the file may be huge
            raise _too_big(size, str(path), limits)
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkflowError(f"workflow file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkflowError(f"cannot read workflow file {path}: {exc}") from None
    return load_yaml_text(text, filename=str(path), limits=limits)


def _too_big(size: int, filename: str, limits: DocumentLimits) -> WorkflowValidationError:
    return WorkflowValidationError([ValidationIssue(
        f"the document is {size:,} bytes, over the limit of {limits.max_bytes:,}", filename,
        hint=limits.hint("max_bytes"))])


def load_yaml_text(text: str, filename: str = "<string>",
                   limits: DocumentLimits | None = None) -> LoadedWorkflow:
    """Parse and check one document; the ``AMML_MAX_WORKFLOW_*`` limits apply unless given."""
    limits = limits or DocumentLimits.from_env()
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_bytes:
        raise _too_big(size, filename, limits)
    source = SourceMap(file=filename)
    issues: list[ValidationIssue] = []

    def issue(path: tuple[Any, ...], message: str, hint: str | None = None) -> None:
        line, column = source.locate(path)
        step = path[1] if len(path) >= 2 and path[0] == "steps" else None
        field_path = path[2:] if step is not None else path
        field = ".".join(str(p) for p in field_path) or None
        issues.append(
            ValidationIssue(message, filename, line, column, step=step, field=field, hint=hint)
        )

    try:
        # One parse: compose (depth and aliases checked on the way), measure the expanded
        # graph, then construct from the same nodes.
        data: Any = None
        loader = LimitedLoader(text, limits)
        try:
            root = loader.get_single_node()
            if root is not None:
                check_expanded(root, limits)
                _record_positions(root, (), source, issue)
                data = loader.construct_document(root)
        finally:
            loader.dispose()
    except DocumentProblem as problem:
        line, column = _position(problem.mark)
        raise WorkflowValidationError(
            [ValidationIssue(problem.message, filename, line, column, hint=problem.hint)]
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = _position(mark)
        message = f"YAML syntax error: {exc.problem or exc}"
        if exc.context:
            message += f" ({exc.context})"
        hint = "YAML forbids tab characters for indentation" if "\\t" in str(exc) else None
        issue_ = ValidationIssue(message, filename, line, column, hint=hint)
        raise WorkflowValidationError([issue_]) from None
    except yaml.YAMLError as exc:
        raise WorkflowValidationError([ValidationIssue(f"YAML error: {exc}", filename)]) from None

    if root is None:
        raise WorkflowValidationError(
            [ValidationIssue("the workflow document is empty", filename, 1, 1,
                             hint="a workflow needs at least 'name:' and 'steps:'")]
        )
    if issues:  # duplicate keys: the parsed data silently lost one of them
        raise WorkflowValidationError(issues)

    ir = _build_ir(data, issue)
    if issues or ir is None:
        raise WorkflowValidationError(issues)
    return LoadedWorkflow(ir=ir, source=source)


def _position(mark: yaml.Mark | None) -> tuple[int | None, int | None]:
    return (mark.line + 1, mark.column + 1) if mark else (None, None)


def _record_positions(node: yaml.Node, path: tuple[Any, ...], source: SourceMap, issue) -> None:
    source.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            child = (*path, key)
            position = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in seen:
                first = source.positions.get(child)
                source.positions[child] = position
                where = f" (first at line {first[0]})" if first else ""
                issue(child, f"duplicate key '{key}'{where}", "each key may appear once")
                continue
            seen.add(key)
            source.positions[child] = position
            _record_positions(value_node, child, source, issue)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_positions(item, (*path, index), source, issue)


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


def _build_ir(data: Any, issue) -> WorkflowIR | None:
    if not isinstance(data, dict):
        issue((), f"a workflow document must be a mapping, got {_type_name(data)}",
              "start the document with 'name:' and 'steps:'")
        return None
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            hint = did_you_mean(key, TOP_LEVEL_KEYS) or f"allowed keys: {', '.join(TOP_LEVEL_KEYS)}"
            issue((key,), f"unknown top-level key '{key}'", hint)

    version = data.get("amml", IR_VERSION)
    if version != IR_VERSION:
        issue(("amml",), f"unsupported workflow format version {version!r}; expected {IR_VERSION}")
    name = data.get("name")
    if "name" not in data:
        issue((), "missing required key 'name'", "add 'name: my-workflow' at the top")
    elif not isinstance(name, str) or not name.strip():
        issue(("name",), f"'name' must be a non-empty string, got {_type_name(name)}")
    description = data.get("description", "")
    if not isinstance(description, str):
        issue(("description",), f"'description' must be a string, got {_type_name(description)}")

    params = data.get("params") or {}
    if not isinstance(params, dict):
        issue(("params",), f"'params' must be a mapping of name to default value, "
              f"got {_type_name(params)}")
        params = {}
    for key in params:
        if not isinstance(key, str) or not PARAM_NAME.match(key):
            issue(("params", key), f"invalid parameter name '{key}'",
                  "parameter names are letters, digits and '_', not starting with a digit")

    imports = data.get("imports") or []
    if not isinstance(imports, list) or not all(isinstance(i, str) for i in imports):
        issue(("imports",), "'imports' must be a list of module names or .py paths")
        imports = []

    steps_data = data.get("steps")
    steps: dict[str, StepIR] = {}
    if "steps" not in data:
        issue((), "missing required key 'steps'", "add a 'steps:' mapping of step name to step")
    elif not isinstance(steps_data, dict):
        hint = ("write steps as a mapping: 'steps:\\n  load:\\n    op: source.csv'"
                if isinstance(steps_data, list) else None)
        issue(("steps",), f"'steps' must be a mapping of step name to step, "
              f"got {_type_name(steps_data)}", hint)
    elif not steps_data:
        issue(("steps",), "'steps' is empty", "a workflow needs at least one step")
    else:
        for step_name, step_data in steps_data.items():
            step = _build_step(step_name, step_data, issue)
            if step is not None:
                steps[str(step_name)] = step
    triggers = _build_triggers(data.get("triggers"), issue) if "triggers" in data else []
    if not isinstance(name, str) or not steps:
        return None
    try:
        return WorkflowIR(amml=IR_VERSION, name=name, description=description or "",
                          params=params, imports=imports, steps=steps, triggers=triggers)
    except Exception as exc:  # structure was checked above; this is a safety net
        issue((), f"invalid workflow: {exc}")
        return None


def _build_triggers(data: Any, issue) -> list[TriggerIR]:
    """``triggers:``: a list of one-key mappings; each problem names its item and field."""
    if data is None:
        return []
    if not isinstance(data, list):
        issue(("triggers",), f"'triggers' must be a list such as "
              f"[{{cron: '0 * * * *'}}, {{drift: my-model}}], got {_type_name(data)}",
              "write each trigger as a list item: '- cron: \"0 * * * *\"'")
        return []
    found: list[TriggerIR] = []
    for index, item in enumerate(data):
        kind, fields, problems = normalise(item)
        for path, message, hint in problems:
            issue(("triggers", index, *path), message, hint)
        if kind is not None and fields is not None and not problems:
            found.append(TriggerIR(kind=kind, with_=fields))
    return found


def _build_step(name: Any, data: Any, issue) -> StepIR | None:
    path = ("steps", name)
    ok = True
    if not isinstance(name, str) or not STEP_NAME_RE.match(name):
        issue(path, f"invalid step name '{name}'",
              "step names are letters, digits, '_' and '-', starting with a letter or '_'")
        ok = False
    if not isinstance(data, dict):
        issue(path, f"a step must be a mapping with 'op', 'with' and 'inputs', "
              f"got {_type_name(data)}")
        return None
    for key in data:
        if key not in STEP_KEYS:
            hint = did_you_mean(key, STEP_KEYS) or f"allowed keys: {', '.join(STEP_KEYS)}"
            issue((*path, key), f"unknown key '{key}' in step", hint)
            ok = False
    op = data.get("op")
    if "op" not in data:
        issue(path, "missing required key 'op'", "name the op to run, e.g. 'op: source.csv'")
        ok = False
    elif not isinstance(op, str) or not op:
        issue((*path, "op"), f"'op' must be an op name, got {_type_name(op)}")
        ok = False
    config = data.get("with") or {}
    if not isinstance(config, dict):
        issue((*path, "with"), f"'with' must be a mapping of field to value, "
              f"got {_type_name(config)}")
        ok = False
    inputs = data.get("inputs") or {}
    if not isinstance(inputs, dict):
        hint = "write inputs as 'inputs: {table: other_step}'" if isinstance(inputs, str | list) \
            else None
        issue((*path, "inputs"), f"'inputs' must be a mapping of input name to step, "
              f"got {_type_name(inputs)}", hint)
        ok = False
    else:
        for port, ref in inputs.items():
            refs = ref if isinstance(ref, list) else [ref]
            if not refs or not all(isinstance(r, str) and r for r in refs):
                issue((*path, "inputs", port), f"input '{port}' must name a step as "
                      f"'step' or 'step.output', got {_type_name(ref)}")
                ok = False
    resources = data.get("resources") or {}
    if not isinstance(resources, dict):
        issue((*path, "resources"), f"'resources' must be a mapping such as "
              f"{{memory: 4GB, gpu: 1}}, got {_type_name(resources)}")
        ok = False
    else:
        try:
            parse_resources(resources)
        except ValueError as exc:
            issue((*path, "resources"), str(exc))
            ok = False
    if not ok:
        return None
    return StepIR(op=op, with_=config, inputs={str(k): v for k, v in inputs.items()},
                  resources={str(k): v for k, v in resources.items()})
