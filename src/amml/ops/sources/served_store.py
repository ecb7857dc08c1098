"""What the store-reading sources (``source.prediction_log``, ``source.labels``) share: which
store they read, and time bounds written as dates, epoch seconds or durations back from now.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from amml._exceptions import OpError
from amml.ops.base import StepContext

_DURATION = re.compile(r"^\s*-?\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*$")
_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def is_relative(value: Any) -> bool:
    return isinstance(value, str) and bool(_DURATION.match(value))


def moment(value: Any, field: str, now: float | None = None) -> float | None:
    """Epoch seconds of a bound: None, a number (epoch seconds), a date text (UTC unless it
    says otherwise) or a duration back from now (``-2h``, ``30m``, ``7d``)."""
    if value is None:
        return None
    if is_relative(value):
        match = _DURATION.match(value)
        assert match is not None
        amount = float(match.group(1)) * _SECONDS[match.group(2)]
        return (time.time() if now is None else now) - amount
    from amml.store.served import to_epoch

    try:
        return to_epoch(value)
    except ValueError as exc:
        raise OpError(f"'{field}' must be a date, epoch seconds or a duration such as '-2h' "
                      f"(s, m, h, d, w); got {value!r}") from exc


@contextmanager
def opened_store(ctx: StepContext, home: str | None, url: str | None, op: str
                 ) -> Iterator[Any]:
    """The store named by ``home``/``url``, else the one the workflow runs with."""
    if home is None and url is None:
        registry = ctx.model_registry()
        if registry is None:
            raise OpError(f"{op}: this run has no store: set 'store' (a store folder) or "
                          "'store_url' (its database URL)")
        yield registry.store
        return
    from amml.store import open_store

    store = open_store(home, url=url, migrate=None, read_only=True)
    try:
        yield store
    finally:
        store.close()


def store_state(home: str | None, url: str | None, query: Any) -> str | None:
    """The result of ``query(store)`` for a named store (a cache token), or ``""`` when the
    store is the workflow's own: :func:`own_store_state` asks that one, when the run opens it."""
    if home is None and url is None:
        return ""
    from amml.store import open_store

    store = open_store(home, url=url, migrate=None, read_only=True)
    try:
        return str(query(store))
    finally:
        store.close()


def own_store_state(home: str | None, url: str | None, store: Any, query: Any) -> str | None:
    """The result of ``query(store)`` when the op reads the workflow's own ``store`` (no
    ``home`` or ``url`` named: ``""`` otherwise, :func:`store_state` has it); None when
    the run has no store of its own to ask."""
    if home is not None or url is not None:
        return ""
    if store is None or getattr(store, "metadata", None) is None:
        return None
    return str(query(store))
