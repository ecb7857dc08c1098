"""``lstm``: an LSTM encoder over each channel (minus its last value) with a linear head over
its last state. ``options``: ``hidden`` 64, ``layers`` 1.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from amml.ops.models.contract import register_kind
from amml.ops.models.torch_model import TorchForecaster, select_target


@cache
def _net_class() -> type:
    """Defined on first use so that PyTorch loads only then."""
    from amml.ops.models.torch_training import torch

    nn = torch.nn

    class LSTMNet(nn.Module):
        def __init__(self, lookback: int, horizon: int, target_index: int | None,
                     hidden: int = 64, layers: int = 1) -> None:
            super().__init__()
            self.target_index = target_index
            self.lstm = nn.LSTM(1, hidden, layers, batch_first=True)
            self.head = nn.Linear(hidden, horizon)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            batch, length, channels = x.shape
            last = x[:, -1:, :]
            seq = (x - last).permute(0, 2, 1).reshape(batch * channels, length, 1)
            _, (state, _) = self.lstm(seq)
            out = self.head(state[-1]).reshape(batch, channels, -1).permute(0, 2, 1)
            return select_target(out + last, self.target_index)

    return LSTMNet


@register_kind
class LSTM(TorchForecaster):
    kind = "lstm"

    def build_net(self, channels: int, target_index: int | None) -> Any:
        return _net_class()(self.lookback, self.horizon, target_index, **self.options)
