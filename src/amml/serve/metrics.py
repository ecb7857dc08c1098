"""Prometheus metrics of a server: requests, latency, the model version in use, swaps.

With several worker processes (``amml serve --workers N``) every worker writes its values to
files in ``PROMETHEUS_MULTIPROC_DIR`` (a fresh folder per server start, set before the
workers start) and ``/metrics`` merges them, so any worker answers for all of them; the
version gauge keeps one series per worker process (``pid`` label), which shows a swap in
progress as it is.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class ServerMetrics:
    def __init__(self, multiprocess: bool | None = None) -> None:
        self.multiprocess = bool(multiprocess_dir()) if multiprocess is None else multiprocess
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("amml_requests", "HTTP requests answered",
                                ["model", "endpoint", "status"], registry=r)
        self.latency = Histogram("amml_request_latency_seconds",
                                 "Time from a request's arrival to its answer",
                                 ["model", "endpoint"], buckets=BUCKETS, registry=r)
        self.version = Gauge("amml_model_version", "Model version in use (per worker process)",
                             ["model"], multiprocess_mode="liveall", registry=r)
        self.swaps = Counter("amml_model_swaps", "Versions swapped in while serving",
                             ["model"], registry=r)
        self.swap_failures = Counter("amml_model_swap_failures",
                                     "Versions that failed to load or their smoke test",
                                     ["model"], registry=r)
        # 401s are counted here rather than written to the request log: anyone who can reach
        # the port can send them, and a row each would let them grow the database at will
        self.unauthenticated = Counter("amml_unauthenticated_requests",
                                       "Requests refused for a missing or invalid API key",
                                       ["endpoint", "reason"], registry=r)
        self.logged = Counter("amml_prediction_log_rows", "Rows queued for the prediction log",
                              registry=r)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, model: str, endpoint: str, status: int, seconds: float) -> None:
        key = (model, endpoint, status)
        children = self._children.get(key)
        if children is None:  # label lookups cost a lock and a dict each: do them once
            children = self._children[key] = (
                self.requests.labels(model, endpoint, str(status)),
                self.latency.labels(model, endpoint))
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> tuple[bytes, str]:
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def process_exit(self) -> None:
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())
