"""``fill``: fill gaps by carrying forward/back, linear interpolation, or the same time one
season earlier (``seasonal``, e.g. yesterday's value at this hour).

>>> import pandas as pd, numpy as np
>>> from amml.ops.base import StepContext
>>> t = pd.DataFrame({"x": [1.0, 2.0, 3.0, 1.0, np.nan, 3.0]})
>>> Fill(method="seasonal", period=3).run(StepContext(), t)["x"].tolist()
[1.0, 2.0, 3.0, 1.0, 2.0, 3.0]
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from amml._lazy import pandas as pd
from amml.lang.spec import Input
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import register
from amml.ops.transforms.scaling import numeric_columns


@register
class Fill(Op):
    name = "fill"
    inputs = {"table": Input("table")}
    outputs = {"out": "table"}

    class Config(OpConfig):
        method: Literal["ffill", "bfill", "linear", "seasonal", "zero"] = "linear"
        period: int | None = Field(None, ge=1, description="season length in rows (seasonal)")
        limit: int | None = Field(None, ge=1)
        columns: list[str] | None = None

    def run(self, ctx: StepContext, table: pd.DataFrame) -> pd.DataFrame:
        c = self.config
        out = table.copy()
        columns = numeric_columns(out, include=c.columns)
        before = int(out[columns].isna().sum().sum())
        data = out[columns]
        if c.method == "ffill":
            data = data.ffill(limit=c.limit)
        elif c.method == "bfill":
            data = data.bfill(limit=c.limit)
        elif c.method == "linear":
            data = data.interpolate(method="linear", limit=c.limit, limit_area="inside")
        elif c.method == "zero":
            data = data.fillna(0.0)
        else:
            period = c.period or 24
            for _ in range(len(data) // period + 1):  # gaps longer than a season need repeats
                shifted = data.shift(period)
                if not data.isna().any().any():
                    break
                data = data.fillna(shifted)
        out[columns] = data
        after = int(out[columns].isna().sum().sum())
        ctx.log_metrics({"filled": before - after, "still_missing": after})
        return out
