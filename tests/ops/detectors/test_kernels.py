"""The ``amml`` detector's compiled kernels give numpy's numbers, bit for bit.

The kernels exist only for speed, so the claim under test is equality: the nearest
neighbour's sum and place, the robust z-score, and whole detector runs, against the numpy
path they replace.
"""

from __future__ import annotations

import numpy as np
import pytest

from amml.ops.detectors import kernels, novelty
from amml.ops.detectors.novelty import NoveltyDetector
from amml.ops.stats import mad_scale, median, pairwise_column_sums


def _bank(length: int, rows: int, seed: int) -> np.ndarray:
    """Sub-sequences of a random walk, with exact repeats (ties) and a flat stretch."""
    rng = np.random.default_rng(seed)
    values = np.cumsum(rng.normal(size=rows + length))
    values[100:140] = values[:40]  # repeated sub-sequences: equal sums
    values[200:260] = values[200]  # flat: zero distances
    return np.lib.stride_tricks.sliding_window_view(values, length).copy()


@pytest.mark.parametrize("length", [2, 3, 7, 8, 9, 12, 16, 17, 24, 33, 64, 128])
def test_the_nearest_sum_and_place_are_numpys(length: int) -> None:
    assert kernels.nearest_sum is not None, "numba is a declared dependency (detect extra)"
    bank = _bank(length, 600, seed=length)
    for newest in (130, 250, 420, 599):
        current = bank[newest].copy()
        stop = newest - length
        for start in (0, stop // 3):
            plain = pairwise_column_sums((bank[start:stop] - current).T ** 2)
            expected = (float(plain.min()), start + int(plain.argmin()))
            for hint in (-1, start, stop - 1, (start + stop) // 2, stop + 5):
                assert kernels.nearest_sum(bank, start, stop, current, hint) == expected


def test_the_nearest_of_noisy_values_is_numpys_bit_for_bit() -> None:
    """Values whose squares round: any other order of addition shows in the last bits."""
    rng = np.random.default_rng(7)
    bank = rng.normal(1e3, 1e-3, size=(3000, 16)) * rng.choice([1.0, 1e-7], size=(3000, 16))
    for newest in range(2900, 3000, 7):
        current = bank[newest] + rng.normal(0, 1e-4, 16)
        plain = pairwise_column_sums((bank[:2800] - current).T ** 2)
        best, place = kernels.nearest_sum(bank, 0, 2800, current, newest % 2800)
        assert (best, place) == (float(plain.min()), int(plain.argmin()))


def test_a_row_stopped_at_the_best_so_far_is_not_taken_for_a_tie() -> None:
    """Row 0's first squares already add up to row 1's whole sum: it is farther, not equal."""
    for length in (4, 8):
        current = np.zeros(length)
        bank = np.zeros((2, length))
        bank[:, :2] = 1.0
        bank[0, -1] = 1.0
        assert kernels.nearest_sum(bank, 0, 2, current, 1) == (2.0, 1)


@pytest.mark.parametrize("size", [7, 8, 255, 256])
def test_the_robust_z_is_the_numpy_formula(size: int) -> None:
    assert kernels.robust_z is not None
    rng = np.random.default_rng(size)
    for past, floor in ((rng.standard_t(3, size), 1e-3), (np.full(size, 2.5), 0.0),
                        (np.round(rng.normal(size=size), 1), 0.05)):
        for value in (0.0, 2.5, 40.0, -1e9):
            center = median(past)
            expected = min(abs(value - center) / max(mad_scale(past, center), floor, 1e-12), 1e6)
            assert kernels.robust_z(past, value, floor) == expected


def test_the_compiled_median_is_numpys_for_every_size_and_order() -> None:
    """The hand-written selection: sorted, reversed, constant, few distinct values."""
    rng = np.random.default_rng(11)
    for size in [*range(1, 41), 255, 256]:
        for values in (rng.normal(size=size), np.arange(size, dtype=float),
                       np.arange(size, dtype=float)[::-1].copy(), np.zeros(size),
                       rng.integers(0, 3, size).astype(float), np.round(rng.normal(size=size))):
            assert kernels._median(values) == median(values), (size, values)


def _numpy_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(novelty, "nearest_sum", None)
    monkeypatch.setattr(novelty, "robust_z", None)


def test_the_detector_scores_the_same_with_and_without_the_kernels(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A small memory makes the shape banks wrap (the hint moves with them); a 130-row shape
    keeps numpy's path beside the compiled ones; timestamps bring in the time of day."""
    rng = np.random.default_rng(3)
    rows = 2500
    t = np.arange(rows)
    values = 10 + np.sin(2 * np.pi * t / 48) + rng.normal(0, 0.1, rows)
    values[1500:1530] += 3.0
    values[2000:2100] = values[2000]
    stamps = np.datetime64("2024-01-01T00:00") + t * np.timedelta64(30, "m")
    detector = NoveltyDetector(shapes=(3, 8, 16, 130), memory=200, output="score")
    assert [shape._fast for shape in detector._shapes] == [True, True, True, False]
    compiled = detector.score_series(values, stamps)
    _numpy_path(monkeypatch)
    plain = NoveltyDetector(shapes=(3, 8, 16, 130), memory=200, output="score")
    assert not any(shape._fast for shape in plain._shapes)
    assert np.array_equal(compiled, plain.score_series(values, stamps), equal_nan=True)
    assert np.nanmax(compiled[1500:1530]) > np.nanmax(compiled[600:1500])


def test_without_a_writable_cache_the_kernels_compile_anyway(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only install has nowhere to keep numba's cache: numba refuses ``cache=True``
    when the decorator runs; the kernels are then compiled without it, not left broken."""
    real = kernels.numba.njit

    def refusing(*args, cache: bool = False, **options):
        if cache:
            raise RuntimeError("cannot cache function: no locator available")
        return real(*args, **options)

    monkeypatch.setattr(kernels.numba, "njit", refusing)

    def twice(x: float) -> float:
        return 2.0 * x

    assert kernels._jit()(twice)(1.5) == 3.0
