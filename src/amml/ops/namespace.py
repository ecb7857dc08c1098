"""``amml.ops``: attribute access to registered ops for the Python front-end.

``ops.source.csv(path=...)`` looks up the op ``source.csv``; inside ``with Workflow(...)`` the
call records a step and returns a :class:`~amml.lang.builder.StepRef`. Outside a workflow it
runs the op at once on the given values, which is handy in a notebook.
"""

from __future__ import annotations

from typing import Any

from amml._exceptions import OpNotFoundError
from amml.lang.builder import active_workflow
from amml.lang.params import did_you_mean
from amml.ops.base import StepContext
from amml.ops.registry import REGISTRY


class OpNamespace:
    def __init__(self, prefix: str = "") -> None:
        self._prefix = prefix

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        name = f"{self._prefix}.{attr}" if self._prefix else attr
        op_cls = REGISTRY.find(name)
        has_children = any(n.startswith(name + ".") for n in REGISTRY.names())
        if op_cls is None and not has_children:
            hint = did_you_mean(name, REGISTRY.names())
            raise OpNotFoundError(f"unknown op '{name}'" + (f"; {hint}" if hint else ""))
        return OpCaller(name, op_cls)

    def __dir__(self) -> list[str]:
        depth = self._prefix.count(".") + 1 if self._prefix else 0
        start = self._prefix + "." if self._prefix else ""
        return sorted({n.split(".")[depth] for n in REGISTRY.names() if n.startswith(start)})

    def __call__(self, op_name: str, *args: Any, **kwargs: Any) -> Any:
        """``ops("source.csv", path=...)``: call an op by its full name."""
        return OpCaller(op_name, REGISTRY.get(op_name))(*args, **kwargs)


class OpCaller(OpNamespace):
    def __init__(self, name: str, op_cls: Any) -> None:
        super().__init__(name)
        self._op_cls = op_cls

    def __call__(self, *args: Any, name: str | None = None, **kwargs: Any) -> Any:
        if self._op_cls is None:
            raise OpNotFoundError(f"'{self._prefix}' is a group of ops, not an op: "
                                  f"try one of {', '.join(dir(self))}")
        workflow = active_workflow()
        if workflow is not None:
            return workflow.add_step(self._op_cls, args, kwargs, name=name)
        inputs = dict(zip(self._op_cls.inputs, args, strict=False))
        config = {k: v for k, v in kwargs.items() if k not in self._op_cls.inputs}
        inputs.update({k: v for k, v in kwargs.items() if k in self._op_cls.inputs})
        op = self._op_cls(**config)
        outputs = op.normalize_outputs(op.run(StepContext(step_name=self._prefix), **inputs))
        return next(iter(outputs.values())) if len(outputs) == 1 else outputs

    def __repr__(self) -> str:
        return f"<amml op '{self._prefix}'>"



