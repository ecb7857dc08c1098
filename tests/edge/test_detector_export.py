"""Detectors with an ONNX path: the conv and LSTM autoencoders and forecast-residual detection
(over every forecaster kind) export to graphs whose ONNX Runtime scores match the PyTorch
detector's; int8 keeps the alarms; the runner publishes a detector graph's scores from MQTT
rows (real Mosquitto), batching rows that arrive together."""

from __future__ import annotations

import json
import queue
import uuid

import numpy as np
import pytest

from amml._exceptions import ConfigurationError
from amml.edge.detector_export import (
    detector_manifest,
    detector_onnx,
    detector_parity,
    span_of,
)
from amml.edge.export import convert
from amml.ops.detectors.base import make_detector
from amml.ops.models.contract import Training, kind_names, make_model
from amml.store.keys import KeyRing, public_hex
from amml.store.ledger import canonical_body


def _two_channels(n: int = 800, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    rows = np.column_stack([np.sin(t / 6), np.cos(t / 6)])
    rows = rows + 0.05 * np.random.default_rng(seed).standard_normal(rows.shape)
    rows[650:660, 1] *= -1  # the phase relation breaks, each column in its usual range
    return rows


def _one_channel(n: int = 600, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    values = np.sin(2 * np.pi * t / 24) + np.random.default_rng(seed).normal(0, 0.1, n)
    values[500] = -values[500]
    return values


@pytest.mark.parametrize(("name", "params"), [
    ("conv_autoencoder", {"window": 16, "epochs": 3}),
    ("conv_autoencoder", {"window": 16, "epochs": 2, "smooth": 3}),
    ("lstm_autoencoder", {"window": 8, "epochs": 2}),
    ("lstm_autoencoder", {"window": 8, "epochs": 2, "smooth": 4}),
])
def test_autoencoder_graph_scores_as_the_detector(name: str, params: dict) -> None:
    rows = _two_channels()
    detector = make_detector(name, **params).fit(rows[:400])
    data = detector_onnx(detector)
    error, got, expected = detector_parity(detector, data, rows[:400], rows[400:])
    assert np.isfinite(expected).all() and len(got) == 400
    assert error < 1e-5, f"{name} {params}: max abs error {error}"
    assert span_of(detector) == params["window"] + params.get("smooth", 1) - 1
    # int8 moves the scores a little, not the alarms of the broken stretch
    error8, got8, _ = detector_parity(detector, convert(data, "int8"), rows[:400], rows[400:])
    assert error8 < 0.05
    assert (got8[250:262] >= 0.5).any() == (expected[250:262] >= 0.5).any()


@pytest.mark.parametrize("kind", kind_names())
def test_forecast_residual_graph_scores_as_the_detector_for_every_kind(kind: str) -> None:
    values = _one_channel()
    detector = make_detector("forecast_residual", forecaster=kind, lookback=24, season=24,
                             scoring="window", warmup=200, refit=0, epochs=1)
    for i, value in enumerate(values[:300]):
        detector.update(i, float(value))
    data = detector_onnx(detector)
    error, got, expected = detector_parity(detector, data, values[:300], values[300:])
    assert error < 1e-4, f"{kind}: max abs error {error}"
    assert int(np.argmax(got)) == int(np.argmax(expected))
    assert got[200] > np.median(got)  # the flipped value stands out, even after one epoch


def test_forecast_residual_with_a_given_model() -> None:
    values = _one_channel()
    model = make_model("nlinear", lookback=24, horizon=1, columns=["v"], outputs=["v"])
    view = np.lib.stride_tricks.sliding_window_view(values[:300], 25)
    model.fit(view[:, :24, None], view[:, 24:, None], training=Training(epochs=2, seed=0))
    detector = make_detector("forecast_residual", model=model, scoring="window")
    data = detector_onnx(detector)
    error, got, _ = detector_parity(detector, data, values[:300], values[300:])
    assert error < 1e-4 and got[200] > 2 * np.median(got)


def test_what_has_no_onnx_path_is_refused() -> None:
    online = make_detector("forecast_residual", forecaster="naive", lookback=8, warmup=20)
    for i, value in enumerate(_one_channel()[:40]):
        online.update(i, float(value))
    with pytest.raises(ConfigurationError, match="only scoring='window'"):
        detector_onnx(online)
    with pytest.raises(ConfigurationError, match="no ONNX path"):
        detector_onnx(make_detector("rolling_mad"))
    with pytest.raises(ConfigurationError, match="fit"):
        detector_onnx(make_detector("conv_autoencoder", window=8))


def test_runner_publishes_detector_scores_batching_a_burst(mqtt_url: str, tmp_path) -> None:
    import paho.mqtt.client as mqtt

    from amml.edge.runner import Runner, Settings, load_verified

    rows = _two_channels()
    detector = make_detector("conv_autoencoder", window=16, epochs=3).fit(rows[:400])
    data = detector_onnx(detector)
    manifest = canonical_body(detector_manifest(detector, data, name="pump-ae",
                                                columns=["a", "b"]))
    key = KeyRing(tmp_path / "keys").active()
    trusted = [bytes.fromhex(public_hex(key.public))]
    loaded = load_verified(data, manifest, key.sign(manifest.encode()), trusted)
    assert loaded.task == "detect" and loaded.lookback == 16

    topic = f"amml-test/{uuid.uuid4().hex[:8]}"
    runner = Runner(Settings(server="http://127.0.0.1:9", token="unused", trusted=trusted,
                             topic=f"{topic}/in", out=f"{topic}/out", max_batch=8))
    runner.install(loaded)
    received: queue.Queue = queue.Queue()
    listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    listener.on_message = lambda _c, _u, m: received.put(json.loads(m.payload))
    listener.connect("127.0.0.1", 1883)
    listener.subscribe(f"{topic}/out")
    listener.loop_start()
    runner.start()
    try:
        for _ in range(100):  # connected (and, a moment later, subscribed): rows count
            if runner.counters.connects:
                break
            runner.stopping.wait(0.1)
        assert runner.counters.connects >= 1
        runner.stopping.wait(1.0)
        # 15 rows of context (no window yet), then 40 rows to score in one message
        listener.publish(f"{topic}/in", json.dumps({"rows": rows[385:400].tolist()}))
        listener.publish(f"{topic}/in", json.dumps({"rows": rows[400:440].tolist()}))
        bodies = [received.get(timeout=20) for _ in range(40)]
    finally:
        runner.stop()
        listener.loop_stop()
        listener.disconnect()
    _, _, expected = detector_parity(detector, data, rows[:400], rows[400:440])
    scores = np.array([b["score"] for b in sorted(bodies, key=lambda b: b["seq"])])
    assert np.abs(scores - expected).max() < 1e-5
    assert all(b["model"] == "pump-ae@1/fp32" for b in bodies)
    assert runner.counters.largest_batch > 1  # the 40 rows ran in batches of up to 8
    assert max(b["batch"] for b in bodies) <= 8 and runner.counters.dropped == 0
