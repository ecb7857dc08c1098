"""Log line formats: the patterns of access logs and syslog, the fields each gives, and the
parsing of their timestamps (access log, syslog, ISO 8601, epoch numbers, strptime formats)."""

from __future__ import annotations

import re
import warnings
from typing import Literal

import numpy as np

from amml._lazy import LazyModule
from amml._lazy import pandas as pd
from amml._lazy import pyarrow as pa

pc = LazyModule("pyarrow.compute")


NAT = np.iinfo(np.int64).min  # what DatetimeIndex.asi8 gives for NaT

LogFormat = Literal["combined", "common", "syslog", "jsonl", "regex"]

# --- line patterns -----------------------------------------------------------------------
# Every class excludes "\n": a chunk is matched as a whole, and a match must never run
# into the next line. Quoted strings allow backslash escapes (Apache writes \").
_QUOTED = r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"'
_ACCESS_HEAD = (r'[^ \n]+ [^ \n]+ [^ \n]+ \[(?P<time>[^\]\n]+)\] ' + _QUOTED
                + r' (?P<status>\d{3}) (?P<bytes>\d+|-)')
# nginx setups often append $request_time (seconds) after the standard fields
_REQUEST_TIME = r'(?: (?P<request_time>\d+(?:\.\d*)?|-))?'
_PATTERNS = {
    "common": _ACCESS_HEAD + _REQUEST_TIME,
    "combined": _ACCESS_HEAD + " " + _QUOTED + " " + _QUOTED + _REQUEST_TIME,
    # RFC 3164 "Oct 11 22:14:15 host prog[pid]: msg"; rsyslog's ISO stamps are read too
    "syslog": (r'(?:<(?P<priority>\d{1,3})>)?'
               r'(?P<time>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d'
               r'|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)'
               r' [^ \n]+(?: (?P<program>[^:\[ \n]+)(?:\[(?P<pid>\d+)\])?:)?'),
}
_FIELDS: dict[str, frozenset[str]] = {
    "common": frozenset({"status", "bytes", "request_time"}),
    "combined": frozenset({"status", "bytes", "request_time"}),
    "syslog": frozenset({"priority", "pid"}),
}
# an access log writes "-" for a response without a body: zero bytes, not a missing value
_ZERO_FIELDS = {"common": frozenset({"bytes"}), "combined": frozenset({"bytes"})}
_ALIASES = {"latency": "request_time"}  # access logs only: p99:latency reads $request_time
_JSON_TIME_KEYS = ("time", "timestamp", "@timestamp", "ts")
_CLF_TIME = "%d/%b/%Y:%H:%M:%S %z"
_AWARE = r"(?:Z|[+-]\d\d:?\d\d)$"
# RE2 patterns for Arrow's string kernels
_COMMA_FRACTION = r"(:\d\d),(\d)"  # "08:00:01,120" (log4j, Python logging)
_NUMBER = r"^\s*-?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?\s*$"
_FLAGS = re.compile(r"\(\?([aiLmsux]+)\)")


# --- timestamps ------------------------------------------------------------------------
def _localize(naive: pd.DatetimeIndex, tz: str | None) -> np.ndarray:
    """Wall-clock stamps without an offset, read in ``tz`` (or UTC), as UTC nanoseconds."""
    if tz is not None:  # the hour repeated in autumn counts as summer time
        naive = naive.tz_localize(tz, ambiguous=np.ones(len(naive), dtype=bool),
                                  nonexistent="shift_forward")
    return naive.as_unit("ns").asi8


def _epoch_ns(numbers: np.ndarray) -> np.ndarray:
    """Epoch numbers in seconds, ms, us or ns (told apart by their size) as nanoseconds."""
    magnitude = np.abs(numbers)
    scale = np.select([magnitude < 1e11, magnitude < 1e14, magnitude < 1e17], [1e9, 1e6, 1e3],
                      1.0)
    scaled = numbers * scale
    good = np.isfinite(scaled) & (np.abs(scaled) < 9e18)
    return np.where(good, np.round(np.where(good, scaled, 0.0)), NAT).astype(np.int64)


def _parse_times(values: np.ndarray, time_format: str | None, tz: str | None) -> np.ndarray:
    """UTC nanoseconds of distinct timestamp values (strings or JSON numbers); NAT if
    unreadable. Strings are sorted out with Arrow's vectorized kernels, not one by one."""
    out = np.full(len(values), NAT, dtype=np.int64)
    is_text = np.fromiter((type(v) is str for v in values), dtype=bool, count=len(values))
    numbers = np.flatnonzero(~is_text)
    if len(numbers):  # JSON numbers (booleans and None are no times)
        epoch = np.array([v if isinstance(v, int | float) and not isinstance(v, bool)
                          else np.nan for v in values[numbers]], dtype=np.float64)
        out[numbers] = _epoch_ns(epoch)
    where = np.flatnonzero(is_text)
    if not len(where):
        return out
    text = pa.array(values[where], pa.large_string())
    with warnings.catch_warnings():  # pandas warns about formats it has to guess
        warnings.simplefilter("ignore")
        if time_format is not None:
            out[where] = _with_format(values[where], time_format, tz)
            return out
        parsed = np.full(len(text), NAT, dtype=np.int64)
        numeric = _mask(pc.match_substring_regex(text, _NUMBER))
        if numeric.any():
            parsed[numeric] = _epoch_ns(_mask_values(pc.cast(text.filter(numeric),
                                                             pa.float64())))
        text = pc.replace_substring_regex(text, _COMMA_FRACTION, r"\1.\2")  # log4j
        aware = _mask(pc.match_substring_regex(text, _AWARE)) & ~numeric
        naive = ~aware & ~numeric & _mask(pc.not_equal(text, ""))
        if aware.any():
            stamps = pd.to_datetime(_strings(text, aware), format="ISO8601", utc=True,
                                    errors="coerce")
            parsed[aware] = pd.DatetimeIndex(stamps).as_unit("ns").asi8
        if naive.any():
            stamps = pd.to_datetime(_strings(text, naive), format="ISO8601", errors="coerce")
            parsed[naive] = _localize(pd.DatetimeIndex(stamps), tz)
        failed = np.flatnonzero((parsed == NAT) & ~numeric & _mask(pc.not_equal(text, "")))
        if len(failed):
            parsed[failed] = _guess_times(text.take(failed).to_numpy(zero_copy_only=False), tz)
        out[where] = parsed
    return out


def _mask(array: pa.Array) -> np.ndarray:
    return np.asarray(array.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _mask_values(array: pa.Array) -> np.ndarray:
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float64)


def _strings(text: pa.Array, mask: np.ndarray) -> np.ndarray:
    return text.filter(mask).to_numpy(zero_copy_only=False)


def _with_format(text: np.ndarray, time_format: str, tz: str | None) -> np.ndarray:
    aware = "%z" in time_format or "%Z" in time_format
    try:
        parsed = pd.DatetimeIndex(pd.to_datetime(text, format=time_format, utc=aware,
                                                 errors="coerce"))
    except ValueError:  # a format pandas cannot use
        return np.full(len(text), NAT, dtype=np.int64)
    return parsed.as_unit("ns").asi8 if aware else _localize(parsed, tz)


def _guess_times(text: np.ndarray, tz: str | None) -> np.ndarray:
    """Stamps that are not ISO 8601: the format pandas guesses from the first one, then
    dateutil one by one for what is left."""
    out = np.full(len(text), NAT, dtype=np.int64)
    from pandas.tseries.api import guess_datetime_format

    guess = guess_datetime_format(text[0])
    if guess is not None:
        out = _with_format(text, guess, tz)
    for i in np.flatnonzero(out == NAT):
        try:
            stamp = pd.Timestamp(text[i])
        except (ValueError, TypeError, OverflowError):
            continue
        if stamp is not pd.NaT:
            stamp = stamp.tz_localize(tz or "UTC") if stamp.tzinfo is None else stamp
            out[i] = stamp.tz_convert("UTC").as_unit("ns").value
    return out


def _clf_times(values: np.ndarray) -> np.ndarray:
    """Access log stamps carry their offset (``10/Oct/2000:13:55:36 -0700``)."""
    parsed = pd.to_datetime(values, format=_CLF_TIME, utc=True, errors="coerce")
    return pd.DatetimeIndex(parsed).as_unit("ns").asi8


def _syslog_times(year: int | None, values: np.ndarray, tz: str | None) -> np.ndarray:
    """``Oct 11 22:14:15`` in ``year`` (default: this year, or last year for a stamp more than
    a day ahead); ISO stamps as they are."""
    out = np.full(len(values), NAT, dtype=np.int64)
    bsd = np.array([len(v) == 15 and v[3] == " " for v in values], dtype=bool)
    if (~bsd).any():
        out[~bsd] = _parse_times(values[~bsd], None, tz)
    if bsd.any():
        now = pd.Timestamp.now(tz=tz or "UTC")
        chosen = year if year is not None else now.year

        def parse(in_year: int, text: np.ndarray) -> np.ndarray:
            stamps = pd.to_datetime([f"{in_year} {v}" for v in text],
                                    format="%Y %b %d %H:%M:%S", errors="coerce")
            return _localize(pd.DatetimeIndex(stamps), tz)

        stamps = parse(chosen, values[bsd])
        if year is None:  # December lines read in January belong to last year
            future = stamps > now.as_unit("ns").value + 86_400 * 10**9
            if future.any():
                stamps[future] = parse(chosen - 1, values[bsd][future])
        out[bsd] = stamps
    return out


