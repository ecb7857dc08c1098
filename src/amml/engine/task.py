"""What an executor runs: a serializable step task in, a serializable step result out.

Inputs and outputs travel as artifact references, never as in-memory objects, so the same
task runs in a thread, another process, a Dask worker or a Kubeflow container.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from amml._exceptions import ArtifactCorruptError
from amml.ops.base import MetricPoint, StepContext
from amml.ops.registry import REGISTRY
from amml.store import Store
from amml.store.artifacts import ArtifactRef, open_artifact_store


@dataclass(frozen=True)
class StepTask:
    run_id: str
    step_name: str
    op_name: str
    config: Mapping[str, Any]
    inputs: Mapping[str, ArtifactRef | tuple[ArtifactRef, ...]]
    artifacts_url: str
    store_url: str | None = None  # the metadata store, for ops that keep a ledger
    code_digest: str = ""
    cache_key: str = ""
    previous: Mapping[str, ArtifactRef] | None = None  # incremental ops: the last outputs
    #: What the workflow imports (module names, absolute ``.py`` paths): a worker that was
    #: not forked from the compiling process imports them before looking up the op.
    imports: tuple[str, ...] = ()
    #: Path fields a workflow parameter gave whole (field -> parameter), for op messages.
    param_fields: Mapping[str, str] = field(default_factory=dict)
    #: What the step needs of its worker (``memory`` in bytes, ``gpu``, ``cpu``): placement
    #: hints for cluster executors, never part of the cache key.
    resources: Mapping[str, float | int] = field(default_factory=dict)
    #: The state token in the step's cache key (``Op.state_token``), for the op's context.
    state: str = ""


@dataclass
class StepResult:
    step_name: str
    outputs: dict[str, ArtifactRef] = field(default_factory=dict)
    metrics: list[MetricPoint] = field(default_factory=list)
    started_at: float = 0.0
    duration_s: float = 0.0
    error: str | None = None
    error_type: str | None = None
    traceback: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


_stores: dict[tuple[str, str | None], Store] = {}


def _store_for(task: StepTask) -> Store:
    """The store a worker process opens for its tasks (one per URL pair)."""
    key = (task.artifacts_url, task.store_url)
    store = _stores.get(key)
    if store is None:
        from amml.store.metadata import MetadataStore

        metadata = MetadataStore(task.store_url) if task.store_url else None
        store = _stores[key] = Store(metadata, open_artifact_store(task.artifacts_url))
    return store


def execute_task(task: StepTask, store: Store | None = None) -> StepResult:
    """Load inputs, run the op, save outputs. Never raises: failures are in the result."""
    started = time.time()
    clock = time.perf_counter()
    result = StepResult(task.step_name, started_at=started)
    ctx: StepContext | None = None
    try:
        full_store = store or _store_for(task)
        store_artifacts = full_store.artifacts
        if task.imports and task.op_name not in REGISTRY:
            from amml.engine.loading import import_declared

            import_declared(task.imports)
        op_cls = REGISTRY.get(task.op_name)
        values: dict[str, Any] = {}
        for port, ref in task.inputs.items():
            values[port] = ([store_artifacts.load(r) for r in ref] if isinstance(ref, tuple)
                            else store_artifacts.load(ref))
        op = op_cls(op_cls.Config.model_validate(dict(task.config)))
        ctx = StepContext(run_id=task.run_id, step_name=task.step_name,
                          ledger_factory=_ledger_factory(full_store, task.run_id),
                          registry_factory=_registry_factory(full_store),
                          code_digest=task.code_digest, cache_key=task.cache_key,
                          input_digests={port: ([r.digest for r in ref] if isinstance(ref, tuple)
                                                else ref.digest)
                                         for port, ref in task.inputs.items()},
                          previous_loader=_previous_loader(task, store_artifacts),
                          param_fields=dict(task.param_fields), state_token=task.state)
        produced = op.normalize_outputs(op.run(ctx, **values))
        result.outputs = {name: store_artifacts.save(value, op_cls.outputs[name])
                          for name, value in produced.items()}
        result.metrics = ctx.metrics
    except Exception as exc:
        # what a failed step logged is kept: a diverging training's curve up to the failure
        result.metrics = ctx.metrics if ctx is not None else []
        result.error = str(exc) or type(exc).__name__
        result.error_type = type(exc).__name__
        result.traceback = traceback.format_exc()
    result.duration_s = time.perf_counter() - clock
    return result


def _previous_loader(task: StepTask, artifacts):
    if not task.previous:
        return None
    previous = task.previous

    def load(name: str) -> Any:
        ref = previous.get(name)
        if ref is None or not artifacts.exists(ref.digest):
            return None
        try:
            return artifacts.load(ref)
        except ArtifactCorruptError:  # moved aside by now: start over as if it were absent
            return None

    return load


def _registry_factory(store: Store):
    if store.metadata is None:
        return None

    def open_registry():
        from amml.store.model_registry import ModelRegistry

        return ModelRegistry(store)

    return open_registry


def _ledger_factory(store: Store, run_id: str):
    if store.metadata is None:
        return None

    def open_ledger(name: str):
        from amml.store.ledger import Ledger

        # this run's code version goes into the entries, also when resuming another's ledger
        return Ledger(store, name, run_id=run_id)

    return open_ledger
