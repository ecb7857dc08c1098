"""``train`` and ``evaluate``: fit a forecaster on one column, score it on held-out rows."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from amml._exceptions import OpError
from amml.lang.spec import Input
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.models.forecaster import Forecaster, windows
from amml.ops.registry import register


def _column(table: pd.DataFrame, target: str) -> np.ndarray:
    if target not in table.columns:
        raise OpError(f"target column '{target}' not found (columns: "
                      f"{', '.join(map(str, table.columns))})")
    return table[target].to_numpy(dtype=np.float64)


@register
class Train(Op):
    """Fit a forecaster on the ``target`` column of ``train``; report loss on ``val``."""

    name = "train"
    inputs = {"train": Input("table"), "val": Input("table", required=False)}
    outputs = {"model": "model"}

    class Config(OpConfig):
        model: Literal["naive", "seasonal_naive", "linear"] = "linear"
        target: str
        lookback: int = Field(48, ge=1)
        horizon: int = Field(24, ge=1)
        season: int = Field(24, ge=1)
        alpha: float = Field(1e-3, ge=0)

    def run(self, ctx: StepContext, train: pd.DataFrame,
            val: pd.DataFrame | None = None) -> Forecaster:
        c = self.config
        model = Forecaster(c.model, c.lookback, c.horizon, c.season, c.alpha)
        series = _column(train, c.target)
        model.fit(series)
        x, y = windows(series, c.lookback, c.horizon)
        ctx.log_metric("train_mse", float(np.mean((model.predict(x) - y) ** 2)))
        if val is not None:
            vx, vy = windows(_column(val, c.target), c.lookback, c.horizon)
            ctx.log_metric("val_mse", float(np.mean((model.predict(vx) - vy) ** 2)))
        return model


@register
class Evaluate(Op):
    """MSE and MAE over every stride-1 window of ``table``, per forecast step too."""

    name = "evaluate"
    inputs = {"model": Input("model"), "table": Input("table")}
    outputs = {"metrics": "json"}

    class Config(OpConfig):
        target: str

    def run(self, ctx: StepContext, model: Forecaster, table: pd.DataFrame) -> dict:
        x, y = windows(_column(table, self.config.target), model.lookback, model.horizon)
        error = model.predict(x) - y
        mse, mae = float(np.mean(error**2)), float(np.mean(np.abs(error)))
        per_step = np.mean(error**2, axis=0)
        ctx.log_metrics({"mse": mse, "mae": mae, "windows": len(x)})
        ctx.log_batch(("mse_by_horizon", float(v), i + 1) for i, v in enumerate(per_step))
        return {"mse": mse, "mae": mae, "windows": len(x), "model": model.kind}
