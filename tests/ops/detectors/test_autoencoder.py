"""The ``autoencoder`` detector: multivariate relations, univariate spikes, exact batch path,
seeded and cheap training, and PyTorch kept out of ``import amml``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from amml._exceptions import OpError
from amml.ops.detectors.base import make_detector
from amml.testing.checks import detector_check_series
from tests.ops.detectors.test_window_models import phase_break


def test_batch_equals_streaming_exactly_through_retraining_and_gaps():
    rows, _, _ = phase_break(seed=2, n=500)
    rows[[100, 350, 351], 0] = np.nan
    rows[420, 1] = -np.inf
    rows[450] = 1e6
    detector = make_detector("autoencoder", window=4, warmup=120, refit=120, history=240,
                             epochs=5)
    batch = detector.score_series(rows)
    stream = detector.clone()
    streamed = np.array([stream.update(i, row) for i, row in enumerate(rows)])
    np.testing.assert_array_equal(batch, streamed)
    assert np.isnan(batch[:120]).all()  # before the first training: no score, never 0
    assert np.all((batch[120:] >= 0) & (batch[120:] <= 1)) and batch[450] > 0.99


def test_training_is_seeded_and_leaves_the_torch_random_state_alone():
    # (its cost is a benchmark's business, not a timed test's)
    import torch

    values = detector_check_series(400, 3)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    detector = make_detector("autoencoder", warmup=399, history=399, epochs=3)
    model = detector._fit(values[:399], 399)  # training on the whole 400-row series
    assert torch.equal(torch.rand(3), expected)
    again = detector._fit(values[:399], 399)
    for (w1, b1), (w2, b2) in zip(model[0], again[0], strict=True):
        np.testing.assert_array_equal(w1, w2)
        np.testing.assert_array_equal(b1, b2)
    other = make_detector("autoencoder", seed=1, epochs=3)._fit(values[:399], 399)
    assert not np.array_equal(model[0][0][0], other[0][0][0])


def test_importing_amml_does_not_import_torch():
    code = ("import sys, amml, amml.ops.detectors; "
            "from amml.ops.detectors.base import make_detector; make_detector('autoencoder'); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(("params", "message"), [
    ({"window": 0}, "window must be an integer >= 1"),
    ({"warmup": 3}, "warmup must be an integer >= 9"),
    ({"hidden": 0}, "hidden must be an integer >= 1"),
    ({"bottleneck": 2.0}, "bottleneck must be an integer >= 1"),
    ({"epochs": 0}, "epochs must be an integer >= 1"),
    ({"lr": 0}, r"lr must be a number in \(0, 1\)"),
    ({"newest_weight": 1.5}, r"newest_weight must be a number in \[0, 1\]"),
    ({"seed": True}, "seed must be an integer >= 0"),
])
def test_parameter_errors(params, message):
    with pytest.raises(OpError, match=message):
        make_detector("autoencoder", **params)
