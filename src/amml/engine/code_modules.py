"""Which modules a piece of code reaches, and how each one enters a code digest.

A module of the project (AMML, a user's files, an editable install) enters by the sha256 of its
file, cached by modification time and size; the standard library and installed distributions
enter as ``name==version``. :class:`_Closure` follows imports transitively. Used by
:mod:`amml.engine.fingerprint`.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import platform
import re
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from amml.engine.hashing import canonical, sha256_hex

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


def _find_spec(top: str) -> Any:
    """``importlib.util.find_spec`` without importing anything or raising (None: unknown)."""
    try:
        return importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None


@functools.cache
def _distribution_of(top: str) -> str | None:
    """``name==version`` of the installed distribution providing top-level module ``top``,
    or None: then it is the user's project (a plain folder on ``sys.path``, or an editable
    install, whose code does not sit beside its ``.dist-info``).

    Only the folder holding ``top`` is searched (``packages_distributions`` reads every
    distribution's file list, half a second at start-up).
    """
    spec = _find_spec(top)
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


def clear_module_caches() -> None:
    """Forget which distributions are installed (after installing or upgrading one)."""
    _distribution_of.cache_clear()
    _folder_index.cache_clear()
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
    spec = _find_spec(top)
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
