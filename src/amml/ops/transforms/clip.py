"""``clip``: cap outliers at limits learnt on the training part (sigma, IQR or quantiles)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from amml._lazy import pandas as pd
from amml.lang.spec import Input
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import register
from amml.ops.transforms.scaling import numeric_columns


@register
class Clip(Op):
    name = "clip"
    inputs = {"table": Input("table"), "fit": Input("table", required=False)}
    outputs = {"out": "table", "limits": "json"}

    class Config(OpConfig):
        method: Literal["sigma", "iqr", "quantile"] = "sigma"
        k: float = Field(4.0, gt=0, description="sigmas, or IQR multiples")
        quantiles: tuple[float, float] = (0.001, 0.999)
        fit_fraction: float = Field(1.0, gt=0, le=1)
        columns: list[str] | None = None
        exclude: list[str] = Field(default_factory=list)

    def run(self, ctx: StepContext, table: pd.DataFrame,
            fit: pd.DataFrame | None = None) -> dict[str, object]:
        c = self.config
        basis = fit if fit is not None else table.iloc[: max(1, int(len(table)
                                                                   * c.fit_fraction))]
        limits: dict[str, list[float]] = {}
        out = table.copy()
        clipped = 0
        for column in numeric_columns(basis, c.exclude, c.columns):
            values = basis[column].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            if c.method == "sigma":
                low, high = values.mean() - c.k * values.std(), values.mean() + c.k * values.std()
            elif c.method == "iqr":
                q1, q3 = np.percentile(values, [25, 75])
                low, high = q1 - c.k * (q3 - q1), q3 + c.k * (q3 - q1)
            else:
                low, high = np.quantile(values, c.quantiles)
            limits[str(column)] = [float(low), float(high)]
            series = out[column].astype(float)
            clipped += int(((series < low) | (series > high)).sum())
            out[column] = series.clip(low, high)
        ctx.log_metric("clipped", clipped)
        return {"out": out, "limits": limits}
