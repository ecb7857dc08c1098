"""``source.logs``: the op and its configuration; the package docstring shows it at work."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from amml._exceptions import OpError
from amml._lazy import pandas as pd
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import register
from amml.ops.sources.connections import redact
from amml.ops.sources.logs.aggregate import Metric, _Aggregator, parse_metric
from amml.ops.sources.logs.files import _read_chunks, find_log_files
from amml.ops.sources.logs.formats import (
    _FIELDS,
    _PATTERNS,
    LogFormat,
    _clf_times,
    _parse_times,
    _syslog_times,
)
from amml.ops.sources.logs.parsers import (
    _arrow_pattern,
    _ArrowParser,
    _JsonParser,
    _Parsed,
    _RegexParser,
)
from amml.ops.sources.quality import EXAMPLES, BadRows, Quarantine

#: Read regex formats with Arrow's RE2 when it can run the pattern (False: always ``re``).
USE_ARROW = True
EXAMPLE_CHARS = 200


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
            step = pd.Timedelta(pd.tseries.frequencies.to_offset(value))
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
        offset = pd.tseries.frequencies.to_offset(self.interval)
        return int(pd.Timedelta(offset).as_unit("ns").value)

    def bound(self, name: Literal["start", "end"]) -> int | None:
        """``start`` or ``end`` in UTC nanoseconds."""
        value = getattr(self, name)
        if value is None:
            return None
        stamp = pd.Timestamp(value)
        if stamp.tzinfo is None:
            stamp = stamp.tz_localize(self.tz or "UTC")
        return int(stamp.tz_convert("UTC").as_unit("ns").value)



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
    #: a relative path or glob is the workflow file's folder's (amml.ops.paths)
    path_fields = {"path": "file"}

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
