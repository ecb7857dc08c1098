"""``detect.zscore``: causal rolling z-score per column, an alarm where it passes a threshold.

Each point is scored against the mean and deviation of the ``window`` points before it (no
look-ahead), so the same score is available on a live stream. The first rows, with fewer than
``max(3, window // 4)`` points before them, are warm-up rows: NaN, not a score (no alarm);
a point after a constant stretch (no deviation), or a missing one, scores 0.

>>> import numpy as np, pandas as pd
>>> from amml.ops.detectors.zscore import rolling_zscore
>>> values = pd.Series(np.r_[np.zeros(50) + np.random.default_rng(0).normal(0, 1, 50), 12.0])
>>> scores = rolling_zscore(values, window=30)
>>> bool(scores.iloc[-1] > 5), bool(scores.iloc[:7].isna().all() and scores.iloc[7:].notna().all())
(True, True)
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from amml._exceptions import OpError
from amml._lazy import pandas as pd
from amml.lang.spec import Input
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import register


def rolling_zscore(values: pd.Series, window: int) -> pd.Series:
    past = values.shift(1).rolling(window, min_periods=max(3, window // 4))
    mean, std = past.mean(), past.std()
    z = ((values - mean).abs() / std.replace(0, np.nan)).fillna(0.0)  # gap or flat: 0
    return z.where(mean.notna())  # warm-up rows: NaN


@register
class ZScoreDetector(Op):
    name = "detect.zscore"
    inputs = {"table": Input("table")}
    outputs = {"out": "table"}

    class Config(OpConfig):
        columns: list[str] | None = None
        window: int = Field(48, ge=3)
        threshold: float = Field(4.0, gt=0)
        label: str | None = Field(None, description="0/1 column to score the alarms against")

    def run(self, ctx: StepContext, table: pd.DataFrame) -> pd.DataFrame:
        c = self.config
        columns = c.columns or [col for col in table.columns if col != c.label
                                and pd.api.types.is_numeric_dtype(table[col])]
        missing = [col for col in columns if col not in table.columns]
        if missing:
            raise OpError(f"columns {missing} not found")
        scores = pd.DataFrame({f"score_{col}": rolling_zscore(table[col].astype(float),
                                                              c.window) for col in columns},
                              index=table.index)
        scores["score"] = scores.max(axis=1)
        scores["alarm"] = (scores["score"] > c.threshold).astype(np.int8)
        ctx.log_metric("alarms", int(scores["alarm"].sum()))
        if c.label is not None:
            if c.label not in table.columns:
                raise OpError(f"label column '{c.label}' not found")
            truth = table[c.label].astype(bool).to_numpy()
            alarm = scores["alarm"].astype(bool).to_numpy()
            tp = int((truth & alarm).sum())
            precision = tp / max(int(alarm.sum()), 1)
            recall = tp / max(int(truth.sum()), 1)
            ctx.log_metrics({"precision": precision, "recall": recall})
            scores[c.label] = table[c.label]
        return scores
