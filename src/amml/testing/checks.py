"""Conformance checks any op or artifact store should pass, ours and third-party alike.

Use them in a plugin's own tests::

    from amml.testing import check_op
    check_op(MyOp)
"""

from __future__ import annotations

import json

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


def check_detector(detector: Detector, n: int = 1200) -> None:
    """The detector contract, on a seasonal series of ``n`` rows with a spike at ``0.8 * n``:

    * the batch path (``score_series``) equals ``update`` one point at a time;
    * scores are causal (appending points, even inf/nan ones, leaves earlier scores alone) and
      stay in ``[0, 1]``;
    * ``clone`` has the same parameters and no state;
    * the spike gets the highest score after the first fifth of the series.
    """
    columns = 3 if detector.multivariate else 1
    values = detector_check_series(n, columns)
    spike = int(0.8 * n)
    if values.ndim == 1:
        values[spike] += 8.0
    else:
        values[spike, 1] += 8.0
    stream = detector.clone()
    row = (lambda i: values[i]) if detector.multivariate else (lambda i: float(values[i]))
    streamed = np.array([stream.update(i, row(i)) for i in range(n)], dtype=float)
    batch = detector.score_series(values, list(range(n)))
    np.testing.assert_allclose(batch, streamed, rtol=0, atol=1e-9,
                               err_msg=f"{detector.name}: batch and streaming scores differ")
    assert np.all(np.isfinite(batch)) and np.all((batch >= 0) & (batch <= 1)), (
        f"{detector.name}: scores outside [0, 1]")
    cut = int(0.6 * n)
    extra = np.full((3, *values.shape[1:]), np.nan)
    extra[0], extra[1] = 1e6, -np.inf
    longer = detector.score_series(np.concatenate([values[:cut], extra]))
    np.testing.assert_allclose(longer[:cut], batch[:cut], rtol=0, atol=1e-9,
                               err_msg=f"{detector.name}: scores depend on later points")
    assert np.all((longer >= 0) & (longer <= 1)), f"{detector.name}: bad value broke the bounds"
    clone = detector.clone()
    assert clone.get_params() == detector.get_params() and clone is not detector
    start = n // 5
    assert int(np.argmax(batch[start:])) + start == spike, (
        f"{detector.name}: the spike at row {spike} is not the top score "
        f"(top at {int(np.argmax(batch[start:])) + start})")
