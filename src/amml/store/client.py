"""The Python API over the store: query runs, metrics and lineage, and track runs by hand.

>>> import tempfile
>>> from amml import Client
>>> client = Client(home=tempfile.mkdtemp())
>>> with client.start_run("experiment") as run:
...     for epoch in range(3):
...         run.log_metric("loss", 1.0 / (epoch + 1), step=epoch)
>>> [round(p["value"], 2) for p in client.metrics(run.id, "loss")]
[1.0, 0.5, 0.33]
>>> client.close()
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from amml.store import Store, open_store
from amml.store.artifacts import ArtifactRef
from amml.store.code_version import CodeVersion, detect
from amml.store.lineage import lineage as lineage_query
from amml.store.lineage import resolve_artifact


class TrackedRun:
    """A run logged by hand (outside a workflow). Metric calls queue and commit in groups;
    ``synchronous=True`` commits every call before returning."""

    def __init__(self, store: Store, run_id: str, synchronous: bool = False) -> None:
        self.store, self.id, self.synchronous = store, run_id, synchronous

    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        row = dict(run_id=self.id, step_name="", key=key, value=float(value), step=int(step),
                   timestamp=time.time())
        if self.synchronous:
            self.store.metadata.write_now("metrics", [row])
        else:
            self.store.metadata.submit("metrics", row)

    def log_metrics(self, values: Mapping[str, float], step: int = 0) -> None:
        now = time.time()
        self.log_batch(((k, v, step) for k, v in values.items()), timestamp=now)

    def log_batch(self, points: Iterable[tuple[str, float, int]],
                  timestamp: float | None = None) -> None:
        """Log many ``(key, value, step)`` points in one insert."""
        now = timestamp or time.time()
        rows = [dict(run_id=self.id, step_name="", key=k, value=float(v), step=int(s),
                     timestamp=now) for k, v, s in points]
        self.store.metadata.write_now("metrics", rows)

    def log_params(self, params: Mapping[str, Any]) -> None:
        import json

        self.store.metadata.write_now("params", [
            dict(run_id=self.id, key=k, value=json.dumps(v, sort_keys=True))
            for k, v in params.items()])

    def flush(self) -> None:
        self.store.metadata.flush()

    def end(self, status: str = "succeeded") -> None:
        self.store.metadata.finish_run(self.id, status)

    def __enter__(self) -> TrackedRun:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.end("failed" if exc_type else "succeeded")


class Client:
    """Read runs, steps, metrics, artifacts and lineage; start tracked runs."""

    def __init__(self, home: str | Path | None = None, *, url: str | None = None,
                 artifacts_url: str | None = None, store: Store | None = None) -> None:
        self.store = store or open_store(home, url=url, artifacts_url=artifacts_url)

    def runs(self, *, workflow: str | None = None, status: str | None = None,
             limit: int = 50) -> list[dict[str, Any]]:
        self.store.metadata.flush()
        return self.store.metadata.list_runs(limit=limit, workflow=workflow, status=status)

    def run(self, run_id: str) -> dict[str, Any]:
        """One run (an id prefix is enough) with its params, steps, last metric values and
        ``code_version`` (workflow digest, git commit and dirty flag, AMML version)."""
        meta = self.store.metadata
        meta.flush()
        row = meta.get_run(run_id)
        code_columns = CodeVersion().columns()
        run = {k: v for k, v in row.items() if k != "ir_json" and k not in code_columns}
        run["code_version"] = CodeVersion.from_columns(row).to_json()
        run["params"] = meta.run_params(run["id"])
        run["steps"] = meta.run_steps(run["id"])
        run["metrics"] = meta.metric_summary(run["id"])
        return run

    def metrics(self, run_id: str, key: str | None = None,
                step: str | None = None) -> list[dict[str, Any]]:
        meta = self.store.metadata
        meta.flush()
        return meta.metrics(meta.get_run(run_id)["id"], key, step)

    def lineage(self, target: str) -> dict[str, Any]:
        self.store.metadata.flush()
        return lineage_query(self.store.metadata, target)

    def load_artifact(self, digest: str) -> Any:
        info = resolve_artifact(self.store.metadata, digest)
        return self.store.artifacts.load(ArtifactRef(info["digest"], info["type"],
                                                     info["size"]))

    def start_run(self, name: str, *, params: Mapping[str, Any] | None = None,
                  synchronous: bool = False) -> TrackedRun:
        run_id = uuid.uuid4().hex[:16]
        # no workflow file: the git state of the current folder and the AMML version
        self.store.metadata.create_run(run_id=run_id, workflow=name, kind="tracking",
                                       params=dict(params or {}), code_version=detect())
        return TrackedRun(self.store, run_id, synchronous)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
