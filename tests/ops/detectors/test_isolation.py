"""The ``isolation_forest`` detector: multivariate relations, spikes, an exact batch path."""

from __future__ import annotations

import numpy as np
import pytest

from amml._exceptions import OpError
from amml.ops.detectors.base import make_detector
from amml.ops.detectors.isolation import IsolationForest
from amml.ops.detectors.windowed import forward_fill
from tests.ops.detectors.test_window_models import phase_break


def test_batch_equals_streaming_exactly_through_refits_and_gaps():
    rows, _, _ = phase_break(seed=2, n=600)
    rows[[100, 350, 351], 0] = np.nan
    rows[420, 1] = np.inf
    rows[450] = 1e6
    detector = make_detector("isolation_forest", window=5, warmup=120, refit=60, history=300)
    batch = detector.score_series(rows)
    stream = detector.clone()
    streamed = np.array([stream.update(i, row) for i, row in enumerate(rows)])
    np.testing.assert_array_equal(batch, streamed)
    scored = batch[np.isfinite(batch)]
    assert np.all((scored >= 0) & (scored <= 1)) and batch[450] > 0.99


def test_same_seed_same_scores_other_seed_other_forest():
    rows, _, _ = phase_break(n=500)
    first = make_detector("isolation_forest", random_state=3).score_series(rows)
    again = make_detector("isolation_forest", random_state=3).score_series(rows)
    other = make_detector("isolation_forest", random_state=4).score_series(rows)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_forest_scores_distance_beyond_the_data():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(500, 3))
    forest = IsolationForest(seed=0).fit(data)
    inside, near, far = forest.anomaly_score(np.array([[0, 0, 0], [4, 0, 0], [40, 0, 0.0]]))
    assert inside < 0.5 < near < far
    alone = np.array([forest.anomaly_score(row[None])[0] for row in data[:50]])
    np.testing.assert_array_equal(alone, forest.anomaly_score(data[:50]))
    assert forest.anomaly_score(data).mean() < 0.5


def test_constant_data_and_forward_fill():
    forest = IsolationForest(seed=0).fit(np.ones((50, 2)))  # nothing to cut: all leaves
    assert np.all(np.isfinite(forest.anomaly_score(np.array([[1.0, 1.0], [9.0, 9.0]]))))
    filled = forward_fill(np.array([[np.nan, 1.0], [2.0, np.inf], [np.nan, 3.0]]))
    np.testing.assert_array_equal(filled, [[0.0, 1.0], [2.0, 1.0], [2.0, 3.0]])
    flat = make_detector("isolation_forest").score_series(np.full((400, 2), 7.0))
    warm = int(np.argmax(np.isfinite(flat)))  # NaN before the first fit, a score after
    assert warm > 0 and np.isnan(flat[:warm]).all() and np.all(np.isfinite(flat[warm:]))
    assert np.all((flat[warm:] >= 0) & (flat[warm:] <= 1))


@pytest.mark.parametrize(("params", "message"), [
    ({"window": 0}, "window must be an integer >= 1"),
    ({"window": 8, "warmup": 8}, "warmup must be an integer >= 9"),
    ({"refit": -1}, "refit must be an integer >= 0"),
    ({"history": 3}, "history must be an integer >= 9"),
    ({"n_trees": 0}, "n_trees must be an integer >= 1"),
    ({"max_samples": 1.5}, "max_samples must be an integer >= 2"),
    ({"random_state": -1}, "random_state must be an integer >= 0"),
])
def test_parameter_errors(params, message):
    with pytest.raises(OpError, match=message):
        make_detector("isolation_forest", **params)


def test_rows_must_keep_their_width():
    detector = make_detector("isolation_forest")
    detector.update(0, [1.0, 2.0])
    with pytest.raises(OpError, match="got 3 values, expected 2"):
        detector.update(1, [1.0, 2.0, 3.0])
    with pytest.raises(OpError, match="3 timestamps for 2 values"):
        detector.score_series(np.ones((2, 2)), [0, 1, 2])
