"""``POST /v1/models/NAME/explain`` on the test application (real store, keys, request log)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sqlalchemy import select

from amml.store import Store
from amml.store.metadata.schema import prediction_log
from tests.serve.conftest import HORIZON, LOOKBACK, WINDOW, Served, serving, wait_until


def test_explain_attributes_the_naive_forecast_to_the_last_row(served: Served) -> None:
    r = served.post("/v1/models/oil/explain", json={"window": WINDOW})
    assert r.status_code == 200, r.text
    assert r.headers["X-Model-Version"] == "1"
    body = r.json()
    e = body["explanation"]
    assert body["method"] == "linear" and body["target"] == "mean over the horizon"
    # naive repeats the last value (7) against a zero background: all of it is lag 1's
    assert e["prediction"] == {"OT": 7.0} and e["base"] == {"OT": 0.0}
    assert e["by_channel"] == {"OT": {"OT": 7.0}}
    assert e["by_lag_band"]["OT"] == {"lags 1-1": 7.0, "lags 2-2": 0.0, "lags 3-4": 0.0,
                                      "lags 5-8": 0.0}


def test_explain_batches_steps_full_values_and_ms_models(served: Served) -> None:
    windows = [[[float(i), float(10 * i)] for i in range(LOOKBACK)],
               [[1.0, 2.0]] * LOOKBACK]
    r = served.post("/v1/models/multi/explain?full=true&step=2",
                    json={"windows": windows, "columns": ["a", "b"]})
    assert r.status_code == 200, r.text
    items = r.json()["explanations"]
    assert len(items) == 2 and r.json()["target"] == "horizon step 2"
    assert items[0]["by_channel"]["b"] == {"a": 0.0, "b": 70.0}  # the MS output reads b only
    assert items[1]["prediction"] == {"b": 2.0}
    assert items[0]["values"]["b"]["b"][-1] == 70.0 and len(items[0]["values"]["b"]["a"]) == 8


def test_explain_png_errors_and_auth(served: Served) -> None:
    r = served.post("/v1/models/oil/explain?format=png", json={"window": WINDOW})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content[:8] == b"\x89PNG\r\n\x1a\n"
    short = served.post("/v1/models/oil/explain", json={"window": WINDOW[:5]})
    assert short.status_code == 422
    assert "window has 5 rows, the model's lookback is 8" in short.json()["detail"]
    step = served.post(f"/v1/models/oil/explain?step={HORIZON + 1}", json={"window": WINDOW})
    assert step.status_code == 422 and "between 1 and the horizon 4" in step.json()["detail"]
    assert served.client.post("/v1/models/oil/explain", json={"window": WINDOW}
                              ).status_code == 401
    assert served.post("/v1/models/oil/explain", key="read",
                       json={"window": WINDOW}).status_code == 403
    assert served.post("/v1/models/nope/explain", json={"window": WINDOW}).status_code == 404


def test_explanations_are_logged_like_predictions(store: Store, tmp_path: Path) -> None:
    with serving(store, tmp_path) as app:
        assert app.post("/v1/models/oil/explain", json={"window": WINDOW}).status_code == 200

        def logged() -> list:
            with store.metadata.engine.connect() as conn:
                return conn.execute(select(prediction_log).where(
                    prediction_log.c.endpoint == "explain")).all()

        wait_until(lambda: bool(logged()))
    row = logged()[0]
    assert row.model == "oil" and row.status == 200
    assert json.loads(row.request) == {"window": WINDOW}
    assert json.loads(row.response)["explanation"]["prediction"] == {"OT": 7.0}
    assert np.isfinite(row.latency_ms)
