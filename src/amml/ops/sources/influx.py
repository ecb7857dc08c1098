"""``source.influxdb``: a time series from an InfluxDB 1.x measurement over its HTTP API.

Pick the ``fields`` of one ``measurement`` (in ``database``, optionally ``retention_policy``),
filter on ``tags`` (``{tag: value}``, or a list of values any of which matches) and a time
range, and optionally let the server aggregate (``group_by_time`` with ``aggregate`` and
``fill``) so only the buckets travel. The query is built from the config, never from text
pasted into it: identifiers are double-quoted and tag values are single-quoted string
literals, both escaped.

>>> source = InfluxSource(database="plant", measurement="sensors", fields=["temperature"],
...                       tags={"site": "it's"}, start="2024-01-01", end="2024-01-02")
>>> print(source.query())
SELECT "temperature" FROM "sensors" WHERE "site" = 'it\\'s'
  AND time >= '2024-01-01T00:00:00Z' AND time < '2024-01-02T00:00:00Z'
>>> print(InfluxSource(database="plant", measurement="sensors", fields=["load"],
...                    start="2024-01-01", group_by_time="6h", aggregate="max",
...                    fill="previous").query())
SELECT max("load") FROM "sensors" WHERE time >= '2024-01-01T00:00:00Z'
  GROUP BY time(6h) fill(previous)

Time range: ``start`` (inclusive) and ``end`` (exclusive) are ISO timestamps, read in ``tz``
(UTC if not given) unless they carry a zone. ``start`` is required so that a typo never scans
a whole database; set ``all_time: true`` instead to read everything on purpose. With
``group_by_time`` and no ``end``, InfluxDB closes the range at its ``now()``.

The result streams in chunked responses (``chunk_size`` points per chunk), is checked by
:func:`~amml.ops.sources.quality.finish_table` (``on_bad_rows``, ``dedupe``: points of
several series that share a timestamp when ``tags`` do not narrow the read to one series)
and has a ``time`` index (tz-naive UTC, or in ``tz``) and one float column per field, in the
order of ``fields``.

Caching and incremental reads: the step's cache key includes the point count of each field
and the newest point in the range, so new points make the step run again. That run reuses
its previous output: it counts the points up to the previous output's watermark, and if they
are unchanged it reads only the newer points (or, aggregated, the buckets from the last one
that had data) and appends them; points that arrived late (at or before the watermark) are
noticed by the count and make it read everything again. Aggregated reads with
``fill: previous`` or ``linear`` are always read in full.

Credentials come as URL userinfo from ``url_env`` or a ``profile``
(``http://user:password@influx:8086``) and are sent as HTTP basic auth; they appear neither
in the workflow nor in any message.

.. code-block:: yaml

    readings:
      op: source.influxdb
      with: {url_env: INFLUX_URL, database: plant, measurement: sensors,
             fields: [temperature, load], tags: {site: a}, start: "2024-01-01",
             group_by_time: 1h}
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlunsplit

import numpy as np
from pydantic import Field, field_validator, model_validator

from amml._exceptions import OpError
from amml._lazy import pandas as pd
from amml._urls import parse_url
from amml.lang.params import did_you_mean
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import register
from amml.ops.sources.connections import ConnectionConfig, redact
from amml.ops.sources.quality import finish_table

DEFAULT_URL = "http://127.0.0.1:8086"
_DURATION = re.compile(r"^[1-9][0-9]*(ns|u|µ|ms|s|m|h|d|w)$")

Aggregate = Literal["mean", "median", "max", "min", "sum", "count", "first", "last"]
Fill = Literal["none", "null", "previous", "linear"]


def quote_ident(name: str) -> str:
    """An InfluxQL identifier, double-quoted and escaped.

    >>> print(quote_ident('odd "name"'))
    "odd \\"name\\""
    """
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    r"""An InfluxQL string literal, single-quoted and escaped.

    >>> print(quote_string("a' OR 'x'='x"))
    'a\' OR \'x\'=\'x'
    """
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _rfc3339(ns: int) -> str:
    stamp = pd.Timestamp(ns, unit="ns", tz="UTC")
    text = stamp.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = ns % 1_000_000_000
    if fraction:
        text += f".{fraction:09d}".rstrip("0")
    return text + "Z"


def _bound_ns(text: str, tz: str | None) -> int:
    stamp = pd.Timestamp(text)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize(tz or "UTC")
    return int(stamp.tz_convert("UTC").value)


class InfluxConfig(ConnectionConfig, OpConfig):
    database: str = Field(min_length=1)
    measurement: str = Field(min_length=1)
    fields: list[str] = Field(min_length=1)
    #: tag -> value (or list of values, any of which matches)
    tags: dict[str, str | list[str]] = Field(default_factory=dict)
    retention_policy: str | None = None
    start: str | None = None
    end: str | None = None
    all_time: bool = False
    tz: str | None = None
    group_by_time: str | None = None
    aggregate: Aggregate = "mean"
    fill: Fill = "none"
    chunk_size: int = Field(10_000, ge=1, le=1_000_000)
    incremental: bool = True
    on_bad_rows: Literal["error", "quarantine"] = "error"
    dedupe: Literal["error", "last", "first", "mean"] = "error"
    timeout_s: float = Field(60.0, gt=0)

    @field_validator("fields")
    @classmethod
    def _fields(cls, fields: list[str]) -> list[str]:
        if any(not f for f in fields):
            raise ValueError("field names must not be empty")
        repeated = sorted({f for f in fields if fields.count(f) > 1})
        if repeated:
            raise ValueError(f"fields listed twice: {repeated}")
        if "time" in fields:
            raise ValueError("'time' is the index, not a field")
        return fields

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        for key, value in tags.items():
            if isinstance(value, list) and not value:
                raise ValueError(f"tag '{key}': give at least one value")
        return tags

    @field_validator("group_by_time")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and not _DURATION.match(value):
            raise ValueError(f"group_by_time {value!r} is not an InfluxQL duration "
                             "such as 30s, 5m, 1h or 1d")
        return value

    @model_validator(mode="after")
    def _time_range(self) -> InfluxConfig:
        if self.start is None and not self.all_time:
            raise ValueError("give 'start' (and optionally 'end'), or all_time: true to read "
                             "every point of the measurement")
        if self.start is not None and self.all_time:
            raise ValueError("give 'start' or all_time: true, not both")
        bounds = {}
        for name in ("start", "end"):
            text = getattr(self, name)
            if text is None:
                continue
            try:
                bounds[name] = _bound_ns(text, self.tz)
            except Exception:
                raise ValueError(f"{name} {text!r} is not an ISO timestamp") from None
        if len(bounds) == 2 and bounds["start"] >= bounds["end"]:
            raise ValueError(f"start {self.start!r} is not before end {self.end!r}")
        return self


@dataclass
class _Read:
    """What one data query returned: the raw rows and, per row, the points it holds."""

    frame: pd.DataFrame  # "time" (datetime64) and one column per field
    counts: np.ndarray  # rows x fields: points behind each row (aggregated: per bucket)


@register
class InfluxSource(Op):
    """Read fields of an InfluxDB 1.x measurement into a time-indexed table."""

    name = "source.influxdb"
    inputs = {}
    outputs = {"out": "table", "report": "json"}
    Config = InfluxConfig
    incremental = True

    # -- queries ---------------------------------------------------------------------------
    def _source(self) -> str:
        c = self.config
        if c.retention_policy:
            return f"{quote_ident(c.retention_policy)}.{quote_ident(c.measurement)}"
        return quote_ident(c.measurement)

    def _bounds(self) -> tuple[int | None, int | None]:
        c = self.config
        return (None if c.start is None else _bound_ns(c.start, c.tz),
                None if c.end is None else _bound_ns(c.end, c.tz))

    def _where(self, lower: int | None, upper: int | None) -> str:
        conditions = []
        for key, value in self.config.tags.items():
            values = value if isinstance(value, list) else [value]
            alternatives = [f"{quote_ident(key)} = {quote_string(v)}" for v in values]
            conditions.append(alternatives[0] if len(alternatives) == 1
                              else "(" + " OR ".join(alternatives) + ")")
        if lower is not None:
            conditions.append(f"time >= '{_rfc3339(lower)}'")
        if upper is not None:
            conditions.append(f"time < '{_rfc3339(upper)}'")
        return " WHERE " + " AND ".join(conditions) if conditions else ""

    def _with_counts(self) -> bool:
        """Aggregated reads also select per-bucket counts (for incremental reads)."""
        c = self.config
        return c.group_by_time is not None and c.fill in ("none", "null") and c.incremental

    def _data_query(self, lower: int | None, upper: int | None) -> str:
        c = self.config
        if c.group_by_time is None:
            picked = ", ".join(quote_ident(f) for f in c.fields)
            return f"SELECT {picked} FROM {self._source()}{self._where(lower, upper)}"
        parts = [f"{c.aggregate}({quote_ident(f)})" for f in c.fields]
        if self._with_counts():
            parts += [f"count({quote_ident(f)})" for f in c.fields]
        return (f"SELECT {', '.join(parts)} FROM {self._source()}{self._where(lower, upper)}"
                f" GROUP BY time({c.group_by_time}) fill({c.fill})")

    def _count_query(self, lower: int | None, upper: int | None) -> str:
        picked = ", ".join(f"count({quote_ident(f)})" for f in self.config.fields)
        return f"SELECT {picked} FROM {self._source()}{self._where(lower, upper)}"

    def query(self) -> str:
        """The InfluxQL a full read sends (the ``GROUP BY time`` pushdown included)."""
        return self._data_query(*self._bounds())

    # -- HTTP ------------------------------------------------------------------------------
    def _connect(self) -> _Connection:
        return _Connection(self.config.resolve_url(DEFAULT_URL), self.config.timeout_s)

    # -- cache state -----------------------------------------------------------------------
    def source_state(self) -> str | None:
        """Point counts of every field and the newest point of each, over the range."""
        lower, upper = self._bounds()
        where = self._where(lower, upper)
        statements = [self._count_query(lower, upper)] + [
            f"SELECT last({quote_ident(f)}) FROM {self._source()}{where}"
            for f in self.config.fields]
        with self._connect() as conn:
            results = conn.statements(self.config.database, statements)
        state = [[series.get("values") for series in result] for result in results]
        return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()
                              ).hexdigest()

    # -- reading ---------------------------------------------------------------------------
    def run(self, ctx: StepContext) -> dict[str, Any]:
        c = self.config
        lower, upper = self._bounds()
        with self._connect() as conn:
            source = (f"source.influxdb {c.database}.{c.measurement} at {conn.where}")
            self._check_schema(conn)
            previous, resume, note = self._resumable(ctx, conn, lower)
            read_from = resume["watermark"] if resume else lower
            read = self._read(conn, read_from, upper)
        rows_read = len(read.frame)
        ctx.log_metric("rows_read", rows_read)
        next_resume = self._next_resume(read, read_from, resume)

        if previous is not None and rows_read == 0:
            frame = previous
            report: dict[str, Any] = {"source": source, "rows_read": 0, "bad_rows": 0,
                                      "problems": {}, "notes": {}}
        else:
            frame, report = finish_table(read.frame, time="time", on_bad_rows=c.on_bad_rows,
                                         source=source, tz=c.tz, columns=list(c.fields),
                                         dedupe=c.dedupe)
            frame = frame.astype("float64")
            if previous is not None:
                frame = pd.concat([previous, frame])
        frame.columns = list(c.fields)
        report["query"] = self._data_query(read_from, upper)
        report["incremental"] = {
            "watermark": None if resume is None else _rfc3339(resume["watermark"]),
            "previous_rows": 0 if previous is None else len(previous),
            "new_rows": rows_read}
        report["resume"] = next_resume if report["bad_rows"] == 0 else None
        if note:
            report["notes"]["late_rows"] = note
        report["rows_kept"] = len(frame)
        ctx.log_metric("rows", len(frame))
        return {"out": frame, "report": report}

    def _check_schema(self, conn: _Connection) -> None:
        """Name a missing measurement, field or tag instead of returning empty columns."""
        c = self.config
        source = self._source()
        fields_result, tags_result = conn.statements(
            c.database, [f"SHOW FIELD KEYS FROM {source}", f"SHOW TAG KEYS FROM {source}"])
        if not fields_result:
            known = [row[-1] for s in conn.statements(c.database, ["SHOW MEASUREMENTS"])[0]
                     for row in s.get("values") or []]
            hint = did_you_mean(c.measurement, known)
            raise OpError(f"InfluxDB at {conn.where}: measurement '{c.measurement}' not found "
                          f"in database '{c.database}'" + (f"; {hint}" if hint else ""))
        field_keys = [row[0] for s in fields_result for row in s.get("values") or []]
        missing = [f for f in c.fields if f not in field_keys]
        if missing:
            raise OpError(f"InfluxDB at {conn.where}: fields {missing} not in measurement "
                          f"'{c.measurement}' (fields: {', '.join(field_keys)})")
        tag_keys = [row[0] for s in tags_result for row in s.get("values") or []]
        unknown = [t for t in c.tags if t not in tag_keys]
        if unknown:
            raise OpError(f"InfluxDB at {conn.where}: tags {unknown} not in measurement "
                          f"'{c.measurement}' (tags: {', '.join(tag_keys) or 'none'})")

    def _read(self, conn: _Connection, lower: int | None, upper: int | None) -> _Read:
        fields = self.config.fields
        width = len(fields)
        with_counts = self._with_counts()
        times: list[np.ndarray] = []
        values: list[pd.DataFrame] = []
        counts: list[np.ndarray] = []
        for series in conn.stream(self.config.database, self._data_query(lower, upper),
                                  self.config.chunk_size):
            rows = series.get("values") or []
            if not rows:
                continue
            expected = 1 + width * (2 if with_counts else 1)
            if len(series.get("columns") or []) != expected:
                raise OpError(f"InfluxDB at {conn.where} answered columns {series.get('columns')}"
                              f" for {width} fields")
            chunk = pd.DataFrame(rows)
            times.append(chunk[0].to_numpy(dtype="int64"))
            part = chunk.iloc[:, 1:1 + width]
            part.columns = list(fields)
            values.append(part)
            if with_counts:
                counts.append(chunk.iloc[:, 1 + width:].fillna(0).to_numpy(dtype="int64"))
            elif self.config.group_by_time is None:
                counts.append(part.notna().to_numpy(dtype="int64"))
        if not values:
            empty = pd.DataFrame({"time": pd.DatetimeIndex([]),
                                  **{f: pd.Series([], dtype="float64") for f in fields}})
            return _Read(empty, np.zeros((0, width), dtype="int64"))
        stamps = np.concatenate(times)
        frame = pd.concat(values, ignore_index=True)
        index = pd.to_datetime(stamps, unit="ns", utc=self.config.tz is not None)
        frame.insert(0, "time", index)
        matrix = (np.concatenate(counts) if counts
                  else np.zeros((len(frame), width), dtype="int64"))
        return _Read(frame, matrix)

    # -- incremental -----------------------------------------------------------------------
    def _resumable(self, ctx: StepContext, conn: _Connection, lower: int | None
                   ) -> tuple[pd.DataFrame | None, dict[str, Any] | None, str | None]:
        """(previous rows to keep, the resume point, a note) or Nones for a full read."""
        c = self.config
        if not c.incremental or (c.group_by_time is not None and not self._with_counts()):
            return None, None, None
        previous = ctx.previous("out")
        report = ctx.previous("report")
        if not isinstance(previous, pd.DataFrame) or not isinstance(report, dict):
            return None, None, None
        resume = report.get("resume")
        if not resume or list(previous.columns) != list(c.fields) \
                or report.get("bad_rows", 1) != 0:
            return None, None, None
        watermark = int(resume["watermark"])
        seen = self._counts(conn, lower, watermark)
        expected = [int(resume["counts"].get(f, 0)) for f in c.fields]
        if seen != expected:
            late = sum(seen) - sum(expected)
            return None, None, (f"{late} points arrived before the previous watermark "
                                f"{_rfc3339(watermark)}: read everything again")
        stamps = _utc_ns(previous.index)
        return previous[stamps < watermark], resume, None

    def _counts(self, conn: _Connection, lower: int | None, upper: int) -> list[int]:
        result = conn.statements(self.config.database, [self._count_query(lower, upper)])[0]
        rows = [row for s in result for row in s.get("values") or []]
        if not rows:
            return [0] * len(self.config.fields)
        return [int(v or 0) for v in rows[0][1:]]

    def _next_resume(self, read: _Read, read_from: int | None,
                     resume: dict[str, Any] | None) -> dict[str, Any] | None:
        """Where the next incremental read starts, and the points before that point."""
        c = self.config
        if not c.incremental or (c.group_by_time is not None and not self._with_counts()):
            return None
        base = (np.array([int(resume["counts"][f]) for f in c.fields], dtype="int64")
                if resume else np.zeros(len(c.fields), dtype="int64"))
        filled = np.flatnonzero(read.counts.sum(axis=1) > 0) if len(read.counts) else []
        if len(filled) == 0:
            if read_from is None:
                return None
            return {"watermark": int(read_from), "counts": dict(zip(c.fields, base.tolist(),
                                                                    strict=True))}
        last = int(filled[-1])
        stamps = _utc_ns(pd.DatetimeIndex(read.frame["time"]))
        if c.group_by_time is None:  # raw points: everything up to the newest one
            watermark, upto = int(stamps[last]) + 1, last + 1
        else:  # buckets: the last bucket with data may still grow, so it is read again
            watermark, upto = int(stamps[last]), last
        total = base + read.counts[:upto].sum(axis=0)
        return {"watermark": watermark,
                "counts": {f: int(n) for f, n in zip(c.fields, total, strict=True)}}


def _utc_ns(index: pd.Index) -> np.ndarray:
    times = pd.DatetimeIndex(index)
    if times.tz is not None:
        times = times.tz_convert("UTC").tz_localize(None)
    return times.as_unit("ns").asi8


class _Connection:
    """One HTTP client for one InfluxDB server; credentials go as basic auth."""

    def __init__(self, url: str, timeout_s: float) -> None:
        try:
            import httpx
        except ImportError:
            raise OpError("source.influxdb needs httpx: pip install 'amml[sources]'") from None
        self._httpx = httpx
        try:
            parsed = parse_url(url)
        except ValueError:
            parsed = None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
            raise OpError(f"InfluxDB URL {redact(url)!r} must be http(s)://host:port")
        self.where = parsed.host_port(8086 if parsed.scheme == "http" else 443)
        # credentials go as basic auth, never in the request line: from the user-info or
        # InfluxDB 1.x's own ?u=...&p=... (both credential-aware, a password may hold '/')
        auth = None
        if parsed.username:
            auth = (parsed.username, parsed.password or "")
        elif parsed.query_value("u") is not None:
            auth = (parsed.query_value("u") or "", parsed.query_value("p") or "")
        base = urlunsplit((parsed.scheme, parsed.hosts, parsed.path.rstrip("/") + "/", "", ""))
        self._client = httpx.Client(base_url=base, auth=auth, timeout=timeout_s)

    def __enter__(self) -> _Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def _fail(self, exc: Exception) -> OpError:
        httpx = self._httpx
        if isinstance(exc, httpx.TimeoutException):
            return OpError(f"InfluxDB at {self.where} did not answer in time "
                           f"({type(exc).__name__})")
        reason = redact(str(exc)) or type(exc).__name__
        return OpError(f"InfluxDB at {self.where} is not reachable: {reason}")

    def _server_error(self, status: int, body: str, header: str | None) -> OpError:
        try:
            message = json.loads(body).get("error")
        except (ValueError, AttributeError):
            message = None
        message = redact(message or header or body.strip()[:300] or f"HTTP {status}")
        if status in (401, 403):
            return OpError(f"InfluxDB at {self.where} refused the credentials "
                           f"(HTTP {status}): {message}")
        return OpError(f"InfluxDB at {self.where} answered HTTP {status}: {message}")

    def _result_error(self, message: str) -> OpError:
        return OpError(f"InfluxDB at {self.where}: {redact(str(message))}")

    def statements(self, database: str, statements: list[str]) -> list[list[dict[str, Any]]]:
        """Run statements in one request; returns each one's series."""
        try:
            response = self._client.post("query", params={"db": database, "epoch": "ns"},
                                         data={"q": "; ".join(statements)})
        except self._httpx.HTTPError as exc:
            raise self._fail(exc) from None
        if response.status_code != 200:
            raise self._server_error(response.status_code, response.text,
                                     response.headers.get("X-Influxdb-Error"))
        try:
            document = response.json()
        except ValueError:
            raise OpError(f"{self.where} did not answer like InfluxDB: "
                          f"{response.text[:200]!r}") from None
        if "error" in document:
            raise self._result_error(document["error"])
        results = []
        for result in document.get("results", []):
            if "error" in result:
                if result["error"] == "not executed" and len(statements) > 1:
                    # several statements on a missing database say only this: ask once more
                    self.statements(database, statements[:1])
                raise self._result_error(result["error"])
            results.append(result.get("series") or [])
        return results

    def stream(self, database: str, q: str, chunk_size: int) -> Iterator[dict[str, Any]]:
        """The series chunks of one statement, as the server streams them."""
        params = {"db": database, "epoch": "ns", "chunked": "true",
                  "chunk_size": str(chunk_size)}
        try:
            with self._client.stream("POST", "query", params=params,
                                     data={"q": q}) as response:
                if response.status_code != 200:
                    response.read()
                    raise self._server_error(response.status_code, response.text,
                                             response.headers.get("X-Influxdb-Error"))
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    try:
                        document = json.loads(line)
                    except ValueError:
                        raise OpError(f"{self.where} did not answer like InfluxDB: "
                                      f"{line[:200]!r}") from None
                    if "error" in document:
                        raise self._result_error(document["error"])
                    for result in document.get("results", []):
                        if "error" in result:
                            raise self._result_error(result["error"])
                        yield from result.get("series") or []
        except self._httpx.HTTPError as exc:
            raise self._fail(exc) from None
