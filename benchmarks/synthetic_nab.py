"""Every streaming detector on generated, labelled corpora that no parameter was tuned on.

    python benchmarks/synthetic_nab.py [--seeds 0 1] [--detectors amml windowed_gaussian ...]

NAB's and SKAB's figures are the ones the parameter sets were picked on (held out by category
or experiment, but from the same corpus). This benchmark scores the same detectors, with the
same parameter sets as ``amml bench nab`` (``NAB_PARAMS``; the others at their defaults), on
corpora that :mod:`amml.bench.synthetic` generates from each seed: one category per anomaly
kind (spike, dip, level shift, variance, stuck, drift, pattern) plus anomaly-free series, over
six base signals. NAB's scorer scores them: the threshold is picked in-sample for detectors
that output scores (their best case), and ``loco`` holds one anomaly kind out at a time.

The peer, measured in the same output, is NAB's own ``windowedGaussian`` baseline
(``windowed_gaussian``); each detector's ratio to it is printed. Lines:

* ``synthetic seed=S corpus ...``: the corpus's size;
* ``synthetic seed=S detector=NAME standard=... reward_low_FP_rate=... reward_low_FN_rate=...
  loco_standard=... ratio_to_windowed_gaussian=... runtime_s=...``;
* a table per seed: the standard score of each detector on each anomaly kind (``none``: the
  raw score of the anomaly-free series, 0 when nothing alarms, -0.11 per false alarm);
* ``synthetic mean detector=NAME standard=... ratio_to_windowed_gaussian=...`` over the seeds.

Under a minute and a half a seed on 2 cores (2 min 44 s for seeds 0 and 1 here).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from amml.bench.nab import NAB_PARAMS, load_corpus, load_profiles, score_corpus, score_corpus_loco
from amml.bench.nab_run import run_detector
from amml.bench.synthetic import generate

PEER = "windowed_gaussian"
DETECTORS = ("amml", PEER, "rolling_mad", "seasonal", "ensemble", "matrix_profile")
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def score_seed(seed: int, detectors: list[str], folder: Path) -> dict[str, dict]:
    root = generate(folder / f"seed-{seed}", seed=seed)
    corpus = load_corpus(root)
    profiles = load_profiles(None)
    rows = sum(len(frame) for frame in corpus.series.values())
    print(f"synthetic seed={seed} corpus series={len(corpus.series)} "
          f"windows={corpus.n_windows} rows={rows}", flush=True)
    scored: dict[str, dict] = {}
    for detector in detectors:
        started = time.perf_counter()
        scores = run_detector(corpus, detector, NAB_PARAMS.get(detector, {}))
        results = {name: corpus.series[name].assign(anomaly_score=values)
                   for name, values in scores.items()}
        scored[detector] = {"in_sample": score_corpus(results, corpus.windows, profiles),
                            "loco": score_corpus_loco(results, corpus.windows, profiles),
                            "runtime_s": time.perf_counter() - started}
    peer = scored.get(PEER, {}).get("in_sample", {}).get("standard", {}).get("score")
    for detector, entry in scored.items():
        figures = " ".join(f"{p}={entry['in_sample'][p]['score']:.1f}" for p in PROFILES)
        standard = entry["in_sample"]["standard"]["score"]
        ratio = f" ratio_to_{PEER}={standard / peer:.2f}" if peer else ""
        print(f"synthetic seed={seed} detector={detector} {figures} "
              f"loco_standard={entry['loco']['standard']['score']:.1f}{ratio} "
              f"runtime_s={entry['runtime_s']:.1f}", flush=True)
    kinds = sorted(next(iter(scored.values()))["in_sample"]["standard"]["per_category"])
    width = max(len(d) for d in scored)
    print(f"synthetic seed={seed} per kind (standard; none: raw)")
    print("  " + "kind".ljust(12) + " ".join(d.rjust(width) for d in scored))
    for kind in kinds:
        cells = []
        for entry in scored.values():
            category = entry["in_sample"]["standard"]["per_category"][kind]
            cell = (f"{category['raw']:.2f}" if category["score"] is None
                    else f"{category['score']:.1f}")
            cells.append(cell.rjust(width))
        print("  " + kind.ljust(12) + " ".join(cells))
    return scored


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--detectors", nargs="+", default=list(DETECTORS))
    args = parser.parse_args(argv)
    by_seed = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            by_seed.append(score_seed(seed, args.detectors, Path(folder)))
    for detector in args.detectors:
        standard = [s[detector]["in_sample"]["standard"]["score"] for s in by_seed]
        line = f"synthetic mean detector={detector} seeds={len(by_seed)} " \
               f"standard={statistics.mean(standard):.1f}"
        if PEER in args.detectors:
            peer = [s[PEER]["in_sample"]["standard"]["score"] for s in by_seed]
            line += f" ratio_to_{PEER}={statistics.mean(standard) / statistics.mean(peer):.2f}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
