"""A registered fitted anomaly detector (``task: detect``) is served: ``/detect`` scores the
newest row of each window with the frozen model and threshold, the same numbers the detector
gives over a stream and a workflow's ``detect`` step gives; ``/forecast`` and ``/explain``
refuse it with a 422 that says what it answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from numpy.lib.stride_tricks import sliding_window_view

from amml.ops.base import StepContext
from amml.ops.detectors.base import make_detector
from amml.ops.detectors.detect import Detect
from amml.ops.models.register import model_signature
from amml.store import Store
from amml.store.model_registry import ModelRegistry
from tests.serve.conftest import serving

COLUMNS = ["flow", "pressure"]
SMOOTH = 3  # the detector averages 3 rows: a score needs this row and the 2 before it
DETECT = "/v1/models/pump/detect"


def pump(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    drive = np.sin(np.arange(rows) / 6.0) + rng.normal(0, 0.05, rows)
    return pd.DataFrame({"flow": drive + rng.normal(0, 0.05, rows),
                         "pressure": 2 * drive + rng.normal(0, 0.05, rows)})


@pytest.fixture
def detector_store(store: Store):
    fitted = make_detector("pca_t2q", smooth=SMOOTH).fit(pump(500, 1))
    registry = ModelRegistry(store)
    registry.register("pump", fitted, signature=model_signature(fitted))
    registry.set_alias("pump", "champion", 1)
    return store, fitted


def test_detect_scores_each_window_as_the_detector_and_the_step_do(detector_store,
                                                                   tmp_path: Path) -> None:
    store, fitted = detector_store
    rows = pump(80, 2)
    rows.loc[50:53, "pressure"] *= -1  # the channels stop moving together
    with serving(store, tmp_path, models=("oil@champion", "pump@champion")) as app:
        status = app.get("/v1/models/pump").json()
        windows = sliding_window_view(rows.to_numpy(), SMOOTH, axis=0).transpose(0, 2, 1)
        answer = app.post(DETECT, json={"windows": windows.tolist()})
        single = app.post(DETECT, json={"columns": ["pressure", "flow"],
                                        "window": windows[50][:, ::-1].tolist()})
        forecast = app.post("/v1/models/pump/forecast", json={"window": windows[0].tolist()})
        explain = app.post("/v1/models/pump/explain", json={"window": windows[0].tolist()})
        short = app.post(DETECT, json={"window": windows[0][:2].tolist()})
        moved = app.post(DETECT + "?threshold=0.3", json={"window": windows[0].tolist()})
        oil = app.post("/v1/models/oil/forecast", json={"window": list(range(8))})
    assert status["task"] == "detect"
    assert status["signature"]["lookback"] == SMOOTH and status["signature"]["horizon"] == 0
    assert answer.status_code == 200, answer.text
    served = np.array([r["score"] for r in answer.json()["results"]])
    # the stream: the detector scoring the rows after its reference, row by row
    stream = make_detector("pca_t2q", smooth=SMOOTH).fit(pump(500, 1))
    stream._context = rows.to_numpy()[:SMOOTH - 1]  # start from the same look-back rows
    expected = stream.score(rows.to_numpy()[SMOOTH - 1:])
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(served, fitted.score_windows(windows), rtol=0, atol=0)
    # the workflow step with the registered detector gives the same numbers (after its
    # first SMOOTH - 1 rows, which the stored state scores from the reference's last rows)
    step = Detect().run(StepContext(), rows, fitted=fitted)["out"]["score"].to_numpy()
    np.testing.assert_allclose(step[SMOOTH - 1:], served, rtol=0, atol=1e-12)
    alarms = [i + SMOOTH - 1 for i, r in enumerate(answer.json()["results"]) if r["alarm"]]
    assert set(range(50, 54)) <= set(alarms) and all(48 <= i <= 56 for i in alarms)
    body = single.json()
    assert body["score"] == pytest.approx(served[50]) and body["alarm"] is True
    assert (body["detector"], body["threshold"], body["columns"]) == ("pca_t2q", 0.5, COLUMNS)
    assert forecast.status_code == 422
    assert forecast.json()["detail"] == ("model 'pump' is an anomaly detector (pca_t2q): it "
                                         "answers /v1/models/pump/detect")
    assert explain.status_code == 422 and "explanations are for forecasters" in explain.text
    assert short.status_code == 422
    assert "the detector scores the newest of 3 rows" in short.json()["detail"]
    assert moved.status_code == 422 and "drop ?threshold=" in moved.json()["detail"]
    assert oil.status_code == 200  # the forecasters beside it are unaffected


def test_score_windows_leaves_the_detector_as_it_was(detector_store) -> None:
    _, fitted = detector_store
    before = fitted.to_bytes()
    fitted.score_windows(np.zeros((4, SMOOTH, 2)))
    assert fitted.to_bytes() == before
    with pytest.raises(Exception, match=r"windows must be \(N, at least 3 rows, 2 columns\)"):
        fitted.score_windows(np.zeros((4, 2, 2)))


def test_detector_alarms_flow_into_the_label_queue(detector_store, tmp_path: Path) -> None:
    """A fitted detector's /detect answers feed the label queue like forecast residuals': an
    alarm is a task spanning the scored row (its time), an answer near the threshold an
    uncertain one, the rest nothing."""
    from amml.store.label_queue import queue_detect_answers
    from amml.store.labels import tasks

    store, fitted = detector_store
    rows = pump(60, 3)
    rows.loc[40:41, "pressure"] *= -1
    stamps = pd.date_range("2024-06-01", periods=len(rows), freq="h")
    windows = sliding_window_view(rows.to_numpy(), SMOOTH, axis=0).transpose(0, 2, 1)
    scores = fitted.score_windows(windows)
    alarm, calm = int(np.argmax(scores)), int(np.argmin(scores))
    near = int(np.flatnonzero((scores >= 0.75 * 0.5) & (scores < 0.5))[0])  # a close call
    assert scores[alarm] >= 0.5 and scores[calm] < 0.75 * 0.5
    picked = [alarm, calm, near]
    with serving(store, tmp_path, models=("oil@champion", "pump@champion")) as app:
        for i in picked:
            body = {"window": windows[i].tolist(),
                    "timestamps": [t.isoformat() for t in stamps[i:i + SMOOTH]]}
            assert app.post(DETECT, json=body).status_code == 200
        app.state.predlog.flush()
    found = queue_detect_answers(store, "pump")
    assert len(found["alarm"]) == 1 and len(found["uncertain"]) == 1
    task = next(t for t in tasks(store, model="pump") if t["kind"] == "alarm")
    newest = stamps[alarm + SMOOTH - 1].timestamp()
    assert (task["start"], task["end"], task["column"]) == (newest, newest, "score")
    assert task["score"] == pytest.approx(scores[alarm])
    assert task["details"]["threshold"] == 0.5 and task["details"]["steps"] == [0]
    assert task["details"]["series"]["flow"] == windows[alarm][:, 0].tolist()
    assert queue_detect_answers(store, "pump") == found  # again: nothing twice


@pytest.mark.parametrize("model", ["ECOD", "COPOD", "KNN"])
def test_one_detector_answers_concurrent_requests_as_serial_ones(model: str) -> None:
    """The server scores requests in a thread pool with one detector object. PyOD's ECOD and
    COPOD store each batch's distributions on their estimator: without care, threads would
    read each other's (1,033 of 1,200 answers wrong in the review's check)."""
    from concurrent.futures import ThreadPoolExecutor

    fitted = make_detector("pyod", model=model).fit(pump(400, 4))
    windows = [np.asarray(pump(1, seed).to_numpy())[None] * (1 + seed % 5)
               for seed in range(150)]
    serial = [float(fitted.score_windows(w)[0]) for w in windows]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(3):
            parallel = list(pool.map(lambda w: float(fitted.score_windows(w)[0]), windows))
            assert parallel == serial


def test_a_csv_batch_keeps_its_window_ids_and_row_times(detector_store, tmp_path: Path) -> None:
    """Sensor feeds send CSV: a ``window`` column splits the batch, a ``timestamp`` column
    dates the rows. The answer names each window and the time of the row it scored, and an
    alarm is queued at that time, not at the time it was served."""
    from amml.store.label_queue import queue_detect_answers
    from amml.store.labels import tasks

    store, _ = detector_store
    rows = pump(SMOOTH * 2, 5)
    rows.iloc[SMOOTH:, 1] *= -1  # the second window breaks the relation
    stamps = pd.date_range("2024-07-01", periods=len(rows), freq="h")
    frame = rows.assign(timestamp=stamps.strftime("%Y-%m-%dT%H:%M:%S"),
                        window=["w1"] * SMOOTH + ["w2"] * SMOOTH)
    with serving(store, tmp_path, models=("oil@champion", "pump@champion")) as app:
        answer = app.post(DETECT, content=frame.to_csv(index=False),
                          headers={"Content-Type": "text/csv"})
        app.state.predlog.flush()
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["windows"] == ["w1", "w2"]
    assert [r["timestamp"] for r in body["results"]] == [
        stamps[SMOOTH - 1].isoformat(), stamps[-1].isoformat()]
    assert [r["alarm"] for r in body["results"]] == [False, True]
    queued = queue_detect_answers(store, "pump")
    assert len(queued["alarm"]) == 1
    task = next(t for t in tasks(store, model="pump") if t["kind"] == "alarm")
    assert task["start"] == task["end"] == stamps[-1].timestamp()


def test_a_table_longer_than_the_look_back_is_scored_at_every_row(detector_store,
                                                                 tmp_path: Path) -> None:
    """One window of more rows than the look-back (JSON, series or CSV) is every window of
    look-back rows in it: a score for each row from the look-back-th on, dated by that row,
    the numbers of the batch of those windows; the log keeps the windows scored, so their
    alarms reach the label queue at the rows' times."""
    from amml.store.label_queue import queue_detect_answers
    from amml.store.labels import tasks
    from amml.store.served import served_windows

    store, fitted = detector_store
    rows = pump(40, 6)
    rows.loc[30:32, "pressure"] *= -1
    stamps = pd.date_range("2024-08-01", periods=len(rows), freq="h")
    times = [t.isoformat() for t in stamps]
    expected = fitted.score_windows(
        sliding_window_view(rows.to_numpy(), SMOOTH, axis=0).transpose(0, 2, 1))
    with serving(store, tmp_path, models=("oil@champion", "pump@champion")) as app:
        as_rows = app.post(DETECT, json={"window": rows.to_numpy().tolist(),
                                         "columns": COLUMNS, "timestamps": times})
        as_series = app.post(DETECT, json={"series": {c: rows[c].tolist() for c in COLUMNS}})
        as_csv = app.post(DETECT, content=rows.assign(timestamp=times).to_csv(index=False),
                          headers={"Content-Type": "text/csv"})
        app.state.predlog.flush()
    with serving(store, tmp_path, models=("pump@champion",), max_windows=10) as app:
        too_many = app.post(DETECT, json={"series": {c: rows[c].tolist() for c in COLUMNS}})
    for answer in (as_rows, as_series, as_csv):
        assert answer.status_code == 200, answer.text
        results = answer.json()["results"]
        assert len(results) == len(rows) - SMOOTH + 1
        np.testing.assert_array_equal([r["score"] for r in results], expected)
    assert [r["timestamp"] for r in as_csv.json()["results"]] == [
        t.isoformat() for t in stamps[SMOOTH - 1:]]
    alarms = [i + SMOOTH - 1 for i, r in enumerate(as_rows.json()["results"]) if r["alarm"]]
    assert set(range(30, 33)) <= set(alarms)
    assert too_many.status_code == 422
    assert too_many.json()["detail"].startswith("40 rows make 38 windows of 3 rows, over this "
                                                "server's limit of 10 per request")
    logged = list(served_windows(store, "pump"))
    assert len(logged) == 3 * len(expected)  # the windows scored, each request's
    with store.metadata.engine.connect() as conn:
        logged_rows = conn.execute(sa.text(
            "select request, response from prediction_log where model = 'pump' and status = 200 "
            "order by id")).all()
    requests = [json.loads(request) for request, _ in logged_rows]
    # the monitor reads the same windows back: the newest row of each is a table row
    from amml.monitor.logged import parse_logged

    pairs = parse_logged(logged_rows[0][0], logged_rows[0][1], COLUMNS, ["score"])
    assert len(pairs) == len(expected)
    np.testing.assert_array_equal([window[-1] for window, _ in pairs],
                                  rows.to_numpy()[SMOOTH - 1:])
    np.testing.assert_array_equal([score[0, 0] for _, score in pairs], expected)
    # logged once, as sent, with the look-back the readers slide it by (not 3 times over)
    assert [(r["slide"], len(r["window"]), "timestamps" in r) for r in requests] == [
        (SMOOTH, len(rows), True), (SMOOTH, len(rows), False), (SMOOTH, len(rows), True)]
    queue_detect_answers(store, "pump")
    queued = sorted(t["start"] for t in tasks(store, model="pump") if t["kind"] == "alarm")
    assert {stamps[i].timestamp() for i in alarms} <= set(queued)


def test_a_table_is_held_to_the_values_its_windows_make_and_counts_the_models_columns(
        detector_store, tmp_path: Path) -> None:
    """Sliding makes each row part of look-back windows: the windows of a table may hold as
    many values as the largest body could carry (max_body_bytes / 8), checked before they
    are built. Rows are counted on the model's columns; theirs must agree."""
    store, _ = detector_store
    rows = pump(20, 9).round(2)
    series = {c: rows[c].tolist() for c in COLUMNS}
    with serving(store, tmp_path, models=("pump@champion",), max_body_bytes=800) as app:
        held = app.post(DETECT, json={"series": series})
    with serving(store, tmp_path, models=("pump@champion",)) as app:
        extra = app.post(DETECT, json={"series": {**series, "note": [0.0] * 500}})
        uneven = app.post(DETECT, json={"series": {**series, "pressure": series["pressure"][1:]}})
        explained = app.post(DETECT + "?explain=true",
                             json={"series": {c: pump(300, 9)[c].tolist() for c in COLUMNS}})
    assert held.status_code == 422
    assert held.json()["detail"].startswith(
        "20 rows make 18 windows of 3 rows, 108 values, over this server's limit of 100")
    assert held.json()["limit"] == "max_body_bytes"
    assert extra.status_code == 200 and len(extra.json()["results"]) == 18
    assert uneven.status_code == 422
    assert uneven.json()["detail"] == "series have different lengths: flow 20, pressure 19"
    assert explained.status_code == 422
    assert "takes a table of at most 258 rows (its 256 windows of 3), got 300" in explained.text
