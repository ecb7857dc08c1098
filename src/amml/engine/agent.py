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

The agent also fills the label queue (:mod:`amml.store.label_queue`), so a labelling tool
finds work without anyone calling ``amml labels refresh``: on each evaluation (at most once
every ``label_every_s`` seconds in :meth:`Agent.run_forever`, shared by the agents of one
store; every time in :meth:`Agent.run_once`) it queues the alarms and uncertain windows of
the ``/detect`` answers and of the served forecasts' live error received in the last
``label_window_s`` seconds, and every drift event recorded since the previous refresh (by
event id: an event's times are the data's, not the clock's). Each item is queued once (a
task is keyed by what produced it), so a refresh is idempotent; what it did is recorded in
``trigger_cursors`` (workflow ``amml agent``, trigger ``label-queue``: when, the window, the
tasks each producer holds, how many were new, how long it took). Its cost grows with the
forecasts in the window (about 0.3 ms each: 0.55 s for the 1,942 of the operations
benchmark), hence the period. ``label_queue=False`` (``--no-label-queue``) turns it off.
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

#: The ``trigger_cursors`` row that records the label queue's refreshes.
LABEL_QUEUE = ("amml agent", "label-queue")

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


@dataclass
class LabelRefresh:
    """One refresh of the label queue: when, from when, the tasks each producer holds in
    that window (new or already queued), how many tasks are new, and how long it took."""

    at: float
    since: float
    queued: dict[str, int]
    new: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Agent:
    """Runs ``workflows`` (compiled) on ``store`` when their triggers fire, and keeps the
    label queue filled."""

    def __init__(self, store: Store, workflows: Iterable[ValidatedWorkflow], *,
                 retries: int = 2, backoff_s: float = 1.0, max_backoff_s: float = 60.0,
                 lock_ttl_s: float = 3600.0, run: RunFunction | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 on_success: Callable[[ValidatedWorkflow, str | None], str | None]
                 | None = None, label_queue: bool = True, label_window_s: float = 3600.0,
                 label_every_s: float = 60.0,
                 on_label_refresh: Callable[[LabelRefresh], None] | None = None) -> None:
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
        if label_window_s <= 0 or label_every_s < 0:
            raise AMMLError("the label window must be positive and its period 0 or more")
        self.label_queue, self.label_window_s = label_queue, label_window_s
        self.label_every_s = label_every_s
        self.on_label_refresh = on_label_refresh
        self.last_refresh: LabelRefresh | None = None
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

    # -- the label queue ---------------------------------------------------------------------
    def refresh_labels(self, now: float | None = None, *, force: bool = False
                       ) -> LabelRefresh | None:
        """Queue what is worth labelling (see the module's text); None when turned off, or
        (unless ``force``) when the last refresh of this store is under ``label_every_s``
        old."""
        if not self.label_queue:
            return None
        from amml.store.drift_events import DriftRecords
        from amml.store.label_queue import (
            queue_detect_answers,
            queue_drift_events,
            queue_forecast_errors,
        )

        now = time.time() if now is None else float(now)
        cursor = self.records.cursor(*LABEL_QUEUE) or {}
        if not force and now - float(cursor.get("at", float("-inf"))) < self.label_every_s:
            return None
        started, since = time.perf_counter(), now - self.label_window_s
        before = _task_count(self.store)
        answers = queue_detect_answers(self.store, since=since)
        queued = {"alarm": len(answers["alarm"]), "uncertain": len(answers["uncertain"]),
                  "drift": 0}
        for model in _forecast_models(self.store, since):
            errors = queue_forecast_errors(self.store, model, since=since)
            queued["alarm"] += len(errors["alarm"])
            queued["uncertain"] += len(errors["uncertain"])
        seen = int(cursor.get("drift_event", 0))
        events = [e for e in DriftRecords(self.store).events() if int(e["id"]) > seen]
        if events:  # queued with any older event detected later (already queued: kept)
            queue_drift_events(self.store, since=min(float(e["detected_at"]) for e in events))
            queued["drift"], seen = len(events), max(int(e["id"]) for e in events)
        done = LabelRefresh(now, since, queued, _task_count(self.store) - before,
                            time.perf_counter() - started)
        self.records.set_cursor(*LABEL_QUEUE, {**done.to_json(), "drift_event": seen})
        self.last_refresh = done
        if done.new:
            log.info("amml agent: label queue: %d new tasks (%s)", done.new, queued)
        if self.on_label_refresh is not None:
            self.on_label_refresh(done)
        return done

    def _refresh_quietly(self, now: float | None, force: bool) -> None:
        try:
            self.refresh_labels(now, force=force)
        except Exception as exc:  # the queue is a convenience: never stop the agent
            log.error("amml agent: refreshing the label queue failed: %s: %s",
                      type(exc).__name__, exc)

    # -- all workflows -----------------------------------------------------------------------
    def run_once(self, now: float | None = None) -> list[AgentOutcome]:
        """Refresh the label queue, evaluate every workflow once and run, one after the
        other, those that fired."""
        self._refresh_quietly(now, force=True)
        return [self.step(workflow, now) for workflow in self.workflows]

    def run_forever(self, *, interval_s: float = 10.0, stop: threading.Event | None = None,
                    on_outcome: Callable[[AgentOutcome], None] | None = None) -> None:
        """Every ``interval_s``, evaluate the workflows that are not running and start those
        that fired, each in its own thread, until ``stop`` is set."""
        stop = stop or threading.Event()
        with ThreadPoolExecutor(max(1, len(self.workflows)),
                                thread_name_prefix="amml-agent") as pool:
            while not stop.is_set():
                self._refresh_quietly(None, force=False)
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


def _task_count(store: Store) -> int:
    from sqlalchemy import func, select

    from amml.store.labels import label_tasks

    with store.metadata.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(label_tasks)).scalar() or 0)


def _forecast_models(store: Store, since: float) -> list[str]:
    """Models with a forecast answered at or after ``since``."""
    from sqlalchemy import select

    from amml.store.metadata.schema import prediction_log

    query = (select(prediction_log.c.model).where(prediction_log.c.endpoint == "forecast",
                                                  prediction_log.c.received_at >= since)
             .distinct())
    with store.metadata.engine.connect() as conn:
        return sorted(conn.execute(query).scalars().all())


def load_workflows(sources: Iterable[str | Path], params: Mapping[str, Any] | None = None
                   ) -> list[ValidatedWorkflow]:
    from amml.engine.loading import compile_workflow

    return [compile_workflow(source, params) for source in sources]
