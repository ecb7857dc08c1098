"""Streams (``kind: stream``): entries read with ``XRANGE``; the time is the entry id, or a
field named by ``time_field``; the cursor is the last entry id read."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from amml._lazy import pandas as pd
from amml.ops.sources.quality import Quarantine
from amml.ops.sources.redis.reader import TIME, LayoutReader, Read, finish_read

_MAX_SEQ = 18446744073709551615  # the largest sequence part of a stream id


def stream_id_ms(entry_id: str) -> int:
    """The milliseconds part of a stream entry id.

    >>> stream_id_ms("1704067200000-3")
    1704067200000
    """
    return int(entry_id.split("-", 1)[0])


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)



class StreamReader(LayoutReader):
    """One stream, read in batches of ``count`` entries."""

    kind = "stream"

    def state(self, client: Any, key: str) -> str:
        info = self.call(client.xinfo_stream, key)
        return f"{key}:{info['last-generated-id']}:{info['length']}"

    def read(self, client: Any, cursor: dict[str, Any] | None) -> Read:
        c = self.config
        key = c.single_key
        assert key is not None
        start_ns, end_ns = self.bounds_ns()
        by_id = c.time_field is None
        low = f"{-(-start_ns // 1_000_000)}-0" if by_id and start_ns is not None else "-"
        high = f"{end_ns // 1_000_000}-{_MAX_SEQ}" if by_id and end_ns is not None else "+"
        mode = "full"
        last_id = None
        if cursor and cursor.get("last_id"):
            info = self.call(client.xinfo_stream, key)
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
        pre = Quarantine(self.source_name())
        if mode == "full":
            self.check_fields([values for _, values in entries])
        records: list[dict[str, Any]] = []
        empty: list[str] = []
        for entry_id, values in entries:
            if c.fields and not any(f in values for f in c.fields):
                empty.append(f"{entry_id}: {values}")
                continue
            row: dict[str, Any] = dict(values)
            if by_id:
                row[TIME] = stream_id_ms(entry_id)
            else:
                row[TIME] = row.pop(c.time_field, None)
            records.append(row)
        pre.add("no_fields", empty, f"entries without any of the fields {c.fields}")
        frame = self.frame(records)
        unit = "ms" if by_id else c.time_unit
        table, report = finish_read(frame, pre, c, unit=unit, source=self.source_name())
        if table is not None and not by_id and (start_ns is not None or end_ns is not None):
            table = self._filter(table, start_ns, end_ns)
        return table, report, {"last_id": last_id, "mode": mode}, len(entries)

    def _xrange(self, client: Any, key: str, low: str, high: str
                ) -> Iterator[tuple[str, dict[str, str]]]:
        while True:
            batch = self.call(client.xrange, key, min=low, max=high, count=self.config.count)
            yield from batch
            if len(batch) < self.config.count:
                return
            low = "(" + batch[-1][0]

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
