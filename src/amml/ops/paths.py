"""Paths in a workflow are the workflow file's: ``path: data.csv`` next to ``workflow.yaml``.

An op names its path-valued configuration fields in ``Op.path_fields`` (field -> kind):

* ``"file"``: a file path or a glob; a relative one is joined to the workflow's folder;
* ``"sqlite_url"``: a database URL; only a relative SQLite file (``sqlite:///ett.db``) changes.

The planner rewrites these fields to absolute paths before the step's cache key is computed,
so the key covers the file actually read: the same workflow run from two folders hits the
same cache entry, and two files of one relative name never share one. A workflow built in
Python without a file resolves against the current folder, as Python itself does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["resolve_path", "resolve_path_fields", "sqlite_file"]

#: ``sqlite[+driver]:///PATH[?query]``; four slashes (or a drive) make PATH absolute.
_SQLITE = re.compile(r"^(?P<scheme>sqlite(?:\+\w+)?):///(?P<path>[^?]*)(?P<query>\?.*)?$")


def resolve_path(value: str, base: Path) -> str:
    """``value`` (``~`` expanded) if absolute, else joined to ``base``; globs stay globs."""
    expanded = os.path.expanduser(value)
    if os.path.isabs(expanded):
        return expanded
    return os.path.normpath(os.path.join(base, expanded))


def sqlite_file(url: str) -> str | None:
    """The file a SQLite URL names, or None (another database, or in memory)."""
    match = _SQLITE.match(url)
    if match is None or match["path"] in ("", ":memory:"):
        return None
    return match["path"]


def _resolve_sqlite_url(url: str, base: Path) -> str:
    match = _SQLITE.match(url)
    path = sqlite_file(url)
    if match is None or path is None or os.path.isabs(os.path.expanduser(path)):
        return url
    return f"{match['scheme']}:///{resolve_path(path, base)}{match['query'] or ''}"


def resolve_path_fields(kinds: Mapping[str, str], config: Mapping[str, Any],
                        base: Path) -> dict[str, Any]:
    """``config`` with each field named in ``kinds`` made absolute against ``base``."""
    resolved = dict(config)
    for name, kind in kinds.items():
        value = resolved.get(name)
        if not isinstance(value, str) or not value:
            continue
        if kind == "file":
            resolved[name] = resolve_path(value, base)
        elif kind == "sqlite_url":
            resolved[name] = _resolve_sqlite_url(value, base)
        else:
            raise ValueError(f"unknown path kind {kind!r} for field {name!r}")
    return resolved
