"""``amml bench nab`` on a tiny generated NAB-layout folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from amml.cli.main import app

#: ``amml bench nab`` in this process: worker processes are the subject of one test of their
#: own (and of tests/bench/test_nab_run.py); the rest check what is printed and written
NAB = ["bench", "nab", "--workers", "1"]


def _corpus(root: Path, categories: tuple[str, str] = ("catA", "catB")) -> dict[str, int]:
    rng = np.random.default_rng(1)
    windows: dict[str, list[list[str]]] = {}
    sizes: dict[str, int] = {}
    first, second = categories
    for category, file, n, spike in [(first, "one.csv", 400, 300), (second, "two.csv", 350, None)]:
        ts = pd.date_range("2022-01-01", periods=n, freq="h")
        values = 5 + rng.normal(0, 0.2, n)
        if spike is not None:
            values[spike] += 6
        folder = root / "data" / category
        folder.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "value": values}).to_csv(
            folder / file, index=False)
        name = f"{category}/{file}"
        sizes[name] = n
        windows[name] = ([[f"{ts[spike - 10]}.000000", f"{ts[spike + 10]}.000000"]]
                         if spike is not None else [])
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    return sizes


def test_bench_nab_writes_nab_layout_and_prints_scores(tmp_path):
    sizes = _corpus(tmp_path / "nab")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [*NAB, "--data", str(tmp_path / "nab"),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
        assert re.search(rf"^nab profile={profile} score=-?\d+\.\d threshold=", result.output,
                         re.M), result.output
    assert re.search(r"^nab runtime_s=\d+\.\d+", result.output, re.M)
    for name, n in sizes.items():
        category, file = name.split("/")
        frame = pd.read_csv(out / "amml" / category / f"amml_{file}")
        assert list(frame.columns) == ["timestamp", "value", "anomaly_score", "label"]
        assert len(frame) == n
        source = pd.read_csv(tmp_path / "nab" / "data" / name)
        assert frame["timestamp"].tolist() == source["timestamp"].tolist()
    labelled = pd.read_csv(out / "amml" / "catA" / "amml_one.csv")
    assert labelled["label"].sum() == 21 and labelled["label"].iloc[290:311].all()


def test_bench_nab_json_and_baseline_detector(tmp_path):
    _corpus(tmp_path / "nab")
    result = CliRunner().invoke(app, [*NAB, "--data", str(tmp_path / "nab"), "--out",
                                      str(tmp_path / "out"), "--detector", "windowed_gaussian",
                                      "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload["profiles"]) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    assert (tmp_path / "out" / "windowed_gaussian" / "catB" / "windowed_gaussian_two.csv").exists()


def test_bench_nab_rejects_unknown_detector(tmp_path):
    _corpus(tmp_path / "nab")
    result = CliRunner().invoke(app, [*NAB, "--data", str(tmp_path / "nab"),
                                      "--detector", "nope"])
    assert result.exit_code == 2


def test_bench_nab_prints_cited_peers_as_ratios_on_their_subset(tmp_path, monkeypatch):
    from amml.cli import bench

    _corpus(tmp_path / "nab")
    monkeypatch.setattr(bench, "CITED_SUBSET_SHAPE", (2, 1))  # pretend this is the subset
    result = CliRunner().invoke(app, [*NAB, "--data", str(tmp_path / "nab"),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    line = re.search(r"^nab scored_here=ARTime \(its published result files, this scorer, "
                     r"24-series subset\) standard=68\.8 ratio=(-?\d+\.\d+)", result.output, re.M)
    score = re.search(r"^nab profile=standard score=(-?\d+\.\d)", result.output, re.M)
    assert line and score, result.output
    assert float(line.group(1)) == pytest.approx(float(score.group(1)) / 68.8, abs=2e-3)


def test_published_result_files_are_scored_like_a_run(tmp_path):
    """``--score-results`` scores a results folder in NAB's layout (how the peers' subset
    figures are made) and gives exactly what running the same detector gave."""
    _corpus(tmp_path / "nab")
    ran = CliRunner().invoke(app, [*NAB, "--data", str(tmp_path / "nab"), "--out",
                                   str(tmp_path / "out"), "--json"])
    assert ran.exit_code == 0, ran.output
    scored = CliRunner().invoke(app, [*NAB, "--data", str(tmp_path / "nab"),
                                      "--score-results", str(tmp_path / "out" / "amml"),
                                      "--json"])
    assert scored.exit_code == 0, scored.output
    first, again = json.loads(ran.stdout), json.loads(scored.stdout)
    assert again["detector"] == "amml"
    assert again["profiles"]["standard"]["score"] == first["profiles"]["standard"]["score"]
    # nothing ran: no parameters, no results folder claimed
    assert again["params"] is None and again["out"] is None and again["workers"] == 0
    text = CliRunner().invoke(app, [*NAB, "--data", str(tmp_path / "nab"),
                                    "--score-results", str(tmp_path / "out" / "amml")])
    assert f"nab detector=amml scored_from={tmp_path / 'out' / 'amml'}" in text.output
    assert "params=" not in text.output and "results=" not in text.output
    (tmp_path / "out" / "amml" / "catB" / "amml_two.csv").unlink()
    missing = CliRunner().invoke(app, [*NAB, "--data", str(tmp_path / "nab"),
                                       "--score-results", str(tmp_path / "out" / "amml")])
    assert missing.exit_code == 2 and "amml_two.csv" in missing.output


def test_bench_nab_workers_give_the_sequential_scores_and_say_how_fast(tmp_path):
    """``--workers``: the series scored in worker processes give the scores (and result files)
    of the run in this process; the runtime line and the JSON say workers, rows and rows/s,
    and a part of NAB (NAB's category names) the whole corpus's time at that rate."""
    sizes = _corpus(tmp_path / "nab", ("realKnownCause", "artificialNoAnomaly"))
    runs = {}
    for workers in (1, 2):
        result = CliRunner().invoke(app, ["bench", "nab", "--data", str(tmp_path / "nab"),
                                          "--out", str(tmp_path / f"out{workers}"), "--json",
                                          "--workers", str(workers)])
        assert result.exit_code == 0, result.output
        runs[workers] = json.loads(result.stdout)
        assert runs[workers]["workers"] == workers
        assert runs[workers]["rows"] == sum(sizes.values())
        assert runs[workers]["rows_per_s"] > 0
    assert runs[1]["profiles"] == runs[2]["profiles"]
    for name in sizes:
        category, file = name.split("/")
        one, two = (pd.read_csv(tmp_path / f"out{w}" / "amml" / category / f"amml_{file}")
                    for w in (1, 2))
        pd.testing.assert_frame_equal(one, two)
    text = CliRunner().invoke(app, ["bench", "nab", "--data", str(tmp_path / "nab"), "--out",
                                    str(tmp_path / "out"), "--workers", "8"])
    assert text.exit_code == 0, text.output
    line = re.search(r"^nab runtime_s=\d+\.\d+ series=2 windows=1 results=\S+ workers=(\d+) "
                     r"rows=(\d+) rows_per_s=\d+$", text.output, re.M)
    assert line, text.output
    assert (int(line.group(1)), int(line.group(2))) == (2, sum(sizes.values()))  # <= series
    runtime = float(re.search(r"^nab runtime_s=(\S+)", text.output, re.M).group(1))
    estimate = re.search(r"^nab full_corpus_estimate_s=(\S+) \(extrapolated: NAB's 365,551 "
                         r"rows at this run's rows_per_s, 2 workers\)$", text.output, re.M)
    assert estimate, text.output  # the whole corpus's time at the measured rate
    per_row = 365_551 / sum(sizes.values())  # runtime_s is printed to 0.01 s
    assert (runtime - 0.005) * per_row - 0.05 <= float(estimate.group(1)) <= (
        (runtime + 0.005) * per_row + 0.05)
    bad = CliRunner().invoke(app, ["bench", "nab", "--data", str(tmp_path / "nab"),
                                   "--workers", "0"])
    assert bad.exit_code == 2
