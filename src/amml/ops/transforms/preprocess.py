"""``preprocess``: resample, fill gaps, clip outliers and scale, in one step.

The scaler is fitted on the first ``fit_fraction`` of the rows only (the training part) and
returned as a JSON artifact, so evaluation and serving apply exactly the same transform.

>>> import pandas as pd
>>> from amml.ops.transforms.preprocess import Preprocess
>>> frame = pd.DataFrame({"x": [1.0, None, 3.0, 4.0]})
>>> out, scaler = Preprocess(fill="linear", scale="minmax").run(None, frame).values()
>>> out["x"].tolist(), scaler["x"]
([0.0, 0.333..., 0.666..., 1.0], {'kind': 'minmax', 'offset': 1.0, 'scale': 3.0})
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from amml._exceptions import OpError
from amml._lazy import pandas as pd
from amml.lang.spec import Input
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import register
from amml.ops.transforms.scaling import apply_scaler, fit_scaler


@register
class Preprocess(Op):
    name = "preprocess"
    inputs = {"table": Input("table")}
    outputs = {"out": "table", "scaler": "json"}

    class Config(OpConfig):
        resample: str | None = None
        fill: Literal["none", "ffill", "linear"] = "linear"
        scale: Literal["none", "zscore", "minmax"] = "none"
        clip_sigma: float | None = Field(None, gt=0)
        fit_fraction: float = Field(1.0, gt=0, le=1)
        exclude: list[str] = Field(default_factory=list)

    def run(self, ctx: StepContext | None, table: pd.DataFrame) -> dict[str, object]:
        c = self.config
        numeric = [col for col in table.columns
                   if col not in c.exclude and pd.api.types.is_numeric_dtype(table[col])]
        if not numeric:
            raise OpError("preprocess: the table has no numeric columns to process")
        frame = table.copy()
        if c.resample:
            if not isinstance(frame.index, pd.DatetimeIndex):
                raise OpError("preprocess: 'resample' needs a time index; "
                              "set 'time:' on the source")
            frame = frame.resample(c.resample).mean()
        if c.fill == "ffill":
            frame[numeric] = frame[numeric].ffill().bfill()
        elif c.fill == "linear":
            frame[numeric] = frame[numeric].interpolate(method="linear", limit_direction="both")
        fit_rows = max(1, int(len(frame) * c.fit_fraction))
        fit = frame[numeric].iloc[:fit_rows]
        if c.clip_sigma is not None:
            mean, std = fit.mean(), fit.std(ddof=0).replace(0, 1.0)
            frame[numeric] = frame[numeric].clip(mean - c.clip_sigma * std,
                                                 mean + c.clip_sigma * std, axis=1)
        scaler: dict[str, dict[str, object]] = {}
        if c.scale != "none":
            scaler = fit_scaler(fit, c.scale, numeric)
            frame = apply_scaler(frame, scaler)
        if ctx is not None:
            ctx.log_metrics({"rows": len(frame),
                             "missing_after": int(frame[numeric].isna().sum().sum())})
        return {"out": frame, "scaler": scaler}
