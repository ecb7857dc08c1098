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

:class:`Scaler` is the one place the arithmetic lives; training, evaluation, registration and
serving all go through it, on tables or on arrays whose last axis is the given columns:

>>> import numpy as np
>>> scaler = Scaler({"x": {"offset": 10.0, "scale": 2.0}, "y": {"offset": 0.0, "scale": 5.0}})
>>> scaler.transform(np.array([[12.0, 5.0]]), ["x", "y"]).tolist()
[[1.0, 1.0]]
>>> scaler.inverse(np.array([1.0]), ["y"]).tolist()
[5.0]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, overload

import numpy as np

from amml._exceptions import OpError
from amml._lazy import pandas as pd

ScaleKind = Literal["zscore", "minmax", "robust"]
Missing = Literal["error", "identity"]


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


def apply_scaler(frame: pd.DataFrame, scaler: Mapping[str, Mapping[str, Any]],
                 inverse: bool = False) -> pd.DataFrame:
    """Every column of the scaler applied to (or, ``inverse``, undone on) a copy of ``frame``."""
    fitted = Scaler(scaler)
    return fitted.inverse(frame) if inverse else fitted.transform(frame)


class Scaler:
    """A fitted scaler: ``{column: {"offset", "scale", ...}}`` (the JSON artifact) with the
    arithmetic. ``missing="identity"`` leaves columns the scaler lacks as they are (serving a
    model whose signature scales only some columns); by default they are an error."""

    def __init__(self, params: Mapping[str, Mapping[str, Any]] | Scaler) -> None:
        source = params.params if isinstance(params, Scaler) else params
        self.params = {str(k): dict(v) for k, v in source.items()}

    @classmethod
    def fit(cls, frame: pd.DataFrame, kind: ScaleKind,
            columns: list[str] | None = None) -> Scaler:
        return cls(fit_scaler(frame, kind, columns))

    def to_json(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self.params.items()}

    @property
    def columns(self) -> list[str]:
        return list(self.params)

    def covers(self, columns: Iterable[str]) -> bool:
        """Whether any of ``columns`` is scaled."""
        return any(str(c) in self.params for c in columns)

    def subset(self, columns: Iterable[str]) -> Scaler:
        return Scaler({str(c): self.params[str(c)] for c in columns if str(c) in self.params})

    def offsets_scales(self, columns: Iterable[str], missing: Missing = "error"
                       ) -> tuple[np.ndarray, np.ndarray]:
        names = [str(c) for c in columns]
        absent = [c for c in names if c not in self.params]
        if absent and missing == "error":
            raise OpError(f"the scaler has no columns {absent} (it scales: "
                          f"{', '.join(self.params) or 'nothing'})")
        identity = {"offset": 0.0, "scale": 1.0}
        offset = np.array([float(self.params.get(c, identity)["offset"]) for c in names])
        # a constant column was fitted with scale 1; a hand-written 0 must not divide
        scale = np.array([float(self.params.get(c, identity)["scale"]) or 1.0 for c in names])
        return offset, scale

    @overload
    def transform(self, data: pd.DataFrame, columns: list[str] | None = None,
                  missing: Missing = "error") -> pd.DataFrame: ...
    @overload
    def transform(self, data: np.ndarray, columns: list[str] | None = None,
                  missing: Missing = "error") -> np.ndarray: ...

    def transform(self, data: Any, columns: list[str] | None = None,
                  missing: Missing = "error") -> Any:
        """``(x - offset) / scale``: a table's scaled columns, or an array whose last axis is
        ``columns``."""
        return self._apply(data, columns, missing, inverse=False)

    @overload
    def inverse(self, data: pd.DataFrame, columns: list[str] | None = None,
                missing: Missing = "error") -> pd.DataFrame: ...
    @overload
    def inverse(self, data: np.ndarray, columns: list[str] | None = None,
                missing: Missing = "error") -> np.ndarray: ...

    def inverse(self, data: Any, columns: list[str] | None = None,
                missing: Missing = "error") -> Any:
        """``x * scale + offset``: back to original units."""
        return self._apply(data, columns, missing, inverse=True)

    def _apply(self, data: Any, columns: list[str] | None, missing: Missing,
               inverse: bool) -> Any:
        if isinstance(data, pd.DataFrame):
            return self._apply_frame(data, columns, inverse)
        if columns is None:
            raise OpError("scaling an array needs the columns of its last axis")
        x = np.asarray(data, dtype=np.float64)
        if x.shape[-1:] != (len(columns),):
            raise OpError(f"array of shape {x.shape} does not end in the {len(columns)} "
                          f"columns {list(columns)}")
        offset, scale = self.offsets_scales(columns, missing)
        return x * scale + offset if inverse else (x - offset) / scale

    def _apply_frame(self, frame: pd.DataFrame, columns: list[str] | None,
                     inverse: bool) -> pd.DataFrame:
        wanted = self.columns if columns is None else [str(c) for c in columns]
        absent = [c for c in wanted if c not in frame.columns]
        if absent:
            raise OpError(f"the scaler covers columns {absent} that the table lacks")
        offsets, scales = self.offsets_scales(wanted)
        out = frame.copy()
        for column, offset, scale in zip(wanted, offsets, scales, strict=True):
            values = out[column].astype(float)
            out[column] = values * scale + offset if inverse else (values - offset) / scale
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Scaler) and other.params == self.params

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Scaler({self.params!r})"
