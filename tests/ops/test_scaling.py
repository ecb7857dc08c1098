"""The scaler arithmetic (``amml.ops.transforms.scaling``): exact fitted values per kind, what
a fit ignores, constant columns, missing columns, arrays and tables, and the inverse."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from amml import OpError
from amml.ops.transforms.scaling import Scaler, apply_scaler, fit_scaler, numeric_columns

VALUES = [1.0, 2.0, 3.0, 4.0, 100.0]


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"x": VALUES, "y": [10.0, 10.0, 10.0, 10.0, 10.0],
                         "name": list("abcde"), "flag": [True, False, True, False, True]})


def test_each_kind_fits_its_exact_statistics() -> None:
    x = np.array(VALUES)
    assert fit_scaler(_frame(), "zscore", ["x"])["x"] == {
        "kind": "zscore", "offset": pytest.approx(x.mean()), "scale": pytest.approx(x.std())}
    assert fit_scaler(_frame(), "minmax", ["x"])["x"] == {
        "kind": "minmax", "offset": 1.0, "scale": 99.0}
    q1, median, q3 = np.percentile(x, [25, 50, 75])
    assert (q1, median, q3) == (2.0, 3.0, 4.0)
    assert fit_scaler(_frame(), "robust", ["x"])["x"] == {
        "kind": "robust", "offset": 3.0, "scale": 2.0}


def test_a_constant_column_gets_scale_one_not_zero() -> None:
    for kind in ("zscore", "minmax", "robust"):
        fitted = fit_scaler(_frame(), kind, ["y"])["y"]
        assert fitted["offset"] == 10.0 and fitted["scale"] == 1.0, kind


def test_by_default_every_numeric_column_but_not_text_or_booleans() -> None:
    assert numeric_columns(_frame()) == ["x", "y"]
    assert set(fit_scaler(_frame(), "zscore")) == {"x", "y"}
    assert numeric_columns(_frame(), exclude=["y"]) == ["x"]
    with pytest.raises(OpError, match=r"columns \['z'\] not found"):
        numeric_columns(_frame(), include=["z"])


def test_non_finite_values_are_left_out_of_the_fit() -> None:
    frame = pd.DataFrame({"x": [1.0, np.nan, 3.0, np.inf, -np.inf]})
    assert fit_scaler(frame, "minmax")["x"] == {"kind": "minmax", "offset": 1.0, "scale": 2.0}
    with pytest.raises(OpError, match="no finite values"):
        fit_scaler(pd.DataFrame({"x": [np.nan, np.inf]}), "zscore")


def test_tables_and_arrays_scale_the_same_and_invert_exactly() -> None:
    scaler = Scaler(fit_scaler(_frame(), "robust", ["x", "y"]))
    table = scaler.transform(_frame())
    assert table["x"].tolist() == [(v - 3.0) / 2.0 for v in VALUES]
    assert table["name"].tolist() == list("abcde")  # unscaled columns untouched
    array = scaler.transform(_frame()[["y", "x"]].to_numpy(), ["y", "x"])
    np.testing.assert_array_equal(array[:, 1], table["x"].to_numpy())
    np.testing.assert_allclose(scaler.inverse(array, ["y", "x"]),
                               _frame()[["y", "x"]].to_numpy())
    assert apply_scaler(table, scaler.params, inverse=True)["x"].tolist() == VALUES


def test_missing_columns_are_an_error_unless_identity_is_asked_for() -> None:
    scaler = Scaler({"x": {"offset": 1.0, "scale": 2.0}})
    with pytest.raises(OpError, match=r"no columns \['z'\]"):
        scaler.transform(np.array([[3.0, 5.0]]), ["x", "z"])
    assert scaler.transform(np.array([[3.0, 5.0]]), ["x", "z"], missing="identity"
                            ).tolist() == [[1.0, 5.0]]
    assert scaler.inverse(np.array([[1.0, 5.0]]), ["x", "z"], missing="identity"
                          ).tolist() == [[3.0, 5.0]]
    with pytest.raises(OpError, match="lacks"):
        scaler.transform(pd.DataFrame({"z": [1.0]}))
    with pytest.raises(OpError, match="does not end in"):
        scaler.transform(np.array([[1.0, 2.0]]), ["x"])
    with pytest.raises(OpError, match="needs the columns"):
        scaler.transform(np.array([[1.0]]))


def test_a_zero_scale_written_by_hand_does_not_divide() -> None:
    scaler = Scaler({"x": {"offset": 1.0, "scale": 0.0}})
    assert scaler.transform(np.array([3.0]), ["x"]).tolist() == [2.0]


def test_subset_covers_and_equality() -> None:
    scaler = Scaler(fit_scaler(_frame(), "zscore"))
    assert scaler.columns == ["x", "y"] and scaler.covers(["q", "y"])
    assert not scaler.covers(["q"])
    assert scaler.subset(["y", "q"]).columns == ["y"]
    assert Scaler(scaler) == scaler and Scaler(scaler.to_json()) == scaler
    assert scaler != Scaler({})


def test_a_scale_below_one_is_kept_and_only_zero_becomes_one() -> None:
    frame = pd.DataFrame({"x": [0.0, 0.25, 0.5]})
    assert fit_scaler(frame, "minmax")["x"] == {"kind": "minmax", "offset": 0.0, "scale": 0.5}
    assert Scaler.fit(frame, "minmax").transform(frame)["x"].tolist() == [0.0, 0.5, 1.0]


def test_a_table_scales_only_the_columns_asked_for() -> None:
    scaler = Scaler(fit_scaler(_frame(), "robust", ["x", "y"]))
    only_x = scaler.transform(_frame(), columns=["x"])
    assert only_x["x"].tolist() == [(v - 3.0) / 2.0 for v in VALUES]
    assert only_x["y"].tolist() == _frame()["y"].tolist()


def test_errors_name_what_exists() -> None:
    with pytest.raises(OpError, match=r"columns: x, y, name, flag\)"):
        numeric_columns(_frame(), include=["z"])
    with pytest.raises(OpError, match=r"it scales: x\)"):
        Scaler({"x": {"offset": 0.0, "scale": 1.0}}).offsets_scales(["z"])
    with pytest.raises(OpError, match=r"it scales: nothing\)"):
        Scaler({}).offsets_scales(["z"])
    with pytest.raises(OpError, match=r"no columns \['z'\]"):  # inverse refuses too
        Scaler({"x": {"offset": 0.0, "scale": 1.0}}).inverse(np.array([[1.0, 2.0]]), ["x", "z"])
