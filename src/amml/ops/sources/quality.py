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
# Dates that start with two small numbers (01/02/2024, 1.2.24): day-first or month-first.
# ISO dates (2024-01-02) are never ambiguous, and must not be tried day-first: pandas would
# read 2024-01-02 as February 1st.
DAY_OR_MONTH_FIRST = r"^\s*\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}(?:\D|$)"
# How text spells NaN. Such a cell is not "missing" (an empty cell is): something wrote a
# computed NaN into the file, and a time series of NaNs is a bad input, not a gap.
NAN_TEXT = frozenset({"nan", "-nan", "+nan", "1.#qnan", "-1.#qnan", "1.#ind", "-1.#ind"})


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


def parse_times(values: pd.Series, tz: str | None = None, unit: str | None = None, *,
                dayfirst: bool | None = None, time_format: str | None = None
                ) -> tuple[pd.DatetimeIndex, np.ndarray, bool]:
    """Parse timestamps; returns (times, bad mask, whether zones were mixed).

    ``time_format`` (strftime codes) reads every value with that one format; ``dayfirst``
    says how 01/02/2024 reads. Neither given: each value is read on its own (month-first for
    01/02/2024); :func:`ambiguous_dates` tells when that guess matters."""
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
    utc = bool(aware.any()) or tz is not None
    if time_format is not None:
        times = pd.to_datetime(text, errors="coerce", utc=utc, format=time_format)
    else:
        times = pd.to_datetime(text, errors="coerce", utc=utc, format="mixed",
                               dayfirst=bool(dayfirst))
    return pd.DatetimeIndex(times), np.asarray(times.isna()), mixed


def ambiguous_dates(values: pd.Series, times: pd.DatetimeIndex) -> list[str]:
    """Examples of values that ``times`` (read month-first) would read differently day-first,
    such as 01/02/2024: January 2nd or February 1st. Empty when the order does not matter."""
    if pd.api.types.is_datetime64_any_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return []
    text = values.astype("string")
    candidates = text.str.match(DAY_OR_MONTH_FIRST, na=False).to_numpy()
    if not candidates.any():
        return []
    month_first = pd.Series(times[candidates])
    day_first = pd.Series(pd.to_datetime(text[candidates], errors="coerce", format="mixed",
                                         dayfirst=True, utc=times.tz is not None)).set_axis(
        month_first.index)
    if times.tz is not None:
        day_first = day_first.dt.tz_convert(times.tz)
    differs = (month_first != day_first) & month_first.notna() & day_first.notna()
    shown = text[candidates][differs.to_numpy()].head(3)
    pairs = zip(shown, month_first[differs].head(3), day_first[differs].head(3), strict=True)
    return [f"'{raw}' (month-first {a:%Y-%m-%d}, day-first {b:%Y-%m-%d})"
            for raw, a, b in pairs]


def finish_table(frame: pd.DataFrame, *, time: str | None, on_bad_rows: BadRows = "error",
                 source: str = "source", tz: str | None = None, unit: str | None = None,
                 columns: list[str] | None = None, numeric: bool = True,
                 dedupe: Literal["error", "last", "first", "mean"] = "error",
                 dayfirst: bool | None = None, time_format: str | None = None,
                 ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Index by time, check it, coerce values to finite numbers; returns (table, report).

    Columns with the same name, and dates whose day and month order is a guess, are errors
    whatever ``on_bad_rows`` says: they are not bad rows but a misread file."""
    quarantine = Quarantine(source)
    rows_read = len(frame)
    repeated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if repeated:
        raise OpError(f"{source}: several columns are named {', '.join(map(repr, repeated))}; "
                      "give each column its own name")
    if columns:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise OpError(f"{source}: columns {missing} not found "
                          f"(columns: {', '.join(map(str, frame.columns))})")
    if time is not None:
        if time not in frame.columns:
            raise OpError(f"{source}: time column '{time}' not found "
                          f"(columns: {', '.join(map(str, frame.columns))})")
        times, bad, mixed = parse_times(frame[time], tz, unit, dayfirst=dayfirst,
                                        time_format=time_format)
        if mixed:
            raise OpError(f"{source}: time column '{time}' mixes values with and without a "
                          "time zone; give all timestamps a zone or none")
        if dayfirst is None and time_format is None and unit is None:
            examples = ambiguous_dates(frame[time], times)
            if examples:
                raise OpError(
                    f"{source}: time column '{time}' has dates that read differently day-first "
                    f"and month-first, e.g. {', '.join(examples)}; state the order with "
                    "dayfirst: true or false, or time_format (e.g. '%d/%m/%Y'), or write "
                    "ISO 8601 dates (2024-02-01)")
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
            frame = _finite_numbers(frame, column, quarantine)
    if time is not None and len(frame):
        frame = _order_and_dedupe(frame, quarantine, dedupe, source)
    quarantine.raise_if(on_bad_rows)
    if len(frame) == 0:
        raise OpError(f"{source}: no rows" + (f" ({quarantine.bad_rows} bad rows quarantined)"
                                              if quarantine.bad_rows else
                                              " (check the time range and filters)"))
    return frame, quarantine.report(rows_read, len(frame))


def _finite_numbers(frame: pd.DataFrame, column: Any, quarantine: Quarantine) -> pd.DataFrame:
    """``column`` as finite numbers (or empty cells): text that is no number and values that
    are not finite (inf, -inf, nan written out, 1e400 beyond float range) go to quarantine."""
    values = frame[column]
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_integer_dtype(values):
        return frame
    if pd.api.types.is_numeric_dtype(values):
        converted, nan_text = values, np.zeros(len(values), dtype=bool)
    else:
        converted = pd.to_numeric(values, errors="coerce")
        nan_text = (values.astype("string").str.strip().str.lower().isin(NAN_TEXT)
                    .fillna(False).to_numpy(dtype=bool))
    unread = (converted.isna() & values.notna()).to_numpy(dtype=bool)
    non_finite = np.isinf(converted.to_numpy(dtype=float, na_value=np.nan)) | (unread & nan_text)
    non_numeric = unread & ~nan_text
    for problem, bad, message in (
            ("non_finite", non_finite, f"non-finite values (inf, -inf, nan, or beyond the float "
                                       f"range like 1e400) in '{column}'; leave a missing "
                                       "value's cell empty"),
            ("non_numeric", non_numeric, f"non-numeric values in '{column}'")):
        if bad.any():
            quarantine.add(problem, frame.loc[bad].reset_index(), message)
    keep = ~(non_finite | non_numeric)
    if not keep.all():
        frame, converted = frame.loc[keep], converted.loc[keep]
    if converted is not values:
        frame[column] = converted
    return frame


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
