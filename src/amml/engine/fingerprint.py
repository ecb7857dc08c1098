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
import importlib.metadata
import importlib.util
import inspect
import json
import os
import platform
import re
import sys
import threading
import time
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from amml._lazy import LazyModule


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha256(data).hexdigest()


def canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"cannot fingerprint {type(value).__name__}")


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


# ---------------------------------------------------------------------------- modules
#: Modules imported from a file by path (a workflow's ``imports: [ops.py]``) get this prefix
#: and a name that depends on where the file is; the digest names them by file name instead.
USER_MODULE_PREFIX = "amml_user_"
#: The project itself is always fingerprinted by source, even when installed.
PROJECT_PACKAGES = frozenset({"amml"})

_IMPORT = re.compile(
    r"^[ \t]*(?:from[ \t]+(?P<base>\.*[\w.]*)[ \t]+import[ \t]+(?P<names>\([^)]*\)|[^#\n]*)"
    r"|import[ \t]+(?P<modules>[^#\n]*))", re.MULTILINE)


def _imports_in(text: str) -> list[tuple[str, int, tuple[str, ...]]]:
    """``(module, level, names)`` of every import statement in ``text`` (nested ones too).

    A textual scan rather than ``ast``: three times faster, and a false positive (an import in
    a docstring) only adds a dependency, it never hides one.
    """
    found: list[tuple[str, int, tuple[str, ...]]] = []
    for match in _IMPORT.finditer(text):
        if match.group("modules") is not None:
            for part in match.group("modules").split(","):
                name = part.split(" as ")[0].strip()
                if name and all(p.isidentifier() for p in name.split(".")):
                    found.append((name, 0, ()))
            continue
        base = match.group("base")
        level = len(base) - len(base.lstrip("."))
        names = tuple(n.split(" as ")[0].strip() for n in
                      match.group("names").strip("()\\ \t").replace("\n", " ").split(","))
        found.append((base.lstrip("."), level, tuple(n for n in names if n.isidentifier())))
    return found


_stdlib = frozenset(sys.stdlib_module_names) | frozenset(sys.builtin_module_names)
_PYTHON = f"python=={platform.python_version()}"


class _Files:
    """Per-file sha256 and imports, recomputed only when the file's mtime or size changes."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[tuple[int, int], str, list]] = {}
        self._lock = threading.Lock()

    def stat(self, path: str) -> tuple[int, int]:
        try:
            info = os.stat(path)
        except OSError:
            return (-1, -1)
        return (info.st_mtime_ns, info.st_size)

    def fresh(self, path: str, stamp: tuple[int, int]) -> bool:
        """Whether ``stamp`` still describes the file. A file changed within the last two
        seconds is never trusted by its stamp: a second edit of the same size could keep
        the same mtime on a coarse clock (git calls these entries "racy")."""
        return self.stat(path) == stamp and time.time_ns() - stamp[0] > RACY_NS

    def read(self, path: str) -> tuple[tuple[int, int], str, list]:
        stamp = self.stat(path)
        entry = self._entries.get(path)
        if entry is not None and self.fresh(path, entry[0]):
            return entry
        try:
            data = Path(path).read_bytes()
        except OSError:
            data = b""
        imports = (_imports_in(data.decode("utf-8", "replace")) if path.endswith(".py")
                   else [])
        entry = (stamp, sha256_hex(data), imports)
        with self._lock:
            self._entries[path] = entry
        return entry


_FILES = _Files()
RACY_NS = 2_000_000_000


@functools.cache
def _distribution_of(top: str) -> str | None:
    """``name==version`` of the installed distribution providing top-level module ``top``,
    or None: then it is the user's project (a plain folder on ``sys.path``, or an editable
    install, whose code does not sit beside its ``.dist-info``).

    Only the folder holding ``top`` is searched (``packages_distributions`` reads every
    distribution's file list, half a second at start-up).
    """
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.origin and spec.has_location:
        origin = Path(spec.origin)
        folder = origin.parent.parent if origin.name.startswith("__init__.") else origin.parent
    elif spec.submodule_search_locations:  # a namespace package
        folder = Path(next(iter(spec.submodule_search_locations))).parent
    else:
        return None
    # most distributions are named like their module: try that one before reading them all
    guess = [d for d in importlib.metadata.distributions(name=top, path=[str(folder)])
             if _provides(d, top)]
    found = [d for d in guess or _folder_index(str(folder)).get(top, []) if _installed(d)]
    return ",".join(sorted({f"{d.metadata['Name']}=={d.version}" for d in found})) or None


def _installed(dist: importlib.metadata.Distribution) -> bool:
    """False for an ``.egg-info`` beside a source tree (a development install: the user's
    own code, fingerprinted by source); pip installs ``.dist-info``."""
    return not str(getattr(dist, "_path", "")).endswith(".egg-info")


@functools.cache
def _folder_index(folder: str) -> dict[str, list[importlib.metadata.Distribution]]:
    """Top-level module -> the distributions in ``folder`` providing it (read once)."""
    index: dict[str, list[importlib.metadata.Distribution]] = {}
    for dist in importlib.metadata.distributions(path=[folder]):
        listed = dist.read_text("top_level.txt")
        if listed is not None:
            tops = set(listed.split())
        else:
            tops = {line.split(",")[0].split("/")[0].split(".")[0]
                    for line in (dist.read_text("RECORD") or "").splitlines()}
        for name in tops:
            index.setdefault(name, []).append(dist)
    return index


def _provides(dist: importlib.metadata.Distribution, top: str) -> bool:
    listed = dist.read_text("top_level.txt")
    if listed is not None:
        return top in listed.split()
    record = "\n" + (dist.read_text("RECORD") or "")
    return any(f"\n{top}{end}" in record for end in ("/", ".py,", "."))


def clear_caches() -> None:
    """Forget which distributions are installed (after installing or upgrading one)."""
    _distribution_of.cache_clear()
    _folder_index.cache_clear()
    _CODE_CACHE.clear()
    importlib.invalidate_caches()


def _kind(module: str) -> tuple[str, str]:
    """``("lib", "name==version")`` for libraries, ``("source", "")`` for the project."""
    top = module.partition(".")[0]
    if module.startswith(USER_MODULE_PREFIX):
        return "source", ""
    if top in PROJECT_PACKAGES:
        return "source", ""
    if top in _stdlib:
        return "lib", _PYTHON
    dist = _distribution_of(top)
    if dist is not None:
        return "lib", dist
    return "source", ""


def _module_file(name: str) -> str | None:
    """The file of module ``name`` without importing it (its loaded file when loaded)."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        return getattr(loaded, "__file__", None)
    top, _, rest = name.partition(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if not rest:
        return spec.origin if spec.has_location else None
    folders = list(spec.submodule_search_locations or [])
    parts = rest.split(".")
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        found = None
        for folder in folders:
            package = Path(folder, part)
            if (package / "__init__.py").is_file():
                found = package / "__init__.py"
                folders = [str(package)]
                break
            if last and Path(folder, part + ".py").is_file():
                found = Path(folder, part + ".py")
                break
            if package.is_dir() and not last:  # a namespace package
                found, folders = package, [str(package)]
                break
        if found is None:
            return None
        if last:
            return str(found) if found.is_file() else None
    return None


def _identity(module: str, path: str | None) -> str:
    if module.startswith(USER_MODULE_PREFIX) and path:
        return "file:" + Path(path).name
    return module


def _resolve(module: str, level: int, importer: str, importer_is_package: bool) -> str:
    if not level:
        return module
    package = importer if importer_is_package else importer.rpartition(".")[0]
    for _ in range(level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{module}" if module else package


def _import_targets(imports: Iterable[tuple[str, int, tuple[str, ...]]], importer: str,
                    importer_is_package: bool) -> set[str]:
    """Module names an import list reaches (``from pkg import sub`` reaches ``pkg.sub``)."""
    targets: set[str] = set()
    for module, level, names in imports:
        base = _resolve(module, level, importer, importer_is_package)
        if not base:
            continue
        if not names:
            targets.add(base)
            continue
        plain = False
        for name in names:
            if name != "*" and _kind(base)[0] == "source" and _module_file(f"{base}.{name}"):
                targets.add(f"{base}.{name}")
            else:
                plain = True
        if plain:
            targets.add(base)
    return targets


def _package_modules(name: str) -> list[str]:
    """A package and every module under it (for ``depends_on``); a module is just itself."""
    path = _module_file(name)
    if path is None or Path(path).name != "__init__.py":
        return [name]
    root = Path(path).parent
    found = [name]
    for file in sorted(root.rglob("*.py")):
        relative = file.relative_to(root).with_suffix("").parts
        if relative[-1] == "__init__":
            relative = relative[:-1]
        if relative and all(part.isidentifier() for part in relative):
            found.append(".".join((name, *relative)))
    return found


class _Closure:
    """The modules reached from a set of roots: project files by hash, libraries by version."""

    def __init__(self) -> None:
        self.files: dict[str, str] = {}        # identity -> sha256 of the file
        self.libraries: set[str] = set()       # name==version
        self.missing: set[str] = set()         # imports that resolve to nothing here
        self.stamps: dict[str, tuple[int, int]] = {}
        self.objects: dict[str, Any] = {}      # module:qualname -> source (or a constant)
        self._done: set[str] = set()

    def digest(self) -> tuple[dict[str, tuple[int, int]], str]:
        return self.stamps, sha256_hex(canonical({
            "objects": sorted(self.objects.items()), "modules": sorted(self.files.items()),
            "libraries": sorted(self.libraries), "missing": sorted(self.missing)}))

    def add(self, module: str) -> None:
        stack = [module]
        while stack:
            name = stack.pop()
            if not name or name in self._done:
                continue
            self._done.add(name)
            kind, version = _kind(name)
            if kind == "lib":
                self.libraries.add(version)
                continue
            path = _module_file(name)
            if path is None:
                self.missing.add(name)
                continue
            stamp, digest, imports = _FILES.read(path)
            self.stamps[path] = stamp
            self.files[_identity(name, path)] = digest
            is_package = Path(path).name == "__init__.py"
            stack.extend(_import_targets(imports, name, is_package))


# ---------------------------------------------------------------------------- objects
_DEFINITIONS: dict[str, tuple[tuple[int, int], dict[str, str]]] = {}


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
