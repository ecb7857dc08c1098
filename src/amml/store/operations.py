"""Records of the operations loop: why ``amml agent`` ran a workflow, and what the promotion
policy decided. Migration 0011 creates the tables.

``trigger_cursors``: per workflow and trigger, what the trigger has already seen (the last
drift event id, the label count's time, a source's state, the last cron time) as JSON.
``trigger_runs``: one row per attempt of a triggered run: workflow, trigger, the reason in
words, the run id, the attempt number, the status (``running``, ``succeeded``, ``failed``)
and times. ``agent_locks``: one row per workflow being run by an agent, so two agents never
run the same workflow at once (a lock expires, so a killed agent frees it).
``promotion_decisions``: every decision of :mod:`amml.registry.policy`, promoted or not,
with its evidence (JSON) and the ledger entry that records a promotion.

>>> import tempfile
>>> from amml.store import open_store
>>> with open_store(tempfile.mkdtemp()) as store:
...     records = OperationsRecords(store)
...     run = records.start_run("retrain", "drift:ab12", "drift event 7 of oil", attempt=1)
...     records.finish_run(run, "succeeded", run_id="r1")
...     [(r["workflow"], r["reason"], r["status"]) for r in records.runs("retrain")]
[('retrain', 'drift event 7 of oil', 'succeeded')]
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from amml.store.metadata.schema import BigId, metadata

trigger_cursors = Table(
    "trigger_cursors",
    metadata,
    Column("workflow", String(200), nullable=False),
    Column("trigger", String(64), nullable=False),
    Column("cursor", Text, nullable=False),  # JSON
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("workflow", "trigger"),
)

trigger_runs = Table(
    "trigger_runs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("workflow", String(200), nullable=False),
    Column("trigger", String(255), nullable=False),
    Column("reason", Text, nullable=False),
    Column("run_id", String(32)),
    Column("attempt", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("error", Text),
    Index("ix_trigger_runs_workflow", "workflow", "started_at"),
)

agent_locks = Table(
    "agent_locks",
    metadata,
    Column("workflow", String(200), primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("acquired_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

promotion_decisions = Table(
    "promotion_decisions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("candidate_version", Integer, nullable=False),
    Column("champion_version", Integer),
    Column("promoted", Boolean, nullable=False),
    Column("reason", Text, nullable=False),
    Column("evidence", Text, nullable=False),  # JSON
    Column("ledger", String(255)),
    Column("ledger_seq", Integer),
    Column("decided_at", Float, nullable=False),
    Index("ix_promotion_decisions_name", "name", "decided_at"),
)


def holder_id() -> str:
    """``host:pid``: who holds an agent lock."""
    return f"{socket.gethostname()}:{os.getpid()}"


class OperationsRecords:
    """Reads and writes the operations tables of one store."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.engine = store.metadata.engine

    # -- trigger cursors -------------------------------------------------------------------
    def cursor(self, workflow: str, trigger: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            text = conn.execute(select(trigger_cursors.c.cursor).where(
                trigger_cursors.c.workflow == workflow,
                trigger_cursors.c.trigger == trigger)).scalar()
        return None if text is None else json.loads(text)

    def set_cursor(self, workflow: str, trigger: str, cursor: dict[str, Any]) -> None:
        text, now = json.dumps(cursor, sort_keys=True), time.time()
        where = (trigger_cursors.c.workflow == workflow, trigger_cursors.c.trigger == trigger)
        for _attempt in range(5):
            with self.engine.begin() as conn:
                if conn.execute(update(trigger_cursors).where(*where)
                                .values(cursor=text, updated_at=now)).rowcount:
                    return
                try:
                    conn.execute(insert(trigger_cursors), [dict(
                        workflow=workflow, trigger=trigger, cursor=text, updated_at=now)])
                    return
                except IntegrityError:  # another agent created it: update instead
                    continue

    # -- runs ------------------------------------------------------------------------------
    def start_run(self, workflow: str, trigger: str, reason: str, *, attempt: int) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(insert(trigger_runs).values(
                workflow=workflow, trigger=trigger, reason=reason, attempt=int(attempt),
                status="running", started_at=time.time()))
            return int(result.inserted_primary_key[0])

    def finish_run(self, row_id: int, status: str, *, run_id: str | None = None,
                   error: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(trigger_runs).where(trigger_runs.c.id == row_id).values(
                status=status, run_id=run_id, error=error, ended_at=time.time()))

    def runs(self, workflow: str | None = None, limit: int | None = None
             ) -> list[dict[str, Any]]:
        query = select(trigger_runs).order_by(trigger_runs.c.id)
        if workflow is not None:
            query = query.where(trigger_runs.c.workflow == workflow)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings().all()]
        return rows[-limit:] if limit else rows

    # -- locks -----------------------------------------------------------------------------
    def acquire(self, workflow: str, *, ttl_s: float = 3600.0, holder: str | None = None
                ) -> bool:
        """Take the workflow's lock (or an expired one); False if another agent holds it."""
        holder, now = holder or holder_id(), time.time()
        with self.engine.begin() as conn:
            conn.execute(delete(agent_locks).where(agent_locks.c.workflow == workflow,
                                                   agent_locks.c.expires_at < now))
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(agent_locks), [dict(
                    workflow=workflow, holder=holder, acquired_at=now, expires_at=now + ttl_s)])
        except IntegrityError:
            return False
        return True

    def release(self, workflow: str, *, holder: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(agent_locks).where(agent_locks.c.workflow == workflow,
                                                   agent_locks.c.holder == (holder
                                                                            or holder_id())))

    # -- promotion decisions ---------------------------------------------------------------
    def add_decision(self, *, name: str, candidate_version: int,
                     champion_version: int | None, promoted: bool, reason: str,
                     evidence: dict[str, Any], ledger: str | None = None,
                     ledger_seq: int | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(promotion_decisions), [dict(
                name=name, candidate_version=int(candidate_version),
                champion_version=champion_version, promoted=bool(promoted), reason=reason,
                evidence=json.dumps(evidence, default=float), ledger=ledger,
                ledger_seq=ledger_seq, decided_at=time.time())])

    def decisions(self, name: str | None = None) -> list[dict[str, Any]]:
        query = select(promotion_decisions).order_by(promotion_decisions.c.id)
        if name is not None:
            query = query.where(promotion_decisions.c.name == name)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [{**row, "evidence": json.loads(row["evidence"])} for row in rows]
