"""The serving page's figures from a server's Prometheus ``/metrics``: request rate (from two
scrapes), latency (mean and quantiles from the histogram buckets) and the model version each
worker process serves.

>>> text = '''amml_requests_total{model="oil",endpoint="forecast",status="200"} 10
... amml_request_latency_seconds_bucket{model="oil",endpoint="forecast",le="0.01"} 9
... amml_request_latency_seconds_bucket{model="oil",endpoint="forecast",le="0.1"} 10
... amml_request_latency_seconds_bucket{model="oil",endpoint="forecast",le="+Inf"} 10
... amml_request_latency_seconds_count{model="oil",endpoint="forecast"} 10
... amml_request_latency_seconds_sum{model="oil",endpoint="forecast"} 0.05
... amml_model_version{model="oil@champion",pid="41"} 2
... '''
>>> snap = parse_metrics(text, at=100.0)
>>> snap.requests[("oil", "forecast", "200")], snap.versions
(10.0, [{'model': 'oil@champion', 'pid': '41', 'version': 2}])
>>> latency = snap.latency()[("oil", "forecast")]
>>> round(latency["mean_ms"], 1), latency["p50_ms"]
(5.0, 10.0)
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families


@dataclass
class Snapshot:
    at: float
    requests: dict[tuple[str, str, str], float] = field(default_factory=dict)
    buckets: dict[tuple[str, str], list[tuple[float, float]]] = field(default_factory=dict)
    latency_sum: dict[tuple[str, str], float] = field(default_factory=dict)
    latency_count: dict[tuple[str, str], float] = field(default_factory=dict)
    versions: list[dict[str, Any]] = field(default_factory=list)
    swaps: dict[str, float] = field(default_factory=dict)

    def total_requests(self) -> float:
        return sum(self.requests.values())

    def latency(self) -> dict[tuple[str, str], dict[str, float | None]]:
        """Per (model, endpoint): mean, p50 and p95 in ms (quantiles to the bucket bound)."""
        found = {}
        for key, count in self.latency_count.items():
            bounds = sorted(self.buckets.get(key, []))
            found[key] = {"count": count,
                          "mean_ms": 1000.0 * self.latency_sum.get(key, 0.0) / count
                          if count else None,
                          "p50_ms": _quantile(bounds, count, 0.5),
                          "p95_ms": _quantile(bounds, count, 0.95)}
        return found


def _quantile(bounds: list[tuple[float, float]], count: float, q: float) -> float | None:
    if not count:
        return None
    for upper, cumulative in bounds:
        if cumulative >= q * count:
            return 1000.0 * upper if math.isfinite(upper) else None
    return None


def parse_metrics(text: str, at: float) -> Snapshot:
    snap = Snapshot(at)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels, value = sample.labels, float(sample.value)
            if sample.name == "amml_requests_total":
                key = (labels.get("model", ""), labels.get("endpoint", ""),
                       labels.get("status", ""))
                snap.requests[key] = snap.requests.get(key, 0.0) + value
            elif sample.name == "amml_request_latency_seconds_bucket":
                snap.buckets.setdefault((labels.get("model", ""), labels.get("endpoint", "")),
                                        []).append((float(labels["le"]), value))
            elif sample.name == "amml_request_latency_seconds_sum":
                snap.latency_sum[(labels.get("model", ""), labels.get("endpoint", ""))] = value
            elif sample.name == "amml_request_latency_seconds_count":
                snap.latency_count[(labels.get("model", ""),
                                    labels.get("endpoint", ""))] = value
            elif sample.name == "amml_model_version":
                snap.versions.append({"model": labels.get("model", ""),
                                      "pid": labels.get("pid", "-"), "version": int(value)})
            elif sample.name == "amml_model_swaps_total":
                snap.swaps[labels.get("model", "")] = value
    return snap


class RateHistory:
    """The last scrapes, kept in memory: request rate between consecutive ones is the live
    figure, and the series of them the chart."""

    def __init__(self, size: int = 150) -> None:
        self._points: deque[tuple[float, float]] = deque(maxlen=size)  # (time, req/s)
        self._last: Snapshot | None = None
        self._lock = threading.Lock()

    def add(self, snap: Snapshot) -> float | None:
        with self._lock:
            rate = None
            last = self._last
            if last is not None and snap.at > last.at:
                delta = snap.total_requests() - last.total_requests()
                rate = max(0.0, delta) / (snap.at - last.at)  # a restart resets counters
                self._points.append((snap.at, rate))
            self._last = snap
            return rate

    def points(self) -> list[tuple[float, float]]:
        with self._lock:
            return list(self._points)
