"""source.redis against the real Redis server: streams and sorted sets, time ranges,
incremental reruns through the engine, quarantined bad values, and connection errors."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from amml import OpError, Workflow, ops, run_workflow
from amml.ops.base import StepContext
from amml.ops.registry import REGISTRY
from amml.ops.sources.redis import RedisSource
from amml.ops.sources.synthetic import make_sensor_frame
from amml.store import open_store

REGISTRY.register(RedisSource)

COLUMNS = ["temperature", "vibration", "load"]


@pytest.fixture
def client(redis_url: str) -> Iterator[Any]:
    import redis

    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    created: list[str] = []
    connection.created = created  # type: ignore[attr-defined]
    yield connection
    if created:
        connection.delete(*created)
    connection.close()


def new_key(client: Any, label: str) -> str:
    key = f"amml:test:{label}:{uuid.uuid4().hex}"
    client.created.append(key)
    return key


def sensors(periods: int = 200) -> pd.DataFrame:
    """The expected table: float sensor columns indexed by ``time``."""
    frame = make_sensor_frame(periods=periods)[COLUMNS].rename_axis("time").astype("float64")
    frame.index = frame.index.as_unit("ns")  # what the sources give
    return frame


def ms(stamp: pd.Timestamp) -> int:
    return int(stamp.value // 1_000_000)


def write_stream(client: Any, key: str, frame: pd.DataFrame) -> None:
    """One entry per row, the entry id taken from the row's time."""
    pipe = client.pipeline()
    for stamp, row in frame.iterrows():
        pipe.xadd(key, {c: float(row[c]) for c in frame.columns}, id=f"{ms(stamp)}-0")
    pipe.execute()


def write_json_zset(client: Any, key: str, frame: pd.DataFrame) -> None:
    client.zadd(key, {json.dumps({c: float(row[c]) for c in frame.columns}):
                      stamp.value / 1e9 for stamp, row in frame.iterrows()})


def write_field_zsets(client: Any, keys: dict[str, str], frame: pd.DataFrame) -> None:
    """One sorted set per column, score in ms, members ``<ms>:<value>`` (unique)."""
    for column, key in keys.items():
        client.zadd(key, {f"{ms(stamp)}:{float(value)!r}": ms(stamp)
                          for stamp, value in frame[column].items()})


def read(**config: Any) -> tuple[pd.DataFrame, dict[str, Any], StepContext]:
    ctx = StepContext(step_name="test")
    result = RedisSource(**config).run(ctx)
    return result["out"], result["report"], ctx


def test_stream_round_trip_in_batches(client: Any, redis_url: str) -> None:
    expected = sensors()
    key = new_key(client, "stream")
    write_stream(client, key, expected)
    table, report, ctx = read(url=redis_url, key=key, fields=COLUMNS, count=37)
    pd.testing.assert_frame_equal(table, expected, check_freq=False)
    assert table.index.name == "time" and str(table.index.dtype) == "datetime64[ns]"
    assert report["rows_read"] == 200 and report["bad_rows"] == 0
    assert report["cursor"] == {"last_id": f"{ms(expected.index[-1])}-0"}
    assert {m.key: m.value for m in ctx.metrics}["rows_read"] == 200


def test_stream_time_field_field_order_and_time_zone(client: Any, redis_url: str) -> None:
    expected = sensors()
    key = new_key(client, "stream-tf")
    for stamp, row in expected.iterrows():  # auto ids (XADD *), the time in a field
        client.xadd(key, {"ts": stamp.isoformat() + "Z", "site": "north",
                          **{c: float(row[c]) for c in COLUMNS}})
    table, _, _ = read(url=redis_url, key=key, time_field="ts", fields=["load", "temperature"])
    pd.testing.assert_frame_equal(table, expected[["load", "temperature"]], check_freq=False)
    berlin, _, _ = read(url=redis_url, key=key, time_field="ts", fields=COLUMNS,
                        tz="Europe/Berlin")
    assert str(berlin.index.tz) == "Europe/Berlin"
    assert berlin.index[0] == pd.Timestamp("2024-01-01 01:00", tz="Europe/Berlin")
    # without fields every field is a column: the text field "site" is not a number
    with pytest.raises(OpError, match="non-numeric values in 'site'"):
        read(url=redis_url, key=key, time_field="ts")


def test_stream_numeric_time_field(client: Any, redis_url: str) -> None:
    expected = sensors(50)
    key = new_key(client, "stream-epoch")
    for stamp, row in expected.iterrows():
        client.xadd(key, {"epoch": stamp.value // 10**9, **{c: float(row[c]) for c in COLUMNS}})
    table, _, _ = read(url=redis_url, key=key, time_field="epoch", time_unit="s")
    pd.testing.assert_frame_equal(table, expected, check_freq=False)


def test_zset_json_members_round_trip(client: Any, redis_url: str) -> None:
    expected = sensors()
    key = new_key(client, "zset")
    write_json_zset(client, key, expected)
    table, report, _ = read(url=redis_url, key=key, kind="zset", count=33)
    pd.testing.assert_frame_equal(table, expected, check_freq=False)
    assert report["rows_read"] == 200


def test_one_sorted_set_per_column_round_trip(client: Any, redis_url: str) -> None:
    expected = sensors()
    keys = {c: new_key(client, f"zset-{c}") for c in COLUMNS}
    write_field_zsets(client, keys, expected)
    table, report, _ = read(url=redis_url, keys=keys, kind="zset", score_unit="ms", count=64)
    pd.testing.assert_frame_equal(table, expected, check_freq=False)
    assert list(table.columns) == COLUMNS
    assert set(report["cursor"]["last_scores"]) == set(keys.values())


def test_plain_number_members_take_the_single_field_name(client: Any, redis_url: str) -> None:
    key = new_key(client, "zset-plain")
    client.zadd(key, {"1.5": 1_704_067_200, "2.5": 1_704_070_800})
    table, _, _ = read(url=redis_url, key=key, kind="zset", fields=["pressure"])
    assert list(table.columns) == ["pressure"]
    assert table["pressure"].tolist() == [1.5, 2.5]
    assert table.index[1] == pd.Timestamp("2024-01-01 01:00")


@pytest.mark.parametrize("layout", ["stream", "zset", "keys"])
def test_time_range_includes_both_ends(client: Any, redis_url: str, layout: str) -> None:
    expected = sensors()
    start, end = "2024-01-02T00:00:00", "2024-01-03T00:00:00+00:00"
    if layout == "stream":
        key = new_key(client, "range")
        write_stream(client, key, expected)
        config: dict[str, Any] = {"key": key}
    elif layout == "zset":
        key = new_key(client, "range")
        write_json_zset(client, key, expected)
        config = {"key": key, "kind": "zset"}
    else:
        keys = {c: new_key(client, f"range-{c}") for c in COLUMNS}
        write_field_zsets(client, keys, expected)
        config = {"keys": keys, "kind": "zset", "score_unit": "ms"}
    table, _, _ = read(url=redis_url, start=start, end=end, count=7, **config)
    want = expected.loc[pd.Timestamp("2024-01-02"):pd.Timestamp("2024-01-03")]
    assert len(want) == 25
    pd.testing.assert_frame_equal(table, want, check_freq=False)
    # a range in another zone is the same instants
    shifted, _, _ = read(url=redis_url, start="2024-01-02T01:00:00+01:00",
                         end="2024-01-02T06:00:00", tz="UTC", **config)
    assert len(shifted) == 7 and shifted.index[0] == pd.Timestamp("2024-01-02", tz="UTC")
    with pytest.raises(OpError, match="no entries between"):
        read(url=redis_url, start="2030-01-01", **config)


def _run(wf: Workflow, store: Any) -> tuple[Any, dict[str, float], pd.DataFrame, dict]:
    result = run_workflow(wf, store=store)
    metrics = {m["key"]: m["value"] for m in store.metadata.metrics(result.run_id)
               if not m.get("cached_from")}  # what this run itself logged
    return result, metrics, result.output("raw", "out"), result.output("raw", "report")


def test_incremental_stream_reads_only_new_entries(client: Any, redis_url: str,
                                                   tmp_path: Path) -> None:
    expected = sensors()
    key = new_key(client, "incremental")
    write_stream(client, key, expected.iloc[:150])
    with Workflow("r") as wf:
        raw = ops.source.redis(url=redis_url, key=key, fields=COLUMNS, count=40)  # noqa: F841
    store = open_store(tmp_path / "s")
    try:
        first, metrics, table, report = _run(wf, store)
        assert first.steps["raw"].status == "ran" and metrics["rows_read"] == 150
        pd.testing.assert_frame_equal(table, expected.iloc[:150], check_freq=False)
        assert report["mode"] == "full"

        unchanged, metrics, _, _ = _run(wf, store)
        assert unchanged.steps["raw"].status == "cached" and "rows_read" not in metrics

        write_stream(client, key, expected.iloc[150:])
        second, metrics, table, report = _run(wf, store)
        assert second.steps["raw"].status == "ran"
        assert metrics["rows_read"] == 50, "the rerun must read only the new entries"
        assert report["mode"] == "incremental" and report["previous_rows"] == 150
        pd.testing.assert_frame_equal(table, expected, check_freq=False)

        third, _, _, _ = _run(wf, store)
        assert third.steps["raw"].status == "cached"
    finally:
        store.close()


def test_incremental_sorted_sets_merge_columns_that_arrive_apart(
        client: Any, redis_url: str, tmp_path: Path) -> None:
    expected = sensors()
    keys = {c: new_key(client, f"inc-{c}") for c in COLUMNS}
    write_field_zsets(client, keys, expected.iloc[:100])
    with Workflow("r") as wf:
        raw = ops.source.redis(url=redis_url, keys=keys, kind="zset",  # noqa: F841
                               score_unit="ms")
    store = open_store(tmp_path / "s")
    try:
        _, metrics, _, _ = _run(wf, store)
        assert metrics["rows_read"] == 300
        # temperature is ahead of the other two columns for a while
        write_field_zsets(client, {"temperature": keys["temperature"]}, expected.iloc[100:])
        _, metrics, table, _ = _run(wf, store)
        assert metrics["rows_read"] == 100 and len(table) == 200
        assert table["load"].iloc[100:].isna().all()
        write_field_zsets(client, {c: keys[c] for c in ("vibration", "load")},
                          expected.iloc[100:])
        _, metrics, table, report = _run(wf, store)
        assert metrics["rows_read"] == 200 and report["mode"] == "incremental"
        pd.testing.assert_frame_equal(table, expected, check_freq=False)
        assert _run(wf, store)[0].steps["raw"].status == "cached"
    finally:
        store.close()


def test_recreated_stream_is_read_again_in_full(client: Any, redis_url: str,
                                                tmp_path: Path) -> None:
    expected = sensors()
    key = new_key(client, "recreated")
    write_stream(client, key, expected.iloc[100:])
    with Workflow("r") as wf:
        raw = ops.source.redis(url=redis_url, key=key)  # noqa: F841
    store = open_store(tmp_path / "s")
    try:
        _run(wf, store)
        client.delete(key)
        write_stream(client, key, expected.iloc[:50])  # older ids than the cursor
        _, metrics, table, report = _run(wf, store)
        assert report["mode"] == "full" and metrics["rows_read"] == 50
        pd.testing.assert_frame_equal(table, expected.iloc[:50], check_freq=False)
    finally:
        store.close()


def test_bad_values_fail_or_are_quarantined_with_examples(client: Any, redis_url: str) -> None:
    key = new_key(client, "bad")
    client.xadd(key, {"t": "2024-01-01T00:00:00", "x": "1.5"})
    client.xadd(key, {"t": "2024-01-01T01:00:00", "x": "broken"})
    client.xadd(key, {"t": "not a time", "x": "3"})
    client.xadd(key, {"x": "4"})  # no time at all
    client.xadd(key, {"t": "2024-01-01T02:00:00", "x": "5"})
    client.xadd(key, {"t": "2024-01-01T03:00:00", "other": "6"})  # none of the fields
    with pytest.raises(OpError, match=r"1 rows with entries without any of the fields"):
        read(url=redis_url, key=key, time_field="t", fields=["x"])
    table, report, ctx = read(url=redis_url, key=key, time_field="t", fields=["x"],
                              on_bad_rows="quarantine")
    assert table["x"].tolist() == [1.5, 5.0]
    assert report["rows_read"] == 6 and report["rows_kept"] == 2 and report["bad_rows"] == 4
    problems = report["problems"]
    assert problems["unparseable_time"]["count"] == 2
    assert problems["non_numeric"]["count"] == 1
    assert "broken" in json.dumps(problems["non_numeric"]["examples"])
    assert problems["no_fields"]["count"] == 1
    assert {m.key: m.value for m in ctx.metrics}["bad_rows"] == 4


def test_malformed_sorted_set_members_are_quarantined(client: Any, redis_url: str) -> None:
    key = new_key(client, "bad-zset")
    client.zadd(key, {'{"x": 1}': 1_704_067_200, "garbage": 1_704_070_800,
                      '{"x": "n/a"}': 1_704_074_400, '{"x": 4}': 1_704_078_000})
    with pytest.raises(OpError, match="neither a number nor a JSON object"):
        read(url=redis_url, key=key, kind="zset")
    table, report, _ = read(url=redis_url, key=key, kind="zset", on_bad_rows="quarantine")
    assert table["x"].tolist() == [1.0, 4.0]
    assert report["problems"]["malformed_member"]["count"] == 1
    assert report["problems"]["malformed_member"]["examples"] == ["1704070800.0: garbage"]
    assert report["problems"]["non_numeric"]["count"] == 1
    assert report["rows_read"] == 4 and report["bad_rows"] == 2


def test_source_state_follows_the_data(client: Any, redis_url: str) -> None:
    key = new_key(client, "state")
    op = RedisSource(url=redis_url, key=key)
    assert op.source_state().endswith(":absent")
    client.xadd(key, {"x": 1}, id="1000-0")
    first = op.source_state()
    assert first == op.source_state() and "1000-0" in first
    client.xadd(key, {"x": 2}, id="2000-0")
    assert op.source_state() != first
    zkey = new_key(client, "state-z")
    zop = RedisSource(url=redis_url, key=zkey, kind="zset")
    client.zadd(zkey, {"1": 10})
    before = zop.source_state()
    client.zadd(zkey, {"2": 20})
    assert zop.source_state() != before


def test_missing_and_wrong_type_keys_are_named(client: Any, redis_url: str) -> None:
    key = new_key(client, "missing")
    with pytest.raises(OpError, match=f"'{key}' does not exist at 127.0.0.1:6379"):
        read(url=redis_url, key=key)
    client.set(key, "a string")
    with pytest.raises(OpError, match="is a string, not a stream"):
        read(url=redis_url, key=key)
    stream = new_key(client, "fields")
    client.xadd(stream, {"a": 1})
    with pytest.raises(OpError, match=r"fields \['b'\] not found \(fields: a\)"):
        read(url=redis_url, key=stream, fields=["b"])
    binary = new_key(client, "binary")
    client.xadd(binary, {"x": b"\xff\xfe"})
    with pytest.raises(OpError, match="values that are not UTF-8 text"):
        read(url=redis_url, key=binary)


def test_unreachable_server_names_host_and_port_without_the_password(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMML_TEST_REDIS", "redis://amml:hunter2secret@127.0.0.1:1/0")
    op = RedisSource(url_env="AMML_TEST_REDIS", key="k", timeout_s=2)
    for call in (lambda: op.run(StepContext()), op.source_state):
        with pytest.raises(OpError) as caught:
            call()
        assert "127.0.0.1:1" in str(caught.value)
        assert "hunter2secret" not in str(caught.value)


def test_unreachable_server_fails_the_step_without_the_password(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AMML_TEST_REDIS", "redis://:hunter2secret@127.0.0.1:1/0")
    with Workflow("r") as wf:
        raw = ops.source.redis(url_env="AMML_TEST_REDIS", key="k", timeout_s=2)  # noqa: F841
    store = open_store(tmp_path / "s")
    try:
        result = run_workflow(wf, store=store, raise_on_failure=False)
        error = result.steps["raw"].error or ""
        assert result.steps["raw"].status == "failed" and "127.0.0.1:1" in error
        assert "hunter2secret" not in error
        assert "hunter2secret" not in json.dumps(store.metadata.get_run(result.run_id),
                                                 default=str)
    finally:
        store.close()


@pytest.mark.parametrize(("config", "message"), [
    ({}, "Field required"),
    ({"key": "a", "keys": {"x": "b"}}, "not both"),
    ({"keys": "a", "kind": "zset"}, "keys maps columns to sorted sets"),
    ({"keys": {}, "kind": "zset"}, "key is empty"),
    ({"keys": {"x": "b"}}, "needs kind: zset"),
    ({"key": "a", "kind": "zset", "time_field": "t"}, "apply to streams only"),
    ({"key": "a", "time_unit": "s"}, "time_unit needs time_field"),
    ({"key": "a", "start": "2024-02-01", "end": "2024-01-01"}, "is after end"),
    ({"key": "a", "start": "someday"}, "cannot parse time"),
    ({"key": "a", "tz": "Mars/Olympus"}, "unknown time zone"),
    ({"key": "a", "url": "redis://u:pw@localhost:6379/0"}, "contains a password"),
    ({"key": "a", "colour": "red"}, "Extra inputs are not permitted"),
])
def test_config_is_checked(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RedisSource(**config)
