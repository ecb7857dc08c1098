"""Run a plan: content-addressed caching, parallel dispatch, recording and lineage.

For each step whose inputs are ready the runner computes the cache key (partial key + input
digests). A hit whose artifacts still exist and still hash to their names is reused without
running; a miss becomes a :class:`StepTask` for the executor. Finished steps are recorded
(step row, artifacts, lineage edges, cache entry, metrics) through the store's group-commit
writer. A failed step skips only its descendants; independent branches still finish and are
cached for the next run.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from amml._exceptions import AMMLError, StepFailedError
from amml._urls import redact
from amml.engine.executors import Executor, LocalExecutor, StepFuture
from amml.engine.fingerprint import cache_key, code_digest
from amml.engine.hooks import HookList, RunHooks
from amml.engine.planner import Plan, PlannedStep, make_plan
from amml.engine.task import StepResult, StepTask, execute_task
from amml.lang.params import did_you_mean
from amml.lang.validate import ValidatedWorkflow
from amml.ops.base import Op, metric_listener
from amml.ops.registry import REGISTRY
from amml.store import Store
from amml.store.artifacts import ArtifactRef
from amml.store.code_version import detect as detect_code_version

#: Steps that ran at least this long are committed before the scheduler goes on; cheaper
#: ones ride the group commit (at worst, a kill -9 loses a few milliseconds of work).
SYNC_RECORD_AFTER_S = 0.05


@dataclass
class StepOutcome:
    name: str
    op: str
    status: str  # ran | cached | failed | skipped
    duration_s: float = 0.0
    cache_key: str | None = None
    outputs: dict[str, ArtifactRef] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None


@dataclass
class RunResult:
    run_id: str
    workflow: str
    status: str  # succeeded | failed | interrupted
    duration_s: float
    steps: dict[str, StepOutcome]
    store: Store = field(repr=False)

    def count(self, status: str) -> int:
        return sum(1 for s in self.steps.values() if s.status == status)

    def output(self, step: str, name: str | None = None) -> Any:
        """Load a step's output value (its op's first output unless ``name`` is given)."""
        outcome = self.steps[step]
        outputs = outcome.outputs
        if name is not None and name not in outputs:
            raise KeyError(f"step '{step}' made no '{name}' output in this run (it made: "
                           f"{', '.join(outputs) or 'nothing'})")
        if name is None:
            # the op's order, not the outputs' (a cached step's come back sorted by name)
            declared = getattr(REGISTRY.find(outcome.op), "outputs", None) or {}
            name = next((n for n in declared if n in outputs), next(iter(outputs)))
        return self.store.artifacts.load(outputs[name])

    def __getitem__(self, step: str) -> Any:
        return self.output(step)

    def raise_for_status(self) -> RunResult:
        for outcome in self.steps.values():
            if outcome.status == "failed":
                raise StepFailedError(outcome.name, outcome.op, outcome.error or "",
                                      self.run_id)
        return self


class Runner:
    """Runs validated workflows against a store with an executor and hooks."""

    def __init__(self, store: Store, executor: Executor | None = None,
                 hooks: Iterable[RunHooks] = ()) -> None:
        self.store = store
        self.executor = executor or LocalExecutor()
        self.hooks = HookList(list(hooks))

    def run(self, workflow: ValidatedWorkflow, *, use_cache: bool = True,
            rerun: Iterable[str] = (), run_id: str | None = None) -> RunResult:
        plan = make_plan(workflow)
        forced = set(rerun)
        for name in forced:
            if name not in plan.steps:
                hint = did_you_mean(name, plan.steps)
                raise AMMLError(f"--rerun: no step named '{name}'" + (f"; {hint}" if hint
                                                                       else ""))
        meta = self.store.metadata
        meta.mark_interrupted()
        self.store.artifacts.cleanup()
        run_id = run_id or uuid.uuid4().hex[:16]
        ir = workflow.ir
        ir_digest = ir.digest()
        meta.create_run(run_id=run_id, workflow=ir.name, params=dict(workflow.params),
                        ir_json=ir.canonical_json(), ir_digest=ir_digest,
                        source_file=workflow.source_file,
                        code_version=detect_code_version(workflow.source_file,
                                                         ir_digest=ir_digest))
        started = time.perf_counter()
        self.hooks.before_run(run_id=run_id, workflow=ir.name, steps=list(plan.order))
        cached = (meta.cache_entries(s.partial_key for s in plan.steps.values())
                  if use_cache else {})
        def heard(step: str, metrics: dict[str, float], index: int) -> None:
            self.hooks.after_metrics(run_id=run_id, step=step, metrics=metrics, index=index)

        try:
            with metric_listener(run_id, heard):  # per-epoch metrics reach hooks as logged
                outcomes = _Scheduler(self, plan, run_id, cached, use_cache, forced).run()
        except BaseException as exc:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            try:
                meta.finish_run(run_id, status, redact(f"{type(exc).__name__}: {exc}"))
            finally:
                self.hooks.after_run(run_id=run_id, status=status,
                                     duration_s=time.perf_counter() - started)
            raise
        failed = [o for o in outcomes.values() if o.status == "failed"]
        status = "failed" if failed else "succeeded"
        error = "; ".join(f"{o.name}: {o.error}" for o in failed) or None
        meta.finish_run(run_id, status, error)
        duration = time.perf_counter() - started
        self.hooks.after_run(run_id=run_id, status=status, duration_s=duration)
        return RunResult(run_id, ir.name, status, duration, outcomes, self.store)


class _Scheduler:
    def __init__(self, runner: Runner, plan: Plan, run_id: str,
                 cached: Mapping[str, dict[str, Any]], use_cache: bool,
                 forced: set[str]) -> None:
        self.runner, self.plan, self.run_id = runner, plan, run_id
        self.cached, self.use_cache, self.forced = cached, use_cache, forced
        self.meta = runner.store.metadata
        self.artifacts = runner.store.artifacts
        self.outcomes: dict[str, StepOutcome] = {}
        self.waiting: dict[str, int] = {n: len(s.upstream) for n, s in plan.steps.items()}
        self.ready: list[str] = [n for n in plan.order if self.waiting[n] == 0]
        self.in_flight: dict[StepFuture, tuple[PlannedStep, dict, str]] = {}
        #: what a worker must import to find the workflow's own ops
        self.imports = _declared_imports(plan.workflow)
        #: steps with external state: (state before running, the digests of their key)
        self.states: dict[str, tuple[str, dict[str, Any]]] = {}

    def run(self) -> dict[str, StepOutcome]:
        executor = self.runner.executor
        while self.ready or self.in_flight:
            while self.ready:
                step = self.plan.steps[self.ready.pop(0)]
                inputs = self._input_refs(step)
                unmade = self._unmade_inputs(step)
                if unmade:  # bound to an optional output its step did not make this time
                    self._finish(step, inputs, "", StepResult(
                        step.name, started_at=time.time(), error="; ".join(unmade),
                        error_type="OpError"))
                    continue
                try:
                    state = _source_state(step, self.runner.store)
                except Exception as exc:
                    self._finish(step, inputs, "", StepResult(
                        step.name, started_at=time.time(), error=f"checking its source: {exc}",
                        error_type=type(exc).__name__))
                    continue
                digests = _digests(inputs)
                if state:
                    digests["__source_state__"] = state
                key = cache_key(step.partial_key, digests)
                if state is not None and self._try_cache(step, key, inputs):
                    continue
                if state:
                    self.states[step.name] = (state, digests)
                task = StepTask(self.run_id, step.name, step.op_name, step.config, inputs,
                                self.artifacts.url, self.meta.url, step.code_digest, key,
                                self._previous(step), imports=self.imports,
                                param_fields=step.param_fields, resources=step.resources,
                                state=state or "")
                self.runner.hooks.before_step(run_id=self.run_id, step=step.name,
                                              op=step.op_name, config=dict(step.config))
                if executor.in_process and not self.in_flight and not self.ready:
                    self._finish(step, inputs, key, execute_task(task, self.runner.store))
                else:
                    future = executor.submit(task, self.runner.store)
                    self.in_flight[future] = (step, inputs, key)
            if self.in_flight:
                # the executor waits: its futures need not be concurrent.futures ones
                for future in executor.wait_any(list(self.in_flight)):
                    step, inputs, key = self.in_flight.pop(future)
                    self._finish(step, inputs, key, future.result())
        for name in self.plan.order:  # steps never reached: an upstream failed
            if name not in self.outcomes:
                step = self.plan.steps[name]
                self._record(step, "skipped", None, {}, {}, [], time.time(), 0.0,
                             "an upstream step failed")
        return {name: self.outcomes[name] for name in self.plan.order}

    def _input_refs(self, step: PlannedStep) -> dict[str, Any]:
        refs: dict[str, Any] = {}
        for port, binding in step.inputs.items():
            if binding and isinstance(binding[0], tuple):
                refs[port] = tuple(self.outcomes[u].outputs[o] for u, o in binding
                                   if o in self.outcomes[u].outputs)
            elif binding:
                up, output = binding
                if output in self.outcomes[up].outputs:
                    refs[port] = self.outcomes[up].outputs[output]
        return refs

    def _unmade_inputs(self, step: PlannedStep) -> list[str]:
        """What the step is bound to that its upstream step did not make (an optional
        output), one message each."""
        unmade = []
        for port, binding in step.inputs.items():
            pairs = binding if binding and isinstance(binding[0], tuple) else (
                [binding] if binding else [])
            for up, output in pairs:
                if output not in self.outcomes[up].outputs:
                    unmade.append(f"input '{port}': step '{up}' made no '{output}' output "
                                  f"this run (op '{self.plan.steps[up].op_name}' makes it "
                                  f"only in some cases)")
        return unmade

    def _previous(self, step: PlannedStep) -> dict[str, ArtifactRef] | None:
        if not getattr(step.op, "incremental", False):
            return None
        entries = [e for e in self.cached.values() if e.get("partial_key") == step.partial_key]
        if not entries:
            return None
        latest = max(entries, key=lambda e: e.get("created_at") or 0)
        return {name: ArtifactRef.from_json(ref) for name, ref in latest["outputs"].items()}

    def _try_cache(self, step: PlannedStep, key: str, inputs: dict[str, Any]) -> bool:
        if not self.use_cache or step.name in self.forced:
            return False
        entry = self.cached.get(key)
        if entry is None:
            return False
        outputs = {name: ArtifactRef.from_json(ref) for name, ref in entry["outputs"].items()}
        # each output is re-hashed: one deleted, emptied or overwritten (then moved aside to
        # quarantine) makes this a miss, so the step runs again and writes it afresh
        declared = set(step.output_types)
        required = declared - set(getattr(step.op, "optional_outputs", ()))
        if not required <= set(outputs) <= declared or not all(
                self.artifacts.intact(ref.digest) for ref in outputs.values()):
            return False
        self._record(step, "cached", key, outputs, inputs, [], time.time(), 0.0, None)
        self._release(step.name)
        return True

    def _finish(self, step: PlannedStep, inputs: dict[str, Any], key: str,
                result: StepResult) -> None:
        if result.ok:
            self._record(step, "ran", key, result.outputs, inputs, result.metrics,
                         result.started_at, result.duration_s, None)
            self._cache_after_state_change(step, result)
            if result.duration_s >= SYNC_RECORD_AFTER_S:
                self.meta.flush()  # an expensive result is durable before anything else runs
            self._release(step.name)
        else:
            self._record(step, "failed", key, {}, inputs, result.metrics, result.started_at,
                         result.duration_s, f"{result.error_type}: {result.error}",
                         result.traceback)
            for name in self.plan.descendants({step.name}):
                self.waiting[name] = -1  # never becomes ready

    def _cache_after_state_change(self, step: PlannedStep, result: StepResult) -> None:
        """A step that changes what it reads (a sink writing its table) is cached under the
        state it leaves behind too, so an unchanged re-run finds it."""
        before = self.states.pop(step.name, None)
        if before is None or not getattr(step.op, "writes_what_it_reads", False):
            return
        try:
            after = _source_state(step, self.runner.store)
        except Exception:
            return
        if after and after != before[0]:
            digests = {**before[1], "__source_state__": after}
            self.meta.submit("cache_entries", dict(
                cache_key=cache_key(step.partial_key, digests), partial_key=step.partial_key,
                op=step.op_name, outputs=_outputs_json(result.outputs), run_id=self.run_id,
                step_name=step.name, created_at=time.time()))

    def _release(self, name: str) -> None:
        for child in self.plan.downstream.get(name, ()):
            if self.waiting[child] > 0:
                self.waiting[child] -= 1
                if self.waiting[child] == 0:
                    self.ready.append(child)

    def _record(self, step: PlannedStep, status: str, key: str | None,
                outputs: dict[str, ArtifactRef], inputs: dict[str, Any], metrics: list,
                started_at: float, duration_s: float, error: str | None,
                traceback: str | None = None) -> None:
        # messages quote what failed (a URL, a driver's DSN): stored, shown and passed to
        # hooks only redacted; the run's error is built from these
        error, traceback = (redact(error) if error else error,
                            redact(traceback) if traceback else traceback)
        meta, run_id = self.meta, self.run_id
        self.outcomes[step.name] = StepOutcome(step.name, step.op_name, status, duration_s, key,
                                               outputs, error, traceback)
        meta.submit("steps", dict(run_id=run_id, name=step.name, op=step.op_name,
                                  op_version=step.op_version, cache_key=key, status=status,
                                  started_at=started_at, duration_s=duration_s, error=error))
        edges = []
        for port, ref in inputs.items():
            for one in ref if isinstance(ref, tuple) else (ref,):
                edges.append(dict(run_id=run_id, step_name=step.name, direction="in",
                                  port=port, artifact_digest=one.digest))
        for port, ref in outputs.items():
            edges.append(dict(run_id=run_id, step_name=step.name, direction="out", port=port,
                              artifact_digest=ref.digest))
        meta.submit_many("lineage", edges)
        if status == "ran":
            now = time.time()
            meta.submit_many("artifacts", [
                dict(digest=r.digest, type=r.type, size=r.size,
                     uri=self.artifacts.uri(r.digest), created_at=now)
                for r in outputs.values()])
            meta.submit("cache_entries", dict(
                cache_key=key, partial_key=step.partial_key, op=step.op_name,
                outputs=_outputs_json(outputs), run_id=run_id, step_name=step.name,
                created_at=now))
        if metrics:
            meta.submit_many("metrics", [
                dict(run_id=run_id, step_name=step.name, key=m.key, value=m.value,
                     step=m.step, timestamp=m.timestamp) for m in metrics])
        self.runner.hooks.after_step(run_id=run_id, step=step.name, op=step.op_name,
                                     status=status, duration_s=duration_s, error=error)


def _source_state(step: PlannedStep, store: Store) -> str | None:
    """The op's token for what it reads beyond its inputs, outside the store and in it
    ("" for ops that read nothing), with the digest of the code that selects."""
    op_cls = step.op
    if op_cls is None or (getattr(op_cls, "source_state", Op.source_state) is Op.source_state
                          and getattr(op_cls, "store_state", Op.store_state) is Op.store_state):
        return ""
    op = op_cls(op_cls.Config.model_validate(dict(step.config)))
    token = op.state_token(store)
    code = op.state_code(store) if token is not None else ()
    if code:
        token = f"{token}|code:{code_digest(code[0], references=code[1:])}"
    return token


def _declared_imports(workflow: ValidatedWorkflow) -> tuple[str, ...]:
    from amml.engine.loading import declared_imports  # loading imports this module

    return declared_imports(workflow)


def _digests(inputs: Mapping[str, Any]) -> dict[str, Any]:
    return {port: ([r.digest for r in ref] if isinstance(ref, tuple) else ref.digest)
            for port, ref in inputs.items()}


def _outputs_json(outputs: Mapping[str, ArtifactRef]) -> str:
    return json.dumps({k: v.to_json() for k, v in outputs.items()}, sort_keys=True)
