"""Lineage queries: which step produced an artifact, from which inputs, and who used it.

Answers are plain nested dicts (JSON-ready); the CLI draws them as trees.
"""

from __future__ import annotations

import json
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


def _bindings(meta: MetadataStore, run_id: str,
              memo: dict[str, dict[str, dict[str, list[str]]]]) -> dict[str, dict[str, list[str]]]:
    """step -> port -> ``step[.output]`` references, from the run's stored IR. Lineage
    follows these and not digests alone: two steps may write identical tables (a CSV loaded
    into SQL and read back), and one digest must not make them each other's inputs."""
    if run_id not in memo:
        # the exact id: a run whose id is a prefix of another's is no ambiguous prefix here
        ir_json = meta.run_ir_json(run_id)
        steps = json.loads(ir_json).get("steps", {}) if ir_json else {}
        memo[run_id] = {name: {port: [refs] if isinstance(refs, str) else list(refs)
                               for port, refs in (step.get("inputs") or {}).items()}
                        for name, step in steps.items()}
    return memo[run_id]


def _refers_to(ref: str, step: str, output: str) -> bool:
    name, _, port = ref.partition(".")
    return name == step and (not port or port == output)


def _step_view(meta: MetadataStore, run_id: str, step: str) -> dict[str, Any] | None:
    rows = [s for s in meta.run_steps(run_id) if s["name"] == step]
    return rows[0] if rows else None


def _bound_producer(meta: MetadataStore, run_id: str, step: str, port: str, digest: str,
                    memo: dict[str, Any]) -> dict[str, Any] | None:
    """The step of ``run_id`` whose output the workflow binds to ``step``'s ``port`` and
    whose recorded output is ``digest``; None when the run has no IR to say."""
    refs = _bindings(meta, run_id, memo).get(step, {}).get(port, [])
    upstream = {ref.partition(".")[0] for ref in refs}
    for name in sorted(upstream):
        for edge in meta.edges_for_steps([(run_id, name)]):
            if edge["direction"] == "out" and edge["artifact_digest"] == digest and any(
                    _refers_to(ref, name, edge["port"]) for ref in refs):
                row = _step_view(meta, run_id, name)
                if row is not None:
                    return {"run_id": run_id, "step_name": name, "op": row["op"]}
    return None


def _step_upstream(meta: MetadataStore, run_id: str, step: str, op: str,
                   depth: int, memo: dict[str, Any] | None = None) -> dict[str, Any]:
    memo = {} if memo is None else memo
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
        producer = (_bound_producer(meta, run_id, step, edge["port"], digest, memo)
                    or _producer(meta.edges_for_artifacts([digest])))
        if producer is not None:
            child["produced_by"] = _step_upstream(meta, producer["run_id"],
                                                  producer["step_name"], producer["op"],
                                                  depth - 1, memo)
        node["inputs"].append(child)
    return node


def _output_consumers(meta: MetadataStore, run_id: str, step: str, output: str,
                      digest: str, memo: dict[str, Any]) -> list[dict[str, Any]]:
    """Steps that read output ``output`` of ``step`` in ``run_id``: in that run, and in later
    runs that reused it through the cache, as the workflow bound them (never a step that
    merely read an identical table)."""
    consumers = []
    for use_run, use_step in [(run_id, step), *meta.cached_users(run_id, step)]:
        bindings = _bindings(meta, use_run, memo)
        readers = {name for name, ports in bindings.items()
                   if any(_refers_to(ref, use_step, output)
                          for refs in ports.values() for ref in refs)}
        if not readers:
            continue
        for edge in meta.edges_for_steps([(use_run, name) for name in sorted(readers)]):
            if edge["direction"] != "in" or edge["artifact_digest"] != digest:
                continue
            refs = bindings[edge["step_name"]].get(edge["port"], [])
            if not any(_refers_to(ref, use_step, output) for ref in refs):
                continue
            row = _step_view(meta, use_run, edge["step_name"])
            found = {"run_id": use_run, "step": edge["step_name"],
                     "op": row["op"] if row else "?", "status": row["status"] if row else "?"}
            if found not in consumers:
                consumers.append(found)
    return consumers


def step_lineage(meta: MetadataStore, run_id: str, step: str) -> dict[str, Any]:
    rows = [s for s in meta.run_steps(run_id) if s["name"] == step]
    if not rows:
        raise StoreError(f"run {run_id} has no step '{step}'")
    memo: dict[str, Any] = {}
    node = _step_upstream(meta, run_id, step, rows[0]["op"], 25, memo)
    node["status"] = rows[0]["status"]
    outputs = []
    for edge in meta.edges_for_steps([(run_id, step)]):
        if edge["direction"] == "out":
            digest = edge["artifact_digest"]
            info = meta.artifact_info([digest]).get(digest, {"digest": digest})
            outputs.append({"port": edge["port"], "artifact": _artifact_view(info),
                            "consumed_by": _output_consumers(meta, run_id, step,
                                                             edge["port"], digest, memo)})
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
