"""What a model server answered, read back from the ``prediction_log`` table as data.

The server logs each request as it came (a JSON body; a CSV or Arrow one as the JSON of its
parsed windows) and each answer as it went out (see :mod:`amml.serve.predlog`). This module
turns those rows back into windows: the input rows with their column names and timestamps,
and the forecast with the timestamps it is for. A ``forecast`` answer carries its
timestamps when the request sent the window's; a ``detect`` request sends lookback +
horizon rows, so the last ``horizon`` of them are the values the forecast is scored against
and their timestamps are the forecast's.

Timestamps are epoch seconds (floats); a timestamp without a time zone is read as UTC.

>>> import json, tempfile
>>> from amml.store import open_store
>>> from amml.store.prediction_log import PredictionLogTable
>>> store = open_store(tempfile.mkdtemp())
>>> body = {"window": [[1.0], [2.0]], "columns": ["OT"],
...         "timestamps": ["2024-01-01T00:00", "2024-01-01T01:00"]}
>>> answer = {"model": "oil", "version": 1, "horizon": 1, "outputs": ["OT"],
...           "forecast": {"OT": [3.0]}, "timestamps": ["2024-01-01T02:00:00"]}
>>> PredictionLogTable(store).append([dict(model="oil", version=1, endpoint="forecast",
...     received_at=10.0, latency_ms=1.0, status=200, request=json.dumps(body),
...     response=json.dumps(answer))])
>>> [(w.columns, w.forecast, w.forecast_ts) for w in served_windows(store, "oil")]
[(['OT'], {'OT': [3.0]}, [1704074400.0])]
>>> store.close()
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select

from amml.store.metadata.schema import model_versions, prediction_log

#: Timestamps are joined at this resolution (seconds): a float read back from ISO text and
#: one sent as a number meet.
RESOLUTION = 1e-3


def to_epoch(value: Any) -> float:
    """Epoch seconds of a number (seconds; milliseconds when above 1e11) or a date text
    (no time zone: UTC). Raises ``ValueError`` for what is neither."""
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"not a timestamp: {value!r}")
        return number / 1000.0 if abs(number) > 1e11 else number
    if isinstance(value, str):
        text = value.strip()
        try:
            return to_epoch(float(text))
        except ValueError:
            pass
        import pandas as pd

        try:
            stamp = pd.Timestamp(text)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a timestamp: {value!r} ({exc})") from None
        if stamp is pd.NaT:
            raise ValueError(f"not a timestamp: {value!r}")
        if stamp.tzinfo is None:
            stamp = stamp.tz_localize("UTC")
        return float(stamp.timestamp())
    # datetime, pandas Timestamp, numpy datetime64
    import pandas as pd

    try:
        return to_epoch(pd.Timestamp(value).isoformat())
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a timestamp: {value!r}") from exc


def ts_key(ts: float) -> int:
    """The join key of a timestamp (milliseconds)."""
    return round(ts / RESOLUTION)


@dataclass
class ServedWindow:
    """One window a server answered: its inputs, its forecast and the forecast's times."""

    log_id: int
    index: int  # the window's place in its request (0 for a single window)
    model: str
    version: int
    endpoint: str
    received_at: float
    columns: list[str] | None
    window: np.ndarray  # lookback rows x columns (detect: lookback + horizon rows)
    timestamps: list[float] | None  # the window's rows' times
    outputs: list[str]
    forecast: dict[str, list[float]]  # output -> horizon values
    forecast_ts: list[float] | None  # the times the forecast is for
    observed: dict[str, list[float]] = field(default_factory=dict)  # detect: the actuals sent
    scores: dict[str, list[float]] = field(default_factory=dict)  # detect: anomaly scores
    alarms: dict[str, list[int]] = field(default_factory=dict)  # detect: steps over threshold
    threshold: float | None = None

    @property
    def horizon(self) -> int:
        return max((len(v) for v in self.forecast.values()), default=0)

    @property
    def lookback_rows(self) -> list[list[float]]:
        """The rows the forecast was made from (detect: without the scored horizon)."""
        if self.endpoint == "detect" and self.horizon:
            return self.window[: len(self.window) - self.horizon].tolist()
        return self.window.tolist()


def served_windows(store: Any, model: str | None = None, *, since: float | None = None,
                   until: float | None = None, endpoints: tuple[str, ...] = ("forecast",
                                                                             "detect"),
                   versions: tuple[int, ...] | None = None) -> Iterator[ServedWindow]:
    """The windows answered with status 200 for ``model`` (every model: None), received in
    ``[since, until)`` (epoch seconds), in the order they were received. Rows whose request or
    answer cannot be read back (a truncated summary, an Arrow body) are skipped."""
    query = (select(prediction_log).where(prediction_log.c.status == 200)
             .where(prediction_log.c.endpoint.in_(endpoints))
             .order_by(prediction_log.c.received_at, prediction_log.c.id))
    if model is not None:
        query = query.where(prediction_log.c.model == model)
    if since is not None:
        query = query.where(prediction_log.c.received_at >= since)
    if until is not None:
        query = query.where(prediction_log.c.received_at < until)
    if versions:
        query = query.where(prediction_log.c.version.in_(versions))
    signatures = _Signatures(store)
    with store.metadata.engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    for row in rows:
        yield from _windows_of(row, signatures)


class _Signatures:
    """Model signatures by (name, version), read once each."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._known: dict[tuple[str, int], dict[str, Any]] = {}

    def get(self, name: str, version: int) -> dict[str, Any]:
        key = (name, int(version))
        if key not in self._known:
            query = (select(model_versions.c.signature)
                     .where(model_versions.c.name == name)
                     .where(model_versions.c.version == int(version)))
            with self.store.metadata.engine.connect() as conn:
                text = conn.execute(query).scalar()
            try:
                self._known[key] = json.loads(text) if text else {}
            except ValueError:
                self._known[key] = {}
        return self._known[key]


def unslid(request: Any) -> Any:
    """A logged request as its windows: a table ``/detect`` slid into windows of ``slide``
    rows (logged once, as sent) becomes the batch of those windows, each with its rows'
    timestamps; any other request comes back as it is.

    >>> unslid({"columns": ["x"], "window": [[1], [2], [3]], "slide": 2,
    ...         "timestamps": ["t0", "t1", "t2"]})["windows"][1]
    {'window': [[2], [3]], 'timestamps': ['t1', 't2']}
    """
    if not (isinstance(request, dict) and isinstance(request.get("slide"), int)
            and isinstance(request.get("window"), list)):
        return request
    size, rows, stamps = request["slide"], request["window"], request.get("timestamps")
    windows = [{"window": rows[i:i + size],
                **({"timestamps": stamps[i:i + size]} if isinstance(stamps, list) else {})}
               for i in range(max(len(rows) - size + 1, 0))]
    return {"columns": request.get("columns"), "windows": windows}


def _windows_of(row: Any, signatures: _Signatures) -> Iterator[ServedWindow]:
    try:
        request = unslid(json.loads(row["request"]))
        answer = json.loads(row["response"])
    except ValueError:
        return
    if not isinstance(request, dict | list) or not isinstance(answer, dict):
        return
    if isinstance(request, dict) and request.get("truncated"):
        return
    signature = signatures.get(row["model"], row["version"])
    default_columns = signature.get("columns")
    items, top_columns = _request_items(request)
    if items is None:
        return
    endpoint = row["endpoint"]
    outputs = list(answer.get("outputs") or signature.get("outputs") or [])
    if endpoint == "forecast":
        forecasts = answer.get("forecasts")
        if forecasts is None:
            forecasts = [answer.get("forecast")]
        stamps = answer.get("timestamps")
        if "forecasts" in answer:
            stamps_list = stamps if isinstance(stamps, list) else [None] * len(forecasts)
        else:
            stamps_list = [stamps]
        results: list[dict[str, Any]] = [{"forecast": f} for f in forecasts]
    else:
        results = answer.get("results") or [answer]
        stamps_list = [None] * len(results)
    if len(results) != len(items):
        return
    for index, (item, result, stamps) in enumerate(zip(items, results, stamps_list,
                                                       strict=True)):
        parsed = _parse_item(item, top_columns, default_columns)
        if (parsed is not None and endpoint == "detect" and "forecast" not in result
                and isinstance(result.get("score"), int | float)):
            yield _fitted_detector_window(row, index, parsed, result, answer)
            continue
        if parsed is None or not isinstance(result.get("forecast"), dict):
            continue
        window, columns, timestamps = parsed
        forecast = {str(k): [float(x) for x in v] for k, v in result["forecast"].items()}
        horizon = max((len(v) for v in forecast.values()), default=0)
        served = ServedWindow(
            log_id=int(row["id"]), index=index, model=row["model"], version=int(row["version"]),
            endpoint=endpoint, received_at=float(row["received_at"]), columns=columns,
            window=window, timestamps=timestamps, outputs=outputs or list(forecast),
            forecast=forecast, forecast_ts=None)
        if endpoint == "forecast":
            served.forecast_ts = _epochs(stamps) if stamps else None
        else:
            # the scored rows' times: the request window's last ``horizon``, else the
            # answer's (a CSV or Arrow body is logged without them)
            scored_at = (_epochs(result["timestamps"])
                         if isinstance(result.get("timestamps"), list) else None)
            if timestamps is not None and len(timestamps) >= horizon:
                served.forecast_ts = timestamps[len(timestamps) - horizon:]
            elif scored_at is not None and len(scored_at) == horizon:
                served.forecast_ts = scored_at
            if columns is not None:
                for name in forecast:
                    if name in columns:
                        j = columns.index(name)
                        served.observed[name] = window[len(window) - horizon:, j].tolist()
            served.scores = {str(k): [float(x) for x in v]
                             for k, v in (result.get("scores") or {}).items()}
            served.alarms = {str(k): [int(x) for x in v]
                             for k, v in (result.get("alarms") or {}).items()}
            if isinstance(answer.get("threshold"), int | float):
                served.threshold = float(answer["threshold"])
        yield served


def _fitted_detector_window(row: Any, index: int, parsed: tuple[np.ndarray, Any, Any],
                            result: dict[str, Any], answer: dict[str, Any]) -> ServedWindow:
    """A registered fitted detector's answer (one score for the window's newest row) as a
    served window: its one step is that row, at that row's time."""
    window, columns, timestamps = parsed
    threshold = answer.get("threshold")
    scored_at = _epochs([result["timestamp"]]) if result.get("timestamp") else None
    return ServedWindow(
        log_id=int(row["id"]), index=index, model=row["model"], version=int(row["version"]),
        endpoint="detect", received_at=float(row["received_at"]), columns=columns,
        window=window, timestamps=timestamps, outputs=["score"], forecast={},
        forecast_ts=scored_at or (timestamps[-1:] if timestamps else None),
        scores={"score": [float(result["score"])]},
        alarms={"score": [0]} if result.get("alarm") else {},
        threshold=float(threshold) if isinstance(threshold, int | float) else None)


def _request_items(request: Any) -> tuple[list[Any] | None, Any]:
    """The windows of a request body and the columns it names for all of them."""
    if isinstance(request, list):
        return [request], None
    columns = request.get("columns")
    if "windows" in request:
        windows = request["windows"]
        return (windows if isinstance(windows, list) else None), columns
    if "window" in request or "series" in request:
        return [request], None
    return None, None


def _parse_item(item: Any, top_columns: Any, default_columns: Any
                ) -> tuple[np.ndarray, list[str] | None, list[float] | None] | None:
    stamps = None
    columns = top_columns
    if isinstance(item, dict):
        columns = item.get("columns", columns)
        stamps = item.get("timestamps")
        if "series" in item and isinstance(item["series"], dict):
            series = item["series"]
            names = list(series)
            if default_columns and set(default_columns) <= set(names):
                names = list(default_columns)
            try:
                length = len(series[names[0]]) if names else 0
                array = np.asarray([series[n][:length] for n in names],
                                   dtype=np.float64).T.reshape(length, len(names))
            except (TypeError, ValueError, IndexError, KeyError):
                return None
            return array, names, _epochs(stamps) if stamps else None
        item = item.get("window")
    if not isinstance(item, list):
        return None
    try:
        array = np.asarray(item, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        return None
    names = columns if isinstance(columns, list) else default_columns
    names = [str(n) for n in names] if names else None
    if names is not None and len(array) and array.shape[1] != len(names):
        names = None
    epochs = _epochs(stamps) if stamps else None
    if epochs is not None and len(epochs) != len(array):
        epochs = None
    return array, names, epochs


def _epochs(stamps: Any) -> list[float] | None:
    """Epoch seconds of a list of timestamps (None if one cannot be read): texts are parsed
    together, which costs a fraction of one at a time."""
    if not isinstance(stamps, list):
        return None
    if stamps and all(type(s) in (int, float) for s in stamps):
        numbers = np.asarray(stamps, dtype=np.float64)
        if np.isfinite(numbers).all():
            return np.where(np.abs(numbers) > 1e11, numbers / 1000.0, numbers).tolist()
    if stamps and all(isinstance(s, str) for s in stamps):
        import pandas as pd

        try:
            index = pd.to_datetime(stamps, utc=True, format="ISO8601")
        except (ValueError, TypeError):
            pass
        else:
            if not index.isna().any():
                return (index.as_unit("ns").asi8 / 1e9).tolist()
    try:
        return [to_epoch(s) for s in stamps]
    except ValueError:
        return None
