"""``source.influxdb`` against the real InfluxDB 1.x server (``influx_url`` fixture)."""

from __future__ import annotations

import base64
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from pydantic import ValidationError

from amml import OpError, StepContext, Workflow, ops, run_workflow
from amml.ops.registry import REGISTRY
from amml.ops.sources.influx import InfluxSource
from amml.ops.sources.synthetic import make_sensor_frame
from amml.store import open_store
from amml.testing import check_op

FIELDS = ["temperature", "vibration", "load", "is_anomaly"]
FRAME = make_sensor_frame(periods=200)
FRAME_B = make_sensor_frame(periods=200, seed=7)
ODD_SITE = 'it\'s "b" site, 2=x'


# -- helpers ---------------------------------------------------------------------------------
def _escape(text: str) -> str:
    """Line-protocol escaping of measurement names, tag keys and tag values."""
    return text.replace(",", "\\,").replace(" ", "\\ ").replace("=", "\\=")


def write_frame(url: str, db: str, measurement: str, frame: pd.DataFrame,
                tags: dict[str, str]) -> None:
    """Write a frame's rows as points (nanosecond timestamps, float fields)."""
    tag_text = "".join(f",{_escape(k)}={_escape(v)}" for k, v in sorted(tags.items()))
    lines = []
    for stamp, row in zip(frame.index.as_unit("ns").asi8, frame.itertuples(index=False),
                          strict=True):
        values = ",".join(f"{_escape(k)}={float(v)!r}"
                          for k, v in zip(frame.columns, row, strict=True) if pd.notna(v))
        lines.append(f"{_escape(measurement)}{tag_text} {values} {stamp}")
    response = httpx.post(f"{url}/write", params={"db": db, "precision": "ns"},
                          content="\n".join(lines).encode())
    assert response.status_code == 204, response.text


def write_lines(url: str, db: str, text: str) -> None:
    response = httpx.post(f"{url}/write", params={"db": db, "precision": "ns"},
                          content=text.encode())
    assert response.status_code == 204, response.text


def influxql(url: str, q: str) -> None:
    response = httpx.post(f"{url}/query", data={"q": q})
    assert response.status_code == 200 and "error" not in response.text, response.text


def expected(frame: pd.DataFrame = FRAME, tz: str | None = None) -> pd.DataFrame:
    result = frame[FIELDS].astype("float64")
    index = result.index.rename("time")
    result.index = index.tz_localize("UTC").tz_convert(tz) if tz else index
    return result


def read(url: str, db: str, **config: Any) -> tuple[pd.DataFrame, dict[str, Any], dict]:
    ctx = StepContext()
    config.setdefault("measurement", "sensors")
    config.setdefault("fields", FIELDS)
    if "all_time" not in config:
        config.setdefault("start", "2024-01-01")
    result = InfluxSource(url=url, database=db, **config).run(ctx)
    metrics = {m.key: m.value for m in ctx.metrics}
    return result["out"], result["report"], metrics


@pytest.fixture(scope="module")
def influx(influx_url: str) -> Iterator[tuple[str, str]]:
    """(url, database): a fresh database holding sites a, b and an oddly named one."""
    db = f"amml_test_{uuid.uuid4().hex[:10]}"
    influxql(influx_url, f'CREATE DATABASE "{db}"')
    write_frame(influx_url, db, "sensors", FRAME, {"site": "a"})
    write_frame(influx_url, db, "sensors", FRAME_B, {"site": "b"})
    write_frame(influx_url, db, "sensors", FRAME.iloc[:5] * 10, {"site": ODD_SITE})
    yield influx_url, db
    influxql(influx_url, f'DROP DATABASE "{db}"')


def fresh_measurement(url: str, db: str, frame: pd.DataFrame, site: str = "a") -> str:
    name = f"m_{uuid.uuid4().hex[:8]}"
    write_frame(url, db, name, frame, {"site": site})
    return name


# -- reading ---------------------------------------------------------------------------------
def test_reads_back_exactly_what_was_written(influx) -> None:
    url, db = influx
    table, report, metrics = read(url, db, tags={"site": "a"})
    pd.testing.assert_frame_equal(table, expected(), check_freq=False)
    assert table.index.tz is None and table.index.is_monotonic_increasing
    assert metrics["rows_read"] == 200 and metrics["rows"] == 200
    assert report["bad_rows"] == 0 and report["rows_kept"] == 200
    assert json.dumps(report)  # the report is a JSON artifact


def test_small_chunks_stream_the_same_table(influx) -> None:
    url, db = influx
    table, _, _ = read(url, db, tags={"site": "a"}, chunk_size=7)
    pd.testing.assert_frame_equal(table, expected(), check_freq=False)


def test_tags_filter_series_and_values_are_escaped(influx) -> None:
    url, db = influx
    table_b, _, _ = read(url, db, tags={"site": "b"}, fields=["load", "temperature"])
    pd.testing.assert_frame_equal(table_b, expected(FRAME_B)[["load", "temperature"]],
                                  check_freq=False)
    odd, _, _ = read(url, db, tags={"site": ODD_SITE})
    pd.testing.assert_frame_equal(odd, expected(FRAME.iloc[:5] * 10), check_freq=False)
    with pytest.raises(OpError, match="no rows"):  # an injection attempt is only a value
        read(url, db, tags={"site": "a' OR 'x'='x"})
    both, _, _ = read(url, db, tags={"site": ["a", "b"]}, dedupe="mean")
    mean = (expected(FRAME) + expected(FRAME_B)) / 2
    pd.testing.assert_frame_equal(both, mean, check_freq=False)


def test_several_series_without_a_tag_filter_are_duplicates(influx) -> None:
    url, db = influx
    with pytest.raises(OpError, match=r"duplicate timestamps.*dedupe"):
        read(url, db)


def test_time_range_is_start_inclusive_end_exclusive(influx) -> None:
    url, db = influx
    table, _, _ = read(url, db, tags={"site": "a"}, start="2024-01-03 05:00",
                       end="2024-01-05")
    want = expected().loc["2024-01-03 05:00":"2024-01-04 23:00"]
    pd.testing.assert_frame_equal(table, want, check_freq=False)
    berlin, _, _ = read(url, db, tags={"site": "a"}, start="2024-01-03 06:00",
                        end="2024-01-05 01:00", tz="Europe/Berlin")
    pd.testing.assert_frame_equal(berlin, expected(tz="Europe/Berlin").loc[
        "2024-01-03 06:00":"2024-01-05 00:00"], check_freq=False)
    assert str(berlin.index.tz) == "Europe/Berlin"


def test_group_by_time_is_pushed_down_to_the_server(influx) -> None:
    url, db = influx
    config = dict(measurement="sensors", fields=FIELDS, tags={"site": "a"},
                  start="2024-01-02", end="2024-01-08", group_by_time="6h")
    query = InfluxSource(url=url, database=db, **config).query()
    assert 'mean("temperature")' in query and "GROUP BY time(6h) fill(none)" in query
    table, report, metrics = read(url, db, **config)
    want = expected().loc["2024-01-02":"2024-01-07 23:00"].resample("6h").mean()
    pd.testing.assert_frame_equal(table, want, check_freq=False)
    assert metrics["rows_read"] == len(want) == 24  # only the buckets travelled
    assert "GROUP BY time(6h)" in report["query"]
    top, _, _ = read(url, db, **{**config, "aggregate": "max", "fill": "null"})
    pd.testing.assert_frame_equal(
        top, expected().loc["2024-01-02":"2024-01-07 23:00"].resample("6h").max(),
        check_freq=False)


def test_source_state_changes_with_new_points_only(influx) -> None:
    url, db = influx
    name = fresh_measurement(url, db, FRAME.iloc[:50])
    source = InfluxSource(url=url, database=db, measurement=name, fields=FIELDS,
                          tags={"site": "a"}, start="2024-01-01")
    first = source.source_state()
    assert first == source.source_state()
    write_frame(url, db, name, FRAME.iloc[60:61], {"site": "other"})  # filtered out
    assert source.source_state() == first
    write_frame(url, db, name, FRAME.iloc[50:51], {"site": "a"})
    assert source.source_state() != first


# -- workflows, caching and incremental reads -------------------------------------------------
def _statuses(result) -> dict[str, str]:
    return {n: o.status for n, o in result.steps.items()}


def test_workflow_is_cached_until_new_points_arrive(influx, tmp_path: Path) -> None:
    url, db = influx
    REGISTRY.register(InfluxSource)
    name = fresh_measurement(url, db, FRAME.iloc[:150])
    with Workflow("influx") as wf:
        readings = ops.source.influxdb(url=url, database=db, measurement=name, fields=FIELDS,
                                       tags={"site": "a"}, start="2024-01-01")
        ops.preprocess(readings, scale="zscore", name="scaled")
    store = open_store(tmp_path / "s")
    first = run_workflow(wf, store=store)
    pd.testing.assert_frame_equal(first["readings"], expected().iloc[:150], check_freq=False)

    again = run_workflow(wf, store=store)
    assert _statuses(again) == {"readings": "cached", "scaled": "cached"}

    write_frame(url, db, name, FRAME.iloc[150:], {"site": "a"})
    third = run_workflow(wf, store=store)
    assert _statuses(third) == {"readings": "ran", "scaled": "ran"}
    pd.testing.assert_frame_equal(third["readings"], expected(), check_freq=False)
    metrics = {m["key"]: m["value"]
               for m in store.metadata.metrics(third.run_id, step_name="readings")}
    assert metrics["rows_read"] == 50 and metrics["rows"] == 200  # only the new points
    report = third.output("readings", "report")
    assert report["incremental"]["previous_rows"] == 150

    write_frame(url, db, name, FRAME.iloc[150:] + 1, {"site": "b"})  # another series
    assert _statuses(run_workflow(wf, store=store))["readings"] == "cached"
    store.close()


def test_late_points_trigger_a_full_reread(influx, tmp_path: Path) -> None:
    url, db = influx
    name = fresh_measurement(url, db, FRAME.iloc[::2])
    with Workflow("late") as wf:
        ops.source.influxdb(url=url, database=db, measurement=name, fields=FIELDS,
                            tags={"site": "a"}, start="2024-01-01", name="readings")
    store = open_store(tmp_path / "s")
    run_workflow(wf, store=store)
    write_frame(url, db, name, FRAME.iloc[1::2], {"site": "a"})  # older than the newest
    result = run_workflow(wf, store=store)
    assert "late_rows" in result.output("readings", "report")["notes"]
    pd.testing.assert_frame_equal(result["readings"], expected(), check_freq=False)
    store.close()


def test_aggregated_reads_are_incremental_from_the_last_bucket(influx, tmp_path: Path) -> None:
    url, db = influx
    name = fresh_measurement(url, db, FRAME.iloc[:100])  # ends inside a 6 h bucket
    with Workflow("buckets") as wf:
        ops.source.influxdb(url=url, database=db, measurement=name, fields=FIELDS,
                            tags={"site": "a"}, start="2024-01-01", group_by_time="6h",
                            name="readings")
    store = open_store(tmp_path / "s")
    first = run_workflow(wf, store=store)
    pd.testing.assert_frame_equal(first["readings"],
                                  expected().iloc[:100].resample("6h").mean(),
                                  check_freq=False)
    write_frame(url, db, name, FRAME.iloc[100:], {"site": "a"})
    second = run_workflow(wf, store=store)
    pd.testing.assert_frame_equal(second["readings"], expected().resample("6h").mean(),
                                  check_freq=False)
    metrics = {m["key"]: m["value"]
               for m in store.metadata.metrics(second.run_id, step_name="readings")}
    assert metrics["rows_read"] == 18 and metrics["rows"] == 34  # from the partial bucket on
    store.close()


# -- errors ----------------------------------------------------------------------------------
def test_server_errors_are_reported_with_the_servers_message(influx) -> None:
    url, db = influx
    with pytest.raises(OpError, match="database not found: no_such_db"):
        read(url, "no_such_db")
    with pytest.raises(OpError, match=r"measurement 'sensor' not found.*did you mean 'sensors'"):
        read(url, db, measurement="sensor")
    with pytest.raises(OpError, match=r"fields \['temp'\] not in measurement 'sensors'"):
        read(url, db, fields=["temp"], tags={"site": "a"})
    with pytest.raises(OpError, match=r"tags \['plant'\] not in measurement"):
        read(url, db, tags={"plant": "a"})


def test_non_numeric_values_are_rejected_or_quarantined(influx) -> None:
    url, db = influx
    name = f"notes_{uuid.uuid4().hex[:6]}"
    write_lines(url, db, "\n".join([
        f"{name} x=1.0 1704067200000000000",
        f'{name} x=2.0,note="check" 1704070800000000000',
        f"{name} x=3.0 1704074400000000000"]))
    with pytest.raises(OpError, match="non-numeric values in 'note'"):
        read(url, db, measurement=name, fields=["x", "note"])
    table, report, _ = read(url, db, measurement=name, fields=["x", "note"],
                            on_bad_rows="quarantine")
    assert table["x"].tolist() == [1.0, 3.0] and report["bad_rows"] == 1


def test_unreachable_server_names_host_and_port_not_the_password(monkeypatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("INFLUX_URL", f"http://amml:s3cret@127.0.0.1:{port}")
    source = InfluxSource(url_env="INFLUX_URL", database="d", measurement="m", fields=["x"],
                          all_time=True)
    for attempt in (lambda: source.run(StepContext()), source.source_state):
        with pytest.raises(OpError) as info:
            attempt()
        message = str(info.value)
        assert f"127.0.0.1:{port} is not reachable" in message and "s3cret" not in message


def test_credentials_go_as_basic_auth_and_never_into_messages(monkeypatch) -> None:
    seen: dict[str, str] = {}

    class Refuse(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen["auth"] = self.headers.get("Authorization", "")
            seen["path"] = self.path
            body = b'{"error":"authorization failed"}'
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        monkeypatch.setenv("INFLUX_URL", f"http://amml:s3cret@127.0.0.1:{port}")
        with pytest.raises(OpError, match=r"refused the credentials.*authorization failed") \
                as info:
            InfluxSource(url_env="INFLUX_URL", database="d", measurement="m", fields=["x"],
                         all_time=True).run(StepContext())
    finally:
        server.shutdown()
        server.server_close()
    assert "s3cret" not in str(info.value)
    assert seen["auth"] == "Basic " + base64.b64encode(b"amml:s3cret").decode()
    assert "s3cret" not in seen["path"]


def test_credentials_from_the_environment_reach_the_real_server(influx, monkeypatch) -> None:
    url, db = influx
    monkeypatch.setenv("INFLUX_URL", url.replace("http://", "http://amml:s3cret@"))
    table = InfluxSource(url_env="INFLUX_URL", database=db, measurement="sensors",
                         fields=["load"], tags={"site": "a"}, start="2024-01-01"
                         ).run(StepContext())["out"]
    assert len(table) == 200


def test_config_is_checked_before_anything_runs() -> None:
    check_op(InfluxSource)
    base = dict(database="d", measurement="m", fields=["x"])
    with pytest.raises(ValidationError, match=r"give 'start'.*all_time"):
        InfluxSource(**base)
    with pytest.raises(ValidationError, match="not an InfluxQL duration"):
        InfluxSource(**base, start="2024-01-01", group_by_time="6 hours")
    with pytest.raises(ValidationError, match="not before end"):
        InfluxSource(**base, start="2024-01-02", end="2024-01-01")
    with pytest.raises(ValidationError, match="not an ISO timestamp"):
        InfluxSource(**base, start="yesterday-ish")
    with pytest.raises(ValidationError, match="contains a password"):
        InfluxSource(**base, start="2024-01-01", url="http://u:pw@127.0.0.1:8086")
    with pytest.raises(ValidationError, match="aggregate"):
        InfluxSource(**base, start="2024-01-01", group_by_time="1h", aggregate="avg")
    with pytest.raises(ValidationError, match="listed twice"):
        InfluxSource(database="d", measurement="m", fields=["x", "x"], all_time=True)
