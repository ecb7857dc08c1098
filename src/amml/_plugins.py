"""One plugin path for everything AMML looks up by name: ops, detectors, model kinds, executors.

A :class:`PluginRegistry` is filled in a fixed order, once, the first time anyone looks in it
(or registers into it):

1. **built-ins**: the modules named by the registry (their definitions register themselves);
2. **entry points** of the registry's group (``amml.ops``, ``amml.detectors``, ``amml.models``,
   ``amml.executors``), from installed third-party packages;
3. whatever is registered afterwards: a workflow's ``imports``, ``@amml.op`` in a user's file.

A second definition under a taken name is an error that names both definitions, unless it is
registered with ``override=True`` (or comes from the same place, as when a module is imported
again). Loading is all or nothing: a failing built-in leaves the registry unloaded, never half
loaded, and a failing entry point is recorded in ``plugin_errors`` without stopping the rest.

>>> registry = PluginRegistry("greeter", group="amml.examples-none", name_of=lambda f: f.__name__)
>>> def hello(): ...
>>> registry.register(hello) is hello
True
>>> registry.names()
['hello']
>>> def other(): ...
>>> other.__name__ = "hello"
>>> registry.register(other)
Traceback (most recent call last):
...
amml._exceptions.PluginClashError: greeter 'hello' is defined twice: ...
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import ModuleType
from typing import Any, Generic, TypeVar

from amml._exceptions import PluginClashError, PluginNotFoundError

T = TypeVar("T")


def plugin_classes(obj: object, base: type, is_plugin: Callable[[type], bool] = lambda c: True,
                   *, also: Callable[[ModuleType], list[Any]] = lambda m: [],
                   error: Callable[[object], Exception] | None = None) -> list[Any]:
    """The plugins an entry point (or a built-in module) provides: a ``base`` subclass
    itself; a module's own subclasses passing ``is_plugin`` plus what ``also`` finds there,
    and those of a package's imported submodules; or the plugins of each item of a list."""
    if isinstance(obj, type) and issubclass(obj, base):
        return [obj]
    if isinstance(obj, ModuleType):
        found = [member for _, member in inspect.getmembers(obj, inspect.isclass)
                 if issubclass(member, base) and member.__module__ == obj.__name__
                 and is_plugin(member)] + also(obj)
        if hasattr(obj, "__path__"):  # a package: the plugins of its imported modules too
            for _, module in inspect.getmembers(obj, inspect.ismodule):
                if module.__name__.startswith(obj.__name__ + "."):
                    found += plugin_classes(module, base, is_plugin, also=also, error=error)
        return found
    if isinstance(obj, list | tuple):
        return [cls for item in obj
                for cls in plugin_classes(item, base, is_plugin, also=also, error=error)]
    raise (error(obj) if error else TypeError(
        f"entry point object {obj!r} is not a {base.__name__} class or module"))


def _target(obj: Any) -> Any:
    """The definition behind a wrapper: a decorated function, a function op's function."""
    for attribute in ("__wrapped__", "func", "code_object"):
        inner = getattr(obj, attribute, None)
        if inner is not None and callable(inner):
            return inner
    return obj


def describe(obj: Any) -> str:
    """``module:qualname (file:line)`` of a definition, for messages that name it."""
    target = _target(obj)
    module = getattr(target, "__module__", None) or type(target).__module__
    qualname = getattr(target, "__qualname__", None) or type(target).__qualname__
    where = ""
    try:
        file = inspect.getsourcefile(target)
        line = inspect.getsourcelines(target)[1]
        where = f" ({file}:{line})"
    except (OSError, TypeError):
        pass
    return f"{module}:{qualname}{where}"


def _module_of(obj: Any) -> str:
    return getattr(_target(obj), "__module__", None) or ""


def _origin(obj: Any) -> tuple[str, str]:
    """Where a definition lives; the same file and name may register again (re-import)."""
    target = _target(obj)
    try:
        where = inspect.getfile(target)
    except (TypeError, OSError):
        where = getattr(target, "__module__", "")
    return where, getattr(target, "__qualname__", repr(target))


class PluginRegistry(Generic[T]):
    """Named plugins of one kind, loaded built-ins first, then entry points, then the rest.

    ``name_of`` reads a plugin's name; ``builtins`` are module names imported on first use
    (their definitions register themselves, or ``collect`` finds them); ``catalog`` maps a
    built-in's name to its module, so that finding one imports one module; ``collect`` turns an
    entry point's object (a module, a class, a list) into plugins; ``origin`` tells whether two
    definitions are really one (re-imported).
    """

    def __init__(self, kind: str, *, group: str, name_of: Callable[[T], str],
                 builtins: Iterable[str] = (),
                 catalog: Mapping[str, str] | None = None,
                 collect: Callable[[Any], Iterable[T]] | None = None,
                 origin: Callable[[T], Any] = _origin) -> None:
        self.kind, self.group = kind, group
        self._name_of, self._origin = name_of, origin
        self._builtins = tuple(builtins)
        self._catalog = dict(catalog or {})
        self._collect = collect or (lambda obj: [obj])
        self._items: dict[str, T] = {}
        self._lock = threading.RLock()
        self._state = "unloaded"  # -> "loading" -> "loaded"
        self.plugin_errors: dict[str, str] = {}

    # ------------------------------------------------------------------ registering
    def register(self, item: T, *, override: bool = False) -> T:
        """Add ``item`` under its name. A clash names both definitions unless ``override``."""
        if not _module_of(item).startswith("amml."):
            # a plugin or user definition: built-ins first, so a clash is caught here, by
            # name, instead of half-loading the built-ins later
            self._ensure_loaded()
        name = self._name_of(item)
        with self._lock:
            existing = self._items.get(name)
            if (existing is not None and existing is not item and not override
                    and self._origin(existing) != self._origin(item)):
                raise PluginClashError(
                    f"{self.kind} '{name}' is defined twice: {describe(existing)} and "
                    f"{describe(item)}; rename one, or register the second with override=True")
            self._items[name] = item
        return item

    def unregister(self, name: str) -> None:
        with self._lock:
            self._items.pop(name, None)

    # ------------------------------------------------------------------ loading
    def _ensure_loaded(self) -> None:
        if self._state == "loaded":
            return
        with self._lock:
            if self._state != "unloaded":  # loaded, or loading in this thread (re-entrant)
                return
            self._state = "loading"
            before = dict(self._items)
            try:
                for module_name in self._builtins:
                    module = importlib.import_module(module_name)
                    for item in self._collect(module):
                        self.register(item)
            except BaseException:
                self._items, self._state = before, "unloaded"
                raise
            self._load_entry_points()
            self._state = "loaded"

    def _load_entry_points(self) -> None:
        for entry in importlib.metadata.entry_points(group=self.group):
            try:
                for item in self._collect(entry.load()):
                    self.register(item)
            except Exception as exc:  # a broken plugin must not break every workflow
                self.plugin_errors[entry.name] = f"{type(exc).__name__}: {exc}"

    # ------------------------------------------------------------------ looking up
    def find(self, name: str) -> T | None:
        if self._state != "loaded" and name in self._catalog:
            # a built-in by name: import its one module, not every built-in and plugin; a
            # plugin of the same name would lose to it anyway (built-ins come first)
            for item in self._collect(importlib.import_module(self._catalog[name])):
                self.register(item)
            if name in self._items:
                return self._items[name]
        self._ensure_loaded()
        return self._items.get(name)

    def get(self, name: str) -> T:
        item = self.find(name)
        if item is None:
            known = ", ".join(self.names()) or "none"
            raise PluginNotFoundError(f"unknown {self.kind} '{name}' (known: {known})")
        return item

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        self._ensure_loaded()
        return sorted(self._items.items())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.find(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())
