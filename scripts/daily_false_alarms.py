"""What the ``amml`` detector's time-of-day part (``daily``) adds on daily series with no anomaly.

Scores 40 anomaly-free series of 28 days at five-minute rows (five seeds each of a noisy sine,
a square wave, a weekly pattern with quieter weekends as sine and as square wave, a sine whose
height varies from day to day, a sine whose phase jitters from day to day, a sine on a trend,
and Poisson counts following a daily rate) with the detector's own alarms
(``output="alarm"``), with the part (``daily=0.1``, the default) and without (``daily=0``), and
prints the alarms each gives and where the extra ones fall. The figure in
``amml.ops.detectors.novelty``'s docstring comes from here. About four minutes on one core.

    python scripts/daily_false_alarms.py
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from record_false_alarms import alarms_with_and_without  # scripts/ is on the path

DAY = 288
ROWS = 28 * DAY
SEEDS = 5
KINDS = ("sine", "square", "weekly_sine", "weekly_square", "varying_height", "phase_jitter",
         "trend", "counts")


def series(kind: str, rng: np.random.Generator) -> np.ndarray:
    rows = np.arange(ROWS)
    day = rows / DAY
    weekend = (rows // DAY) % 7 >= 5
    sine = np.sin(2 * np.pi * day)
    square = np.where((rows % DAY >= 108) & (rows % DAY < 216), 1.0, 0.0)
    noise = rng.normal(size=ROWS)
    days = ROWS // DAY
    make = {
        "sine": lambda: sine + 0.1 * noise,
        "square": lambda: square + 0.05 * noise,
        "weekly_sine": lambda: np.where(weekend, 0.5, 1.0) * sine + 0.1 * noise,
        "weekly_square": lambda: np.where(weekend, 0.3, 1.0) * square + 0.05 * noise,
        "varying_height": lambda: (1 + 0.2 * rng.normal(size=days))[rows // DAY] * sine
        + 0.05 * noise,
        "phase_jitter": lambda: np.sin(2 * np.pi * (day + rng.normal(0, 0.02, days)[rows // DAY]))
        + 0.05 * noise,
        "trend": lambda: sine + rows / 4000 + 0.1 * noise,
        "counts": lambda: rng.poisson(20 * (1.2 + sine)).astype(float),
    }
    return make[kind]()


def main() -> None:
    stamps = pd.date_range("2024-01-01", periods=ROWS, freq="5min").strftime(
        "%Y-%m-%d %H:%M:%S").tolist()
    cases = (((kind, seed), series(kind, np.random.default_rng(seed)))
             for kind in KINDS for seed in range(SEEDS))
    with_total, without_total, extra, fewer = alarms_with_and_without(
        cases, {"alarm": 0.45}, {"alarm": 0.45, "daily": 0}, stamps)
    print(f"daily_false_alarms series={len(KINDS) * SEEDS} rows={len(KINDS) * SEEDS * ROWS} "
          f"alarms_with_daily={with_total} alarms_without={without_total} extra={len(extra)} "
          f"fewer={fewer}")
    for (kind, seed), row in extra:
        print(f"daily_false_alarms extra kind={kind} seed={seed} row={row} day={row // DAY}")


if __name__ == "__main__":
    main()
