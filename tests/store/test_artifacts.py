"""Content-addressed artifacts: atomic writes, fsspec backends, safe model files."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from amml import StoreError
from amml.ops.models.forecaster import Forecaster
from amml.store.artifacts import (
    FsspecArtifactStore,
    LocalArtifactStore,
    SafetensorsModel,
    open_artifact_store,
)
from amml.store.artifacts.serializers import serialize


def test_bytes_are_stored_under_their_sha256(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    digest = store.put_bytes(b"hello")
    assert digest == hashlib.sha256(b"hello").hexdigest()
    assert (tmp_path / digest[:2] / digest).read_bytes() == b"hello"
    assert store.put_bytes(b"hello") == digest  # idempotent


def test_leftover_temporary_files_are_invisible_and_cleaned(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    digest = hashlib.sha256(b"full content").hexdigest()
    (tmp_path / digest[:2]).mkdir()
    partial = tmp_path / digest[:2] / f".tmp-{digest[:16]}-1-1"
    partial.write_bytes(b"full con")  # what a kill -9 mid-write leaves behind
    assert not store.exists(digest)
    assert store.cleanup(older_than_s=0) == 1 and not partial.exists()


@pytest.mark.parametrize("value", [
    pd.DataFrame({"x": [1.0, 2.0]}, index=pd.date_range("2024-01-01", periods=2, freq="h")),
    np.arange(12, dtype=np.float32).reshape(3, 4),
    {"mse": 0.5, "columns": ["a", "b"]},
    "some text",
])
def test_values_round_trip(tmp_path: Path, value) -> None:
    store = LocalArtifactStore(tmp_path)
    ref = store.save(value)
    fresh = LocalArtifactStore(tmp_path)  # no in-memory memo
    loaded = fresh.load(ref)
    if isinstance(value, pd.DataFrame):
        pd.testing.assert_frame_equal(loaded, value, check_freq=False)
    elif isinstance(value, np.ndarray):
        np.testing.assert_array_equal(loaded, value)
    else:
        assert loaded == value


def test_equal_tables_serialize_to_equal_bytes() -> None:
    make = lambda: pd.DataFrame({"v": np.linspace(0, 1, 100)},  # noqa: E731
                                index=pd.date_range("2024-01-01", periods=100, freq="h"))
    assert serialize(make(), "table") == serialize(make(), "table")


def test_model_round_trip_is_bit_exact_and_not_pickle(tmp_path: Path) -> None:
    series = np.sin(np.arange(400) / 5.0)
    model = Forecaster("linear", lookback=16, horizon=4).fit(series)
    store = LocalArtifactStore(tmp_path)
    ref = store.save(model, "model")
    raw = (tmp_path / ref.digest[:2] / ref.digest).read_bytes()
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(raw)
    loaded = LocalArtifactStore(tmp_path).load(ref)
    assert loaded.weights.tobytes() == model.weights.tobytes()
    assert loaded.to_bytes() == raw


def test_model_artifact_naming_a_foreign_class_is_refused() -> None:
    from safetensors.numpy import save

    forged = save({"w": np.zeros(2)}, metadata={
        "amml": '{"class":"os:system","config":{}}'})
    with pytest.raises(StoreError, match="not a SafetensorsModel"):
        SafetensorsModel.from_bytes(forged)


def test_object_arrays_are_refused() -> None:
    with pytest.raises(StoreError, match="object arrays"):
        serialize(np.array([object()]), "array")


def test_fsspec_memory_store(tmp_path: Path) -> None:
    store = open_artifact_store("memory://amml-test/artifacts")
    assert isinstance(store, FsspecArtifactStore)
    ref = store.save({"a": 1})
    assert store.exists(ref.digest)
    assert FsspecArtifactStore("memory://amml-test/artifacts").load(ref) == {"a": 1}
    assert not store.fs.glob("amml-test/artifacts/*/.tmp-*")


def test_workflow_runs_with_artifacts_on_an_fsspec_url(tmp_path: Path) -> None:
    from amml import compile_workflow, open_store, run_workflow
    from amml.lang import load_yaml_text
    from tests.helpers import SMALL_YAML

    store = open_store(tmp_path / "h", artifacts_url="memory://amml-run/artifacts")
    result = run_workflow(compile_workflow(load_yaml_text(SMALL_YAML)), store=store)
    assert result.count("ran") == 6
    assert run_workflow(compile_workflow(load_yaml_text(SMALL_YAML)),
                        store=store).count("cached") == 6
    store.close()
