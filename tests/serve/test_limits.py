"""What a request may cost and what an answer may hold, through FastAPI's TestClient: body,
window, depth and in-flight limits answered 413 / 422 / 503 with a JSON error naming the
limit; only finite JSON out; a scale floor in /detect; a deleted version stops being served;
401s counted in metrics, not written to the request log."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from amml.registry import ModelRegistry
from amml.store.metadata.schema import prediction_log
from tests.serve.conftest import LOOKBACK, WINDOW, baseline, serving, signature, wait_until

FORECAST = "/v1/models/oil/forecast"
DETECT = "/v1/models/oil/detect"


def _limit(response, status: int, name: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["limit"] == name and name in body["detail"], body
    return body


def test_oversized_body_is_413_naming_the_limit(store, tmp_path):
    with serving(store, tmp_path, max_body_bytes=1000) as served:
        declared = served.post(FORECAST, content=b"x" * 5000,
                               headers={"Content-Type": "application/json"})
        body = _limit(declared, 413, "max_body_bytes")
        assert "5000 bytes" in body["detail"] and body["max"] == 1000

        def chunks():  # no Content-Length: counted while it arrives
            for _ in range(50):
                yield b" " * 100

        streamed = served.post(FORECAST, content=chunks(),
                               headers={"Content-Type": "application/json"})
        _limit(streamed, 413, "max_body_bytes")
        assert served.post(FORECAST, json={"window": WINDOW}).status_code == 200


def test_too_many_windows_is_422_naming_the_limit(store, tmp_path):
    with serving(store, tmp_path, max_windows=3) as served:
        body = _limit(served.post(FORECAST, json={"windows": [WINDOW] * 4}), 422,
                      "max_windows")
        assert "4 windows" in body["detail"] and "--max-windows" in body["detail"]
        csv = "window,OT\n" + "".join(f"{w},{v}\n" for w in range(4) for v in WINDOW)
        _limit(served.post(FORECAST, content=csv, headers={"Content-Type": "text/csv"}), 422,
               "max_windows")
        assert len(served.post(FORECAST, json={"windows": [WINDOW] * 3}).json()[
            "forecasts"]) == 3


def test_deep_json_is_422(served):
    deep = b'{"window": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = served.post(FORECAST, content=deep, headers={"Content-Type": "application/json"})
    body = _limit(response, 422, "max_json_depth")
    assert "100001 levels" in body["detail"]
    shallow = b'{"window": ' + b"[" * 20 + b"]" * 20 + b"}"  # within the limit: a plain 422
    answer = served.post(FORECAST, content=shallow, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422 and "limit" not in answer.json()


def test_large_batches_decode_a_window_at_a_time_with_the_same_answer(store, tmp_path):
    """Bodies over bodies.STEPWISE_BYTES take the stepwise decoder; it must agree."""
    windows = [[float(i + j) for j in range(LOOKBACK)] for i in range(6000)]
    with serving(store, tmp_path) as served:
        body = {"columns": ["OT"], "windows": windows, "timestamps": None}
        raw = json.dumps(body, indent=1).encode()
        assert len(raw) > 256 * 1024
        answer = served.post(FORECAST, content=raw, headers={"Content-Type": "application/json"})
        assert answer.status_code == 200, answer.text
        assert [f["OT"][0] for f in answer.json()["forecasts"]] == [w[-1] for w in windows]
        broken = served.post(FORECAST, content=raw[:-5],
                             headers={"Content-Type": "application/json"})
        assert broken.status_code == 422 and "not valid JSON" in broken.json()["detail"]


def test_in_flight_limit_is_503_naming_the_limit(store, tmp_path):
    with serving(store, tmp_path, max_in_flight=2) as served:
        served.state.in_flight.count = 2  # as if two requests were being read or scored
        response = served.post(FORECAST, json={"window": WINDOW})
        _limit(response, 503, "max_in_flight")
        assert response.headers["retry-after"] == "1"
        served.state.in_flight.count = 0
        assert served.post(FORECAST, json={"window": WINDOW}).status_code == 200
        assert served.state.in_flight.count == 0  # every request leaves


def test_non_finite_output_is_never_emitted(store, tmp_path):
    """1e308 overflows the arithmetic: the answer is a 422 saying so, never ``Infinity``."""
    scaled = signature(["OT"], ["OT"], scaler={"OT": {"offset": 0.0, "scale": 1e-3}})
    ModelRegistry(store).register("scaled", baseline("naive", ["OT"], ["OT"]), signature=scaled)
    with serving(store, tmp_path, models=("oil@champion", "scaled")) as served:
        forecast = served.post("/v1/models/scaled/forecast",
                               json={"windows": [WINDOW, [1e308] * LOOKBACK]})
        assert forecast.status_code == 422, forecast.text
        detail = forecast.json()["detail"]
        assert "forecast is infinite at step 0 of OT (window 1)" in detail and "1e+308" in detail
        detect = served.post(DETECT, json={"window": [1e308, -1e308] * 4 + [-1e308] * 4})
        assert detect.status_code == 422, detect.text
        assert "not JSON" not in detect.text and "infinite" in detect.json()["detail"]
        for response in (forecast, detect):
            assert "Infinity" not in response.text and "NaN" not in response.text
        ok = served.post("/v1/models/scaled/forecast", json={"window": WINDOW})
        assert ok.status_code == 200 and ok.json()["forecast"]["OT"] == [7.0] * 4


def test_detect_scale_has_a_floor(served):
    """A constant lookback has no spread; the scale is floored at a fraction of its level
    instead of 1e-9, so a 0.04 wobble on 30 is no alarm (it scored ~4e7) and a jump is."""
    wobble = served.post(DETECT, json={"window": [30.0] * LOOKBACK + [30.04] * 4}).json()
    assert wobble["anomalous"] is False and max(wobble["scores"]["OT"]) < 4
    assert wobble["scale"]["OT"] == pytest.approx(0.03)
    jump = served.post(DETECT, json={"window": [30.0] * LOOKBACK + [30.0, 40.0, 30, 30]})
    assert jump.json()["alarms"] == {"OT": [1]}


def test_deleted_version_stops_being_served(served):
    """Deleting the champion's version (force: its alias goes with it) unloads it: 503 and
    not ready, until the alias points at a live version again. ``multi`` (no alias: the
    newest version) is unloaded when its only version goes."""
    served.registry.delete("oil", 1, actor="test", force=True)
    wait_until(lambda: served.post(FORECAST, json={"window": WINDOW}).status_code == 503)
    refused = served.post(FORECAST, json={"window": WINDOW}).json()["detail"]
    assert "version 1 was deleted" in refused
    assert served.client.get("/readyz").status_code == 503
    assert served.get("/v1/models/oil").json()["version"] is None
    assert 'amml_model_version{model="oil@champion"} 0.0' in served.get("/metrics").text
    served.registry.set_alias("oil", "champion", 2, actor="test")
    wait_until(lambda: served.client.get("/readyz").status_code == 200)
    assert served.post(FORECAST, json={"window": WINDOW}).json()["version"] == 2
    served.registry.delete("multi", 1, actor="test")
    wait_until(lambda: served.client.get("/readyz").status_code == 503)


def test_deleted_pinned_version_stops_being_served(store, tmp_path):
    with serving(store, tmp_path, models=("oil@2",)) as served:
        served.registry.delete("oil", 2, actor="test")
        wait_until(lambda: served.client.get("/readyz").status_code == 503)
        assert served.post(FORECAST, json={"window": WINDOW}).status_code == 503


def test_unauthenticated_requests_are_counted_not_logged(served):
    client = served.client
    for _ in range(3):
        assert client.post(FORECAST, json={"window": WINDOW}).status_code == 401
    assert client.post(FORECAST, json={"window": WINDOW},
                       headers={"X-API-Key": "amml_no_pe"}).status_code == 401
    assert client.get("/v1/models").status_code == 401
    served.post(FORECAST, json={"window": WINDOW})  # one authenticated request
    served.state.predlog.flush()
    with served.store.metadata.engine.connect() as conn:
        statuses = [r.status for r in conn.execute(select(prediction_log.c.status))]
    assert statuses == [200]
    text = served.get("/metrics").text
    assert ('amml_unauthenticated_requests_total{endpoint="forecast",reason="missing_key"} 3.0'
            in text)
    assert ('amml_unauthenticated_requests_total{endpoint="forecast",reason="invalid_key"} 1.0'
            in text)
    assert 'amml_unauthenticated_requests_total{endpoint="models",reason="missing_key"} 1.0' in text


def test_metrics_can_be_opened(store, tmp_path):
    with serving(store, tmp_path, metrics_open=True) as served:
        assert served.client.get("/metrics").status_code == 200
