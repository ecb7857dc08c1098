"""Standard five-field cron schedules (minute hour day-of-month month day-of-week), in UTC.

No cron library is a dependency, so this is the small, well-known subset every crontab
accepts: ``*``, numbers, ranges ``a-b``, steps ``*/n`` and ``a-b/n``, lists ``a,b``, month and
weekday names (``jan``, ``mon``), weekday 7 as Sunday, and the macros ``@hourly``, ``@daily``
(``@midnight``), ``@weekly``, ``@monthly``, ``@yearly`` (``@annually``). As in Vixie cron, when
both day fields are restricted a day matches if either does.

>>> schedule = CronSchedule.parse("*/15 9-17 * * mon-fri")
>>> from datetime import datetime, timezone
>>> schedule.next_after(datetime(2026, 11, 27, 17, 50, tzinfo=timezone.utc)).isoformat()
'2026-11-30T09:00:00+00:00'
>>> CronSchedule.parse("61 * * * *")
Traceback (most recent call last):
...
amml._exceptions.CronError: minute: 61 is out of range 0-59
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from amml._exceptions import CronError

MACROS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
          "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *",
          "@annually": "0 0 1 1 *"}
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
# name, low, high, names (index + offset = value)
_FIELDS = (("minute", 0, 59, None, 0), ("hour", 0, 23, None, 0),
           ("day of month", 1, 31, None, 0), ("month", 1, 12, _MONTHS, 1),
           ("day of week", 0, 7, _DAYS, 0))
#: Searching further than this for a matching minute means the schedule never fires
#: (``0 0 30 2 *``: February 30th).
_HORIZON_DAYS = 366 * 5


def _value(text: str, name: str, low: int, high: int, names: list[str] | None,
           offset: int) -> int:
    lowered = text.lower()
    if names and lowered in names:
        return names.index(lowered) + offset
    if not text.isdigit():
        allowed = f" or a name ({', '.join(names)})" if names else ""
        raise CronError(f"{name}: '{text}' is not a number{allowed}")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{name}: {value} is out of range {low}-{high}")
    return value


def _field(text: str, name: str, low: int, high: int, names: list[str] | None,
           offset: int) -> frozenset[int]:
    found: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{name}: empty item in '{text}'")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise CronError(f"{name}: step '{step_text}' must be a positive number")
            step = int(step_text)
        if base == "*":
            start, stop = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start = _value(first, name, low, high, names, offset)
            stop = _value(last, name, low, high, names, offset)
            if start > stop:
                raise CronError(f"{name}: range '{base}' runs backwards")
        else:
            start = _value(base, name, low, high, names, offset)
            stop = high if slash else start
        found.update(range(start, stop + 1, step))
    return frozenset(found)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed schedule; :meth:`next_after` gives the first matching minute after a time."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        if not isinstance(expression, str) or not expression.strip():
            raise CronError("a cron schedule must be a non-empty string such as '0 * * * *'")
        text = expression.strip()
        if text.startswith("@"):
            if text.lower() not in MACROS:
                raise CronError(f"unknown macro '{text}' (known: {', '.join(MACROS)})")
            text = MACROS[text.lower()]
        parts = text.split()
        if len(parts) != 5:
            raise CronError(f"a cron schedule has 5 fields (minute hour day month weekday), "
                            f"got {len(parts)} in '{expression}'")
        values = [_field(part, *spec) for part, spec in zip(parts, _FIELDS, strict=True)]
        weekdays = frozenset(0 if d == 7 else d for d in values[4])
        return cls(expression.strip(), values[0], values[1], values[2], values[3], weekdays,
                   parts[2] != "*", parts[4] != "*")

    def _day_matches(self, day: datetime) -> bool:
        if day.month not in self.months:
            return False
        by_date = day.day in self.days
        by_weekday = (day.weekday() + 1) % 7 in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return by_date or by_weekday
        return by_date and by_weekday

    def next_after(self, moment: datetime) -> datetime | None:
        """The first minute strictly after ``moment`` that matches (UTC), or None if the
        schedule never fires (a date that does not exist)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
        start = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = start.replace(hour=0, minute=0)
        for _ in range(_HORIZON_DAYS):
            if self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        candidate = day.replace(hour=hour, minute=minute)
                        if candidate >= start:
                            return candidate
            day += timedelta(days=1)
        return None

    def fires_between(self, after: float, until: float) -> float | None:
        """The first scheduled time in ``(after, until]`` (epoch seconds), or None."""
        found = self.next_after(datetime.fromtimestamp(after, UTC))
        if found is None or found.timestamp() > until:
            return None
        return found.timestamp()
