"""Sorted sets (``kind: zset``): the score is the timestamp; one set of whole rows (JSON
members, or plain numbers for one column), or one set of plain numbers per column. Members are
read by rank in batches of ``count``; the cursor is the top score read per key."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

from amml._lazy import pandas as pd
from amml.ops.sources.quality import Quarantine
from amml.ops.sources.redis.reader import TIME, LayoutReader, Read, finish_read, merge_reports


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



class SortedSetReader(LayoutReader):
    """One sorted set of rows (``key``), or one per column (``keys``)."""

    kind = "zset"

    def state(self, client: Any, key: str) -> str:
        size = self.call(client.zcard, key)
        top = self.call(client.zrange, key, -1, -1, withscores=True)
        return f"{key}:{size}:{top[0][1] if top else ''}"

    def _score_bounds(self) -> tuple[float | str, float | str]:
        start_ns, end_ns = self.bounds_ns()
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
            first = self.call(client.zcount, key, "-inf", low if exclusive_low else f"({low}")
        last = self.call(client.zcount, key, "-inf", high) - 1
        step = self.config.count
        for begin in range(first, last + 1, step):
            stop = min(begin + step - 1, last)
            yield from self.call(client.zrange, key, begin, stop, withscores=True)

    def read(self, client: Any, cursor: dict[str, Any] | None) -> Read:
        c = self.config
        low, high = self._score_bounds()
        columns = dict(c.keys) if c.keys is not None else {None: c.single_key}
        scores = dict((cursor or {}).get("last_scores") or {})
        mode = "full"
        if scores and set(scores) == set(self.key_names()):
            tops = {key: self.call(client.zrange, key, -1, -1, withscores=True)
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
        report["source"] = self.source_name()
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
            self.check_fields([fields for _, _, fields in parsed if fields is not None])
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
            fields[TIME] = pd.Timestamp(round(score * per_us), unit="us", tz="UTC")
            records.append(fields)
        pre.add("malformed_member", bad, "members that are neither a number nor a JSON object")
        pre.add("no_fields", empty, f"members without any of the fields {c.fields}")
        if column is not None:
            frame = pd.DataFrame.from_records(records, columns=[TIME, column]) if records \
                else pd.DataFrame(columns=[TIME, column])
        else:
            frame = self.frame(records)
        if len(frame):
            frame[TIME] = pd.DatetimeIndex(frame[TIME])
        table, report = finish_read(frame, pre, c, unit=None, source=name)
        if table is not None and column is not None:
            table.columns = [column]
        return table, report
