"""``select``: keep, order and rename columns (so series from different sources line up).

>>> import pandas as pd
>>> from amml.ops.base import StepContext
>>> t = pd.DataFrame({"mean_temp": [1.0], "junk": [0]})
>>> list(Select(columns=["mean_temp"], rename={"mean_temp": "temperature"}).run(
...     StepContext(), t).columns)
['temperature']
"""

from __future__ import annotations

from pydantic import Field

from amml._exceptions import OpError
from amml._lazy import pandas as pd
from amml.lang.spec import Input
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import register


@register
class Select(Op):
    name = "select"
    inputs = {"table": Input("table")}
    outputs = {"out": "table"}

    class Config(OpConfig):
        columns: list[str] | None = None
        rename: dict[str, str] = Field(default_factory=dict)
        dtype: str | None = Field(None, description="cast every kept column, e.g. float64")

    def run(self, ctx: StepContext, table: pd.DataFrame) -> pd.DataFrame:
        c = self.config
        wanted = c.columns or list(table.columns)
        missing = [col for col in [*wanted, *c.rename] if col not in table.columns]
        if missing:
            raise OpError(f"select: columns {missing} not found (columns: "
                          f"{', '.join(map(str, table.columns))})")
        out = table[wanted].rename(columns=c.rename)
        return out.astype(c.dtype) if c.dtype else out
