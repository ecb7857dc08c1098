"""The ``amml`` detector's two hot loops, compiled with numba, to the same bits as numpy.

Both run once or twice for every row of every series the detector sees; in numpy each is a
handful of array calls whose overhead, not their arithmetic, is most of the detector's time.

``nearest_sum``: the shape-novelty part asks, at every row, how far the newest sub-sequence is
from its nearest neighbour among the last few thousand; in numpy that is a whole (length x
memory) array of squared differences. Here the candidates are visited one by one and a
candidate is abandoned as soon as a partial sum exceeds the best so far. Partial sums are
taken in the order :func:`amml.ops.stats.pairwise_column_sums` adds (numpy's pairwise order),
and adding a square never makes a floating-point sum smaller, so an abandoned candidate could
not have been the nearest: the minimum is the numpy path's, bit for bit. The previous row's
nearest neighbour, one row on, is tried first; it is usually close, so most candidates stop
after a quarter of their squares.

``robust_z``: the spike part's robust z-score, ``|value - median| / max(MAD scale, floor)``,
with :func:`amml.ops.stats.median` and :func:`~amml.ops.stats.mad_scale`'s arithmetic (order
statistics by partition are exact, whichever algorithm finds them).

Without numba (it comes with the ``detect`` extra) or with its JIT off (``NUMBA_DISABLE_JIT=1``)
these are ``None``, and callers keep numpy; so do sub-sequences longer than 128 rows (numpy's
pairwise sum recurses beyond that).

>>> import numpy as np
>>> from amml.ops.stats import mad_scale, median, pairwise_column_sums
>>> bank = np.random.default_rng(0).normal(size=(500, 16))
>>> current = bank[-1] + 0.01
>>> if nearest_sum is not None:
...     best, index = nearest_sum(bank, 0, 480, current, -1)
...     plain = pairwise_column_sums((bank[:480] - current).T ** 2)
...     assert best == plain.min() and index == int(plain.argmin())
...     past = bank[:255, 0]
...     z = abs(3.0 - median(past)) / max(mad_scale(past, median(past)), 1e-3, 1e-12)
...     assert robust_z(past, 3.0, 1e-3) == min(z, 1e6)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from amml.ops.stats import MAD_TO_SD

#: The longest sub-sequence ``nearest_sum`` handles (numpy's pairwise sum recurses beyond 128).
MAX_LENGTH = 128


try:
    import numba
except ImportError:  # pragma: no cover - numba comes with the detect extra
    numba = None
#: Whether the kernels are compiled: numba is there and its JIT is on (``NUMBA_DISABLE_JIT=1``
#: turns them off, and the detector back to its numpy path, not to these loops in Python).
COMPILED = numba is not None and not numba.config.DISABLE_JIT


def _jit(**options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        if not COMPILED:
            return function
        # no fastmath: the sums must round exactly as numpy's do
        try:
            return numba.njit(cache=True, **options)(function)
        except RuntimeError:  # nowhere to keep the cache (a read-only install): compile anew
            return numba.njit(**options)(function)
    return decorate


@_jit(inline="always")
def _run(bank: np.ndarray, row: int, current: np.ndarray, j: int, blocks: int) -> float:
    """Running sum ``j`` of numpy's eight: the squares ``j``, ``j + 8``, ... below ``blocks``."""
    difference = bank[row, j] - current[j]
    run = difference * difference
    for i in range(j + 8, blocks, 8):
        difference = bank[row, i] - current[i]
        run += difference * difference
    return run


@_jit(inline="always")
def _bounded_sum(bank: np.ndarray, row: int, current: np.ndarray, bound: float) -> float:
    """The pairwise-order sum of ``(bank[row] - current) ** 2``, or a partial sum above
    ``bound`` as soon as one is (the row is then farther than ``bound``)."""
    n = current.shape[0]
    if n < 8:  # numpy adds fewer than eight values one after another
        difference = bank[row, 0] - current[0]
        total = difference * difference
        for k in range(1, n):
            if total > bound:
                return total
            difference = bank[row, k] - current[k]
            total += difference * difference
        return total
    blocks = n - n % 8
    # the tree's first pair, then its first half, bound the total from below
    total = _run(bank, row, current, 0, blocks) + _run(bank, row, current, 1, blocks)
    if total > bound:
        return total
    total += _run(bank, row, current, 2, blocks) + _run(bank, row, current, 3, blocks)
    if total > bound:
        return total
    last = _run(bank, row, current, 4, blocks) + _run(bank, row, current, 5, blocks)
    last += _run(bank, row, current, 6, blocks) + _run(bank, row, current, 7, blocks)
    total += last
    for k in range(blocks, n):
        difference = bank[row, k] - current[k]
        total += difference * difference
    return total


@_jit()
def _nearest_sum(bank: np.ndarray, start: int, stop: int, current: np.ndarray,
                 hint: int) -> tuple[float, int]:
    """The smallest pairwise-order sum of squared differences between ``current`` and the rows
    ``start`` to ``stop - 1`` of ``bank``, and that row (the first of equals; ``hint``, a row to
    try first, or -1)."""
    best, index = np.inf, -1
    if start <= hint < stop:
        best, index = _bounded_sum(bank, hint, current, np.inf), hint
    for row in range(start, stop):
        if row == hint:
            continue
        total = _bounded_sum(bank, row, current, best)
        if total < best or (total == best and row < index):
            best, index = total, row
    return best, index


@_jit()
def _select(work: np.ndarray, k: int) -> float:
    """The ``k``-th smallest value of ``work`` (reordered in place: smaller ones before it).
    Hand-written, since numba's ``np.partition`` takes about ten seconds to compile; the
    value found is the same whatever the algorithm."""
    low, high = 0, work.shape[0] - 1
    while low < high:
        middle = (low + high) // 2  # the median of three as pivot: sorted runs stay fast
        if work[middle] < work[low]:
            work[middle], work[low] = work[low], work[middle]
        if work[high] < work[low]:
            work[high], work[low] = work[low], work[high]
        if work[high] < work[middle]:
            work[high], work[middle] = work[middle], work[high]
        pivot = work[middle]
        i, j = low, high
        while i <= j:
            while work[i] < pivot:
                i += 1
            while pivot < work[j]:
                j -= 1
            if i <= j:
                work[i], work[j] = work[j], work[i]
                i += 1
                j -= 1
        if k <= j:
            high = j
        elif k >= i:
            low = i
        else:
            return work[k]
    return work[k]


@_jit()
def _median(values: np.ndarray) -> float:
    """``amml.ops.stats.median``: the middle order statistic, or the mean of the two."""
    work = values.copy()
    half = work.shape[0] // 2
    upper = _select(work, half)
    if work.shape[0] % 2:
        return upper
    return (work[:half].max() + upper) * 0.5  # the two middle order statistics


@_jit()
def _robust_z(past: np.ndarray, value: float, floor: float) -> float:
    """``min(|value - median(past)| / max(MAD scale, floor, 1e-12), 1e6)``."""
    center = _median(past)
    scale = MAD_TO_SD * _median(np.abs(past - center))
    return min(abs(value - center) / max(scale, floor, 1e-12), 1e6)


nearest_sum: Callable[[np.ndarray, int, int, np.ndarray, int], tuple[float, int]] | None = (
    _nearest_sum if COMPILED else None)
robust_z: Callable[[np.ndarray, float, float], float] | None = (
    _robust_z if COMPILED else None)


def warm() -> None:
    """Compile the kernels into numba's on-disk cache now (about 4 s; ``make`` does it while
    it sets up), so that the first series a process scores does not pay for it."""
    if nearest_sum is not None and robust_z is not None:
        nearest_sum(np.zeros((3, 2)), 0, 2, np.zeros(2), -1)
        robust_z(np.arange(3.0), 0.0, 1.0)


if __name__ == "__main__":
    warm()
