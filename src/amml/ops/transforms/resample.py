"""``resample``: aggregate a time-indexed table to a regular frequency.

>>> import pandas as pd
>>> from amml.ops.base import StepContext
>>> times = pd.to_datetime(["2024-01-01 00:10", "2024-01-01 00:50", "2024-01-01 01:05"])
>>> t = pd.DataFrame({"x": [1.0, 3.0, 5.0]}, index=times)
>>> Resample(freq="1h").run(StepContext(), t)["x"].tolist()
[2.0, 5.0]
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from amml._exceptions import OpError
from amml._lazy import pandas as pd
from amml.lang.spec import Input
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import register

Aggregate = Literal["mean", "sum", "min", "max", "median", "first", "last", "count", "std"]


def time_indexed(table: pd.DataFrame, op_name: str) -> pd.DatetimeIndex:
    if not isinstance(table.index, pd.DatetimeIndex):
        raise OpError(f"{op_name}: the table needs a time index (set 'time:' on its source)")
    return table.index


@register
class Resample(Op):
    name = "resample"
    inputs = {"table": Input("table")}
    outputs = {"out": "table"}

    class Config(OpConfig):
        freq: str
        agg: Aggregate = "mean"
        per_column: dict[str, Aggregate] = Field(default_factory=dict)
        label: Literal["left", "right"] = "left"

    def run(self, ctx: StepContext, table: pd.DataFrame) -> pd.DataFrame:
        c = self.config
        time_indexed(table, self.name)
        try:
            grouped = table.resample(c.freq, label=c.label)
        except ValueError as exc:
            raise OpError(f"resample: invalid frequency '{c.freq}': {exc}") from None
        how = {col: c.per_column.get(col, c.agg) for col in table.columns}
        out = grouped.agg(how) if c.per_column else grouped.agg(c.agg)
        ctx.log_metrics({"rows_in": len(table), "rows_out": len(out),
                         "empty_intervals": int(out.isna().all(axis=1).sum())})
        return out
