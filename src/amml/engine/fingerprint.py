"""Fingerprints for the step cache.

A step's cache key hashes the op's name and version, its code, its resolved configuration and
the digests of its input artifacts. Values are hashed by content with
:func:`fingerprint_value` (a ``singledispatch`` function), never by identity.

An op's code digest (:func:`code_digest`) covers everything of the project that the op reaches:

* in the op's own module, the source of the op and of the functions and classes it refers to,
  transitively (so two ops in one file do not invalidate each other);
* every other module of the project those objects refer to (a global bound to a module, a
  function, a class or an instance defined there, or an ``import`` inside a function), and
  the modules *those* import, transitively, by the sha256 of their files;
* the modules and packages the op declares in ``Op.depends_on`` (plugins it looks up by name).

"The project" is AMML itself, modules that belong to no installed distribution (a user's
files, a workflow's ``imports``) and editable installs. The standard library and installed
third-party distributions (numpy, torch, a third-party op package...) enter by name and
version, never by source. No ``repr`` of an object enters a key (it may hold an address), so a
digest is the same in every process that sees the same files.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import inspect
import sys
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from amml._lazy import LazyModule
from amml.engine.code_modules import (
    _DEFINITIONS,
    _FILES,
    _Closure,
    _import_targets,
    _imports_in,
    _kind,
    _package_modules,
    clear_module_caches,
)
from amml.engine.hashing import canonical, sha256_hex


@functools.singledispatch
def fingerprint_value(value: Any) -> str:
    """Content digest of a value. Raises ``TypeError`` for what cannot be fingerprinted
    (such a value is never cached, rather than wrongly hit).

    >>> fingerprint_value({"a": 1}) == fingerprint_value({"a": 1})
    True
    """
    return sha256_hex(canonical(value))


@fingerprint_value.register
def _(value: np.ndarray) -> str:
    digest = hashlib.sha256(f"{value.dtype.str}{value.shape}".encode())
    digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def _fingerprint_frame(value: Any) -> str:
    from amml.store.artifacts.serializers import serialize

    return sha256_hex(serialize(value, "table")[1])


try:  # pandas is a dependency, but keep the dispatch table honest about what it handles
    import pandas as pd

    fingerprint_value.register(pd.DataFrame, _fingerprint_frame)
except ImportError:  # pragma: no cover
    pass


def _definitions(path: str) -> dict[str, str]:
    """Source of every class and function of a file by qualified name, parsed once per
    version of the file (``inspect.getsource`` parses the whole module for each class)."""
    stamp = _FILES.stat(path)
    cached = _DEFINITIONS.get(path)
    if cached is not None and _FILES.fresh(path, cached[0]):
        return cached[1]
    found: dict[str, str] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
        tree = ast.parse(text)
    except (OSError, SyntaxError, ValueError):
        tree, text = None, ""
    lines = text.splitlines(keepends=True)

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                qualname = prefix + child.name
                first = min([d.lineno for d in child.decorator_list] + [child.lineno])
                found.setdefault(qualname, "".join(lines[first - 1:child.end_lineno]))
                inner = qualname + (".<locals>." if not isinstance(child, ast.ClassDef)
                                    else ".")
                visit(child, inner)
            elif not isinstance(child, ast.expr):
                visit(child, prefix)

    if tree is not None:
        visit(tree, "")
    _DEFINITIONS[path] = (stamp, found)
    return found


def _source(obj: Any) -> str:
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    path = getattr(module, "__file__", None)
    qualname = getattr(obj, "__qualname__", None)
    if path and isinstance(qualname, str) and path.endswith(".py"):
        text = _definitions(path).get(qualname)
        if text is not None:
            return text
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None) if isinstance(obj, types.FunctionType) else None
        if code is not None:  # no source file (e.g. defined in a REPL): use the bytecode
            return _code_text(code)
        return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"


def _code_text(code: types.CodeType) -> str:
    """Bytecode and constants, with nested code objects expanded (their repr has an address)."""
    consts = [(_code_text(c) if isinstance(c, types.CodeType) else _literal(c))
              for c in code.co_consts]
    return code.co_code.hex() + canonical(consts)


def _literal(value: Any) -> Any:
    """A JSON form of a plain literal value, or None when it is not one (never a repr)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, tuple | list | frozenset | set):
        items = [_literal(v) for v in value]
        if any(i is None and v is not None for i, v in zip(items, value, strict=True)):
            return None
        return sorted(items, key=canonical) if isinstance(value, set | frozenset) else items
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        items = {k: _literal(v) for k, v in value.items()}
        if any(items[k] is None and v is not None for k, v in value.items()):
            return None
        return items
    return None


def _members(obj: Any) -> tuple[list[types.CodeType], list[Any]]:
    """The code objects of a function or class, and the objects a class is made of (its
    bases, nested classes, properties)."""
    if isinstance(obj, types.FunctionType):
        return [obj.__code__], []
    if not isinstance(obj, type):
        return [], []
    codes: list[types.CodeType] = []
    parts: list[Any] = [base for base in obj.__bases__ if base is not object]
    for value in vars(obj).values():
        if isinstance(value, classmethod | staticmethod):
            value = value.__func__
        if isinstance(value, property):
            parts.extend(f for f in (value.fget, value.fset) if f is not None)
        elif isinstance(value, types.FunctionType):
            codes.append(value.__code__)
        elif isinstance(value, type):
            parts.append(value)
    return codes, parts


def _names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _unwrap(target: Any) -> Any:
    """The function behind a decorator or an ``@op`` wrapper, read without ``getattr`` (an
    object may answer any attribute, as SQLAlchemy's ``func`` does)."""
    for _ in range(10):
        inner = None
        with contextlib.suppress(AttributeError):
            inner = inspect.getattr_static(target, "__wrapped__")
        if inner is None or inner is target or not callable(inner):
            return target
        target = inner
    return target


_CODE_CACHE: dict[tuple[Any, ...], tuple[dict[str, tuple[int, int]], str]] = {}


def clear_caches() -> None:
    """Forget cached file digests, distributions and code digests (files changed on disk)."""
    clear_module_caches()
    _CODE_CACHE.clear()


def code_digest(obj: Any, depends_on: Iterable[str] = (), references: Iterable[Any] = ()
                ) -> str:
    """Digest of the code ``obj`` (an op's function or class) reaches, of the modules and
    packages named in ``depends_on`` and of the objects in ``references`` (what a step's
    configuration selects, such as a detector); see the module docstring.

    Cached per object until one of the files it covers changes (checked by mtime and size).
    """
    key = (obj, tuple(sorted(depends_on)), tuple(references))
    with contextlib.suppress(TypeError):  # an unhashable object: no cache
        cached = _CODE_CACHE.get(key)
        if cached is not None and all(_FILES.fresh(p, s) for p, s in cached[0].items()):
            return cached[1]
    stamps, digest = _code_digest(obj, key[1], key[2]).digest()
    with contextlib.suppress(TypeError):
        _CODE_CACHE[key] = (stamps, digest)
    return digest


def code_dependencies(obj: Any, depends_on: Iterable[str] = (), references: Iterable[Any] = ()
                      ) -> dict[str, list[str]]:
    """What :func:`code_digest` covers: the project's modules (by name, or ``file:NAME`` for a
    file imported by path), the libraries by ``name==version``, and imports that resolve to
    nothing here. For answering "why did this step run again?"."""
    closure = _code_digest(obj, tuple(sorted(depends_on)), tuple(references))
    return {"objects": sorted(closure.objects), "modules": sorted(closure.files),
            "libraries": sorted(closure.libraries), "missing": sorted(closure.missing)}


def _code_digest(obj: Any, depends_on: tuple[str, ...], references: tuple[Any, ...]
                 ) -> _Closure:
    closure = _Closure()
    for root in (obj, *references):
        root = _unwrap(root)
        module = getattr(root, "__module__", None) or ""
        kind, version = _kind(module)
        if kind == "lib":  # a third-party op: its distribution's version stands for its code
            closure.libraries.add(version)
            closure.objects[f"{module}:{getattr(root, '__qualname__', '')}"] = ""
        else:
            _walk(root, module, closure)
        path = getattr(sys.modules.get(module), "__file__", None)
        if path:
            closure.stamps[path] = _FILES.stat(path)
    for name in depends_on:
        for member in _package_modules(name):
            closure.add(member)
    return closure


def _walk(obj: Any, module: str, closure: _Closure) -> None:
    """Source of the objects of ``module`` that ``obj`` reaches into ``closure.objects``;
    the other modules they refer to into ``closure``."""
    from amml.ops.function import FunctionOp

    seen = closure.objects
    home = sys.modules.get(module)
    home_is_package = bool(home is not None and Path(getattr(home, "__file__", "") or "").name
                           == "__init__.py")
    stack = [obj]
    while stack:
        current = stack.pop()
        key = f"{getattr(current, '__module__', '')}:{getattr(current, '__qualname__', '')}"
        if key in seen:
            continue
        source = seen[key] = _source(current)
        # imports inside functions (``from amml.ops.models import deep``)
        for target in _import_targets(_imports_in(source), module, home_is_package):
            closure.add(target)
        global_ns: Mapping[str, Any] = (
            current.__globals__ if isinstance(current, types.FunctionType)
            else vars(inspect.getmodule(current) or types.ModuleType("_")))
        codes, parts = _members(current)
        names = set().union(*(_names(code) for code in codes)) if codes else set()
        targets: list[tuple[str, Any]] = [(n, global_ns[n]) for n in sorted(names)
                                          if n in global_ns]
        targets += [("", part) for part in parts]
        for name, target in targets:
            if isinstance(target, LazyModule):  # a module imported on first use: by name
                closure.add(target.__dict__["_name"])
                continue
            if isinstance(target, FunctionOp):  # another @op function used as a helper
                target = target.func
            target = _unwrap(target)
            if isinstance(target, types.ModuleType):
                closure.add(target.__name__)
            elif isinstance(target, types.FunctionType | type):
                if getattr(target, "__module__", None) == module:
                    stack.append(target)
                else:
                    closure.add(getattr(target, "__module__", "") or "")
            elif name:
                value = _literal(target)
                if value is not None or target is None:
                    seen[f"{module}:{name}="] = value  # a constant: by value
                elif type(target).__module__ == module:  # an instance of a class here
                    stack.append(type(target))
                else:  # an instance: the module of its class (never its repr)
                    closure.add(type(target).__module__)


def partial_key(op_name: str, op_version: str, code: str, config: Mapping[str, Any]) -> str:
    """The part of a cache key known before inputs exist (used to prefetch cache entries)."""
    return sha256_hex(canonical({"op": op_name, "version": op_version, "code": code,
                                 "config": config}))


def cache_key(partial: str, inputs: Mapping[str, str | list[str]]) -> str:
    """The full cache key: the partial key plus the digests of the input artifacts."""
    return sha256_hex(canonical({"partial": partial, "inputs": inputs}))
