"""source.mqtt against the real Mosquitto broker: JSON and plain payloads, quarantined
malformed messages, the message and duration bounds, and the pure payload parser."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from amml import OpError, Workflow, ops, run_workflow
from amml.ops.base import StepContext
from amml.ops.registry import REGISTRY
from amml.ops.sources.mqtt import MqttConfig, MqttSource, PayloadError, parse_message
from amml.ops.sources.synthetic import make_sensor_frame
from amml.store import open_store

REGISTRY.register(MqttSource)

COLUMNS = ["temperature", "vibration", "load"]


class Publisher:
    """A paho client that publishes (QoS 1, waiting for the broker's acknowledgement)."""

    def __init__(self, url: str) -> None:
        import paho.mqtt.client as mqtt

        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"amml-test-pub-{uuid.uuid4().hex[:8]}")
        self.client.connect("127.0.0.1", int(url.rsplit(":", 1)[1]))
        self.client.loop_start()

    def send(self, messages: Iterable[tuple[str, bytes | str]], retain: bool = False) -> None:
        infos = [self.client.publish(topic, payload, qos=1, retain=retain)
                 for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(timeout=10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(mqtt_url: str) -> Iterator[Publisher]:
    pub = Publisher(mqtt_url)
    yield pub
    pub.close()


@pytest.fixture
def base() -> str:
    return f"amml-test/{uuid.uuid4().hex[:12]}"


def capture(publish: Callable[[], None] | None = None, **config: Any
            ) -> tuple[pd.DataFrame, dict[str, Any], float]:
    """Run the op; ``publish`` starts in a thread once the subscription is acknowledged."""
    op = MqttSource(**config)
    threads: list[threading.Thread] = []
    if publish is not None:
        def start() -> None:
            thread = threading.Thread(target=publish, daemon=True)
            thread.start()
            threads.append(thread)
        op.on_subscribed = start
    started = time.monotonic()
    try:
        result = op.run(StepContext(step_name="test"))
    finally:
        for thread in threads:
            thread.join(timeout=10)
    return result["out"], result["report"], time.monotonic() - started


def sensors(periods: int = 200) -> pd.DataFrame:
    frame = make_sensor_frame(periods=periods)[COLUMNS].rename_axis("time").astype("float64")
    frame.index = frame.index.as_unit("ns")  # what the sources give
    return frame


def test_json_messages_give_back_the_sensor_frame(mqtt_url: str, publisher: Publisher,
                                                  base: str) -> None:
    expected = sensors()
    messages = [(f"{base}/line1", json.dumps({"t": stamp.isoformat(), "device": "d1",
                                              **{c: float(row[c]) for c in COLUMNS}}))
                for stamp, row in expected.iterrows()]
    table, report, _ = capture(lambda: publisher.send(messages), url=mqtt_url,
                               topics=[f"{base}/#"], time_field="t", fields=COLUMNS, qos=1,
                               max_messages=200, duration_s=30)
    pd.testing.assert_frame_equal(table, expected, check_freq=False)
    assert report["messages"] == 200 and report["stopped_by"] == "max_messages"
    assert report["bad_rows"] == 0 and report["rows_kept"] == 200


def test_json_without_fields_takes_every_numeric_field_in_order(
        mqtt_url: str, publisher: Publisher, base: str) -> None:
    expected = sensors(20)
    messages = [(f"{base}/a", json.dumps({"device": "d1", "t": int(stamp.value // 10**6),
                                          **{c: float(row[c]) for c in COLUMNS}}))
                for stamp, row in expected.iterrows()]
    table, _, _ = capture(lambda: publisher.send(messages), url=mqtt_url, topics=[f"{base}/a"],
                          time_field="t", time_unit="ms", max_messages=20, duration_s=30)
    pd.testing.assert_frame_equal(table, expected, check_freq=False)


def test_plain_payloads_are_named_by_topic(mqtt_url: str, publisher: Publisher,
                                           base: str) -> None:
    messages = []
    for i in range(5):
        messages += [(f"{base}/boiler/temperature", f"{60 + i}"),
                     (f"{base}/boiler/load", f" {40.5 + i}\n")]
    before = pd.Timestamp.now(tz="UTC").tz_localize(None)
    table, report, _ = capture(lambda: publisher.send(messages), url=mqtt_url,
                               topics=[f"{base}/+/temperature", f"{base}/+/load"],
                               format="plain", topic_columns={f"{base}/+/load": "load_pct"},
                               qos=1, max_messages=10, duration_s=30)
    after = pd.Timestamp.now(tz="UTC").tz_localize(None)
    assert list(table.columns) == ["load_pct", "temperature"]
    assert table["temperature"].dropna().tolist() == [60.0, 61.0, 62.0, 63.0, 64.0]
    assert table["load_pct"].dropna().tolist() == [40.5, 41.5, 42.5, 43.5, 44.5]
    assert len(table) == 10 and table.index.is_monotonic_increasing
    assert before <= table.index[0] and table.index[-1] <= after, "receive time, naive UTC"
    assert report["bad_rows"] == 0


def test_malformed_payloads_are_counted_never_dropped(mqtt_url: str, publisher: Publisher,
                                                      base: str) -> None:
    topic = f"{base}/m"
    good = [json.dumps({"t": f"2024-01-01T0{i}:00:00", "x": i}) for i in range(3)]
    bad = ["{oops", "[1, 2]", json.dumps({"t": "never", "x": 1}), json.dumps({"x": 2}),
           json.dumps({"t": "2024-01-01T05:00:00", "x": "abc"}),
           json.dumps({"t": "2024-01-01T06:00:00", "y": 1})]
    messages = [(topic, p) for p in [*good, *bad, ""]]  # "" clears a retained message
    table, report, _ = capture(lambda: publisher.send(messages), url=mqtt_url, topics=[topic],
                               time_field="t", fields=["x"], on_bad_rows="quarantine", qos=1,
                               max_messages=len(messages), duration_s=30)
    assert table["x"].tolist() == [0.0, 1.0, 2.0]
    assert report["messages"] == 10 and report["empty_payloads"] == 1
    assert report["bad_rows"] == 6 and report["rows_read"] == 9 and report["rows_kept"] == 3
    problems = report["problems"]
    assert problems["malformed_payload"]["count"] == 3  # not JSON, an array, a text value
    assert problems["bad_time"]["count"] == 2
    assert problems["no_fields"]["count"] == 1
    assert any("{oops" in e for e in problems["malformed_payload"]["examples"])
    with pytest.raises(OpError, match="malformed payloads"):
        capture(lambda: publisher.send(messages), url=mqtt_url, topics=[topic],
                time_field="t", fields=["x"], qos=1, max_messages=len(messages),
                duration_s=30)


def test_duration_bound_returns_what_arrived(mqtt_url: str, publisher: Publisher,
                                            base: str) -> None:
    topic = f"{base}/slow/temperature"
    table, report, elapsed = capture(
        lambda: publisher.send([(topic, str(i)) for i in range(5)]), url=mqtt_url,
        topics=[topic], format="plain", qos=1, max_messages=1000, duration_s=1.0)
    # the lower bound is the claim (it waited the whole second); the upper one only catches
    # a capture that ignores its bound, generous so that a loaded machine cannot fail it
    assert report["capture_s"] >= 0.9 and elapsed < 30
    assert report["stopped_by"] == "duration_s"
    assert table["temperature"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_nothing_arriving_is_an_error_naming_the_topics(mqtt_url: str, base: str) -> None:
    with pytest.raises(OpError, match=rf"127.0.0.1:1883: no messages on {base}/quiet "
                                      r"\(stopped by duration_s after 0.\d s\)"):
        capture(url=mqtt_url, topics=[f"{base}/quiet"], duration_s=0.3)


def test_retained_messages_can_be_skipped(mqtt_url: str, publisher: Publisher,
                                          base: str) -> None:
    topic = f"{base}/retained/load"
    publisher.send([(topic, "99")], retain=True)
    try:
        table, report, _ = capture(url=mqtt_url, topics=[topic], format="plain",
                                   max_messages=1, duration_s=5)
        assert table["load"].tolist() == [99.0] and report["stopped_by"] == "max_messages"
        table, report, _ = capture(lambda: publisher.send([(topic, "7")]), url=mqtt_url,
                                   topics=[topic], format="plain", include_retained=False,
                                   qos=1, max_messages=1, duration_s=10)
        assert table["load"].tolist() == [7.0] and report["retained_skipped"] == 1
    finally:
        publisher.send([(topic, b"")], retain=True)  # clear it


def test_shared_timestamps_are_kept_or_resampled(mqtt_url: str, publisher: Publisher,
                                                 base: str) -> None:
    topic = f"{base}/dup"
    stamps = ["2024-01-01T00:00:00", "2024-01-01T00:00:00", "2024-01-01T00:20:00",
              "2024-01-01T01:10:00"]
    messages = [(topic, json.dumps({"t": t, "x": float(i)})) for i, t in enumerate(stamps)]
    config = dict(url=mqtt_url, topics=[topic], time_field="t", qos=1, max_messages=4,
                  duration_s=30)
    table, report, _ = capture(lambda: publisher.send(messages), **config)
    assert table["x"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert report["notes"]["shared_timestamps"]["count"] == 1
    hourly, _, _ = capture(lambda: publisher.send(messages), resample="1h", **config)
    assert hourly["x"].tolist() == [1.0, 3.0]
    assert list(hourly.index) == [pd.Timestamp("2024-01-01 00:00"),
                                  pd.Timestamp("2024-01-01 01:00")]


def test_time_zone_of_the_output(mqtt_url: str, publisher: Publisher, base: str) -> None:
    topic = f"{base}/tz"
    messages = [(topic, json.dumps({"t": "2024-06-01T12:00:00Z", "x": 1}))]
    table, _, _ = capture(lambda: publisher.send(messages), url=mqtt_url, topics=[topic],
                          time_field="t", tz="Europe/Berlin", qos=1, max_messages=1,
                          duration_s=30)
    assert table.index[0] == pd.Timestamp("2024-06-01 14:00", tz="Europe/Berlin")


def test_a_workflow_step_always_captures_again(mqtt_url: str, publisher: Publisher,
                                               base: str, tmp_path: Path) -> None:
    topic = f"{base}/wf/temperature"
    stop = threading.Event()

    def keep_publishing() -> None:
        i = 0
        while not stop.is_set():
            publisher.send([(topic, str(i))])
            i += 1
            time.sleep(0.02)

    thread = threading.Thread(target=keep_publishing, daemon=True)
    thread.start()
    store = open_store(tmp_path / "s")
    try:
        with Workflow("m") as wf:
            live = ops.source.mqtt(url=mqtt_url, topics=[topic],  # noqa: F841
                                   format="plain", max_messages=3, duration_s=20)
        for _ in range(2):
            result = run_workflow(wf, store=store)
            assert result.steps["live"].status == "ran"
            assert len(result.output("live", "out")) == 3
        assert MqttSource(topics=[topic], max_messages=1).source_state() is None
    finally:
        stop.set()
        thread.join(timeout=5)
        store.close()


def test_unreachable_broker_names_host_and_port_without_the_password(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMML_TEST_MQTT", "mqtt://amml:hunter2secret@127.0.0.1:1")
    with pytest.raises(OpError) as caught:
        capture(url_env="AMML_TEST_MQTT", topics=["x"], duration_s=1, connect_timeout_s=2)
    assert "127.0.0.1:1" in str(caught.value) and "hunter2secret" not in str(caught.value)


# -- the pure parser ------------------------------------------------------------------------


def config(**values: Any) -> MqttConfig:
    return MqttConfig(**{"topics": ["t/#"], "max_messages": 1, **values})


def test_parse_message_times() -> None:
    json_config = config(time_field="t")
    for raw in ("2024-01-01T01:00:00+01:00", "2024-01-01T00:00:00Z", "2024-01-01 00:00",
                1704067200, 1704067200000, 1704067200000000, 1704067200.0):
        parsed = parse_message("t/a", json.dumps({"t": raw, "x": 1}).encode(), json_config)
        assert parsed is not None and parsed["time"] == pd.Timestamp("2024-01-01"), raw
    berlin = config(time_field="t", tz="Europe/Berlin")
    parsed = parse_message("t/a", b'{"t": "2024-01-01 01:00", "x": 1}', berlin)
    assert parsed is not None and parsed["time"] == pd.Timestamp("2024-01-01")
    seconds = config(time_field="t", time_unit="ms")
    parsed = parse_message("t/a", b'{"t": 1000, "x": 1}', seconds)
    assert parsed is not None and parsed["time"] == pd.Timestamp("1970-01-01 00:00:01")
    received = pd.Timestamp("2024-03-01 12:00", tz="Europe/Berlin")
    parsed = parse_message("t/a", b'{"x": 1}', config(), received=received)
    assert parsed is not None and parsed["time"] == pd.Timestamp("2024-03-01 11:00")


def test_parse_message_values() -> None:
    wanted = config(fields=["b", "a"])
    parsed = parse_message("t/a", b'{"a": "2.5", "b": true, "c": "text"}', wanted)
    assert parsed is not None and parsed["values"] == {"b": 1.0, "a": 2.5}
    parsed = parse_message("t/a", b'{"a": null}', wanted)
    assert parsed is not None and pd.isna(parsed["values"]["b"]) and pd.isna(
        parsed["values"]["a"])
    assert parse_message("t/a", b"  ", wanted) is None
    cases = [(b'{"a": "x"}', "malformed_payload"), (b'{"a": {"b": 1}}', "malformed_payload"),
             (b'{"c": 1}', "no_fields"), (b"\xff\xfe", "malformed_payload"),
             (b'{"a": Infinity}', "malformed_payload"), (b'"text"', "malformed_payload")]
    for payload, problem in cases:
        with pytest.raises(PayloadError) as caught:
            parse_message("t/a", payload, wanted)
        assert caught.value.problem == problem, payload
    with pytest.raises(PayloadError, match="no numeric fields"):
        parse_message("t/a", b'{"name": "x", "ok": true}', config())
    with pytest.raises(PayloadError, match="no time field 't'") as caught:
        parse_message("t/a", b'{"x": 1}', config(time_field="t"))
    assert caught.value.problem == "bad_time"


def test_parse_plain_message_columns() -> None:
    plain = config(format="plain", topic_columns={"t/+/x": "renamed", "t/exact": "e"})
    assert parse_message("t/a/x", b"1", plain)["values"] == {"renamed": 1.0}  # type: ignore
    assert parse_message("t/exact", b"2e3", plain)["values"] == {"e": 2000.0}  # type: ignore
    assert parse_message("t/other", b"-3", plain)["values"] == {"other": -3.0}  # type: ignore
    with pytest.raises(PayloadError, match="empty last level"):
        parse_message("t/", b"1", plain)
    with pytest.raises(PayloadError, match="not a number"):
        parse_message("t/a", b"twelve", plain)
    only = config(format="plain", fields=["temperature"])
    with pytest.raises(PayloadError, match="not one of the fields") as caught:
        parse_message("t/load", b"1", only)
    assert caught.value.problem == "unknown_column"


@pytest.mark.parametrize(("values", "message"), [
    ({"topics": ["a"]}, "max_messages and/or duration_s"),
    ({"topics": [], "duration_s": 1}, "at least 1 item"),
    ({"topics": ["a/#/b"], "duration_s": 1}, "'#' must be the last level"),
    ({"topics": ["a/b+"], "duration_s": 1}, r"'\+' must fill a whole level"),
    ({"topics": ["a"], "duration_s": 1, "format": "plain", "time_field": "t"}, "need"),
    ({"topics": ["a"], "duration_s": 1, "topic_columns": {"a": "x"}}, "use format: plain"),
    ({"topics": ["a"], "duration_s": 0}, "greater than 0"),
    ({"topics": ["a"], "max_messages": 1, "resample": "often"}, "not a pandas frequency"),
    ({"topics": ["a"], "max_messages": 1, "url": "mqtt://u:pw@h:1883"}, "contains a password"),
    ({"topics": ["a"], "max_messages": 1, "qos": 3}, "Input should be 0, 1 or 2"),
])
def test_config_is_checked(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MqttSource(**values)
