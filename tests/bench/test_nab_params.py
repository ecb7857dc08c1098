"""``amml bench nab`` runs one parameter set (``NAB_PARAMS``, or ``--param``), and prints the
in-sample and leave-one-category-out figures side by side. A detector that decides (0/1
alarms) is scored held out as in-sample: any threshold picked on other categories keeps its
own alarms; scores whose scale differs by category are not."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from amml.bench.nab import NAB_PARAMS, STANDARD_PROFILES, score_corpus, score_corpus_loco
from amml.cli.main import app
from tests.cli.test_bench_cli import NAB, _corpus


def _results(scale: dict[str, float], binary: bool) -> tuple[dict, dict]:
    """Three categories of two series, each with one window and one false alarm; the true
    alarm's score and the false one's are scaled per category (as uncalibrated scores are)."""
    results, windows = {}, {}
    for category, factor in scale.items():
        for k in range(2):
            ts = pd.date_range("2021-01-01", periods=400, freq="5min")
            score = np.zeros(400)
            score[300] = 1.0 if binary else 0.9 * factor  # inside the window
            score[150] = 1.0 if binary and k == 0 else (0.0 if binary else 0.5 * factor)
            name = f"{category}/s{k}.csv"
            results[name] = pd.DataFrame({"timestamp": ts, "anomaly_score": score})
            windows[name] = [(ts[290], ts[310])]
    return results, windows


def test_decisions_carry_to_held_out_categories_scores_do_not():
    profiles = {"standard": STANDARD_PROFILES["standard"]}
    scale = {"a": 1.0, "b": 0.5, "c": 0.25}
    results, windows = _results(scale, binary=True)
    inside = score_corpus(results, windows, profiles)["standard"]["score"]
    held = score_corpus_loco(results, windows, profiles)["standard"]
    assert held["score"] == pytest.approx(inside, abs=1e-9)
    assert set(held["thresholds"].values()) == {1.0}
    scored, windows = _results(scale, binary=False)
    inside = score_corpus(scored, windows, profiles)["standard"]["score"]
    held = score_corpus_loco(scored, windows, profiles)["standard"]["score"]
    assert held < inside - 10  # the threshold picked on two categories misfits the third


def test_bench_nab_runs_the_parameter_set_and_prints_both_figures(tmp_path):
    _corpus(tmp_path / "nab")
    runner = CliRunner()
    result = runner.invoke(app, [*NAB, "--data", str(tmp_path / "nab"),
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert NAB_PARAMS["amml"] == {"output": "alarm", "alarm": 0.45}
    assert 'nab detector=amml params={"alarm": 0.45, "output": "alarm"}' in result.output
    assert re.search(r"load_average=\d+\.\d\d,", result.output)
    for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
        assert re.search(rf"^nab side_by_side profile={profile} in_sample=-?\d+\.\d "
                         r"loco=-?\d+\.\d gap=-?\d+\.\d$", result.output, re.M), result.output
    written = pd.read_csv(tmp_path / "out" / "amml" / "catA" / "amml_one.csv")
    assert set(written["anomaly_score"].unique()) <= {0.0, 1.0}  # decisions; warm-up as 0
    scored = runner.invoke(app, [*NAB, "--data", str(tmp_path / "nab"), "--out",
                                 str(tmp_path / "out2"), "-p", "output=score", "-p", "alarm=0.5"])
    assert scored.exit_code == 0, scored.output
    assert 'params={"alarm": 0.5, "output": "score"}' in scored.output
    # one key given keeps the rest of the parameter set
    one = runner.invoke(app, [*NAB, "--data", str(tmp_path / "nab"), "--out",
                              str(tmp_path / "out3"), "-p", "daily=0"])
    assert one.exit_code == 0, one.output
    assert 'params={"alarm": 0.45, "daily": 0, "output": "alarm"}' in one.output
    bad = runner.invoke(app, [*NAB, "--data", str(tmp_path / "nab"), "-p", "nope=1"])
    assert bad.exit_code == 2 and "has no parameter 'nope'" in bad.output
    bad = runner.invoke(app, [*NAB, "--data", str(tmp_path / "nab"), "-p", "alarm"])
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.output
