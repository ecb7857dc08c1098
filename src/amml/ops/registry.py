"""Where ops are found: built-ins, third-party packages (entry-point group ``amml.ops``) and
functions wrapped with :func:`amml.op`.

A third-party package declares, in its ``pyproject.toml``::

    [project.entry-points."amml.ops"]
    my_ops = "my_package.ops"          # a module that defines Op subclasses, or
    smooth = "my_package.ops:Smooth"   # one Op subclass
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import threading
from collections.abc import Iterable
from types import ModuleType

from amml._exceptions import OpError, OpNotFoundError
from amml.lang.params import did_you_mean
from amml.ops.base import Op

ENTRY_POINT_GROUP = "amml.ops"


class OpRegistry:
    """Op classes by name. Implements the language's ``OpCatalog`` protocol."""

    def __init__(self) -> None:
        self._ops: dict[str, type[Op]] = {}
        self._loaded = False
        self._lock = threading.RLock()
        self.plugin_errors: dict[str, str] = {}

    def register(self, op_cls: type[Op], *, replace: bool = False) -> type[Op]:
        op_cls.check_declaration()
        with self._lock:
            existing = self._ops.get(op_cls.name)
            if existing is not None and existing is not op_cls and not replace:
                same_place = _origin(existing) == _origin(op_cls)
                if not same_place:  # re-importing the same module is fine
                    raise OpError(f"op '{op_cls.name}' is already registered by "
                                  f"{existing.__module__}.{existing.__qualname__}")
            self._ops[op_cls.name] = op_cls
        return op_cls

    def unregister(self, name: str) -> None:
        with self._lock:
            self._ops.pop(name, None)

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            builtin = importlib.import_module("amml.ops.builtin")
            for module in builtin.MODULES:
                self._register_object(module)
            self.load_entry_points()

    def load_entry_points(self) -> None:
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                self._register_object(entry.load())
            except Exception as exc:  # a broken plugin must not break every workflow
                self.plugin_errors[entry.name] = f"{type(exc).__name__}: {exc}"

    def _register_object(self, obj: object) -> None:
        if isinstance(obj, type) and issubclass(obj, Op):
            self.register(obj)
        elif isinstance(obj, ModuleType):
            for _, member in inspect.getmembers(obj, inspect.isclass):
                if issubclass(member, Op) and member.name and member.__module__ == obj.__name__:
                    self.register(member)
        elif isinstance(obj, list | tuple):
            for item in obj:
                self._register_object(item)
        elif hasattr(obj, "op_class"):
            self.register(obj.op_class)
        else:
            raise OpError(f"entry point object {obj!r} is not an Op class or module")

    def find(self, name: str) -> type[Op] | None:
        self._ensure_loaded()
        return self._ops.get(name)

    def get(self, name: str) -> type[Op]:
        op_cls = self.find(name)
        if op_cls is None:
            hint = did_you_mean(name, self._ops)
            raise OpNotFoundError(f"unknown op '{name}'" + (f"; {hint}" if hint else ""))
        return op_cls

    def names(self) -> Iterable[str]:
        self._ensure_loaded()
        return sorted(self._ops)

    def __contains__(self, name: str) -> bool:
        return self.find(name) is not None


def _origin(op_cls: type[Op]) -> tuple[str, str]:
    """Where an op was defined; re-executing the same file (edited) may re-register it."""
    target = op_cls.fingerprint_target()
    try:
        where = inspect.getfile(target)
    except (TypeError, OSError):
        where = op_cls.__module__
    return where, getattr(target, "__qualname__", op_cls.__qualname__)


#: The process-wide registry the CLI, the engine and the Python builder use.
REGISTRY = OpRegistry()


def register(op_cls: type[Op]) -> type[Op]:
    """Class decorator: register an :class:`Op` subclass in the global registry."""
    return REGISTRY.register(op_cls)
