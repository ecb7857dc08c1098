"""``source.logs``: time series from log files (access logs, syslog, JSON lines, any regex).

Each interval (``1min``, ``5min``, ``1h``...) gets the aggregates named in ``metrics``:
``count``, ``error_rate`` (share of requests with status >= ``error_status``),
``status_4xx``, ``status_5xx``, ``bytes_sum``, and ``p50:F``/``p90:F``/``p99:F`` (any ``pNN``),
``mean:F``, ``sum:F``, ``max:F``, ``min:F`` of a numeric field ``F`` (a named group, a JSON key,
or an access log's trailing ``$request_time``, alias ``latency``). In a workflow::

    steps:
      traffic:
        op: source.logs
        with: {path: /var/log/nginx/access.log, format: combined, interval: 1min,
               metrics: [count, error_rate, "p99:latency"]}

How it stays fast: a file is read in chunks of whole lines; Arrow's RE2 extracts the groups
of a whole chunk in C++ (Python's ``re`` takes patterns RE2 lacks, such as lookarounds),
timestamps are parsed once per distinct value, and each chunk is reduced to per-interval
partial sums before the next is read, so a log bigger than memory works; only percentiles
keep their field's values (16 bytes a line). Rotated files (``access.log.2.gz``,
``access.log.1``, ``access.log``) are read oldest first, gzip, bzip2 and xz transparently.
Lines that do not parse are counted and reported with examples, never dropped silently.

>>> import pathlib, tempfile
>>> tmp = tempfile.TemporaryDirectory()
>>> folder = pathlib.Path(tmp.name)
>>> _ = (folder / "access.log").write_text(
...     '10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 2326 "-" "curl" 0.120\\n'
...     '10.0.0.2 - - [10/Oct/2000:13:55:50 -0700] "GET /a HTTP/1.1" 503 12 "-" "curl" 0.480\\n'
...     'this line is not an access log line\\n'
...     '10.0.0.1 - - [10/Oct/2000:13:57:02 -0700] "GET / HTTP/1.1" 200 2326 "-" "curl" 0.100\\n')
>>> source = LogSource(path=str(folder / "access.log"), format="combined", interval="1min",
...                    metrics=["count", "error_rate", "p50:request_time"])
>>> result = source.run(StepContext())
>>> result["out"]
                     count  error_rate  p50_request_time
time
2000-10-10 20:55:00      2         0.5               0.3
2000-10-10 20:56:00      0         NaN               NaN
2000-10-10 20:57:00      1         0.0               0.1
>>> report = result["report"]
>>> report["rows_read"], report["bad_rows"], report["problems"]["malformed_line"]["examples"]
(4, 1, [{'file': '.../access.log', 'line': 3, 'text': 'this line is not an access log line'}])
>>> tmp.cleanup()
"""

from __future__ import annotations

import bz2
import functools
import glob
import gzip
import hashlib
import json
import lzma
import os
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.tseries.api import guess_datetime_format
from pandas.tseries.frequencies import to_offset
from pydantic import Field, field_validator, model_validator

from amml._exceptions import OpError
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import register
from amml.ops.sources.connections import redact
from amml.ops.sources.quality import EXAMPLES, BadRows, Quarantine

__all__ = ["LogSource", "LogSourceConfig", "find_log_files"]

#: Bytes read (and parsed) at a time; module level so tests can make chunks tiny.
CHUNK_BYTES = 8 << 20
#: Read regex formats with Arrow's RE2 when it can run the pattern (False: always ``re``).
USE_ARROW = True
#: More output intervals than this is almost always a stray timestamp or a tiny interval.
MAX_INTERVALS = 10_000_000
EXAMPLE_CHARS = 200
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

# --- metrics -----------------------------------------------------------------------------
_SIMPLE = {"count", "error_rate", "status_4xx", "status_5xx", "bytes_sum"}
_STATUS_KINDS = ("error_rate", "status_4xx", "status_5xx")
_METRIC = re.compile(r"(?P<agg>p\d{1,2}(?:\.\d+)?|mean|sum|max|min|error_rate|status_4xx"
                     r"|status_5xx):(?P<field>[A-Za-z_@][\w.@-]*)")


@dataclass(frozen=True)
class Metric:
    """One requested aggregate: ``kind`` is a simple name, ``pct``, ``mean``, ``sum``..."""

    spec: str
    kind: str
    field: str | None = None  # the field read (aliases resolved)
    quantile: float | None = None
    column: str = ""


def parse_metric(spec: str, fmt: str = "jsonl") -> Metric:
    """Parse ``"count"``, ``"p99:latency"``, ``"mean:bytes"``... into a :class:`Metric`.

    ``error_rate``, ``status_4xx`` and ``status_5xx`` read the field ``status``; another one
    is named after a colon (``error_rate:http.status``), which also names the column.

    >>> metric = parse_metric("p99:latency", "combined")
    >>> metric.kind, metric.field, metric.quantile, metric.column
    ('pct', 'request_time', 0.99, 'p99_latency')
    """
    if spec in _SIMPLE:
        needs = {"bytes_sum": "bytes", "count": None}.get(spec, "status")
        return Metric(spec, spec, needs, None, spec)
    match = _METRIC.fullmatch(spec)
    if match is None:
        raise ValueError(f"unknown metric {spec!r}: use one of {', '.join(sorted(_SIMPLE))}, "
                         "or p50:FIELD, p90:FIELD, p99:FIELD (any pNN), mean:FIELD, sum:FIELD, "
                         "max:FIELD, min:FIELD, error_rate:FIELD")
    agg, name = match["agg"], match["field"]
    read = _ALIASES.get(name, name) if fmt in ("combined", "common") else name
    column = re.sub(r"\W", "_", f"{agg}_{name}")
    if agg in _STATUS_KINDS:
        return Metric(spec, agg, read, None, column)
    if agg.startswith("p"):
        q = float(agg[1:])
        if not 0 < q < 100:
            raise ValueError(f"metric {spec!r}: the percentile must be between 0 and 100")
        return Metric(spec, "pct", read, q / 100, column)
    return Metric(spec, agg, read, None, column)


class LogSourceConfig(OpConfig):
    #: A file (its rotated siblings are read too, see ``rotated``) or a glob.
    path: str = Field(min_length=1)
    format: LogFormat
    #: Length of one output interval: a fixed pandas frequency ("1min", "5min", "1h", "1D").
    interval: str
    metrics: list[str] = Field(default_factory=lambda: ["count"], min_length=1)
    #: ``error_rate`` counts requests with a status at or above this.
    error_status: int = Field(500, ge=100, le=599)
    #: ``format: regex`` only: named groups; ``time`` is required, the others are fields.
    pattern: str | None = None
    #: strptime format of the timestamps (``regex``, ``jsonl``); ISO 8601 and epoch numbers
    #: are recognised without one.
    time_format: str | None = None
    #: ``jsonl`` only: the key of the timestamp (default: time, timestamp, @timestamp, ts).
    time_field: str | None = None
    #: ``syslog`` only: the year of the timestamps (syslog has none). Default: the current
    #: year, and stamps more than a day in the future are taken from the year before.
    year: int | None = Field(None, ge=1970, le=9999)
    #: Output zone; stamps without an offset are read in it. None: tz-naive UTC.
    tz: str | None = None
    #: Keep only events in [start, end) (naive values are in ``tz``, else UTC).
    start: str | None = None
    end: str | None = None
    #: For a plain path, also read ``PATH.N``, ``PATH.N.gz``, ``PATH-YYYYMMDD[.gz]``.
    rotated: bool = True
    on_bad_rows: BadRows = "quarantine"

    @field_validator("interval")
    @classmethod
    def _fixed_interval(cls, value: str) -> str:
        try:  # Timedelta(to_offset(...)): "1MS" is a month here, not a millisecond
            step = pd.Timedelta(to_offset(value))
        except (ValueError, TypeError):
            step = pd.Timedelta(0)
        if step <= pd.Timedelta(0):
            raise ValueError(f"interval {value!r} must be a fixed duration such as 1min, 5min, "
                             "1h, 1D or 7D")
        return value

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                pd.Timestamp(0, tz=value)
            except Exception as exc:
                raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("start", "end")
    @classmethod
    def _timestamp(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                pd.Timestamp(value)
            except Exception as exc:
                raise ValueError(f"not a timestamp: {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _consistent(self) -> LogSourceConfig:
        used_by = {"pattern": ("regex",), "time_format": ("regex", "jsonl"),
                   "time_field": ("jsonl",), "year": ("syslog",)}
        for name, formats in used_by.items():
            if getattr(self, name) is not None and self.format not in formats:
                raise ValueError(f"{name} is only used with format: {' or '.join(formats)}")
        fields = self.known_fields()
        seen: set[str] = set()
        for metric in self.parsed_metrics():
            if metric.column in seen:
                raise ValueError(f"metric {metric.spec!r} is listed twice")
            seen.add(metric.column)
            if fields is not None and metric.field is not None and metric.field not in fields:
                what = ("a 'status' field" if metric.field == "status" else
                        "a 'bytes' field" if metric.spec == "bytes_sum" else
                        f"a field {metric.field!r}")
                raise ValueError(f"metric {metric.spec!r} needs {what}, which {self.format} "
                                 f"lines do not have (fields: {', '.join(sorted(fields))})")
        if self.start and self.end and self.bound("start") >= self.bound("end"):
            raise ValueError("start must be before end")
        return self

    def known_fields(self) -> frozenset[str] | None:
        """Numeric fields lines of this format may have (None: any, for JSON lines)."""
        if self.format == "jsonl":
            return None
        if self.format == "regex":
            if not self.pattern:
                raise ValueError("format: regex needs a pattern with a (?P<time>...) group")
            try:
                compiled = re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern does not compile: {exc}") from exc
            if "time" not in compiled.groupindex:
                raise ValueError("pattern needs a named group (?P<time>...) for the timestamp")
            return frozenset(compiled.groupindex) - {"time"}
        return _FIELDS[self.format]

    def parsed_metrics(self) -> list[Metric]:
        return [parse_metric(spec, self.format) for spec in self.metrics]

    def step_ns(self) -> int:
        return int(pd.Timedelta(to_offset(self.interval)).as_unit("ns").value)

    def bound(self, name: Literal["start", "end"]) -> int | None:
        """``start`` or ``end`` in UTC nanoseconds."""
        value = getattr(self, name)
        if value is None:
            return None
        stamp = pd.Timestamp(value)
        if stamp.tzinfo is None:
            stamp = stamp.tz_localize(self.tz or "UTC")
        return int(stamp.tz_convert("UTC").as_unit("ns").value)


# --- files -------------------------------------------------------------------------------
_ROTATION = re.compile(r"(?P<base>.+?)(?:\.(?P<num>\d+)|-(?P<date>\d{8,10}))?"
                       r"(?P<zip>\.(?:gz|bz2|xz))?")
_ROTATED_SUFFIX = re.compile(r"(?:\.\d+|-\d{8,10})(?:\.(?:gz|bz2|xz))?|\.(?:gz|bz2|xz)")


def _rotation_key(path: Path) -> tuple[str, int, int, str]:
    """Oldest first: ``.3`` before ``.2`` before ``.1``, dated files by date, then a
    compressed copy without a number, the live file last."""
    match = _ROTATION.fullmatch(path.name)
    assert match is not None  # ".+?" matches any name
    base = str(path.parent / match["base"])
    if match["num"]:
        return base, 0, -int(match["num"]), path.name
    if match["date"]:
        return base, 1, 0, match["date"]
    return base, 3 if match["zip"] is None else 2, 0, path.name


def find_log_files(path: str, rotated: bool = True) -> list[Path]:
    """The files a ``path`` names, oldest first; :class:`OpError` when there are none."""
    expanded = os.path.expanduser(path)
    if glob.has_magic(expanded):
        found = {Path(p) for p in glob.glob(expanded) if os.path.isfile(p)}
    else:
        live = Path(expanded)
        if live.is_dir():
            raise OpError(f"log path {path} is a folder: give a file or a glob such as "
                          f"{os.path.join(path, '*.log')}")
        found = {live} if live.is_file() else set()
        if rotated and live.parent.is_dir():
            prefix = glob.escape(live.name)
            found |= {p for pattern in (prefix + ".*", prefix + "-*")
                      for p in live.parent.glob(pattern)
                      if p.is_file() and _ROTATED_SUFFIX.fullmatch(p.name[len(live.name):])}
    if not found:
        raise OpError(f"no log files match {path}" + (" (a glob)" if glob.has_magic(expanded)
                                                      else ""))
    return sorted(found, key=_rotation_key)


def _open(path: Path) -> IO[bytes]:
    with path.open("rb") as probe:
        magic = probe.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.open(path, "rb")
    if magic.startswith(b"BZh"):
        return bz2.open(path, "rb")
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.open(path, "rb")
    return path.open("rb")


def _read_chunks(path: Path) -> Iterator[bytes]:
    """Whole lines, about CHUNK_BYTES at a time, as valid UTF-8 without the last newline."""
    with _open(path) as stream:
        rest = b""
        while block := stream.read(CHUNK_BYTES):
            data = rest + block if rest else block
            cut = data.rfind(b"\n")
            if cut < 0:
                rest = data
                continue
            rest = data[cut + 1:]
            yield _clean(data[:cut])
        if rest:
            yield _clean(rest)


def _clean(data: bytes) -> bytes:
    if b"\r" in data:  # CRLF files: "$" in user patterns must still match at line ends
        data = data.replace(b"\r\n", b"\n")
        if data.endswith(b"\r"):  # the chunk was cut at the "\n" after it
            data = data[:-1]
    if data.isascii():
        return data
    try:
        data.decode("utf-8")  # Arrow's kernels need valid UTF-8
    except UnicodeDecodeError:
        data = data.decode("utf-8", errors="replace").encode()
    return data


# --- parsing -----------------------------------------------------------------------------
@dataclass
class _Parsed:
    """One chunk's good lines as columns, and what was wrong with the others."""

    times: np.ndarray  # int64 UTC nanoseconds
    values: dict[str, np.ndarray]  # float64, NaN where a line has no value
    lines: int  # non-blank lines read
    blank: int = 0
    bad: dict[str, tuple[str, int, list[tuple[int, str]]]] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)

    def add_bad(self, problem: str, message: str, indices: Sequence[int],
                text: Callable[[int], str]) -> None:
        if not len(indices):
            return
        _, count, examples = self.bad.get(problem, (message, 0, []))
        examples = examples + [(int(i), text(int(i))) for i in indices[:EXAMPLES]]
        self.bad[problem] = (message, count + len(indices), examples[:EXAMPLES])


Numbers = Callable[[], tuple[np.ndarray, np.ndarray]]


def _assemble(matched: np.ndarray, text: Callable[[int], str], stamps: np.ndarray,
              fields: dict[str, Numbers], fmt: str, no_time: np.ndarray | None = None,
              no_time_message: str = "", zero: frozenset[str] = frozenset()) -> _Parsed:
    """Sort a chunk's lines into kept, blank and bad (with the reason) and keep the columns.

    ``matched``: lines the format's pattern matched; ``stamps``: their times (NAT where
    missing or unreadable); ``fields``: per field, a function giving (values, non-numeric);
    ``no_time``: lines that have no time at all (a clearer reason than "unparseable");
    ``zero``: fields whose missing values mean 0 (the "-" of an access log's bytes).
    """
    keep = stamps != NAT
    unmatched = np.flatnonzero(~matched)
    unreadable = np.flatnonzero(matched & ~keep)
    blank = {int(i) for i in np.concatenate([unmatched, unreadable]) if not text(int(i)).strip()}
    parsed = _Parsed(np.empty(0, np.int64), {}, len(matched) - len(blank), blank=len(blank))
    parsed.add_bad("malformed_line", f"not a {fmt} log line",
                   [i for i in unmatched if i not in blank], text)
    unreadable = [i for i in unreadable if i not in blank]
    if no_time is not None:
        parsed.add_bad("missing_time", no_time_message, [i for i in unreadable if no_time[i]],
                       text)
        unreadable = [i for i in unreadable if not no_time[i]]
    parsed.add_bad("unparseable_time", "unparseable timestamp", unreadable, text)
    values: dict[str, np.ndarray] = {}
    for name, numbers in fields.items():
        values[name], invalid = numbers()
        if name in zero:
            values[name] = np.nan_to_num(values[name], nan=0.0)
        invalid &= keep
        parsed.add_bad("non_numeric", f"non-numeric value in '{name}'", np.flatnonzero(invalid),
                       text)
        keep &= ~invalid
    parsed.times = stamps[keep]
    parsed.values = {name: column[keep] for name, column in values.items()}
    parsed.missing = {name: int(np.isnan(column).sum()) for name, column in parsed.values.items()}
    return parsed


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


def _numbers(column: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(float values, mask of text that is no number); "", "-" and None are NaN."""
    objects = np.asarray(column, dtype=object)
    codes, uniques = pd.factorize(objects, use_na_sentinel=False)  # few distinct values
    numbers = np.asarray(pd.to_numeric(uniques, errors="coerce"), dtype=np.float64)
    invalid = np.array([np.isnan(n) and isinstance(u, str) and u.strip().lower()
                        not in ("", "-", "nan") for n, u in zip(numbers, uniques, strict=True)],
                       dtype=bool)
    return numbers[codes], invalid[codes]


def _arrow_numbers(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    try:  # all numbers (or "-" / empty): one C++ cast
        blank = pc.is_in(column, pa.array(["", "-"], column.type))
        cast = pc.cast(pc.if_else(blank, pa.scalar(None, column.type), column), pa.float64())
        return cast.to_numpy(zero_copy_only=False), np.zeros(len(column), dtype=bool)
    except pa.ArrowInvalid:
        return _numbers(column.to_numpy(zero_copy_only=False))


def _line_array(data: bytes) -> pa.LargeStringArray:
    """The chunk's lines as an Arrow string array: one copy of the bytes without the
    newlines, and offsets computed from where the newlines were."""
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    offsets = np.empty(len(ends) + 2, dtype=np.int64)
    offsets[0], offsets[-1] = 0, len(data) - len(ends)
    offsets[1:-1] = ends - np.arange(len(ends))
    return pa.LargeStringArray.from_buffers(len(ends) + 1, pa.py_buffer(offsets),
                                            pa.py_buffer(data.replace(b"\n", b"")))


def _arrow_pattern(pattern: str) -> str | None:
    """``pattern`` anchored for Arrow's RE2, or None where RE2 lacks what it uses
    (lookarounds, backreferences, unnamed groups): Python's ``re`` reads those lines."""
    anchored = f"^(?:{pattern})"
    try:
        pc.extract_regex(pa.array([""], pa.large_string()), anchored)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return anchored


class _ArrowParser:
    """Regex formats through Arrow: RE2 extracts the groups of a whole chunk in C++."""

    def __init__(self, pattern: str, fields: Sequence[str], fmt: str,
                 parse_times: Callable[[np.ndarray], np.ndarray]) -> None:
        self.pattern, self.fields, self.fmt = pattern, list(fields), fmt
        self.parse_times = parse_times

    def parse(self, data: bytes) -> _Parsed:
        lines = _line_array(data)
        found = pc.extract_regex(lines, self.pattern)
        matched = found.is_valid().to_numpy(zero_copy_only=False)
        encoded = pc.dictionary_encode(pc.struct_field(found, "time"))
        codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
        uniques = encoded.dictionary.to_numpy(zero_copy_only=False)
        stamps = np.append(self.parse_times(uniques), NAT)[codes]  # -1: unmatched, NAT
        fields = {name: (lambda name=name: _arrow_numbers(pc.struct_field(found, name)))
                  for name in self.fields}
        return _assemble(matched, lambda i: lines[i].as_py(), stamps, fields, self.fmt,
                         zero=_ZERO_FIELDS.get(self.fmt, frozenset()))


class _Lines:
    """A chunk split into lines only when some line's text is needed (rare: bad lines)."""

    def __init__(self, text: str) -> None:
        self.text, self._lines = text, None

    def __getitem__(self, index: int) -> str:
        if self._lines is None:
            self._lines = self.text.split("\n")
        return self._lines[index]


class _RegexParser:
    """Regex formats through Python's ``re``, for patterns RE2 cannot run."""

    def __init__(self, pattern: str, fields: Sequence[str], fmt: str,
                 parse_times: Callable[[np.ndarray], np.ndarray]) -> None:
        leading = _FLAGS.match(pattern)  # "(?i)" must stay at the front of the whole pattern
        flags, body = (leading[1], pattern[leading.end():]) if leading else ("", pattern)
        self.line_re = re.compile(pattern)
        # one result per line: the line's groups, or (last group) the text of a bad line
        self.chunk_re = re.compile(f"(?m{flags})^(?:(?:{body})[^\\n]*|([^\\n]*))$")
        self.groups = self.line_re.groups
        index = self.line_re.groupindex
        self.time_col = index["time"] - 1
        self.field_cols = {name: index[name] - 1 for name in fields}
        self.fmt, self.parse_times = fmt, parse_times

    def _by_line(self, text: str) -> list[tuple[str, ...]]:
        empty = ("",) * self.groups
        rows = []
        for line in text.split("\n"):
            match = self.line_re.match(line)
            rows.append((*match.groups(""), "") if match else (*empty, line))
        return rows

    def parse(self, data: bytes) -> _Parsed:
        text = data.decode()
        rows = self.chunk_re.findall(text)
        if len(rows) != text.count("\n") + 1:  # the pattern spans lines: go line by line
            rows = self._by_line(text)
        columns = list(zip(*rows, strict=True))
        matched = np.array([not line for line in columns[-1]], dtype=bool)
        codes, uniques = pd.factorize(np.asarray(columns[self.time_col], dtype=object))
        codes[~matched] = len(uniques)
        stamps = np.append(self.parse_times(uniques), NAT)[codes]
        fields = {name: (lambda col=col: _numbers(columns[col]))
                  for name, col in self.field_cols.items()}
        return _assemble(matched, _Lines(text).__getitem__, stamps, fields, self.fmt,
                         zero=_ZERO_FIELDS.get(self.fmt, frozenset()))


def _lookup(row: dict[str, Any], key: str) -> Any:
    """``row[key]``, or a dotted path into nested objects (``http.status``)."""
    if key in row or "." not in key:
        return row.get(key)
    value: Any = row
    for part in key.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


class _JsonParser:
    """JSON lines: one object a line; the time and numeric fields are read by key."""

    def __init__(self, fields: Sequence[str], time_field: str | None,
                 time_format: str | None, tz: str | None) -> None:
        self.fields, self.time_field = list(fields), time_field
        self.time_format, self.tz = time_format, tz

    def _time(self, row: Any) -> Any:
        if not isinstance(row, dict):
            return None
        if self.time_field is not None:
            return _lookup(row, self.time_field)
        for key in _JSON_TIME_KEYS:
            if key in row:
                return row[key]
        return None

    def parse(self, data: bytes) -> _Parsed:
        lines = data.decode().split("\n")
        filled = [i for i, line in enumerate(lines) if line.strip()]
        objects: list[Any] | None
        try:  # one C-level decode for the whole chunk when every line is good
            objects = json.loads("[" + ",".join([lines[i] for i in filled]) + "]")
            if len(objects) != len(filled):  # a line held "1, 2"
                objects = None
        except ValueError:
            objects = None
        if objects is None:
            objects = []
            for i in filled:
                try:
                    objects.append(json.loads(lines[i]))
                except ValueError:
                    objects.append(None)
        rows: list[Any] = [None] * len(lines)
        for i, row in zip(filled, objects, strict=True):
            rows[i] = row
        matched = np.array([isinstance(row, dict) for row in rows], dtype=bool)
        raw_times = np.empty(len(rows), dtype=object)
        for i, row in enumerate(rows):
            stamp = self._time(row)  # an object or a list as a time: reported as unparseable
            raw_times[i] = repr(stamp) if isinstance(stamp, dict | list) else stamp
        codes, uniques = pd.factorize(raw_times, use_na_sentinel=False)
        stamps = _parse_times(uniques, self.time_format, self.tz)[codes]

        def numbers(name: str) -> tuple[np.ndarray, np.ndarray]:
            values = [_lookup(row, name) if isinstance(row, dict) else None for row in rows]
            return _numbers([None if isinstance(v, dict | list) else v for v in values])

        fields = {name: (lambda name=name: numbers(name)) for name in self.fields}
        no_time = np.array([t is None for t in raw_times], dtype=bool)
        where = self.time_field or "/".join(_JSON_TIME_KEYS)
        return _assemble(matched, lines.__getitem__, stamps, fields, "JSON object",
                         no_time, f"no '{where}' key")


# --- aggregation -------------------------------------------------------------------------
class _Aggregator:
    """Per-interval partial sums, counts and extremes, merged at the end; percentiles keep
    their (interval, value) pairs because an exact percentile needs every value."""

    def __init__(self, metrics: Sequence[Metric], step_ns: int, tz: str | None,
                 error_status: int) -> None:
        self.metrics, self.step, self.tz = list(metrics), step_ns, tz
        self.error_status = error_status
        self.partials: list[pd.DataFrame] = []
        self.samples: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        self.empty_intervals = 0

    def _keys(self, times: np.ndarray) -> np.ndarray:
        if self.tz is not None:  # intervals follow the zone's wall clock (a 1D is a local day)
            local = pd.DatetimeIndex(times.view("M8[ns]"), tz="UTC").tz_convert(self.tz)
            times = local.tz_localize(None).as_unit("ns").asi8
        return times // self.step

    def add(self, times: np.ndarray, values: dict[str, np.ndarray]) -> None:
        if not len(times):
            return
        keys = self._keys(times)
        codes, bins = pd.factorize(keys)
        size = len(bins)

        def total(weights: np.ndarray) -> np.ndarray:
            return np.bincount(codes, weights=weights, minlength=size)

        part: dict[str, np.ndarray] = {"count": np.bincount(codes, minlength=size)}
        for metric in self.metrics:
            column = values.get(metric.field) if metric.field else None
            if column is None:
                continue
            present = ~np.isnan(column)
            if metric.kind in _STATUS_KINDS:
                part[f"n:{metric.field}"] = total(present)
                part[f"error:{metric.field}"] = total(column >= self.error_status)
                part[f"4xx:{metric.field}"] = total((column >= 400) & (column < 500))
                part[f"5xx:{metric.field}"] = total((column >= 500) & (column < 600))
            elif metric.kind in ("bytes_sum", "sum", "mean"):
                part[f"sum:{metric.field}"] = total(np.where(present, column, 0.0))
                part[f"n:{metric.field}"] = total(present)
            elif metric.kind in ("max", "min"):
                extreme = np.full(size, np.nan)
                (np.fmax if metric.kind == "max" else np.fmin).at(extreme, codes, column)
                part[f"{metric.kind}:{metric.field}"] = extreme
        for name in {m.field for m in self.metrics if m.kind == "pct"}:  # once per field
            column = values[name]
            present = ~np.isnan(column)
            self.samples.setdefault(name, []).append((keys[present], column[present]))
        self.partials.append(pd.DataFrame(part, index=bins))

    def result(self) -> pd.DataFrame:
        merged = pd.concat(self.partials)
        how = {c: ("max" if c.startswith("max:") else "min" if c.startswith("min:") else "sum")
               for c in merged.columns}
        merged = merged.groupby(level=0).agg(how)
        first, last = int(merged.index.min()), int(merged.index.max())
        if last - first + 1 > MAX_INTERVALS:
            raise OpError(f"the events span {last - first + 1} intervals of "
                          f"{pd.Timedelta(self.step, 'ns')} (more than {MAX_INTERVALS}), from "
                          f"{pd.Timestamp(first * self.step)} to {pd.Timestamp(last * self.step)}"
                          ": set start/end or a longer interval")
        keys = np.arange(first, last + 1, dtype=np.int64)
        merged = merged.reindex(keys)  # empty intervals: NaN for now
        counted = merged.fillna({c: 0 for c in merged.columns if c[:4] not in ("max:", "min:")})
        self.empty_intervals = int((counted["count"] == 0).sum())
        out: dict[str, np.ndarray] = {}
        for metric in self.metrics:
            f = metric.field
            if metric.kind == "count":
                out[metric.column] = counted["count"].to_numpy(np.int64)
            elif metric.kind == "error_rate":
                n = counted[f"n:{f}"].to_numpy(float)
                with np.errstate(invalid="ignore", divide="ignore"):
                    out[metric.column] = np.where(n > 0, counted[f"error:{f}"] / n, np.nan)
            elif metric.kind in ("status_4xx", "status_5xx"):
                out[metric.column] = counted[f"{metric.kind[-3:]}:{f}"].to_numpy(np.int64)
            elif metric.kind == "bytes_sum":
                out[metric.column] = counted[f"sum:{f}"].round().to_numpy(np.int64)
            elif metric.kind == "sum":
                out[metric.column] = counted[f"sum:{f}"].to_numpy(float)
            elif metric.kind == "mean":
                n = counted[f"n:{f}"].to_numpy(float)
                with np.errstate(invalid="ignore", divide="ignore"):
                    out[metric.column] = np.where(n > 0, counted[f"sum:{f}"] / n, np.nan)
            elif metric.kind in ("max", "min"):
                out[metric.column] = merged[f"{metric.kind}:{f}"].to_numpy(float)
            else:
                out[metric.column] = self._percentile(f, metric.quantile, keys)
        # nanoseconds: the unit every AMML source returns (see sources/quality.py)
        labels = pd.DatetimeIndex((keys * self.step).view("M8[ns]"), name="time")
        frame = pd.DataFrame(out, index=labels)
        if self.tz is not None:
            labels = labels.tz_localize(self.tz, ambiguous=np.ones(len(labels), dtype=bool),
                                        nonexistent="NaT")
            frame.index = labels
            frame = frame[~labels.isna()]  # wall-clock slots skipped in spring hold no event
        return frame

    def _percentile(self, name: str, quantile: float, keys: np.ndarray) -> np.ndarray:
        """Per-interval percentile, numpy's "linear" method, vectorized over all intervals."""
        pairs = self.samples.get(name, [])
        if not pairs:
            return np.full(len(keys), np.nan)
        groups = np.concatenate([k for k, _ in pairs])
        values = np.concatenate([v for _, v in pairs])
        order = np.lexsort((values, groups))
        groups, values = groups[order], values[order]
        starts = np.searchsorted(groups, keys, side="left")
        sizes = np.searchsorted(groups, keys, side="right") - starts
        position = (np.maximum(sizes, 1) - 1) * quantile
        low = np.floor(position).astype(np.int64)
        high = np.minimum(low + 1, np.maximum(sizes - 1, 0))
        fraction = position - low
        safe = np.minimum(starts, max(len(values) - 1, 0))
        below = values[np.minimum(safe + low, len(values) - 1)]
        above = values[np.minimum(safe + high, len(values) - 1)]
        result = below + (above - below) * fraction
        return np.where(sizes > 0, result, np.nan)


class _LineQuarantine(Quarantine):
    """Quarantine of log lines: counts of every bad line, examples with file and line."""

    def add_lines(self, problem: str, message: str, count: int,
                  examples: list[dict[str, Any]]) -> None:
        entry = self.problems.setdefault(problem, {"count": 0, "message": message,
                                                   "examples": []})
        entry["count"] += count
        entry["examples"] = (entry["examples"] + examples)[:EXAMPLES]
        self.bad_rows += count


# --- the op ------------------------------------------------------------------------------
@register
class LogSource(Op):
    """Aggregate log files into a table of per-interval metrics (count, error rate, p99...).

    Output ``out``: one row per interval from the first to the last event (empty intervals
    have count 0), labelled by the interval's start. Output ``report``: lines read, kept and
    quarantined, with examples (file, line number, text) of every problem.
    """

    name = "source.logs"
    inputs = {}
    outputs = {"out": "table", "report": "json"}
    Config = LogSourceConfig

    def files(self) -> list[Path]:
        return find_log_files(self.config.path, self.config.rotated)

    def source_state(self) -> str | None:
        """Name, size and mtime of every matched file: a grown or rotated log reruns."""
        listing = []
        for path in self.files():
            stat = path.stat()
            listing.append([str(path), stat.st_size, stat.st_mtime_ns])
        return hashlib.sha256(json.dumps(listing).encode()).hexdigest()

    def _parser(self) -> _ArrowParser | _RegexParser | _JsonParser:
        c = self.config
        fields = sorted({m.field for m in c.parsed_metrics() if m.field})
        if c.format == "jsonl":
            return _JsonParser(fields, c.time_field, c.time_format, c.tz)
        parse_times: Callable[[np.ndarray], np.ndarray]
        if c.format == "regex":
            assert c.pattern is not None
            pattern, fmt = c.pattern, "regex"
            parse_times = functools.partial(_parse_times, time_format=c.time_format, tz=c.tz)
        elif c.format == "syslog":
            pattern, fmt = _PATTERNS["syslog"], "syslog"
            parse_times = functools.partial(_syslog_times, c.year, tz=c.tz)
        else:
            pattern, fmt, parse_times = _PATTERNS[c.format], c.format, _clf_times
        anchored = _arrow_pattern(pattern) if USE_ARROW else None
        if anchored is not None:
            return _ArrowParser(anchored, fields, fmt, parse_times)
        return _RegexParser(pattern, fields, fmt, parse_times)

    def run(self, ctx: StepContext) -> dict[str, Any]:
        c = self.config
        source = redact(c.path)
        parser = self._parser()
        metrics = c.parsed_metrics()
        aggregator = _Aggregator(metrics, c.step_ns(), c.tz, c.error_status)
        quarantine = _LineQuarantine(source)
        start, end = c.bound("start"), c.bound("end")
        lines_read = kept = blank = outside = 0
        missing: dict[str, int] = {}
        files_read = []
        for path in self.files():
            file_lines = 0
            for data in _read_chunks(path):
                parsed = parser.parse(data)
                first_line = file_lines + 1
                file_lines += parsed.lines + parsed.blank
                if parsed.bad:
                    self._bad_lines(parsed, path, first_line, quarantine)
                times, values = parsed.times, parsed.values
                if start is not None or end is not None:
                    inside = np.ones(len(times), dtype=bool)
                    if start is not None:
                        inside &= times >= start
                    if end is not None:
                        inside &= times < end
                    outside += int((~inside).sum())
                    times = times[inside]
                    values = {name: v[inside] for name, v in values.items()}
                    parsed.missing = {n: int(np.isnan(v).sum()) for n, v in values.items()}
                aggregator.add(times, values)
                lines_read += parsed.lines
                blank += parsed.blank
                kept += len(times)
                for name, count in parsed.missing.items():
                    missing[name] = missing.get(name, 0) + count
            files_read.append({"path": str(path), "bytes": path.stat().st_size,
                               "lines": file_lines})
        if not kept:
            why = (f"{quarantine.bad_rows} bad lines quarantined, e.g. "
                   f"{next(iter(quarantine.problems.values()))['examples'][:1]}"
                   if quarantine.bad_rows else
                   f"{outside} lines outside start/end" if outside else "the files are empty")
            raise OpError(f"{source}: no log lines to aggregate ({why})")
        table = aggregator.result()
        quarantine.notes.update({
            "files": files_read, "interval": c.interval, "intervals": len(table),
            "empty_intervals": aggregator.empty_intervals,
            "blank_lines": blank, "outside_time_range": outside,
            "missing_values": {k: v for k, v in missing.items() if v},
        })
        report = quarantine.report(lines_read, kept)
        ctx.log_metrics({"lines": lines_read, "bad_lines": quarantine.bad_rows,
                         "files": len(files_read), "intervals": len(table)})
        return {"out": table, "report": report}

    def _bad_lines(self, parsed: _Parsed, path: Path, first_line: int,
                   quarantine: _LineQuarantine) -> None:
        for problem, (message, count, examples) in parsed.bad.items():
            shown = [{"file": str(path), "line": first_line + i, "text": text[:EXAMPLE_CHARS]}
                     for i, text in examples]
            quarantine.add_lines(problem, message, count, shown)
        if self.config.on_bad_rows == "error":  # fail at the first bad line of the chunk
            message, index, text = min(((m, *e) for m, _, ex in parsed.bad.values()
                                        for e in ex), key=lambda bad: bad[1])
            raise OpError(f"{path}:{first_line + index}: {message}: "
                          f"{text[:EXAMPLE_CHARS]!r}; set on_bad_rows: quarantine to keep the "
                          "good lines and get a report")


