"""The fit/score/update API of reference-fitted detectors: frozen threshold and model, NaN
warm-up, streaming == batch, saving to and loading from a real artifact store."""

from __future__ import annotations

import numpy as np
import pytest

from amml._exceptions import OpError, StoreError
from amml.ops.detectors.base import make_detector
from amml.ops.detectors.fitted import (
    detector_from_bytes,
    detector_to_bytes,
    load_detector,
    save_detector,
)
from amml.store.artifacts.local import LocalArtifactStore
from amml.testing.checks import check_detector, check_fitted_detector, detector_check_series

FITTED = [("pca_t2q", {}), ("mset", {}), ("pca_t2q", {"smooth": 4, "threshold": "pot",
                                                      "quantile": 0.9}),
          ("pyod", {"model": "KNN"}),
          # the deep autoencoders with small training (as in test_conformance): same checks
          ("conv_autoencoder", {"window": 16, "epochs": 4, "batch_size": 64}),
          ("lstm_autoencoder", {"hidden": 8, "epochs": 4, "batch_size": 64})]


@pytest.mark.parametrize(("name", "params"), FITTED)
def test_fit_score_update_contract(name, params):
    check_fitted_detector(make_detector(name, **params))


def test_warmup_rows_are_nan_not_scores():
    values = detector_check_series(600, 3)
    scores = make_detector("pca_t2q", warmup=300).score_series(values)
    assert np.isnan(scores[:300]).all() and np.isfinite(scores[300:]).all()


def test_threshold_comes_from_the_reference_and_stays():
    rng = np.random.default_rng(3)
    reference = rng.normal(0, 1, (2000, 4))
    detector = make_detector("pca_t2q", quantile=0.99).fit(reference)
    # about 1% of new normal rows pass a 99% reference quantile: the threshold means that
    rate = detector.alarms(detector.score(rng.normal(0, 1, (20000, 4)))).mean()
    assert 0.005 < rate < 0.02
    before = detector.threshold_raw_
    shifted = detector.score(rng.normal(6, 1, (500, 4)))  # a sustained anomaly...
    assert detector.threshold_raw_ == before and detector.alarms(shifted).mean() > 0.99
    assert detector.events(shifted) == [(0, 500)]  # ...is one event


def test_adaptation_is_explicit():
    rng = np.random.default_rng(4)
    reference = rng.normal(0, 1, (400, 2))
    shifted = rng.normal(5, 1, (1200, 2))
    frozen = make_detector("pca_t2q").fit(reference).score(shifted)
    adapting = make_detector("pca_t2q", refit=200, history=400).fit(reference).score(shifted)
    assert frozen[-200:].min() > 0.5  # frozen: the shift stays an anomaly
    assert np.median(adapting[-200:]) < 0.5  # refit on the shifted rows: it becomes normal


def test_score_before_fit_and_wrong_width_are_clear_errors():
    detector = make_detector("mset")
    with pytest.raises(OpError, match="call fit"):
        detector.score(np.zeros((5, 2)))
    detector.fit(np.random.default_rng(0).normal(0, 1, (100, 2)))
    with pytest.raises(OpError, match="got 3 columns, expected 2"):
        detector.score(np.zeros((5, 3)))


@pytest.mark.parametrize(("name", "params"), [("mset", {}), ("pyod", {"model": "IForest"}),
                                              ("pca_t2q", {"smooth": 3})])
def test_saved_detector_scores_as_before(tmp_path, name, params):
    rng = np.random.default_rng(5)
    detector = make_detector(name, **params).fit(rng.normal(0, 1, (300, 3)))
    store = LocalArtifactStore(tmp_path / "artifacts")
    digest = save_detector(detector, store)
    batch = rng.normal(0, 1.5, (100, 3))
    loaded = load_detector(store, digest)
    assert loaded.get_params() == detector.get_params()
    np.testing.assert_allclose(loaded.score(batch), detector.score(batch), rtol=0, atol=1e-12)
    assert b"pickle" not in store.get_bytes(digest) and detector_to_bytes(loaded) == \
        detector_to_bytes(detector)


def test_loading_refuses_what_is_not_a_detector():
    with pytest.raises(StoreError, match="not a saved AMML detector"):
        detector_from_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(OpError, match="only a fitted detector"):
        detector_to_bytes(make_detector("mset"))


def test_checks_skip_with_a_reason():
    skipped = check_detector(make_detector("pyod", model="ECOD"), n=900)
    assert set(skipped) == {"batch_equals_streaming", "causal", "finds_spike"}
    assert all("ECOD" in reason for reason in skipped.values())
    assert check_detector(make_detector("pca_t2q")) == {}


@pytest.mark.parametrize("name", ["pca_t2q", "mset"])
def test_pot_threshold_works_with_the_default_quantile(name):
    # quantile's default 1.0 (the largest reference score) leaves POT no tail to fit: the tail
    # is fitted above POT's own level then, not refused; a quantile below 1 is still the level
    from amml.ops.detectors.thresholds import pot_threshold

    reference = np.random.default_rng(5).normal(0, 1, (600, 3))
    detector = make_detector(name, threshold="pot").fit(reference)
    plain = make_detector(name).fit(reference)
    raw = plain.threshold_raw_  # quantile 1.0, factor 1: the largest reference raw score
    assert np.isfinite(detector.threshold_raw_) and detector.threshold_raw_ != raw
    features = plain._features((reference - plain.center_) / plain.scale_)
    reference_raw = plain._raw(features)
    reference_raw = reference_raw[np.isfinite(reference_raw)]
    assert detector.threshold_raw_ == pytest.approx(
        pot_threshold(reference_raw, risk=detector.risk, level=0.98))
    at_level = make_detector(name, threshold="pot", quantile=0.9).fit(reference)
    assert at_level.threshold_raw_ == pytest.approx(
        pot_threshold(reference_raw, risk=detector.risk, level=0.9))


def test_save_and_load_take_the_store_a_user_opens(tmp_path):
    from amml.store import open_store

    rng = np.random.default_rng(6)
    detector = make_detector("pca_t2q").fit(rng.normal(0, 1, (300, 3)))
    store = open_store(tmp_path / "home")
    digest = save_detector(detector, store)
    assert store.artifacts.get_bytes(digest) == detector_to_bytes(detector)  # in its artifacts
    batch = rng.normal(0, 1.5, (50, 3))
    np.testing.assert_array_equal(load_detector(store, digest).score(batch),
                                  detector.score(batch))
