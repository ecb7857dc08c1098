"""``isolation_forest``: an isolation forest over sliding windows of all the columns at once.

Each point is described by the window of its last ``window`` rows: every column standardised
with the fit data's median and MAD, plus (``diffs``) the window's first differences. Axis-
parallel cuts cannot see a relation between features break (two channels that move together
drifting apart while each stays in its usual range), so with ``whiten`` the features are first
rotated to the fit windows' principal axes at unit variance: a broken relation becomes a large
value on a low-variance axis, which the forest isolates at once.

The forest is Liu, Ting and Zhou's (2008) algorithm written in numpy (scikit-learn is not a
dependency of AMML): random cuts, ``max_samples`` windows per tree, depth limit
``ceil(log2(max_samples))``, raw score ``2 ** (-E[path length] / c(max_samples))`` (what
scikit-learn's ``-score_samples`` gives), with one extension: a value beyond a node's range can
be cut off there (see ``IsolationForest``), so far outside scores higher than just outside.

Streaming is causal: no score until ``warmup`` rows are seen; then the forest is fitted on the
windows before the current row, and refitted every ``refit`` rows on the ``history`` rows before
it, seeded by ``random_state`` and the row, so the batch path (all windows between two refits
in one call) makes the same fits and the same numbers. Calibration: ``calibration.Likelihood``,
primed with the raw scores of the first fit's own windows so that it is informative at once.

>>> import numpy as np
>>> from amml.ops.detectors.base import make_detector
>>> rng = np.random.default_rng(0)
>>> x = np.sin(np.arange(600) / 8) + rng.normal(0, 0.05, 600)
>>> y = x + rng.normal(0, 0.05, 600)
>>> y[500:510] = -x[500:510]    # each column stays in its range; their relation breaks
>>> scores = make_detector("isolation_forest").score_series(np.column_stack([x, y]))
>>> bool(scores[500:510].min() > 0.9 > scores[300:500].max())
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from amml.ops.detectors.base import register_detector
from amml.ops.detectors.windowed import (
    WindowModelDetector,
    check_int,
    robust_scale,
    window_features,
)

EULER = 0.5772156649015329


# --------------------------------------------------------------------------- the forest


def average_path(n: np.ndarray | float) -> np.ndarray:
    """``c(n)``: the mean path length of an unsuccessful binary-search-tree lookup among ``n``
    points, which normalises path lengths (and stands in for the unbuilt subtree of a leaf)."""
    n = np.asarray(n, dtype=float)
    safe = np.maximum(n, 2.0)
    c = 2.0 * (np.log(safe - 1.0) + EULER) - 2.0 * (safe - 1.0) / safe
    return np.where(n > 2, c, np.where(n == 2, 1.0, 0.0))


def _choose_splits(x: np.ndarray, rows: np.ndarray, sizes: np.ndarray, rng: np.random.Generator,
                   tries: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A split feature per node, uniform among the features not constant in the node, and its
    range there: nodes are consecutive runs of ``sizes`` rows of ``x`` (indices ``rows``).

    Rejection sampling (draw a feature, draw again where it is constant) keeps this to one
    column per node; the few nodes still unresolved after ``tries`` draws get every column's
    range. A node with every feature constant comes back with ``low == high``.
    """
    nodes, width = len(sizes), x.shape[1]
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    owner = np.repeat(np.arange(nodes), sizes)
    pick = rng.integers(width, size=nodes)
    low, high = np.zeros(nodes), np.zeros(nodes)
    todo = np.arange(nodes)
    for attempt in range(tries + 1):
        if attempt:
            pick[todo] = rng.integers(width, size=len(todo))
        values = x[rows, pick[owner]]
        low[todo] = np.minimum.reduceat(values, starts)[todo]
        high[todo] = np.maximum.reduceat(values, starts)[todo]
        todo = todo[high[todo] <= low[todo]]
        if not len(todo):
            return pick, low, high
    for node in todo:  # rare: most features are constant in this node
        block = x[rows[starts[node]:starts[node] + sizes[node]]]
        lows, highs = block.min(axis=0), block.max(axis=0)
        varying = np.flatnonzero(highs > lows)
        if len(varying):
            pick[node] = varying[rng.integers(len(varying))]
            low[node], high[node] = lows[pick[node]], highs[pick[node]]
    return pick, low, high


class IsolationForest:
    """Liu et al.'s isolation forest, grown one level at a time for all trees at once.

    A split picks its feature at random among those not constant in the node. One extension,
    when scoring: a value *outside* the range a node's samples had on the split feature would
    have been cut off there with probability ``distance / (distance + range)`` had it been
    among them (the cut is uniform over the range). The expected path length takes that into
    account, so a point far outside the data scores higher than one just outside it (the
    original algorithm scores both like the most extreme sample); points inside every range
    score exactly as in the original.
    """

    def __init__(self, n_trees: int = 100, max_samples: int = 256, seed: Any = 0) -> None:
        self.n_trees, self.max_samples, self.seed = n_trees, max_samples, seed

    def fit(self, x: np.ndarray) -> IsolationForest:
        rng = np.random.default_rng(self.seed)
        n = len(x)
        size = min(self.max_samples, n)
        self.depth = max(1, math.ceil(math.log2(max(size, 2))))
        self.norm = float(average_path(size))
        capacity = self.n_trees * (2 ** (self.depth + 1) - 1)
        self.feature = np.zeros(capacity, dtype=np.intp)
        self.threshold = np.zeros(capacity)
        self.low = np.full(capacity, -np.inf)  # the split feature's range in the node's
        self.high = np.full(capacity, np.inf)  # samples (infinite at leaves: nothing is cut)
        self.left = np.arange(capacity)  # a leaf points at itself, so lookups can overrun
        self.right = np.arange(capacity)
        self.level = np.zeros(capacity)
        self.value = np.zeros(capacity)  # at leaves: level + c(samples left)
        # per level: sample row indices sorted by node; the level's nodes are [first, stop)
        samples = np.argsort(rng.random((self.n_trees, n)), axis=1)[:, :size].ravel()
        node = np.repeat(np.arange(self.n_trees), size)
        first, stop = 0, self.n_trees
        for level in range(self.depth + 1):
            self.level[first:stop] = level
            counts = np.bincount(node - first, minlength=stop - first)
            split = counts > 1 if level < self.depth else np.zeros(stop - first, bool)
            ids = np.flatnonzero(split) + first
            if len(ids):
                keep = split[node - first]
                pick, low, high = _choose_splits(x, samples[keep], counts[ids - first], rng)
                usable = high > low  # else every feature is constant in the node: a leaf
                cut = rng.random(len(ids))
                split[ids[~usable] - first] = False
                ids, pick, low, high = ids[usable], pick[usable], low[usable], high[usable]
                children = stop + 2 * np.arange(len(ids))
                self.feature[ids], self.low[ids], self.high[ids] = pick, low, high
                self.threshold[ids] = low + cut[usable] * (high - low)
                self.left[ids], self.right[ids] = children, children + 1
            leaves = np.flatnonzero(~split) + first
            self.value[leaves] = level + average_path(counts[leaves - first])
            if not len(ids):
                break
            keep = split[node - first]
            samples, node = samples[keep], node[keep]
            go_left = x[samples, self.feature[node]] < self.threshold[node]
            node = np.where(go_left, self.left[node], self.right[node])
            order = np.argsort(node, kind="stable")
            samples, node = samples[order], node[order]
            first, stop = stop, stop + 2 * len(ids)
        for name in ("feature", "threshold", "low", "high", "left", "right", "level", "value"):
            setattr(self, name, getattr(self, name)[:stop])
        return self

    def anomaly_score(self, x: np.ndarray) -> np.ndarray:
        """``2 ** (-E[path length] / c(max_samples))`` per row: near 1 is isolated at once,
        about 0.5 and below is ordinary. Row by row the same numbers whatever ``len(x)``."""
        node = np.broadcast_to(np.arange(self.n_trees)[:, None], (self.n_trees, len(x)))
        columns = np.arange(len(x))[None, :]
        alive = np.ones(node.shape)  # the chance that no out-of-range cut has isolated it yet
        path = np.zeros(node.shape)
        for _ in range(self.depth):
            value = x[columns, self.feature[node]]
            low, high = self.low[node], self.high[node]
            beyond = np.maximum(value - high, 0.0) + np.maximum(low - value, 0.0)
            cut = beyond / (beyond + (high - low))
            path += alive * cut * (self.level[node] + 1.0)
            alive = alive * (1.0 - cut)
            node = np.where(value < self.threshold[node], self.left[node], self.right[node])
        path += alive * self.value[node]
        total = np.add.accumulate(path, axis=0)[-1]  # in tree order, alone or in a batch
        return 2.0 ** (-total / self.n_trees / self.norm)


# --------------------------------------------------------------------------- features, detector


def project(x: np.ndarray, matrix: np.ndarray, cells: int = 1 << 22) -> np.ndarray:
    """``x @ matrix`` summed in a fixed order (``accumulate`` is sequential), so a row alone
    and a row in a batch give the same bits: a BLAS product may sum them differently."""
    out = np.empty((len(x), matrix.shape[1]))
    step = max(1, cells // matrix.size)
    for start in range(0, len(x), step):
        terms = x[start:start + step, :, None] * matrix[None]
        out[start:start + step] = np.add.accumulate(terms, axis=1)[:, -1]
    return out


def whitening(x: np.ndarray, clip: float = 10.0, floor: float = 1e-3
              ) -> tuple[np.ndarray, np.ndarray]:
    """Mean and matrix taking ``x``'s rows to uncorrelated unit-variance principal axes.

    Estimated on ``x`` clipped to ``[-clip, clip]`` (standardised units: one wild row in the
    fit data cannot claim an axis); each axis' deviation is floored at ``floor`` times the
    largest, so an exactly constant relation turns into a large, finite scale-up.
    """
    bounded = np.clip(x, -clip, clip)
    mean = bounded.mean(axis=0)
    cov = np.atleast_2d(np.cov(bounded - mean, rowvar=False))
    variance, axes = np.linalg.eigh(cov)
    top = max(float(variance.max()), 1e-24)
    return mean, axes / np.sqrt(np.maximum(variance, floor * floor * top))


@register_detector
class IsolationForestDetector(WindowModelDetector):
    """Isolation forest over sliding windows of every column (see the module docstring).

    Defaults suit short series: ``window=8`` rows, first fit after ``warmup=200`` rows,
    refitted every ``refit=200`` rows on the last ``history=1000``; ``n_trees=100`` trees of
    ``max_samples=256`` windows as in the paper; ``diffs`` adds first differences (shape, not
    only level); ``whiten`` rotates the features to the fit windows' principal axes.
    """

    name = "isolation_forest"

    def __init__(self, window: int = 8, warmup: int = 200, refit: int = 200,
                 history: int = 1000, n_trees: int = 100, max_samples: int = 256,
                 diffs: bool = True, whiten: bool = True, random_state: int = 0) -> None:
        self.window, self.warmup, self.refit, self.history = window, warmup, refit, history
        self.n_trees, self.max_samples = n_trees, max_samples
        self.diffs, self.whiten, self.random_state = diffs, whiten, random_state
        self._check_schedule()
        check_int("n_trees", n_trees, 1)
        check_int("max_samples", max_samples, 2)
        check_int("random_state", random_state, 0)
        self._reset()

    def _features(self, windows: np.ndarray, center: np.ndarray, scale: np.ndarray,
                  rotation: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
        x = window_features(windows, center, scale, bool(self.diffs))
        return x if rotation is None else project(x - rotation[0], rotation[1])

    def _fit(self, rows: np.ndarray, at: int) -> Any:
        center, scale = robust_scale(rows)
        windows = sliding_window_view(rows, self.window, axis=0).transpose(0, 2, 1)
        rotation = (whitening(window_features(windows, center, scale, bool(self.diffs)))
                    if self.whiten else None)
        x = self._features(windows, center, scale, rotation)
        forest = IsolationForest(self.n_trees, self.max_samples,
                                 seed=[self.random_state, at]).fit(x)
        return forest, center, scale, rotation

    def _raw(self, model: Any, windows: np.ndarray) -> np.ndarray:
        forest, center, scale, rotation = model
        return forest.anomaly_score(self._features(windows, center, scale, rotation))
