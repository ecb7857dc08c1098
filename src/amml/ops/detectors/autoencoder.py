"""``autoencoder``: reconstruction error of a small MLP autoencoder over sliding windows.

The network (``window * columns -> hidden -> bottleneck -> hidden -> window * columns``)
learns to squeeze the usual windows of all the columns through a few numbers, so it keeps
their shapes *and* the relations between columns; a window it cannot rebuild (a spike, or two
channels that move together drifting apart while each stays in its usual range) is unusual.
ReLU hidden layers and a linear bottleneck extrapolate linearly: with tanh, every level a
little beyond the training range saturated the network and scored as an anomaly.

* Input: the last ``window`` rows, each column standardised with the training rows' median and
  MAD (``isolation.robust_scale``); gaps (nan/inf) are the column's last finite value.
* Training: once, at row ``warmup``, on the windows before it: ``epochs`` of Adam in float32
  mini-batches on the CPU, seeded with ``seed`` (``torch.manual_seed`` inside
  ``torch.random.fork_rng``, so the caller's random state is left alone). ``refit > 0``
  retrains from scratch every ``refit`` rows on the last ``history`` rows; the default 0 trains
  once, which is cheapest and keeps the notion of "usual" fixed (a slowly drifting series
  wants ``refit``).
* Raw score: the root of the mean squared reconstruction error of the window, mixed with the
  newest row's own (share ``newest_weight``) so the row an anomaly arrives on scores highest;
  the root is nearer a Gaussian than the squared error, as the calibration assumes.
* Scoring runs in float64 numpy on the trained weights with a fixed summation order, so
  ``update`` (one window) and ``score_series`` (all windows in one pass) give the same bits.
* Calibration: ``calibration.Likelihood``, primed with the training windows' raw scores.

PyTorch is imported only when a detector trains (importing ``amml`` does not pay for it).

>>> import numpy as np
>>> from amml.ops.detectors.base import make_detector
>>> rng = np.random.default_rng(0)
>>> x = np.sin(np.arange(600) / 8) + rng.normal(0, 0.05, 600)
>>> y = x + rng.normal(0, 0.05, 600)
>>> y[500:510] = -x[500:510]    # each column stays in its range; their relation breaks
>>> scores = make_detector("autoencoder").score_series(np.column_stack([x, y]))
>>> bool(scores[500:510].mean() > 0.8), int((scores[300:500] > 0.5).sum()) <= 2
(True, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from amml._exceptions import OpError
from amml.ops.detectors.base import register_detector
from amml.ops.detectors.isolation import project
from amml.ops.detectors.windowed import (
    WindowModelDetector,
    check_int,
    check_share,
    robust_scale,
    window_features,
)


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a dev dependency
        raise OpError("the autoencoder detector needs PyTorch: pip install 'amml[torch]'"
                      ) from exc
    return torch


def forward(layers: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
    """The trained network in float64: ReLU after the first and third layers; the bottleneck
    and the output are linear."""
    for index, (weight, bias) in enumerate(layers):
        x = project(x, weight) + bias
        if index % 2 == 0 and index < len(layers) - 1:
            x = np.maximum(x, 0.0)
    return x


@register_detector
class AutoencoderDetector(WindowModelDetector):
    """MLP autoencoder reconstruction error over sliding windows (see the module docstring).

    Defaults suit short series and train in well under a second: ``window=8`` rows,
    ``hidden=32``, ``bottleneck=4``, ``epochs=40`` of Adam (``lr=0.005``, ``batch_size=32``),
    trained at ``warmup=200`` and never again (``refit=0``; else on the last ``history`` rows).
    """

    name = "autoencoder"

    def __init__(self, window: int = 8, warmup: int = 200, refit: int = 0, history: int = 1000,
                 hidden: int = 32, bottleneck: int = 4, epochs: int = 40, lr: float = 0.005,
                 batch_size: int = 32, newest_weight: float = 0.5, seed: int = 0) -> None:
        self.window, self.warmup, self.refit, self.history = window, warmup, refit, history
        self.hidden, self.bottleneck, self.epochs = hidden, bottleneck, epochs
        self.lr, self.batch_size = lr, batch_size
        self.newest_weight, self.seed = newest_weight, seed
        self._check_schedule()
        check_int("hidden", hidden, 1)
        check_int("bottleneck", bottleneck, 1)
        check_int("epochs", epochs, 1)
        check_int("batch_size", batch_size, 1)
        check_int("seed", seed, 0)
        check_share("newest_weight", newest_weight)
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr < 1:
            raise OpError(f"lr must be a number in (0, 1), got {lr!r}")
        self._reset()

    def _train(self, x: np.ndarray, at: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Seeded float32 training; the weights come back as float64 ``(in, out)`` arrays."""
        torch = _torch()
        width = x.shape[1]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 1_000_003 + at)
            net = torch.nn.Sequential(
                torch.nn.Linear(width, self.hidden), torch.nn.ReLU(),
                torch.nn.Linear(self.hidden, self.bottleneck),
                torch.nn.Linear(self.bottleneck, self.hidden), torch.nn.ReLU(),
                torch.nn.Linear(self.hidden, width))
            optimizer = torch.optim.Adam(net.parameters(), lr=self.lr)
            data = torch.as_tensor(x, dtype=torch.float32)
            for _ in range(self.epochs):
                order = torch.randperm(len(data))
                for start in range(0, len(data), self.batch_size):
                    batch = data[order[start:start + self.batch_size]]
                    optimizer.zero_grad()
                    loss = torch.nn.functional.mse_loss(net(batch), batch)
                    loss.backward()
                    optimizer.step()
        return [(layer.weight.detach().double().numpy().T.copy(),
                 layer.bias.detach().double().numpy().copy())
                for layer in net if isinstance(layer, torch.nn.Linear)]

    def _fit(self, rows: np.ndarray, at: int) -> Any:
        center, scale = robust_scale(rows)
        windows = sliding_window_view(rows, self.window, axis=0).transpose(0, 2, 1)
        return self._train(window_features(windows, center, scale, diffs=False), at), center, scale

    def _raw(self, model: Any, windows: np.ndarray) -> np.ndarray:
        layers, center, scale = model
        x = window_features(windows, center, scale, diffs=False)
        error = (forward(layers, x) - x) ** 2
        newest = error[:, -windows.shape[2]:]
        mixed = (1.0 - self.newest_weight) * _mean(error) + self.newest_weight * _mean(newest)
        return np.sqrt(mixed)


def _mean(x: np.ndarray) -> np.ndarray:
    """Row means added in a fixed order: one row alone gives the bits it gives in a batch."""
    return np.add.accumulate(x, axis=1)[:, -1] / x.shape[1]
