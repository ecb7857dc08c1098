"""Evaluate a workflow's triggers against the store: did it fire, and why.

Each trigger keeps a cursor in the store (``trigger_cursors``) of what it has already seen:

* ``cron``: the last time it was checked; fires when a scheduled minute falls after it.
* ``drift``: the last drift event id seen; fires on a newer event of the model (and
  detector, at ``min_confidence`` or above) that ``amml monitor`` recorded, once it was
  recorded ``wait_s`` seconds ago; with ``alias``, only events of the version the alias
  points at when the trigger is evaluated.
* ``labels``: the time labels were last counted from; fires once ``count`` labels
  (:func:`amml.store.labels.count_labels`) and actuals (ground truth of served forecasts)
  arrived since.
* ``data``: the source step's state token (``Op.source_state``: a file's size and time, a
  table's row count and newest key); fires when it changes.

The first evaluation of a trigger only sets its cursor ("watching from now"), except ``cron``,
which counts the current minute: starting an agent does not replay history. The cursor moves
on only when the agent starts the run (:meth:`TriggerCheck.commit`), so a workflow that
another agent is running fires again later.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from amml._exceptions import AMMLError, TriggerError
from amml.lang.cron import CronSchedule
from amml.lang.triggers import TriggerIR
from amml.lang.validate import ValidatedWorkflow
from amml.store import Store
from amml.store.drift_events import DriftRecords
from amml.store.operations import OperationsRecords


@dataclass
class TriggerCheck:
    """One trigger's evaluation: whether it fired, why, and the cursor to keep."""

    workflow: str
    trigger: TriggerIR
    fired: bool
    reason: str
    cursor: dict[str, Any] = field(default_factory=dict)
    changed: bool = True  # the cursor differs from the stored one

    def commit(self, records: OperationsRecords) -> None:
        if self.changed:
            records.set_cursor(self.workflow, self.trigger.key, self.cursor)


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_trigger(store: Store, workflow: ValidatedWorkflow, trigger: TriggerIR, *,
                  now: float | None = None, records: OperationsRecords | None = None
                  ) -> TriggerCheck:
    """Evaluate ``trigger`` of ``workflow`` at ``now`` (epoch seconds; default: the clock)."""
    now = time.time() if now is None else float(now)
    records = records or OperationsRecords(store)
    name = workflow.ir.name
    cursor = records.cursor(name, trigger.key)
    w = trigger.with_
    if trigger.kind == "cron":
        schedule = CronSchedule.parse(w["schedule"])
        after = float(cursor["checked"]) if cursor else now - 60.0
        due = schedule.fires_between(after, now)
        reason = (f"cron '{schedule.expression}' due at {_iso(due)}" if due is not None
                  else "")
        return TriggerCheck(name, trigger, due is not None, reason, {"checked": now})
    if trigger.kind == "drift":
        return _check_drift(store, name, trigger, cursor, now)
    if trigger.kind == "labels":
        return _check_labels(store, name, trigger, cursor, now)
    if trigger.kind == "data":
        return _check_data(store, workflow, trigger, cursor)
    raise TriggerError(f"unknown trigger kind '{trigger.kind}'")


def _check_drift(store: Store, name: str, trigger: TriggerIR,
                 cursor: dict[str, Any] | None, now: float) -> TriggerCheck:
    w = trigger.with_
    events = DriftRecords(store).events(w["model"])
    seen = int(cursor["event_id"]) if cursor else None
    newest = max((int(e["id"]) for e in events), default=0)
    if seen is None:
        return TriggerCheck(name, trigger, False, "", {"event_id": newest})
    serving = None
    if w.get("alias"):
        from amml.store.model_registry import ModelRegistry

        serving = ModelRegistry(store).alias_version(w["model"], w["alias"])
    fresh = [e for e in events if int(e["id"]) > seen
             and (not w.get("detector") or e["detector"] == w["detector"])
             and e["confidence"] >= float(w.get("min_confidence") or 0.0)
             and (serving is None or int(e["version"]) == int(serving))]
    wait = float(w.get("wait_s") or 0.0)
    ready = [e for e in fresh if now - float(e["recorded_at"]) >= wait]
    if not ready:  # keep the cursor before an event still waiting
        waiting = min((int(e["id"]) for e in fresh), default=None)
        keep = newest if waiting is None else max(seen, waiting - 1)
        return TriggerCheck(name, trigger, False, "", {"event_id": keep}, keep != seen)
    first = ready[0]
    more = f" (and {len(ready) - 1} more)" if len(ready) > 1 else ""
    reason = (f"drift event {first['id']} of {first['model']}@{first['version']}: "
              f"{first['detector']}, confidence {first['confidence']:.3g}, drift point "
              f"{_iso(first['drift_point'])}{more}")
    return TriggerCheck(name, trigger, True, reason,
                        {"event_id": max(int(e["id"]) for e in ready)})


def _count_labels(store: Store, model: str | None, since: float) -> int:
    """Labels (versions of task labels) plus actuals (ground truth of forecasts) recorded at
    or after ``since``: both are what a person or a sensor told us was true."""
    try:
        from sqlalchemy import func, select

        from amml.store.labels import actuals, count_labels
    except ImportError as exc:
        raise TriggerError(f"labels triggers need the label store (amml.store.labels): "
                           f"{exc}") from None
    query = select(func.count()).select_from(actuals).where(actuals.c.recorded_at >= since)
    if model is not None:
        query = query.where(actuals.c.model == model)
    with store.metadata.engine.connect() as conn:
        recorded = int(conn.execute(query).scalar() or 0)
    return int(count_labels(store, model=model, since=since)) + recorded


def _check_labels(store: Store, name: str, trigger: TriggerIR,
                  cursor: dict[str, Any] | None, now: float) -> TriggerCheck:
    w = trigger.with_
    if cursor is None:
        return TriggerCheck(name, trigger, False, "", {"since": now})
    since = float(cursor["since"])
    count = _count_labels(store, w.get("model"), since)
    if count < int(w["count"]):
        return TriggerCheck(name, trigger, False, "", cursor, changed=False)
    of = f" of {w['model']}" if w.get("model") else ""
    return TriggerCheck(name, trigger, True,
                        f"{count} new labels{of} since {_iso(since)} (threshold {w['count']})",
                        {"since": now})


def _source_state(store: Store, workflow: ValidatedWorkflow, step: str) -> str | None:
    resolved = workflow.steps[step]
    op_cls: Any = resolved.op
    try:
        return op_cls(resolved.config).state_token(store)
    except AMMLError as exc:
        raise TriggerError(f"data trigger: cannot read the state of step '{step}': "
                           f"{exc}") from None


def _check_data(store: Store, workflow: ValidatedWorkflow, trigger: TriggerIR,
                cursor: dict[str, Any] | None) -> TriggerCheck:
    name, step = workflow.ir.name, trigger.with_["step"]
    state = _source_state(store, workflow, step)
    if state is None:  # the source cannot tell: never fire on guesswork
        return TriggerCheck(name, trigger, False, "", cursor or {}, changed=False)
    if cursor is None:
        return TriggerCheck(name, trigger, False, "", {"state": state})
    if cursor.get("state") == state:
        return TriggerCheck(name, trigger, False, "", cursor, changed=False)
    return TriggerCheck(name, trigger, True, f"new data in step '{step}'", {"state": state})


def check_workflow(store: Store, workflow: ValidatedWorkflow, *, now: float | None = None
                   ) -> list[TriggerCheck]:
    """Every trigger of ``workflow``, evaluated (nothing stored yet)."""
    records = OperationsRecords(store)
    return [check_trigger(store, workflow, trigger, now=now, records=records)
            for trigger in workflow.ir.triggers]
