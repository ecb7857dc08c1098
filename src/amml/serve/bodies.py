"""Request bodies to validated windows: JSON, CSV or Arrow, checked against the signature.

A forecast takes ``lookback`` rows of the model's columns; a detection ``lookback +
horizon``. Bodies:

* JSON ``{"window": [[...], ...]}`` (rows of values in the model's column order, or in the
  order of an optional ``"columns"`` list; a flat list for a one-column model),
  ``{"series": {"OT": [...]}}``, or a batch ``{"windows": [window, ...]}`` whose items are
  row lists or ``{"window"|"series": ..., "timestamps": [...]}`` objects. ``"timestamps"``
  is optional everywhere.
* CSV (``text/csv``): a header naming the columns, one row per time step; a ``window``
  column splits the rows into several windows, a ``timestamp`` (or ``time``, ``date``,
  ``ds``) column gives the times.
* Arrow IPC (``application/vnd.apache.arrow.stream`` or ``.file``): the same table.

Every problem is a :class:`BodyError` whose message names it (rows are counted from 0):

>>> spec = Spec(lookback=4, horizon=2, columns=("OT",), outputs=("OT",), freq="1h")
>>> parse(b'{"window": [1, 2, 3, 4]}', "application/json", spec).values.shape
(1, 4, 1)
>>> parse(b'{"window": [1, 2, 3]}', "application/json", spec)
Traceback (most recent call last):
amml._exceptions.BodyError: window has 3 rows, the model's lookback is 4
>>> parse(b'{"series": {"HUFL": [1, 2, 3, 4]}}', "application/json", spec)
Traceback (most recent call last):
amml._exceptions.BodyError: missing column OT (given: HUFL)
>>> parse(b'{"window": [1, 2, null, 4]}', "application/json", spec)
Traceback (most recent call last):
amml._exceptions.BodyError: NaN at row 2 of column OT
>>> parse(b"timestamp,OT\\n2024-01-01 00:00,1\\n2024-01-01 00:30,2\\n"
...       b"2024-01-01 01:30,3\\n2024-01-01 02:30,4\\n", "text/csv", spec)
Traceback (most recent call last):
amml._exceptions.BodyError: timestamps are 30min apart at row 1, the model's frequency is 1h
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from amml._exceptions import BodyError, LimitError, UnsupportedMediaType
from amml.serve.limits import check_json_depth, check_windows

JSON_TYPES = ("application/json", "")
CSV_TYPES = ("text/csv", "application/csv")
ARROW_TYPES = ("application/vnd.apache.arrow.stream", "application/vnd.apache.arrow.file",
               "application/x-arrow")
TIME_COLUMNS = ("timestamp", "time", "date", "ds", "datetime")


@dataclass(frozen=True)
class Spec:
    """What a model takes and gives: from its signature, else from the model itself."""

    lookback: int
    horizon: int
    columns: tuple[str, ...]
    outputs: tuple[str, ...]
    freq: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"lookback": self.lookback, "horizon": self.horizon,
                "columns": list(self.columns), "outputs": list(self.outputs),
                "freq": self.freq}


@dataclass
class Windows:
    values: np.ndarray  # (windows, rows, columns), float64, in the model's column order
    batch: bool  # a list was sent (answer with a list)
    timestamps: list[pd.DatetimeIndex | None] | None = None
    ids: list[Any] | None = None  # the ``window`` column's values (CSV, Arrow)
    #: one window of more rows was sent and read as every window of ``rows`` rows in it:
    #: the rows as sent (``(rows, columns)``) and their times, what the prediction log keeps
    table: np.ndarray | None = None
    table_times: pd.DatetimeIndex | None = None

    @property
    def slid(self) -> bool:
        return self.table is not None


@dataclass(frozen=True)
class _Limits:
    windows: int | None = None
    values: int | None = None  # of the windows a slid table makes, together
    slide: bool = False


def parse(body: bytes, content_type: str | None, spec: Spec, rows: int | None = None,
          rows_reason: str | None = None, *, max_windows: int | None = None,
          max_depth: int | None = None, slide: bool = False,
          max_values: int | None = None) -> Windows:
    """Parse and validate ``body``; ``rows`` defaults to the lookback (a forecast). A batch of
    more than ``max_windows`` windows, or JSON nested deeper than ``max_depth``, is a
    :class:`~amml.LimitError`, found before the values are converted.

    ``slide``: one window of more than ``rows`` rows (no batch) is read as every window of
    ``rows`` consecutive rows in it, one ending at each of its rows from the ``rows``-th on
    (what a detector that scores a window's newest row needs to score a whole table). Those
    windows may hold at most ``max_values`` values together (each row is in ``rows`` of
    them), a :class:`~amml.LimitError` otherwise, found before they are built.
    """
    rows = spec.lookback if rows is None else rows
    reason = rows_reason or f"the model's lookback is {rows}"
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    limits = _Limits(max_windows, max_values if slide else None, slide)
    if kind in JSON_TYPES or kind.endswith("+json"):
        return _parse_json(body, spec, rows, reason, limits, max_depth)
    if kind in CSV_TYPES:
        try:
            frame = pd.read_csv(io.BytesIO(body))
        except (ValueError, pd.errors.ParserError) as exc:
            raise BodyError(f"body is not valid CSV: {exc}") from None
        return _parse_frame(frame, spec, rows, reason, limits)
    if kind in ARROW_TYPES:
        return _parse_frame(_read_arrow(body), spec, rows, reason, limits)
    raise UnsupportedMediaType(
        f"unsupported content type '{kind}' (send application/json, text/csv or "
        "application/vnd.apache.arrow.stream)")


# -- JSON -----------------------------------------------------------------------------------
def _slid(whole: Windows, rows: int) -> Windows:
    """Every window of ``rows`` consecutive rows of ``whole``'s one window, as a batch."""
    table = whole.values[0]
    values = np.lib.stride_tricks.sliding_window_view(table, rows, axis=0)
    stamps = whole.timestamps[0] if whole.timestamps else None
    count = len(table) - rows + 1
    return Windows(np.ascontiguousarray(np.moveaxis(values, -1, 1)), True,
                   None if stamps is None else [stamps[i:i + rows] for i in range(count)],
                   table=table, table_times=stamps)


def _longer(count: int, rows: int, width: int, limits: _Limits) -> bool:
    """Whether a window of ``count`` rows is to be slid; its windows must be within the
    limits (checked before anything is converted)."""
    if not limits.slide or count <= rows:
        return False
    windows = count - rows + 1
    made = f"{count} rows make {windows} windows of {rows} rows"
    if limits.windows is not None:
        check_windows(windows, limits.windows, made)
    if limits.values is not None and windows * rows * width > limits.values:
        raise LimitError(f"{made}, {windows * rows * width:,} values, over this server's "
                         f"limit of {limits.values:,} (what the largest body could carry): "
                         "send the table in parts", "max_body_bytes", 422, limits.values)
    return True


def _json_rows(data: dict[str, Any], spec: Spec, where: str = "") -> int:
    """How many rows a JSON window holds, counting the model's columns only (0 when it
    cannot tell: the parse then says why)."""
    if isinstance(data.get("series"), dict):
        series = data["series"]
        lengths = {c: len(series[c]) for c in spec.columns if isinstance(series.get(c), list)}
        if len(set(lengths.values())) > 1:
            told = ", ".join(f"{c} {n}" for c, n in lengths.items())
            raise BodyError(f"{where}series have different lengths: {told}")
        return max(lengths.values(), default=0)
    return len(data["window"]) if isinstance(data.get("window"), list) else 0


def _parse_json(body: bytes, spec: Spec, rows: int, reason: str, limits: _Limits,
                max_depth: int | None) -> Windows:
    max_windows = limits.windows
    if max_depth is not None:  # json.loads recurses: a deep body must not reach it
        check_json_depth(body, max_depth)
    try:
        data = json.loads(body) if len(body) < STEPWISE_BYTES else _loads_stepwise(body)
    except ValueError as exc:
        raise BodyError(f"body is not valid JSON: {exc}") from None
    except RecursionError:  # only without a depth limit
        raise BodyError("body is not valid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise BodyError('body must be a JSON object with "window", "series" or "windows"')
    columns = data.get("columns")
    if "windows" in data:
        items = data["windows"]
        if not isinstance(items, list) or not items:
            raise BodyError('"windows" must be a non-empty list of windows')
        if max_windows is not None:
            check_windows(len(items), max_windows)
        values, stamps = [], []
        for i, item in enumerate(items):
            array, stamp = _json_window(item, spec, rows, reason, columns, f"windows[{i}]: ")
            values.append(array)
            stamps.append(stamp)
        return Windows(np.stack(values), True,
                       stamps if any(s is not None for s in stamps) else None)
    if "window" in data or "series" in data:
        count = _json_rows(data, spec) if limits.slide else 0
        if _longer(count, rows, len(spec.columns), limits):
            array, stamp = _json_window(data, spec, count, reason, columns, "")
            return _slid(Windows(array[None], False, None if stamp is None else [stamp]), rows)
        array, stamp = _json_window(data, spec, rows, reason, columns, "")
        return Windows(array[None], False, None if stamp is None else [stamp])
    keys = ", ".join(map(str, data)) or "none"
    raise BodyError(f'body needs "window", "series" or "windows" (keys given: {keys})')


#: Bodies from this size on are decoded a value at a time (each window of a batch on its own):
#: ``json.loads`` is one C call that holds the GIL throughout, ~50 ms a MB, and the event
#: loop (``/healthz``, small requests) would wait behind it; between values it can run.
STEPWISE_BYTES = 256 * 1024
_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


def _loads_stepwise(body: bytes) -> Any:
    """``json.loads`` of an object, decoding the items of a ``"windows"`` list one by one."""
    text = body.decode("utf-8")
    space = _SPACE.match
    i = space(text, 0).end()
    if not text.startswith("{", i):  # not a batch: one call, as before
        return json.loads(text)
    out: dict[str, Any] = {}
    i = space(text, i + 1).end()
    if text.startswith("}", i):
        i += 1
    else:
        while True:
            key, i = _DECODER.raw_decode(text, i)
            if not isinstance(key, str):
                raise ValueError(f"expected a property name at char {i}")
            i = space(text, i).end()
            if not text.startswith(":", i):
                raise ValueError(f"expected ':' at char {i}")
            i = space(text, i + 1).end()
            if key == "windows" and text.startswith("[", i):
                items: list[Any] = []
                i = space(text, i + 1).end()
                if text.startswith("]", i):
                    i += 1
                else:
                    while True:
                        item, i = _DECODER.raw_decode(text, i)
                        items.append(item)
                        i = space(text, i).end()
                        if text.startswith(",", i):
                            i = space(text, i + 1).end()
                        elif text.startswith("]", i):
                            i += 1
                            break
                        else:
                            raise ValueError(f"expected ',' or ']' at char {i}")
                out[key] = items
            else:
                out[key], i = _DECODER.raw_decode(text, i)
            i = space(text, i).end()
            if text.startswith(",", i):
                i = space(text, i + 1).end()
            elif text.startswith("}", i):
                i += 1
                break
            else:
                raise ValueError(f"expected ',' or '}}' at char {i}")
    if space(text, i).end() != len(text):
        raise ValueError(f"extra data at char {i}")
    return out


def _json_window(item: Any, spec: Spec, rows: int, reason: str, columns: Any,
                 where: str) -> tuple[np.ndarray, pd.DatetimeIndex | None]:
    stamps = None
    if isinstance(item, dict):
        columns = item.get("columns", columns)
        stamps = item.get("timestamps")
        if "series" in item:
            array = _series(item["series"], spec, rows, reason, where)
        elif "window" in item:
            array = _rows(item["window"], spec, rows, reason, columns, where)
        else:
            raise BodyError(f'{where}a window needs "window" or "series"')
    else:
        array = _rows(item, spec, rows, reason, columns, where)
    _check_finite(array, spec.columns, where)
    index = None if stamps is None else check_timestamps(stamps, spec, rows, where)
    return array, index


def _rows(window: Any, spec: Spec, rows: int, reason: str, columns: Any,
          where: str) -> np.ndarray:
    if not isinstance(window, list):
        raise BodyError(f"{where}window must be a list of rows")
    width = len(spec.columns) if columns is None else len(columns)
    try:
        array = np.asarray(window, dtype=np.float64)
    except (ValueError, TypeError):
        raise BodyError(_diagnose_rows(window, width, where)) from None
    if array.ndim == 1 and width == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise BodyError(f"{where}window rows must be lists of {width} values "
                        f"(columns: {', '.join(spec.columns)})")
    if array.shape[0] != rows:
        raise BodyError(f"{where}window has {array.shape[0]} rows, {reason}")
    if columns is not None:
        if not isinstance(columns, list) or len(columns) != array.shape[1]:
            raise BodyError(f'{where}"columns" must list the {array.shape[1]} columns of the '
                            "window's rows")
        names = [str(c) for c in columns]
        for name in spec.columns:
            if name not in names:
                raise BodyError(f"{where}missing column {name} (given: {', '.join(names)})")
        if names != list(spec.columns):
            array = array[:, [names.index(c) for c in spec.columns]]
    elif array.shape[1] != len(spec.columns):
        raise BodyError(f"{where}window rows have {array.shape[1]} values, the model takes "
                        f"{len(spec.columns)} column{'s' if len(spec.columns) != 1 else ''} "
                        f"({', '.join(spec.columns)})")
    return array


def _diagnose_rows(window: list, width: int, where: str) -> str:
    for i, row in enumerate(window):
        cells = row if isinstance(row, list) else [row]
        if width != 1 and (not isinstance(row, list) or len(row) != width):
            size = len(row) if isinstance(row, list) else 1
            return f"{where}row {i} has {size} values, the model takes {width}"
        for value in cells:
            if value is not None and (isinstance(value, (bool, str, list, dict))):
                return f"{where}row {i} holds {json.dumps(value)[:40]}, not a number"
    return f"{where}window must be a list of rows of numbers"


def _series(series: Any, spec: Spec, rows: int, reason: str, where: str) -> np.ndarray:
    if not isinstance(series, dict):
        raise BodyError(f'{where}"series" must map column names to lists of values')
    out = np.empty((rows, len(spec.columns)), dtype=np.float64)
    for j, name in enumerate(spec.columns):
        if name not in series:
            given = ", ".join(map(str, series)) or "none"
            raise BodyError(f"{where}missing column {name} (given: {given})")
        try:
            column = np.asarray(series[name], dtype=np.float64)
        except (ValueError, TypeError):
            raise BodyError(f"{where}series {name} must be a list of numbers") from None
        if column.ndim != 1:
            raise BodyError(f"{where}series {name} must be a flat list of numbers")
        if len(column) != rows:
            raise BodyError(f"{where}series {name} has {len(column)} values, {reason}")
        out[:, j] = column
    return out


# -- tables (CSV, Arrow) --------------------------------------------------------------------
def _read_arrow(body: bytes) -> pd.DataFrame:
    import pyarrow as pa

    try:
        table = pa.ipc.open_stream(pa.BufferReader(body)).read_all()
    except pa.ArrowInvalid:
        try:
            table = pa.ipc.open_file(pa.BufferReader(body)).read_all()
        except pa.ArrowInvalid as exc:
            raise BodyError(f"body is not an Arrow IPC stream or file: {exc}") from None
    return table.to_pandas()


def _parse_frame(frame: pd.DataFrame, spec: Spec, rows: int, reason: str,
                 limits: _Limits | None = None) -> Windows:
    limits = limits or _Limits()
    max_windows = limits.windows
    frame.columns = [str(c) for c in frame.columns]
    if (not ("window" in frame.columns and "window" not in spec.columns)
            and _longer(len(frame), rows, len(spec.columns), limits)):
        return _slid(_parse_frame(frame, spec, len(frame), reason), rows)
    time_column = next((c for c in frame.columns if c.lower() in TIME_COLUMNS
                        and c not in spec.columns), None)
    for name in spec.columns:
        if name not in frame.columns:
            raise BodyError(f"missing column {name} (columns: {', '.join(frame.columns)})")
    if "window" in frame.columns and "window" not in spec.columns:
        if max_windows is not None:
            check_windows(int(frame["window"].nunique()), max_windows)
        groups = [(key, part) for key, part in frame.groupby("window", sort=False)]
        batch = True
    else:
        groups, batch = [(None, frame)], False
    values, stamps, ids = [], [], []
    for key, part in groups:
        where = f"window {key}: " if batch else ""
        if len(part) != rows:
            raise BodyError(f"{where}window has {len(part)} rows, {reason}")
        array = np.empty((rows, len(spec.columns)), dtype=np.float64)
        for j, name in enumerate(spec.columns):
            column = pd.to_numeric(part[name], errors="coerce")
            bad = column.isna().to_numpy() & part[name].notna().to_numpy()
            if bad.any():
                row = int(np.argmax(bad))
                raise BodyError(f"{where}column {name} holds {str(part[name].iloc[row])[:40]!r}"
                                f" at row {row}, not a number")
            array[:, j] = column.to_numpy(np.float64)
        _check_finite(array, spec.columns, where)
        values.append(array)
        stamps.append(None if time_column is None else
                      check_timestamps(part[time_column].tolist(), spec, rows, where))
        ids.append(key.item() if hasattr(key, "item") else key)
    return Windows(np.stack(values), batch, stamps if time_column else None,
                   ids if batch else None)


# -- shared checks --------------------------------------------------------------------------
def _check_finite(array: np.ndarray, columns: tuple[str, ...], where: str) -> None:
    if np.isfinite(array).all():
        return
    bad = ~np.isfinite(array)
    row, col = (int(i) for i in np.argwhere(bad)[0])
    what = "NaN" if np.isnan(array[row, col]) else "infinite value"
    raise BodyError(f"{where}{what} at row {row} of column {columns[col]}")


def _datetimes(stamps: list[Any]) -> Any:
    """Dates of texts, or of numbers as epoch seconds (milliseconds when above 1e11, the
    rule of ``amml.store.served.to_epoch``): pandas alone reads numbers as nanoseconds."""
    if stamps and all(isinstance(s, int | float | np.integer | np.floating)
                      and not isinstance(s, bool) for s in stamps):
        seconds = np.asarray(stamps, dtype=np.float64)
        seconds = np.where(np.abs(seconds) > 1e11, seconds / 1000.0, seconds)
        return pd.to_datetime(seconds, unit="s")
    return pd.to_datetime(stamps)


def check_timestamps(stamps: Any, spec: Spec, rows: int, where: str = "") -> pd.DatetimeIndex:
    """Parse the timestamps of a window; with a frequency in the signature, check it."""
    if not isinstance(stamps, list):
        raise BodyError(f"{where}timestamps must be a list")
    try:
        index = pd.DatetimeIndex(_datetimes(stamps))
    except (ValueError, TypeError) as exc:
        raise BodyError(f"{where}timestamps cannot be read: {exc}") from None
    if len(index) != rows:
        raise BodyError(f"{where}{len(index)} timestamps for {rows} rows")
    if index.hasnans:
        raise BodyError(f"{where}missing timestamp at row {int(np.argmax(index.isna()))}")
    if spec.freq and rows > 1:
        try:
            expected = pd.date_range(index[0], periods=rows, freq=spec.freq)
        except ValueError:
            return index
        if not index.equals(expected):
            row = int(np.argmax(index != expected))
            gap = index[row] - index[row - 1] if row > 0 else None
            if gap is not None and gap > pd.Timedelta(0):
                apart = pd.tseries.frequencies.to_offset(gap).freqstr
                raise BodyError(f"{where}timestamps are {apart} apart at row {row}, "
                                f"the model's frequency is {spec.freq}")
            raise BodyError(f"{where}timestamps are not increasing at row {row} "
                            f"(the model's frequency is {spec.freq})")
    return index


def future_timestamps(index: pd.DatetimeIndex, spec: Spec, steps: int) -> list[str] | None:
    """The times of the ``steps`` rows after a window's last, when the frequency is known."""
    freq = spec.freq
    if freq is None and len(index) >= 3:
        freq = pd.infer_freq(index)
    if freq is None:
        return None
    try:
        future = pd.date_range(index[-1], periods=steps + 1, freq=freq)[1:]
    except ValueError:
        return None
    return [t.isoformat() for t in future]
