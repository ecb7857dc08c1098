"""What both Redis layouts share: the reader base class (connection errors translated at the
boundary, field checks, the time range) and the finishing of a read into a table and report."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from amml._exceptions import OpError
from amml._lazy import pandas as pd
from amml.ops.sources.connections import redact
from amml.ops.sources.quality import EXAMPLES, Quarantine, finish_table

if TYPE_CHECKING:
    from amml.ops.sources.redis.op import RedisSource

TIME = "__time__"

#: A read: (the new rows, or None; their report; the cursor for the next read; entries read).
Read = tuple["pd.DataFrame | None", dict[str, Any], dict[str, Any], int]  # pandas loads lazily


def instant(text: str, tz: str | None) -> pd.Timestamp:
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


def finish_read(frame: pd.DataFrame, pre: Quarantine, config: RedisSource.Config, *,
            unit: str | None, source: str) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """finish_table, plus the rows quarantined while parsing; (None, report) if none is left."""
    pre.raise_if(config.on_bad_rows)
    pre_report = pre.report(pre.bad_rows, 0)
    if frame.empty:
        return None, pre_report
    try:
        table, report = finish_table(frame, time=TIME, on_bad_rows=config.on_bad_rows,
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



class LayoutReader:
    """Reads one layout (``kind``) of the keys a :class:`RedisSource` names."""

    kind = ""

    def __init__(self, config: RedisSource.Config, where: str) -> None:
        self.config, self.where = config, where

    def state(self, client: Any, key: str) -> str:
        """The cache token of one existing key: changes whenever its data does."""
        raise NotImplementedError

    def read(self, client: Any, cursor: dict[str, Any] | None) -> Read:
        """Everything new since ``cursor`` (all of it without one, or when the data went
        backwards), within the configured time range."""
        raise NotImplementedError

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` with Redis errors turned into :class:`OpError`."""
        import redis

        try:
            return fn(*args, **kwargs)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise OpError(f"Redis at {self.where} failed: {redact(str(exc))}") from None
        except redis.exceptions.ResponseError as exc:
            raise OpError(f"Redis at {self.where}: {redact(str(exc))}") from None
        except UnicodeDecodeError:
            raise OpError(f"Redis at {self.where}: {', '.join(self.key_names())} holds "
                          "values that are not UTF-8 text") from None

    def key_names(self) -> list[str]:
        c = self.config
        return list(c.keys.values()) if c.keys is not None else [str(c.key)]

    def bounds_ns(self) -> tuple[int | None, int | None]:
        c = self.config
        start = instant(c.start, c.tz).value if c.start else None
        end = instant(c.end, c.tz).value if c.end else None
        return start, end

    def source_name(self) -> str:
        return f"redis {self.config.kind} {', '.join(self.key_names())}"

    def check_fields(self, rows: list[dict[str, Any]]) -> None:
        """A full read must find every requested field somewhere (typos fail loudly)."""
        if self.config.fields is None or not rows:
            return
        seen = dict.fromkeys(f for row in rows for f in row if f not in (TIME,
                                                                         self.config.time_field))
        missing = [f for f in self.config.fields if f not in seen]
        if missing:
            raise OpError(f"{self.source_name()} at {self.where}: fields {missing} not found "
                          f"(fields: {', '.join(map(str, seen)) or 'none'})")

    def frame(self, records: list[dict[str, Any]]) -> pd.DataFrame:
        c = self.config
        frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
        if c.fields is not None:
            columns = [TIME, *c.fields]
        else:
            columns = [TIME, *[x for x in frame.columns if x != TIME]]
        if frame.empty:
            return pd.DataFrame(columns=columns)
        return frame.reindex(columns=columns)
