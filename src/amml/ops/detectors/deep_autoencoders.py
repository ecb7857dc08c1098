"""Convolutional and LSTM autoencoders (PyTorch) over sliding windows, fitted on a reference.

* ``conv_autoencoder``: SKAB's Conv-AE shape (two strided 1-D convolutions of kernel 7 down,
  two transposed ones up, dropout between), over windows of ``window`` rows of all columns.
* ``lstm_autoencoder``: an LSTM encoder whose last state is repeated over the window and
  decoded by a second LSTM and a linear layer (SKAB's LSTM-AE shape).

Both train once, in ``fit(reference)``, on every window of the reference (standardised by the
reference's mean and deviation), seeded (``torch.manual_seed`` inside ``fork_rng``, so the
caller's random state is left alone), for ``epochs`` of Adam, on ``device``: ``"cpu"`` (the
default: the same weights on every machine), ``"cuda"`` / ``"cuda:N"`` (an error where PyTorch
sees no such GPU), or ``"auto"`` (a GPU where there is one). Only training runs there: the
trained weights come back to the CPU, so scoring, saving and loading are the same wherever the
detector was trained (a GPU trains to slightly different weights than the CPU does).
A row's raw score is the mean absolute reconstruction error of the window that ends on it
(causal: the window looks back only); the first ``window - 1`` rows with nothing to look back
on score NaN. Scoring runs in float64 in eval mode (no dropout), one window at a time or many,
to the same numbers. The weights are saved as arrays (safetensors), never pickled.

>>> import numpy as np
>>> from amml.ops.detectors.deep_autoencoders import ConvAutoencoderDetector
>>> t = np.arange(700)
>>> rows = np.column_stack([np.sin(t / 6), np.cos(t / 6)])
>>> rows[600:610, 1] *= -1  # the phase relation breaks, each column in its usual range
>>> detector = ConvAutoencoderDetector(window=16, epochs=30).fit(rows[:400])
>>> scores = detector.score(rows[400:])
>>> bool(np.nanmax(scores[200:215]) > 0.5 > np.nanmax(scores[:150]))
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from amml._exceptions import OpError
from amml.ops.detectors.base import register_detector
from amml.ops.detectors.fitted import FittedDetector
from amml.ops.detectors.windowed import check_int


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a dev dependency
        raise OpError("the autoencoder detectors need PyTorch: pip install 'amml[torch]'"
                      ) from exc
    return torch


def _conv_net(torch: Any, columns: int, window: int, dropout: float) -> Any:
    nn = torch.nn

    class ConvAE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encode = nn.Sequential(
                nn.Conv1d(columns, 32, 7, stride=2, padding=3), nn.ReLU(), nn.Dropout(dropout),
                nn.Conv1d(32, 16, 7, stride=2, padding=3), nn.ReLU())
            self.decode = nn.Sequential(
                nn.ConvTranspose1d(16, 16, 7, stride=2, padding=3, output_padding=1),
                nn.ReLU(), nn.Dropout(dropout),
                nn.ConvTranspose1d(16, 32, 7, stride=2, padding=3, output_padding=1),
                nn.ReLU(), nn.Conv1d(32, columns, 7, padding=3))

        def forward(self, x: Any) -> Any:  # x: (batch, window, columns)
            y = self.decode(self.encode(x.transpose(1, 2)))[:, :, :window]
            return y.transpose(1, 2)

    return ConvAE()


def _lstm_net(torch: Any, columns: int, window: int, hidden: int) -> Any:
    nn = torch.nn

    class LSTMAE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.LSTM(columns, hidden, batch_first=True)
            self.decoder = nn.LSTM(hidden, hidden, batch_first=True)
            self.out = nn.Linear(hidden, columns)

        def forward(self, x: Any) -> Any:
            _, (state, _) = self.encoder(x)
            repeated = state[-1][:, None, :].expand(-1, x.shape[1], -1)
            decoded, _ = self.decoder(repeated)
            return self.out(decoded)

    return LSTMAE()


class _WindowAutoencoder(FittedDetector):
    """Shared training and scoring of the two autoencoders."""

    skip_checks = {"finds_spike": "a row's score is the reconstruction error of the window "
                                  "ending on it: a spike raises every window that holds it, "
                                  "so the top score may fall up to window - 1 rows after it"}

    window: int
    epochs: int
    lr: float
    batch_size: int
    seed: int
    device: str

    def _check_net(self) -> None:
        check_int("window", self.window, 4)
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 1)
        check_int("seed", self.seed, 0)
        if isinstance(self.lr, bool) or not isinstance(self.lr, int | float) \
                or not 0 < self.lr < 1:
            raise OpError(f"lr must be a number in (0, 1), got {self.lr!r}")
        if not isinstance(self.device, str) or not (
                self.device in ("cpu", "cuda", "auto")
                or (self.device.startswith("cuda:") and self.device[5:].isdigit())):
            raise OpError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', "
                          f"got {self.device!r}")
        self.lookback = self.window - 1
        self._check_common()

    def _build(self, columns: int) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _features(self, z: np.ndarray) -> np.ndarray:
        smoothed = super()._features(z)
        return sliding_window_view(smoothed, self.window, axis=0).transpose(0, 2, 1)

    def _fit_model(self, features: np.ndarray) -> None:
        torch = _torch()
        from amml.ops.models.torch_training import resolve_device

        self._columns = features.shape[2]
        device = resolve_device(self.device)
        # the caller's random state on the training device is left alone too
        rng_devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=rng_devices):
            torch.manual_seed(self.seed)
            net = self._build(self._columns).to(device)
            optimizer = torch.optim.Adam(net.parameters(), lr=self.lr)
            data = torch.as_tensor(np.array(features, dtype=np.float32), device=device)
            net.train()
            for _ in range(self.epochs):
                # drawn on the CPU: the same batches whichever device trains
                order = torch.randperm(len(data)).to(device)
                for start in range(0, len(data), self.batch_size):
                    batch = data[order[start:start + self.batch_size]]
                    optimizer.zero_grad()
                    loss = torch.nn.functional.l1_loss(net(batch), batch)
                    loss.backward()
                    optimizer.step()
        self._set_net(net.cpu())

    def _set_net(self, net: Any) -> None:
        self._net = net.double().eval()

    def _raw(self, features: np.ndarray) -> np.ndarray:
        torch = _torch()
        out = np.empty(len(features))
        with torch.no_grad():
            for start in range(0, len(features), 1024):
                x = torch.as_tensor(np.array(features[start:start + 1024], dtype=np.float64))
                error = (self._net(x) - x).abs().numpy()
                out[start:start + len(x)] = error.reshape(len(x), -1).mean(axis=1)
        return out

    def _model_arrays(self) -> dict[str, np.ndarray]:
        arrays = {k: v.detach().numpy().copy() for k, v in self._net.state_dict().items()}
        arrays["columns"] = np.array([self._columns])
        return arrays

    def _set_model_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        torch = _torch()
        self._columns = int(arrays["columns"][0])
        net = self._build(self._columns).double()
        net.load_state_dict({k: torch.as_tensor(v) for k, v in arrays.items()
                             if k != "columns"})
        self._set_net(net)


@register_detector
class ConvAutoencoderDetector(_WindowAutoencoder):
    """SKAB-style convolutional autoencoder (see the module docstring)."""

    name = "conv_autoencoder"

    def __init__(self, window: int = 60, warmup: int = 400, smooth: int = 1,
                 epochs: int = 40, lr: float = 0.001, batch_size: int = 32,
                 dropout: float = 0.2, seed: int = 0, threshold: str = "quantile",
                 quantile: float = 1.0, factor: float = 1.5, risk: float = 1e-3,
                 refit: int = 0, history: int = 1000, device: str = "cpu") -> None:
        self.window, self.warmup, self.smooth = window, warmup, smooth
        self.epochs, self.lr, self.batch_size, self.dropout = epochs, lr, batch_size, dropout
        self.seed, self.device = seed, device
        self.threshold, self.quantile, self.factor, self.risk = threshold, quantile, factor, risk
        self.refit, self.history = refit, history
        self._check_net()

    def _build(self, columns: int) -> Any:
        return _conv_net(_torch(), columns, self.window, self.dropout)


@register_detector
class LSTMAutoencoderDetector(_WindowAutoencoder):
    """SKAB-style LSTM autoencoder (see the module docstring)."""

    name = "lstm_autoencoder"

    def __init__(self, window: int = 10, warmup: int = 400, smooth: int = 1, hidden: int = 32,
                 epochs: int = 40, lr: float = 0.005, batch_size: int = 32, seed: int = 0,
                 threshold: str = "quantile", quantile: float = 1.0, factor: float = 1.5,
                 risk: float = 1e-3, refit: int = 0, history: int = 1000,
                 device: str = "cpu") -> None:
        self.window, self.warmup, self.smooth, self.hidden = window, warmup, smooth, hidden
        self.epochs, self.lr, self.batch_size, self.seed = epochs, lr, batch_size, seed
        self.device = device
        self.threshold, self.quantile, self.factor, self.risk = threshold, quantile, factor, risk
        self.refit, self.history = refit, history
        check_int("hidden", hidden, 1)
        self._check_net()

    def _build(self, columns: int) -> Any:
        return _lstm_net(_torch(), columns, self.window, self.hidden)
