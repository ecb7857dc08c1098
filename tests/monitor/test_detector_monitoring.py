"""``amml monitor`` watches a served anomaly detector (``task: detect``) as it watches a
forecaster: the inputs it is sent, and the distribution of the scores it answers.

A real store and the test application serve a PCA T²+Q detector fitted on a pump's normal
run. Clients send sliding windows; after a while the flow sensor reads 1.5 units high (the
two channels stop moving together). The monitor reads ``/detect`` rows from the prediction
log, fits its tests on the first answers and finds the change near where it began: in the
flow column (``input-ks``) and in the scores (``prediction-ks``). SHAP attribution and error
drift do not apply to a detector and are left out, not failed on."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from sqlalchemy import func, select
from typer.testing import CliRunner

from amml import ConfigurationError
from amml.cli.main import app as cli
from amml.monitor.pipeline import DETECTOR_DRIFT
from amml.monitor.service import MonitorConfig, MonitorService
from amml.ops.detectors.base import make_detector
from amml.ops.models.register import model_signature
from amml.store import Store
from amml.store.drift_events import DriftRecords
from amml.store.metadata.schema import prediction_log
from amml.store.model_registry import ModelRegistry
from amml.store.prediction_log import PredictionLogTable
from tests.serve.conftest import serving, wait_until

SMOOTH = 3  # the detector's window: it averages 3 rows
BATCH, BATCHES, DRIFT_BATCH = 50, 12, 10  # windows 500.. see the shifted flow
SHIFT = 1.5
REFERENCE, WINDOW = 400, 100  # the monitor's reference answers and test window


def pump(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    drive = np.sin(np.arange(rows) / 6.0) + rng.normal(0, 0.05, rows)
    return pd.DataFrame({"flow": drive + rng.normal(0, 0.05, rows),
                         "pressure": 2 * drive + rng.normal(0, 0.05, rows)})


def shifted_run() -> np.ndarray:
    rows = pump(SMOOTH - 1 + BATCH * BATCHES, 2).to_numpy(copy=True)
    rows[SMOOTH - 1 + BATCH * DRIFT_BATCH:, 0] += SHIFT
    return rows


@pytest.fixture
def detector_store(store: Store) -> Store:
    fitted = make_detector("pca_t2q", smooth=SMOOTH).fit(pump(500, 1))
    registry = ModelRegistry(store)
    registry.register("pump", fitted, signature=model_signature(fitted))
    registry.set_alias("pump", "champion", 1)
    return store


def test_monitor_finds_input_and_score_drift_of_a_served_detector(detector_store: Store,
                                                                  tmp_path: Path) -> None:
    store = detector_store
    windows = sliding_window_view(shifted_run(), SMOOTH, axis=0).transpose(0, 2, 1)
    with serving(store, tmp_path, models=("oil@champion", "pump@champion")) as app:
        for b in range(BATCHES):
            body = {"windows": windows[b * BATCH:(b + 1) * BATCH - 1].tolist()}
            assert app.post("/v1/models/pump/detect", json=body).status_code == 200
            # the batch's last window alone (a single answer holds its score itself), and a
            # forecaster beside it: neither is lost nor mixed in
            single = {"columns": ["pressure", "flow"],
                      "window": windows[(b + 1) * BATCH - 1][:, ::-1].tolist()}
            assert app.post("/v1/models/pump/detect", json=single).status_code == 200
            assert app.post("/v1/models/oil/forecast",
                            json={"window": list(range(8))}).status_code == 200

        def logged() -> int:
            with store.metadata.engine.connect() as conn:
                return conn.execute(select(func.count()).select_from(prediction_log)).scalar()

        wait_until(lambda: logged() == 3 * BATCHES)
    with store.metadata.engine.connect() as conn:
        times = [row.received_at for row in conn.execute(
            select(prediction_log).where(prediction_log.c.model == "pump",
                                         prediction_log.c.endpoint == "detect")
            .order_by(prediction_log.c.id))][::2]  # each batch's time

    service = MonitorService(store, MonitorConfig(model="pump@champion", reference=REFERENCE,
                                                  window=WINDOW))
    scored = service.poll_once()
    assert len(scored) == BATCH * BATCHES - REFERENCE  # every window, batch and single
    assert service.version == 1 and service.outputs == ["score"]
    assert sorted(service.pipeline.detectors) == sorted(DETECTOR_DRIFT)
    events = DriftRecords(store).events("pump")
    first: dict[str, dict] = {}
    for event in events:
        first.setdefault(event["detector"], event)
    assert {"input-ks", "input-wasserstein", "prediction-ks"} <= set(first), first.keys()
    assert first["input-ks"]["features"] == ["flow"]  # the pressure sensor did not move
    for name in ("input-ks", "prediction-ks"):
        # the shift began in batch DRIFT_BATCH: its point is that request's time, or one of
        # the few windows just before it
        assert times[DRIFT_BATCH - 1] <= first[name]["drift_point"] <= times[DRIFT_BATCH], name
        assert first[name]["confidence"] > 0.9
    assert not any(e["detected_at"] < times[DRIFT_BATCH] for e in events)  # no false alarm
    recorded = {s["detector"] for s in DriftRecords(store).scores("pump")}
    assert recorded == set(DETECTOR_DRIFT)  # no attribution, no error drift
    shown = CliRunner().invoke(cli, ["monitor", "pump@champion", "--rounds", "1",
                                     "--reference", str(REFERENCE), "--window", str(WINDOW)])
    assert shown.exit_code == 0, shown.output
    assert ("(version 1 watched last; an anomaly detector: attribution, error-adwin, "
            "error-page_hinkley do not apply)") in " ".join(shown.output.split())


@pytest.mark.parametrize("watched", ["pump@champion", "pump"])
def test_a_detector_with_only_forecaster_drift_detectors_is_refused(detector_store: Store,
                                                                    watched: str) -> None:
    """No later round could watch what was asked for: the service stops with the reason (the
    CLI prints it) instead of logging it once and idling, and is left as it was."""
    PredictionLogTable(detector_store).append([dict(
        model="pump", version=1, endpoint="detect", received_at=1_600_000_000.0,
        latency_ms=1.0, status=200, request="{}", response="{}")])
    service = MonitorService(detector_store, MonitorConfig(
        model=watched, reference=100, window=25, interval=0.01,
        detectors=["attribution", "error-adwin"]))
    with pytest.raises(ConfigurationError, match=r"pump@1 is an anomaly detector \(pca_t2q\)"
                       r".*none applies; use input-ks"):
        service.run(rounds=3)
    assert service.version is None and service.pipeline is None and not service.references
    shown = CliRunner().invoke(cli, ["monitor", watched, "--rounds", "3", "--interval", "0.01",
                                     "--detector", "attribution"])
    assert shown.exit_code != 0 and "none applies; use input-ks" in " ".join(
        shown.output.split())


def test_live_rows_of_the_previous_version_are_not_mixed_into_a_new_one(detector_store: Store
                                                                        ) -> None:
    """Live rows are kept until they fill a window; after a swap they are the previous
    version's columns (here in another order), so the new version starts from fresh rows."""
    registry = ModelRegistry(detector_store)
    swapped = make_detector("pca_t2q", smooth=SMOOTH).fit(pump(500, 1)[["pressure", "flow"]])
    registry.register("pump", swapped, signature=model_signature(swapped))
    service = MonitorService(detector_store, MonitorConfig(  # rows put where MQTT puts them
        model="pump@champion", reference=REFERENCE, window=WINDOW, mqtt_url="mqtt://unused"))
    rows = pump(2 * SMOOTH, 3)
    for flow, pressure in rows.to_numpy()[:SMOOTH - 1]:  # a window short of full
        service._live.put({"flow": flow, "pressure": pressure})
    assert service.poll_once() == [] and service.version == 1
    registry.set_alias("pump", "champion", 2)
    service._live.put({"flow": 1.0, "pressure": 2.0})
    service.poll_once()
    assert service.version == 2 and service.columns == ["pressure", "flow"]
    assert service.pipeline._reference == []  # no window of rows from both versions
    for flow, pressure in rows.to_numpy()[SMOOTH:2 * SMOOTH - 1]:
        service._live.put({"flow": flow, "pressure": pressure})
    service.poll_once()
    (_, window, _, _), = service.pipeline._reference
    expected = [[2.0, 1.0], *rows[["pressure", "flow"]].to_numpy()[SMOOTH:2 * SMOOTH - 1]]
    np.testing.assert_array_equal(window, expected)


@pytest.mark.parametrize("watched", ["pump@champion", "pump"])
def test_live_mqtt_rows_are_scored_by_the_detector(detector_store: Store, mqtt_url: str,
                                                   watched: str) -> None:
    """On MQTT the monitor scores each window itself, with the served detector's numbers:
    the version the alias names, or (``NAME``) the one the log shows answering /detect, not
    a newer one registered since and not served."""
    import paho.mqtt.client as mqtt

    registry = ModelRegistry(detector_store)
    newer = make_detector("pca_t2q", smooth=SMOOTH).fit(pump(500, 7) * 3.0)
    registry.register("pump", newer, signature=model_signature(newer))
    PredictionLogTable(detector_store).append([dict(
        model="pump", version=1, endpoint="detect", received_at=1_600_000_000.0,
        latency_ms=1.0, status=200, request="{}", response="{}")])
    rows = shifted_run()
    topic = f"amml-test/{time.time_ns()}"
    service = MonitorService(detector_store, MonitorConfig(
        model=watched, reference=REFERENCE, window=WINDOW, mqtt_url=mqtt_url,
        mqtt_topic=topic,
        detectors=["input-ks", "prediction-ks"]))
    service.start_sources()
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    publisher.connect("127.0.0.1", 1883)
    publisher.loop_start()
    scored: list = []
    try:
        time.sleep(0.5)  # the subscription is in place
        for i, (flow, pressure) in enumerate(rows):
            publisher.publish(topic, json.dumps({"flow": flow, "pressure": pressure,
                                                 "time": 1_700_000_000.0 + i}),
                              qos=1).wait_for_publish()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(scored) < BATCH * BATCHES - REFERENCE:
            scored += service.poll_once()
            time.sleep(0.05)
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        service.close()
    assert len(scored) == BATCH * BATCHES - REFERENCE and service.version == 1
    fitted = ModelRegistry(detector_store).load(ModelRegistry(detector_store).get("pump", 1))
    windows = sliding_window_view(rows, SMOOTH, axis=0).transpose(0, 2, 1)
    np.testing.assert_allclose(  # the reference holds the scores the server would answer
        [forecast[0, 0] for _, _, forecast, _ in service.pipeline._reference],
        fitted.score_windows(windows[:REFERENCE]), rtol=0, atol=1e-12)
    events = DriftRecords(detector_store).events("pump")
    assert {e["detector"] for e in events} == {"input-ks", "prediction-ks"}
    drift_at = 1_700_000_000.0 + SMOOTH - 1 + BATCH * DRIFT_BATCH
    assert all(e["detected_at"] >= drift_at and e["drift_point"] >= drift_at - 10
               for e in events), events
