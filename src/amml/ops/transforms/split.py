"""``split``: chronological train / validation / test splits.

* ``fraction``: the first ``train`` share of rows, then ``val``, then the rest;
* ``ett``: the split the long-horizon forecasting literature uses for the ETT data (Informer,
  Autoformer, DLinear, PatchTST): 12 months train, 4 validation, 4 test, a month being 30
  days, with ``overlap`` (the lookback) rows of context repeated before validation and test;
* ``dates``: ``val_start`` and ``test_start`` timestamps.

``overlap`` lets the first validation/test window see a full lookback of history, so no
evaluation window is lost at the borders.

>>> import numpy as np, pandas as pd
>>> from amml.ops.base import StepContext
>>> hours = pd.DataFrame({"OT": np.arange(17420.0)},
...                      index=pd.date_range("2016-07-01", periods=17420, freq="h"))
>>> parts = Split(mode="ett", overlap=336).run(StepContext(), hours)
>>> [len(parts[p]) for p in ("train", "val", "test")]
[8640, 3216, 3216]
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from amml._exceptions import OpError
from amml._lazy import pandas as pd
from amml.lang.spec import Input
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import register

DAYS_PER_MONTH = 30  # as in the reference ETT data loaders


@register
class Split(Op):
    name = "split"
    inputs = {"table": Input("table")}
    outputs = {"train": "table", "val": "table", "test": "table"}

    class Config(OpConfig):
        mode: Literal["fraction", "ett", "dates"] = "fraction"
        train: float = Field(0.7, gt=0, lt=1)
        val: float = Field(0.1, ge=0, lt=1)
        overlap: int = Field(0, ge=0, description="rows of context repeated at each border")
        months: tuple[int, int, int] = (12, 4, 4)
        points_per_day: int | None = Field(None, ge=1)
        val_start: str | None = None
        test_start: str | None = None

        @model_validator(mode="after")
        def _consistent(self) -> Split.Config:
            if self.mode == "fraction" and self.train + self.val >= 1:
                raise ValueError("train + val must leave rows for test (sum below 1)")
            if self.mode == "dates" and not (self.val_start and self.test_start):
                raise ValueError("mode 'dates' needs val_start and test_start")
            return self

    def _borders(self, table: pd.DataFrame) -> tuple[int, int, int]:
        c = self.config
        n = len(table)
        if c.mode == "fraction":
            return int(n * c.train), int(n * (c.train + c.val)), n
        if c.mode == "dates":
            index = table.index
            if not isinstance(index, pd.DatetimeIndex):
                raise OpError("split: mode 'dates' needs a time index")
            a = int(index.searchsorted(pd.Timestamp(c.val_start)))
            b = int(index.searchsorted(pd.Timestamp(c.test_start)))
            return a, b, n
        per_day = c.points_per_day or _points_per_day(table)
        month = DAYS_PER_MONTH * per_day
        a, b, end = (c.months[0] * month, (c.months[0] + c.months[1]) * month,
                     sum(c.months) * month)
        if end > n:
            raise OpError(f"split: mode 'ett' needs {end} rows ({sum(c.months)} months of "
                          f"{per_day} points a day), the table has {n}")
        return a, b, end

    def run(self, ctx: StepContext, table: pd.DataFrame) -> dict[str, pd.DataFrame]:
        a, b, end = self._borders(table)
        k = self.config.overlap
        if not 0 < a < b <= end or a - k < 0:
            raise OpError(f"split: borders {a}, {b}, {end} leave an empty part "
                          f"(rows: {len(table)}, overlap {k})")
        parts = {"train": table.iloc[:a], "val": table.iloc[a - k:b],
                 "test": table.iloc[b - k:end]}
        ctx.log_metrics({f"{name}_rows": len(part) for name, part in parts.items()})
        return parts


def _points_per_day(table: pd.DataFrame) -> int:
    index = table.index
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 2:
        raise OpError("split: mode 'ett' needs a regular time index (or points_per_day)")
    step = pd.Series(index[1:] - index[:-1]).median()
    return round(pd.Timedelta(days=1) / step)
