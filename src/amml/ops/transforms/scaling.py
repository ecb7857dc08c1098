"""Scalers as plain JSON: fitted on training rows only, applied the same way everywhere.

A scaler maps each column to ``{"kind", "offset", "scale"}``; applying it computes
``(x - offset) / scale`` and inverting it ``x * scale + offset``. Being JSON, it is stored as
an artifact beside the model and serving applies exactly the transform training saw.

>>> import pandas as pd
>>> train = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 100.0]})
>>> fit_scaler(train, "robust")["x"]
{'kind': 'robust', 'offset': 3.0, 'scale': 2.0}
>>> apply_scaler(train, fit_scaler(train, "minmax"))["x"].round(3).tolist()
[0.0, 0.01, 0.02, 0.03, 1.0]
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from amml._exceptions import OpError

ScaleKind = Literal["zscore", "minmax", "robust"]


def numeric_columns(frame: pd.DataFrame, exclude: list[str] | None = None,
                    include: list[str] | None = None) -> list[str]:
    if include:
        missing = [c for c in include if c not in frame.columns]
        if missing:
            raise OpError(f"columns {missing} not found (columns: "
                          f"{', '.join(map(str, frame.columns))})")
        return list(include)
    return [c for c in frame.columns if c not in (exclude or [])
            and pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(
                frame[c])]


def fit_scaler(frame: pd.DataFrame, kind: ScaleKind,
               columns: list[str] | None = None) -> dict[str, dict[str, Any]]:
    scaler: dict[str, dict[str, Any]] = {}
    for column in columns or numeric_columns(frame):
        values = frame[column].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        if len(values) == 0:
            raise OpError(f"cannot fit a {kind} scaler on '{column}': no finite values")
        if kind == "zscore":
            offset, scale = float(values.mean()), float(values.std())
        elif kind == "minmax":
            offset, scale = float(values.min()), float(values.max() - values.min())
        else:
            q1, median, q3 = np.percentile(values, [25, 50, 75])
            offset, scale = float(median), float(q3 - q1)
        scaler[str(column)] = {"kind": kind, "offset": offset, "scale": scale if scale > 0
                               else 1.0}
    return scaler


def apply_scaler(frame: pd.DataFrame, scaler: dict[str, dict[str, Any]],
                 inverse: bool = False) -> pd.DataFrame:
    missing = [c for c in scaler if c not in frame.columns]
    if missing:
        raise OpError(f"the scaler covers columns {missing} that the table lacks")
    out = frame.copy()
    for column, params in scaler.items():
        values = out[column].astype(float)
        out[column] = (values * params["scale"] + params["offset"] if inverse
                       else (values - params["offset"]) / params["scale"])
    return out
