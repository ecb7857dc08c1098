"""Previews of stored artifacts: the first rows of a table, a PNG inline, JSON reports, the
shape of an array. Every read goes through the artifact store, so a corrupt file is refused
(and quarantined) rather than shown."""

from __future__ import annotations

import json
from typing import Any

from amml._exceptions import AMMLError
from amml.store import Store

PREVIEW_ROWS = 10
MAX_JSON_CHARS = 4000
MAX_CELL_CHARS = 80


def _cell(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_CELL_CHARS else text[:MAX_CELL_CHARS - 1] + "…"


def preview(store: Store, digest: str) -> dict[str, Any]:
    """What the page shows for one artifact: ``kind`` is table, image, json, array or
    other, with the matching fields (or ``error``)."""
    from amml.store.artifacts import ArtifactRef

    info = store.metadata.artifact_info([digest]).get(digest)
    if info is None:
        return {"kind": "other", "digest": digest, "error": "no such artifact is recorded"}
    kind, size = info["type"], int(info["size"])
    found: dict[str, Any] = {"kind": kind, "digest": digest, "size": size}
    try:
        if kind == "table":
            frame = store.artifacts.load(ArtifactRef(digest, kind, size))
            head = frame.head(PREVIEW_ROWS)
            index_name = head.index.name or ""
            found.update(kind="table", rows=len(frame), columns=[str(index_name),
                                                                 *map(str, head.columns)],
                         cells=[[_cell(i), *map(_cell, row)] for i, row in
                                zip(head.index, head.itertuples(index=False), strict=True)])
        elif kind == "image":
            found["kind"] = "image"
        elif kind == "json":
            value = json.loads(store.artifacts.get_bytes(digest))
            text = json.dumps(value, indent=2, sort_keys=True, default=str)
            found.update(kind="json", text=text[:MAX_JSON_CHARS],
                         truncated=len(text) > MAX_JSON_CHARS)
        elif kind == "array":
            array = store.artifacts.load(ArtifactRef(digest, kind, size))
            found.update(kind="array", shape=list(getattr(array, "shape", ())),
                         dtype=str(getattr(array, "dtype", "")),
                         text=_cell(array.ravel()[:20].tolist()))
        else:
            found["kind"] = "other"
    except (AMMLError, OSError, ValueError) as exc:
        found.update(kind="other", error=f"{type(exc).__name__}: {exc}")
    return found
