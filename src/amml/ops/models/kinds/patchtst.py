"""``patchtst`` (Nie et al., 2023), compact: reversible instance normalization, patches of the
window as tokens, a Transformer encoder and a flatten-linear head, channels independent.
``options``: ``patch_len`` 16, ``stride`` 8, ``d_model`` 16, ``heads`` 4, ``layers`` 3,
``d_ff`` 128, ``dropout`` 0.3.
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

    class PatchTSTNet(nn.Module):
        def __init__(self, lookback: int, horizon: int, target_index: int | None,
                     patch_len: int = 16, stride: int = 8, d_model: int = 16, heads: int = 4,
                     layers: int = 3, d_ff: int = 128, dropout: float = 0.3) -> None:
            super().__init__()
            self.target_index = target_index
            self.patch_len, self.stride = patch_len, stride
            patches = (lookback - patch_len) // stride + 2  # +1 from end padding, as the paper
            self.embed = nn.Linear(patch_len, d_model)
            self.position = nn.Parameter(torch.empty(patches, d_model).uniform_(-0.02, 0.02))
            self.dropout = nn.Dropout(dropout)
            layer = nn.TransformerEncoderLayer(d_model, heads, d_ff, dropout, batch_first=True,
                                               norm_first=False, activation="gelu")
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.head = nn.Linear(patches * d_model, horizon)
            self.head_dropout = nn.Dropout(0.0)
            #: (patches, patch_len) positions of each patch, set for ONNX export only: the
            #: exporter cannot size ``unfold`` on a dynamic batch
            self.patch_index: torch.Tensor | None = None

        def patches(self, z: torch.Tensor) -> torch.Tensor:
            if self.patch_index is not None:  # exporting: one Gather, which ONNX has
                return z[:, self.patch_index]
            return z.unfold(1, self.patch_len, self.stride)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            batch, length, channels = x.shape
            mean = x.mean(dim=1, keepdim=True)
            std = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + 1e-5)
            z = ((x - mean) / std).permute(0, 2, 1).reshape(batch * channels, length)
            z = torch.cat([z, z[:, -1:].repeat(1, self.stride)], dim=1)
            tokens = self.patches(z)  # (B*C, patches, patch_len)
            hidden = self.encoder(self.dropout(self.embed(tokens) + self.position))
            out = self.head_dropout(self.head(hidden.flatten(1)))  # (B*C, H)
            out = out.reshape(batch, channels, -1).permute(0, 2, 1)
            return select_target(out * std + mean, self.target_index)

    return PatchTSTNet


@register_kind
class PatchTST(TorchForecaster):
    kind = "patchtst"

    def build_net(self, channels: int, target_index: int | None) -> Any:
        return _net_class()(self.lookback, self.horizon, target_index, **self.options)

    def export_module(self) -> Any:
        from amml.ops.models.torch_training import torch

        net = super().export_module()
        padded = self.lookback + net.stride
        starts = torch.arange(0, padded - net.patch_len + 1, net.stride)
        net.patch_index = starts[:, None] + torch.arange(net.patch_len)[None, :]
        return net
