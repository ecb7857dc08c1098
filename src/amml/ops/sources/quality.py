"""Checking what sources read: timestamps, duplicates, order, time zones, numeric values.

Every source ends with :func:`finish_table`, which either raises a clear :class:`OpError`
(``on_bad_rows="error"``) or moves the bad rows to a quarantine report
(``on_bad_rows="quarantine"``): counts per problem and a few examples each, returned as the
source's ``report`` output. Rows are never dropped silently.

>>> import pandas as pd
>>> frame = pd.DataFrame({"t": ["2024-01-01 00:00", "bad", "2024-01-01 01:00"],
...                       "x": ["1", "2", "x"]})
>>> table, report = finish_table(frame, time="t", on_bad_rows="quarantine", source="demo")
>>> len(table), report["bad_rows"], sorted(report["problems"])
(1, 2, ['non_numeric', 'unparseable_time'])
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from amml._exceptions import OpError
from amml._lazy import pandas as pd

BadRows = Literal["error", "quarantine"]
EXAMPLES = 5


class Quarantine:
    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: dict[str, dict[str, Any]] = {}
        self.notes: dict[str, Any] = {}  # fixed without losing rows (e.g. sorted)
        self.bad_rows = 0

    def add(self, problem: str, rows: pd.DataFrame | list[Any], message: str) -> None:
        count = len(rows)
        if not count:
            return
        examples = (rows.head(EXAMPLES).astype(str).to_dict("records")
                    if isinstance(rows, pd.DataFrame) else [str(r) for r in rows[:EXAMPLES]])
        entry = self.problems.setdefault(problem, {"count": 0, "message": message,
                                                   "examples": []})
        entry["count"] += count
        entry["examples"] = (entry["examples"] + examples)[:EXAMPLES]
        self.bad_rows += count

    def report(self, rows_read: int, rows_kept: int) -> dict[str, Any]:
        return {"source": self.source, "rows_read": rows_read, "rows_kept": rows_kept,
                "bad_rows": self.bad_rows, "problems": self.problems, "notes": self.notes}

    def raise_if(self, policy: BadRows) -> None:
        if policy == "error" and self.problems:
            first = next(iter(self.problems.values()))
            others = sum(p["count"] for p in self.problems.values()) - first["count"]
            more = f" (and {others} more bad rows)" if others else ""
            raise OpError(f"{self.source}: {first['count']} rows with {first['message']}, "
                          f"e.g. {first['examples'][:3]}{more}; set on_bad_rows: quarantine "
                          "to keep the good rows and get a report")


def check_fields(fields: list[str] | None) -> None:
    """Config check shared by sources: a field list is non-empty and has no repeats."""
    if fields is not None and (not fields or len(set(fields)) != len(fields)):
        raise ValueError("fields must be a non-empty list without repeats")


def check_time_zone(tz: str | None) -> None:
    """Config check shared by sources: ``tz`` names a zone pandas knows."""
    if tz is not None:
        try:
            pd.Timestamp(0).tz_localize(tz)
        except Exception:
            raise ValueError(f"unknown time zone {tz!r}") from None


def parse_times(values: pd.Series, tz: str | None = None, unit: str | None = None
                ) -> tuple[pd.DatetimeIndex, np.ndarray, bool]:
    """Parse timestamps; returns (times, bad mask, whether zones were mixed)."""
    if unit is not None:
        times = pd.to_datetime(pd.to_numeric(values, errors="coerce"), unit=unit, utc=True)
        bad = times.isna().to_numpy() & values.notna().to_numpy() | values.isna().to_numpy()
        return pd.DatetimeIndex(times), bad, False
    if pd.api.types.is_datetime64_any_dtype(values):
        times = pd.DatetimeIndex(values)
        return times, np.asarray(times.isna()), False
    text = values.astype("string")
    mixed = False
    aware = text.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True, na=False)
    if aware.any() and not aware[text.notna()].all():
        mixed = True
    times = pd.to_datetime(text, errors="coerce", utc=bool(aware.any()) or tz is not None,
                           format="mixed")
    return pd.DatetimeIndex(times), np.asarray(times.isna()), mixed


def finish_table(frame: pd.DataFrame, *, time: str | None, on_bad_rows: BadRows = "error",
                 source: str = "source", tz: str | None = None, unit: str | None = None,
                 columns: list[str] | None = None, numeric: bool = True,
                 dedupe: Literal["error", "last", "first", "mean"] = "error",
                 ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Index by time, check it, coerce values to numbers; returns (table, report)."""
    quarantine = Quarantine(source)
    rows_read = len(frame)
    if columns:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise OpError(f"{source}: columns {missing} not found "
                          f"(columns: {', '.join(map(str, frame.columns))})")
    if time is not None:
        if time not in frame.columns:
            raise OpError(f"{source}: time column '{time}' not found "
                          f"(columns: {', '.join(map(str, frame.columns))})")
        times, bad, mixed = parse_times(frame[time], tz, unit)
        if mixed:
            raise OpError(f"{source}: time column '{time}' mixes values with and without a "
                          "time zone; give all timestamps a zone or none")
        quarantine.add("unparseable_time", frame.loc[bad], "unparseable timestamps")
        frame = frame.loc[~bad].drop(columns=[time])
        times = times[~bad]
        if tz is not None:
            times = times.tz_localize(tz) if times.tz is None else times.tz_convert(tz)
        # one unit for every source, so tables from different systems compare equal
        frame.index = pd.DatetimeIndex(times, name=time).as_unit("ns")
    if columns:
        frame = frame[[c for c in columns if c != time]]
    if numeric:
        for column in frame.columns:
            if pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(
                    frame[column]):
                continue
            converted = pd.to_numeric(frame[column], errors="coerce")
            bad = converted.isna() & frame[column].notna()
            if bad.any():
                quarantine.add("non_numeric", frame.loc[bad].reset_index(),
                               f"non-numeric values in '{column}'")
                frame = frame.loc[~bad]
                converted = converted.loc[~bad]
            frame[column] = converted
    if time is not None and len(frame):
        frame = _order_and_dedupe(frame, quarantine, dedupe, source)
    quarantine.raise_if(on_bad_rows)
    if len(frame) == 0:
        raise OpError(f"{source}: no rows" + (f" ({quarantine.bad_rows} bad rows quarantined)"
                                              if quarantine.bad_rows else
                                              " (check the time range and filters)"))
    return frame, quarantine.report(rows_read, len(frame))


def _order_and_dedupe(frame: pd.DataFrame, quarantine: Quarantine, dedupe: str,
                      source: str) -> pd.DataFrame:
    if not frame.index.is_monotonic_increasing:
        # reported, not dropped: the rows are good, only their order was not
        backwards = int((np.diff(frame.index.asi8) < 0).sum())
        frame = frame.sort_index(kind="stable")
        quarantine.notes["reordered"] = {"count": backwards,
                                         "message": "timestamps out of order (sorted)"}
    duplicated = frame.index.duplicated(keep=False)
    if duplicated.any():
        if dedupe == "error":
            examples = frame.index[duplicated][:3].astype(str).tolist()
            raise OpError(f"{source}: {int(frame.index.duplicated().sum())} duplicate "
                          f"timestamps, e.g. {examples}; set dedupe: last, first or mean")
        if dedupe == "mean":
            frame = frame.groupby(level=0).mean()
        else:
            frame = frame[~frame.index.duplicated(keep=dedupe)]
    return frame
