"""The op layer: the op contract, the registry and the built-in ops.

Registered ops are reachable as attributes: ``ops.source.csv(path=...)`` records a step inside
``with Workflow(...)`` (see :mod:`amml.ops.namespace`).
"""

from typing import Any

from amml.lang.spec import Input
from amml.ops.base import MetricPoint, Op, OpConfig, StepContext
from amml.ops.function import FunctionOp, op
from amml.ops.namespace import OpNamespace
from amml.ops.registry import REGISTRY, OpRegistry, register

_root = OpNamespace()


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
