"""``explain``: attributions of a forecaster's predictions on the windows of a table.

The last ``windows`` stride-1 windows of ``table`` (the model's units, as ``evaluate`` takes
them) are explained against a background of ``background`` windows drawn evenly from the
table's first part; each window's attributions are summed by input channel and by lag band.
Outputs: ``attributions`` (JSON: per window, base, prediction, sums; with ``full`` every
value) and ``plot`` (a PNG of the last window). With the ``scaler`` the output side is in
original units.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from amml._exceptions import OpError
from amml._lazy import pandas as pd
from amml.lang.spec import Input
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.explain.attribution import ModelExplainer, in_original_units
from amml.ops.explain.plot import explanation_png
from amml.ops.registry import register


@register
class Explain(Op):
    """Per-prediction SHAP attributions of a model, by input channel and lag band, and a PNG."""

    name = "explain"
    depends_on = ("amml.ops.models",)  # the explained model's kind runs
    inputs = {"model": Input("model"), "table": Input("table"),
              "scaler": Input("json", required=False)}
    outputs = {"attributions": "json", "plot": "image"}

    class Config(OpConfig):
        windows: int = Field(16, ge=1, le=10_000, description="explain the last N windows")
        background: int = Field(32, ge=1, le=1000, description="background windows, drawn "
                                "evenly from the windows before the explained ones")
        step: int | None = Field(None, ge=1, description="explain this horizon step (default: "
                                 "the forecast averaged over the horizon)")
        method: Literal["auto", "linear", "gradient", "kernel"] = "auto"
        nsamples: int = Field(32, ge=1, le=5000, description="samples per window (gradient)")
        bands: list[int] | None = Field(None, description="upper lag of each lag band")
        full: bool = Field(False, description="keep every input value's attribution")

    def run(self, ctx: StepContext, model: Any, table: pd.DataFrame,
            scaler: dict | None = None) -> dict[str, Any]:
        c = self.config
        columns = list(getattr(model, "columns", []))
        missing = [col for col in columns if col not in table.columns]
        if missing:
            raise OpError(f"explain: the table lacks the model's columns {missing}")
        values = table[columns].to_numpy(dtype=np.float64)
        lookback = int(model.lookback)
        count = len(values) - lookback + 1
        if count < 2:
            raise OpError(f"explain: the table has {len(values)} rows; it needs more than the "
                          f"lookback ({lookback})")
        starts = np.arange(count)
        windows = np.lib.stride_tricks.sliding_window_view(values, lookback, axis=0)
        windows = windows.transpose(0, 2, 1)  # (count, lookback, columns)
        explained = starts[-min(c.windows, count - 1):]
        pool = starts[: explained[0]]
        background = windows[pool[np.linspace(0, len(pool) - 1, min(c.background, len(pool)))
                                  .astype(int)]]
        explainer = ModelExplainer(model, background, step=c.step, method=c.method,
                                   nsamples=c.nsamples, bands=c.bands)
        explanation = explainer.explain(windows[explained])
        from amml.ops.transforms.scaling import Scaler

        explanation = in_original_units(explanation, Scaler(scaler) if scaler else None)
        index = table.index
        items = []
        for i, start in enumerate(explained):
            item = explanation.to_json(i, full=c.full)
            item["window_end"] = str(index[start + lookback - 1])
            items.append(item)
        ctx.log_metric("explained_windows", len(items))
        return {"attributions": {"model": getattr(model, "kind", type(model).__name__),
                                 "method": explainer.method, "target": explainer.target,
                                 "columns": columns, "outputs": list(model.outputs),
                                 "lag_bands": explanation.band_names, "windows": items},
                "plot": explanation_png(explanation, len(items) - 1)}
