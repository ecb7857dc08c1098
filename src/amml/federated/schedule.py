"""When federated rounds run, and when a client may take part.

* :class:`Cron`: the five-field cron expression (minute, hour, day of month, month, day of
  week; ``*``, ``*/n``, ``a-b``, ``a,b``): rounds start when the clock matches.
* a data trigger: rounds start once ``min_clients`` clients hold at least ``min_new_rows``
  rows they have not trained on yet (their health reports say how many).
* :class:`AvailabilityWindow`: ``HH:MM-HH:MM`` in the client's local time (it may wrap past
  midnight); outside it the client declines to train and the round goes on without it.

>>> cron = Cron.parse("*/15 9-17 * * 1-5")
>>> from datetime import datetime
>>> cron.matches(datetime(2026, 11, 30, 9, 45)), cron.matches(datetime(2026, 11, 29, 9, 45))
(True, False)
>>> cron.next_after(datetime(2026, 11, 27, 17, 50))
datetime.datetime(2026, 11, 30, 9, 0)
>>> Schedule(min_new_rows=24, min_clients=2).due(new_rows={"a": 30, "b": 24, "c": 3})
True
>>> AvailabilityWindow.parse("22:00-06:00").contains(datetime(2026, 1, 1, 23, 30).time())
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from amml._exceptions import ConfigurationError

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12),
           ("weekday", 0, 6))


def _field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if body == "*":
            start, end = low, high
        elif "-" in body:
            a, b = body.split("-", 1)
            start, end = int(a), int(b)
        else:
            start = end = int(body)
            if step_text:
                end = high
        if step < 1 or not low <= start <= end <= high:
            raise ValueError(f"cron {name} '{part}' is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    minute: frozenset[int]
    hour: frozenset[int]
    day: frozenset[int]
    month: frozenset[int]
    weekday: frozenset[int]  # 0 = Sunday, as in cron

    @classmethod
    def parse(cls, expression: str) -> Cron:
        parts = expression.split()
        if len(parts) != 5:
            raise ConfigurationError(f"cron expression '{expression}' needs 5 fields (minute "
                                     "hour day month weekday), e.g. '0 */6 * * *'")
        try:
            return cls(*(_field(text, name, low, high)
                         for text, (name, low, high) in zip(parts, _FIELDS, strict=True)))
        except ValueError as exc:
            raise ConfigurationError(f"cron expression '{expression}': {exc}") from None

    def matches(self, when: datetime) -> bool:
        return (when.minute in self.minute and when.hour in self.hour
                and when.day in self.day and when.month in self.month
                and (when.weekday() + 1) % 7 in self.weekday)

    def next_after(self, when: datetime) -> datetime:
        """The first matching minute strictly after ``when``."""
        candidate = when.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(366 * 24 * 60):
            if self.matches(candidate):
                return candidate
            candidate += timedelta(minutes=1)
        raise ConfigurationError("cron expression never matches within a year")


@dataclass(frozen=True)
class AvailabilityWindow:
    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> AvailabilityWindow:
        try:
            a, b = text.split("-")
            start, end = (time.fromisoformat(a.strip()) if a.strip() != "24:00" else time.max,
                          time.fromisoformat(b.strip()) if b.strip() != "24:00" else time.max)
        except ValueError:
            raise ConfigurationError(f"availability window '{text}': expected HH:MM-HH:MM, "
                                     "e.g. 22:00-06:00") from None
        return cls(start, end)

    def contains(self, now: time) -> bool:
        if self.start <= self.end:
            return self.start <= now <= self.end
        return now >= self.start or now <= self.end  # wraps past midnight


class Schedule(BaseModel):
    """A cron schedule, a new-data trigger, or both (either starts a round)."""

    model_config = ConfigDict(extra="forbid")

    cron: str | None = None
    min_new_rows: int | None = Field(None, ge=1)
    min_clients: int = Field(1, ge=1, description="how many clients must hold min_new_rows")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                Cron.parse(value)
            except ConfigurationError as exc:  # pydantic reports ValueErrors with the field
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _something(self) -> Schedule:
        if self.cron is None and self.min_new_rows is None:
            raise ValueError("a schedule needs 'cron' or 'min_new_rows'")
        return self

    def due(self, now: datetime | None = None, new_rows: Mapping[str, int] | None = None
            ) -> bool:
        """Whether a round should start now: the clock matches the cron expression, or
        enough clients report enough new rows."""
        if self.cron is not None and Cron.parse(self.cron).matches(now or datetime.now()):
            return True
        if self.min_new_rows is not None and new_rows:
            ready = sum(1 for count in new_rows.values() if count >= self.min_new_rows)
            return ready >= self.min_clients
        return False
