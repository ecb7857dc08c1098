"""CSV and Parquet sources: non-finite values are bad rows, dates whose day/month order is a
guess are reported, and a header that names a column twice is an error unless asked."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from amml._exceptions import OpError
from amml.ops.base import StepContext
from amml.ops.sources.files import CsvSource, ParquetSource

NON_FINITE_CSV = """\
t,v,w
2024-01-01 00:00,1.5,10
2024-01-01 01:00,inf,11
2024-01-01 02:00,-inf,12
2024-01-01 03:00,1e400,13
2024-01-01 04:00,nan,14
2024-01-01 05:00,,15
2024-01-01 06:00,2.5,16
"""


def _csv(tmp_path: Path, text: str, **config) -> dict:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return CsvSource(CsvSource.Config(path=str(path), **config)).run(StepContext())


def test_non_finite_csv_values_are_bad_rows(tmp_path: Path) -> None:
    out = _csv(tmp_path, NON_FINITE_CSV, time="t", on_bad_rows="quarantine")
    table, report = out["out"], out["report"]
    assert report["bad_rows"] == 4 and report["rows_kept"] == 3
    problem = report["problems"]["non_finite"]
    assert problem["count"] == 4 and "'v'" in problem["message"]
    assert [e["v"] for e in problem["examples"]] == ["inf", "-inf", "1e400", "nan"]
    assert np.isfinite(table["v"].dropna()).all() and table["v"].isna().sum() == 1  # empty cell
    assert table["w"].tolist() == [10, 15, 16]
    with pytest.raises(OpError, match=r"4 rows with non-finite values .* in 'v'"):
        _csv(tmp_path, NON_FINITE_CSV, time="t")


def test_non_finite_parquet_values_are_bad_rows(tmp_path: Path) -> None:
    frame = pd.DataFrame({"t": pd.date_range("2024-01-01", periods=4, freq="h"),
                          "v": [1.0, math.inf, -math.inf, math.nan]})
    frame.to_parquet(tmp_path / "data.parquet")
    out = ParquetSource(ParquetSource.Config(path=str(tmp_path / "data.parquet"), time="t",
                                             on_bad_rows="quarantine")).run(StepContext())
    assert out["report"]["problems"]["non_finite"]["count"] == 2
    assert out["out"]["v"].iloc[0] == 1.0 and out["out"]["v"].isna().sum() == 1  # null: a gap


DATES = "t,v\n01/02/2024,1\n13/02/2024,2\n14/02/2024,3\n"


def test_ambiguous_dates_are_reported(tmp_path: Path) -> None:
    for policy in ("error", "quarantine"):  # a misread file, not a few bad rows
        with pytest.raises(OpError, match=r"'01/02/2024' \(month-first 2024-01-02, day-first "
                                          r"2024-02-01\); state the order with dayfirst"):
            _csv(tmp_path, DATES, time="t", on_bad_rows=policy)
    february = list(pd.to_datetime(["2024-02-01", "2024-02-13", "2024-02-14"]))
    assert list(_csv(tmp_path, DATES, time="t", dayfirst=True)["out"].index) == february
    assert list(_csv(tmp_path, DATES, time="t", time_format="%d/%m/%Y")["out"].index) == february
    # only day-first fits, and ISO dates are never ambiguous: read as before
    assert len(_csv(tmp_path, "t,v\n13/02/2024,1\n14/02/2024,2\n", time="t")["out"]) == 2
    iso = _csv(tmp_path, "t,v\n2024-01-02,1\n2024-01-13,2\n", time="t")["out"]
    assert list(iso.index) == list(pd.to_datetime(["2024-01-02", "2024-01-13"]))


def test_duplicate_headers_are_reported(tmp_path: Path) -> None:
    text = "t,v,x,v\n2024-01-01,1,2,3\n2024-01-02,4,5,6\n"
    with pytest.raises(OpError, match=r"names a column more than once: 'v' \(columns 2, 4\)"):
        _csv(tmp_path, text, time="t")
    renamed = _csv(tmp_path, text, time="t", duplicate_headers="rename")["out"]
    assert list(renamed.columns) == ["v", "x", "v.1"]
    assert renamed["v.1"].tolist() == [3, 6]
