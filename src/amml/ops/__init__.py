"""The op layer: the op contract, the registry and the built-in ops.

Registered ops are reachable as attributes: ``ops.source.csv(path=...)`` records a step inside
``with Workflow(...)`` (see :mod:`amml.ops.namespace`).

``register`` is both the class decorator that registers an op and, called with step inputs,
the ``register`` op that puts a model into the model registry::

    registered = ops.register(model, evaluation["metrics"], name="oil", aliases=["challenger"])
"""

from typing import Any

from amml.lang.builder import active_workflow
from amml.lang.spec import Input
from amml.ops.base import MetricPoint, Op, OpConfig, StepContext
from amml.ops.function import FunctionOp, op
from amml.ops.namespace import OpNamespace
from amml.ops.registry import REGISTRY, OpRegistry
from amml.ops.registry import register as _register_class

_root = OpNamespace()


def register(*args: Any, **kwargs: Any) -> Any:
    """``@register`` on an :class:`Op` subclass registers the op (and returns the class).

    Called with step inputs it is the ``register`` op (see :mod:`amml.ops.models.register`):
    ``ops.register(model, metrics, scaler, data, name="oil", aliases=["challenger"])``. Here
    ``name`` is the model's registry name; the step is named after the variable as usual.
    """
    if len(args) == 1 and not kwargs and isinstance(args[0], type) and issubclass(args[0], Op):
        return _register_class(args[0])
    op_cls = REGISTRY.get("register")
    workflow = active_workflow()
    if workflow is not None:  # depth 2: the location is the caller's line, not this one
        return workflow.add_step(op_cls, args, kwargs, depth=2)
    inputs = dict(zip(op_cls.inputs, args, strict=False))
    inputs.update({k: v for k, v in kwargs.items() if k in op_cls.inputs})
    step = op_cls(**{k: v for k, v in kwargs.items() if k not in op_cls.inputs})
    return step.normalize_outputs(step.run(StepContext(step_name="register"), **inputs))["out"]


def __getattr__(name: str) -> Any:
    if name.startswith("_"):
        raise AttributeError(name)
    return getattr(_root, name)


__all__ = [
    "REGISTRY",
    "FunctionOp",
    "Input",
    "MetricPoint",
    "Op",
    "OpConfig",
    "OpNamespace",
    "OpRegistry",
    "StepContext",
    "op",
    "register",
]
