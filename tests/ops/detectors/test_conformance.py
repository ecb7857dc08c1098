"""Every registered detector passes the shared contract (batch == streaming, causal, bounded,
clone, finds a spike); adding a detector adds it here with no further code.

The two deep autoencoders are checked with smaller training (fewer epochs, a shorter window,
a smaller LSTM): the same checks on the same series, at a tenth of the cost. Their defaults
are checked to build, and benchmarks/skab.py runs them as they are."""

from __future__ import annotations

import numpy as np
import pytest

from amml._exceptions import OpError
from amml.ops.detectors.base import detector_names, make_detector
from amml.testing import check_detector

#: Smaller training for the checks only: size, not shape (the parameters that make a run
#: long, never one that changes what is scored or how).
SMALL = {
    "conv_autoencoder": {"window": 16, "epochs": 4, "batch_size": 64},
    "lstm_autoencoder": {"hidden": 8, "epochs": 4, "batch_size": 64},
}


@pytest.mark.parametrize("name", detector_names())
def test_detector_contract(name):
    check_detector(make_detector(name, **SMALL.get(name, {})))


@pytest.mark.parametrize("name", sorted(SMALL))
def test_small_configs_change_only_size(name):
    default = make_detector(name).get_params()
    small = make_detector(name, **SMALL[name]).get_params()
    changed = {k for k in default if default[k] != small[k]}
    assert changed <= {"window", "epochs", "batch_size", "hidden"}, changed


def test_flat_series_stays_defined():
    values = np.r_[np.full(400, 5.0), 6.0, np.full(50, 5.0)]
    scores = make_detector("amml").score_series(values)
    warm = int(np.argmax(np.isfinite(scores)))  # NaN until the detector has warmed up
    assert 0 < warm < 100 and np.isnan(scores[:warm]).all()
    assert np.all(np.isfinite(scores[warm:])) and scores[400] == np.nanmax(scores) > 0.5


def test_unknown_detector_and_parameter():
    with pytest.raises(OpError, match="unknown detector 'nope'"):
        make_detector("nope")
    with pytest.raises(OpError, match="has no parameter 'windw'"):
        make_detector("amml", windw=3)
