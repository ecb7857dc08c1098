"""The ``detect`` op (any registered detector over a table, thresholded, reported) and the
``report.anomalies`` plot of its output."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from amml import compile_workflow
from amml._exceptions import OpError, WorkflowValidationError
from amml.engine.fingerprint import code_digest
from amml.lang import load_yaml_text
from amml.ops.base import StepContext
from amml.ops.detectors import base
from amml.ops.detectors.base import Detector, clip01, make_detector, register_detector
from amml.ops.detectors.detect import Detect
from amml.ops.detectors.plot import AnomalyPlot
from amml.ops.detectors.thresholds import alarm_metrics
from amml.store.artifacts.serializers import serialize
from amml.testing import check_op

SPIKES = (420, 700)


def sensors(rows: int = 900, seed: int = 0) -> pd.DataFrame:
    """Two noisy daily-seasonal channels, a spike in each, labelled; hourly time index."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    frame = pd.DataFrame({
        "a": np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.1, rows),
        "b": 5 + np.cos(2 * np.pi * t / 24) + rng.normal(0, 0.1, rows),
    }, index=pd.date_range("2024-03-01", periods=rows, freq="h", name="time"))
    frame.iloc[SPIKES[0], 0] += 6.0
    frame.iloc[SPIKES[1], 1] -= 6.0
    frame["is_anomaly"] = np.zeros(rows, dtype=np.int8)
    frame.iloc[list(SPIKES), 2] = 1
    return frame


class AbsDev(Detector):
    """A minimal univariate detector for the tests: distance from the mean of the earlier
    points over ``scale``, so the spikes score 1 and the rest of ``sensors()`` below 0.5."""

    name = "_test_abs_dev"

    def __init__(self, scale: float = 3.0) -> None:
        self.scale = scale
        self._sum = 0.0
        self._count = 0
        self._last = 0.0

    def update(self, timestamp, value) -> float:
        value = value if np.isfinite(value) else self._last
        score = abs(value - self._sum / self._count) / self.scale if self._count else 0.0
        self._sum, self._count, self._last = self._sum + value, self._count + 1, value
        return clip01(score)


class RowNorm(Detector):
    """A minimal multivariate detector for the tests: distance of the row from the running
    mean, squashed to [0, 1]."""

    name = "_test_row_norm"
    multivariate = True

    def __init__(self, scale: float = 10.0) -> None:
        self.scale = scale
        self._sum: np.ndarray | None = None
        self._count = 0

    def update(self, timestamp, value) -> float:
        row = np.nan_to_num(np.asarray(value, dtype=float), nan=0.0, posinf=0.0, neginf=0.0)
        mean = self._sum / self._count if self._count else row
        self._sum = row if self._sum is None else self._sum + row
        self._count += 1
        return clip01(float(np.linalg.norm(row - mean)) / self.scale)


@pytest.fixture
def row_norm() -> Iterator[str]:
    register_detector(RowNorm)
    yield RowNorm.name
    base.DETECTORS.unregister(RowNorm.name)


@pytest.fixture
def abs_dev() -> Iterator[str]:
    """The op's mechanics are tested on a detector whose scores are known exactly."""
    register_detector(AbsDev)
    yield AbsDev.name
    base.DETECTORS.unregister(AbsDev.name)


def test_ops_pass_the_op_contract() -> None:
    check_op(Detect)
    check_op(AnomalyPlot)


def test_univariate_scores_each_column_and_takes_the_max(abs_dev: str) -> None:
    frame = sensors()
    ctx = StepContext()
    result = Detect(detector=abs_dev, label="is_anomaly").run(ctx, frame)
    out, report = result["out"], result["report"]
    assert list(out.columns) == ["a", "b", "score", "alarm", "score_a", "score_b", "is_anomaly"]
    assert out.index.equals(frame.index)
    expected_a = AbsDev().score_series(frame["a"].to_numpy(), frame.index)
    np.testing.assert_allclose(out["score_a"], expected_a, atol=1e-12)
    np.testing.assert_allclose(out["score"], np.maximum(out["score_a"], out["score_b"]))
    # the default threshold is fixed 0.5, and each spike raises the alarm on its own column
    assert report["threshold"] == 0.5
    assert np.flatnonzero(out["alarm"]).tolist() == list(SPIKES)
    assert out["score_a"].iloc[SPIKES[0]] > out["score_b"].iloc[SPIKES[0]]
    assert out["score_b"].iloc[SPIKES[1]] > out["score_a"].iloc[SPIKES[1]]
    assert out["alarm"].dtype == np.int8 and set(out["alarm"]) <= {0, 1}


def test_metrics_and_report_describe_the_alarms(abs_dev: str) -> None:
    frame = sensors()
    ctx = StepContext()
    result = Detect(detector=abs_dev, label="is_anomaly").run(ctx, frame)
    out, report = result["out"], result["report"]
    logged = {m.key: m.value for m in ctx.metrics}
    expected = alarm_metrics(out["alarm"].to_numpy(), out["is_anomaly"].to_numpy())
    assert logged["alarms"] == out["alarm"].sum() == report["alarms"]
    assert logged["threshold"] == 0.5
    for key in ("precision", "recall", "f1", "event_recall"):
        assert logged[key] == pytest.approx(expected[key]) == report["metrics"][key]
    assert logged["event_recall"] == logged["precision"] == 1.0
    rows = np.flatnonzero(out["alarm"]).tolist()
    assert report["alarm_rows"] == rows
    assert report["alarm_timestamps"] == [frame.index[i].isoformat() for i in rows]
    assert report["detector"] == abs_dev and report["columns"] == ["a", "b"]
    assert report["params"] == {"scale": 3.0}
    assert report["anomalous_rows"] == 2 and report["labelled_rows"] == len(frame)
    assert report["threshold_config"]["kind"] == "fixed"
    kind, data = serialize(report, "json")  # the report is storable as JSON
    assert kind == "json" and json.loads(data)["alarms"] == report["alarms"]


def test_quantile_threshold_on_a_reference_period_and_min_gap(abs_dev: str) -> None:
    frame = sensors()
    threshold = {"kind": "quantile", "quantile": 0.99, "reference_end": "2024-03-15"}
    result = Detect(detector=abs_dev, threshold=threshold).run(StepContext(), frame)
    scores = result["out"]["score"]
    reference = scores[scores.index <= "2024-03-15"]
    assert result["report"]["threshold"] == pytest.approx(np.quantile(reference, 0.99))
    spaced = Detect(detector=abs_dev, threshold={**threshold, "min_gap": 1000}).run(
        StepContext(), frame)
    assert spaced["out"]["alarm"].sum() == 1  # one alarm, then nothing within 1000 rows


def test_labels_threshold_maximises_f1(abs_dev: str) -> None:
    frame = sensors()
    result = Detect(detector=abs_dev, label="is_anomaly", threshold={"kind": "labels"}).run(
        StepContext(), frame)
    assert result["report"]["metrics"]["f1"] == 1.0  # both spikes and nothing else
    assert result["out"]["alarm"].sum() == 2


def test_the_default_detector_through_the_op() -> None:
    frame = sensors()
    out = Detect(threshold={"kind": "quantile", "quantile": 0.999}).run(StepContext(),
                                                                        frame)["out"]
    expected = make_detector("amml").score_series(frame["b"].to_numpy(), frame.index)
    np.testing.assert_allclose(out["score_b"], expected, atol=1e-12)
    scored = out["score"].dropna()  # the warm-up rows have no score
    assert scored.between(0, 1).all() and out["score"].notna().sum() > 0.9 * len(out)
    assert out["score"].isna().to_numpy()[:len(out) - len(scored)].all()
    assert int(np.nanargmax(out["score_a"])) == SPIKES[0]
    assert int(np.nanargmax(out["score_b"])) == SPIKES[1]


def test_multivariate_detector_gets_row_vectors(row_norm: str) -> None:
    frame = sensors()
    result = Detect(detector=row_norm, threshold={"kind": "fixed", "value": 0.4}).run(
        StepContext(), frame.drop(columns="is_anomaly"))
    out = result["out"]
    assert list(out.columns) == ["a", "b", "score", "alarm"]  # no per-column scores
    expected = RowNorm().score_series(frame[["a", "b"]].to_numpy())
    np.testing.assert_allclose(out["score"], expected)
    assert result["report"]["multivariate"] is True
    assert set(np.flatnonzero(out["alarm"])) >= set(SPIKES)


def test_timestamp_column_and_no_timestamps(abs_dev: str) -> None:
    frame = sensors().reset_index()
    result = Detect(detector=abs_dev, label="is_anomaly", columns=["a"]).run(StepContext(),
                                                                            frame)
    out = result["out"]
    assert list(out.columns) == ["time", "a", "score", "alarm", "score_a", "is_anomaly"]
    assert result["report"]["alarm_timestamps"] == [frame["time"][SPIKES[0]].isoformat()]
    bare = frame.drop(columns="time")
    result = Detect(detector=abs_dev, columns=["a", "b"]).run(StepContext(), bare)
    assert result["report"]["alarm_timestamps"] is None
    assert result["report"]["alarm_rows"] == list(SPIKES)
    with pytest.raises(OpError, match="'reference_end' needs timestamps"):
        Detect(columns=["a"], threshold={"kind": "quantile", "reference_end": "2024-03-02"}
               ).run(StepContext(), bare)
    with pytest.raises(OpError, match="timestamp column 'when' not found"):
        Detect(timestamp="when").run(StepContext(), frame)


def test_default_columns_skip_label_timestamp_and_text(abs_dev: str) -> None:
    frame = sensors().reset_index()
    frame["site"] = "north"
    out = Detect(detector=abs_dev, label="is_anomaly").run(StepContext(), frame)["out"]
    assert [c for c in out.columns if c.startswith("score_")] == ["score_a", "score_b"]


def test_configuration_errors_are_caught_before_running() -> None:
    with pytest.raises(ValidationError, match="unknown detector 'amm'; did you mean 'amml'"):
        Detect(detector="amm")
    with pytest.raises(ValidationError, match="has no parameter 'windw'"):
        Detect(detector="amml", params={"windw": 3})
    with pytest.raises(ValidationError, match="threshold kind 'labels' needs a label column"):
        Detect(threshold={"kind": "labels"})
    with pytest.raises(ValidationError, match="treshold"):
        Detect(treshold=0.3)
    # scores are in [0, 1]: a fixed threshold above 1 would never alarm
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        Detect(threshold={"kind": "fixed", "value": 1.5})
    assert Detect(detector="amml", params={"window": 64}).config.params == {"window": 64}


def test_a_typo_in_a_workflow_fails_validation_with_a_hint() -> None:
    text = """
name: typo
steps:
  raw: {op: source.synthetic, with: {periods: 200}}
  alarms: {op: detect, inputs: {table: raw}, with: {detector: windowed_gausian}}
"""
    with pytest.raises(WorkflowValidationError, match="did you mean 'windowed_gaussian'"):
        compile_workflow(load_yaml_text(text))


def test_a_wrong_detector_parameter_is_reported_at_params_with_a_hint() -> None:
    text = """name: typo
steps:
  raw: {op: source.synthetic, with: {periods: 200}}
  alarms:
    op: detect
    inputs: {table: raw}
    with:
      detector: rolling_mad
      params:
        windw: 64
"""
    with pytest.raises(WorkflowValidationError) as caught:
        compile_workflow(load_yaml_text(text, "typo.yaml"))
    message = str(caught.value)
    # the line of 'params:' (not of 'with:'), the field by name, the closest parameter; no
    # pydantic prefix and no echo of the whole section
    assert "typo.yaml:9:" in message and "field 'with.params'" in message
    assert "did you mean 'window'?" in message
    assert "Value error" not in message and "got {" not in message
    wrong_kind = text.replace("windw: 64", "window: big")
    with pytest.raises(WorkflowValidationError,
                       match=r"window must be an integer >= 2, got 'big'$"):
        compile_workflow(load_yaml_text(wrong_kind, "typo.yaml"))
    labels = text.replace("params:\n        windw: 64", "threshold: {kind: labels}")
    with pytest.raises(WorkflowValidationError,
                       match="field 'with': threshold kind 'labels' needs a label column"):
        compile_workflow(load_yaml_text(labels, "typo.yaml"))


def test_runtime_errors_name_the_problem() -> None:
    frame = sensors()
    with pytest.raises(OpError, match="label column 'label' not found"):
        Detect(label="label").run(StepContext(), frame)
    with pytest.raises(OpError, match=r"columns \['c'\] not found"):
        Detect(columns=["c"]).run(StepContext(), frame)
    with pytest.raises(OpError, match="not numeric"):
        Detect(columns=["site"]).run(StepContext(), frame.assign(site="x"))
    with pytest.raises(OpError, match="clash with the output"):
        Detect(columns=["score"]).run(StepContext(), frame.assign(score=1.0))
    with pytest.raises(OpError, match="no numeric column"):
        Detect().run(StepContext(), pd.DataFrame({"site": ["a", "b"]}))


def test_cache_key_follows_the_detector_code(tmp_path: Path, row_norm: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def digest(*detectors: type[Detector]) -> str:
        return code_digest(Detect, Detect.depends_on, detectors)

    chosen = Detect().code_references()
    assert digest(*chosen) == digest(*Detect().code_references())
    assert digest(*Detect(detector=row_norm).code_references()) != digest(*chosen)
    path = tmp_path / "my_detector.py"

    def load(body: str) -> type[Detector]:
        path.write_text("from amml.ops.detectors.base import Detector\n"
                        f"class Mine(Detector):\n    def update(self, t, v):\n        {body}\n")
        spec = importlib.util.spec_from_file_location("my_detector", path)
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, "my_detector", module)
        spec.loader.exec_module(module)
        return module.Mine

    assert digest(load("return 0.0")) != digest(load("return 1.0"))


def _png_shape(data: bytes) -> tuple[int, ...]:
    from matplotlib import image

    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    return image.imread(io.BytesIO(data), format="png").shape


def test_plot_draws_one_panel_per_column_and_is_deterministic(abs_dev: str) -> None:
    result = Detect(detector=abs_dev, label="is_anomaly").run(StepContext(), sensors())
    png = AnomalyPlot(label="is_anomaly").run(StepContext(), result["out"], result["report"])
    height, width, _ = _png_shape(png)
    assert width == 12 * 80 and height == 3 * 2 * 80  # two series panels + the score
    again = AnomalyPlot(label="is_anomaly").run(StepContext(), result["out"], result["report"])
    assert again == png
    one = AnomalyPlot(columns=["a"], title="a only").run(StepContext(), result["out"])
    assert _png_shape(one)[0] == 2 * 2 * 80


def test_plot_of_a_multivariate_result_on_row_numbers(row_norm: str) -> None:
    frame = sensors().reset_index(drop=True)
    out = Detect(detector=row_norm, label="is_anomaly").run(StepContext(), frame)["out"]
    png = AnomalyPlot(label="is_anomaly").run(StepContext(), out)
    assert _png_shape(png)[0] == 3 * 2 * 80  # a, b (the label is not drawn as a series)


def test_plot_errors() -> None:
    frame = sensors()
    with pytest.raises(OpError, match="no 'score' column"):
        AnomalyPlot().run(StepContext(), frame)
    out = Detect().run(StepContext(), frame)["out"]
    with pytest.raises(OpError, match="label column 'truth' not found"):
        AnomalyPlot(label="truth").run(StepContext(), out)
    with pytest.raises(OpError, match=r"columns \['c'\] not found"):
        AnomalyPlot(columns=["c"]).run(StepContext(), out)


def test_detect_op_runs_a_reference_fitted_detector_with_nan_warmup():
    import numpy as np
    import pandas as pd

    from amml.ops.base import StepContext
    from amml.ops.detectors.detect import Detect

    rng = np.random.default_rng(2)
    frame = pd.DataFrame(rng.normal(0, 1, (600, 3)), columns=["a", "b", "c"])
    frame.loc[500:509, "b"] += 9.0
    frame["label"] = 0
    frame.loc[500:509, "label"] = 1
    result = Detect(detector="pca_t2q", params={"warmup": 300}, label="label"
                    ).run(StepContext(), frame)
    out, report = result["out"], result["report"]
    assert out["score"].iloc[:300].isna().all()  # warm-up: no score, and no alarm
    assert out["alarm"].iloc[:300].sum() == 0
    assert set(np.flatnonzero(out["alarm"].to_numpy())) >= set(range(500, 510))
    assert report["threshold"] == 0.5 and report["metrics"]["recall"] == 1.0
    # the frozen threshold: no quantile settings that did not decide
    assert report["threshold_config"] == {"kind": "fixed", "value": 0.5, "min_gap": 0}
