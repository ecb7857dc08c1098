"""Lineage queries: which step produced an artifact, from which inputs, and who used it.

Answers are plain nested dicts (JSON-ready); the CLI draws them as trees.
"""

from __future__ import annotations

import re
from typing import Any

from amml._exceptions import ArtifactNotFoundError, StoreError
from amml.store.metadata import MetadataStore

HEX = re.compile(r"^[0-9a-f]{6,64}$")


def resolve_artifact(meta: MetadataStore, prefix: str) -> dict[str, Any]:
    found = meta.find_artifacts(prefix)
    if not found:
        raise ArtifactNotFoundError(f"no artifact with digest starting '{prefix}'")
    if len(found) > 1:
        raise ArtifactNotFoundError(f"digest prefix '{prefix}' is ambiguous; give more of it")
    return found[0]


def _producer(edges: list[dict[str, Any]]) -> dict[str, Any] | None:
    outs = [e for e in edges if e["direction"] == "out"]
    ran = [e for e in outs if e["status"] == "ran"]
    chosen = (ran or outs or [None])[0]
    return chosen


def artifact_lineage(meta: MetadataStore, digest: str, depth: int = 25) -> dict[str, Any]:
    """The artifact, the step that first produced it (recursively up), and its consumers."""
    info = meta.artifact_info([digest]).get(digest, {"digest": digest})
    edges = meta.edges_for_artifacts([digest])
    node: dict[str, Any] = {"artifact": _artifact_view(info)}
    producer = _producer(edges)
    if producer is not None:
        node["produced_by"] = _step_upstream(meta, producer["run_id"], producer["step_name"],
                                             producer["op"], depth - 1)
    consumers = {(e["run_id"], e["step_name"]): e for e in edges if e["direction"] == "in"}
    node["consumed_by"] = [{"run_id": r, "step": s, "op": e["op"], "status": e["status"]}
                           for (r, s), e in consumers.items()]
    return node


def _artifact_view(info: dict[str, Any]) -> dict[str, Any]:
    return {k: info.get(k) for k in ("digest", "type", "size", "uri")}


def _step_upstream(meta: MetadataStore, run_id: str, step: str, op: str,
                   depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"run_id": run_id, "step": step, "op": op, "inputs": []}
    if depth <= 0:
        node["truncated"] = True
        return node
    for edge in meta.edges_for_steps([(run_id, step)]):
        if edge["direction"] != "in":
            continue
        digest = edge["artifact_digest"]
        info = meta.artifact_info([digest]).get(digest, {"digest": digest})
        child: dict[str, Any] = {"port": edge["port"], "artifact": _artifact_view(info)}
        producer = _producer(meta.edges_for_artifacts([digest]))
        if producer is not None:
            child["produced_by"] = _step_upstream(meta, producer["run_id"],
                                                  producer["step_name"], producer["op"],
                                                  depth - 1)
        node["inputs"].append(child)
    return node


def step_lineage(meta: MetadataStore, run_id: str, step: str) -> dict[str, Any]:
    rows = [s for s in meta.run_steps(run_id) if s["name"] == step]
    if not rows:
        raise StoreError(f"run {run_id} has no step '{step}'")
    node = _step_upstream(meta, run_id, step, rows[0]["op"], 25)
    node["status"] = rows[0]["status"]
    outputs = []
    for edge in meta.edges_for_steps([(run_id, step)]):
        if edge["direction"] == "out":
            lineage = artifact_lineage(meta, edge["artifact_digest"], depth=1)
            outputs.append({"port": edge["port"], "artifact": lineage["artifact"],
                            "consumed_by": lineage["consumed_by"]})
    node["outputs"] = outputs
    return node


def lineage(meta: MetadataStore, target: str) -> dict[str, Any]:
    """Lineage of ``target``: an artifact digest (or prefix), ``STEP`` (its latest run) or
    ``RUN:STEP``."""
    if ":" in target:
        run_prefix, step = target.split(":", 1)
        run = meta.get_run(run_prefix)
        return {"kind": "step", **step_lineage(meta, run["id"], step)}
    if HEX.match(target) and meta.find_artifacts(target):
        digest = resolve_artifact(meta, target)["digest"]
        return {"kind": "artifact", **artifact_lineage(meta, digest)}
    latest = meta.latest_step(target)
    if latest is None:
        raise StoreError(f"'{target}' is neither a recorded artifact digest nor a step name "
                         "(use RUN:STEP for a step of a given run)")
    return {"kind": "step", **step_lineage(meta, latest["run_id"], target)}
