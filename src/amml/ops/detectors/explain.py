"""Which columns made a fitted detector's score: Shapley values over the columns.

An alarm on a pump says *that* its sensors look wrong together; the operator's next question is
*which*. For the newest row of a window, each column's contribution is its Shapley value
(exact, over every coalition; shap's ``Permutation`` estimate beyond ``EXACT_COLUMNS``
columns) in a game whose players are the columns: a coalition keeps its columns' readings over
the whole window and
sets the others to their reference centre (what the detector learnt as normal), and its
value is the detector's raw score of the newest row. So the contributions add up to the raw
score of the window minus that of the reference centre, a column that reads normally gets
about nothing, and a column that reads normally *against* the others it usually follows gets
its share of the broken relation. The same masking as the forecasters' explanations (a
group is its values or the background's, :mod:`amml.ops.explain.attribution`).

:func:`causes` names the column that pushed the score up most, and :func:`shares` turns the
values into signed shares whose magnitudes add up to 1 (negative: a column that held the score
down, as a normal reading beside a broken one can), the form the ``detect`` op and
``/detect?explain=true`` give. The baseline is one point, the reference centre: where that
point itself scores high (a reference of several regimes, far apart) a column can move the
score down, and the cause is then the column that moved it up most.

>>> import numpy as np
>>> from amml.ops.detectors.multivariate import MSETDetector
>>> rng = np.random.default_rng(1)
>>> t = rng.normal(0, 1, 500)
>>> rows = np.column_stack([t, 2 * t + rng.normal(0, 0.1, 500), rng.normal(0, 1, 500)])
>>> detector = MSETDetector().fit(rows[:400])
>>> window = rows[450:451].copy()
>>> window[0, 1] = 8.0  # the second sensor leaves the first
>>> contributions = column_contributions(detector, window[None])
>>> causes(contributions), bool(shares(contributions)[0, 1] > 0.5)
([1], True)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from amml._exceptions import OpError

#: Up to this many columns the Shapley values are exact: all 2**columns coalitions, enumerated
#: here in one batch of scores (shap's ``Exact`` explainer compiles with numba first, ~9 s
#: in every new process, a server's first answer included); beyond, shap's permutation
#: estimate.
EXACT_COLUMNS = 12


def column_contributions(detector: Any, windows: Any) -> np.ndarray:
    """``(N, columns)``: each column's Shapley value for the raw score of each window's newest
    row (windows ``(N, at least context + 1 rows, columns)`` in original units, as
    :meth:`~amml.ops.detectors.fitted.FittedDetector.score_windows` takes them)."""
    tails = detector.window_tails(windows, "explains its scores")
    width = tails.shape[2]
    if width > EXACT_COLUMNS:
        return _permutation(detector, tails)
    masks = np.arange(2 ** width)
    present = ((masks[:, None] >> np.arange(width)) & 1).astype(float)  # (2**c, c)
    size = present.sum(axis=1).astype(int)
    # a coalition of s columns weighs s! (c - s - 1)! / c! in a column's Shapley value
    weight = np.array([math.factorial(s) * math.factorial(width - s - 1)
                       / math.factorial(width) for s in range(width)])
    # per column, the coalitions without it and their weights: the same for every window
    without = [masks[(masks >> j) & 1 == 0] for j in range(width)]
    weighed = [weight[size[w]] for w in without]
    out = np.empty((len(tails), width))
    for i, tail in enumerate(tails):
        value = _values(detector, tail, present)
        for j in range(width):
            out[i, j] = float((weighed[j] * (value[without[j] | (1 << j)]
                                             - value[without[j]])).sum())
    return out


def _values(detector: Any, tail: np.ndarray, present: np.ndarray) -> np.ndarray:
    """The raw score of the newest row with only ``present``'s columns kept (each row of
    ``present`` a coalition; the others at the reference centre, 0 once standardised)."""
    features = [detector._features(tail * keep[None, :]) for keep in present]
    with np.errstate(over="ignore", invalid="ignore"):
        if getattr(detector, "rowwise", True):  # a row's raw score is its own: one call
            return np.asarray(detector._raw(np.stack([f[-1] for f in features])), dtype=float)
        return np.array([float(np.asarray(detector._raw(f), dtype=float)[-1])
                         for f in features])


def _permutation(detector: Any, tails: np.ndarray) -> np.ndarray:
    """shap's permutation estimate, for more columns than exact enumeration affords."""
    try:
        import shap
    except ImportError:
        raise OpError(f"explaining more than {EXACT_COLUMNS} columns estimates Shapley values "
                      "with shap, which is not installed: pip install 'amml[monitor]'") from None

    width = tails.shape[2]
    masker = shap.maskers.Independent(np.zeros((1, width)))
    out = np.empty((len(tails), width))
    for i, tail in enumerate(tails):
        explainer = shap.explainers.Permutation(
            lambda present, tail=tail: _values(detector, tail, present), masker, seed=0)
        explained = explainer(np.ones((1, width)), max_evals=explain_cost(width))
        out[i] = np.asarray(explained.values, dtype=float)[0]
    return out


def explain_cost(columns: int) -> int:
    """Raw scores one explained window costs: every coalition up to ``EXACT_COLUMNS``
    columns, the permutation estimate's evaluations beyond."""
    return 2 ** columns if columns <= EXACT_COLUMNS else max(500, 2 * columns + 1)


def shares(contributions: np.ndarray) -> np.ndarray:
    """Each column's signed share of its row's contributions: over the sum of their
    magnitudes, so the shares' magnitudes add up to 1 and a negative share is a column that
    held the score down. NaN where a contribution is not finite (the score overflowed);
    zeros where there is nothing to share."""
    c = np.asarray(contributions, dtype=float)
    total = np.abs(c).sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(total > 1e-12, c / total, 0.0)
    out[~np.isfinite(c).all(axis=1)] = np.nan
    return out


def causes(contributions: np.ndarray) -> list[int | None]:
    """Per row, the column that pushed the score up most (the largest contribution), or None
    where the contributions are not finite."""
    c = np.asarray(contributions, dtype=float)
    return [int(np.argmax(row)) if np.isfinite(row).all() else None for row in c]
