"""Wrap a plain Python function as an op.

Positional parameters become inputs (their annotations give the artifact type), keyword-only
parameters become the typed configuration, a parameter named ``ctx`` receives the
:class:`~amml.ops.base.StepContext`::

    @amml.op
    def add_noise(table: pd.DataFrame, *, sigma: float = 0.1, seed: int = 0) -> pd.DataFrame:
        ...

Inside ``with Workflow(...)`` a call records a step; outside it calls the function. The step
cache fingerprints the function's source and the helpers it calls in its own module.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

from pydantic import create_model

from amml._exceptions import OpError
from amml.lang.builder import active_workflow
from amml.lang.spec import Input
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import REGISTRY


def _artifact_type(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty or annotation is Any:
        return "any"
    origin = typing.get_origin(annotation) or annotation
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _artifact_type(args[0]) if len(args) == 1 else "any"
    name = getattr(origin, "__name__", "")
    module = getattr(origin, "__module__", "")
    if name == "DataFrame" and module.startswith("pandas"):
        return "table"
    if name == "ndarray" and module.startswith("numpy"):
        return "array"
    if origin in (dict, list):
        return "json"
    if origin is str:
        return "text"
    if origin is bytes:
        return "image"
    return "any"


class FunctionOp:
    """A function registered as an op; calling it records a step inside a workflow."""

    def __init__(self, func: Callable[..., Any], *, name: str | None = None,
                 outputs: dict[str, str] | None = None, version: str = "1",
                 override: bool = False) -> None:
        self.func = func
        self.op_class = _make_op_class(func, name or func.__name__, outputs, version)
        REGISTRY.register(self.op_class, override=override)
        self.__doc__ = func.__doc__
        self.__name__ = func.__name__
        self.__wrapped__ = func

    def __call__(self, *args: Any, name: str | None = None, **kwargs: Any) -> Any:
        workflow = active_workflow()
        if workflow is None:
            return self.func(*args, **kwargs)
        return workflow.add_step(self.op_class, args, kwargs, name=name)

    def __repr__(self) -> str:
        return f"<amml op '{self.op_class.name}' wrapping {self.func.__qualname__}>"


def _make_op_class(func: Callable[..., Any], op_name: str, outputs: dict[str, str] | None,
                   version: str) -> type[Op]:
    signature = inspect.signature(func)
    try:
        hints = typing.get_type_hints(func)
    except Exception:
        hints = {}
    inputs: dict[str, Input] = {}
    fields: dict[str, Any] = {}
    wants_ctx = False
    for param in signature.parameters.values():
        annotation = hints.get(param.name, param.annotation)
        if param.name == "ctx":
            wants_ctx = True
        elif param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            inputs[param.name] = Input(_artifact_type(annotation),
                                       required=param.default is param.empty)
        elif param.kind == param.KEYWORD_ONLY:
            kind = Any if annotation is param.empty else annotation
            default = ... if param.default is param.empty else param.default
            fields[param.name] = (kind, default)
        else:
            raise OpError(f"op function {func.__qualname__}: *args/**kwargs are not supported")
    config_cls = create_model(f"{func.__name__}_Config", __base__=OpConfig, **fields)
    declared = outputs or {"out": _artifact_type(hints.get("return", inspect.Parameter.empty))}

    def run(self: Op, ctx: StepContext, **values: Any) -> Any:
        kwargs = dict(self.config)
        if wants_ctx:
            kwargs["ctx"] = ctx
        return func(**values, **kwargs)

    return type(
        f"{func.__name__}_Op",
        (Op,),
        {
            "name": op_name,
            "version": version,
            "inputs": inputs,
            "outputs": declared,
            "Config": config_cls,
            "code_object": func,
            "run": run,
            "__module__": func.__module__,
            "__doc__": func.__doc__,
        },
    )


def op(func: Callable[..., Any] | None = None, *, name: str | None = None,
       outputs: dict[str, str] | None = None, version: str = "1",
       override: bool = False) -> Any:
    """Decorator: register ``func`` as an op (see the module docstring). A name that is
    already taken is an error naming both definitions, unless ``override=True``."""
    if func is None:
        return lambda f: FunctionOp(f, name=name, outputs=outputs, version=version,
                                    override=override)
    return FunctionOp(func, name=name, outputs=outputs, version=version, override=override)
