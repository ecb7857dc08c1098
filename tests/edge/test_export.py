"""ONNX export of every model kind matches the model (onnxruntime against predict_windows);
int8 (dynamic and static), fp16 variants stay close; variants are signed, ledgered children of
their version, and a device refuses a model whose signature or bytes do not check out."""

from __future__ import annotations

import json

import numpy as np
import pytest

from amml.edge.export import Evaluation, convert, export_variant, public_key_hex, run_onnx
from amml.edge.runner import EdgeError, load_verified
from amml.ops.models.contract import Training, kind_names, make_model
from amml.ops.models.onnx_export import onnx_bytes, onnx_metadata
from amml.registry import ModelRegistry
from amml.store import Store
from amml.store.devices import variants
from amml.store.keys import KeyRing
from amml.store.ledger import Ledger

LOOKBACK, HORIZON, COLUMNS = 32, 8, ["a", "b"]


def _windows(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Windows of a noisy daily sine on two channels: (N, L, 2) inputs, (N, H, 2) targets."""
    rng = np.random.default_rng(seed)
    t = np.arange(count + LOOKBACK + HORIZON)
    series = np.stack([np.sin(t * 2 * np.pi / 24), np.cos(t * 2 * np.pi / 24)], axis=1)
    series = series + 0.05 * rng.standard_normal(series.shape)
    view = np.lib.stride_tricks.sliding_window_view(series, LOOKBACK + HORIZON, axis=0)
    view = view.transpose(0, 2, 1)[:count]
    return view[:, :LOOKBACK].copy(), view[:, LOOKBACK:].copy()


def _trained(kind: str, outputs: list[str] = COLUMNS) -> object:
    model = make_model(kind, lookback=LOOKBACK, horizon=HORIZON, columns=COLUMNS,
                       outputs=outputs)
    x, y = _windows(300)
    picks = [COLUMNS.index(o) for o in outputs]
    model.fit(x, y[:, :, picks], training=Training(epochs=1, seed=0))
    return model


@pytest.mark.parametrize("kind", kind_names())
def test_fp32_export_matches_the_model_for_every_kind(kind: str) -> None:
    for outputs in (COLUMNS, ["b"]):  # all channels, and one target of several (MS)
        model = _trained(kind, outputs)
        x, _ = _windows(40, seed=1)
        data = onnx_bytes(model)
        error = float(np.abs(run_onnx(data, x) - model.predict_windows(x)).max())
        assert error < 1e-4, f"{kind} {outputs}: max abs error {error}"
        meta = onnx_metadata(data)
        assert meta["amml.kind"] == kind and json.loads(meta["outputs"]) == outputs


@pytest.mark.parametrize("kind", kind_names())
def test_int8_and_fp16_stay_close_to_fp32_for_every_kind(kind: str) -> None:
    model = _trained(kind)
    x, _ = _windows(200, seed=2)
    fp32 = onnx_bytes(model)
    reference = run_onnx(fp32, x)
    spread = float(np.abs(reference).max())
    for fmt in ("fp16", "int8", "int8-static"):
        data = convert(fp32, fmt, calibration=x[:64])
        got = run_onnx(data, x)
        error = float(np.abs(got - reference).max())
        # a planted saturation (8-bit weights on a CPU without VNNI) gave 10-20x this
        assert error < 0.1 * spread, f"{kind} {fmt}: max abs error {error} of {spread}"
        assert onnx_metadata(data)["amml.kind"] == kind
        # the runner batches what arrives together: a window's forecast must not depend on
        # its batch. Dynamic int8 quantizes activations with one scale per call, over the
        # whole batch, so there it may move, within int8's error; the others are exact
        one_by_one = np.concatenate([run_onnx(data, x[i : i + 1]) for i in range(0, 200, 25)])
        tolerance = 0.1 * spread if fmt == "int8" else 1e-5
        assert np.abs(got[::25] - one_by_one).max() <= tolerance, f"{kind} {fmt}: batch"


def test_variant_is_a_signed_ledgered_child_of_its_version(store: Store, tmp_path) -> None:
    keyring = KeyRing(tmp_path / "keys")
    model = _trained("nlinear")
    ModelRegistry(store).register("oil", model, signature={"scaler": {
        "a": {"offset": 1.0, "scale": 2.0}, "b": {"offset": 0.0, "scale": 1.0}}})
    x, y = _windows(120, seed=3)
    result = export_variant(store, "oil@1", "int8", calibration=x[:32],
                            evaluation=Evaluation(x, y), keyring=keyring)
    variant = result.variant
    assert (variant.name, variant.version, variant.format) == ("oil", 1, "int8")
    assert variants(store, "oil", 1) == [variant]
    assert variant.size == len(result.model_bytes) and variant.mse_delta_pct is not None
    manifest = json.loads(variant.manifest)
    assert manifest["scaler"]["a"] == {"offset": 1.0, "scale": 2.0}
    ledger = Ledger(store, "edge:oil", keyring)
    assert ledger.verify().ok
    entry = ledger.entries()[-1]
    assert entry.kind == "edge_export" and entry.body["extra"]["parent"] == "oil@1"
    assert entry.body["extra"]["manifest_signature"] == variant.signature

    trusted = [bytes.fromhex(public_key_hex(keyring))]
    loaded = load_verified(result.model_bytes, variant.manifest, variant.signature, trusted)
    window = x[0] * np.array([2.0, 1.0]) + np.array([1.0, 0.0])  # original units
    assert loaded.forecast(window).shape == (HORIZON, 2)

    # a device refuses: another key, a changed manifest, changed bytes
    stranger = [bytes.fromhex(public_key_hex(KeyRing(tmp_path / "other")))]
    with pytest.raises(EdgeError, match="not signed by a trusted key"):
        load_verified(result.model_bytes, variant.manifest, variant.signature, stranger)
    forged = variant.manifest.replace('"format":"int8"', '"format":"fp32"')
    with pytest.raises(EdgeError, match="not signed by a trusted key"):
        load_verified(result.model_bytes, forged, variant.signature, trusted)
    with pytest.raises(EdgeError, match="hash to"):
        load_verified(result.model_bytes + b"\0", variant.manifest, variant.signature, trusted)


def test_pure_python_ed25519_agrees_with_cryptography(tmp_path) -> None:
    from amml.edge.ed25519 import verify

    key = KeyRing(tmp_path / "keys").active()
    public = bytes.fromhex(public_key_hex(KeyRing(tmp_path / "keys")))
    for message in (b"", b"model", bytes(range(256)) * 3):
        signature = bytes.fromhex(key.sign(message))
        assert verify(public, message, signature)
        assert not verify(public, message + b"x", signature)
        flipped = bytes([signature[0] ^ 1]) + signature[1:]
        assert not verify(public, message, flipped)
