"""pca_t2q with ``combine="max"``: T² and Q each on the scale of its own reference quantile,
the larger decides, and the quantile threshold is ``factor`` itself."""

from __future__ import annotations

import numpy as np
import pytest

from amml._exceptions import OpError
from amml.ops.detectors.base import make_detector
from amml.ops.detectors.fitted import detector_from_bytes, detector_to_bytes
from amml.testing.checks import check_detector, check_fitted_detector


def _correlated(rng: np.random.Generator, n: int) -> np.ndarray:
    """Three sensors driven by one factor (one principal component holds most variance)."""
    t = rng.normal(0, 1, n)
    return np.column_stack([t, 2 * t, -t]) + rng.normal(0, 0.05, (n, 3))


def test_contract_and_conformance():
    check_fitted_detector(make_detector("pca_t2q", combine="max", smooth=3, variance=0.9))
    assert check_detector(make_detector("pca_t2q", combine="max", variance=0.9)) == {}


def test_threshold_is_factor_in_units_of_the_reference_quantiles():
    rng = np.random.default_rng(7)
    detector = make_detector("pca_t2q", combine="max", variance=0.9, quantile=0.99,
                             factor=1.0).fit(_correlated(rng, 4000))
    assert detector.threshold_raw_ == 1.0
    # each part is scaled by its own 99% quantile: fresh normal rows pass each about 1% of
    # the time, so the larger of the two about 2% (not 1%, not 0%)
    rate = detector.alarms(detector.score(_correlated(rng, 20000))).mean()
    assert 0.01 < rate < 0.035
    assert make_detector("pca_t2q", combine="max", factor=3.0).fit(
        _correlated(rng, 500)).threshold_raw_ == 3.0


def test_either_statistic_alone_raises_an_alarm():
    rng = np.random.default_rng(8)
    detector = make_detector("pca_t2q", combine="max", variance=0.9, quantile=0.99,
                             factor=2.0).fit(_correlated(rng, 2000))
    batch = _correlated(rng, 60)
    batch[20] = [6.0, 12.0, -6.0]  # far along the component: T² only (the sensors agree)
    batch[40] = [0.5, -1.0, 0.5]  # small, but off the component: Q only (they disagree)
    alarms = detector.alarms(detector.score(batch))
    assert alarms[20] == 1 and alarms[40] == 1 and alarms.sum() <= 4


def test_saved_and_loaded_scores_the_same():
    rng = np.random.default_rng(9)
    detector = make_detector("pca_t2q", combine="max", smooth=2).fit(_correlated(rng, 300))
    loaded = detector_from_bytes(detector_to_bytes(detector))
    batch = _correlated(rng, 80) * 1.5
    np.testing.assert_allclose(loaded.score(batch), detector.score(batch), rtol=0, atol=1e-12)
    assert loaded.get_params()["combine"] == "max"


def test_unknown_combine_is_a_clear_error():
    with pytest.raises(OpError, match="combine must be 'sum' or 'max'"):
        make_detector("pca_t2q", combine="mean")
