"""A labelled anomaly corpus generated from a seed, in NAB's layout: data nobody tuned on.

NAB and SKAB are the benchmarks the detectors' parameters were chosen on, so their figures are
partly in-sample however carefully they are held out. This corpus is not: it is generated
fresh from a seed, and no parameter of any detector was picked on it. Each series is one
*base* signal (the kinds of data AMML is for) with, in all but the ``none`` category, one
*anomaly* of a known kind injected at a random row:

=============  ==============================================================================
base           what it is
=============  ==============================================================================
noise          Gaussian noise around a level
daily          a daily sine plus noise (sensor readings that follow the day)
weekly         a daily working-hours bump, lower at weekends (user traffic)
ar             an AR(1) process, coefficient 0.95 (a slowly wandering system metric)
counts         Poisson counts with a daily rate (events per five minutes)
heavy          log-normal values (latencies, prices: a long right tail)
=============  ==============================================================================

=============  ==============================================================================
anomaly        what is injected at the onset row (``sd``: the base's standard deviation
               before the onset)
=============  ==============================================================================
spike          one value 6 to 10 sd above where it was
dip            one value 6 to 10 sd below
level_shift    every value from the onset on moves by 2 to 3 sd, up or down
variance       a day of extra noise, three times the base's row-to-row noise
stuck          the sensor repeats its last value for half a day
drift          a ramp from the onset to the end, 3 to 4 sd a day
pattern        a day without the series' shape: its mean plus a little noise
=============  ==============================================================================

Categories are the anomaly kinds (``none`` holds anomaly-free series, where any alarm is a
false one), so ``amml bench nab --data DIR`` prints each kind's score on its own line of the
per-category table, and its leave-one-category-out figure holds one kind out at a time.
Labels follow NAB: a window of 10% of the series' rows centred on the onset
(``labels/combined_windows.json``), the onset itself in ``labels/combined_labels.json``.
Onsets fall between 40% and 85% of the series, after NAB's probationary 15% and with a day of
history at least.

>>> import tempfile
>>> from amml.bench.nab import load_corpus
>>> root = generate(tempfile.mkdtemp(), seed=1, rows=600, per_pair=1, bases=("noise",),
...                 anomalies=("spike",))
>>> corpus = load_corpus(root)
>>> sorted(corpus.series), corpus.n_windows
(['none/noise_0.csv', 'spike/noise_0.csv'], 1)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

#: Rows a day at the corpus's five-minute sampling.
ROWS_PER_DAY = 288
#: The first timestamp: a Monday, so that ``weekly``'s weekends fall on Saturday and Sunday.
START = "2024-03-04 00:00:00"
#: Onsets are drawn uniformly between these shares of the series' rows.
ONSET_SPAN = (0.40, 0.85)
#: NAB's window: this share of the rows, centred on the onset.
WINDOW_SHARE = 0.10

Base = Callable[[int, np.random.Generator], np.ndarray]
Anomaly = Callable[[np.ndarray, int, np.random.Generator], None]


def _daily_phase(rows: int) -> np.ndarray:
    return 2 * np.pi * np.arange(rows) / ROWS_PER_DAY


def _noise(rows: int, rng: np.random.Generator) -> np.ndarray:
    return 10.0 + rng.normal(0.0, 1.0, rows)


def _daily(rows: int, rng: np.random.Generator) -> np.ndarray:
    return 20.0 + 3.0 * np.sin(_daily_phase(rows)) + rng.normal(0.0, 0.5, rows)


def _weekly(rows: int, rng: np.random.Generator) -> np.ndarray:
    weekend = (np.arange(rows) // ROWS_PER_DAY) % 7 >= 5
    bump = np.clip(np.sin(_daily_phase(rows)), 0.0, None)
    return 5.0 + np.where(weekend, 2.0, 6.0) * bump + rng.normal(0.0, 0.4, rows)


def _ar(rows: int, rng: np.random.Generator) -> np.ndarray:
    shocks = rng.normal(0.0, 1.0, rows)
    values = np.empty(rows)
    level = 0.0
    for i, shock in enumerate(shocks):
        level = 0.95 * level + shock
        values[i] = level
    return 50.0 + values


def _counts(rows: int, rng: np.random.Generator) -> np.ndarray:
    return rng.poisson(5.0 + 4.0 * np.sin(_daily_phase(rows))).astype(float)


def _heavy(rows: int, rng: np.random.Generator) -> np.ndarray:
    return rng.lognormal(0.0, 0.5, rows)


BASES: dict[str, Base] = {
    "noise": _noise, "daily": _daily, "weekly": _weekly, "ar": _ar, "counts": _counts,
    "heavy": _heavy,
}


def _sd(values: np.ndarray, onset: int) -> float:
    return float(np.std(values[:onset])) or 1.0


def _spike(values: np.ndarray, onset: int, rng: np.random.Generator) -> None:
    values[onset] += rng.uniform(6.0, 10.0) * _sd(values, onset)


def _dip(values: np.ndarray, onset: int, rng: np.random.Generator) -> None:
    values[onset] -= rng.uniform(6.0, 10.0) * _sd(values, onset)


def _level_shift(values: np.ndarray, onset: int, rng: np.random.Generator) -> None:
    values[onset:] += rng.choice((-1.0, 1.0)) * rng.uniform(2.0, 3.0) * _sd(values, onset)


def _variance(values: np.ndarray, onset: int, rng: np.random.Generator) -> None:
    # row-to-row noise: the part of the spread that is not the series' shape
    noise = float(np.std(np.diff(values[:onset]))) / np.sqrt(2.0)
    span = values[onset:onset + ROWS_PER_DAY]
    span += rng.normal(0.0, 3.0 * max(noise, 0.1 * _sd(values, onset)), len(span))


def _stuck(values: np.ndarray, onset: int, rng: np.random.Generator) -> None:
    values[onset:onset + ROWS_PER_DAY // 2] = values[onset - 1]


def _drift(values: np.ndarray, onset: int, rng: np.random.Generator) -> None:
    per_row = rng.uniform(3.0, 4.0) * _sd(values, onset) / ROWS_PER_DAY
    values[onset:] += per_row * np.arange(1, len(values) - onset + 1)


def _pattern(values: np.ndarray, onset: int, rng: np.random.Generator) -> None:
    span = values[onset:onset + ROWS_PER_DAY]
    span[:] = float(np.mean(values[:onset])) + rng.normal(0.0, 0.1 * _sd(values, onset),
                                                          len(span))


ANOMALIES: dict[str, Anomaly] = {
    "spike": _spike, "dip": _dip, "level_shift": _level_shift, "variance": _variance,
    "stuck": _stuck, "drift": _drift, "pattern": _pattern,
}


def onset_and_window(rows: int, rng: np.random.Generator) -> tuple[int, int, int]:
    """The onset row and its NAB window's first and last rows (clipped to the series)."""
    onset = int(rng.uniform(*ONSET_SPAN) * rows)
    half = int(WINDOW_SHARE * rows) // 2
    return onset, max(onset - half, 0), min(onset + half, rows - 1)


def generate(out: str | Path, seed: int = 0, rows: int = 14 * ROWS_PER_DAY, per_pair: int = 2,
             bases: Sequence[str] = tuple(BASES),
             anomalies: Sequence[str] = tuple(ANOMALIES)) -> Path:
    """Write the corpus under ``out`` (``data/<anomaly>/<base>_<k>.csv`` and ``labels/``) and
    return ``out``. ``per_pair`` series of each base with each anomaly kind, and as many
    anomaly-free ones of each base (category ``none``); ``rows`` five-minute rows each (two
    weeks by default, the length of NAB's artificial series). The same ``seed`` writes the
    same files; a series' base values depend only on the seed, its base and ``k``, so ``none``
    holds each anomalous series' values before the injection."""
    unknown = [name for name in bases if name not in BASES]
    unknown += [name for name in anomalies if name not in ANOMALIES]
    if unknown:
        raise ValueError(f"unknown base or anomaly {', '.join(unknown)} (bases: "
                         f"{', '.join(BASES)}; anomalies: {', '.join(ANOMALIES)})")
    if rows < 2 * ROWS_PER_DAY:
        raise ValueError(f"rows must be at least two days ({2 * ROWS_PER_DAY}), got {rows}")
    root = Path(out)
    timestamps = pd.date_range(START, periods=rows, freq="5min")
    stamps = timestamps.strftime("%Y-%m-%d %H:%M:%S")
    windows: dict[str, list[list[str]]] = {}
    labels: dict[str, list[str]] = {}
    base_index = {name: i for i, name in enumerate(BASES)}
    anomaly_index = {name: i + 1 for i, name in enumerate(ANOMALIES)}
    for category in ("none", *anomalies):
        folder = root / "data" / category
        folder.mkdir(parents=True, exist_ok=True)
        for base in bases:
            for k in range(per_pair):
                # the base's values come from their own stream: the same with or without the
                # anomaly, whose draws come from a second one
                values = BASES[base](rows, np.random.default_rng([seed, base_index[base], k]))
                name = f"{category}/{base}_{k}.csv"
                windows[name], labels[name] = [], []
                if category != "none":
                    rng = np.random.default_rng([seed, base_index[base], k,
                                                 anomaly_index[category]])
                    onset, first, last = onset_and_window(rows, rng)
                    ANOMALIES[category](values, onset, rng)
                    windows[name] = [[_nab_time(timestamps[first]), _nab_time(timestamps[last])]]
                    labels[name] = [_nab_time(timestamps[onset])]
                pd.DataFrame({"timestamp": stamps, "value": np.round(values, 6)}).to_csv(
                    folder / f"{base}_{k}.csv", index=False)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows, indent=1))
    (root / "labels" / "combined_labels.json").write_text(json.dumps(labels, indent=1))
    return root


def _nab_time(timestamp: pd.Timestamp) -> str:
    """NAB's label format: ``2014-04-10 07:15:00.000000``."""
    return timestamp.strftime("%Y-%m-%d %H:%M:%S.%f")
