"""``/detect``, a workflow's ``detect`` op and ``amml bench`` score with one detector object:
``forecast_residual`` in ``window`` scoring. Over the same series and model they agree."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from amml.ops.base import StepContext
from amml.ops.detectors.detect import Detect
from amml.ops.detectors.residual import ForecastResidualDetector
from amml.serve.answers import detector_for
from tests.serve.conftest import HORIZON, LOOKBACK, baseline

DETECT = "/v1/models/oil/detect"


def series(n: int = 60) -> np.ndarray:
    rng = np.random.default_rng(4)
    values = 20 + 2 * np.sin(np.arange(n) / 3) + rng.normal(0, 0.3, n)
    values[40] += 9.0
    return values


def test_detect_endpoint_and_detector_agree(served):
    """Every row's first-step score from ``/detect`` (oil v1: naive, lookback 8) is the raw
    score of the ``forecast_residual`` detector streaming over the series with the same model,
    and an alarm exactly where the detector's calibrated score passes 0.5."""
    values = series()
    starts = range(0, len(values) - LOOKBACK - HORIZON + 1)
    body = served.post(DETECT, json={"windows": [values[s:s + LOOKBACK + HORIZON].tolist()
                                                 for s in starts]})
    assert body.status_code == 200, body.text
    first_step = np.array([r["scores"]["OT"][0] for r in body.json()["results"]])
    alarmed = np.array([0 in r["alarms"]["OT"] for r in body.json()["results"]])

    model = baseline("naive", ["OT"], ["OT"])
    detector = ForecastResidualDetector(model=model, scoring="window", threshold=4.0)
    scores = detector.score_series(values)
    rows = np.array([s + LOOKBACK for s in starts])
    assert np.isnan(scores[:LOOKBACK]).all()  # no lookback yet: no score, never 0
    np.testing.assert_allclose(scores[rows], first_step / (first_step + 4.0), rtol=1e-12)
    np.testing.assert_array_equal(scores[rows] > 0.5, alarmed)
    assert alarmed[list(rows).index(40)] and alarmed.sum() <= 2

    # the op, from a workflow, with the same detector and parameters
    table = pd.DataFrame({"OT": values})
    op = Detect(detector="forecast_residual",
                params={"model": model, "scoring": "window", "threshold": 4.0},
                threshold={"kind": "fixed", "value": 0.5})
    out = op.run(StepContext(), table)["out"]
    np.testing.assert_allclose(out["score"].to_numpy(), scores, equal_nan=True)


def test_server_builds_the_registered_detector(served):
    slot = served.state.slots["oil"]
    detector = detector_for(slot.current, 6.5)
    assert isinstance(detector, ForecastResidualDetector)
    assert (detector.scoring, detector.threshold, detector.lookback) == ("window", 6.5, LOOKBACK)
    raw, scale = detector.score_windows(np.zeros((1, LOOKBACK, 1)), np.ones((1, 1, 1)),
                                        np.zeros((1, 1, 1)))
    assert scale[0, 0] == pytest.approx(1e-6) and raw[0, 0, 0] == pytest.approx(1e6)
    assert detector.calibrate(np.array([6.5]))[0] == pytest.approx(0.5)


def test_a_csv_body_s_alarms_are_queued_at_the_rows_they_scored(store, tmp_path):
    """A CSV body is logged as its parsed windows, without their times: the answer carries
    the scored rows' times, so the label queue dates an alarm at the row, not at the moment
    it was served (a JSON body with ``timestamps`` gets the same answer field)."""
    from amml.store.label_queue import queue_detect_answers
    from amml.store.labels import tasks
    from tests.serve.conftest import serving

    values = series()[30:30 + LOOKBACK + HORIZON]  # the spike is the 3rd of the scored rows
    stamps = pd.date_range("2024-03-01", periods=len(values), freq="h")
    frame = pd.DataFrame({"timestamp": stamps.strftime("%Y-%m-%dT%H:%M:%S"), "OT": values})
    with serving(store, tmp_path) as app:
        answer = app.post(DETECT, content=frame.to_csv(index=False),
                          headers={"Content-Type": "text/csv"})
        app.state.predlog.flush()
    assert answer.status_code == 200, answer.text
    scored = [t.isoformat() for t in stamps[LOOKBACK:]]
    assert answer.json()["timestamps"] == scored
    queued = queue_detect_answers(store, "oil")
    assert len(queued["alarm"]) == 1
    task = next(t for t in tasks(store, model="oil") if t["kind"] == "alarm")
    assert task["start"] == stamps[40 - 30].timestamp()


@pytest.mark.parametrize("unit", [1, 1000])  # epoch seconds, or milliseconds
def test_numeric_timestamps_are_epoch_seconds_or_milliseconds(store, tmp_path, unit):
    """A client's clock sends numbers: epoch seconds (milliseconds above 1e11), the rule the
    label queue reads them by; pandas alone would read them as nanoseconds in 1970."""
    from amml.store.label_queue import queue_detect_answers
    from amml.store.labels import tasks
    from tests.serve.conftest import serving

    values = series()[30:30 + LOOKBACK + HORIZON]
    stamps = pd.date_range("2024-03-01", periods=len(values), freq="h")
    epochs = [int(t.timestamp()) * unit for t in stamps]
    with serving(store, tmp_path) as app:
        answer = app.post(DETECT, json={"window": values.tolist(), "timestamps": epochs})
        forecast = app.post("/v1/models/oil/forecast",
                            json={"window": values[:LOOKBACK].tolist(),
                                  "timestamps": epochs[:LOOKBACK]})
        app.state.predlog.flush()
    assert answer.status_code == 200, answer.text
    assert answer.json()["timestamps"] == [t.isoformat() for t in stamps[LOOKBACK:]]
    assert forecast.json()["timestamps"][0] == stamps[LOOKBACK].isoformat()
    queue_detect_answers(store, "oil")
    task = next(t for t in tasks(store, model="oil") if t["kind"] == "alarm")
    assert task["start"] == stamps[40 - 30].timestamp()
