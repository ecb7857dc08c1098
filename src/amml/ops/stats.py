"""Small robust statistics shared by the detectors and serving, computed one way everywhere.

>>> import numpy as np
>>> values = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
>>> median(values), mad_scale(values, median(values))
(3.0, 1.4826)
"""

from __future__ import annotations

from typing import overload

import numpy as np

MAD_TO_SD = 1.4826  # 1 / Phi^-1(3/4): the MAD of a Gaussian times this is its deviation


def median(values: np.ndarray) -> float:
    """``np.median`` of a non-empty 1-D array, by one partition (several times faster: the
    streaming detectors run it twice per point). Equal to ``np.median`` bit for bit."""
    half = len(values) // 2
    if len(values) % 2:
        return float(np.partition(values, half)[half])
    middle = np.partition(values, (half - 1, half))
    return (float(middle[half - 1]) + float(middle[half])) * 0.5


@overload
def mad_scale(values: np.ndarray, center: float, axis: None = None) -> float: ...
@overload
def mad_scale(values: np.ndarray, center: float | np.ndarray, axis: int) -> np.ndarray: ...


def mad_scale(values: np.ndarray, center: float | np.ndarray,
              axis: int | None = None) -> float | np.ndarray:
    """``1.4826 * median(|values - center|)``: the median absolute deviation scaled to match a
    Gaussian's standard deviation. ``axis=None`` takes a 1-D array and gives a float; with an
    axis, ``center`` must broadcast against ``values`` (``keepdims``) and an array comes back.
    """
    deviations = np.abs(values - center)
    if axis is None:
        return MAD_TO_SD * median(deviations)
    return MAD_TO_SD * np.median(deviations, axis=axis)
