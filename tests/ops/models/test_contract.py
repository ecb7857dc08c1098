"""The model contract over every registered kind, safe loading, the seams and the Scaler."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import save

from amml._exceptions import OpError, StoreError
from amml.ops.models.contract import ForecastModel, ModelContractError, kind_names, make_model
from amml.ops.stats import mad_scale, median
from amml.ops.transforms.scaling import Scaler
from amml.store.artifacts.model import SafetensorsModel
from amml.testing.models import MODEL_CHECKS, check_model, fitted_model

KINDS = ["naive", "seasonal_naive", "linear", "dlinear", "nlinear", "rlinear", "patchtst",
         "lstm"]


def test_every_builtin_kind_is_registered() -> None:
    assert set(KINDS) <= set(kind_names())


@pytest.mark.parametrize("check", sorted(MODEL_CHECKS))
@pytest.mark.parametrize("kind", KINDS)
def test_model_contract(kind: str, check: str) -> None:
    MODEL_CHECKS[check](kind)


def test_check_model_catches_a_lossy_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    from amml.ops.models.kinds.linear import Linear

    monkeypatch.setattr(Linear, "load_tensors", lambda self, tensors: None)  # drops weights
    with pytest.raises(AssertionError, match="round trip"):
        check_model("linear")


def test_unknown_class_is_refused_and_nothing_is_imported() -> None:
    code = ("import sys, json\n"
            "from safetensors.numpy import save\n"
            "import numpy as np\n"
            "from amml.store.artifacts.model import SafetensorsModel\n"
            "from amml._exceptions import StoreError\n"
            "data = save({'w': np.zeros(2)}, metadata={'amml': json.dumps("
            "{'class': 'this:s', 'config': {}})})\n"
            "try:\n    SafetensorsModel.from_bytes(data)\n"
            "except StoreError as exc:\n    print('refused:', exc)\n"
            "print('this' in sys.modules, 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "refused: model artifact names class 'this:s'" in out
    assert out.strip().endswith("False False")  # neither the named module nor torch loaded


def test_legacy_artifacts_still_load() -> None:
    model, x = fitted_model("nlinear")
    legacy = save(model.get_tensors(), metadata={"amml": json.dumps({
        "class": "amml.ops.models.deep:DeepForecaster",
        "config": {"kind": "nlinear", "lookback": 24, "horizon": 6, "columns": model.columns,
                   "outputs": model.outputs, "individual": False, "options": {}}})})
    loaded = SafetensorsModel.from_bytes(legacy)
    np.testing.assert_array_equal(loaded.predict_windows(x), model.predict_windows(x))
    old_naive = save({"weights": np.zeros((25, 6))}, metadata={"amml": json.dumps({
        "class": "amml.ops.models.train:BaselineForecaster",
        "config": {"kind": "naive", "lookback": 24, "horizon": 6, "season": 24,
                   "alpha": 0.001, "columns": ["a"], "outputs": ["a"]}})})
    naive = SafetensorsModel.from_bytes(old_naive)
    assert naive.kind == "naive" and naive.columns == ["a"]
    with pytest.raises(StoreError, match="unknown kind 'arima'"):
        SafetensorsModel.from_bytes(save({}, metadata={"amml": json.dumps({
            "class": "amml.ops.models.forecaster:Forecaster", "config": {"kind": "arima"}})}))


def test_kind_lookup_and_validation_are_helpful_and_torch_free() -> None:
    code = ("import sys\nfrom amml.ops.models.train import Train\n"
            "try:\n    Train.Config(target='x', model='dlinaer')\n"
            "except Exception as exc:\n    print(exc)\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "did you mean 'dlinear'?" in out and out.strip().endswith("False")
    with pytest.raises(OpError, match="unknown model kind 'linnear'; did you mean 'linear'"):
        make_model("linnear", lookback=4, horizon=2, columns=["a"], outputs=["a"])


def test_set_weights_checks_count_and_shape_and_onnx_is_a_clear_error(tmp_path) -> None:
    model, _ = fitted_model("linear")
    with pytest.raises(ModelContractError, match="shape"):
        model.set_weights([np.zeros((2, 2))])
    with pytest.raises(ModelContractError, match="2 weight arrays"):
        model.set_weights([np.zeros((25, 6)), np.zeros(1)])
    assert model.to_onnx(tmp_path / "m.onnx").stat().st_size > 0

    class NoExport(ForecastModel):  # a kind without the export hook: a clear error
        kind = "no_export"

    with pytest.raises(ModelContractError, match="ONNX is not implemented"):
        NoExport(4, 2).to_onnx(tmp_path / "n.onnx")


def test_scaler_on_tables_and_arrays() -> None:
    import pandas as pd

    scaler = Scaler({"x": {"kind": "zscore", "offset": 10.0, "scale": 2.0},
                     "y": {"kind": "zscore", "offset": -1.0, "scale": 0.5}})
    frame = pd.DataFrame({"x": [12.0, 8.0], "y": [0.0, -1.5], "z": [1.0, 2.0]})
    scaled = scaler.transform(frame)
    assert scaled["x"].tolist() == [1.0, -1.0] and scaled["y"].tolist() == [2.0, -1.0]
    assert scaled["z"].tolist() == [1.0, 2.0]
    pd.testing.assert_frame_equal(scaler.inverse(scaled), frame)
    array = np.array([[[12.0, 0.0]]])
    assert scaler.transform(array, ["x", "y"]).tolist() == [[[1.0, 2.0]]]
    assert scaler.inverse(np.array([2.0]), ["y"]).tolist() == [0.0]
    assert scaler.transform(np.array([3.0]), ["w"], missing="identity").tolist() == [3.0]
    with pytest.raises(OpError, match="no columns"):
        scaler.transform(np.array([3.0]), ["w"])
    with pytest.raises(OpError, match="does not end in"):
        scaler.transform(array, ["x"])


def test_mad_scale_matches_the_formula() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=101)
    center = float(np.median(values))
    assert median(values) == center and median(values[:100]) == float(np.median(values[:100]))
    assert mad_scale(values, center) == 1.4826 * float(np.median(np.abs(values - center)))
    rows = rng.normal(size=(50, 3))
    np.testing.assert_array_equal(
        mad_scale(rows, np.median(rows, axis=0), axis=0),
        1.4826 * np.median(np.abs(rows - np.median(rows, axis=0)), axis=0))
