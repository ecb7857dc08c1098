"""Aggregation per interval: the metrics a log source can compute (``count``, ``error_rate``,
``p99:FIELD``...) and the aggregator that reduces each chunk to per-interval partials and
merges them at the end."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from amml._exceptions import OpError
from amml._lazy import pandas as pd
from amml.ops.sources.logs.formats import _ALIASES

#: More output intervals than this is almost always a stray timestamp or a tiny interval.
MAX_INTERVALS = 10_000_000

_SIMPLE = {"count", "error_rate", "status_4xx", "status_5xx", "bytes_sum"}
_STATUS_KINDS = ("error_rate", "status_4xx", "status_5xx")
_METRIC = re.compile(r"(?P<agg>p\d{1,2}(?:\.\d+)?|mean|sum|max|min|error_rate|status_4xx"
                     r"|status_5xx):(?P<field>[A-Za-z_@][\w.@-]*)")


@dataclass(frozen=True)
class Metric:
    """One requested aggregate: ``kind`` is a simple name, ``pct``, ``mean``, ``sum``..."""

    spec: str
    kind: str
    field: str | None = None  # the field read (aliases resolved)
    quantile: float | None = None
    column: str = ""


def parse_metric(spec: str, fmt: str = "jsonl") -> Metric:
    """Parse ``"count"``, ``"p99:latency"``, ``"mean:bytes"``... into a :class:`Metric`.

    ``error_rate``, ``status_4xx`` and ``status_5xx`` read the field ``status``; another one
    is named after a colon (``error_rate:http.status``), which also names the column.

    >>> metric = parse_metric("p99:latency", "combined")
    >>> metric.kind, metric.field, metric.quantile, metric.column
    ('pct', 'request_time', 0.99, 'p99_latency')
    """
    if spec in _SIMPLE:
        needs = {"bytes_sum": "bytes", "count": None}.get(spec, "status")
        return Metric(spec, spec, needs, None, spec)
    match = _METRIC.fullmatch(spec)
    if match is None:
        raise ValueError(f"unknown metric {spec!r}: use one of {', '.join(sorted(_SIMPLE))}, "
                         "or p50:FIELD, p90:FIELD, p99:FIELD (any pNN), mean:FIELD, sum:FIELD, "
                         "max:FIELD, min:FIELD, error_rate:FIELD")
    agg, name = match["agg"], match["field"]
    read = _ALIASES.get(name, name) if fmt in ("combined", "common") else name
    column = re.sub(r"\W", "_", f"{agg}_{name}")
    if agg in _STATUS_KINDS:
        return Metric(spec, agg, read, None, column)
    if agg.startswith("p"):
        q = float(agg[1:])
        if not 0 < q < 100:
            raise ValueError(f"metric {spec!r}: the percentile must be between 0 and 100")
        return Metric(spec, "pct", read, q / 100, column)
    return Metric(spec, agg, read, None, column)


class _Aggregator:
    """Per-interval partial sums, counts and extremes, merged at the end; percentiles keep
    their (interval, value) pairs because an exact percentile needs every value."""

    def __init__(self, metrics: Sequence[Metric], step_ns: int, tz: str | None,
                 error_status: int) -> None:
        self.metrics, self.step, self.tz = list(metrics), step_ns, tz
        self.error_status = error_status
        self.partials: list[pd.DataFrame] = []
        self.samples: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        self.empty_intervals = 0

    def _keys(self, times: np.ndarray) -> np.ndarray:
        if self.tz is not None:  # intervals follow the zone's wall clock (a 1D is a local day)
            local = pd.DatetimeIndex(times.view("M8[ns]"), tz="UTC").tz_convert(self.tz)
            times = local.tz_localize(None).as_unit("ns").asi8
        return times // self.step

    def add(self, times: np.ndarray, values: dict[str, np.ndarray]) -> None:
        if not len(times):
            return
        keys = self._keys(times)
        codes, bins = pd.factorize(keys)
        size = len(bins)

        def total(weights: np.ndarray) -> np.ndarray:
            return np.bincount(codes, weights=weights, minlength=size)

        part: dict[str, np.ndarray] = {"count": np.bincount(codes, minlength=size)}
        for metric in self.metrics:
            column = values.get(metric.field) if metric.field else None
            if column is None:
                continue
            present = ~np.isnan(column)
            if metric.kind in _STATUS_KINDS:
                part[f"n:{metric.field}"] = total(present)
                part[f"error:{metric.field}"] = total(column >= self.error_status)
                part[f"4xx:{metric.field}"] = total((column >= 400) & (column < 500))
                part[f"5xx:{metric.field}"] = total((column >= 500) & (column < 600))
            elif metric.kind in ("bytes_sum", "sum", "mean"):
                part[f"sum:{metric.field}"] = total(np.where(present, column, 0.0))
                part[f"n:{metric.field}"] = total(present)
            elif metric.kind in ("max", "min"):
                extreme = np.full(size, np.nan)
                (np.fmax if metric.kind == "max" else np.fmin).at(extreme, codes, column)
                part[f"{metric.kind}:{metric.field}"] = extreme
        for name in {m.field for m in self.metrics if m.kind == "pct"}:  # once per field
            column = values[name]
            present = ~np.isnan(column)
            self.samples.setdefault(name, []).append((keys[present], column[present]))
        self.partials.append(pd.DataFrame(part, index=bins))

    def result(self) -> pd.DataFrame:
        merged = pd.concat(self.partials)
        how = {c: ("max" if c.startswith("max:") else "min" if c.startswith("min:") else "sum")
               for c in merged.columns}
        merged = merged.groupby(level=0).agg(how)
        first, last = int(merged.index.min()), int(merged.index.max())
        if last - first + 1 > MAX_INTERVALS:
            raise OpError(f"the events span {last - first + 1} intervals of "
                          f"{pd.Timedelta(self.step, 'ns')} (more than {MAX_INTERVALS}), from "
                          f"{pd.Timestamp(first * self.step)} to {pd.Timestamp(last * self.step)}"
                          ": set start/end or a longer interval")
        keys = np.arange(first, last + 1, dtype=np.int64)
        merged = merged.reindex(keys)  # empty intervals: NaN for now
        counted = merged.fillna({c: 0 for c in merged.columns if c[:4] not in ("max:", "min:")})
        self.empty_intervals = int((counted["count"] == 0).sum())
        out: dict[str, np.ndarray] = {}
        for metric in self.metrics:
            f = metric.field
            if metric.kind == "count":
                out[metric.column] = counted["count"].to_numpy(np.int64)
            elif metric.kind == "error_rate":
                n = counted[f"n:{f}"].to_numpy(float)
                with np.errstate(invalid="ignore", divide="ignore"):
                    out[metric.column] = np.where(n > 0, counted[f"error:{f}"] / n, np.nan)
            elif metric.kind in ("status_4xx", "status_5xx"):
                out[metric.column] = counted[f"{metric.kind[-3:]}:{f}"].to_numpy(np.int64)
            elif metric.kind == "bytes_sum":
                out[metric.column] = counted[f"sum:{f}"].round().to_numpy(np.int64)
            elif metric.kind == "sum":
                out[metric.column] = counted[f"sum:{f}"].to_numpy(float)
            elif metric.kind == "mean":
                n = counted[f"n:{f}"].to_numpy(float)
                with np.errstate(invalid="ignore", divide="ignore"):
                    out[metric.column] = np.where(n > 0, counted[f"sum:{f}"] / n, np.nan)
            elif metric.kind in ("max", "min"):
                out[metric.column] = merged[f"{metric.kind}:{f}"].to_numpy(float)
            else:
                out[metric.column] = self._percentile(f, metric.quantile, keys)
        # nanoseconds: the unit every AMML source returns (see sources/quality.py)
        labels = pd.DatetimeIndex((keys * self.step).view("M8[ns]"), name="time")
        frame = pd.DataFrame(out, index=labels)
        if self.tz is not None:
            labels = labels.tz_localize(self.tz, ambiguous=np.ones(len(labels), dtype=bool),
                                        nonexistent="NaT")
            frame.index = labels
            frame = frame[~labels.isna()]  # wall-clock slots skipped in spring hold no event
        return frame

    def _percentile(self, name: str, quantile: float, keys: np.ndarray) -> np.ndarray:
        """Per-interval percentile, numpy's "linear" method, vectorized over all intervals."""
        pairs = self.samples.get(name, [])
        if not pairs:
            return np.full(len(keys), np.nan)
        groups = np.concatenate([k for k, _ in pairs])
        values = np.concatenate([v for _, v in pairs])
        order = np.lexsort((values, groups))
        groups, values = groups[order], values[order]
        starts = np.searchsorted(groups, keys, side="left")
        sizes = np.searchsorted(groups, keys, side="right") - starts
        position = (np.maximum(sizes, 1) - 1) * quantile
        low = np.floor(position).astype(np.int64)
        high = np.minimum(low + 1, np.maximum(sizes - 1, 0))
        fraction = position - low
        safe = np.minimum(starts, max(len(values) - 1, 0))
        below = values[np.minimum(safe + low, len(values) - 1)]
        above = values[np.minimum(safe + high, len(values) - 1)]
        result = below + (above - below) * fraction
        return np.where(sizes > 0, result, np.nan)

