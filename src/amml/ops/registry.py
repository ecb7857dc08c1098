"""Where ops are found: built-ins, third-party packages (entry-point group ``amml.ops``) and
functions wrapped with :func:`amml.op` or modules a workflow ``imports``, in that order (the
one plugin path of :mod:`amml._plugins`).

A third-party package declares, in its ``pyproject.toml``::

    [project.entry-points."amml.ops"]
    my_ops = "my_package.ops"          # a module that defines Op subclasses, or
    smooth = "my_package.ops:Smooth"   # one Op subclass

Two definitions of one op name are an error naming both, unless the second is registered
with ``override=True``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from amml._exceptions import OpError, OpNotFoundError, PluginNotFoundError
from amml._lazy import LazyModule
from amml._plugins import PluginRegistry, plugin_classes
from amml.lang.params import did_you_mean
from amml.ops import builtin
from amml.ops.base import Op

ENTRY_POINT_GROUP = "amml.ops"


def _function_ops(module: ModuleType) -> list[type[Op]]:
    """The op classes of the ``@op`` functions a module defines."""
    return [member.op_class for _, member in inspect.getmembers(module)
            if not isinstance(member, LazyModule)  # probing one would import it
            and isinstance(getattr(member, "op_class", None), type)
            and member.op_class.__module__ == module.__name__]


def op_classes(obj: object) -> list[type[Op]]:
    """The op classes an entry point (or a built-in module) provides."""
    if not isinstance(obj, type | ModuleType | list | tuple) and hasattr(obj, "op_class"):
        return [obj.op_class]  # one @op function
    return plugin_classes(obj, Op, lambda cls: bool(cls.name), also=_function_ops,
                          error=lambda o: OpError(f"entry point object {o!r} is not an Op "
                                                  "class or module"))


def _op_origin(op_cls: type[Op]) -> tuple[str, str]:
    """Where an op was defined; re-executing the same file (edited) may re-register it."""
    target = op_cls.fingerprint_target()
    try:
        where = inspect.getfile(target)
    except (TypeError, OSError):
        where = op_cls.__module__
    return where, getattr(target, "__qualname__", op_cls.__qualname__)


class OpRegistry(PluginRegistry[type[Op]]):
    """Op classes by name. Implements the language's ``OpCatalog`` protocol."""

    def __init__(self) -> None:
        super().__init__("op", group=ENTRY_POINT_GROUP, name_of=lambda cls: cls.name,
                         builtins=builtin.MODULES, catalog=builtin.CATALOG,
                         collect=op_classes,
                         origin=_op_origin)

    def register(self, op_cls: type[Op], *, override: bool = False,
                 replace: bool = False) -> type[Op]:
        op_cls.check_declaration()
        return super().register(op_cls, override=override or replace)

    def load_entry_points(self) -> None:
        self._load_entry_points()

    def get(self, name: str) -> type[Op]:
        try:
            return super().get(name)
        except PluginNotFoundError:
            hint = did_you_mean(name, self.names())
            raise OpNotFoundError(f"unknown op '{name}'" + (f"; {hint}" if hint else "")
                                  ) from None

    def names(self) -> Iterable[str]:  # type: ignore[override]
        return super().names()


#: The process-wide registry the CLI, the engine and the Python builder use.
REGISTRY = OpRegistry()


def register(op_cls: type[Op] | None = None, *, override: bool = False) -> Any:
    """Class decorator: register an :class:`Op` subclass in the global registry
    (``@register`` or ``@register(override=True)``)."""
    if op_cls is None:
        return lambda cls: REGISTRY.register(cls, override=override)
    return REGISTRY.register(op_cls, override=override)
