"""The serving application through FastAPI's TestClient: every endpoint, body format,
validation error, auth rule, metric and log row."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pytest
from sqlalchemy import select

from amml.serve.auth import revoke_key
from amml.store.metadata.schema import prediction_log
from tests.serve.conftest import BY_VERSION, HORIZON, LOOKBACK, WINDOW, wait_until

FORECAST = "/v1/models/oil/forecast"
DETECT = "/v1/models/oil/detect"


# -- forecasts in every body format ---------------------------------------------------------
def test_forecast_json_window_is_tagged_with_its_version(served):
    response = served.post(FORECAST, json={"window": WINDOW})
    assert response.status_code == 200, response.text
    body = response.json()
    assert response.headers["x-model-version"] == "1"
    assert body["version"] == 1 and body["model"] == "oil" and body["horizon"] == HORIZON
    assert body["forecast"] == {"OT": BY_VERSION[1]}
    rows = served.post(FORECAST, json={"window": [[v] for v in WINDOW]}).json()
    assert rows["forecast"] == body["forecast"]


def test_forecast_series_batch_and_column_order(served):
    series = served.post(FORECAST, json={"series": {"OT": WINDOW}}).json()
    assert series["forecast"] == {"OT": BY_VERSION[1]}
    batch = served.post(FORECAST, json={"windows": [WINDOW, {"series": {
        "OT": [v * 2 for v in WINDOW]}}]}).json()
    assert [f["OT"][0] for f in batch["forecasts"]] == [7.0, 14.0]
    reordered = served.post("/v1/models/multi/forecast", json={
        "columns": ["b", "a"], "window": [[100 + i, i] for i in range(LOOKBACK)]}).json()
    assert reordered["outputs"] == ["b"] and reordered["forecast"] == {"b": [107.0] * 4}


def test_forecast_csv_single_and_batch_with_timestamps(served):
    stamps = [f"2024-01-01T{h:02d}:00:00" for h in range(LOOKBACK)]
    text = "timestamp,OT\n" + "".join(f"{t},{v}\n" for t, v in zip(stamps, WINDOW,
                                                                   strict=True))
    single = served.post(FORECAST, content=text, headers={"Content-Type": "text/csv"})
    assert single.status_code == 200, single.text
    assert single.json()["forecast"] == {"OT": BY_VERSION[1]}
    assert single.json()["timestamps"][0] == "2024-01-01T08:00:00"
    lines = ["window,OT"] + [f"{w},{v + w}" for w in (1, 2) for v in WINDOW]
    batch = served.post(FORECAST, content="\n".join(lines),
                        headers={"Content-Type": "text/csv; charset=utf-8"}).json()
    assert batch["windows"] == [1, 2]
    assert [f["OT"][0] for f in batch["forecasts"]] == [8.0, 9.0]


def test_forecast_arrow_stream(served):
    table = pa.table({"OT": WINDOW})
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    response = served.post(FORECAST, content=sink.getvalue(),
                           headers={"Content-Type": "application/vnd.apache.arrow.stream"})
    assert response.status_code == 200, response.text
    assert response.json()["forecast"] == {"OT": BY_VERSION[1]}


# -- validation -----------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"json": {"window": WINDOW[:5]}}, "window has 5 rows, the model's lookback is 8"),
    ({"json": {"series": {"HUFL": WINDOW}}}, "missing column OT"),
    ({"json": {"window": [*WINDOW[:3], None, *WINDOW[4:]]}}, "NaN at row 3 of column OT"),
    ({"json": {"window": WINDOW, "timestamps": [f"2024-01-01T00:{m:02d}:00"
                                                for m in range(0, 40, 5)]}},
     "timestamps are 5min apart at row 1, the model's frequency is 1h"),
    ({"json": {"rows": WINDOW}}, 'body needs "window", "series" or "windows"'),
    ({"json": {"window": [*WINDOW[:7], "x"]}}, 'row 7 holds "x", not a number'),
    ({"content": b"{not json", "headers": {"Content-Type": "application/json"}},
     "body is not valid JSON"),
    ({"content": "OT\n" + "\n".join(["1"] * 7 + ["warm"]),
      "headers": {"Content-Type": "text/csv"}}, "column OT holds 'warm' at row 7"),
    ({"json": {"windows": [WINDOW, WINDOW[:2]]}}, "windows[1]: window has 2 rows"),
])
def test_invalid_bodies_get_422_naming_the_problem(served, kwargs, message):
    response = served.post(FORECAST, **kwargs)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert response.headers["x-model-version"] == "1"


def test_multi_column_checks(served):
    response = served.post("/v1/models/multi/forecast", json={"window": WINDOW})
    assert response.status_code == 422
    assert "window rows must be lists of 2 values" in response.json()["detail"]
    response = served.post("/v1/models/multi/forecast",
                           json={"window": [[1.0, 2.0, 3.0]] * LOOKBACK})
    assert "window rows have 3 values, the model takes 2 columns (a, b)" in response.text


def test_unsupported_content_type_and_unknown_model(served):
    response = served.post(FORECAST, content=b"x", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    missing = served.post("/v1/models/gas/forecast", json={"window": WINDOW})
    assert missing.status_code == 404 and "oil@champion" in missing.json()["detail"]


# -- detection ------------------------------------------------------------------------------
def test_detect_scores_and_alarms(served):
    actual = [7.0, 7.0, 40.0, 7.0]
    response = served.post(DETECT, json={"window": WINDOW + actual})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == 1 and body["threshold"] == 4.0
    assert body["alarms"] == {"OT": [2]} and body["anomalous"] is True
    scale = body["scale"]["OT"]  # 1.4826 x MAD of 0..7
    assert body["scores"]["OT"][2] == pytest.approx(33 / scale)
    relaxed = served.post(DETECT + "?threshold=100", json={"window": WINDOW + actual})
    assert relaxed.json()["alarms"] == {"OT": []}
    short = served.post(DETECT, json={"window": WINDOW})
    assert short.status_code == 422
    assert "detect needs lookback + horizon = 8 + 4 = 12" in short.json()["detail"]
    bad = served.post(DETECT + "?threshold=-1", json={"window": WINDOW + actual})
    assert bad.status_code == 422


def test_detect_batch(served):
    body = served.post(DETECT, json={"windows": [WINDOW + [7.0] * 4,
                                                 [*WINDOW, 7.0, 70.0, 7.0, 7.0]]}).json()
    assert [r["anomalous"] for r in body["results"]] == [False, True]


# -- auth -----------------------------------------------------------------------------------
def test_missing_and_invalid_keys_are_401(served):
    client = served.client
    response = client.post(FORECAST, json={"window": WINDOW})
    assert response.status_code == 401 and "missing API key" in response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"
    bad = client.post(FORECAST, json={"window": WINDOW},
                      headers={"Authorization": "Bearer amml_nope_nope"})
    assert bad.status_code == 401
    tampered = served.keys["predict"][:-2] + "00"
    assert client.post(FORECAST, json={"window": WINDOW},
                       headers={"X-API-Key": tampered}).status_code == 401
    assert client.post(FORECAST, json={"window": WINDOW},
                       headers={"X-API-Key": served.keys["predict"]}).status_code == 200
    assert client.get("/v1/models").status_code == 401


def test_scopes_and_model_restrictions_are_403(served):
    read = served.post(FORECAST, key="read", json={"window": WINDOW})
    assert read.status_code == 403 and "'read'" in read.json()["detail"]
    assert served.get("/v1/models", key="read").status_code == 200
    assert served.post(FORECAST, key="admin", json={"window": WINDOW}).status_code == 200
    assert served.post(FORECAST, key="oil-only", json={"window": WINDOW}).status_code == 200
    other = served.post("/v1/models/multi/forecast", key="oil-only",
                        json={"window": [[1, 2]] * LOOKBACK})
    assert other.status_code == 403 and "may not use model 'multi'" in other.text
    listed = served.get("/v1/models", key="oil-only").json()["models"]
    assert [m["name"] for m in listed] == ["oil"]
    assert served.get("/v1/models/multi", key="oil-only").status_code == 403


def test_revoked_key_is_refused_after_a_refresh(served):
    token = served.keys["predict"]
    key_id = token.split("_")[1]
    revoke_key(served.store, key_id)
    wait_until(lambda: served.post(FORECAST, json={"window": WINDOW}).status_code == 401)


def test_new_key_works_at_once(served):
    from amml.serve.auth import create_key

    _, token = create_key(served.store, scope="predict")
    served.state.keys._loaded_at = 0.0  # as if the last refresh were long ago
    response = served.client.post(FORECAST, json={"window": WINDOW},
                                  headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


# -- listing, health, metrics, OpenAPI ------------------------------------------------------
def test_models_listing_and_description(served):
    models = served.get("/v1/models").json()["models"]
    oil = next(m for m in models if m["name"] == "oil")
    assert oil["reference"] == "oil@champion" and oil["version"] == 1 and oil["ready"]
    assert oil["signature"] == {"lookback": 8, "horizon": 4, "columns": ["OT"],
                                "outputs": ["OT"], "freq": "1h"}
    assert served.get("/v1/models/oil@champion").json()["version"] == 1
    assert served.get("/v1/models/nothing").status_code == 404


def test_health_and_ready_need_no_key(served):
    client = served.client
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["models"]["oil@champion"]["version"] == 1


def test_metrics_need_a_read_key(served):
    """/metrics shows which models run and how busy they are: a read key unless opened."""
    client = served.client
    served.post(FORECAST, json={"window": WINDOW})
    served.post(FORECAST, json={"window": WINDOW[:3]})
    refused = client.get("/metrics")
    assert refused.status_code == 401 and "missing API key" in refused.json()["detail"]
    assert client.get("/metrics", headers={"X-API-Key": "amml_x_y"}).status_code == 401
    assert served.get("/metrics", key="predict").status_code == 200  # predict includes read
    text = served.get("/metrics").text
    assert ('amml_requests_total{endpoint="forecast",model="oil@champion",status="200"}'
            in text)
    assert 'status="422"' in text
    assert 'amml_request_latency_seconds_bucket{endpoint="forecast"' in text
    assert 'amml_model_version{model="oil@champion"} 1.0' in text


def test_openapi_document(served):
    schema = served.client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in ("/v1/models/{name}/forecast", "/v1/models/{name}/detect", "/v1/models",
                 "/healthz", "/readyz", "/metrics"):
        assert path in paths
    content = paths["/v1/models/{name}/forecast"]["post"]["requestBody"]["content"]
    assert {"application/json", "text/csv",
            "application/vnd.apache.arrow.stream"} <= set(content)
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}


# -- the request log ------------------------------------------------------------------------
def test_requests_and_predictions_are_logged(served):
    served.post(FORECAST, json={"window": WINDOW})
    served.post(FORECAST, json={"window": WINDOW[:3]})
    served.post(FORECAST, content="OT\n" + "\n".join(map(str, WINDOW)),
                headers={"Content-Type": "text/csv"})
    served.client.post(FORECAST, json={"window": WINDOW})  # no key: counted, not logged
    served.state.predlog.flush()
    with served.store.metadata.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(
            select(prediction_log).order_by(prediction_log.c.id))]
    assert [(r["model"], r["version"], r["endpoint"], r["status"]) for r in rows] == [
        ("oil", 1, "forecast", 200), ("oil", 1, "forecast", 422),
        ("oil", 1, "forecast", 200)]
    assert json.loads(rows[0]["request"]) == {"window": WINDOW}
    assert json.loads(rows[0]["response"])["forecast"] == {"OT": BY_VERSION[1]}
    assert "lookback is 8" in json.loads(rows[1]["response"])["detail"]
    assert json.loads(rows[2]["request"])["windows"] == [[[v] for v in WINDOW]]
    assert all(r["latency_ms"] >= 0 and r["received_at"] > 0 for r in rows)


# -- swaps ----------------------------------------------------------------------------------
def test_alias_move_swaps_the_version(served):
    served.registry.set_alias("oil", "champion", 2, actor="test", reason="promote")
    wait_until(lambda: served.post(FORECAST, json={"window": WINDOW}).json()["version"] == 2)
    body = served.post(FORECAST, json={"window": WINDOW}).json()
    assert body["forecast"] == {"OT": BY_VERSION[2]}
    status = served.get("/v1/models/oil").json()
    assert status["swaps"] == 1 and status["version"] == 2
    assert 'amml_model_swaps_total{model="oil@champion"} 1.0' in served.get("/metrics").text


def test_a_version_failing_its_smoke_test_is_not_served(served):
    from tests.serve.conftest import baseline, signature

    broken = served.registry.register("oil", baseline("naive", ["OT"], ["OT"]),
                                      signature=signature(["OT"], ["OT"], horizon=5))
    served.registry.set_alias("oil", "champion", broken.version, actor="test")
    wait_until(lambda: served.get("/v1/models/oil").json()["error"] is not None)
    status = served.get("/v1/models/oil").json()
    assert status["version"] == 1 and "smoke test" in status["error"]
    assert served.post(FORECAST, json={"window": WINDOW}).json()["version"] == 1
    assert "amml_model_swap_failures_total" in served.get("/metrics").text
    served.registry.set_alias("oil", "champion", 2, actor="test")
    wait_until(lambda: served.post(FORECAST, json={"window": WINDOW}).json()["version"] == 2)


def test_in_flight_request_finishes_on_the_version_it_started_with(served):
    """A request holds the served object it took at its start; swapping the slot meanwhile
    does not change what answers it."""
    import asyncio

    slot = served.state.slots["oil"]
    old = slot.current
    gate = asyncio.Event()

    class SlowRequest:
        headers = {"authorization": f"Bearer {served.keys['predict']}",
                   "content-type": "application/json"}
        query_params: dict = {}

        async def stream(self):
            slot.current = replacement  # the swap lands while the body is being read
            gate.set()
            yield json.dumps({"window": WINDOW}).encode()

    from amml.serve.models import ServedModel

    replacement = ServedModel.build(served.registry.get("oil", 2),
                                    served.registry.load(served.registry.get("oil", 2)))
    response = asyncio.run(served.state.predict("oil", SlowRequest(), "forecast"))
    assert gate.is_set()
    assert response.headers["x-model-version"] == "1"
    assert json.loads(response.body)["forecast"] == {"OT": BY_VERSION[1]}
    slot.current = old
