"""What the ``amml`` detector's record novelty (``record``) adds on series with no anomaly.

Scores 80 anomaly-free series of 3,000 rows (ten seeds each of Gaussian, Student-t(3),
random-walk, AR(1), seasonal, trending, Poisson and log-normal values) with the detector's own
alarms (``output="alarm"``), with and without ``record``, and prints the alarms each gives and
where the extra ones fall. The figure in ``amml.ops.detectors.novelty``'s docstring comes from
here. About two minutes on one core.

    python scripts/record_false_alarms.py
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from amml.ops.detectors.base import make_detector

ROWS = 3000
SEEDS = 10


def series(kind: str, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(ROWS)
    make = {
        "gaussian": lambda: rng.normal(size=ROWS),
        "student_t3": lambda: rng.standard_t(3, size=ROWS),
        "random_walk": lambda: np.cumsum(rng.normal(size=ROWS)),
        "ar1_0.9": lambda: lfilter([1.0], [1.0, -0.9], rng.normal(size=ROWS)),
        "seasonal": lambda: np.sin(2 * np.pi * t / 288) + 0.1 * rng.normal(size=ROWS),
        "trend": lambda: t / 1000 + rng.normal(size=ROWS),
        "poisson": lambda: rng.poisson(3, size=ROWS).astype(float),
        "lognormal": lambda: rng.lognormal(0, 1, size=ROWS),
    }
    return make[kind]()


def alarms_with_and_without(cases, on: dict, off: dict, timestamps=None):
    """Run the ``amml`` detector's own alarms with parameters ``on`` and ``off`` over each
    ``(label, values)`` of ``cases``: the alarm totals of both, the rows only ``on`` alarms
    at (``(label, row)``, in order) and how many rows only ``off`` alarms at."""
    with_total = without_total = fewer = 0
    extra: list[tuple[object, int]] = []
    for label, values in cases:
        alarms_on = set(np.flatnonzero(make_detector("amml", output="alarm", **on)
                                       .score_series(values, timestamps) == 1))
        alarms_off = set(np.flatnonzero(make_detector("amml", output="alarm", **off)
                                        .score_series(values, timestamps) == 1))
        with_total += len(alarms_on)
        without_total += len(alarms_off)
        extra += [(label, int(row)) for row in sorted(alarms_on - alarms_off)]
        fewer += len(alarms_off - alarms_on)
    return with_total, without_total, extra, fewer


def main() -> None:
    kinds = ("gaussian", "student_t3", "random_walk", "ar1_0.9", "seasonal", "trend", "poisson",
             "lognormal")
    cases = (((kind, seed), series(kind, np.random.default_rng(seed)))
             for kind in kinds for seed in range(SEEDS))
    with_total, without_total, extra, _ = alarms_with_and_without(cases, {}, {"record": 0})
    rows = [row for _, row in extra]
    print(f"record_false_alarms series={len(kinds) * SEEDS} rows={len(kinds) * SEEDS * ROWS} "
          f"alarms_with_record={with_total} alarms_without={without_total} "
          f"extra={len(extra)} last_extra_row={max(rows) if rows else '-'}")
    for (kind, seed), row in extra:
        print(f"record_false_alarms extra kind={kind} seed={seed} row={row}")


if __name__ == "__main__":
    main()
