"""What one request may cost a worker: body bytes, windows, JSON nesting, requests in flight.

Each limit is a field of :class:`~amml.serve.config.ServeConfig` (and an ``amml serve``
option); going over one is a :class:`LimitError` whose JSON answer names the limit:

=====================  ======  =============================================================
``max_body_bytes``     413     refused from ``Content-Length`` before a byte is read, or as
                               soon as a chunked body passes it (memory stays flat)
``max_windows``        422     counted before the windows are converted
``max_json_depth``     422     scanned before ``json.loads`` (which would recurse)
``max_in_flight``      503     prediction requests being read or scored at once, per worker
=====================  ======  =============================================================

A worker holds at most ``max_in_flight`` bodies of at most ``max_body_bytes`` each (plus their
parsed form, a few times the JSON size), which is what bounds its memory.

>>> json_depth(b'{"window": [[1], [2]], "note": "[[[["}')
3
>>> check_json_depth(b"[" * 40 + b"]" * 40, 32)
Traceback (most recent call last):
amml._exceptions.LimitError: JSON nested 40 levels deep, over this server's limit of 32 ...
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from amml._exceptions import BodyError, LimitError

if TYPE_CHECKING:
    from starlette.requests import Request


# +1 for an opening bracket or brace, -1 for a closing one, 0 for any other byte
_DELTA = np.zeros(256, dtype=np.int8)
_DELTA[[ord("["), ord("{")]] = 1
_DELTA[[ord("]"), ord("}")]] = -1
_QUOTE = ord('"')
_SLICE = 1 << 20
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` bytes: from the
    declared ``Content-Length`` before reading anything, else while the chunks arrive, so an
    oversized body is never held in memory. A client that goes away midway raises
    ``starlette.requests.ClientDisconnect``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BodyError(f"Content-Length is not a number: {declared[:40]!r}") from None
        if size > limit:
            raise _too_large(f"body is {size} bytes", limit)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _too_large(f"body is over {total - len(chunk)} bytes", limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(what: str, limit: int) -> LimitError:
    return LimitError(f"{what}, over this server's limit of {limit} bytes",
                      "max_body_bytes", 413, limit)


def check_windows(count: int, limit: int, what: str | None = None) -> None:
    """``what``: how the request came to hold ``count`` windows (default: a batch of them)."""
    if count > limit:
        raise LimitError(f"{what or f'batch has {count} windows'}, over this server's limit "
                         f"of {limit} per request: send it in parts", "max_windows", 422, limit)


def json_depth(body: bytes) -> int:
    """How deeply arrays and objects nest in a JSON text (brackets inside strings do not
    count). Vectorised, since it runs on every body (about 10 ms a MB), and done a slice at a
    time so that other threads (the event loop) get the GIL in between."""
    if b"\\" in body:  # escaped quotes: drop whole strings first (rare in numeric bodies)
        body = _STRING.sub(b'""', body)
    raw = np.frombuffer(body, dtype=np.uint8)
    deepest = depth = quotes_before = 0
    for start in range(0, len(raw), _SLICE):
        part = raw[start:start + _SLICE]
        delta = _DELTA[part]
        where = np.flatnonzero(delta)
        quotes = np.flatnonzero(part == _QUOTE)
        if where.size and (quotes.size or quotes_before % 2):  # after an odd number of
            # quotes (counting earlier slices) a bracket is inside a string
            inside = (np.searchsorted(quotes, where) + quotes_before) % 2 == 1
            where = where[~inside]
        quotes_before += quotes.size
        if where.size:
            running = np.cumsum(delta[where], dtype=np.int64)
            deepest = max(deepest, depth + int(running.max()))
            depth += int(running[-1])
    return deepest


def check_json_depth(body: bytes, limit: int) -> None:
    depth = json_depth(body)
    if depth > limit:
        raise LimitError(f"JSON nested {depth} levels deep, over this server's limit of "
                         f"{limit}", "max_json_depth", 422, limit)


class InFlight:
    """Prediction requests being read or scored in this worker. Only the event loop thread
    enters and leaves, so a plain integer is enough."""

    def __init__(self, limit: int) -> None:
        self.limit, self.count = limit, 0

    def enter(self) -> None:
        if self.count >= self.limit:
            raise LimitError(f"{self.count} requests are in flight in this worker, its limit "
                             f"is {self.limit}: retry shortly", "max_in_flight", 503,
                             self.limit)
        self.count += 1

    def leave(self) -> None:
        self.count -= 1
