"""``difference``: x(t) - x(t - lag), repeated ``order`` times (lag 24 removes a daily cycle)."""

from __future__ import annotations

from pydantic import Field

from amml._lazy import pandas as pd
from amml.lang.spec import Input
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import register
from amml.ops.transforms.scaling import numeric_columns


@register
class Difference(Op):
    name = "difference"
    inputs = {"table": Input("table")}
    outputs = {"out": "table"}

    class Config(OpConfig):
        lag: int = Field(1, ge=1)
        order: int = Field(1, ge=1, le=3)
        columns: list[str] | None = None
        dropna: bool = True

    def run(self, ctx: StepContext, table: pd.DataFrame) -> pd.DataFrame:
        c = self.config
        out = table.copy()
        columns = numeric_columns(out, include=c.columns)
        for _ in range(c.order):
            out[columns] = out[columns].diff(c.lag)
        if c.dropna:
            out = out.iloc[c.lag * c.order:]
        ctx.log_metric("rows", len(out))
        return out
