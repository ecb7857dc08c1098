"""``source.synthetic``: a multivariate sensor series with daily and weekly seasonality,
trend, noise and injected anomalies (spikes, level shifts, stuck sensors), labelled.

>>> from amml.ops.sources.synthetic import make_sensor_frame
>>> frame = make_sensor_frame(periods=240, seed=1, anomalies=3)
>>> list(frame.columns), len(frame), int(frame["is_anomaly"].sum()) > 0
(['temperature', 'vibration', 'load', 'is_anomaly'], 240, True)
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from amml._lazy import pandas as pd
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import register

SENSORS = ("temperature", "vibration", "load")


def make_sensor_frame(periods: int = 2000, freq: str = "1h", start: str = "2024-01-01",
                      seed: int = 0, anomalies: int = 8, noise: float = 0.3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    # nanosecond timestamps: the unit every AMML source returns (see sources/quality.py)
    index = pd.date_range(start=start, periods=periods, freq=freq, name="timestamp",
                          unit="ns")
    hours = (index - index[0]) / pd.Timedelta(hours=1)
    t = np.asarray(hours, dtype=float)
    daily = np.sin(2 * np.pi * t / 24)
    weekly = np.sin(2 * np.pi * t / (24 * 7))
    data = {
        "temperature": 60 + 8 * daily + 3 * weekly + 0.002 * t,
        "vibration": 2 + 0.6 * np.sin(2 * np.pi * t / 24 + 1.0) + 0.3 * weekly,
        "load": 50 + 20 * np.clip(daily, 0, None) + 10 * (weekly > 0),
    }
    frame = pd.DataFrame({k: v + rng.normal(0, noise * (1 + abs(v).mean() / 50), periods)
                          for k, v in data.items()}, index=index)
    labels = np.zeros(periods, dtype=np.int8)
    margin = max(periods // 20, 1)
    positions = rng.choice(np.arange(margin, max(periods - margin, margin + 1)),
                           size=min(anomalies, max(periods - 2 * margin, 0)), replace=False)
    for i, position in enumerate(sorted(positions)):
        column = SENSORS[i % len(SENSORS)]
        scale = frame[column].std()
        kind = i % 3
        if kind == 0:  # spike
            frame.iloc[position, frame.columns.get_loc(column)] += 6 * scale
            labels[position] = 1
        elif kind == 1:  # level shift for a few hours
            end = min(position + 6, periods)
            frame.iloc[position:end, frame.columns.get_loc(column)] += 4 * scale
            labels[position:end] = 1
        else:  # stuck sensor
            end = min(position + 12, periods)
            frame.iloc[position:end, frame.columns.get_loc(column)] = frame[column].iloc[
                position] + 3 * scale
            labels[position:end] = 1
    frame["is_anomaly"] = labels
    return frame


@register
class SyntheticSensors(Op):
    """Generated sensor data, so examples and tests need no download."""

    name = "source.synthetic"
    inputs = {}
    outputs = {"out": "table"}

    class Config(OpConfig):
        periods: int = Field(2000, ge=10, le=10_000_000)
        freq: str = "1h"
        start: str = "2024-01-01"
        seed: int = 0
        anomalies: int = Field(8, ge=0)
        noise: float = Field(0.3, ge=0)

    def run(self, ctx: StepContext) -> pd.DataFrame:
        c = self.config
        frame = make_sensor_frame(c.periods, c.freq, c.start, c.seed, c.anomalies, c.noise)
        ctx.log_metrics({"rows": len(frame), "anomalous_rows": int(frame["is_anomaly"].sum())})
        return frame
