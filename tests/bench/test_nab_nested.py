"""Nested leave-one-category-out (``score_corpus_nested``, ``amml bench nab --tune``): the
parameters, not only NAB's threshold, are picked on the other categories of each fold."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from amml.bench.nab import (
    MAX_TP,
    STANDARD_PROFILES,
    scaled_sigmoid,
    score_corpus,
    score_corpus_loco,
    score_corpus_nested,
)
from amml.cli.main import app
from tests.cli.test_bench_cli import _corpus

PROFILES = {"standard": STANDARD_PROFILES["standard"]}
TS = pd.date_range("2021-01-01", periods=400, freq="5min")


def _run(hits: dict[str, int | None], scale: float = 1.0) -> dict[str, pd.DataFrame]:
    """One series per category; ``hits[category]``: the row of its one detection (None: none)."""
    out = {}
    for category, row in hits.items():
        score = np.zeros(400)
        if row is not None:
            score[row] = scale
        out[f"{category}/s.csv"] = pd.DataFrame({"timestamp": TS, "anomaly_score": score})
    return out


WINDOWS = {f"{c}/s.csv": [(TS[290], TS[310])] for c in "abc"}


def test_one_setting_is_leave_one_category_out():
    """With a single setting nothing is chosen but the threshold, worked out here by hand: a
    false alarm at row 150 and a detection at 300 (window 290-310), scaled 1, 1/2 and 1/4 by
    category. On b and c NAB picks 0.225 (both windows, and b's false alarm, cheaper than c's
    miss); on a and c, 0.225 as well; on a and b, 0.45 (both windows and a's false alarm).
    So a and b are scored with their hit and their false alarm, and c, all below 0.45,
    misses its window."""
    run = {f"{c}/s.csv": pd.DataFrame({"timestamp": TS, "anomaly_score": np.r_[
        np.zeros(150), [0.5 * k], np.zeros(149), [0.9 * k], np.zeros(99)]})
        for c, k in zip("abc", (1.0, 0.5, 0.25), strict=True)}
    nested = score_corpus_nested({"only": run}, WINDOWS, PROFILES)["standard"]
    assert nested["thresholds"] == pytest.approx({"a": 0.225, "b": 0.225, "c": 0.45})
    hit = float(scaled_sigmoid(-11 / 21)) / MAX_TP  # row 300 of the 21-row window 290-310
    raw = 2 * hit - 2 * 0.11 - 1.0
    assert nested["raw"] == pytest.approx(raw, abs=1e-9)
    assert nested["held_out"] == pytest.approx(100 * (raw + 3) / 6, abs=1e-9)  # null -3, 3
    assert nested["picks"] == {"a": "only", "b": "only", "c": "only"}
    loco = score_corpus_loco(run, WINDOWS, PROFILES)["standard"]
    assert (loco["score"], loco["raw"], loco["thresholds"], loco["in_sample"]) == (
        nested["held_out"], nested["raw"], nested["thresholds"], nested["best_in_sample"])


def test_a_setting_best_everywhere_is_picked_in_every_fold():
    good = _run({"a": 295, "b": 295, "c": 295})
    poor = _run({"a": 295, "b": 100, "c": None})
    nested = score_corpus_nested({"poor": poor, "good": good}, WINDOWS, PROFILES)["standard"]
    assert nested["picks"] == {"a": "good", "b": "good", "c": "good"}
    assert nested["best"] == "good"
    assert nested["held_out"] == pytest.approx(
        score_corpus(good, WINDOWS, PROFILES)["standard"]["score"], abs=1e-9)
    assert nested["in_sample"]["poor"] < nested["in_sample"]["good"]


def test_a_setting_that_fits_only_its_own_category_is_not_picked_for_it():
    """``fits_a`` catches a's window and raises false alarms in b and c: picked on b and c,
    a gets ``plain``, which misses it; the held-out figure drops below the in-sample one."""
    plain = _run({"a": None, "b": 295, "c": 295})
    fits_a = _run({"a": 295, "b": 100, "c": 100})
    fits_a["b/s.csv"].loc[295, "anomaly_score"] = 1.0
    fits_a["c/s.csv"].loc[295, "anomaly_score"] = 1.0
    nested = score_corpus_nested({"plain": plain, "fits_a": fits_a}, WINDOWS,
                                 PROFILES)["standard"]
    assert nested["picks"]["a"] == "plain"
    assert nested["best"] == "fits_a"  # in-sample, the tuner would report fits_a
    held_raw = sum(score_corpus(plain if nested["picks"][c] == "plain" else fits_a, WINDOWS,
                                PROFILES)["standard"]["per_category"][c]["raw"] for c in "abc")
    assert nested["raw"] == pytest.approx(held_raw, abs=1e-9)
    assert nested["held_out"] < nested["best_in_sample"]


def test_ties_go_to_the_preferred_setting():
    same = _run({"a": 295, "b": 295, "c": 295})
    runs = {"first": same, "second": {k: v.copy() for k, v in same.items()}}
    assert set(score_corpus_nested(runs, WINDOWS, PROFILES)["standard"]["picks"].values()) == {
        "first"}
    preferred = score_corpus_nested(runs, WINDOWS, PROFILES, prefer="second")["standard"]
    assert set(preferred["picks"].values()) == {"second"} and preferred["best"] == "second"
    with pytest.raises(ValueError, match="no settings"):
        score_corpus_nested({}, WINDOWS, PROFILES)


def test_bench_nab_tune_prints_every_setting_and_the_nested_figure(tmp_path):
    _corpus(tmp_path / "nab")
    runner = CliRunner()
    args = ["bench", "nab", "--data", str(tmp_path / "nab"), "--out", str(tmp_path / "out"),
            "--workers", "1"]
    result = runner.invoke(app, [*args, "--tune", "alarm=0.45,0.99"])
    assert result.exit_code == 0, result.output
    settings = dict(re.findall(r"^nab tune profile=standard setting=(\S+) in_sample=(\S+)$",
                               result.output, re.M))
    assert list(settings) == ["alarm=0.45", "alarm=0.99"]
    in_sample = float(re.search(r"^nab profile=standard score=(\S+)", result.output,
                                re.M).group(1))
    assert float(settings["alarm=0.45"]) == in_sample  # the parameter set's own run, reused
    line = re.search(r"^nab nested profile=standard in_sample=(\S+) held_out=(\S+) "
                     r"best=(\S+) picks=(\S+) thresholds=(\S+)$", result.output, re.M)
    assert line, result.output
    assert line.group(3) == "alarm=0.45"
    assert set(line.group(4).split(";")) == {"catA:alarm=0.45", "catB:alarm=0.45"}
    # each fold's threshold, picked with its setting on the other category: the loco ones
    loco = re.search(r"^nab loco profile=standard score=\S+ thresholds=(\S+)$", result.output,
                     re.M)
    assert line.group(5) == loco.group(1)  # the parameter set won every fold
    as_json = runner.invoke(app, [*args, "--json", "--tune", "alarm=0.45,0.99",
                                  "--tune", "suppress=10"])
    assert as_json.exit_code == 0, as_json.output
    nested = json.loads(as_json.stdout)["nested"]["standard"]
    assert list(nested["in_sample"]) == ["alarm=0.45,suppress=10", "alarm=0.99,suppress=10"]
    # list values come as a JSON list of them; the labels stay one word
    listed = runner.invoke(app, [*args, "--tune", "shapes=[[8,16],[8]]"])
    assert listed.exit_code == 0, listed.output
    assert re.findall(r"^nab tune profile=standard setting=(\S+) in_sample=\S+$",
                      listed.output, re.M) == ["shapes=[8,16]", "shapes=[8]"]
    for bad, message in ((["--tune", "alarm"], "KEY=V1,V2"),
                         (["--tune", "shapes=[8,16]"], "'shapes' must be a list"),
                         (["--tune", "shapes=[[8,16],[8]"], "starts a JSON list but is not"),
                         (["--tune", "window=16,2"], "--tune window=2"),
                         (["--tune", "alarm=0.4", "--score-results", str(tmp_path)],
                          "does not go with --score-results")):
        failed = runner.invoke(app, [*args, *bad])
        assert failed.exit_code == 2 and message in failed.output, failed.output


def test_profiles_in_nab_layout_probation_and_unlisted_series():
    """NAB's ``profiles.json`` nests the costs under ``CostMatrix``; the probationary share is
    the one given; a series with no entry in the windows has no window; a preferred label
    that is not a setting is ignored; a lone category is scored with no detection."""
    run = {f"{c}/s.csv": pd.DataFrame({"timestamp": TS, "anomaly_score": np.r_[
        np.zeros(150), [0.5 * k], np.zeros(149), [0.9 * k], np.zeros(99)]})
        for c, k in zip("abc", (1.0, 0.5, 0.25), strict=True)}
    nested_layout = {"standard": {"CostMatrix": dict(STANDARD_PROFILES["standard"])}}
    flat = score_corpus_nested({"only": run}, WINDOWS, PROFILES)["standard"]
    assert score_corpus_nested({"only": run}, WINDOWS, nested_layout)["standard"][
        "held_out"] == pytest.approx(flat["held_out"], abs=1e-12)
    late = score_corpus_nested({"only": run}, WINDOWS, PROFILES, probation_percent=0.5)
    loco = score_corpus_loco(run, WINDOWS, PROFILES, probation_percent=0.5)["standard"]
    assert late["standard"]["held_out"] == pytest.approx(loco["score"], abs=1e-9)
    assert late["standard"]["held_out"] != pytest.approx(flat["held_out"], abs=1e-6)
    unlisted = {k: v for k, v in WINDOWS.items() if not k.startswith("c/")}
    partial = score_corpus_nested({"only": run}, unlisted, PROFILES)["standard"]
    assert partial["held_out"] == pytest.approx(
        score_corpus_loco(run, unlisted, PROFILES)["standard"]["score"], abs=1e-9)
    assert score_corpus_nested({"only": run}, WINDOWS, PROFILES, prefer="absent")[
        "standard"]["picks"] == {"a": "only", "b": "only", "c": "only"}
    alone = {"a/s.csv": run["a/s.csv"]}
    lone = score_corpus_nested({"x": alone, "y": alone}, WINDOWS, PROFILES)["standard"]
    assert lone["picks"] == {"a": "x"} and lone["raw"] == pytest.approx(-1.0)  # missed


def test_each_fold_picks_its_threshold_with_the_probation_given():
    """A window early in the series counts under NAB's 15% probation but not under 50%: there
    the threshold picked on the other categories must be "never" (only a false alarm is left
    to count), so the held-out category pays nothing for its own false alarm."""
    windows = {f"{c}/s.csv": [(TS[100], TS[120])] for c in "abc"}
    run = {f"{c}/s.csv": pd.DataFrame({"timestamp": TS, "anomaly_score": np.r_[
        np.zeros(110), [0.3], np.zeros(189), [0.6], np.zeros(99)]}) for c in "abc"}
    late = score_corpus_nested({"only": run}, windows, PROFILES, probation_percent=0.5)
    assert late["standard"]["raw"] == pytest.approx(0.0)
    # no counted window: null 0, perfect 3, so "never" normalises to 0 (with 15%: to 50)
    assert late["standard"]["held_out"] == pytest.approx(0.0)
    early = score_corpus_nested({"only": run}, windows, PROFILES)["standard"]
    assert early["raw"] > 2.0  # the windows count, and each fold catches its own


def test_a_setting_that_spells_out_a_default_is_the_parameter_set(tmp_path):
    """`--tune suppress=10,50` names the detector's default (50) without it being in the
    parameter set: that setting is the parameter set's own run and wins ties, wherever listed."""
    _corpus(tmp_path / "nab")
    args = ["bench", "nab", "--data", str(tmp_path / "nab"), "--out", str(tmp_path / "out"),
            "--workers", "1", "--tune", "suppress=10,50"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    settings = dict(re.findall(r"^nab tune profile=standard setting=(\S+) in_sample=(\S+)$",
                               result.output, re.M))
    assert settings["suppress=10"] == settings["suppress=50"]  # a tie on this corpus
    line = re.search(r"^nab nested profile=standard .* best=(\S+) picks=(\S+) thresholds=\S+$",
                     result.output,
                     re.M)
    assert line.group(1) == "suppress=50"
    assert set(line.group(2).split(";")) == {"catA:suppress=50", "catB:suppress=50"}
