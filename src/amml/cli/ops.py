"""``amml ops``: the registered ops as a compact list; ``amml ops NAME`` describes one.

The description is read from the op itself: its docstring, its declared inputs and outputs,
and its pydantic ``Config`` (each field's type, default, constraints and description, with
nested models such as ``detect``'s ``threshold`` expanded as ``threshold.kind`` and so on),
so it cannot drift from what validation accepts.
"""

from __future__ import annotations

import inspect
import json
from typing import Annotated, Any

import typer

from amml.cli._options import JsonOption

#: pydantic metadata attribute -> how the constraint reads
_CONSTRAINTS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="),
                ("multiple_of", "multiple of"), ("min_length", "min length"),
                ("max_length", "max length"), ("pattern", "matches"))


def attach(main: typer.Typer) -> None:
    main.command("ops")(list_ops)


def _type_name(annotation: Any) -> str:
    """``int``, ``str | None``, ``list[str]``, ``Literal['a', 'b']``: as a user writes it."""
    from typing import Literal, get_args, get_origin

    if get_origin(annotation) is Literal:  # the choices are what a user needs to know
        return " | ".join(repr(choice) for choice in get_args(annotation))
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
        return annotation.__name__
    text = str(annotation)
    for noise in ("typing.", "collections.abc.", "NoneType"):
        text = text.replace(noise, "None" if noise == "NoneType" else "")
    return text


def _default(field: Any) -> Any:
    from pydantic_core import PydanticUndefined

    if field.default_factory is not None:
        try:
            value = field.default_factory()
        except TypeError:  # a factory that wants the validated data: no static default
            return "(computed)"
        return value.model_dump() if hasattr(value, "model_dump") else value
    if field.default is PydanticUndefined:
        return "(required)"
    return field.default


def _constraints(field: Any) -> list[str]:
    found = []
    for meta in field.metadata:
        for attribute, label in _CONSTRAINTS:
            value = getattr(meta, attribute, None)
            if value is not None:
                found.append(f"{label} {value}")
    return found


def _nested_model(annotation: Any) -> type | None:
    from pydantic import BaseModel

    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) \
        else None


def _fields(model: type, prefix: str = "") -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        nested = _nested_model(field.annotation)
        default = _default(field)
        rows.append({"name": prefix + name, "type": _type_name(field.annotation),
                     "default": None if nested else default,
                     "required": field.is_required(), "nested": nested is not None,
                     "constraints": _constraints(field),
                     "description": field.description
                     or (inspect.getdoc(nested) if nested else None) or ""})
        if nested is not None:
            rows.extend(_fields(nested, f"{prefix}{name}."))
    return rows


def describe(op_cls: Any) -> dict[str, Any]:
    """Everything ``amml ops NAME`` prints, as JSON-ready data."""
    return {"name": op_cls.name, "version": op_cls.version,
            "description": inspect.getdoc(op_cls) or "",
            "inputs": [{"name": k, "type": v.type, "required": v.required}
                       for k, v in op_cls.inputs.items()],
            "outputs": [{"name": k, "type": v,
                         "optional": k in getattr(op_cls, "optional_outputs", ())}
                        for k, v in op_cls.outputs.items()],
            "incremental": bool(getattr(op_cls, "incremental", False)),
            "config": _fields(op_cls.Config)}


def _show(op_cls: Any, json_output: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    from amml.cli.main import out

    info = describe(op_cls)
    if json_output:
        out.print_json(json.dumps(info, default=str))
        return
    out.print(f"[bold]{escape(info['name'])}[/] (version {escape(info['version'])})"
              + (" · incremental" if info["incremental"] else ""))
    if info["description"]:
        out.print(info["description"], markup=False, highlight=False)
    ports = ", ".join(f"{p['name']}: {p['type']}" + ("" if p["required"] else " (optional)")
                      for p in info["inputs"]) or "none"
    out.print(f"inputs:  {ports}", markup=False, highlight=False)
    out.print("outputs: " + ", ".join(f"{p['name']}: {p['type']}"
                                      + (" (in some runs only)" if p["optional"] else "")
                                      for p in info["outputs"]),
              markup=False, highlight=False)
    if not info["config"]:
        out.print("config:  none")
        return
    table = Table(title="config", title_justify="left")
    for column in ("field", "type", "default", "constraints", "description"):
        table.add_column(column, overflow="fold", no_wrap=column == "field")
    for row in info["config"]:
        # a nested model's own row has no default of its own: its fields' rows follow
        default = "" if row["nested"] else json.dumps(row["default"], default=str)
        # field text is ours but types print "Literal['a']" and defaults "[...]": no markup
        table.add_row(*(escape(text) for text in (row["name"], row["type"], default,
                                                  ", ".join(row["constraints"]),
                                                  row["description"])))
    out.print(table)


def list_ops(
    name: Annotated[str | None, typer.Argument(
        help="An op to describe in full (fields' types, defaults and descriptions).")] = None,
    json_output: JsonOption = False,
) -> None:
    """List the registered ops; 'amml ops NAME' describes one op in full."""
    from rich.markup import escape
    from rich.table import Table

    from amml.cli.main import _fail, err, out
    from amml.lang.params import did_you_mean
    from amml.ops.registry import REGISTRY

    if name is not None:
        if name not in REGISTRY.names():
            hint = did_you_mean(name, REGISTRY.names())
            raise _fail(f"unknown op '{name}'" + (f"; {hint}" if hint else "")
                        + " ('amml ops' lists them)", 2)
        _show(REGISTRY.get(name), json_output)
        return
    rows = []
    for op_name in REGISTRY.names():
        op_cls = REGISTRY.get(op_name)
        rows.append({"name": op_name, "version": op_cls.version,
                     "inputs": {k: v.type + ("" if v.required else "?")
                                for k, v in op_cls.inputs.items()},
                     "outputs": dict(op_cls.outputs),
                     "config": list(op_cls.Config.model_fields)})
    if json_output:
        out.print_json(json.dumps(rows))
        return
    table = Table(caption="'amml ops NAME' shows an op's fields with types, defaults and "
                          "descriptions")
    for column in ("op", "inputs", "outputs", "config"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], ", ".join(f"{k}: {v}" for k, v in row["inputs"].items()),
                      ", ".join(f"{k}: {v}" for k, v in row["outputs"].items()),
                      ", ".join(row["config"]))
    out.print(table)
    for plugin, problem in REGISTRY.plugin_errors.items():
        err.print(f"[yellow]plugin '{escape(plugin)}' failed to load:[/] {escape(str(problem))}")
