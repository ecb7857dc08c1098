"""Every registered detector passes the shared contract (batch == streaming, causal, bounded,
clone, finds a spike); adding a detector adds it here with no further code."""

from __future__ import annotations

import numpy as np
import pytest

from amml._exceptions import OpError
from amml.ops.detectors.base import detector_names, make_detector
from amml.testing import check_detector


@pytest.mark.parametrize("name", detector_names())
def test_detector_contract(name):
    check_detector(make_detector(name))


def test_flat_series_stays_defined():
    values = np.r_[np.full(400, 5.0), 6.0, np.full(50, 5.0)]
    scores = make_detector("amml").score_series(values)
    assert np.all(np.isfinite(scores)) and scores[400] == scores.max() > 0.5


def test_unknown_detector_and_parameter():
    with pytest.raises(OpError, match="unknown detector 'nope'"):
        make_detector("nope")
    with pytest.raises(OpError, match="has no parameter 'windw'"):
        make_detector("amml", windw=3)
