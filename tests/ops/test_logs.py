"""``source.logs``: every format, rotation, hand-computed aggregates, quarantine, time zones,
chunking, source state and the step cache."""

from __future__ import annotations

import bz2
import gzip
import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from amml import OpError, Workflow, open_store, ops, run_workflow
from amml.ops.base import StepContext
from amml.ops.registry import REGISTRY
from amml.ops.sources.logs import LogSource, aggregate, formats, op, parsers
from amml.ops.sources.logs import files as log_files
from amml.testing import check_op

REGISTRY.register(LogSource)  # the lead registers it in builtin.MODULES; idempotent

NAN = float("nan")


def access_line(stamp: str, status: int, size: int | str, request_time: str | None = None,
                path: str = "/", agent: str = "curl/8.4") -> str:
    tail = "" if request_time is None else f" {request_time}"
    return (f'203.0.113.9 - - [{stamp}] "GET {path} HTTP/1.1" {status} {size} '
            f'"https://example.com/" "{agent}"{tail}\n')


# 13:55 at -0700 is 20:55 UTC; nothing happens at 20:56
COMBINED = [
    access_line("10/Oct/2000:13:55:01 -0700", 200, 1000, "0.100"),
    access_line("10/Oct/2000:13:55:10 -0700", 503, 20, "0.300", agent=r'Mozilla \"quoted\"'),
    access_line("10/Oct/2000:13:55:20 -0700", 404, 0, "0.200", path="/missing?q=a%20b"),
    access_line("10/Oct/2000:13:55:59 -0700", 200, "-", "0.400"),
    access_line("10/Oct/2000:13:57:00 -0700", 500, 50, "1.000"),
    access_line("10/Oct/2000:13:57:30 -0700", 200, 100, "-"),
]
MINUTES = pd.DatetimeIndex(["2000-10-10 20:55", "2000-10-10 20:56", "2000-10-10 20:57"],
                           name="time").as_unit("ns")


def run(path: Path | str, **config: Any) -> tuple[pd.DataFrame, dict[str, Any]]:
    result = LogSource(path=str(path), **config).run(StepContext())
    return result["out"], result["report"]


def write(path: Path, lines: list[str] | str) -> Path:
    path.write_text(lines if isinstance(lines, str) else "".join(lines))
    return path


def column(frame: pd.DataFrame, name: str) -> list[float]:
    return [round(float(v), 6) if not np.isnan(v) else NAN for v in frame[name]]


def same(left: list[float], right: list[float]) -> bool:
    return len(left) == len(right) and all(
        (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b) for a, b in zip(left, right,
                                                                            strict=True))


@pytest.fixture(params=[True, False], ids=["arrow", "python-re"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Regex formats run on Arrow's RE2, or on Python's re for patterns RE2 lacks: same
    results either way."""
    monkeypatch.setattr(op, "USE_ARROW", request.param)
    return request.param


def test_combined_aggregates_match_hand_computed_values(tmp_path: Path, engine: bool) -> None:
    path = write(tmp_path / "access.log", COMBINED)
    out, report = run(path, format="combined", interval="1min",
                      metrics=["count", "error_rate", "status_4xx", "status_5xx", "bytes_sum",
                               "p50:request_time", "p90:request_time", "p99:latency",
                               "mean:request_time", "max:request_time", "sum:request_time"])
    pd.testing.assert_index_equal(out.index, MINUTES)
    assert out["count"].tolist() == [4, 0, 2]
    assert same(column(out, "error_rate"), [0.25, NAN, 0.5])
    assert out["status_4xx"].tolist() == [1, 0, 0]
    assert out["status_5xx"].tolist() == [1, 0, 1]
    assert out["bytes_sum"].tolist() == [1020, 0, 150]  # "-" is no bytes
    # minute one: 0.1 0.2 0.3 0.4 (linear interpolation); minute three: 1.0 and a "-"
    assert same(column(out, "p50_request_time"), [0.25, NAN, 1.0])
    assert same(column(out, "p90_request_time"), [0.37, NAN, 1.0])
    assert same(column(out, "p99_latency"), [0.397, NAN, 1.0])
    assert same(column(out, "mean_request_time"), [0.25, NAN, 1.0])
    assert same(column(out, "max_request_time"), [0.4, NAN, 1.0])
    assert same(column(out, "sum_request_time"), [1.0, 0.0, 1.0])
    assert out["count"].dtype == np.int64 and out["error_rate"].dtype == np.float64
    assert report["rows_read"] == report["rows_kept"] == 6 and report["bad_rows"] == 0
    assert report["notes"]["missing_values"] == {"request_time": 1}
    assert report["notes"]["empty_intervals"] == 1


def test_error_status_threshold_is_configurable(tmp_path: Path) -> None:
    path = write(tmp_path / "access.log", COMBINED)
    out, _ = run(path, format="combined", interval="1min", metrics=["error_rate"],
                 error_status=400)
    assert same(column(out, "error_rate"), [0.5, NAN, 0.5])


def test_common_log_format(tmp_path: Path, engine: bool) -> None:
    path = write(tmp_path / "access_log", [
        '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326\n',
        '127.0.0.1 - - [10/Oct/2000:13:55:40 -0700] "GET /x HTTP/1.0" 404 -\n',
        '10.1.1.1 - - [10/Oct/2000:14:01:00 -0700] "POST /api HTTP/1.0" 502 17 0.250\n',
    ])
    out, report = run(path, format="common", interval="5min",
                      metrics=["count", "status_4xx", "status_5xx", "bytes_sum",
                               "max:request_time"])
    assert list(out.index.strftime("%H:%M")) == ["20:55", "21:00"]
    assert out["count"].tolist() == [2, 1]
    assert out["status_4xx"].tolist() == [1, 0]
    assert out["status_5xx"].tolist() == [0, 1]
    assert out["bytes_sum"].tolist() == [2326, 17]
    assert same(column(out, "max_request_time"), [NAN, 0.25])
    assert report["bad_rows"] == 0


SYSLOG = [
    "<34>Oct  1 22:14:15 mymachine su[230]: 'su root' failed for lonvick on /dev/pts/8\n",
    "Oct  1 22:14:40 mymachine sshd[1021]: Accepted publickey for admin\n",
    "Oct  1 23:05:00 mymachine kernel: [12.5] eth0: link up\n",
    "Oct  1 23:59:59 mymachine cron[77]: (root) CMD (run-parts /etc/cron.hourly)\n",
    "2024-10-02T00:10:00.123+02:00 mymachine app[5]: rsyslog writes ISO stamps\n",
    "garbage without a timestamp\n",
]


def test_syslog_with_a_year(tmp_path: Path, engine: bool) -> None:
    path = write(tmp_path / "syslog", SYSLOG)
    out, report = run(path, format="syslog", interval="1h", year=2024,
                      metrics=["count", "max:pid"])
    assert list(out.index) == [pd.Timestamp("2024-10-01 22:00"), pd.Timestamp("2024-10-01 23:00")]
    assert out["count"].tolist() == [3, 2]  # the ISO stamp is 22:10 UTC
    assert same(column(out, "max_pid"), [1021.0, 77.0])
    assert report["problems"]["malformed_line"]["count"] == 1
    assert report["problems"]["malformed_line"]["examples"][0]["line"] == 6


def test_syslog_stamps_are_read_in_tz(tmp_path: Path) -> None:
    path = write(tmp_path / "syslog", SYSLOG[:5])
    out, _ = run(path, format="syslog", interval="1h", year=2024, tz="Europe/Paris")
    assert str(out.index.tz) == "Europe/Paris"
    assert [t.isoformat() for t in out.index] == [
        "2024-10-01T22:00:00+02:00", "2024-10-01T23:00:00+02:00", "2024-10-02T00:00:00+02:00"]
    assert out["count"].tolist() == [2, 2, 1]


def test_syslog_year_defaults_to_this_year_and_wraps_to_last(tmp_path: Path) -> None:
    path = write(tmp_path / "syslog", ["Jan  1 00:00:01 host a: new year\n",
                                       "Dec 31 23:59:59 host a: old year\n"])
    out, _ = run(path, format="syslog", interval="1D")
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    december = pd.Timestamp(year=now.year, month=12, day=31, hour=23, minute=59, second=59)
    years = {now.year, now.year - 1 if december > now + pd.Timedelta(days=1) else now.year}
    assert {t.year for t in out.index[out["count"] > 0]} == years


JSONL = [
    '{"time": "2024-03-01T10:00:05Z", "latency_ms": 10, "http": {"status": 200}, "ok": true}\n',
    '{"timestamp": 1709287230, "latency_ms": 30, "http": {"status": 500}, "ok": false}\n',
    '{"time": "2024-03-01T11:00:10+01:00", "latency_ms": "20"}\n',
    '{"time": "2024-03-01T10:02:00Z", "latency_ms": null}\n',
    "not json at all\n",
    "\n",
    '{"msg": "no time here"}\n',
    "[1, 2]\n",
    '{"time": "not a time", "latency_ms": 1}\n',
    '{"time": "2024-03-01T10:02:30Z", "latency_ms": "fast"}\n',
]


def test_jsonl_fields_times_and_problems(tmp_path: Path) -> None:
    path = write(tmp_path / "app.jsonl", JSONL)
    out, report = run(path, format="jsonl", interval="1min",
                      metrics=["count", "mean:latency_ms", "max:latency_ms", "p50:latency_ms",
                               "error_rate:http.status", "mean:ok"])
    assert list(out.index.strftime("%H:%M")) == ["10:00", "10:01", "10:02"]
    assert out["count"].tolist() == [3, 0, 1]
    assert same(column(out, "mean_latency_ms"), [20.0, NAN, NAN])
    assert same(column(out, "max_latency_ms"), [30.0, NAN, NAN])
    assert same(column(out, "p50_latency_ms"), [20.0, NAN, NAN])
    assert same(column(out, "error_rate_http_status"), [0.5, NAN, NAN])
    assert same(column(out, "mean_ok"), [0.5, NAN, NAN])
    problems = {name: p["count"] for name, p in report["problems"].items()}
    assert problems == {"malformed_line": 2, "missing_time": 1, "unparseable_time": 1,
                        "non_numeric": 1}
    assert [e["line"] for e in report["problems"]["malformed_line"]["examples"]] == [5, 8]
    assert report["problems"]["non_numeric"]["examples"][0]["line"] == 10
    assert report["rows_read"] == 9 and report["rows_kept"] == 4 and report["bad_rows"] == 5
    assert report["notes"]["blank_lines"] == 1
    assert report["notes"]["missing_values"] == {"latency_ms": 1, "http.status": 2, "ok": 2}


def test_jsonl_time_field_and_format(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", ['{"at": "01.03.2024 10:00:00", "v": 1}\n',
                                        '{"at": "01.03.2024 10:00:30", "v": 3}\n'])
    out, _ = run(path, format="jsonl", interval="1min", time_field="at",
                 time_format="%d.%m.%Y %H:%M:%S", metrics=["sum:v"])
    assert out.index.tolist() == [pd.Timestamp("2024-03-01 10:00")]
    assert out["sum_v"].tolist() == [4.0]


APP_PATTERN = (r"(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ (?P<level>[A-Z]+) "
               r"took=(?P<took>\S+)ms")
APP_LINES = [
    "2024-05-01 08:00:01,120 INFO took=12ms user=1\n",
    "2024-05-01 08:00:40,007 WARN took=30ms\n",
    "2024-05-01 08:02:10,000 INFO took=-ms\n",
    "2024-05-01 08:02:11,000 INFO took=abcms\n",
    "2024-13-01 08:02:12,000 INFO took=1ms\n",
    "a stack trace line\n",
]


@pytest.mark.parametrize("pattern", [APP_PATTERN, APP_PATTERN + r"(?= |$)"],
                         ids=["re2", "lookahead"])
def test_regex_format_with_named_groups(tmp_path: Path, pattern: str) -> None:
    path = write(tmp_path / "app.log", APP_LINES)
    source = LogSource(path=str(path), format="regex", pattern=pattern, interval="1min",
                       time_format="%Y-%m-%d %H:%M:%S", metrics=["count", "mean:took"])
    lookahead = "(?=" in pattern  # RE2 has no lookarounds: Python's re reads those
    assert isinstance(source._parser(), parsers._RegexParser if lookahead else parsers._ArrowParser)
    result = source.run(StepContext())
    out, report = result["out"], result["report"]
    assert out["count"].tolist() == [2, 0, 1]
    assert same(column(out, "mean_took"), [21.0, NAN, NAN])
    problems = {name: p["count"] for name, p in report["problems"].items()}
    assert problems == {"malformed_line": 1, "unparseable_time": 1, "non_numeric": 1}
    assert report["problems"]["non_numeric"]["examples"][0] == {
        "file": str(path), "line": 4, "text": "2024-05-01 08:02:11,000 INFO took=abcms"}


def test_regex_times_without_a_format_may_be_iso_or_epoch(tmp_path: Path) -> None:
    path = write(tmp_path / "m.log", ["1709287200 v=1\n", "2024-03-01T10:00:30+00:00 v=2\n",
                                      "1709287260500 v=4\n"])  # epoch s, ISO, epoch ms
    out, _ = run(path, format="regex", pattern=r"(?P<time>\S+) v=(?P<v>\d+)", interval="1min",
                 metrics=["sum:v"])
    assert out.index.tolist() == [pd.Timestamp("2024-03-01 10:00"),
                                  pd.Timestamp("2024-03-01 10:01")]
    assert out["sum_v"].tolist() == [3.0, 4.0]


def test_regex_flags_and_log4j_times_without_a_format(tmp_path: Path, engine: bool) -> None:
    path = write(tmp_path / "app.log", ["2024-05-01 08:00:01,120 info took=12ms\n",
                                        "2024-05-01 08:00:59,999 INFO took=30ms\n",
                                        "2024-05-01 08:01:00,000 Info TOOK=2ms\n"])
    out, report = run(path, format="regex", interval="1min", metrics=["count", "sum:took"],
                      pattern=r"(?i)(?P<time>\S+ \S+) info took=(?P<took>\d+)ms")
    assert out.index.tolist() == [pd.Timestamp("2024-05-01 08:00"),
                                  pd.Timestamp("2024-05-01 08:01")]
    assert out["count"].tolist() == [2, 1] and out["sum_took"].tolist() == [42.0, 2.0]
    assert report["bad_rows"] == 0


def test_epoch_numbers_in_any_unit() -> None:
    stamps = formats._epoch_ns(np.array([1.7e9, 1.7e12, 1.7e15, 1.7e18, np.nan, 1e300]))
    assert stamps[:4].tolist() == [1_700_000_000_000_000_000] * 4
    assert stamps[4:].tolist() == [formats.NAT, formats.NAT]


def test_rotated_files_with_gzip_are_read_oldest_first(tmp_path: Path) -> None:
    stamps = ["10/Oct/2000:13:50:00 +0000", "10/Oct/2000:13:51:00 +0000",
              "10/Oct/2000:13:52:00 +0000"]
    with gzip.open(tmp_path / "access.log.2.gz", "wt") as oldest:
        oldest.write(access_line(stamps[0], 200, 1) * 3)
    write(tmp_path / "access.log.1", access_line(stamps[1], 500, 1) * 2)
    write(tmp_path / "access.log", access_line(stamps[2], 200, 1))
    write(tmp_path / "access.log.bak", "not a rotation suffix: ignored\n")
    write(tmp_path / "other.log", access_line(stamps[2], 200, 1))
    out, report = run(tmp_path / "access.log", format="combined", interval="1min",
                      metrics=["count", "error_rate"])
    assert out["count"].tolist() == [3, 2, 1]
    assert same(column(out, "error_rate"), [0.0, 1.0, 0.0])
    files = report["notes"]["files"]
    assert [Path(f["path"]).name for f in files] == ["access.log.2.gz", "access.log.1",
                                                     "access.log"]
    assert [f["lines"] for f in files] == [3, 2, 1]
    globbed, _ = run(tmp_path / "access.log*[0-9z]", format="combined", interval="1min")
    assert globbed["count"].tolist() == [3, 2]
    live_only, _ = run(tmp_path / "access.log", format="combined", interval="1min",
                       rotated=False)
    assert live_only["count"].tolist() == [1]


def test_rotation_order_and_other_compressions(tmp_path: Path) -> None:
    names = ["app.log", "app.log.1", "app.log.10.gz", "app.log.2.bz2", "app.log-20240101.gz"]
    assert [p.name for p in sorted(map(Path, names), key=log_files._rotation_key)] == [
        "app.log.10.gz", "app.log.2.bz2", "app.log.1", "app.log-20240101.gz", "app.log"]
    with bz2.open(tmp_path / "app.log.2.bz2", "wt") as packed:
        packed.write(access_line("10/Oct/2000:13:50:00 +0000", 200, 1))
    out, _ = run(tmp_path / "app.log", format="combined", interval="1min")
    assert out["count"].tolist() == [1]  # the live file may be missing after a rotation


def test_malformed_lines_are_quarantined_with_file_line_and_text(tmp_path: Path,
                                                                 engine: bool) -> None:
    long_line = "x" * 500
    lines = [COMBINED[0], "garbage\n", COMBINED[1], long_line + "\n", "   \n",
             access_line("32/Oct/2000:13:55:30 -0700", 200, 1), COMBINED[2]]
    path = write(tmp_path / "access.log", lines)
    out, report = run(path, format="combined", interval="1min", metrics=["count"])
    assert out["count"].tolist() == [3]
    assert report["rows_read"] == 6 and report["rows_kept"] == 3 and report["bad_rows"] == 3
    malformed = report["problems"]["malformed_line"]
    assert malformed["count"] == 2 and malformed["message"] == "not a combined log line"
    assert malformed["examples"] == [
        {"file": str(path), "line": 2, "text": "garbage"},
        {"file": str(path), "line": 4, "text": "x" * 200}]
    assert report["problems"]["unparseable_time"]["examples"][0]["line"] == 6
    assert report["notes"]["blank_lines"] == 1
    assert report["source"] == str(path)


def test_error_policy_names_file_and_line(tmp_path: Path, engine: bool) -> None:
    path = write(tmp_path / "access.log", [COMBINED[0], COMBINED[1], "oops\n", "again\n"])
    with pytest.raises(OpError, match=rf"{path}:3: not a combined log line: 'oops'; "
                                      "set on_bad_rows: quarantine"):
        run(path, format="combined", interval="1min", on_bad_rows="error")


def test_all_bad_or_filtered_lines_raise(tmp_path: Path) -> None:
    path = write(tmp_path / "access.log", "nothing useful\n")
    with pytest.raises(OpError, match=r"no log lines to aggregate \(1 bad lines quarantined"):
        run(path, format="combined", interval="1min")
    write(path, "")
    with pytest.raises(OpError, match="the files are empty"):
        run(path, format="combined", interval="1min")
    write(path, COMBINED)
    with pytest.raises(OpError, match="6 lines outside start/end"):
        run(path, format="combined", interval="1min", start="2001-01-01")


def test_empty_intervals_are_zero_counts_and_nan_statistics(tmp_path: Path) -> None:
    path = write(tmp_path / "access.log", [
        access_line("10/Oct/2000:10:00:00 +0000", 200, 10, "0.5"),
        access_line("10/Oct/2000:10:04:59 +0000", 500, 10, "0.7")])
    out, report = run(path, format="combined", interval="1min",
                      metrics=["count", "bytes_sum", "error_rate", "p99:request_time",
                               "max:request_time"])
    assert len(out) == 5 and out["count"].tolist() == [1, 0, 0, 0, 1]
    assert out["bytes_sum"].tolist() == [10, 0, 0, 0, 10]
    assert out.iloc[1:4][["error_rate", "p99_request_time", "max_request_time"]].isna().all(
        ).all()
    assert report["notes"]["intervals"] == 5 and report["notes"]["empty_intervals"] == 3


def test_offsets_become_utc_and_tz_gives_local_intervals(tmp_path: Path) -> None:
    path = write(tmp_path / "access.log", [
        access_line("10/Oct/2000:23:30:00 -0700", 200, 1),  # 06:30 UTC on the 11th
        access_line("11/Oct/2000:08:30:00 +0200", 200, 1),  # 06:30 UTC on the 11th
        access_line("11/Oct/2000:05:00:00 +0000", 200, 1)])
    utc, _ = run(path, format="combined", interval="1h")
    assert utc.index.tz is None
    assert utc.index.tolist() == [pd.Timestamp("2000-10-11 05:00"),
                                  pd.Timestamp("2000-10-11 06:00")]
    assert utc["count"].tolist() == [1, 2]
    tokyo, _ = run(path, format="combined", interval="1D", tz="Asia/Tokyo")  # UTC+9
    assert tokyo.index.tolist() == [pd.Timestamp("2000-10-11", tz="Asia/Tokyo")]
    assert tokyo["count"].tolist() == [3]  # 14:00 and 15:30 local, one local day


def test_local_intervals_across_daylight_saving_changes(tmp_path: Path) -> None:
    path = write(tmp_path / "access.log", [
        access_line("31/Mar/2024:01:30:00 +0100", 200, 1),  # clocks jump 02:00 -> 03:00
        access_line("31/Mar/2024:03:30:00 +0200", 200, 1),
        access_line("27/Oct/2024:02:30:00 +0200", 200, 1),  # 02:00-03:00 happens twice
        access_line("27/Oct/2024:02:30:00 +0100", 200, 1)])
    out, _ = run(path, format="combined", interval="1h", tz="Europe/Paris",
                 start="2024-03-31", end="2024-04-01")
    assert [t.isoformat() for t in out.index] == ["2024-03-31T01:00:00+01:00",
                                                  "2024-03-31T03:00:00+02:00"]
    assert out["count"].tolist() == [1, 1]  # no row for the hour that does not exist
    autumn, _ = run(path, format="combined", interval="1h", tz="Europe/Paris",
                    start="2024-10-27", end="2024-10-28")
    assert [t.isoformat() for t in autumn.index] == ["2024-10-27T02:00:00+02:00"]
    assert autumn["count"].tolist() == [2]  # both passes of 02:00-03:00 in one interval


def test_a_stray_timestamp_cannot_explode_the_table(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "access.log", [COMBINED[0],
                                           access_line("01/Jan/1971:00:00:00 +0000", 200, 1)])
    monkeypatch.setattr(aggregate, "MAX_INTERVALS", 1000)
    with pytest.raises(OpError, match=r"intervals of 0 days 00:01:00 \(more than 1000\), "
                                      r"from 1971-01-01 00:00:00 to 2000-10-10 20:55:00: set"):
        run(path, format="combined", interval="1min")
    out, report = run(path, format="combined", interval="1min", start="2000-01-01")
    assert out["count"].tolist() == [1] and report["notes"]["outside_time_range"] == 1


def test_start_and_end_keep_a_window(tmp_path: Path) -> None:
    path = write(tmp_path / "access.log", COMBINED)
    out, report = run(path, format="combined", interval="1min", start="2000-10-10 20:55:15",
                      end="2000-10-10T13:57:15-07:00")
    assert out["count"].tolist() == [2, 0, 1]
    assert report["notes"]["outside_time_range"] == 3 and report["rows_kept"] == 3


def test_lines_spanning_chunks_parse_the_same(tmp_path: Path, engine: bool,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [access_line(f"10/Oct/2000:13:{m:02d}:{s:02d} +0000", 200 + (s % 2) * 300, s,
                         f"0.{s:03d}") for m in range(3) for s in range(0, 60, 7)]
    lines.insert(10, "broken line\n")
    path = tmp_path / "access.log"
    path.write_bytes("".join(lines).replace("\n", "\r\n").encode() + b"\xff tail\r\n")
    metrics = ["count", "error_rate", "p90:request_time"]
    whole, whole_report = run(path, format="combined", interval="1min", metrics=metrics)
    monkeypatch.setattr(log_files, "CHUNK_BYTES", 97)
    chunked, chunked_report = run(path, format="combined", interval="1min", metrics=metrics)
    pd.testing.assert_frame_equal(whole, chunked)
    assert whole["count"].sum() == len(lines) - 1
    for report in (whole_report, chunked_report):
        examples = report["problems"]["malformed_line"]["examples"]
        assert [(e["line"], e["text"]) for e in examples] == [(11, "broken line"),
                                                              (len(lines) + 1, "\ufffd tail")]


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(OpError, match=rf"no log files match {tmp_path / 'none.log'}"):
        run(tmp_path / "none.log", format="combined", interval="1min")
    with pytest.raises(OpError, match=r"no log files match .*\*\.log \(a glob\)"):
        run(tmp_path / "*.log", format="combined", interval="1min")
    with pytest.raises(OpError, match="is a folder"):
        run(tmp_path, format="combined", interval="1min")
    with pytest.raises(OpError, match="no log files match"):
        LogSource(path=str(tmp_path / "none.log"), format="combined",
                  interval="1min").source_state()


@pytest.mark.parametrize(("config", "message"), [
    ({"interval": "1MS"}, "must be a fixed duration"),
    ({"interval": "soon"}, "must be a fixed duration"),
    ({"interval": "1min", "metrics": ["median"]}, "unknown metric 'median'"),
    ({"interval": "1min", "metrics": ["count", "count"]}, "listed twice"),
    ({"interval": "1min", "metrics": ["p0:request_time"]}, "between 0 and 100"),
    ({"interval": "1min", "metrics": ["p100:request_time"]}, "unknown metric"),
    ({"interval": "1min", "metrics": ["p99:upstream"]}, "needs a field 'upstream'"),
    ({"interval": "1min", "format": "syslog", "metrics": ["error_rate"]},
     "needs a 'status' field"),
    ({"interval": "1min", "format": "regex"}, "needs a pattern"),
    ({"interval": "1min", "format": "regex", "pattern": r"(?P<t>\S+)"}, r"\(\?P<time>"),
    ({"interval": "1min", "format": "regex", "pattern": "(?P<time>"}, "does not compile"),
    ({"interval": "1min", "year": 2024}, "year is only used with format: syslog"),
    ({"interval": "1min", "tz": "Mars/Base"}, "unknown time zone"),
    ({"interval": "1min", "start": "2024-02-01", "end": "2024-01-01"}, "start must be before"),
    ({"interval": "1min", "colour": "red"}, "Extra inputs are not permitted"),
])
def test_config_is_checked_before_reading(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LogSource(**{"path": "x.log", "format": "combined", **config})


def test_op_passes_the_conformance_checks() -> None:
    check_op(LogSource)
    assert LogSource.outputs == {"out": "table", "report": "json"}


def test_source_state_changes_when_a_log_grows_or_rotates(tmp_path: Path) -> None:
    path = write(tmp_path / "access.log", COMBINED[:2])
    source = LogSource(path=str(path), format="combined", interval="1min")
    first = source.source_state()
    assert first and source.source_state() == first
    with path.open("a") as log:
        log.write(COMBINED[2])
    grown = source.source_state()
    assert grown != first
    os.rename(path, tmp_path / "access.log.1")
    write(path, "")
    assert source.source_state() not in (first, grown)


def test_workflow_caches_an_unchanged_log_and_reruns_a_grown_one(tmp_path: Path) -> None:
    path = write(tmp_path / "access.log", COMBINED[:3])
    with Workflow("logs") as wf:
        ops.source.logs(path=str(path), format="combined", interval="1min",
                        metrics=["count", "error_rate"], name="logs")
    store = open_store(tmp_path / "s")
    try:
        first = run_workflow(wf, store=store)
        assert first.steps["logs"].status == "ran"
        assert first.output("logs")["count"].tolist() == [3]
        assert first.output("logs", "report")["rows_kept"] == 3
        second = run_workflow(wf, store=store)
        assert second.steps["logs"].status == "cached"
        with path.open("a") as log:
            log.writelines(COMBINED[3:])
        third = run_workflow(wf, store=store)
        assert third.steps["logs"].status == "ran"
        table = third.output("logs")
        assert table["count"].tolist() == [4, 0, 2]
        assert same(column(table, "error_rate"), [0.25, NAN, 0.5])
    finally:
        store.close()


def test_op_called_eagerly_returns_both_outputs(tmp_path: Path) -> None:
    path = write(tmp_path / "access.log", COMBINED)
    outputs = ops.source.logs(path=str(path), format="combined", interval="1min")
    assert set(outputs) == {"out", "report"} and outputs["out"]["count"].sum() == 6


def test_benchmark_helper_agrees_with_the_pandas_baseline(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "_log_bench", Path(__file__).parents[2] / "benchmarks" / "_log_bench.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    figures = bench.run(megabytes=0.3, tmpdir=str(tmp_path))  # checks both tables agree
    assert set(figures) == {"amml_mb_s", "baseline_mb_s", "lines", "megabytes"}
    assert figures["lines"] > 1000 and figures["amml_mb_s"] > 0
