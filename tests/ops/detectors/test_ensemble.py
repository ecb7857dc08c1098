"""ensemble: members built by name, combined calibrated scores, round-trip parameters."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from amml._exceptions import OpError
from amml.ops.detectors import base
from amml.ops.detectors.base import Detector, detector_names, make_detector
from amml.ops.detectors.ensemble import DEFAULT_MEMBERS

PERIOD = 48
MEMBERS = ["amml", {"name": "forecast_residual", "params": {"lookback": 24}}]


def seasonal(n: int = 1200, seed: int = 0) -> np.ndarray:
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return 10 + 3 * np.sin(2 * np.pi * t / PERIOD) + rng.normal(0, 0.2, n)


class _Multi(Detector):
    """A multivariate test member: the largest absolute value of the row, squashed."""

    name = "test_multi"
    multivariate = True

    def __init__(self, scale: float = 10.0) -> None:
        self.scale = scale

    def update(self, timestamp: Any, value: Any) -> float:
        row = np.nan_to_num(np.asarray(value, dtype=float), posinf=0.0, neginf=0.0)
        return float(np.tanh(np.abs(row).max() / self.scale))


def test_default_members_are_registered():
    # every default member is built in: a missing one is a failure, never a skip
    assert [name for name in DEFAULT_MEMBERS if name not in detector_names()] == []
    ensemble = make_detector("ensemble")
    assert [m.name for m in ensemble._members] == list(DEFAULT_MEMBERS)


def test_parameters_round_trip_as_given():
    params = {"members": MEMBERS, "combine": "mean", "weights": [2, 1], "vote_threshold": 0.4}
    ensemble = make_detector("ensemble", **params)
    assert ensemble.get_params() == params
    clone = ensemble.clone()
    assert clone.get_params() == params and clone._members is not ensemble._members
    assert [m.get_params()["lookback"] for m in clone._members[1:]] == [24]


def test_each_combination_matches_its_definition_and_streams():
    values = seasonal()
    values[900] += 6.0
    member_scores = np.column_stack([
        make_detector("amml").score_series(values),
        make_detector("forecast_residual", lookback=24).score_series(values)])
    warming = np.isnan(member_scores).any(axis=1)  # until every member has scored: NaN
    assert warming[:192].all() and not warming[400:].any()
    expected = {
        "max": member_scores.max(axis=1),
        "mean": member_scores.mean(axis=1),
        "vote": np.where(warming, np.nan, (member_scores >= 0.5).mean(axis=1)),
    }
    for combine, want in expected.items():
        ensemble = make_detector("ensemble", members=MEMBERS, combine=combine)
        batch = ensemble.score_series(values)
        stream = ensemble.clone()
        streamed = [stream.update(i, float(v)) for i, v in enumerate(values)]
        np.testing.assert_allclose(batch, want, rtol=0, atol=1e-12)
        np.testing.assert_allclose(batch, streamed, rtol=0, atol=1e-9)
        assert int(np.nanargmax(batch[300:])) + 300 == 900
    weighted = make_detector("ensemble", members=MEMBERS, combine="max", weights=[0, 1])
    np.testing.assert_allclose(weighted.score_series(values), member_scores[:, 1], atol=1e-12)
    weighted = make_detector("ensemble", members=MEMBERS, combine="mean", weights=[3, 1])
    np.testing.assert_allclose(weighted.score_series(values),
                               member_scores @ [0.75, 0.25], atol=1e-12)


def test_max_sees_what_one_member_sees():
    values = seasonal()
    trough = 900 + 3 * PERIOD // 4 - 900 % PERIOD
    values[trough] = 13.0  # a peak's value at a trough: only the forecast residual sees it
    scores = make_detector("ensemble", members=MEMBERS, combine="max").score_series(values)
    assert int(np.nanargmax(scores[300:])) + 300 == trough and scores[trough] > 0.9


@pytest.fixture
def multi_member():
    base.DETECTORS.register(_Multi)
    yield
    base.DETECTORS.unregister(_Multi.name)


@pytest.mark.usefixtures("multi_member")
def test_multivariate_members():
    ensemble = make_detector("ensemble", members=["test_multi", {"name": "test_multi",
                                                                 "params": {"scale": 1.0}}])
    assert ensemble.multivariate and not make_detector("ensemble", members=["amml"]).multivariate
    rows = np.array([[0.0, 1.0], [5.0, -2.0], [np.nan, 0.5]])
    want = np.tanh(np.array([1.0, 5.0, 0.5]))  # the scale-1 member is the larger
    np.testing.assert_allclose(ensemble.score_series(rows), want, atol=1e-12)
    with pytest.raises(OpError, match="all be univariate or all multivariate"):
        make_detector("ensemble", members=["test_multi", "amml"])


@pytest.mark.parametrize(("params", "message"), [
    ({"members": ["amml", "nope"]}, "ensemble member 1: unknown detector 'nope'"),
    ({"members": [{"name": "amml", "params": {"windw": 3}}]},
     "ensemble member 0: detector 'amml' has no parameter 'windw'"),
    ({"members": [{"params": {}}]}, "a mapping needs 'name'"),
    ({"members": [{"name": "amml", "params": [1]}]}, "params must be a mapping"),
    ({"members": [3]}, "expected a detector name"),
    ({"members": "amml"}, "members must be a list"),
    ({"members": []}, "members is empty"),
    ({"members": ["amml"], "combine": "median"}, "unknown combine 'median'"),
    ({"members": ["amml", "amml"], "weights": [1]}, "1 weights for 2 members"),
    ({"members": ["amml"], "weights": [-1]}, "weights must be finite, non-negative"),
    ({"members": ["amml"], "vote_threshold": 2}, "vote_threshold must be in"),
])
def test_bad_parameters_are_clear_errors(params, message):
    with pytest.raises(OpError, match=message):
        make_detector("ensemble", **params)
