"""``amml`` with ``beyond``: a value far outside every earlier value alarms on its own, even in
a series whose usual spikes have taught the spike likelihood to expect surprises."""

from __future__ import annotations

import numpy as np
import pytest

from amml._exceptions import OpError
from amml.ops.detectors.base import make_detector
from amml.ops.detectors.novelty import _Beyond
from amml.testing.checks import check_detector


def _spiky(n: int = 600, seed: int = 4) -> np.ndarray:
    """Heavy-tailed prices: most rows small, a spike every ten rows or so."""
    rng = np.random.default_rng(seed)
    values = rng.lognormal(0.0, 0.3, n)
    spikes = rng.random(n) < 0.1
    values[spikes] *= rng.uniform(2.0, 4.0, spikes.sum())
    return values


def test_a_value_far_past_the_range_alarms_only_with_beyond():
    values = _spiky()
    values[200] = 1.5 * values[:200].max()  # early on, among spikes the likelihood expects
    plain = make_detector("amml", output="alarm", alarm=0.45).score_series(values)
    beyond = make_detector("amml", output="alarm", alarm=0.45, beyond=0.1).score_series(values)
    assert beyond[200] == 1.0 and plain[200] == 0.0
    # the usual spikes inside the range raise no new alarms
    assert np.nansum(beyond[:200]) == np.nansum(plain[:200])


def test_beyond_score_is_the_distance_past_the_extremes_over_the_range():
    part = _Beyond(0.5)
    assert [part.update(v) for v in (0.0, 10.0, 5.0, 12.0, -1.0, 30.0)] == \
        [0.0, 0.0, 0.0, pytest.approx(0.4), pytest.approx(1 / 6), 1.0]


def test_contract_holds_and_bad_values_are_clear_errors():
    assert check_detector(make_detector("amml", beyond=0.1)) == {}
    for bad in (-0.1, float("nan"), "x"):
        with pytest.raises(OpError, match="'beyond' must be a number >= 0"):
            make_detector("amml", beyond=bad)
