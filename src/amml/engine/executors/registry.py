"""Executors by name: the built-ins, then the entry-point group ``amml.executors``, then
whatever a program registers (the one plugin path of :mod:`amml._plugins`).

An executor is an :class:`~amml.engine.executors.base.Executor` subclass with a ``name``; its
constructor takes keyword options, at least ``workers`` (how many steps at once, ``None`` for
its default). A third-party package declares, in its ``pyproject.toml``::

    [project.entry-points."amml.executors"]
    dask = "amml_dask:DaskExecutor"     # one class, or a module defining several

>>> make_executor("sequential").name
'sequential'
>>> make_executor("thred")
Traceback (most recent call last):
...
amml._exceptions.PluginNotFoundError: unknown executor 'thred'; did you mean 'thread'? (known: ...)
"""

from __future__ import annotations

from typing import Any

from amml._exceptions import PluginNotFoundError
from amml._plugins import PluginRegistry, plugin_classes
from amml.engine.executors.base import Executor
from amml.lang.params import did_you_mean

ENTRY_POINT_GROUP = "amml.executors"
#: Modules defining the built-in executors (each registers its own).
BUILTIN_MODULES = ("amml.engine.executors.local", "amml.engine.executors.dask")


def _executor_classes(obj: object) -> list[type[Executor]]:
    return plugin_classes(obj, Executor, lambda cls: bool(cls.name))


#: The process-wide executor registry (the CLI's ``--executor`` reads it).
EXECUTORS: PluginRegistry[type[Executor]] = PluginRegistry(
    "executor", group=ENTRY_POINT_GROUP, name_of=lambda cls: cls.name,
    builtins=BUILTIN_MODULES, collect=_executor_classes)


def register_executor(cls: type[Executor] | None = None, *, override: bool = False) -> Any:
    """Class decorator: register an executor under its ``name``."""
    if cls is None:
        return lambda c: EXECUTORS.register(c, override=override)
    return EXECUTORS.register(cls, override=override)


def executor_names() -> list[str]:
    return EXECUTORS.names()


def make_executor(name: str, **options: Any) -> Executor:
    """A new executor by name; ``options`` go to its constructor (``workers=4``)."""
    try:
        cls = EXECUTORS.get(name)
    except PluginNotFoundError:
        known = executor_names()
        hint = did_you_mean(name, known)
        raise PluginNotFoundError(f"unknown executor '{name}'" + (f"; {hint}" if hint else "")
                                  + f" (known: {', '.join(known)})") from None
    return cls(**options)
