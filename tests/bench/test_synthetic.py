"""The generated corpus is what its labels say: each anomaly starts at its labelled onset, in
the middle of a NAB window, with the size its kind promises, over the same base values as the
anomaly-free series of that base; the same seed writes the same bytes; and ``amml bench nab``
scores it (the ``amml`` detector finds the injected spikes)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from amml.bench.nab import load_corpus, probationary_length
from amml.bench.synthetic import ANOMALIES, BASES, ROWS_PER_DAY, WINDOW_SHARE, generate
from amml.cli.main import app

ROWS = 4 * ROWS_PER_DAY


@pytest.fixture  # one per test: mutation testing then knows that each test runs generate()
def corpus(tmp_path):
    root = generate(tmp_path / "synthetic", seed=3, rows=ROWS, per_pair=1)
    labels = json.loads((root / "labels" / "combined_labels.json").read_text())
    return load_corpus(root), labels


def _values(corpus, name: str) -> np.ndarray:
    return corpus.series[name]["value"].to_numpy()


def _onset(corpus, labels, name: str) -> int:
    times = pd.to_datetime(corpus.series[name]["timestamp"])
    (label,) = labels[name]
    return int(np.flatnonzero(times == pd.Timestamp(label))[0])


def test_every_kind_over_every_base_and_anomaly_free_ones(corpus):
    corpus, labels = corpus
    kinds = {name.split("/")[0] for name in corpus.series}
    assert kinds == {"none", *ANOMALIES}
    assert len(corpus.series) == (len(ANOMALIES) + 1) * len(BASES)
    assert all(corpus.windows[name] == [] and labels[name] == []
               for name in corpus.series if name.startswith("none/"))
    assert corpus.n_windows == len(ANOMALIES) * len(BASES)


def test_each_anomaly_starts_at_its_label_over_the_anomaly_free_values(corpus):
    corpus, labels = corpus
    for kind in ANOMALIES:
        for base in BASES:
            name = f"{kind}/{base}_0.csv"
            onset = _onset(corpus, labels, name)
            clean, values = _values(corpus, f"none/{base}_0.csv"), _values(corpus, name)
            # untouched before the onset: the anomaly-free series is the same base
            np.testing.assert_array_equal(values[:onset], clean[:onset], err_msg=name)
            changed = np.flatnonzero(values != clean)
            assert changed.size, name
            if kind != "stuck" or base != "counts":  # a repeated count may equal the base's
                assert changed[0] == onset, name


def test_windows_are_nab_windows_centred_on_the_onset_after_probation(corpus):
    corpus, labels = corpus
    half = int(WINDOW_SHARE * ROWS) // 2
    for name, windows in corpus.windows.items():
        if not windows:
            continue
        times = pd.to_datetime(corpus.series[name]["timestamp"])
        ((start, end),) = windows
        first = int(np.flatnonzero(times == start)[0])
        last = int(np.flatnonzero(times == end)[0])
        onset = _onset(corpus, labels, name)
        assert (first, last) == (onset - half, min(onset + half, ROWS - 1)), name
        assert first > probationary_length(ROWS), name


def test_each_kind_has_the_size_its_docstring_promises(corpus):
    corpus, labels = corpus
    for base in ("noise", "daily", "ar", "heavy"):
        clean = _values(corpus, f"none/{base}_0.csv")

        def diff(kind: str, base: str = base, clean: np.ndarray = clean
                 ) -> tuple[np.ndarray, int, float]:
            name = f"{kind}/{base}_0.csv"
            onset = _onset(corpus, labels, name)
            return _values(corpus, name) - clean, onset, float(np.std(clean[:onset]))

        spike, at, sd = diff("spike")
        assert 6 * sd <= spike[at] <= 10 * sd + 1e-6 and not spike[at + 1:].any()
        dip, at, sd = diff("dip")
        assert -10 * sd - 1e-6 <= dip[at] <= -6 * sd and not dip[at + 1:].any()
        shift, at, sd = diff("level_shift")
        assert np.allclose(shift[at:], shift[at], atol=1e-5)
        assert 2 * sd - 1e-5 <= abs(shift[at]) <= 3 * sd + 1e-5
        drift, at, sd = diff("drift")
        assert np.all(np.diff(drift[at:]) > 0)
        steps = np.arange(1, ROWS - at + 1)
        np.testing.assert_allclose(drift[at:], drift[at] * steps, rtol=1e-4, atol=1e-5)
        per_day = drift[at] * ROWS_PER_DAY  # a straight ramp: its slope times a day's rows
        assert 3 * sd - 1e-3 <= per_day <= 4 * sd + 1e-3
        name = f"stuck/{base}_0.csv"
        at = _onset(corpus, labels, name)
        stuck = _values(corpus, name)[at - 1:at + ROWS_PER_DAY // 2]
        assert np.all(stuck == stuck[0]) and _values(corpus, name)[at + ROWS_PER_DAY // 2] \
            == clean[at + ROWS_PER_DAY // 2]
        name = f"variance/{base}_0.csv"
        at = _onset(corpus, labels, name)
        noisy = _values(corpus, name)
        day = slice(at, at + ROWS_PER_DAY)
        assert np.std(np.diff(noisy[day])) > 2.5 * np.std(np.diff(clean[day]))
        np.testing.assert_array_equal(noisy[at + ROWS_PER_DAY:], clean[at + ROWS_PER_DAY:])
        name = f"pattern/{base}_0.csv"
        at = _onset(corpus, labels, name)
        flat = _values(corpus, name)[at:at + ROWS_PER_DAY]
        assert abs(flat.mean() - clean[:at].mean()) < 0.05 * np.std(clean[:at]) + 1e-9
        assert np.std(flat) < 0.2 * np.std(clean[:at])


def test_the_same_seed_writes_the_same_bytes_another_seed_other_ones(tmp_path):
    def files(seed: int, folder: str) -> dict[str, bytes]:
        root = generate(tmp_path / folder, seed=seed, rows=2 * ROWS_PER_DAY, per_pair=1,
                        bases=("daily", "counts"), anomalies=("spike", "stuck"))
        return {p.relative_to(root).as_posix(): p.read_bytes()
                for p in sorted(root.rglob("*")) if p.is_file()}

    first, again, other = files(0, "a"), files(0, "b"), files(1, "c")
    assert first == again
    assert sorted(first) == sorted(other)
    assert all(first[name] != other[name] for name in first if name.startswith("data/"))


def test_unknown_kinds_and_too_short_series_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"unknown base or anomaly nois, spkie \(bases: "
                       r"noise, daily, .*; anomalies: spike, dip, .*\)"):
        generate(tmp_path, bases=("nois",), anomalies=("spkie",))
    with pytest.raises(ValueError, match=r"rows must be at least two days \(576\), got 100"):
        generate(tmp_path, rows=100)


def test_writing_again_to_the_same_folder_replaces_the_corpus(tmp_path):
    kinds = {"rows": 2 * ROWS_PER_DAY, "per_pair": 1, "bases": ("noise",),
             "anomalies": ("dip",)}
    generate(tmp_path, seed=1, **kinds)
    root = generate(tmp_path, seed=2, **kinds)
    again = generate(tmp_path / "fresh", seed=2, **kinds)
    for name in ("data/dip/noise_0.csv", "labels/combined_windows.json"):
        assert (root / name).read_bytes() == (again / name).read_bytes()
    assert (root / "data/dip/noise_0.csv").read_text().splitlines()[0] == "timestamp,value"


def _sizes(kind: str, draws: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """The anomaly ``kind`` injected over ``draws`` series whose spread is 1 before the onset
    and 5 after it (the size must come from the rows before the onset): the changes."""
    changes, bases = [], []
    for draw in range(draws):
        rng = np.random.default_rng(draw)
        base = np.r_[rng.normal(0.0, 1.0, 600), rng.normal(0.0, 5.0, 600)]
        base[:600] = (base[:600] - base[:600].mean()) / base[:600].std()  # spread exactly 1
        values = base.copy()
        ANOMALIES[kind](values, 600, rng)
        changes.append(values - base)
        bases.append(base)
    return np.array(changes), np.array(bases)


@pytest.mark.parametrize(("kind", "low", "high"), [("spike", 6.0, 10.0), ("dip", -10.0, -6.0)])
def test_spikes_and_dips_span_their_whole_range_of_sizes(kind, low, high):
    changes, _ = _sizes(kind)
    at_onset = changes[:, 600]
    assert np.all((low <= at_onset) & (at_onset <= high))
    assert at_onset.min() < low + 0.1 and at_onset.max() > high - 0.1
    assert not np.delete(changes, 600, axis=1).any()


def test_level_shifts_go_both_ways_by_two_to_three_sd():
    changes, _ = _sizes("level_shift")
    shift = changes[:, 600]
    assert np.allclose(changes[:, 600:], shift[:, None]) and not changes[:, :600].any()
    assert np.all((abs(shift) >= 2.0) & (abs(shift) <= 3.0))
    assert abs(shift).min() < 2.05 and abs(shift).max() > 2.95
    assert 100 < (shift > 0).sum() < 200  # up and down alike


def test_drifts_climb_three_to_four_sd_a_day():
    changes, _ = _sizes("drift")
    per_day = changes[:, 600] * ROWS_PER_DAY
    assert np.all((per_day >= 3.0) & (per_day <= 4.0))
    assert per_day.min() < 3.05 and per_day.max() > 3.95


def test_a_day_of_noise_is_three_times_the_row_to_row_noise_and_centred():
    changes, _ = _sizes("variance", draws=50)
    day = changes[:, 600:600 + ROWS_PER_DAY]
    # the base's row-to-row noise before the onset is about its spread, 1: the added noise
    # is about 3 (not 6: the difference of two rows has twice the variance of one)
    assert 2.7 < day.std() < 3.3 and abs(day.mean()) < 0.05
    assert not changes[:, 600 + ROWS_PER_DAY:].any() and not changes[:, :600].any()


def test_a_smooth_base_gets_noise_of_a_tenth_of_its_spread_times_three():
    values = np.sin(np.arange(1200) / 100.0)  # hardly any row-to-row noise
    before = values.copy()
    ANOMALIES["variance"](values, 600, np.random.default_rng(0))
    added = (values - before)[600:600 + ROWS_PER_DAY]
    expected = 3.0 * 0.1 * before[:600].std()
    assert 0.85 * expected < added.std() < 1.15 * expected


def test_a_day_without_shape_is_the_mean_before_plus_a_tenth_of_the_spread():
    changes, bases = _sizes("pattern", draws=50)
    day = (bases + changes)[:, 600:600 + ROWS_PER_DAY]
    assert abs(day.mean()) < 0.01 and 0.09 < day.std() < 0.11  # mean 0 and spread 1 before


def test_bench_synthetic_writes_a_corpus_that_bench_nab_scores(tmp_path):
    runner = CliRunner()
    root = tmp_path / "home" / "synthetic-nab"  # beside the store by default, not in the cwd
    made = runner.invoke(app, ["bench", "synthetic", "--home", str(tmp_path / "home"),
                               "--seed", "2", "--per-pair", "1", "--rows", str(3 * ROWS_PER_DAY)])
    assert made.exit_code == 0, made.output
    assert f"synthetic corpus={root} seed=2 series=48 windows=42" in made.output
    scored = runner.invoke(app, ["bench", "nab", "--data", str(root), "--workers", "1",
                                 "--out", str(tmp_path / "results"), "--json"])
    assert scored.exit_code == 0, scored.output
    result = json.loads(scored.output)
    per_kind = result["profiles"]["standard"]["per_category"]
    assert set(per_kind) == {"none", *ANOMALIES}
    # six spikes of 6 to 10 sd, one per base: the amml detector finds most of them early
    assert per_kind["spike"]["score"] > 50
    assert re.fullmatch(r"amml", result["detector"])


def test_a_generated_corpus_gets_no_estimate_of_nabs_whole_corpus(tmp_path):
    root = generate(tmp_path / "corpus", rows=2 * ROWS_PER_DAY, per_pair=1, bases=("noise",),
                    anomalies=("spike",))
    scored = CliRunner().invoke(app, ["bench", "nab", "--data", str(root), "--workers", "1",
                                      "--out", str(tmp_path / "results")])
    assert scored.exit_code == 0, scored.output
    assert "nab runtime_s=" in scored.output and "full_corpus_estimate" not in scored.output


def test_each_base_is_the_signal_its_table_describes():
    rows = 28 * ROWS_PER_DAY

    def rng() -> np.random.Generator:
        return np.random.default_rng(11)

    day = np.arange(rows) % ROWS_PER_DAY
    weekend = (np.arange(rows) // ROWS_PER_DAY) % 7 >= 5  # the corpus starts on a Monday
    noise = BASES["noise"](rows, rng())
    assert abs(noise.mean() - 10.0) < 0.05 and abs(noise.std() - 1.0) < 0.05
    daily = BASES["daily"](rows, rng())
    shape = 20.0 + 3.0 * np.sin(2 * np.pi * day / ROWS_PER_DAY)
    assert abs(np.std(daily - shape) - 0.5) < 0.02 and abs((daily - shape).mean()) < 0.02
    weekly = BASES["weekly"](rows, rng())
    bump = np.clip(np.sin(2 * np.pi * day / ROWS_PER_DAY), 0.0, None)
    expected = 5.0 + np.where(weekend, 2.0, 6.0) * bump
    assert abs(np.std(weekly - expected) - 0.4) < 0.02 and abs((weekly - expected).mean()) < 0.02
    walk = BASES["ar"](rows, rng()) - 50.0
    coefficient = float(np.dot(walk[1:], walk[:-1]) / np.dot(walk[:-1], walk[:-1]))
    assert abs(coefficient - 0.95) < 0.01
    assert abs(np.std(walk[1:] - 0.95 * walk[:-1]) - 1.0) < 0.03 and abs(walk.mean()) < 0.75
    counts = BASES["counts"](rows, rng())
    rate = 5.0 + 4.0 * np.sin(2 * np.pi * day / ROWS_PER_DAY)
    assert np.all(counts == np.round(counts)) and abs((counts - rate).mean()) < 0.1
    wave = np.sin(2 * np.pi * day / ROWS_PER_DAY)
    assert abs(np.dot(counts - 5.0, wave) / np.dot(wave, wave) - 4.0) < 0.1  # its daily swing
    assert abs(np.mean((counts - rate) ** 2 / rate) - 1.0) < 0.1  # Poisson: variance = rate
    heavy = BASES["heavy"](rows, rng())
    assert heavy.min() > 0 and abs(np.log(heavy).mean()) < 0.02
    assert abs(np.log(heavy).std() - 0.5) < 0.02


def test_the_corpus_starts_on_a_monday_at_five_minute_rows(corpus):
    corpus, _ = corpus
    times = pd.to_datetime(corpus.series["none/weekly_0.csv"]["timestamp"])
    assert times.iloc[0].day_name() == "Monday" and times.iloc[0].hour == 0
    assert (times.diff().dropna() == pd.Timedelta("5min")).all() and len(times) == ROWS
