"""File sources: CSV and Parquet with a time index, and clear errors on bad files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from amml import OpError, ops
from amml.ops.sources.synthetic import make_sensor_frame


def test_csv_and_parquet_give_the_same_table(tmp_path: Path) -> None:
    frame = make_sensor_frame(periods=120, seed=4)
    frame.reset_index().to_csv(tmp_path / "s.csv", index=False)
    frame.to_parquet(tmp_path / "s.parquet")
    from_csv = ops.source.csv(path=str(tmp_path / "s.csv"), time="timestamp",
                              columns=["temperature", "load"])["out"]
    from_parquet = ops.source.parquet(path=str(tmp_path / "s.parquet"), time="timestamp",
                                      columns=["temperature", "load"])["out"]
    assert isinstance(from_csv.index, pd.DatetimeIndex) and len(from_csv) == 120
    pd.testing.assert_frame_equal(from_csv, from_parquet, check_freq=False)


def test_unparseable_timestamps_are_counted_with_examples(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("t,x\n2024-01-01 00:00,1\nyesterday,2\n2024-01-01 02:00,3\n")
    with pytest.raises(OpError, match=r"1 rows with unparseable timestamps, e.g. \[\{'t': "
                                      r"'yesterday'"):
        ops.source.csv(path=str(tmp_path / "bad.csv"), time="t")
    kept = ops.source.csv(path=str(tmp_path / "bad.csv"), time="t", on_bad_rows="quarantine")
    assert kept["out"]["x"].tolist() == [1, 3]
    assert kept["report"]["problems"]["unparseable_time"]["count"] == 1


def test_missing_file_and_columns_are_named(tmp_path: Path) -> None:
    with pytest.raises(OpError, match="CSV file not found"):
        ops.source.csv(path=str(tmp_path / "none.csv"))
    (tmp_path / "a.csv").write_text("t,x\n2024-01-01,1\n")
    with pytest.raises(OpError, match=r"time column 'time' not found \(columns: t, x\)"):
        ops.source.csv(path=str(tmp_path / "a.csv"), time="time")
    with pytest.raises(OpError, match=r"columns \['y'\] not found"):
        ops.source.csv(path=str(tmp_path / "a.csv"), time="t", columns=["y"])


def _csv(tmp_path: Path, text: str) -> str:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return str(path)


def test_duplicate_timestamps_are_an_error_unless_deduplicated(tmp_path: Path) -> None:
    path = _csv(tmp_path, "t,x\n2024-01-01 00:00,1\n2024-01-01 00:00,3\n2024-01-01 01:00,5\n")
    with pytest.raises(OpError, match=r"1 duplicate timestamps.*dedupe"):
        ops.source.csv(path=path, time="t")
    assert ops.source.csv(path=path, time="t", dedupe="mean")["out"]["x"].tolist() == [2, 5]


def test_out_of_order_rows_are_sorted_and_reported(tmp_path: Path) -> None:
    path = _csv(tmp_path, "t,x\n2024-01-01 02:00,3\n2024-01-01 00:00,1\n2024-01-01 01:00,2\n")
    result = ops.source.csv(path=path, time="t")
    assert result["out"]["x"].tolist() == [1, 2, 3]
    assert result["report"]["notes"]["reordered"]["count"] == 1


def test_mixed_time_zones_and_empty_files_are_clear_errors(tmp_path: Path) -> None:
    path = _csv(tmp_path, "t,x\n2024-01-01T00:00:00+01:00,1\n2024-01-01T01:00:00,2\n")
    with pytest.raises(OpError, match="mixes values with and without a time zone"):
        ops.source.csv(path=path, time="t")
    empty = _csv(tmp_path, "t,x\n")
    with pytest.raises(OpError, match="no rows"):
        ops.source.csv(path=empty, time="t")


def test_time_zones_convert_to_the_requested_zone(tmp_path: Path) -> None:
    path = _csv(tmp_path, "t,x\n2024-01-01T00:00:00+01:00,1\n2024-01-01T01:00:00+01:00,2\n")
    table = ops.source.csv(path=path, time="t", tz="UTC")["out"]
    assert str(table.index.tz) == "UTC" and table.index[0].hour == 23


def test_source_state_follows_the_file(tmp_path: Path) -> None:
    from amml.ops.sources.files import CsvSource

    path = _csv(tmp_path, "t,x\n2024-01-01,1\n")
    before = CsvSource(path=path, time="t").source_state()
    Path(path).write_text("t,x\n2024-01-01,1\n2024-01-02,2\n")
    assert CsvSource(path=path, time="t").source_state() != before
