"""Forecasting networks: (batch, lookback, channels) in, (batch, horizon, outputs) out.

* ``DLinear`` (Zeng et al., 2023): moving-average decomposition, one linear map per part.
* ``NLinear``: subtract the window's last value, one linear map, add it back.
* ``PatchTST`` (Nie et al., 2023), compact: reversible instance normalization, patches of
  the window as tokens, a Transformer encoder, a flatten-linear head.
* ``LSTMForecaster``: an LSTM encoder with a linear head over its last state.

All treat channels independently (each channel is its own sequence, weights shared, or with
``individual=True`` one linear map per channel for the linear models); for ``MS`` (all
channels in, one out) the output is the channel ``target_index``.

Imported only when a PyTorch model is trained or loaded.
"""

from __future__ import annotations

import math

from amml.ops.models.torch_training import torch

nn = torch.nn


class _Head(nn.Module):
    """Picks the target channel for MS; passes every channel otherwise."""

    def __init__(self, target_index: int | None) -> None:
        super().__init__()
        self.target_index = target_index

    def select(self, out: torch.Tensor) -> torch.Tensor:
        if self.target_index is None:
            return out
        return out[:, :, self.target_index : self.target_index + 1]


class _Linear(_Head):
    def __init__(self, lookback: int, horizon: int, channels: int, individual: bool,
                 target_index: int | None) -> None:
        super().__init__(target_index)
        self.individual, self.channels = individual, channels
        count = channels if individual else 1
        self.maps = nn.ModuleList(nn.Linear(lookback, horizon) for _ in range(count))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, C) -> (B, H, C), per channel."""
        if not self.individual:
            return self.maps[0](x.transpose(1, 2)).transpose(1, 2)
        return torch.stack([m(x[:, :, i]) for i, m in enumerate(self.maps)], dim=2)


class NLinear(_Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = x[:, -1:, :]
        return self.select(self.project(x - last) + last)


class RLinear(_Linear):
    """Reversible instance normalization around one linear map (Li et al., 2023): each
    window is scaled by its own mean and deviation, with a learnt affine per channel."""

    def __init__(self, lookback: int, horizon: int, channels: int, individual: bool,
                 target_index: int | None) -> None:
        super().__init__(lookback, horizon, channels, individual, target_index)
        self.gain = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        std = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + 1e-5)
        z = (x - mean) / std * self.gain + self.bias
        out = (self.project(z) - self.bias) / (self.gain + 1e-10)
        return self.select(out * std + mean)


class DLinear(_Linear):
    def __init__(self, lookback: int, horizon: int, channels: int, individual: bool,
                 target_index: int | None, kernel: int = 25) -> None:
        super().__init__(lookback, horizon, channels, individual, target_index)
        count = channels if individual else 1
        self.trend_maps = nn.ModuleList(nn.Linear(lookback, horizon) for _ in range(count))
        self.kernel = kernel

    def _trend(self, x: torch.Tensor) -> torch.Tensor:
        # moving average with the ends padded by repetition, as in the reference code
        pad = (self.kernel - 1) // 2
        front = x[:, :1, :].repeat(1, pad, 1)
        end = x[:, -1:, :].repeat(1, self.kernel - 1 - pad, 1)
        padded = torch.cat([front, x, end], dim=1).transpose(1, 2)
        return nn.functional.avg_pool1d(padded, self.kernel, stride=1).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        trend = self._trend(x)
        seasonal = self.project(x - trend)
        if self.individual:
            trend_out = torch.stack([m(trend[:, :, i]) for i, m in enumerate(self.trend_maps)],
                                    dim=2)
        else:
            trend_out = self.trend_maps[0](trend.transpose(1, 2)).transpose(1, 2)
        return self.select(seasonal + trend_out)


class PatchTST(_Head):
    def __init__(self, lookback: int, horizon: int, channels: int, target_index: int | None,
                 patch_len: int = 16, stride: int = 8, d_model: int = 16, heads: int = 4,
                 layers: int = 3, d_ff: int = 128, dropout: float = 0.3) -> None:
        super().__init__(target_index)
        self.patch_len, self.stride = patch_len, stride
        patches = (lookback - patch_len) // stride + 2  # +1 from end padding, as in the paper
        self.embed = nn.Linear(patch_len, d_model)
        self.position = nn.Parameter(torch.empty(patches, d_model).uniform_(-0.02, 0.02))
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(d_model, heads, d_ff, dropout, batch_first=True,
                                           norm_first=False, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(patches * d_model, horizon)
        self.head_dropout = nn.Dropout(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, channels = x.shape
        mean = x.mean(dim=1, keepdim=True)
        std = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + 1e-5)
        z = ((x - mean) / std).permute(0, 2, 1).reshape(batch * channels, length)
        z = torch.cat([z, z[:, -1:].repeat(1, self.stride)], dim=1)
        tokens = z.unfold(1, self.patch_len, self.stride)  # (B*C, patches, patch_len)
        hidden = self.encoder(self.dropout(self.embed(tokens) + self.position))
        out = self.head_dropout(self.head(hidden.flatten(1)))  # (B*C, H)
        out = out.reshape(batch, channels, -1).permute(0, 2, 1)
        return self.select(out * std + mean)


class LSTMForecaster(_Head):
    def __init__(self, lookback: int, horizon: int, channels: int, target_index: int | None,
                 hidden: int = 64, layers: int = 1) -> None:
        super().__init__(target_index)
        self.lstm = nn.LSTM(1, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, horizon)
        self.scale = 1.0 / math.sqrt(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, channels = x.shape
        last = x[:, -1:, :]
        seq = (x - last).permute(0, 2, 1).reshape(batch * channels, length, 1)
        _, (state, _) = self.lstm(seq)
        out = self.head(state[-1]).reshape(batch, channels, -1).permute(0, 2, 1)
        return self.select(out + last)


def build(kind: str, lookback: int, horizon: int, channels: int,
          target_index: int | None, individual: bool = False,
          options: dict | None = None) -> nn.Module:
    options = options or {}
    if kind == "dlinear":
        return DLinear(lookback, horizon, channels, individual, target_index,
                       kernel=options.get("kernel", 25))
    if kind == "nlinear":
        return NLinear(lookback, horizon, channels, individual, target_index)
    if kind == "rlinear":
        return RLinear(lookback, horizon, channels, individual, target_index)
    if kind == "patchtst":
        return PatchTST(lookback, horizon, channels, target_index, **options)
    if kind == "lstm":
        return LSTMForecaster(lookback, horizon, channels, target_index, **options)
    raise ValueError(f"unknown network '{kind}'")
