"""The LTSF-Linear family: one linear map from the lookback to the horizon, per channel.

* ``nlinear``: subtract the window's last value, map, add it back.
* ``rlinear`` (Li et al., 2023): reversible instance normalization (each window scaled by its
  own mean and deviation, with a learnt affine per channel) around the map.
* ``dlinear`` (Zeng et al., 2023): moving-average decomposition, one map per part
  (``options: {kernel: 25}``).

Weights are shared by the channels, or with ``individual=True`` one map per channel.
"""

from __future__ import annotations

from functools import cache
from types import SimpleNamespace
from typing import Any

from amml.ops.models.contract import register_kind
from amml.ops.models.torch_model import TorchForecaster, select_target


@cache
def _nets() -> SimpleNamespace:
    """The network classes, defined on first use so that PyTorch loads only then."""
    from amml.ops.models.torch_training import torch

    nn = torch.nn

    class LinearMap(nn.Module):
        def __init__(self, lookback: int, horizon: int, channels: int, individual: bool,
                     target_index: int | None) -> None:
            super().__init__()
            self.individual, self.channels, self.target_index = individual, channels, target_index
            count = channels if individual else 1
            self.maps = nn.ModuleList(nn.Linear(lookback, horizon) for _ in range(count))

        def project(self, x: torch.Tensor, maps: Any = None) -> torch.Tensor:
            """(B, L, C) -> (B, H, C), per channel."""
            maps = self.maps if maps is None else maps
            if not self.individual:
                return maps[0](x.transpose(1, 2)).transpose(1, 2)
            return torch.stack([m(x[:, :, i]) for i, m in enumerate(maps)], dim=2)

    class NLinear(LinearMap):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            last = x[:, -1:, :]
            return select_target(self.project(x - last) + last, self.target_index)

    class RLinear(LinearMap):
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
            return select_target(out * std + mean, self.target_index)

    class DLinear(LinearMap):
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
            out = self.project(x - trend) + self.project(trend, self.trend_maps)
            return select_target(out, self.target_index)

    return SimpleNamespace(NLinear=NLinear, RLinear=RLinear, DLinear=DLinear)


class _LinearFamily(TorchForecaster):
    def __init__(self, lookback: int, horizon: int, columns: list[str] | None = None,
                 outputs: list[str] | None = None, individual: bool = False,
                 options: dict[str, Any] | None = None) -> None:
        self.individual = bool(individual)
        super().__init__(lookback, horizon, columns, outputs, options)


@register_kind
class NLinear(_LinearFamily):
    kind = "nlinear"

    def build_net(self, channels: int, target_index: int | None) -> Any:
        return _nets().NLinear(self.lookback, self.horizon, channels, self.individual,
                               target_index, **self.options)


@register_kind
class RLinear(_LinearFamily):
    kind = "rlinear"

    def build_net(self, channels: int, target_index: int | None) -> Any:
        return _nets().RLinear(self.lookback, self.horizon, channels, self.individual,
                               target_index, **self.options)


@register_kind
class DLinear(_LinearFamily):
    kind = "dlinear"

    def build_net(self, channels: int, target_index: int | None) -> Any:
        return _nets().DLinear(self.lookback, self.horizon, channels, self.individual,
                               target_index, **self.options)
