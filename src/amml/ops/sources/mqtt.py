"""``source.mqtt``: capture live MQTT messages into a time-indexed table.

The op subscribes to ``topics`` (wildcards ``+`` and ``#`` allowed) and collects messages
until ``max_messages`` have arrived or ``duration_s`` seconds have passed since the broker
acknowledged the subscription, whichever comes first. A live stream has no state to compare,
so the step never comes from the cache (:meth:`MqttSource.source_state` is None).

Payloads are read by :func:`parse_message`, a pure function of the topic, the payload bytes
and the config, so that the same parser can score live data in production:

* ``format: json``: a JSON object of fields; the numeric fields (or the ``fields`` asked for)
  become columns; the time comes from ``time_field`` (ISO text, or epoch numbers in
  ``time_unit``) or else is the time the message was received;
* ``format: plain``: one number per message; the column is named by ``topic_columns``
  (topic or topic filter -> column) or else after the topic's last level; the time is the
  time of receipt.

>>> config = MqttConfig(topics=["plant/#"], max_messages=10, time_field="t")
>>> parse_message("plant/a", b'{"t": "2024-01-01T00:00:00Z", "temp": 21.5, "id": "x"}', config)
{'time': Timestamp('2024-01-01 00:00:00'), 'topic': 'plant/a', 'values': {'temp': 21.5}}
>>> plain = MqttConfig(topics=["plant/+/load"], format="plain", duration_s=5)
>>> parse_message("plant/a/load", b" 48.25 ", plain, received=pd.Timestamp("2024-01-01"))
{'time': Timestamp('2024-01-01 00:00:00'), 'topic': 'plant/a/load', 'values': {'load': 48.25}}
>>> parse_message("plant/a", b"{oops", config)
Traceback (most recent call last):
...
amml._exceptions.PayloadError: not JSON: ...

A malformed payload raises :class:`PayloadError`; the op counts it in the report's
quarantine (with examples), or fails the step with ``on_bad_rows: error``. An empty payload
(how MQTT clears a retained message) gives None and is counted as ``empty_payloads``. Several
messages with one timestamp are all kept, unless ``resample`` aggregates them.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from amml._exceptions import OpError, PayloadError
from amml._lazy import pandas as pd
from amml._urls import parse_url
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import register
from amml.ops.sources.connections import ConnectionConfig, host_port, redact
from amml.ops.sources.quality import (
    EXAMPLES,
    BadRows,
    Quarantine,
    check_fields,
    check_time_zone,
    finish_table,
)

DEFAULT_URL = "mqtt://127.0.0.1:1883"
_TLS_SCHEMES = ("mqtts", "ssl", "tls")
_EPOCH_UNITS = (("s", 1e11), ("ms", 1e14), ("us", 1e17))
_AGGREGATES = ("mean", "median", "first", "last", "min", "max", "sum", "count")


def check_topic_filter(topic: str) -> None:
    """Raise ValueError unless ``topic`` is a valid MQTT topic filter.

    >>> check_topic_filter("plant/+/temperature"), check_topic_filter("plant/#")
    (None, None)
    >>> check_topic_filter("plant/#/x")
    Traceback (most recent call last):
    ...
    ValueError: topic filter 'plant/#/x': '#' must be the last level, alone
    """
    if not topic or "\x00" in topic:
        raise ValueError(f"topic filter {topic!r} is empty or holds a NUL character")
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"topic filter {topic!r}: '#' must be the last level, alone")
        if "+" in level and level != "+":
            raise ValueError(f"topic filter {topic!r}: '+' must fill a whole level")


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether a topic name matches a filter (MQTT rules; ``$`` topics skip wildcards).

    >>> topic_matches("plant/+/load", "plant/a/load"), topic_matches("plant/#", "plant")
    (True, True)
    >>> topic_matches("#", "$SYS/uptime"), topic_matches("plant/+", "plant/a/b")
    (False, False)
    """
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    wanted, levels = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(wanted):
        if level == "#":
            return True
        if i >= len(levels) or (level != "+" and level != levels[i]):
            return False
    return len(wanted) == len(levels)


class MqttConfig(ConnectionConfig, OpConfig):
    """Configuration of :class:`MqttSource` (and of :func:`parse_message`)."""

    #: topic filters to subscribe to (``+`` and ``#`` wildcards allowed)
    topics: list[str] = Field(min_length=1)
    format: Literal["json", "plain"] = "json"
    #: columns, in this order; default: every numeric JSON field / every topic's column
    fields: list[str] | None = None
    #: JSON field holding the time; default: the time the message was received
    time_field: str | None = None
    #: unit of a numeric time field (epoch); None: guessed from its magnitude
    time_unit: Literal["s", "ms", "us", "ns"] | None = None
    #: plain payloads: topic (or topic filter) -> column; default: the topic's last level
    topic_columns: dict[str, str] | None = None
    #: stop after this many messages or this many seconds, whichever comes first
    max_messages: int | None = Field(None, ge=1)
    duration_s: float | None = Field(None, gt=0)
    qos: Literal[0, 1, 2] = 0
    #: keep the broker's retained (last known) messages sent on subscribing
    include_retained: bool = True
    client_id: str | None = None
    keepalive: int = Field(60, ge=5)
    connect_timeout_s: float = Field(10.0, gt=0)
    #: output time zone; default naive UTC. Naive payload times are in this zone (or UTC).
    tz: str | None = None
    on_bad_rows: BadRows = "error"
    #: aggregate into regular bins (a pandas frequency such as ``1min``); default: keep every
    #: message as a row
    resample: str | None = None
    aggregate: Literal["mean", "median", "first", "last", "min", "max", "sum", "count"] = "mean"

    @model_validator(mode="after")
    def _check(self) -> MqttConfig:
        if self.max_messages is None and self.duration_s is None:
            raise ValueError("give max_messages and/or duration_s: a capture must end")
        for topic in [*self.topics, *(self.topic_columns or {})]:
            check_topic_filter(topic)
        if self.format == "plain" and (self.time_field or self.time_unit):
            raise ValueError("plain payloads carry no time: time_field and time_unit need "
                             "format: json")
        if self.format == "json" and self.topic_columns:
            raise ValueError("topic_columns names the column of plain payloads; JSON payloads "
                             "name their fields (use format: plain)")
        if self.time_unit and not self.time_field:
            raise ValueError("time_unit needs time_field")
        check_fields(self.fields)
        check_time_zone(self.tz)
        if self.resample is not None:
            try:
                pd.tseries.frequencies.to_offset(self.resample)
            except ValueError:
                raise ValueError(f"resample {self.resample!r} is not a pandas frequency "
                                 "(e.g. 10s, 1min, 1h)") from None
        return self


# -- parsing ----------------------------------------------------------------------------------


def _number(value: Any, name: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise PayloadError(f"{name} is not a number: {value!r}") from None
    else:
        raise PayloadError(f"{name} is not a number: {value!r}")
    if math.isinf(number):
        raise PayloadError(f"{name} is infinite: {value!r}")
    return number


def _parse_time(value: Any, config: MqttConfig) -> pd.Timestamp:
    """A payload time as a naive UTC timestamp."""
    name = f"time field {config.time_field!r}"
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise PayloadError(f"{name} is not finite: {value!r}", "bad_time")
            unit = config.time_unit or next(
                (u for u, limit in _EPOCH_UNITS if abs(value) < limit), "ns")
            stamp = pd.Timestamp(value, unit=unit, tz="UTC")
        elif isinstance(value, str) and value.strip():
            stamp = pd.Timestamp(value.strip())
            if stamp is pd.NaT:
                raise ValueError("empty")
            if stamp.tzinfo is None:
                stamp = stamp.tz_localize(config.tz or "UTC")
        else:
            raise PayloadError(f"{name} is not a time: {value!r}", "bad_time")
    except (ValueError, OverflowError) as exc:
        if isinstance(exc, PayloadError):
            raise
        raise PayloadError(f"{name} is not a time: {value!r}", "bad_time") from None
    return stamp.tz_convert("UTC").tz_localize(None)


def plain_column(topic: str, config: MqttConfig) -> str:
    """The column of a plain payload on ``topic``: ``topic_columns``, else the last level."""
    for topic_filter, column in (config.topic_columns or {}).items():
        if topic_matches(topic_filter, topic):
            return column
    last = topic.rsplit("/", 1)[-1]
    if not last:
        raise PayloadError(f"topic {topic!r} has an empty last level: name its column in "
                           "topic_columns", "unknown_column")
    return last


def parse_message(topic: str, payload: bytes, config: MqttConfig, *,
                  received: pd.Timestamp | None = None) -> dict[str, Any] | None:
    """One message as ``{"time": Timestamp, "topic": str, "values": {column: float}}``.

    ``time`` is naive UTC: from the payload's ``time_field``, or ``received`` (default: now).
    Returns None for an empty payload; raises :class:`PayloadError` for a malformed one.
    """
    if not payload.strip():
        return None
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError(f"not UTF-8 text: {payload[:40]!r}") from None
    stamp: pd.Timestamp | None = None
    if config.format == "plain":
        column = plain_column(topic, config)
        if config.fields is not None and column not in config.fields:
            raise PayloadError(f"topic {topic!r} gives column {column!r}, not one of the "
                               f"fields {config.fields}", "unknown_column")
        values = {column: _number(text, "payload")}
    else:
        try:
            body = json.loads(text)
        except ValueError as exc:
            raise PayloadError(f"not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise PayloadError(f"not a JSON object but {type(body).__name__}: {text[:40]!r}")
        if config.time_field is not None:
            if body.get(config.time_field) is None:
                raise PayloadError(f"no time field {config.time_field!r}", "bad_time")
            stamp = _parse_time(body[config.time_field], config)
        if config.fields is not None:
            if not any(f in body for f in config.fields):
                raise PayloadError(f"none of the fields {config.fields}", "no_fields")
            values = {f: _number(body.get(f), f"field {f!r}") for f in config.fields}
        else:
            values = {str(k): _number(v, f"field {k!r}") for k, v in body.items()
                      if k != config.time_field and isinstance(v, int | float)
                      and not isinstance(v, bool)}
            if not values:
                raise PayloadError("no numeric fields", "no_fields")
    if stamp is None:
        now = received if received is not None else pd.Timestamp.now(tz="UTC")
        stamp = now.tz_convert("UTC").tz_localize(None) if now.tzinfo is not None else now
    return {"time": stamp, "topic": topic, "values": values}


# -- capture ----------------------------------------------------------------------------------


@dataclass
class Capture:
    """What a capture collected: ``(received epoch s, topic, payload)`` per message."""

    messages: list[tuple[float, str, bytes]] = field(default_factory=list)
    retained_skipped: int = 0
    disconnects: int = 0
    stopped_by: str = ""
    seconds: float = 0.0


_PROBLEM_MESSAGES = {
    "malformed_payload": "malformed payloads",
    "bad_time": "payloads without a readable time",
    "no_fields": "payloads without the requested fields",
    "unknown_column": "payloads on topics without a column",
}


@register
class MqttSource(Op):
    """Capture MQTT messages (JSON objects or plain numbers) into a time-indexed table."""

    name = "source.mqtt"
    inputs = {}
    outputs = {"out": "table", "report": "json"}
    Config = MqttConfig

    #: Called once the broker acknowledged every subscription (before the capture window);
    #: lets a caller start publishing without racing the subscription.
    on_subscribed: Callable[[], None] | None = None

    def source_state(self) -> str | None:
        return None  # a live stream: never served from the cache

    def _url(self) -> str:
        return self.config.resolve_url(DEFAULT_URL)

    def run(self, ctx: StepContext) -> dict[str, Any]:
        c = self.config
        capture = self.capture()
        where = self._where()
        source = f"mqtt {where} {', '.join(c.topics)}"
        pre = Quarantine(source)
        rows: list[dict[str, Any]] = []
        empty = 0
        bad: dict[str, list[str]] = {}
        for received, topic, payload in capture.messages:
            try:
                parsed = parse_message(topic, payload, c,
                                       received=pd.Timestamp(received, unit="s", tz="UTC"))
            except PayloadError as exc:
                bad.setdefault(exc.problem, []).append(f"{topic}: {payload[:80]!r}: {exc}")
                continue
            if parsed is None:
                empty += 1
            else:
                rows.append(parsed)
        for problem, examples in bad.items():
            pre.add(problem, examples, _PROBLEM_MESSAGES.get(problem, problem))
        pre.raise_if(c.on_bad_rows)
        if not rows:
            got = len(capture.messages)
            why = (f"{got} messages, none usable ({pre.bad_rows} malformed, {empty} empty)"
                   if got else "no messages")
            raise OpError(f"MQTT {where}: {why} on {', '.join(c.topics)} "
                          f"(stopped by {capture.stopped_by} after {capture.seconds:.1f} s)")
        table, report = self._table(rows, pre, source)
        report.update(topics=list(c.topics), messages=len(capture.messages),
                      empty_payloads=empty, retained_skipped=capture.retained_skipped,
                      disconnects=capture.disconnects, stopped_by=capture.stopped_by,
                      capture_s=round(capture.seconds, 3), columns=list(table.columns),
                      rows_total=len(table))
        ctx.log_metrics({"messages": len(capture.messages), "rows": len(table),
                         "bad_rows": report["bad_rows"], "capture_s": capture.seconds})
        return {"out": table, "report": report}

    def _table(self, rows: list[dict[str, Any]], pre: Quarantine, source: str
               ) -> tuple[pd.DataFrame, dict[str, Any]]:
        c = self.config
        if c.fields is not None:
            columns = list(c.fields)
        else:
            order = list((c.topic_columns or {}).values())
            seen = dict.fromkeys(k for row in rows for k in row["values"])
            columns = [*[x for x in dict.fromkeys(order) if x in seen],
                       *[x for x in seen if x not in order]]
        index = pd.DatetimeIndex([row["time"] for row in rows], name="time")
        frame = pd.DataFrame.from_records([row["values"] for row in rows], columns=columns)
        frame.index = index
        table, report = finish_table(frame, time=None, on_bad_rows=c.on_bad_rows,
                                     source=source)
        if not table.index.is_monotonic_increasing:  # arrival order is not time order
            backwards = int((np.diff(table.index.asi8) < 0).sum())
            table = table.sort_index(kind="stable")
            report["notes"]["reordered"] = {"count": backwards,
                                            "message": "timestamps out of order (sorted)"}
        if c.tz is not None:
            table.index = table.index.tz_localize("UTC").tz_convert(c.tz)
        duplicates = int(table.index.duplicated().sum())
        if duplicates:
            report["notes"]["shared_timestamps"] = {
                "count": duplicates,
                "message": "messages sharing a timestamp" +
                           (" (aggregated)" if c.resample else " (all kept)")}
        if c.resample is not None:
            table = table.resample(c.resample).agg(c.aggregate)
            table = table.dropna(how="all") if c.aggregate != "count" else table[
                table.sum(axis=1) > 0]
        table.index = table.index.as_unit("ns")  # one resolution, whatever pandas inferred
        table.index.name = "time"
        report["bad_rows"] += pre.bad_rows
        report["rows_read"] += pre.bad_rows
        for problem, entry in pre.problems.items():
            report["problems"][problem] = {**entry, "examples": entry["examples"][:EXAMPLES]}
        return table.astype("float64"), report

    # -- the capture ------------------------------------------------------------------------

    def _where(self) -> str:
        url = self._url()
        scheme = url.split("://", 1)[0] if "://" in url else ""
        return host_port(url, 8883 if scheme in _TLS_SCHEMES else 1883)

    def capture(self) -> Capture:
        """Subscribe, collect messages until a bound is reached, disconnect.

        Without ``duration_s`` it waits until ``max_messages`` have arrived (paho reconnects
        after a dropped connection; the report counts ``disconnects``).
        """
        try:
            import paho.mqtt.client as mqtt
        except ImportError:  # pragma: no cover - an optional dependency
            raise OpError("source.mqtt needs paho-mqtt (pip install 'amml[sources]')") from None
        c = self.config
        url = self._url()
        try:
            parts = parse_url(url)  # credential-aware: a password may hold '/', '@' or ':'
        except ValueError:
            raise OpError(f"MQTT URL for {self._where()} must be mqtt://host[:port] "
                          "or mqtts://host[:port]") from None
        if parts.scheme not in ("mqtt", "tcp", *_TLS_SCHEMES):
            raise OpError(f"MQTT URL scheme must be mqtt:// or mqtts://, got "
                          f"{parts.scheme or 'none'}:// for {self._where()}")
        tls = parts.scheme in _TLS_SCHEMES
        host = parts.host or "localhost"
        port = parts.port or (8883 if tls else 1883)
        if ":" in parts.hosts.rpartition("]")[2] and parts.port is None:
            raise OpError(f"bad port in MQTT URL {redact(url)}")
        where = self._where()

        result = Capture()
        lock = threading.Lock()
        subscribed = threading.Event()
        done = threading.Event()
        errors: list[str] = []
        pending: dict[int, list[str]] = {}
        stopping = threading.Event()

        def on_connect(client: Any, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
            if reason_code.is_failure:
                errors.append(f"the broker refused the connection: {reason_code}")
                subscribed.set()
                done.set()
                return
            _, mid = client.subscribe([(topic, c.qos) for topic in c.topics])
            if mid is not None:
                pending[mid] = list(c.topics)

        def on_subscribe(client: Any, userdata: Any, mid: int, reason_codes: list[Any],
                         properties: Any) -> None:
            topics = pending.pop(mid, c.topics)
            refused = [t for t, code in zip(topics, reason_codes, strict=False)
                       if code.is_failure]
            if refused:
                errors.append(f"the broker refused the subscription to {', '.join(refused)}")
                done.set()
            subscribed.set()

        def on_message(client: Any, userdata: Any, message: Any) -> None:
            received = time.time()
            with lock:
                if done.is_set():
                    return
                if message.retain and not c.include_retained:
                    result.retained_skipped += 1
                    return
                result.messages.append((received, message.topic, bytes(message.payload)))
                if c.max_messages is not None and len(result.messages) >= c.max_messages:
                    result.stopped_by = "max_messages"
                    done.set()

        def on_disconnect(client: Any, userdata: Any, flags: Any, reason_code: Any,
                          properties: Any) -> None:
            if not stopping.is_set():
                result.disconnects += 1

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=c.client_id or f"amml-{uuid.uuid4().hex[:12]}",
                             clean_session=True)
        client.connect_timeout = c.connect_timeout_s
        if parts.username:
            client.username_pw_set(parts.username, parts.password)
        if tls:
            client.tls_set()
        client.on_connect, client.on_subscribe = on_connect, on_subscribe
        client.on_message, client.on_disconnect = on_message, on_disconnect
        try:
            client.connect(host, port, keepalive=c.keepalive)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise OpError(f"cannot reach MQTT broker at {where}: {redact(str(reason))}") from None
        client.loop_start()
        try:
            if not subscribed.wait(c.connect_timeout_s):
                raise OpError(f"MQTT broker at {where} did not acknowledge the subscription "
                              f"to {', '.join(c.topics)} within {c.connect_timeout_s} s")
            if errors:
                raise OpError(f"MQTT {where}: {redact(errors[0])}")
            if self.on_subscribed is not None:
                self.on_subscribed()
            started = time.monotonic()
            finished = done.wait(c.duration_s) if c.duration_s is not None else done.wait()
            result.seconds = time.monotonic() - started
            with lock:
                done.set()  # no more messages after this point
                if errors:
                    raise OpError(f"MQTT {where}: {redact(errors[0])}")
                if not finished:
                    result.stopped_by = "duration_s"
        finally:
            stopping.set()
            client.disconnect()
            client.loop_stop()
        return result
