"""What a server serves and how: one JSON-able object, handed to every worker process."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

#: The environment variable that carries the configuration to uvicorn's worker processes.
CONFIG_ENV = "AMML_SERVE_CONFIG"


@dataclass
class ServeConfig:
    """Settings of one server (shared by all its worker processes).

    ``models`` are references: ``NAME@ALIAS`` follows the alias (swapping versions when it
    moves), ``NAME@3`` pins a version, ``NAME`` follows the newest version. Empty: every
    registered model, at its ``champion`` alias where it has one, else its newest version.
    """

    models: list[str] = field(default_factory=list)
    home: str | None = None
    store_url: str | None = None
    artifacts_url: str | None = None
    auth: bool = True
    poll_interval: float = 0.5
    keys_refresh: float = 2.0
    log_requests: bool = True
    log_flush_interval: float = 0.25
    threads: int = 1
    metrics_multiprocess: bool = False
    #: What one request may cost (see :mod:`amml.serve.limits`): 413, 422, 422 and 503 past
    #: them. A worker holds at most ``max_in_flight`` bodies of ``max_body_bytes``.
    max_body_bytes: int = 8 * 2**20
    max_windows: int = 10_000
    max_json_depth: int = 32
    max_in_flight: int = 32
    #: Threads that parse and score requests, so the event loop (and ``/healthz``) stays free.
    inference_threads: int = 2
    #: ``/metrics`` without a key (a Prometheus scraper on a private network); by default it
    #: needs a ``read`` key, since it shows which models are served and how busy they are.
    metrics_open: bool = False
    #: Freeze the objects alive after the first load out of the garbage collector's way
    #: (set for server processes; left off in tests and embedded use).
    freeze_gc: bool = False
    #: More route modules to attach (each with ``attach(app, state)``), beside
    #: :data:`amml.serve.app.EXTENSIONS`: ``amml serve --ui`` names the dashboard's here.
    extensions: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        data: dict[str, Any] = json.loads(text)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @classmethod
    def from_env(cls) -> ServeConfig:
        text = os.environ.get(CONFIG_ENV)
        return cls.from_json(text) if text else cls()
