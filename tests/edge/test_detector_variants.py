"""A registered fitted detector with an ONNX path exports as a signed, ledgered edge variant of
its version (``task: detect``), checked against the detector's own window scores; one
without an ONNX path is refused naming the detectors that have one."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from amml._exceptions import ConfigurationError
from amml.edge.export import export_variant, public_key_hex
from amml.edge.runner import load_verified
from amml.ops.detectors.base import make_detector
from amml.ops.models.register import model_signature
from amml.registry import ModelRegistry
from amml.store import Store
from amml.store.devices import variants
from amml.store.keys import KeyRing
from amml.store.ledger import Ledger

WINDOW = 16


def two_channels(n: int = 700, seed: int = 0) -> pd.DataFrame:
    t = np.arange(n)
    rows = np.column_stack([np.sin(t / 6), np.cos(t / 6)])
    rows = rows + 0.05 * np.random.default_rng(seed).standard_normal(rows.shape)
    rows[650:660, 1] *= -1  # the phase relation breaks, each column in its usual range
    return pd.DataFrame(rows, columns=["a", "b"])


def test_a_fitted_detector_exports_as_a_signed_detect_variant(store: Store, tmp_path) -> None:
    keyring = KeyRing(tmp_path / "keys")
    rows = two_channels()
    detector = make_detector("conv_autoencoder", window=WINDOW, epochs=3).fit(rows[:400])
    ModelRegistry(store).register("pump", detector, signature=model_signature(detector))
    fp32 = export_variant(store, "pump@1", "fp32", keyring=keyring)
    int8 = export_variant(store, "pump@1", "int8", keyring=keyring)
    assert [v.format for v in variants(store, "pump", 1)] == ["fp32", "int8"]
    manifest = json.loads(fp32.variant.manifest)
    assert (manifest["task"], manifest["detector"], manifest["columns"], manifest["lookback"],
            manifest["outputs"]) == ("detect", "conv_autoencoder", ["a", "b"], WINDOW, ["score"])
    assert fp32.parity_max_abs < 1e-5 and 0 < int8.parity_max_abs < 0.05  # measured, not 0
    assert manifest["parity_max_abs"] == fp32.parity_max_abs
    ledger = Ledger(store, "edge:pump", keyring)
    assert ledger.verify().ok and [e.body["extra"]["format"] for e in ledger.entries()] == [
        "fp32", "int8"]

    # the device: verified, then it scores the rows as the registered detector does
    trusted = [bytes.fromhex(public_key_hex(keyring))]
    loaded = load_verified(fp32.model_bytes, fp32.variant.manifest, fp32.variant.signature,
                           trusted)
    assert loaded.task == "detect" and loaded.lookback == WINDOW
    windows = sliding_window_view(rows.to_numpy()[400:], WINDOW, axis=0).transpose(0, 2, 1)
    np.testing.assert_allclose(loaded.run(windows), detector.score_windows(windows), atol=1e-5)
    scores = detector.score_windows(windows)
    before = scores[:650 - 400 - WINDOW + 1]  # windows that end before the break
    assert scores[650 - 400 - WINDOW + 1:660 - 400].max() > before.max()


def test_a_detector_without_an_onnx_path_is_refused(store: Store, tmp_path) -> None:
    detector = make_detector("pca_t2q").fit(two_channels()[:300])
    ModelRegistry(store).register("plain", detector, signature=model_signature(detector))
    with pytest.raises(ConfigurationError, match="'pca_t2q' has no ONNX path"):
        export_variant(store, "plain@1", "int8", keyring=KeyRing(tmp_path / "keys"))
    assert variants(store, "plain", 1) == []


def test_a_detector_keeping_too_few_rows_to_check_is_refused(store: Store, tmp_path) -> None:
    detector = make_detector("conv_autoencoder", window=WINDOW, epochs=1, history=8)
    detector.fit(two_channels()[:300])
    ModelRegistry(store).register("short", detector, signature=model_signature(detector))
    with pytest.raises(ConfigurationError, match="keeps 8 reference rows, fewer than the 16"):
        export_variant(store, "short@1", "fp32", keyring=KeyRing(tmp_path / "keys"))
