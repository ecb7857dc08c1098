"""Heavy libraries imported on first use, so that ``amml --help`` and ``amml validate`` start
in a fraction of a second: an op module names ``pd`` at import time but pays for pandas only
when a step runs.

>>> from amml._lazy import LazyModule
>>> json = LazyModule("json")
>>> json.dumps([1])
'[1]'

Attribute access goes through ``importlib.import_module`` (thread-safe, a dictionary look-up
once the module is loaded); keep these proxies out of per-point hot loops (numpy stays an
ordinary import where detectors update one point at a time).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands in for a module until an attribute is first read."""

    def __init__(self, name: str) -> None:
        self.__dict__["_name"] = name
        self.__dict__["_module"] = None

    def _load(self) -> ModuleType:
        module = self.__dict__["_module"]
        if module is None:
            module = importlib.import_module(self.__dict__["_name"])
            self.__dict__["_module"] = module
        return module

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._load(), attribute)

    def __repr__(self) -> str:
        state = "loaded" if self.__dict__["_module"] is not None else "not loaded"
        return f"<lazy module {self.__dict__['_name']!r} ({state})>"


def lazy_attributes(package: str, names: Mapping[str, str]) -> Callable[[str], object]:
    """A package's ``__getattr__`` (PEP 562): each public name imported from its module on
    first use, then kept in the package (a submodule may be named as ``package.name``)."""
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> object:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        target = importlib.import_module(module)
        value = target if module == f"{package}.{name}" else getattr(target, name)
        namespace[name] = value
        return value

    return __getattr__


pandas: Any = LazyModule("pandas")
sqlalchemy: Any = LazyModule("sqlalchemy")
pyarrow: Any = LazyModule("pyarrow")
