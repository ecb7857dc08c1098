"""Triggers: when ``amml agent`` runs a workflow by itself.

A workflow may declare ``triggers:``, a list of one-key mappings (YAML) or trigger objects
(Python); either front-end gives the same :class:`TriggerIR` in the workflow's IR:

.. code-block:: yaml

    triggers:
      - cron: "*/30 * * * *"                  # a five-field schedule, UTC (amml.lang.cron)
      - drift: {model: oil, detector: attribution}   # a new drift event of the model
      - drift: {model: oil, wait_s: 30}       # ... once it is 30 s old (the new regime has
                                              #     data to learn from by then)
      - drift: {model: oil, alias: champion}  # ... only events of the version serving now
      - labels: {count: 50, model: oil}       # 50 new labels (or actuals) since the last run
      - data: raw                             # the source step 'raw' reads something new

.. code-block:: python

    with Workflow("retrain", triggers=[Cron("*/30 * * * *"), Drift("oil")]) as wf:
        raw = ops.source.sql(...)
        wf.trigger(NewData(raw))

Short forms: ``drift: oil`` is ``drift: {model: oil}``, ``data: raw`` is ``data: {step: raw}``,
``cron: "..."`` is ``cron: {schedule: "..."}``. A workflow without triggers has the same IR
bytes as before triggers existed. Evaluation (what fired, and why) is
:mod:`amml.engine.triggers`; this module only says what a well-formed trigger is.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from amml.lang.cron import CronError, CronSchedule

TriggerKind = Literal["cron", "drift", "labels", "data"]
KINDS: tuple[str, ...] = ("cron", "drift", "labels", "data")
#: Each kind's fields: name -> (required, short form's field)
FIELDS: dict[str, dict[str, bool]] = {
    "cron": {"schedule": True},
    "drift": {"model": True, "detector": False, "min_confidence": False, "wait_s": False,
              "alias": False},
    "labels": {"count": True, "model": False},
    "data": {"step": True},
}
SHORT_FIELD = {"cron": "schedule", "drift": "model", "labels": "count", "data": "step"}


class TriggerIR(BaseModel):
    """One trigger: its kind and fields. ``key`` names it in the agent's records."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    kind: TriggerKind
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")

    def to_data(self) -> dict[str, Any]:
        return {self.kind: dict(self.with_)}

    @property
    def key(self) -> str:
        """``kind:digest``: stable while the trigger is unchanged (the agent keeps its cursor
        under it), new when it is edited."""
        text = json.dumps(self.to_data(), sort_keys=True, separators=(",", ":"))
        return f"{self.kind}:{hashlib.sha256(text.encode()).hexdigest()[:12]}"

    def describe(self) -> str:
        w = self.with_
        if self.kind == "cron":
            return f"cron '{w.get('schedule')}'"
        if self.kind == "drift":
            extra = f" ({w['detector']})" if w.get("detector") else ""
            return f"drift of {w.get('model')}{extra}"
        if self.kind == "labels":
            of = f" of {w['model']}" if w.get("model") else ""
            return f"{w.get('count')} new labels{of}"
        return f"new data in step '{w.get('step')}'"


Problem = tuple[tuple[Any, ...], str, str | None]  # (path below the trigger, message, hint)


def normalise(item: Any) -> tuple[str | None, dict[str, Any] | None, list[Problem]]:
    """A trigger as written (``{"drift": "oil"}``) -> (kind, fields, problems)."""
    if not isinstance(item, dict):
        return None, None, [((), f"a trigger must be a mapping such as {{cron: '0 * * * *'}}, "
                             f"got {type(item).__name__}", f"kinds: {', '.join(KINDS)}")]
    if len(item) != 1:
        keys = ", ".join(map(str, item)) or "none"
        return None, None, [((), f"a trigger has exactly one kind key, got {keys}",
                             f"kinds: {', '.join(KINDS)}")]
    kind, fields = next(iter(item.items()))
    if kind not in KINDS:
        from amml.lang.params import did_you_mean

        hint = did_you_mean(str(kind), KINDS) or f"kinds: {', '.join(KINDS)}"
        return None, None, [((kind,), f"unknown trigger kind '{kind}'", hint)]
    if not isinstance(fields, dict):
        fields = {SHORT_FIELD[kind]: fields}
    return str(kind), {str(k): v for k, v in fields.items()}, check(str(kind), fields)


def check(kind: str, fields: dict[str, Any]) -> list[Problem]:
    """Problems with a trigger's fields (paths below the kind key)."""
    problems: list[Problem] = []
    known = FIELDS[kind]
    for name in fields:
        if name not in known:
            from amml.lang.params import did_you_mean

            hint = did_you_mean(str(name), known) or f"'{kind}' takes: {', '.join(known)}"
            problems.append(((kind, name), f"unknown field '{name}' in a {kind} trigger", hint))
    for name, required in known.items():
        if required and fields.get(name) is None:
            problems.append(((kind,), f"a {kind} trigger needs '{name}'",
                             f"write '{kind}: {{{name}: ...}}'"))
    value = fields.get
    if kind == "cron" and value("schedule") is not None:
        try:
            CronSchedule.parse(value("schedule"))
        except CronError as exc:
            problems.append(((kind, "schedule"), f"invalid cron schedule: {exc}",
                             "five fields: minute hour day-of-month month day-of-week, "
                             "e.g. '*/15 * * * *'"))
    for name in ("model", "detector", "step", "alias"):
        if name in known and value(name) is not None and (
                not isinstance(value(name), str) or not value(name)):
            problems.append(((kind, name), f"'{name}' must be a non-empty string, "
                             f"got {value(name)!r}", None))
    if kind == "labels" and value("count") is not None:
        count = value("count")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            problems.append(((kind, "count"), f"'count' must be a whole number of at least 1, "
                             f"got {count!r}", "e.g. 'labels: {count: 50}'"))
    if kind == "drift" and value("wait_s") is not None:
        wait = value("wait_s")
        if (isinstance(wait, bool) or not isinstance(wait, int | float)
                or not math.isfinite(wait) or wait < 0):
            problems.append(((kind, "wait_s"), f"'wait_s' must be a number of seconds, 0 or "
                             f"more, got {wait!r}", None))
    if kind == "drift" and value("min_confidence") is not None:
        confidence = value("min_confidence")
        if (isinstance(confidence, bool) or not isinstance(confidence, int | float)
                or not math.isfinite(confidence) or not 0 <= confidence <= 1):
            problems.append(((kind, "min_confidence"), f"'min_confidence' must be a number "
                             f"between 0 and 1, got {confidence!r}", None))
    return problems


# -- the Python front-end's trigger objects -----------------------------------------------
@dataclass(frozen=True)
class Cron:
    """Run on a five-field cron schedule (UTC)."""

    schedule: str

    def to_trigger(self) -> dict[str, Any]:
        return {"cron": {"schedule": self.schedule}}


@dataclass(frozen=True)
class Drift:
    """Run when ``amml monitor`` records a new drift event of ``model`` (of ``detector``,
    at ``min_confidence`` or above), once it is ``wait_s`` seconds old; with ``alias`` only
    events of the version that alias points at (a drift of a version no longer served is
    history)."""

    model: str
    detector: str | None = None
    min_confidence: float | None = None
    wait_s: float | None = None
    alias: str | None = None

    def to_trigger(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"model": self.model}
        for name in ("detector", "min_confidence", "wait_s", "alias"):
            if getattr(self, name) is not None:
                fields[name] = getattr(self, name)
        return {"drift": fields}


@dataclass(frozen=True)
class Labels:
    """Run when ``count`` new labels (of ``model``, or of any) arrived since the last run."""

    count: int
    model: str | None = None

    def to_trigger(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"count": self.count}
        if self.model is not None:
            fields["model"] = self.model
        return {"labels": fields}


@dataclass(frozen=True)
class NewData:
    """Run when a source step's external state changes (a new row, a new file version).
    ``step`` is the step's name or its result (``raw``) inside the workflow."""

    step: Any

    def to_trigger(self) -> dict[str, Any]:
        step = self.step
        name = step if isinstance(step, str) else step.node.name
        return {"data": {"step": name}}


TriggerLike = Cron | Drift | Labels | NewData | dict
