"""``features``: lag, rolling-window and calendar features for tabular models.

Rolling statistics look backwards only (no leakage from the future).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from amml._lazy import pandas as pd
from amml.lang.spec import Input
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import register
from amml.ops.transforms.resample import time_indexed
from amml.ops.transforms.scaling import numeric_columns

_ATTRIBUTES = {"dayofweek": "day_of_week", "dayofyear": "day_of_year"}
Calendar = Literal["hour", "dayofweek", "day", "month", "dayofyear", "is_weekend", "minute"]


@register
class Features(Op):
    name = "features"
    inputs = {"table": Input("table")}
    outputs = {"out": "table"}

    class Config(OpConfig):
        columns: list[str] | None = None
        lags: list[int] = Field(default_factory=list)
        rolling: list[int] = Field(default_factory=list)
        stats: list[Literal["mean", "std", "min", "max"]] = Field(
            default_factory=lambda: ["mean", "std"])
        calendar: list[Calendar] = Field(default_factory=list)
        dropna: bool = True

    def run(self, ctx: StepContext, table: pd.DataFrame) -> pd.DataFrame:
        c = self.config
        columns = numeric_columns(table, include=c.columns)
        new: dict[str, pd.Series] = {}
        for column in columns:
            for lag in c.lags:
                new[f"{column}_lag{lag}"] = table[column].shift(lag)
            for window in c.rolling:
                rolling = table[column].rolling(window, min_periods=window)
                for stat in c.stats:
                    new[f"{column}_roll{window}_{stat}"] = getattr(rolling, stat)()
        if c.calendar:
            index = time_indexed(table, self.name)
            for part in c.calendar:
                values = (index.day_of_week >= 5).astype(int) if part == "is_weekend" \
                    else getattr(index, _ATTRIBUTES.get(part, part))
                new[part] = pd.Series(values, index=table.index)
        out = pd.concat([table, pd.DataFrame(new, index=table.index)], axis=1)
        if c.dropna and (c.lags or c.rolling):
            out = out.iloc[max(c.lags + c.rolling + [0]):]
        ctx.log_metrics({"features": len(new), "rows": len(out)})
        return out
