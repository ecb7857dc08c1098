"""The fit/score/update API of reference-fitted detectors: frozen threshold and model, NaN
warm-up, streaming == batch, saving to and loading from a real artifact store."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from amml._exceptions import OpError, StoreError
from amml.ops.detectors import thresholds
from amml.ops.detectors.base import make_detector
from amml.ops.detectors.fitted import (
    FittedDetector,
    detector_from_bytes,
    detector_to_bytes,
    fitted_detector_names,
    load_detector,
    save_detector,
)
from amml.store.artifacts.local import LocalArtifactStore
from amml.store.artifacts.model import SafetensorsModel
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
    with pytest.raises(OpError, match=r"^mset: got 3 columns, expected 2 \(as in the reference\)$"):
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
    with pytest.raises(StoreError,
                       match=r"^not a saved AMML detector \(KeyError: '__metadata__'\)$"):
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


# ---------------------------------------------------------------------- parameters


@pytest.mark.parametrize(("params", "message"), [
    ({"smooth": 0}, "smooth must be an integer >= 1, got 0"),
    ({"refit": -1}, "refit must be an integer >= 0, got -1"),
    ({"history": 1}, "history must be an integer >= 2, got 1"),
    ({"threshold": "median"}, "threshold must be 'quantile' or 'pot', got 'median'"),
    ({"quantile": 1.5}, "quantile must be a number in [0, 1], got 1.5"),
    ({"risk": 2.0}, "risk must be a number in [0, 1], got 2.0"),
    ({"factor": 0}, "factor must be a number > 0, got 0"),
    ({"factor": "2"}, "factor must be a number > 0, got '2'"),
    # smooth 4: three earlier rows per feature row, so at least five warm-up rows
    ({"smooth": 4, "warmup": 4}, "warmup must be an integer >= 5, got 4"),
])
def test_parameters_are_checked_when_made(params, message):
    with pytest.raises(OpError, match=f"^{re.escape(message)}$"):
        make_detector("pca_t2q", **params)


def test_the_smallest_allowed_parameters_are_accepted():
    make_detector("pca_t2q", history=2, refit=0, smooth=1)
    make_detector("pca_t2q", smooth=4, warmup=5)


def test_smoothing_skips_the_spike_check_with_its_reason():
    assert make_detector("pca_t2q").skipped_checks() == {}
    assert make_detector("pca_t2q", smooth=2).skipped_checks() == {
        "finds_spike": "scores average the last `smooth` rows: a spike raises all of them, and "
                       "the top may be any"}


# ---------------------------------------------------------------------- fitting


def test_each_column_is_centred_and_scaled_on_its_own():
    rng = np.random.default_rng(11)
    reference = np.column_stack([
        rng.normal(0, 0.01, 400),  # small values
        rng.normal(5000, 100, 400),  # large ones
        np.full(400, 1000.0) + rng.normal(0, 1e-8, 400),  # constant up to rounding
        np.full(400, 3.0),  # constant
    ])
    detector = make_detector("pca_t2q").fit(reference)
    np.testing.assert_allclose(detector.center_, reference.mean(axis=0))
    # a column that does not move (relative to its level) keeps the data's units
    np.testing.assert_allclose(detector.scale_, [*reference[:, :2].std(axis=0), 1.0, 1.0])
    batch = rng.normal([0, 5000, 1000, 3], [0.01, 100, 1e-8, 1e-12], (30, 4))
    batch[20, 0] += 0.08  # eight of its deviations: an anomaly, next to a column of thousands
    assert np.flatnonzero(detector.alarms(detector.score(batch))).tolist() == [20]


def test_a_reference_needs_two_rows_beyond_the_look_back():
    rng = np.random.default_rng(12)
    detector = make_detector("pca_t2q", smooth=3)  # two earlier rows per feature row
    with pytest.raises(OpError, match=r"^pca_t2q: the reference has 3 rows; it needs at least 4 "
                                      r"\(smooth - 1 \+ lookback \+ 2\)$"):
        detector.fit(rng.normal(0, 1, (3, 2)))
    assert detector.fit(rng.normal(0, 1, (4, 2))).fitted_


def test_a_table_reference_names_the_columns_and_a_saved_detector_keeps_them():
    rng = np.random.default_rng(13)
    table = pd.DataFrame(rng.normal(0, 1, (200, 2)), columns=["flow", 7])
    detector = make_detector("pca_t2q").fit(table)
    assert detector.columns_ == ["flow", "7"]
    assert detector_from_bytes(detector_to_bytes(detector)).columns_ == ["flow", "7"]
    plain = make_detector("pca_t2q").fit(table.to_numpy())
    assert plain.columns_ is None and detector_from_bytes(detector_to_bytes(plain)).columns_ \
        is None


def test_one_dimensional_input_is_a_column_or_one_row():
    rng = np.random.default_rng(14)
    single = make_detector("pca_t2q").fit(rng.normal(0, 1, 300))  # one column
    assert single.center_.shape == (1,) and single.score(np.zeros(5)).shape == (5,)
    wide = make_detector("pca_t2q").fit(rng.normal(0, 1, (300, 3)))
    assert wide.score(np.zeros(3)).shape == (1,)  # one row of the three columns
    with pytest.raises(OpError, match=r"^pca_t2q: expected rows of values \(a 2-D array\), got "
                                      r"3 dimensions$"):
        wide.score(np.zeros((2, 2, 3)))


def test_smoothing_averages_each_column_over_the_last_rows():
    rng = np.random.default_rng(15)
    drive = rng.normal(0, 1, 460)
    rows = np.column_stack([drive, drive]) + rng.normal(0, 0.05, (460, 2))  # they agree
    rows[420] += [1.5, -1.5]  # one row where they disagree
    for smooth in (1, 2, 3):
        detector = make_detector("pca_t2q", smooth=smooth).fit(rows[:400])
        alarmed = np.flatnonzero(detector.alarms(detector.score(rows[400:]))) + 400
        # the row's disagreement is in the mean of each of the next `smooth` rows' windows
        assert alarmed.tolist() == list(range(420, 420 + smooth))


def test_gaps_carry_the_last_reading():
    rng = np.random.default_rng(16)
    reference = rng.normal(0, 1, (300, 2))
    batch = rng.normal(0, 1, (40, 2))
    gappy_reference, gappy_batch = reference.copy(), batch.copy().astype(object)
    gappy_reference[0, 0] = np.nan  # before the first reading: the first one, carried back
    gappy_reference[10, 1] = np.inf
    gappy_batch[0, 1] = None  # the reference's last reading (a JSON null)
    gappy_batch[5, 0] = np.nan
    filled_reference, filled_batch = reference.copy(), batch.copy()
    filled_reference[0, 0], filled_reference[10, 1] = reference[1, 0], reference[9, 1]
    filled_batch[0, 1], filled_batch[5, 0] = reference[-1, 1], batch[4, 0]
    gappy = make_detector("pca_t2q").fit(gappy_reference)
    filled = make_detector("pca_t2q").fit(filled_reference)
    assert gappy.threshold_raw_ == filled.threshold_raw_
    np.testing.assert_array_equal(gappy.score(gappy_batch[:20]), filled.score(filled_batch[:20]))
    # the next batch starts from the last reading of the one before, also once reloaded
    later_gap = gappy_batch[20:].copy()
    later_gap[0, 0] = np.nan
    later_filled = filled_batch[20:].copy()
    later_filled[0, 0] = filled_batch[19, 0]
    expected = filled.score(later_filled)
    reloaded = detector_from_bytes(detector_to_bytes(gappy))
    np.testing.assert_array_equal(reloaded.score(later_gap), expected)
    np.testing.assert_array_equal(gappy.score(later_gap), expected)
    # streaming: a gap among the warm-up rows is filled as fit fills it
    stream = make_detector("pca_t2q", warmup=300)
    streamed = [stream.update(i, row) for i, row in enumerate(gappy_reference)]
    assert np.isnan(streamed).all() and stream.threshold_raw_ == filled.threshold_raw_


def test_pot_threshold_on_the_reference_scores():
    rng = np.random.default_rng(17)
    reference = rng.normal(0, 1, (800, 3))
    plain = make_detector("pca_t2q").fit(reference)  # the largest reference score
    calibrated = plain.score(reference)  # no look-back: the reference's own raw scores
    raw = plain.threshold_raw_ * calibrated / (1 - calibrated)
    pot = make_detector("pca_t2q", threshold="pot", risk=1e-2, quantile=0.9, factor=2.0)
    assert pot.fit(reference).threshold_raw_ == pytest.approx(
        2.0 * thresholds.pot_threshold(raw, risk=1e-2, level=0.9), rel=1e-9)
    low = make_detector("pca_t2q", quantile=0.1).fit(reference)  # a threshold under 1
    assert low.threshold_raw_ == pytest.approx(float(np.quantile(raw, 0.1)), rel=1e-9)
    assert low.threshold_raw_ < 1


def test_a_score_the_model_cannot_compute_is_the_highest():
    detector = make_detector("pca_t2q").fit(np.random.default_rng(18).normal(0, 1, (300, 2)))
    with np.errstate(over="ignore", invalid="ignore"):
        assert detector.score([[1e300, -1e300], [0.0, 0.0]])[0] == 1.0


# ---------------------------------------------------------------------- scoring


@pytest.mark.parametrize("refit", [1, 50])
def test_refits_on_the_last_history_rows(refit):
    rng = np.random.default_rng(19)
    reference, batch = rng.normal(0, 1, (400, 2)), rng.normal(3, 1, (50, 2))
    detector = make_detector("pca_t2q", refit=refit, history=400).fit(reference)
    detector.score(batch[:49])
    if refit == 50:
        np.testing.assert_array_equal(detector.center_, reference.mean(axis=0))  # not yet
    detector.score(batch[49:])
    np.testing.assert_allclose(detector.center_, np.r_[reference, batch][-400:].mean(axis=0))


def test_an_adapting_detector_scores_the_same_in_pieces_and_after_saving():
    rng = np.random.default_rng(20)
    reference, batch = rng.normal(0, 1, (300, 2)), rng.normal(2, 1.5, (130, 2))
    whole = make_detector("pca_t2q", refit=50, history=200).fit(reference).score(batch)
    assert whole.shape == (130,)
    pieces = make_detector("pca_t2q", refit=50, history=200).fit(reference)
    parts = [pieces.score(batch[:30]), pieces.score(batch[30:70])]
    loaded = detector_from_bytes(detector_to_bytes(pieces))  # 20 rows after the first refit
    np.testing.assert_array_equal(np.concatenate([*parts, loaded.score(batch[70:])]), whole)


@pytest.mark.parametrize("params", [{}, {"smooth": 3}, {"refit": 10}])
def test_an_empty_batch_has_no_scores(params):
    detector = make_detector("pca_t2q", **params).fit(
        np.random.default_rng(21).normal(0, 1, (100, 2)))
    assert detector.score(np.zeros((0, 2))).shape == (0,)


def test_a_window_scores_its_newest_row_as_the_stream_does():
    rng = np.random.default_rng(22)
    reference, batch = rng.normal(0, 1, (300, 2)), rng.normal(0, 1.5, (40, 2))
    detector = make_detector("pca_t2q", smooth=3).fit(reference)  # a window needs 3 rows
    rows = np.r_[reference, batch]
    for length in (3, 6):
        windows = np.stack([rows[t - length + 1:t + 1] for t in range(300, 340)])
        np.testing.assert_allclose(detector.score_windows(windows),
                                   detector.clone().fit(reference).score(batch), rtol=0,
                                   atol=1e-12)
    # the stream's own state is untouched: it still scores the batch as a fresh fit does
    np.testing.assert_array_equal(detector.score(batch),
                                  detector.clone().fit(reference).score(batch))


@pytest.mark.parametrize("shape", [(5, 3, 1), (5, 2, 2), (4, 5)])
def test_windows_of_the_wrong_shape_are_refused(shape):
    detector = make_detector("pca_t2q", smooth=3).fit(
        np.random.default_rng(23).normal(0, 1, (100, 2)))
    with pytest.raises(OpError, match=rf"^pca_t2q: windows must be \(N, at least 3 rows, 2 "
                                      rf"columns\), got {re.escape(str(shape))}$"):
        detector.score_windows(np.zeros(shape))
    with pytest.raises(OpError, match=r"^pca_t2q: only a fitted detector scores windows$"):
        make_detector("pca_t2q").score_windows(np.zeros((1, 3, 2)))


def test_score_series_checks_the_timestamps():
    with pytest.raises(OpError, match=r"^3 timestamps for 10 values$"):
        make_detector("pca_t2q").score_series(np.zeros(10), timestamps=[1, 2, 3])


def test_alarms_at_or_above_the_frozen_threshold():
    alarms = make_detector("pca_t2q").alarms([0.5, None, 0.4999, 1.0])
    assert alarms.tolist() == [1, 0, 0, 1] and alarms.dtype == np.int8


# ---------------------------------------------------------------------- the store


def test_a_fitted_detector_is_a_model_artifact():
    rng = np.random.default_rng(24)
    detector = make_detector("mset").fit(rng.normal(0, 1, (200, 2)))
    model = SafetensorsModel.from_bytes(detector.to_bytes())
    assert type(model) is type(detector)
    rebuilt = FittedDetector.from_state(detector.get_config(), detector.get_tensors())
    batch = rng.normal(0, 1.5, (30, 2))
    expected = detector.score(batch)
    np.testing.assert_array_equal(model.score(batch), expected)
    np.testing.assert_array_equal(rebuilt.score(batch), expected)


def test_the_fitted_detectors_are_listed_and_only_they_load():
    names = fitted_detector_names()
    assert {"pca_t2q", "mset", "pyod"} <= set(names) and "rolling_mad" not in names
    listed = ", ".join(names)
    for config, shown in [({"detector": "rolling_mad", "params": {}}, "'rolling_mad'"),
                          ({"detector": "nope", "params": {}}, "'nope'"),
                          ({"detector": ["pca_t2q"], "params": {}}, "['pca_t2q']"),
                          (["pca_t2q"], "None")]:
        with pytest.raises(StoreError, match=rf"^detector {re.escape(shown)} cannot be loaded "
                                             rf"from the store \(fitted detectors: {listed}\)$"):
            FittedDetector.from_state(config, {})


class _Distance(FittedDetector):
    """A plugin's smallest fitted detector: the raw score is the distance from the centre, or
    NaN (the model cannot say) where ``cannot`` is true."""

    name = "distance"

    def __init__(self, cannot=None, warmup: int = 10, smooth: int = 1,
                 threshold: str = "quantile", quantile: float = 1.0, factor: float = 1.0,
                 risk: float = 1e-3, refit: int = 0, history: int = 100) -> None:
        self.cannot = cannot
        self.warmup, self.smooth, self.threshold, self.quantile = warmup, smooth, threshold, \
            quantile
        self.factor, self.risk, self.refit, self.history = factor, risk, refit, history
        self._check_common()

    def _fit_model(self, features):
        pass

    def _raw(self, features):
        raw = np.abs(features).sum(axis=1)
        return np.where(self.cannot(features), np.nan, raw) if self.cannot else raw


def test_a_model_that_scores_no_reference_row_cannot_be_fitted():
    reference = np.arange(10.0)[:, None]
    with pytest.raises(OpError, match=r"^distance: the reference gave no finite score$"):
        _Distance(cannot=lambda f: np.ones(len(f), bool)).fit(reference)
    one = _Distance(cannot=lambda f: f[:, 0] < 1.5).fit(reference)  # one finite: 9.0
    assert one.threshold_raw_ == pytest.approx(4.5 / reference.std())
