"""The ``source.redis`` op: its configuration, the connection, the cache token and the
incremental append; the reading itself is done by the reader of the configured layout."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, Field, model_validator

from amml._exceptions import OpError
from amml._lazy import pandas as pd
from amml._urls import encode_userinfo
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import register
from amml.ops.sources.connections import ConnectionConfig, host_port, redact
from amml.ops.sources.quality import BadRows, check_fields, check_time_zone
from amml.ops.sources.redis.reader import LayoutReader, instant
from amml.ops.sources.redis.sorted_sets import SortedSetReader
from amml.ops.sources.redis.streams import StreamReader

DEFAULT_URL = "redis://127.0.0.1:6379/0"
#: One reader per layout, by ``kind``.
READERS: dict[str, type[LayoutReader]] = {"stream": StreamReader, "zset": SortedSetReader}


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
                    instant(text, self.tz)
            if self.start and self.end and \
                    instant(self.start, self.tz) > instant(self.end, self.tz):
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
            # re-encoded user-info: redis-py reads URLs the RFC way, which would take a
            # password holding '/' for part of the host (and quote it in a ValueError)
            client = redis.Redis.from_url(encode_userinfo(url),
                                          decode_responses=True,
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
        except Exception as exc:  # a driver error quotes what it was given: never raw
            raise OpError(f"Redis at {self._where()}: {type(exc).__name__}: "
                          f"{redact(str(exc))}") from None
        return client

    def _reader(self) -> LayoutReader:
        return READERS[self.config.kind](self.config, self._where())

    def _key_names(self) -> list[str]:
        return self._reader().key_names()

    def _check_type(self, client: Any, key: str) -> bool:
        """Whether the key exists with the configured kind (raise if it has another type)."""
        kind = self._reader().call(client.type, key)
        if kind == "none":
            return False
        if kind != self.config.kind:
            raise OpError(f"Redis key '{key}' at {self._where()} is a {kind}, "
                          f"not a {self.config.kind} (kind)")
        return True

    # -- cache token ------------------------------------------------------------------------

    def source_state(self) -> str | None:
        reader = self._reader()
        client = self._client()
        try:
            parts = []
            for key in reader.key_names():
                if not self._check_type(client, key):
                    parts.append(f"{key}:absent")
                else:
                    parts.append(reader.state(client, key))
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
            table, report, new_cursor, read = self._reader().read(client, cursor)
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
