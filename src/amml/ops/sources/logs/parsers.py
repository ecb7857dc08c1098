"""Chunk parsers: a chunk of whole lines to columns of times and numeric fields, with every
bad line sorted by reason. Regex formats run through Arrow's RE2 (or Python's ``re`` for
patterns RE2 lacks); JSON lines are decoded a chunk at a time."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from amml._lazy import LazyModule
from amml._lazy import pandas as pd
from amml._lazy import pyarrow as pa
from amml.ops.sources.logs.formats import (
    _FLAGS,
    _JSON_TIME_KEYS,
    _ZERO_FIELDS,
    NAT,
    _parse_times,
)
from amml.ops.sources.quality import EXAMPLES

pc = LazyModule("pyarrow.compute")


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


