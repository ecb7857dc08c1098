"""``amml agent``: run workflows when their triggers fire.

The agent compiles each workflow once, then every ``interval`` seconds evaluates its triggers
(:mod:`amml.engine.triggers`). A workflow whose triggers fired runs once, whatever the number
of triggers that fired, with the reasons recorded in ``trigger_runs``; a failed run is retried
up to ``retries`` times, waiting ``backoff_s`` and then twice as long each time (capped at
``max_backoff_s``); each attempt is a row of its own. A workflow runs one at a time: an agent
runs it in one thread, and a lock row in the store (``agent_locks``) keeps a second agent on
the same store from starting it meanwhile (it is then evaluated again on the next tick, its
triggers' cursors untouched). Different workflows run side by side. ``on_success`` runs
after each successful run (``amml agent --promote NAME`` applies the promotion policy
there, :mod:`amml.registry.policy`).

:meth:`Agent.run_once` (``amml agent --once``) evaluates, runs what fired and returns: the
form to test, and to call from cron.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amml._exceptions import AMMLError
from amml.engine.triggers import TriggerCheck, TriggerError, check_workflow
from amml.lang.validate import ValidatedWorkflow
from amml.store import Store
from amml.store.operations import OperationsRecords

log = logging.getLogger("amml.agent")

#: ``run(workflow, store) -> (status, run_id, error)``; the default runs it with the engine.
RunFunction = Callable[[ValidatedWorkflow, Store], tuple[str, str | None, str | None]]


def run_with_engine(workflow: ValidatedWorkflow, store: Store
                    ) -> tuple[str, str | None, str | None]:
    from amml.engine.loading import run_workflow

    try:
        result = run_workflow(workflow, store=store, raise_on_failure=False)
    except AMMLError as exc:
        return "failed", None, str(exc)
    failed = [s for s in result.steps.values() if s.status == "failed"]
    error = (f"step '{failed[0].name}' ({failed[0].op}) failed: {failed[0].error}"
             if failed else None)
    return result.status, result.run_id, error


@dataclass
class AgentOutcome:
    """What the agent did with one workflow on one evaluation."""

    workflow: str
    fired: bool
    reasons: list[str] = field(default_factory=list)
    status: str = "idle"  # idle | succeeded | failed | busy | error
    attempts: int = 0
    run_id: str | None = None
    error: str | None = None
    note: str | None = None  # what ``on_success`` said (a promotion decision, say)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Agent:
    """Runs ``workflows`` (compiled) on ``store`` when their triggers fire."""

    def __init__(self, store: Store, workflows: Iterable[ValidatedWorkflow], *,
                 retries: int = 2, backoff_s: float = 1.0, max_backoff_s: float = 60.0,
                 lock_ttl_s: float = 3600.0, run: RunFunction | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 on_success: Callable[[ValidatedWorkflow, str | None], str | None]
                 | None = None) -> None:
        if retries < 0:
            raise AMMLError(f"retries must be 0 or more, got {retries}")
        self.store = store
        self.workflows = list(workflows)
        names = [w.ir.name for w in self.workflows]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise AMMLError(f"two workflows are named {', '.join(doubled)}: the agent records "
                            "runs by workflow name")
        untriggered = [w.ir.name for w in self.workflows if not w.ir.triggers]
        if untriggered:
            raise AMMLError(f"workflow {', '.join(untriggered)} declares no triggers: add "
                            "'triggers:' (cron, drift, labels or data) for the agent to run it")
        self.retries, self.backoff_s, self.max_backoff_s = retries, backoff_s, max_backoff_s
        self.lock_ttl_s = lock_ttl_s
        self.run_function = run or run_with_engine
        self.sleep = sleep
        self.on_success = on_success
        self.records = OperationsRecords(store)
        self._running: set[str] = set()
        self._guard = threading.Lock()

    # -- one workflow ------------------------------------------------------------------------
    def evaluate(self, workflow: ValidatedWorkflow, now: float | None = None
                 ) -> list[TriggerCheck]:
        return check_workflow(self.store, workflow, now=now)

    def step(self, workflow: ValidatedWorkflow, now: float | None = None) -> AgentOutcome:
        """Evaluate ``workflow``'s triggers; run it (with retries) if any fired."""
        name = workflow.ir.name
        try:
            checks = self.evaluate(workflow, now)
        except (TriggerError, AMMLError) as exc:
            log.warning("amml agent: %s: evaluating triggers failed: %s", name, exc)
            return AgentOutcome(name, False, status="error", error=str(exc))
        fired = [c for c in checks if c.fired]
        if not fired:
            for check in checks:  # first sight, newer events of other detectors...
                check.commit(self.records)
            return AgentOutcome(name, False)
        outcome = AgentOutcome(name, True, [c.reason for c in fired])
        if not self.records.acquire(name, ttl_s=self.lock_ttl_s):
            outcome.status = "busy"  # another agent runs it: evaluated again next time
            return outcome
        try:
            for check in checks:
                check.commit(self.records)
            self._run_with_retries(workflow, fired, outcome)
        finally:
            self.records.release(name)
        return outcome

    def _run_with_retries(self, workflow: ValidatedWorkflow, fired: list[TriggerCheck],
                          outcome: AgentOutcome) -> None:
        name = workflow.ir.name
        keys = ",".join(c.trigger.key for c in fired)[:255]
        reason = "; ".join(c.reason for c in fired)
        for attempt in range(1, self.retries + 2):
            row = self.records.start_run(name, keys, reason, attempt=attempt)
            try:
                status, run_id, error = self.run_function(workflow, self.store)
            except Exception as exc:  # an op raised outside the engine's net: retry too
                status, run_id, error = "failed", None, f"{type(exc).__name__}: {exc}"
            status = "succeeded" if status == "succeeded" else "failed"
            self.records.finish_run(row, status, run_id=run_id, error=error)
            outcome.attempts, outcome.run_id, outcome.status = attempt, run_id, status
            outcome.error = error
            if status == "succeeded":
                log.info("amml agent: %s ran (%s): run %s", name, reason, run_id)
                if self.on_success is not None:
                    try:
                        outcome.note = self.on_success(workflow, run_id)
                    except Exception as exc:  # the run stands; say what followed failed
                        outcome.note = f"after the run: {type(exc).__name__}: {exc}"
                        log.error("amml agent: %s: %s", name, outcome.note)
                return
            log.warning("amml agent: %s attempt %d failed: %s", name, attempt, error)
            if attempt <= self.retries:
                self.sleep(min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)))

    # -- all workflows -----------------------------------------------------------------------
    def run_once(self, now: float | None = None) -> list[AgentOutcome]:
        """Evaluate every workflow once and run, one after the other, those that fired."""
        return [self.step(workflow, now) for workflow in self.workflows]

    def run_forever(self, *, interval_s: float = 10.0, stop: threading.Event | None = None,
                    on_outcome: Callable[[AgentOutcome], None] | None = None) -> None:
        """Every ``interval_s``, evaluate the workflows that are not running and start those
        that fired, each in its own thread, until ``stop`` is set."""
        stop = stop or threading.Event()
        with ThreadPoolExecutor(max(1, len(self.workflows)),
                                thread_name_prefix="amml-agent") as pool:
            while not stop.is_set():
                for workflow in self.workflows:
                    name = workflow.ir.name
                    with self._guard:
                        if name in self._running:
                            continue  # one at a time per workflow
                        self._running.add(name)
                    future = pool.submit(self.step, workflow)
                    future.add_done_callback(self._finished(name, on_outcome))
                stop.wait(interval_s)

    def _finished(self, name: str, on_outcome: Callable[[AgentOutcome], None] | None
                  ) -> Callable[[Future], None]:
        def done(future: Future) -> None:
            with self._guard:
                self._running.discard(name)
            if future.exception() is not None:
                log.error("amml agent: %s: %s", name, future.exception())
            elif on_outcome is not None:
                on_outcome(future.result())
        return done


def load_workflows(sources: Iterable[str | Path], params: Mapping[str, Any] | None = None
                   ) -> list[ValidatedWorkflow]:
    from amml.engine.loading import compile_workflow

    return [compile_workflow(source, params) for source in sources]
