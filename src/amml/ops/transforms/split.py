"""``split``: chronological train / validation / test split by fractions of the rows."""

from __future__ import annotations

import pandas as pd
from pydantic import Field, model_validator

from amml.lang.spec import Input
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import register


@register
class Split(Op):
    name = "split"
    inputs = {"table": Input("table")}
    outputs = {"train": "table", "val": "table", "test": "table"}

    class Config(OpConfig):
        train: float = Field(0.7, gt=0, lt=1)
        val: float = Field(0.1, ge=0, lt=1)
        overlap: int = Field(0, ge=0, description="rows of context repeated at each border")

        @model_validator(mode="after")
        def _fractions(self) -> Split.Config:
            if self.train + self.val >= 1:
                raise ValueError("train + val must leave rows for test (sum below 1)")
            return self

    def run(self, ctx: StepContext, table: pd.DataFrame) -> dict[str, pd.DataFrame]:
        n = len(table)
        a = int(n * self.config.train)
        b = int(n * (self.config.train + self.config.val))
        k = self.config.overlap
        parts = {"train": table.iloc[:a], "val": table.iloc[max(a - k, 0):b],
                 "test": table.iloc[max(b - k, 0):]}
        ctx.log_metrics({f"{name}_rows": len(part) for name, part in parts.items()})
        return parts
