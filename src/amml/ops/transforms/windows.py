"""``windows``: sliding (lookback, horizon) windows as arrays for sequence models.

``x`` has shape (windows, lookback, features), ``y`` (windows, horizon, targets); every
``stride``-th window is kept, none is dropped at the end.

>>> import numpy as np, pandas as pd
>>> from amml.ops.base import StepContext
>>> t = pd.DataFrame({"a": np.arange(10.0), "b": np.arange(10.0) * 2})
>>> out = Windows(lookback=4, horizon=2, targets=["b"]).run(StepContext(), t)
>>> out["x"].shape, out["y"].shape, out["y"][0, :, 0].tolist()
((5, 4, 2), (5, 2, 1), [8.0, 10.0])
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import Field

from amml._exceptions import OpError
from amml._lazy import pandas as pd
from amml.lang.spec import Input
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import register
from amml.ops.transforms.scaling import numeric_columns


def sliding_windows(table: pd.DataFrame, columns: list[str], outputs: list[str], lookback: int,
                    horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Every stride-1 (lookback, horizon) window: x (N, L, C), y (N, H, C_out), as views."""
    if len(table) < lookback + horizon:
        raise OpError(f"{len(table)} rows are fewer than lookback + horizon "
                      f"({lookback} + {horizon})")
    values = table[columns].to_numpy(np.float32)
    targets = table[outputs].to_numpy(np.float32)
    x = sliding_window_view(values[: len(values) - horizon], lookback, axis=0)
    y = sliding_window_view(targets[lookback:], horizon, axis=0)
    return x.transpose(0, 2, 1), y.transpose(0, 2, 1)


@register
class Windows(Op):
    name = "windows"
    inputs = {"table": Input("table")}
    outputs = {"x": "array", "y": "array"}

    class Config(OpConfig):
        lookback: int = Field(ge=1)
        horizon: int = Field(ge=1)
        stride: int = Field(1, ge=1)
        features: list[str] | None = None
        targets: list[str] | None = None

    def run(self, ctx: StepContext, table: pd.DataFrame) -> dict[str, np.ndarray]:
        c = self.config
        features = numeric_columns(table, include=c.features)
        targets = numeric_columns(table, include=c.targets or features)
        try:
            x, y = sliding_windows(table, features, targets, c.lookback, c.horizon)
        except OpError as exc:
            raise OpError(f"windows: {exc}") from None
        x = np.ascontiguousarray(x[:: c.stride])
        y = np.ascontiguousarray(y[:: c.stride])
        ctx.log_metrics({"windows": len(x)})
        return {"x": x, "y": y}
