"""The anomaly-detection example: both forms give byte-identical IR; it runs end to end through
the engine, its alarms find the labelled anomalies, its plot is a real PNG, and a second run
is fully cached."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib import image

from amml import compile_workflow, run_workflow
from amml.ops.detectors.thresholds import alarm_metrics
from amml.store import open_store

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "anomaly"


def test_python_and_yaml_forms_give_identical_ir() -> None:
    from_yaml = compile_workflow(EXAMPLE / "workflow.yaml")
    from_python = compile_workflow(EXAMPLE / "workflow.py")
    assert from_yaml.ir.canonical_json().encode() == from_python.ir.canonical_json().encode()
    assert from_yaml.ir.steps["anomalies"].with_["detector"] == "${params.detector}"


def test_runs_end_to_end_then_fully_cached(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store")
    first = run_workflow(compile_workflow(EXAMPLE / "workflow.yaml"), store=store)
    assert first.count("ran") == len(first.steps) == 4

    out = first.output("anomalies", "out")
    report = first.output("anomalies", "report")
    alarm, truth = out["alarm"].to_numpy(), out["is_anomaly"].to_numpy()
    assert 0 < alarm.sum() < 0.02 * len(out)  # a quantile threshold, spaced alarms
    assert (alarm.astype(bool) & truth.astype(bool)).any()  # alarms land on labelled rows
    metrics = alarm_metrics(alarm, truth)
    assert metrics["event_recall"] >= 0.5 and metrics["precision"] >= 0.3
    assert report["metrics"]["event_recall"] == metrics["event_recall"]
    reference = out["score"].to_numpy()[: int(len(out) * 0.3)]
    assert report["threshold"] == np.nanquantile(reference, 0.995)  # warm-up rows: NaN

    png = first.output("plot")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    pixels = image.imread(io.BytesIO(png), format="png")
    assert pixels.ndim == 3 and pixels.shape[0] > 300 and pixels.shape[1] > 600
    red = (pixels[..., 0] > 0.9) & (pixels[..., 1] < 0.2) & (pixels[..., 2] < 0.2)
    assert red.sum() > 50  # the alarms are drawn

    second = run_workflow(compile_workflow(EXAMPLE / "workflow.yaml"), store=store)
    assert second.count("cached") == len(second.steps)
    assert second.output("plot") == png

    # another detector is one parameter: the data steps stay cached
    other = run_workflow(compile_workflow(EXAMPLE / "workflow.yaml", {"detector": "amml"}),
                         store=store)
    ran = sorted(name for name, step in other.steps.items() if step.status == "ran")
    assert ran == ["anomalies", "plot"]
    assert other.output("anomalies", "report")["detector"] == "amml"
    store.close()


def test_reference_example_fits_on_the_clean_run_registers_and_serves(tmp_path: Path) -> None:
    """``examples/anomaly/reference.yaml``: MSET fitted on the anomaly-free commissioning run
    finds the production run's faults with the threshold frozen there; the fitted detector is
    registered (``task: detect``) and the server scores windows with the step's numbers."""
    from numpy.lib.stride_tricks import sliding_window_view

    from amml.registry import ModelRegistry
    from amml.serve.models import ServedModel

    store = open_store(tmp_path / "store")
    first = run_workflow(compile_workflow(EXAMPLE / "reference.yaml"), store=store)
    first.raise_for_status()
    out, report = first.output("anomalies", "out"), first.output("anomalies", "report")
    metrics = alarm_metrics(out["alarm"].to_numpy(), out["is_anomaly"].to_numpy())
    assert metrics["event_recall"] >= 0.9 and metrics["precision"] >= 0.9, metrics
    assert report["fitted"]["reference_rows"] == 2000  # the whole commissioning run
    # each alarm names the sensor the fault was injected in (the generator draws the noise
    # before the faults: the same seed without faults is the production run before them)
    from amml.ops.sources.synthetic import make_sensor_frame

    sensors = ["temperature", "vibration", "load"]
    moved = (out[sensors] - make_sensor_frame(2000, seed=7, anomalies=0)[sensors]).abs()
    alarmed = out.index[(out["alarm"] == 1) & (moved.max(axis=1) > 0)]
    assert len(alarmed) >= 60
    assert (out.loc[alarmed, "cause"] == moved.loc[alarmed].idxmax(axis=1)).all()

    registry = ModelRegistry(store)
    version = registry.resolve("sensors-detector@champion")
    assert version.signature["task"] == "detect"
    served = ServedModel.build(version, registry.load(version))
    columns = list(served.spec.columns)
    assert served.task == "detect" and columns == ["temperature", "vibration", "load"]
    rows = out[columns].to_numpy()
    windows = sliding_window_view(rows, served.spec.lookback, axis=0).transpose(0, 2, 1)
    scored = out["score"].to_numpy()[served.spec.lookback - 1:]
    np.testing.assert_allclose(served.predict(windows), scored, rtol=0, atol=1e-9)

    second = run_workflow(compile_workflow(EXAMPLE / "reference.yaml"), store=store)
    assert second.count("cached") == len(second.steps)  # nothing new registered
    assert [v.version for v in registry.versions("sensors-detector")] == [1]
    store.close()
