"""``report.anomalies``: draw a ``detect`` output as a PNG, to see at a glance what alarmed.

One panel per scored column (the series; each alarm as a red marker on the column whose own
score raised it, or on every column for a multivariate detector) and one for the score (alarms
as red lines, the threshold when the ``detect`` report is connected); labelled anomalies are
shaded in every panel, at least a few pixels wide so a one-row spike shows, so missed events
and false alarms stand out.

>>> import numpy as np, pandas as pd
>>> from amml.ops.detectors.plot import AnomalyPlot
>>> frame = pd.DataFrame({"x": np.sin(np.arange(200) / 5), "score": np.zeros(200),
...                       "alarm": np.zeros(200, dtype=np.int8), "score_x": np.zeros(200),
...                       "is_anomaly": np.zeros(200, dtype=np.int8)})
>>> frame.loc[120, ["score", "alarm", "score_x", "is_anomaly"]] = [0.9, 1, 0.9, 1]
>>> AnomalyPlot(label="is_anomaly").run(None, frame)[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
True
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from pydantic import Field

from amml._exceptions import OpError
from amml._lazy import pandas as pd
from amml.lang.spec import Input
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.detectors.thresholds import runs
from amml.ops.registry import register


@register
class AnomalyPlot(Op):
    """A PNG of the scored series, the score, the alarms and the labelled anomalies."""

    name = "report.anomalies"
    inputs = {"table": Input("table"), "report": Input("json", required=False)}
    outputs = {"plot": "image"}

    class Config(OpConfig):
        columns: list[str] | None = Field(None, description="series to draw (default: those "
                                          "with a score_<col> column, else every numeric one)")
        label: str | None = Field(None, description="0/1 column of labelled anomalies to shade")
        timestamp: str | None = Field(None, description="x axis column (default: the time "
                                      "index, else the first datetime column, else row numbers)")
        title: str | None = None
        width: float = Field(12.0, gt=0, le=100)
        panel_height: float = Field(2.0, gt=0, le=20)

    def run(self, ctx: StepContext | None, table: pd.DataFrame,
            report: dict[str, Any] | None = None) -> bytes:
        c = self.config
        for needed in ("score", "alarm"):
            if needed not in table.columns:
                raise OpError(f"report.anomalies: the table has no '{needed}' column; connect "
                              f"the 'out' output of a 'detect' step")
        if c.label is not None and c.label not in table.columns:
            raise OpError(f"report.anomalies: label column '{c.label}' not found")
        x, x_column = _x_axis(table, c.timestamp)
        columns = _series(table, c.columns, {c.label, x_column})
        return _draw(table, x, columns, c, report or {})


def _x_axis(table: pd.DataFrame, name: str | None) -> tuple[np.ndarray, str | None]:
    if name is not None:
        if name not in table.columns:
            raise OpError(f"report.anomalies: timestamp column '{name}' not found")
        return table[name].to_numpy(), name
    if isinstance(table.index, pd.DatetimeIndex):
        return table.index.to_numpy(), None
    for column in table.columns:
        if pd.api.types.is_datetime64_any_dtype(table[column]):
            return table[column].to_numpy(), column
    return np.arange(len(table)), None


def _series(table: pd.DataFrame, wanted: list[str] | None, skip: set[str | None]) -> list[str]:
    if wanted is not None:
        missing = [col for col in wanted if col not in table.columns]
        if missing:
            raise OpError(f"report.anomalies: columns {missing} not found")
        return list(wanted)
    scored = [col for col in table.columns
              if f"score_{col}" in table.columns and col not in skip]
    if scored:
        return scored
    return [col for col in table.columns if col not in skip and col not in ("score", "alarm")
            and not str(col).startswith("score_")
            and pd.api.types.is_numeric_dtype(table[col])
            and not pd.api.types.is_bool_dtype(table[col])]


def _draw(table: pd.DataFrame, x: np.ndarray, columns: list[str], c: AnomalyPlot.Config,
          report: dict[str, Any]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    count = len(columns) + 1
    figure, axes = plt.subplots(count, 1, figsize=(c.width, c.panel_height * count),
                                sharex=True, squeeze=False)
    alarm = table["alarm"].to_numpy().astype(bool)
    spans = _label_spans(table, c.label, x)
    score = table["score"].to_numpy(dtype=float)
    for axis, column in zip(axes[:-1, 0], columns, strict=True):
        values = table[column].to_numpy(dtype=float)
        mine = alarm
        if f"score_{column}" in table.columns:  # the column whose score is the row's score
            mine = alarm & (table[f"score_{column}"].to_numpy(dtype=float) >= score)
        axis.plot(x, values, color="0.25", lw=0.7)
        axis.scatter(x[mine], values[mine], color="red", s=14, zorder=3)
        axis.set_ylabel(str(column))
    score_axis = axes[-1, 0]
    score_axis.plot(x, score, color="tab:blue", lw=0.7, label="score")
    threshold = report.get("threshold")
    if isinstance(threshold, int | float) and np.isfinite(threshold):
        score_axis.axhline(threshold, color="red", ls="--", lw=0.8,
                           label=f"threshold {threshold:.3g}")
    for position in x[alarm]:
        score_axis.axvline(position, color="red", lw=0.6, alpha=0.5)
    score_axis.set_ylabel("score")
    score_axis.set_ylim(-0.02, 1.02)
    for axis in axes[:, 0]:
        for start, stop in spans:
            axis.axvspan(start, stop, color="orange", alpha=0.25, lw=0)
    handles = [Line2D([], [], color="red", marker="o", ls="", label="alarm")]
    if spans:
        handles.append(Rectangle((0, 0), 1, 1, color="orange", alpha=0.25,
                                     label=f"labelled ({c.label})"))
    score_axis.legend(handles=[*score_axis.get_legend_handles_labels()[0], *handles],
                      loc="upper left", fontsize=8)
    axes[0, 0].set_title(c.title or _title(report, int(alarm.sum())))
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def _label_spans(table: pd.DataFrame, label: str | None, x: np.ndarray) -> list[tuple[Any, Any]]:
    """x extents of each labelled run, widened to 0.4% of the axis so one row stays visible."""
    if label is None or len(x) == 0:
        return []
    flags = pd.to_numeric(table[label], errors="coerce").fillna(0).to_numpy() > 0
    least = (x[-1] - x[0]) * 0.004
    spans = []
    for a, b in runs(flags):
        start, stop = x[a], x[b - 1]
        if stop - start < least:
            pad = (least - (stop - start)) / 2
            start, stop = start - pad, stop + pad
        spans.append((start, stop))
    return spans


def _title(report: dict[str, Any], alarm_count: int) -> str:
    parts = [f"{report.get('detector', 'detector')}: {alarm_count} alarms"]
    metrics = report.get("metrics") or {}
    if metrics:
        parts.append(f"precision {metrics['precision']:.2f}, recall {metrics['recall']:.2f}, "
                     f"event recall {metrics['event_recall']:.2f}")
    return " | ".join(parts)
