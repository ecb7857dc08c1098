"""``align``: put several series on one time index (inner or outer join, optional resample).

Columns keep their names; when two tables share a column name, each is prefixed by the
table's position in ``names`` (or ``s0_``, ``s1_``...).
"""

from __future__ import annotations

from typing import Literal

from amml._exceptions import OpError
from amml._lazy import pandas as pd
from amml.lang.spec import Input
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import register
from amml.ops.transforms.resample import Aggregate, time_indexed


@register
class Align(Op):
    name = "align"
    inputs = {"tables": Input("table", many=True)}
    outputs = {"out": "table"}

    class Config(OpConfig):
        how: Literal["inner", "outer"] = "inner"
        freq: str | None = None
        agg: Aggregate = "mean"
        names: list[str] | None = None

    def run(self, ctx: StepContext, tables: list[pd.DataFrame]) -> pd.DataFrame:
        c = self.config
        if c.names is not None and len(c.names) != len(tables):
            raise OpError(f"align: {len(c.names)} names for {len(tables)} tables")
        prefixes = c.names or [f"s{i}" for i in range(len(tables))]
        seen: dict[str, int] = {}
        for table in tables:
            time_indexed(table, self.name)
            for column in table.columns:
                seen[column] = seen.get(column, 0) + 1
        parts = []
        for prefix, table in zip(prefixes, tables, strict=True):
            if c.freq:
                table = table.resample(c.freq).agg(c.agg)
            renamed = {col: f"{prefix}_{col}" for col in table.columns if seen[col] > 1}
            parts.append(table.rename(columns=renamed))
        out = pd.concat(parts, axis=1, join=c.how).sort_index()
        ctx.log_metrics({"rows": len(out), "columns": out.shape[1]})
        return out
