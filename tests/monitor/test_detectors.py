"""Each drift detector on small generated streams: it finds the drift near where it began,
with high confidence, and stays quiet on a stream without drift."""

from __future__ import annotations

import numpy as np
import pytest

from amml.monitor.attribution_drift import AttributionDrift
from amml.monitor.base import locate_shift
from amml.monitor.error_drift import ErrorDrift
from amml.monitor.feature_drift import FeatureDrift
from amml.monitor.mmd import MMDDrift
from amml.monitor.prediction_drift import PredictionDrift

DRIFT = 600


def stream(shift: np.ndarray, n: int = 1200, seed: int = 1, scale: np.ndarray | None = None
           ) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(n, len(shift)))
    data[DRIFT:] = data[DRIFT:] * (1.0 if scale is None else scale) + shift
    return data


REFERENCE = np.random.default_rng(0).normal(size=(2000, 3))


@pytest.mark.parametrize("statistic", ["ks", "psi", "wasserstein"])
def test_feature_drift_names_the_feature_and_when(statistic: str) -> None:
    detector = FeatureDrift(REFERENCE, statistic=statistic, names=["a", "b", "c"])
    assert detector.update_many(stream(np.zeros(3), seed=5)) == []
    detector = FeatureDrift(REFERENCE, statistic=statistic, names=["a", "b", "c"])
    events = detector.update_many(stream(np.array([0.0, 0.0, 1.5])))
    first = events[0]
    assert first.features[0] == "c" and first.detector == f"input-{statistic}"
    assert DRIFT <= first.detected_at <= DRIFT + 100
    assert abs(first.drift_point - DRIFT) <= 15 and first.confidence > 0.99


@pytest.mark.parametrize("statistic", ["psi", "wasserstein"])
def test_feature_drift_sees_a_change_of_variance(statistic: str) -> None:
    events = FeatureDrift(REFERENCE, statistic=statistic).update_many(
        stream(np.zeros(3), scale=np.array([3.0, 1.0, 1.0])))
    assert events and events[0].features[0] == "x0" and abs(events[0].drift_point - DRIFT) < 40


def test_mmd_sees_a_change_that_leaves_every_marginal_alone() -> None:
    rng = np.random.default_rng(2)
    together = rng.multivariate_normal([0, 0], [[1, 0.9], [0.9, 1]], 2000)
    detector = MMDDrift(together)
    marginal = FeatureDrift(together)
    live = np.vstack([rng.multivariate_normal([0, 0], [[1, 0.9], [0.9, 1]], DRIFT),
                      rng.multivariate_normal([0, 0], [[1, -0.9], [-0.9, 1]], 600)])
    events = detector.update_many(live)
    assert events and abs(events[0].drift_point - DRIFT) <= 25
    assert marginal.update_many(live) == []  # each column alone has not moved


def test_prediction_drift() -> None:
    rng = np.random.default_rng(3)
    detector = PredictionDrift(rng.normal(size=1500), names=["OT"], window=50)
    events = detector.update_many(np.concatenate([rng.normal(size=DRIFT),
                                                  rng.normal(1.5, 1, 400)]))
    assert events[0].detector == "prediction-ks" and abs(events[0].drift_point - DRIFT) <= 15


def linear_attributions(x: np.ndarray, weights: np.ndarray, center: np.ndarray) -> np.ndarray:
    return weights * (x - center)


def test_attribution_drift_flags_used_inputs_and_ignores_the_ignored_one() -> None:
    weights, center = np.array([2.0, 1.0, 0.0]), np.zeros(3)
    reference = linear_attributions(REFERENCE, weights, center)
    ignored = AttributionDrift(reference, names=["a", "b", "c"])
    assert ignored.update_many(linear_attributions(
        stream(np.array([0.0, 0.0, 6.0]), scale=np.array([1, 1, 4.0])), weights, center)) == []
    used = AttributionDrift(reference, names=["a", "b", "c"])
    events = used.update_many(linear_attributions(stream(np.array([0.0, 1.5, 0.0])),
                                                  weights, center))
    assert events[0].features[0] == "b"
    assert abs(events[0].drift_point - DRIFT) <= 10 and events[0].confidence > 0.99
    assert events[0].detected_at - DRIFT <= 60
    # one at a time gives the same events as a batch
    again = AttributionDrift(reference, names=["a", "b", "c"])
    live = linear_attributions(stream(np.array([0.0, 1.5, 0.0])), weights, center)[:700]
    one_by_one = [e for a in live if (e := again.update(a)) is not None]
    assert [e.detected_at for e in one_by_one] == [e.detected_at for e in events
                                                   if e.detected_at < 700]


def test_error_weighted_attributions_see_a_concept_change_inputs_do_not() -> None:
    """y = x0 + x1 before, y = x0 - x1 after: the inputs' distribution does not change."""
    rng = np.random.default_rng(4)
    weights = np.array([1.0, 1.0, 0.0])

    def signal(n: int, flip_at: int | None) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, 3))
        sign = np.ones(n) if flip_at is None else np.where(np.arange(n) < flip_at, 1.0, -1.0)
        y = x[:, 0] + sign * x[:, 1] + rng.normal(0, 0.1, n)
        residual = y - x @ weights
        return x, (-2 * residual)[:, None] * weights * x  # error-weighted attributions

    ref_x, ref_a = signal(2000, None)
    live_x, live_a = signal(1200, DRIFT)
    events = AttributionDrift(ref_a).update_many(live_a)
    assert events and abs(events[0].drift_point - DRIFT) <= 10
    assert FeatureDrift(ref_x).update_many(live_x) == []


@pytest.mark.parametrize("method", ["adwin", "page_hinkley"])
def test_error_drift_on_residuals(method: str) -> None:
    rng = np.random.default_rng(6)
    residuals = np.concatenate([rng.normal(0, 1, 1000), rng.normal(0, 3, 500)])
    events = ErrorDrift(method).update_many(residuals)
    assert events[0].detector == f"error-{method}"
    assert 1000 <= events[0].detected_at <= 1100 and abs(events[0].drift_point - 1000) <= 25
    assert events[0].confidence > 0.99
    assert ErrorDrift(method).update_many(rng.normal(0, 1, 1500)) == []


def test_locate_shift_and_bad_references() -> None:
    assert locate_shift(np.r_[np.zeros(50), np.ones(30)]) == 50
    with pytest.raises(ValueError, match="NaN or infinite"):
        FeatureDrift(np.r_[np.zeros(100), np.nan])
    with pytest.raises(ValueError, match="window must be between 5 and half"):
        FeatureDrift(np.zeros(100), window=80)
    with pytest.raises(ValueError, match="statistic must be"):
        FeatureDrift(np.zeros(1000), statistic="chi2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs at least"):
        AttributionDrift(np.zeros((20, 2)))
