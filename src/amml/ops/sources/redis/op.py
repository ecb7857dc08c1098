"""``source.redis``: a time-indexed table from a Redis stream or sorted sets.

Two layouts are read:

* a **stream** (``kind: stream``): ``XADD key * temperature 61.2 load 48`` — the time is the
  entry id (``<ms>-<seq>``), or a field named by ``time_field`` (ISO text, or epoch numbers
  with ``time_unit``). Entries are read with ``XRANGE`` in batches of ``count``.
* **sorted sets** (``kind: zset``): the score is the timestamp (epoch seconds or
  milliseconds, ``score_unit``). With ``key`` one sorted set holds whole rows (members are JSON
  objects of fields, or plain numbers for a single column); with ``keys`` (column -> key) each
  column has its own sorted set of plain numbers.

Members of a sorted set are unique, so two equal plain values at different times would be one
member; write ``"<time>:<value>"`` members (the part after the last ``:`` is the value) or
JSON objects that include the time in that case.

The step is **incremental**: the report remembers the last stream id (or score per key), so a
rerun on grown data reads only the newer entries and appends them to the previous table. The
data is assumed to be append-only; a stream or set recreated from scratch (its last id or top
score went backwards) is read again in full. The cache token (``source_state``) is the stream's
last generated id and length, or each sorted set's size and top score, so unchanged data is
served from the step cache without touching the entries.

Members are parsed by :func:`parse_member`:

>>> parse_member('{"temperature": 61.5, "load": "48"}', "value")
{'temperature': 61.5, 'load': '48'}
>>> parse_member("61.5", "temperature"), parse_member("1704067200:48", "load")
({'temperature': 61.5}, {'load': 48.0})
>>> parse_member("not a number", "value") is None
True
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import AliasChoices, Field, model_validator

from amml._exceptions import OpError
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import register
from amml.ops.sources.connections import ConnectionConfig, host_port, redact
from amml.ops.sources.quality import (
    EXAMPLES,
    BadRows,
    Quarantine,
    check_fields,
    check_time_zone,
    finish_table,
)

DEFAULT_URL = "redis://127.0.0.1:6379/0"
_MAX_SEQ = 18446744073709551615  # the largest sequence part of a stream id
_TIME = "__time__"


def parse_member(member: str, column: str) -> dict[str, Any] | None:
    """The fields of one sorted-set member, or None when it is malformed.

    A JSON object gives its fields; a number (or ``"<anything>:<number>"``) gives
    ``{column: number}``.
    """
    text = member.strip()
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, dict):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {column: float(value)}
    tail = text.rsplit(":", 1)[-1] if ":" in text else text
    try:
        number = float(tail)
    except ValueError:
        return None
    return {column: number} if math.isfinite(number) or math.isnan(number) else None


def stream_id_ms(entry_id: str) -> int:
    """The milliseconds part of a stream entry id.

    >>> stream_id_ms("1704067200000-3")
    1704067200000
    """
    return int(entry_id.split("-", 1)[0])


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _instant(text: str, tz: str | None) -> pd.Timestamp:
    """A config time as a UTC timestamp (naive text is in ``tz``, or UTC)."""
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"cannot parse time {text!r}: {exc}") from None
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize(tz or "UTC")
    return stamp.tz_convert("UTC")


def merge_reports(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Add up two quarantine reports of the same source."""
    problems = {k: dict(v, examples=list(v["examples"])) for k, v in first["problems"].items()}
    for name, entry in second["problems"].items():
        mine = problems.setdefault(name, {"count": 0, "message": entry["message"],
                                          "examples": []})
        mine["count"] += entry["count"]
        mine["examples"] = (mine["examples"] + list(entry["examples"]))[:EXAMPLES]
    return {**first, "rows_read": first["rows_read"] + second["rows_read"],
            "rows_kept": first["rows_kept"] + second["rows_kept"],
            "bad_rows": first["bad_rows"] + second["bad_rows"], "problems": problems,
            "notes": {**first["notes"], **second["notes"]}}


def _finish(frame: pd.DataFrame, pre: Quarantine, config: RedisSource.Config, *,
            unit: str | None, source: str) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """finish_table, plus the rows quarantined while parsing; (None, report) if none is left."""
    pre.raise_if(config.on_bad_rows)
    pre_report = pre.report(pre.bad_rows, 0)
    if frame.empty:
        return None, pre_report
    try:
        table, report = finish_table(frame, time=_TIME, on_bad_rows=config.on_bad_rows,
                                     source=source, tz=config.tz, unit=unit,
                                     dedupe=config.dedupe)
    except OpError as exc:  # every row was bad (and quarantined): report them, keep going
        if not str(exc).startswith(f"{source}: no rows"):
            raise
        lost = {"unusable_rows": {"count": len(frame), "message": str(exc), "examples": []}}
        return None, merge_reports(pre_report, {"rows_read": len(frame), "rows_kept": 0,
                                                "bad_rows": len(frame), "problems": lost,
                                                "notes": {}})
    table.index.name = "time"
    if config.tz is None and table.index.tz is not None:
        table.index = table.index.tz_convert(None)
    return table.astype("float64"), merge_reports(pre_report, report)


@register
class RedisSource(Op):
    """Read a Redis stream or sorted sets into a time-indexed table (incrementally)."""

    name = "source.redis"
    inputs = {}
    outputs = {"out": "table", "report": "json"}
    incremental = True

    class Config(ConnectionConfig, OpConfig):
        #: one stream or sorted set; or a mapping column -> sorted set (kind zset), which may
        #: also be spelled ``keys``
        key: str | dict[str, str] = Field(validation_alias=AliasChoices("key", "keys"))
        kind: Literal["stream", "zset"] = "stream"
        #: fields (columns) to read, in this order; default: every field found
        fields: list[str] | None = None
        #: time range (ISO; naive times are in ``tz``, or UTC), both ends included
        start: str | None = None
        end: str | None = None
        #: stream field holding the time instead of the entry id
        time_field: str | None = None
        #: unit of a numeric ``time_field`` (epoch); None: the field holds time text
        time_unit: Literal["s", "ms", "us", "ns"] | None = None
        score_unit: Literal["s", "ms"] = "s"
        #: entries per XRANGE / ZRANGE call
        count: int = Field(10_000, ge=1, le=1_000_000)
        #: output time zone; default naive UTC
        tz: str | None = None
        on_bad_rows: BadRows = "error"
        dedupe: Literal["error", "last", "first", "mean"] = "error"
        timeout_s: float = Field(10.0, gt=0)

        @model_validator(mode="before")
        @classmethod
        def _key_or_keys(cls, data: Any) -> Any:
            if isinstance(data, dict) and "keys" in data:
                if "key" in data:
                    raise ValueError("give key (one stream or sorted set) or keys "
                                     "(column -> sorted set), not both")
                if not isinstance(data["keys"], dict):
                    raise ValueError("keys maps columns to sorted sets; for one key use key")
            return data

        @property
        def keys(self) -> dict[str, str] | None:
            """Column -> sorted set, when each column has its own."""
            return self.key if isinstance(self.key, dict) else None

        @property
        def single_key(self) -> str | None:
            return self.key if isinstance(self.key, str) else None

        @model_validator(mode="after")
        def _check_layout(self) -> RedisSource.Config:
            if not self.key:
                raise ValueError("key is empty")
            if self.keys is not None:
                if self.kind != "zset":
                    raise ValueError("keys (one sorted set per column) needs kind: zset")
                if not self.keys:
                    raise ValueError("keys is empty")
                if self.fields is not None:
                    raise ValueError("with keys the columns are the keys' names; "
                                     "drop fields")
            if self.kind == "zset" and (self.time_field or self.time_unit):
                raise ValueError("a sorted set's time is its score: time_field and time_unit "
                                 "apply to streams only (see score_unit)")
            if self.time_unit and not self.time_field:
                raise ValueError("time_unit needs time_field")
            check_fields(self.fields)
            check_time_zone(self.tz)
            for text in (self.start, self.end):
                if text:
                    _instant(text, self.tz)
            if self.start and self.end and \
                    _instant(self.start, self.tz) > _instant(self.end, self.tz):
                raise ValueError(f"start {self.start} is after end {self.end}")
            return self

    # -- connection -------------------------------------------------------------------------

    def _url(self) -> str:
        return self.config.resolve_url(DEFAULT_URL)

    def _where(self) -> str:
        return host_port(self._url(), 6379)

    def _client(self) -> Any:
        try:
            import redis
        except ImportError:  # pragma: no cover - an optional dependency
            raise OpError("source.redis needs the redis package "
                          "(pip install 'amml[sources]')") from None
        url = self._url()
        try:
            client = redis.Redis.from_url(url, decode_responses=True,
                                          socket_connect_timeout=self.config.timeout_s,
                                          socket_timeout=self.config.timeout_s)
            client.ping()
        except redis.exceptions.AuthenticationError:
            raise OpError(f"Redis at {self._where()} refused the credentials "
                          "(check url_env / profile)") from None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                OSError) as exc:
            raise OpError(f"cannot reach Redis at {self._where()}: "
                          f"{redact(str(exc)).replace(url, self._where())}") from None
        except ValueError as exc:
            raise OpError(f"bad Redis URL for {self._where()}: {redact(str(exc))}") from None
        return client

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import redis

        try:
            return fn(*args, **kwargs)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise OpError(f"Redis at {self._where()} failed: {redact(str(exc))}") from None
        except redis.exceptions.ResponseError as exc:
            raise OpError(f"Redis at {self._where()}: {redact(str(exc))}") from None
        except UnicodeDecodeError:
            raise OpError(f"Redis at {self._where()}: {', '.join(self._key_names())} holds "
                          "values that are not UTF-8 text") from None

    def _key_names(self) -> list[str]:
        c = self.config
        return list(c.keys.values()) if c.keys is not None else [str(c.key)]

    def _check_type(self, client: Any, key: str) -> bool:
        """Whether the key exists with the configured kind (raise if it has another type)."""
        kind = self._call(client.type, key)
        if kind == "none":
            return False
        if kind != self.config.kind:
            raise OpError(f"Redis key '{key}' at {self._where()} is a {kind}, "
                          f"not a {self.config.kind} (kind)")
        return True

    # -- cache token ------------------------------------------------------------------------

    def source_state(self) -> str | None:
        client = self._client()
        try:
            parts = []
            for key in self._key_names():
                if not self._check_type(client, key):
                    parts.append(f"{key}:absent")
                elif self.config.kind == "stream":
                    info = self._call(client.xinfo_stream, key)
                    parts.append(f"{key}:{info['last-generated-id']}:{info['length']}")
                else:
                    size = self._call(client.zcard, key)
                    top = self._call(client.zrange, key, -1, -1, withscores=True)
                    parts.append(f"{key}:{size}:{top[0][1] if top else ''}")
            return "|".join(parts)
        finally:
            client.close()

    # -- reading ----------------------------------------------------------------------------

    def run(self, ctx: StepContext) -> dict[str, Any]:
        c = self.config
        previous = ctx.previous("out")
        previous_report = ctx.previous("report")
        cursor = (previous_report or {}).get("cursor") if previous is not None else None
        client = self._client()
        try:
            for key in self._key_names():
                if not self._check_type(client, key):
                    raise OpError(f"Redis key '{key}' does not exist at {self._where()}")
            if c.kind == "stream":
                table, report, new_cursor, read = self._read_stream(client, cursor)
            else:
                table, report, new_cursor, read = self._read_zsets(client, cursor)
        finally:
            client.close()
        incremental = cursor is not None and new_cursor.get("mode") == "incremental"
        previous_rows = len(previous) if incremental else 0
        if incremental:
            table = self._append(previous, table)
        elif table is None:
            raise OpError(self._no_rows_message(report))
        new_cursor.pop("mode", None)
        table.index = table.index.as_unit("ns")  # one resolution, whatever pandas inferred
        report.update(key=c.single_key, keys=c.keys, kind=c.kind, cursor=new_cursor,
                      mode="incremental" if incremental else "full",
                      previous_rows=previous_rows, rows_total=len(table),
                      columns=list(table.columns))
        ctx.log_metrics({"rows_read": read, "rows_kept": report["rows_kept"],
                         "bad_rows": report["bad_rows"], "rows": len(table)})
        return {"out": table, "report": report}

    def _no_rows_message(self, report: dict[str, Any]) -> str:
        where = f"Redis {self.config.kind} {', '.join(self._key_names())} at {self._where()}"
        if report["bad_rows"]:
            return (f"{where}: no good rows ({report['bad_rows']} bad rows quarantined: "
                    f"{', '.join(report['problems']) or 'unusable rows'})")
        span = ""
        if self.config.start or self.config.end:
            span = f" between {self.config.start or '-'} and {self.config.end or '+'}"
        return f"{where}: no entries{span}"

    def _append(self, previous: pd.DataFrame, table: pd.DataFrame | None) -> pd.DataFrame:
        if table is None or table.empty:
            return previous
        columns = list(previous.columns) + [c for c in table.columns
                                            if c not in previous.columns]
        merged = pd.concat([previous, table]).reindex(columns=columns)
        merged = merged.sort_index(kind="stable")
        duplicated = merged.index.duplicated(keep=False)
        if duplicated.any():
            if self.config.keys is not None:  # one column per key arrived in separate reads
                merged = merged.groupby(level=0, sort=True).last()
            elif self.config.dedupe == "error":
                examples = merged.index[duplicated][:3].astype(str).tolist()
                raise OpError(f"Redis {', '.join(self._key_names())}: new entries repeat "
                              f"timestamps already read, e.g. {examples}; set dedupe: last, "
                              "first or mean")
            elif self.config.dedupe == "mean":
                merged = merged.groupby(level=0, sort=True).mean()
            else:
                merged = merged[~merged.index.duplicated(keep=self.config.dedupe)]
        merged.index.name = "time"
        return merged.astype("float64")

    def _bounds_ns(self) -> tuple[int | None, int | None]:
        c = self.config
        start = _instant(c.start, c.tz).value if c.start else None
        end = _instant(c.end, c.tz).value if c.end else None
        return start, end

    def _source_name(self) -> str:
        return f"redis {self.config.kind} {', '.join(self._key_names())}"

    def _read_stream(self, client: Any, cursor: dict[str, Any] | None
                     ) -> tuple[pd.DataFrame | None, dict[str, Any], dict[str, Any], int]:
        c = self.config
        key = c.single_key
        assert key is not None
        start_ns, end_ns = self._bounds_ns()
        by_id = c.time_field is None
        low = f"{-(-start_ns // 1_000_000)}-0" if by_id and start_ns is not None else "-"
        high = f"{end_ns // 1_000_000}-{_MAX_SEQ}" if by_id and end_ns is not None else "+"
        mode = "full"
        last_id = None
        if cursor and cursor.get("last_id"):
            info = self._call(client.xinfo_stream, key)
            if _id_key(info["last-generated-id"]) >= _id_key(cursor["last_id"]):
                mode = "incremental"
                last_id = cursor["last_id"]
                if low == "-" or _id_key(low) <= _id_key(last_id):
                    low = "(" + last_id
        if high != "+" and low not in ("-",) and _id_key(low.lstrip("(")) > _id_key(high):
            entries: list[tuple[str, dict[str, str]]] = []
        else:
            entries = list(self._xrange(client, key, low, high))
        if entries:
            last_id = entries[-1][0]
        pre = Quarantine(self._source_name())
        if mode == "full":
            self._check_fields([values for _, values in entries])
        records: list[dict[str, Any]] = []
        empty: list[str] = []
        for entry_id, values in entries:
            if c.fields and not any(f in values for f in c.fields):
                empty.append(f"{entry_id}: {values}")
                continue
            row: dict[str, Any] = dict(values)
            if by_id:
                row[_TIME] = stream_id_ms(entry_id)
            else:
                row[_TIME] = row.pop(c.time_field, None)
            records.append(row)
        pre.add("no_fields", empty, f"entries without any of the fields {c.fields}")
        frame = self._frame(records)
        unit = "ms" if by_id else c.time_unit
        table, report = _finish(frame, pre, c, unit=unit, source=self._source_name())
        if table is not None and not by_id and (start_ns is not None or end_ns is not None):
            table = self._filter(table, start_ns, end_ns)
        return table, report, {"last_id": last_id, "mode": mode}, len(entries)

    def _xrange(self, client: Any, key: str, low: str, high: str
                ) -> Iterator[tuple[str, dict[str, str]]]:
        while True:
            batch = self._call(client.xrange, key, min=low, max=high, count=self.config.count)
            yield from batch
            if len(batch) < self.config.count:
                return
            low = "(" + batch[-1][0]

    def _check_fields(self, rows: list[dict[str, Any]]) -> None:
        """A full read must find every requested field somewhere (typos fail loudly)."""
        if self.config.fields is None or not rows:
            return
        seen = dict.fromkeys(f for row in rows for f in row if f not in (_TIME,
                                                                         self.config.time_field))
        missing = [f for f in self.config.fields if f not in seen]
        if missing:
            raise OpError(f"{self._source_name()} at {self._where()}: fields {missing} not found "
                          f"(fields: {', '.join(map(str, seen)) or 'none'})")

    def _frame(self, records: list[dict[str, Any]]) -> pd.DataFrame:
        c = self.config
        frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
        if c.fields is not None:
            columns = [_TIME, *c.fields]
        else:
            columns = [_TIME, *[x for x in frame.columns if x != _TIME]]
        if frame.empty:
            return pd.DataFrame(columns=columns)
        return frame.reindex(columns=columns)

    def _filter(self, table: pd.DataFrame, start_ns: int | None, end_ns: int | None
                ) -> pd.DataFrame:
        index = table.index
        tz = index.tz
        start = end = None
        if start_ns is not None:
            start = pd.Timestamp(start_ns, tz="UTC")
            start = start.tz_convert(tz) if tz is not None else start.tz_convert(None)
        if end_ns is not None:
            end = pd.Timestamp(end_ns, tz="UTC")
            end = end.tz_convert(tz) if tz is not None else end.tz_convert(None)
        keep = np.ones(len(index), dtype=bool)
        if start is not None:
            keep &= index >= start
        if end is not None:
            keep &= index <= end
        return table.loc[keep]

    # -- sorted sets ------------------------------------------------------------------------

    def _score_bounds(self) -> tuple[float | str, float | str]:
        start_ns, end_ns = self._bounds_ns()
        per = 1e9 if self.config.score_unit == "s" else 1e6
        low: float | str = start_ns / per if start_ns is not None else "-inf"
        high: float | str = end_ns / per if end_ns is not None else "+inf"
        return low, high

    def _zrange(self, client: Any, key: str, low: float | str, high: float | str,
                exclusive_low: bool) -> Iterator[tuple[str, float]]:
        """Members between two scores (``low`` excluded or not), in score order, by rank."""
        if low == "-inf":
            first = 0
        else:  # members before the range: scores below low (or up to low when excluded)
            first = self._call(client.zcount, key, "-inf", low if exclusive_low else f"({low}")
        last = self._call(client.zcount, key, "-inf", high) - 1
        step = self.config.count
        for begin in range(first, last + 1, step):
            stop = min(begin + step - 1, last)
            yield from self._call(client.zrange, key, begin, stop, withscores=True)

    def _read_zsets(self, client: Any, cursor: dict[str, Any] | None
                    ) -> tuple[pd.DataFrame | None, dict[str, Any], dict[str, Any], int]:
        c = self.config
        low, high = self._score_bounds()
        columns = dict(c.keys) if c.keys is not None else {None: c.single_key}
        scores = dict((cursor or {}).get("last_scores") or {})
        mode = "full"
        if scores and set(scores) == set(self._key_names()):
            tops = {key: self._call(client.zrange, key, -1, -1, withscores=True)
                    for key in scores}
            if all(top and top[0][1] >= scores[key] for key, top in tops.items()):
                mode = "incremental"
        if mode == "full":
            scores = {}
        tables: list[pd.DataFrame] = []
        reports: list[dict[str, Any]] = []
        read = 0
        for column, key in columns.items():
            assert key is not None
            key_low: float | str = low
            exclusive = False
            if key in scores and (low == "-inf" or float(low) <= scores[key]):
                key_low, exclusive = scores[key], True
            members = list(self._zrange(client, key, key_low, high, exclusive))
            read += len(members)
            if members:
                scores[key] = members[-1][1]
            table, report = self._zset_table(key, column, members, full=mode == "full")
            reports.append(report)
            if table is not None:
                tables.append(table)
        report = reports[0]
        for other in reports[1:]:
            report = merge_reports(report, other)
        report["source"] = self._source_name()
        if not tables:
            table = None
        elif len(tables) == 1:
            table = tables[0]
        else:
            table = pd.concat(tables, axis=1, join="outer").sort_index()
            table = table.reindex(columns=list(columns))
            table.index.name = "time"
        if table is not None and c.keys is not None:
            table = table.reindex(columns=list(columns))
        return table, report, {"last_scores": scores, "mode": mode}, read

    def _zset_table(self, key: str, column: str | None, members: list[tuple[str, float]],
                    full: bool) -> tuple[pd.DataFrame | None, dict[str, Any]]:
        c = self.config
        name = f"redis zset {key}"
        pre = Quarantine(name)
        value_column = column or (c.fields[0] if c.fields and len(c.fields) == 1 else "value")
        parsed: list[tuple[str, float, dict[str, Any] | None]] = [
            (member, score, parse_member(member, value_column)) for member, score in members]
        if full and column is None:
            self._check_fields([fields for _, _, fields in parsed if fields is not None])
        records: list[dict[str, Any]] = []
        bad: list[str] = []
        empty: list[str] = []
        per_us = 1e6 if c.score_unit == "s" else 1e3
        for member, score, fields in parsed:
            if fields is None or (column is not None and column not in fields
                                  and "value" not in fields):
                bad.append(f"{score}: {member}")
                continue
            if c.fields and not any(f in fields for f in c.fields):
                empty.append(f"{score}: {member}")
                continue
            if column is not None:
                fields = {column: fields.get(column, fields.get("value"))}
            fields[_TIME] = pd.Timestamp(round(score * per_us), unit="us", tz="UTC")
            records.append(fields)
        pre.add("malformed_member", bad, "members that are neither a number nor a JSON object")
        pre.add("no_fields", empty, f"members without any of the fields {c.fields}")
        if column is not None:
            frame = pd.DataFrame.from_records(records, columns=[_TIME, column]) if records \
                else pd.DataFrame(columns=[_TIME, column])
        else:
            frame = self._frame(records)
        if len(frame):
            frame[_TIME] = pd.DatetimeIndex(frame[_TIME])
        table, report = _finish(frame, pre, c, unit=None, source=name)
        if table is not None and column is not None:
            table.columns = [column]
        return table, report
