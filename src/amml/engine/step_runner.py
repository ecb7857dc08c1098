"""Run one step of a workflow by name: the unit a cluster scheduler calls.

A Kubeflow component (``amml step WORKFLOW STEP --run-id ID``), a shell script or a person
runs one step; its inputs are read from the store and its outputs written to it, and it is
recorded (step row, lineage, artifacts, cache entry, metrics) under a run, so several
invocations with one ``run_id`` make up one run that ``amml show`` and ``amml lineage`` see
whole.

Where the inputs come from: an upstream step recorded in the same run gives the outputs it
recorded there; otherwise its outputs are found in the cache, under the key the runner would
compute (partial key + the digests of its own inputs, found the same way), so a step runs
after its upstream steps ran in any run, by ``amml run`` or ``amml step``. An upstream step
with no stored outputs for these inputs is an error naming the step to run first.

Planning, caching, dispatch and recording are the runner's (:class:`_Scheduler`); this
module only decides which outcomes the upstream steps have and dispatches the one step.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

from amml._exceptions import StoreError, WorkflowError
from amml.engine.executors import Executor, SequentialExecutor
from amml.engine.fingerprint import cache_key
from amml.engine.hooks import RunHooks
from amml.engine.planner import Plan, PlannedStep, make_plan
from amml.engine.runner import Runner, RunResult, StepOutcome, _digests, _Scheduler, _source_state
from amml.lang.params import did_you_mean
from amml.lang.validate import ValidatedWorkflow
from amml.store import Store
from amml.store.artifacts import ArtifactRef
from amml.store.code_version import detect as detect_code_version


def ancestors(plan: Plan, name: str) -> list[str]:
    """The steps ``name`` depends on, transitively, in run order."""
    found: set[str] = set()
    stack = [name]
    while stack:
        for up in plan.steps[stack.pop()].upstream:
            if up not in found:
                found.add(up)
                stack.append(up)
    return [n for n in plan.order if n in found]


def normalize_run_id(run_id: str) -> str:
    """A run id as the store keeps it (at most 32 characters): a UUID, as a pipeline engine
    names its runs (KFP's ``{{$.pipeline_job_uuid}}``), is written as its 32 hex digits.

    >>> normalize_run_id("0f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a")
    '0f8e7d6c5b4a439281706f5e4d3c2b1a'
    """
    if len(run_id) <= 32:
        return run_id
    try:
        return uuid.UUID(run_id).hex
    except ValueError:
        raise WorkflowError(f"a run id has at most 32 characters (or is a UUID), got "
                            f"{len(run_id)}: '{run_id}'") from None


def run_step(workflow: ValidatedWorkflow, step_name: str, store: Store, *,
             run_id: str | None = None, use_cache: bool = True,
             executor: Executor | None = None, hooks: Iterable[RunHooks] = ()) -> RunResult:
    """Run step ``step_name`` of ``workflow`` with its inputs from ``store``.

    ``run_id`` groups several steps into one run (created by the first of them); without it
    the step is a run of its own. ``use_cache=False`` runs the step even when its outputs for
    these inputs are stored. The step runs in this process unless ``executor`` says otherwise.
    A step already recorded in ``run_id`` is not run twice: its outcome there is returned.
    """
    plan = make_plan(workflow)
    if step_name not in plan.steps:
        hint = did_you_mean(step_name, plan.steps)
        raise WorkflowError(f"workflow '{workflow.ir.name}' has no step named '{step_name}'"
                            + (f"; {hint}" if hint else "")
                            + f" (steps: {', '.join(plan.order)})")
    meta = store.metadata
    run_id = normalize_run_id(run_id) if run_id else uuid.uuid4().hex[:16]
    started = time.perf_counter()
    existing = _run_exists(store, run_id)
    if existing:
        done = _recorded_outcome(store, run_id, plan.steps[step_name])
        if done is not None:
            if done.status == "failed":
                raise StoreError(f"step '{step_name}' already failed in run {run_id} "
                                 f"({done.error}); start a new run to try it again")
            return RunResult(run_id, workflow.ir.name, "succeeded", 0.0, {step_name: done},
                             store)
    else:
        _create_run(store, workflow, run_id)
    runner = Runner(store, executor or SequentialExecutor(), hooks)
    try:
        outcome = _dispatch(runner, plan, step_name, run_id, use_cache)
    except BaseException as exc:
        meta.finish_run(run_id, "failed", f"step {step_name}: {type(exc).__name__}: {exc}")
        raise
    statuses = [row["status"] for row in meta.run_steps(run_id)]
    status = "failed" if "failed" in statuses or outcome.status == "failed" else "succeeded"
    meta.finish_run(run_id, status, f"{step_name}: {outcome.error}" if outcome.error else None)
    return RunResult(run_id, workflow.ir.name, outcome.status if outcome.status == "failed"
                     else "succeeded", time.perf_counter() - started, {step_name: outcome},
                     store)


def _dispatch(runner: Runner, plan: Plan, step_name: str, run_id: str,
              use_cache: bool) -> StepOutcome:
    """Resolve the upstream outcomes, then let the runner's scheduler run the one step."""
    store = runner.store
    upstream = ancestors(plan, step_name)
    wanted = [*upstream, step_name]
    cached = store.metadata.cache_entries(plan.steps[n].partial_key for n in wanted)
    one = Plan(plan.workflow, {step_name: plan.steps[step_name]}, (step_name,),
               {step_name: ()})
    scheduler = _Scheduler(runner, one, run_id, cached, True,
                           set() if use_cache else {step_name})
    for name in upstream:
        step = plan.steps[name]
        scheduler.outcomes[name] = (
            _recorded_outcome(store, run_id, step)
            or _cached_outcome(store, step, scheduler._input_refs(step), cached, step_name))
        if scheduler.outcomes[name].status not in ("ran", "cached"):
            raise StoreError(f"step '{name}' {scheduler.outcomes[name].status} in run "
                             f"{run_id}; '{step_name}' needs its outputs")
    scheduler.waiting[step_name] = 0
    scheduler.ready = [step_name]
    return scheduler.run()[step_name]


def _cached_outcome(store: Store, step: PlannedStep, inputs: dict[str, Any],
                    cached: dict[str, dict[str, Any]], target: str) -> StepOutcome:
    state = _source_state(step, store)
    entry, key = None, None
    if state is not None:  # None: the op is never cached, so only a run can hold its output
        digests = _digests(inputs)
        if state:
            digests["__source_state__"] = state
        key = cache_key(step.partial_key, digests)
        entry = cached.get(key)
    outputs = ({n: ArtifactRef.from_json(r) for n, r in entry["outputs"].items()}
               if entry else {})
    if not entry or not all(store.artifacts.intact(r.digest) for r in outputs.values()):
        raise StoreError(
            f"step '{target}' needs the outputs of step '{step.name}', and the store has none "
            f"for its current inputs and configuration; run it first "
            f"('amml step WORKFLOW {step.name}' with the same --run-id, or 'amml run')")
    return StepOutcome(step.name, step.op_name, "cached", 0.0, key, outputs)


def _recorded_outcome(store: Store, run_id: str, step: PlannedStep) -> StepOutcome | None:
    """The step's outcome as run ``run_id`` recorded it, or None."""
    meta = store.metadata
    rows = [r for r in meta.run_steps(run_id) if r["name"] == step.name]
    if not rows:
        return None
    row = rows[0]
    edges = [e for e in meta.edges_for_steps([(run_id, step.name)]) if e["direction"] == "out"]
    info = meta.artifact_info([e["artifact_digest"] for e in edges])
    outputs = {}
    for edge in edges:
        digest = edge["artifact_digest"]
        found = info.get(digest) or {}
        outputs[edge["port"]] = ArtifactRef(digest, found.get("type")
                                            or step.output_types.get(edge["port"], ""),
                                            int(found.get("size") or 0))
    return StepOutcome(step.name, step.op_name, row["status"], row.get("duration_s") or 0.0,
                       row.get("cache_key"), outputs, row.get("error"))


def _run_exists(store: Store, run_id: str) -> bool:
    # by the exact id (get_run would take it as a prefix of another run's)
    return store.metadata.code_version(run_id) is not None


def _create_run(store: Store, workflow: ValidatedWorkflow, run_id: str) -> None:
    """Record the run as ``amml run`` does; a concurrent step that created it first wins."""
    ir = workflow.ir
    ir_digest = ir.digest()
    try:
        store.metadata.create_run(
            run_id=run_id, workflow=ir.name, params=dict(workflow.params),
            ir_json=ir.canonical_json(), ir_digest=ir_digest, source_file=workflow.source_file,
            code_version=detect_code_version(workflow.source_file, ir_digest=ir_digest))
    except StoreError:
        if not _run_exists(store, run_id):
            raise
