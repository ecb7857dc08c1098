"""Conformance checks any op or artifact store should pass, ours and third-party alike.

Use them in a plugin's own tests::

    from amml.testing import check_op
    check_op(MyOp)
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from amml._types import ARTIFACT_TYPES
from amml.engine.fingerprint import code_digest
from amml.ops.base import Op
from amml.ops.detectors.base import Detector
from amml.store.artifacts import ArtifactStore


def check_op(op_cls: type[Op]) -> None:
    """Raise ``AssertionError`` (or the op's own error) if ``op_cls`` breaks the op contract."""
    op_cls.check_declaration()
    assert op_cls.version, f"op '{op_cls.name}' has no version"
    for name, kind in op_cls.outputs.items():
        assert (kind in ARTIFACT_TYPES and kind != "any") or op_cls.code_object is not None, (
            f"op '{op_cls.name}': output '{name}' must name a concrete type, got '{kind}'")
    schema = op_cls.Config.model_json_schema()
    json.dumps(schema)  # the configuration schema must be JSON (it documents YAML fields)
    assert op_cls.Config.model_config.get("extra") == "forbid", (
        f"op '{op_cls.name}': Config must forbid unknown fields (subclass OpConfig)")
    required = set(schema.get("required", []))
    if not required:  # an op with no required field must construct with defaults
        op_cls()
    digest = code_digest(op_cls.fingerprint_target())
    assert len(digest) == 64 and digest == code_digest(op_cls.fingerprint_target())
    assert callable(op_cls.run) and op_cls.run is not Op.run, (
        f"op '{op_cls.name}' does not implement run()")


def check_artifact_store(store: ArtifactStore) -> None:
    """Content addressing, idempotent writes and value round trips on a backend."""
    digest = store.put_bytes(b"amml-conformance")
    assert store.exists(digest) and store.get_bytes(digest) == b"amml-conformance"
    assert store.put_bytes(b"amml-conformance") == digest
    ref = store.save({"check": [1, 2, 3]})
    assert ref.type == "json" and store.load(ref) == {"check": [1, 2, 3]}
    assert store.uri(digest).endswith(digest)


def detector_check_series(n: int = 1200, columns: int = 1, seed: int = 0) -> np.ndarray:
    """A seasonal, noisy test series (``n`` rows, ``columns`` columns; 1-D when one column)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    base = [10 + (3 + k) * np.sin(2 * np.pi * t / 96 + k) + rng.normal(0, 0.3, n)
            for k in range(columns)]
    return base[0] if columns == 1 else np.column_stack(base)


#: The checks :func:`check_detector` runs; a detector skips one by naming it, with the reason,
#: in ``skip_checks`` (``Detector.skipped_checks()``).
DETECTOR_CHECKS = ("batch_equals_streaming", "causal", "bounded", "clone", "finds_spike")


def _leading_nan_only(scores: np.ndarray) -> bool:
    """NaN only as a warm-up prefix: once a detector has scored, every row gets a score."""
    finite = np.isfinite(scores)
    if not finite.any():
        return False
    return bool(finite[int(np.argmax(finite)):].all())


def check_detector(detector: Detector, n: int = 1200) -> dict[str, str]:
    """The detector contract, on a seasonal series of ``n`` rows with a spike at ``0.8 * n``:

    * ``batch_equals_streaming``: the batch path (``score_series``) equals ``update`` one
      point at a time;
    * ``causal``: appending points, even inf/nan ones, leaves earlier scores alone;
    * ``bounded``: scores stay in ``[0, 1]``; warm-up rows may be NaN (never a made-up score),
      but only before the first score;
    * ``clone``: ``clone`` has the same parameters and no state;
    * ``finds_spike``: the spike gets the highest score after the first fifth of the series.

    A check named in ``detector.skipped_checks()`` is skipped for its stated reason. Returns
    the skipped checks with their reasons.
    """
    skipped = detector.skipped_checks()
    unknown = sorted(set(skipped) - set(DETECTOR_CHECKS))
    assert not unknown, f"{detector.name}: skips unknown checks {unknown} ({DETECTOR_CHECKS})"
    assert all(isinstance(r, str) and r.strip() for r in skipped.values()), (
        f"{detector.name}: every skipped check needs a reason")
    columns = 3 if detector.multivariate else 1
    values = detector_check_series(n, columns)
    spike = int(0.8 * n)
    if values.ndim == 1:
        values[spike] += 8.0
    else:
        values[spike, 1] += 8.0
    batch = detector.score_series(values, list(range(n)))
    if "batch_equals_streaming" not in skipped:
        stream = detector.clone()
        row = (lambda i: values[i]) if detector.multivariate else (lambda i: float(values[i]))
        streamed = np.array([stream.update(i, row(i)) for i in range(n)], dtype=float)
        np.testing.assert_allclose(batch, streamed, rtol=0, atol=1e-9, equal_nan=True,
                                   err_msg=f"{detector.name}: batch and streaming scores differ")
    if "bounded" not in skipped:
        assert _leading_nan_only(batch), (
            f"{detector.name}: NaN scores after the warm-up (or no score at all)")
        scored = batch[np.isfinite(batch)]
        assert np.all((scored >= 0) & (scored <= 1)), f"{detector.name}: scores outside [0, 1]"
    if "causal" not in skipped:
        cut = int(0.6 * n)
        extra = np.full((3, *values.shape[1:]), np.nan)
        extra[0], extra[1] = 1e6, -np.inf
        longer = detector.score_series(np.concatenate([values[:cut], extra]))
        np.testing.assert_allclose(longer[:cut], batch[:cut], rtol=0, atol=1e-9, equal_nan=True,
                                   err_msg=f"{detector.name}: scores depend on later points")
        tail = longer[cut:]
        assert np.all((tail[np.isfinite(tail)] >= 0) & (tail[np.isfinite(tail)] <= 1)), (
            f"{detector.name}: bad value broke the bounds")
    if "clone" not in skipped:
        clone = detector.clone()
        assert clone.get_params() == detector.get_params() and clone is not detector
    if "finds_spike" not in skipped:
        start = n // 5
        top = int(np.nanargmax(batch[start:])) + start
        assert top == spike, (f"{detector.name}: the spike at row {spike} is not the top score "
                              f"(top at {top})")
    return skipped


def check_fitted_detector(detector: Any, reference_rows: int = 400, n: int = 700) -> None:
    """The fit/score contract of a :class:`~amml.ops.detectors.fitted.FittedDetector`:

    * ``fit(reference)`` then ``score(batch)`` gives what streaming ``update`` gives after the
      same ``reference_rows`` warm-up rows (which score NaN), and scoring in two halves gives
      what one batch gives (skipped with ``batch_equals_streaming``, as what follows);
    * frozen: without adaptation (``refit=0``) scoring anomalous rows changes neither the
      threshold nor later scores;
    * a saved and reloaded detector scores the next rows as the original does.
    """
    from amml.ops.detectors.fitted import detector_from_bytes, detector_to_bytes

    columns = 3 if detector.multivariate else 1
    values = detector_check_series(n, columns)
    values = values if values.ndim == 2 else values[:, None]
    reference, rest = values[:reference_rows], values[reference_rows:]
    fitted = detector.clone().fit(reference)
    threshold = fitted.threshold_raw_
    batch = fitted.score(rest)
    assert np.all(np.isfinite(batch[fitted.context:])), f"{detector.name}: NaN after fit"
    if "batch_equals_streaming" in detector.skipped_checks():
        return
    stream = detector.clone()
    streamed = np.array([stream.update(i, row) for i, row in enumerate(values)])
    assert np.all(np.isnan(streamed[:reference_rows])), (
        f"{detector.name}: warm-up rows must score NaN")
    np.testing.assert_allclose(streamed[reference_rows:], batch, rtol=0, atol=1e-9,
                               equal_nan=True,
                               err_msg=f"{detector.name}: fit/score and update differ")
    halves = detector.clone().fit(reference)
    half = len(rest) // 2
    split = np.r_[halves.score(rest[:half]), halves.score(rest[half:])]
    np.testing.assert_allclose(split, batch, rtol=0, atol=1e-9, equal_nan=True,
                               err_msg=f"{detector.name}: a batch's scores hang on its size")
    if getattr(detector, "refit", 0) == 0:
        frozen = detector.clone().fit(reference)
        frozen.score(rest + 50.0)  # a long, gross anomaly...
        assert frozen.threshold_raw_ == threshold, f"{detector.name}: threshold moved"
        again = frozen.score(rest)  # ...is not learnt: normal rows score as before
        np.testing.assert_allclose(again[frozen.context:], batch[frozen.context:], rtol=0,
                                   atol=1e-9, err_msg=f"{detector.name}: learnt from scoring")
    saved = detector.clone().fit(reference)
    saved.score(rest[:half])
    loaded = detector_from_bytes(detector_to_bytes(saved))
    np.testing.assert_allclose(loaded.score(rest[half:]), saved.score(rest[half:]), rtol=0,
                               atol=1e-9, err_msg=f"{detector.name}: reloaded detector differs")
