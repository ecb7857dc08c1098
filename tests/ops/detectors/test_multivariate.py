"""PCA T²+Q and MSET against plain re-computations of the statistics their docstring defines
(eigen-decomposition of the covariance instead of an SVD; the MSET estimate written out), and
their parameter checks."""

from __future__ import annotations

import re

import numpy as np
import pytest

from amml._exceptions import OpError
from amml.ops.detectors.base import make_detector
from amml.ops.detectors.fitted import detector_from_bytes, detector_to_bytes
from amml.ops.detectors.thresholds import pot_threshold


def _plant(rng: np.random.Generator, n: int) -> np.ndarray:
    """Four sensors, two driving factors of different strength, each sensor with its own noise:
    principal components of clearly different variance."""
    a, b = rng.normal(0, 3, n), rng.normal(0, 1, n)
    return np.column_stack([a + b, 2 * a - b, a + 0.5 * b, -b]) + rng.normal(
        0, [0.3, 0.5, 0.2, 0.4], (n, 4)) + [10, -5, 0, 100]


def _standardise(reference: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    center, scale = reference.mean(axis=0), reference.std(axis=0)
    return [(x - center) / scale for x in (reference, *others)]


def _t2_q(reference_z: np.ndarray, variance: float):
    """(T² per kept component, Q) as functions of standardised rows: kept components are the
    fewest whose share of the variance reaches ``variance``."""
    mean = reference_z.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov(reference_z, rowvar=False))
    values, vectors = values[::-1], vectors[:, ::-1]
    keep = int(np.argmax(np.cumsum(values) / values.sum() >= variance)) + 1
    kept, lam = vectors[:, :keep], values[:keep]
    rest = max(values[keep:].sum(), 1e-6 * values.sum())

    def parts(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        centred = z - mean
        t = centred @ kept
        return (t ** 2 / lam).sum(axis=1) / keep, ((centred - t @ kept.T) ** 2).sum(axis=1)

    return parts, rest, keep


def _smoothed(reference_z: np.ndarray, batch_z: np.ndarray, smooth: int):
    """Each row's features: the mean of its last ``smooth`` standardised rows (a batch row
    reaching back into the reference's last rows)."""
    def mean(z: np.ndarray) -> np.ndarray:
        return np.stack([z[i:i + smooth].mean(axis=0) for i in range(len(z) - smooth + 1)])

    return mean(reference_z), mean(np.r_[reference_z[len(reference_z) - smooth + 1:], batch_z])


@pytest.mark.parametrize(("variance", "smooth", "kept"), [
    (0.5, 1, 1), (0.95, 1, 2), (0.999, 1, 4),
    # averaged rows of a drifting plant: features with less variance than columns (in all,
    # under 1) and means that are not 0
    (0.95, 6, 3), (0.999, 6, 4)])
def test_pca_t2q_is_hotelling_t2_plus_the_scaled_q(variance, smooth, kept):
    rng = np.random.default_rng(30)
    reference, batch = _plant(rng, 500), _plant(rng, 60)
    if smooth > 1:
        reference[:, 0] += np.linspace(0, 6, 500)
        batch[:, 0] += 6
    batch[10] += [3, -3, 3, -3]  # off the components: Q
    batch[20] += [9, 18, 9, 0]  # along the first: T²
    reference_z, batch_z = _smoothed(*_standardise(reference, batch), smooth)
    parts, rest, keep = _t2_q(reference_z, variance)
    assert keep == kept

    def raw(z: np.ndarray) -> np.ndarray:
        t2, q = parts(z)
        return t2 + q / rest

    threshold = raw(reference_z).max()  # quantile 1.0, factor 1.0: the defaults
    detector = make_detector("pca_t2q", variance=variance, smooth=smooth).fit(reference)
    assert detector.threshold_raw_ == pytest.approx(threshold, rel=1e-9)
    expected = raw(batch_z) / (raw(batch_z) + threshold)
    np.testing.assert_allclose(detector.score(batch), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("quantile", "level"), [(1.0, 0.99), (0.95, 0.95), (0.5, 0.5)])
def test_pca_t2q_max_divides_each_part_by_its_own_reference_quantile(quantile, level):
    rng = np.random.default_rng(31)
    reference, batch = _plant(rng, 500), _plant(rng, 60)
    batch[10] += [3, -3, 3, -3]
    reference_z, batch_z = _standardise(reference, batch)
    parts, _, _ = _t2_q(reference_z, 0.9)
    t2_ref, q_ref = parts(reference_z)
    t2, q = parts(batch_z)
    raw = np.maximum(t2 / np.quantile(t2_ref, level), q / np.quantile(q_ref, level))
    detector = make_detector("pca_t2q", combine="max", quantile=quantile, factor=2.0)
    detector.fit(reference)
    assert detector.threshold_raw_ == 2.0
    np.testing.assert_allclose(detector.score(batch), raw / (raw + 2.0), rtol=1e-9, atol=1e-12)


def test_pca_t2q_max_with_pot_fits_the_tail_of_the_combined_score():
    rng = np.random.default_rng(32)
    reference = _plant(rng, 800)
    (reference_z,) = _standardise(reference)
    parts, _, _ = _t2_q(reference_z, 0.9)
    t2, q = parts(reference_z)
    raw = np.maximum(t2 / np.quantile(t2, 0.95), q / np.quantile(q, 0.95))
    detector = make_detector("pca_t2q", combine="max", threshold="pot", quantile=0.95,
                             risk=0.01).fit(reference)
    assert detector.threshold_raw_ == pytest.approx(
        pot_threshold(raw, risk=0.01, level=0.95), rel=1e-6)


def test_pca_t2q_of_identical_rows_keeps_one_component_and_scores_without_nan():
    reference = np.tile([1.0, 2.0, 3.0], (50, 1))  # no variance at all
    detector = make_detector("pca_t2q").fit(reference)
    scores = detector.score(np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 4.0]]))
    assert np.isfinite(scores).all() and scores[1] > 0.5 > scores[0]


def test_pca_t2q_saved_before_combine_max_still_loads():
    rng = np.random.default_rng(33)
    detector = make_detector("pca_t2q").fit(_plant(rng, 300))
    meta, arrays = detector.state()
    del arrays["model.part_scale"]
    loaded = type(detector).from_state(meta, arrays)
    batch = _plant(rng, 40)
    np.testing.assert_array_equal(loaded.score(batch), detector.score(batch))
    np.testing.assert_array_equal(loaded.get_tensors()["model.part_scale"], [1.0, 1.0])


def _mset_estimate(reference: np.ndarray, batch: np.ndarray, memory: int,
                   regularization: float) -> tuple[np.ndarray, np.ndarray]:
    """(raw scores of the reference, of the batch): each column's lowest and highest row, then
    evenly spaced rows, as the memory; the Gaussian kernel's bandwidth the median distance
    between memory states; a row's estimate the similarity-weighted mean of the states."""
    reference_z, batch_z = _standardise(reference, batch)
    n = len(reference_z)
    extremes = {*np.argmin(reference_z, axis=0).tolist(), *np.argmax(reference_z, axis=0).tolist()}
    spread = np.linspace(0, n - 1, memory - len(extremes)).astype(int)
    states = reference_z[sorted(extremes | set(spread.tolist()))]
    distance = np.linalg.norm(states[:, None] - states[None], axis=-1)
    bandwidth = np.median(distance[np.triu_indices(len(states), 1)])

    def kernel(rows: np.ndarray) -> np.ndarray:
        d2 = (np.linalg.norm(rows[:, None] - states[None], axis=-1)) ** 2
        return np.exp(-d2 / (2 * bandwidth ** 2))

    inverse = np.linalg.inv(kernel(states) + regularization * np.eye(len(states)))

    def raw(rows: np.ndarray) -> np.ndarray:
        weights = kernel(rows) @ inverse
        weights /= weights.sum(axis=1, keepdims=True)
        return ((rows - weights @ states) ** 2).sum(axis=1)

    return raw(reference_z), raw(batch_z)


@pytest.mark.parametrize(("memory", "regularization", "spiky"), [
    (None, None, False),  # the defaults: 100 states, 1e-3
    (12, 0.1, False),
    # one heavy-tailed column: most states closer than 1 to each other once standardised
    (30, 1e-3, True),
])
def test_mset_is_the_squared_residual_of_the_similarity_weighted_estimate(
        memory, regularization, spiky):
    rng = np.random.default_rng(34)
    if spiky:
        reference, batch = rng.standard_t(2, (400, 1)), rng.standard_t(2, (50, 1))
    else:
        reference, batch = _plant(rng, 400), _plant(rng, 50)
    batch[25] += 3
    params = {} if memory is None else {"memory": memory, "regularization": regularization}
    reference_raw, batch_raw = _mset_estimate(reference, batch, memory or 100,
                                              regularization or 1e-3)
    detector = make_detector("mset", **params).fit(reference)
    assert detector.threshold_raw_ == pytest.approx(reference_raw.max(), rel=1e-6)
    expected = batch_raw / (batch_raw + reference_raw.max())
    np.testing.assert_allclose(detector.score(batch), expected, rtol=1e-6)


def test_mset_scores_a_long_batch_in_pieces_as_one():
    rng = np.random.default_rng(35)
    detector = make_detector("mset", memory=20).fit(_plant(rng, 300))
    batch = _plant(rng, 4200)  # more than one block of 4096 rows
    scores = detector.clone().fit(_plant(np.random.default_rng(35), 300)).score(batch)
    np.testing.assert_allclose(
        np.concatenate([detector.score(batch[:100]), detector.score(batch[100:])]), scores,
        rtol=1e-9)
    assert np.isfinite(scores).all()


def test_mset_of_identical_rows_still_scores():
    detector = make_detector("mset").fit(np.tile([1.0, 2.0], (30, 1)))
    scores = detector.score(np.array([[1.0, 2.0], [1.0, 5.0]]))
    assert np.isfinite(scores).all() and scores[1] > 0.5 > scores[0]


def test_a_saved_mset_scores_as_before():
    rng = np.random.default_rng(36)
    detector = make_detector("mset", memory=30).fit(_plant(rng, 300))
    loaded = detector_from_bytes(detector_to_bytes(detector))
    batch = _plant(rng, 40)
    np.testing.assert_array_equal(loaded.score(batch), detector.score(batch))


@pytest.mark.parametrize(("name", "params", "message"), [
    ("pca_t2q", {"variance": 1.5}, "variance must be a number in [0, 1], got 1.5"),
    ("pca_t2q", {"combine": "mean"}, "combine must be 'sum' or 'max', got 'mean'"),
    ("mset", {"memory": 1}, "memory must be an integer >= 2, got 1"),
    ("mset", {"regularization": 0.0}, "regularization must be > 0, got 0.0"),
])
def test_parameters_are_checked(name, params, message):
    with pytest.raises(OpError, match=f"^{re.escape(message)}$"):
        make_detector(name, **params)
    make_detector("mset", memory=2, regularization=1e-9)  # the smallest allowed


@pytest.mark.parametrize("name", ["pca_t2q", "mset"])
def test_an_adapting_detector_remembers_1000_rows_by_default(name):
    rng = np.random.default_rng(37)
    reference, batch = _plant(rng, 1100), _plant(rng, 10) + 5
    detector = make_detector(name, refit=10, memory=20) if name == "mset" else \
        make_detector(name, refit=10)
    detector.fit(reference).score(batch)
    np.testing.assert_allclose(detector.center_, np.r_[reference, batch][-1000:].mean(axis=0))
