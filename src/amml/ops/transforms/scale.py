"""``scale``: z-score, min-max or robust scaling fitted on the training part only.

Give the training split as ``fit`` (or a ``fit_fraction`` of the leading rows) and every
split is scaled with the same parameters; or give a ``scaler`` from an earlier step to apply
it unchanged (how validation, test and serving data get the training transform).
"""

from __future__ import annotations

from pydantic import Field

from amml._exceptions import OpError
from amml._lazy import pandas as pd
from amml.lang.spec import Input
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import register
from amml.ops.transforms.scaling import ScaleKind, apply_scaler, fit_scaler, numeric_columns


@register
class Scale(Op):
    name = "scale"
    inputs = {"table": Input("table"), "fit": Input("table", required=False),
              "scaler": Input("json", required=False)}
    outputs = {"out": "table", "scaler": "json"}

    class Config(OpConfig):
        method: ScaleKind = "zscore"
        columns: list[str] | None = None
        exclude: list[str] = Field(default_factory=list)
        fit_fraction: float = Field(1.0, gt=0, le=1)
        inverse: bool = False

    def run(self, ctx: StepContext, table: pd.DataFrame, fit: pd.DataFrame | None = None,
            scaler: dict | None = None) -> dict[str, object]:
        c = self.config
        if scaler is None:
            if c.inverse:
                raise OpError("scale: inverse needs the 'scaler' input of the forward step")
            basis = fit if fit is not None else table.iloc[: max(1, int(len(table)
                                                                       * c.fit_fraction))]
            columns = numeric_columns(basis, c.exclude, c.columns)
            scaler = fit_scaler(basis, c.method, columns)
        ctx.log_metric("columns", len(scaler))
        return {"out": apply_scaler(table, scaler, inverse=c.inverse), "scaler": scaler}
