"""Drift detection on streams with known drift points: AMML's detectors beside river's and a
windowed KS test, on the same signals, in one run.

Streams (each: a model fitted on its first ``fit`` points, the next ``reference`` points the
reference period, then ``live`` points with the drift, if any, at live point ``drift``):

* classification (the paper's case), river's generators, logistic regression:
  ``sea-abrupt`` (SEA variant 0 -> 1: only the label threshold moves, the inputs'
  distribution does not), ``sea-gradual`` (river ConceptDriftStream, width 1000),
  ``agrawal-abrupt`` (Agrawal function 0 -> 2), ``hyperplane-incremental`` (a rotating
  hyperplane over uniform inputs: river's Hyperplane rotates from its first point, so the
  rotation is switched on at the drift point here);
* regression on real data, ridge. The rows (each with its own lags) are drawn at random from
  the first 15,000 hours, so the seasons do not drift on their own and the injected drift
  is the only one: ETTh1 (``OT`` one hour ahead from its last 4 values and the six loads,
  and an ``aux`` input the model ignores): ``etth1-abrupt`` (MUFL sensor off
  by +3 standard deviations), ``etth1-variance`` (HUFL noise x3), ``etth1-ignored`` (+5
  standard deviations on ``aux`` only: must not alarm), ``etth1-none`` (no drift);
  Beijing air quality (Dongsi, ``PM2.5`` from CO, NO2, PM10, DEWP, TEMP, WSPM and an
  ignored ``aux``): ``air-concept`` (the target taken from shuffled live hours: inputs and
  target keep their distributions, their relation changes), ``air-gradual`` (the same, each
  hour with a probability rising 0 -> 1 over 1500 hours), ``air-incremental`` (TEMP
  ramping up to +2 standard deviations over 1500 hours), ``air-ignored`` (aux +5 s.d.).

Detectors (one parameter set for all streams, the library defaults; nothing tuned):

* ``amml-attribution``: :class:`amml.monitor.attribution_drift.AttributionDrift` on each
  prediction's error-weighted SHAP attributions (shap ``LinearExplainer`` values times the
  loss derivative: ``p - y`` for log-loss, ``-2 * residual`` for squared error) - AMML's
  monitor signal when labels arrive;
* ``amml-input-ks``, ``amml-mmd``: AMML's input detectors on the inputs;
* ``amml-error-adwin``: :class:`amml.monitor.error_drift.ErrorDrift` (river ADWIN inside);
* peers: ``river-adwin``, ``river-pagehinkley``, ``river-kswin`` on the errors (0/1 for the
  classifiers, absolute residuals for regression), and ``scipy-ks`` (alibi-detect is not
  installed: scipy's two-sample KS per input over consecutive windows of 100 against the
  reference, Bonferroni alpha 0.05).

Scoring: the first alarm at or after the drift point detects it (delay = points after the
drift point); alarms before it are false alarms; on ``*-ignored`` and ``*-none`` streams
every alarm is a false alarm and nothing can be missed. Per detector: mean delay over
detected drifts, false alarms per 10,000 live points, misses.

    python benchmarks/drift.py [--streams a,b] [--datasets ../shared/datasets]
                               [--fit 3000 --reference 2000 --live 6000 --drift 3000]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

FIT, REFERENCE, LIVE, DRIFT = 3000, 2000, 6000, 3000
WINDOW = 100


@dataclass
class Stream:
    name: str
    task: str  # classification | regression
    x: np.ndarray  # (FIT + REFERENCE + LIVE, F)
    y: np.ndarray
    features: list[str]
    drift: int | None  # live index; None: nothing should alarm


# -- streams ---------------------------------------------------------------------------------
def _river(generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for x, y in generator.take(n):
        xs.append(list(x.values()))
        ys.append(float(y))
    return np.asarray(xs, dtype=float), np.asarray(ys)


def river_streams() -> list[Stream]:
    from river.datasets import synth

    n = FIT + REFERENCE + LIVE
    at = FIT + REFERENCE + DRIFT
    out = []
    a, ya = _river(synth.SEA(variant=0, seed=1), at)
    b, yb = _river(synth.SEA(variant=1, seed=2), n - at)
    out.append(Stream("sea-abrupt", "classification", np.vstack([a, b]), np.r_[ya, yb],
                      ["x1", "x2", "x3"], DRIFT))
    x, y = _river(synth.ConceptDriftStream(synth.SEA(variant=0, seed=3),
                                           synth.SEA(variant=2, seed=4), position=at + 500,
                                           width=1000, seed=5), n)
    out.append(Stream("sea-gradual", "classification", x, y, ["x1", "x2", "x3"], DRIFT))
    a, ya = _river(synth.Agrawal(classification_function=0, seed=6), at)
    b, yb = _river(synth.Agrawal(classification_function=2, seed=7), n - at)
    names = ["salary", "commission", "age", "elevel", "car", "zipcode", "hvalue", "hyears",
             "loan"]
    out.append(Stream("agrawal-abrupt", "classification", np.vstack([a, b]), np.r_[ya, yb],
                      names, DRIFT))
    rng = np.random.default_rng(8)
    x = rng.uniform(0, 1, size=(n, 5))
    w0 = rng.normal(size=5)
    angle = np.clip((np.arange(n) - at) / 3000.0, 0.0, 1.0) * np.pi / 2  # rotate 90 deg
    w1 = np.cross(np.r_[w0[:3], 0, 0][:3], [0, 0, 1.0])
    w1 = np.r_[w1, 0, 0] / np.linalg.norm(w1) * np.linalg.norm(w0)
    weights = np.cos(angle)[:, None] * w0 + np.sin(angle)[:, None] * w1
    margin = ((x - 0.5) * weights).sum(axis=1)
    y = (margin > 0).astype(float)
    flip = rng.uniform(size=n) < 0.05
    out.append(Stream("hyperplane-incremental", "classification", x,
                      np.where(flip, 1 - y, y), [f"x{i}" for i in range(5)], DRIFT))
    return out


def etth1_streams(root: Path) -> list[Stream]:
    frame = pd.read_csv(root / "ett" / "ETTh1.csv")
    loads = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL"]
    n = FIT + REFERENCE + LIVE
    ot = frame["OT"].to_numpy(float)
    lags = np.column_stack([ot[4 - k: len(ot) - k] for k in range(1, 5)])  # OT t-1..t-4
    rng = np.random.default_rng(9)
    rows = rng.choice(min(15_000, len(ot) - 4), n, replace=False)
    x = np.column_stack([lags, frame[loads].to_numpy(float)[4:]])[rows]
    y = ot[4:][rows]
    aux = rng.normal(size=n)
    names = ["OT-1", "OT-2", "OT-3", "OT-4", *loads, "aux"]
    at = FIT + REFERENCE + DRIFT
    base = np.column_stack([x, aux])
    out = []
    std = base[:FIT].std(axis=0)
    shifted = base.copy()
    shifted[at:, names.index("MUFL")] += 3 * std[names.index("MUFL")]
    out.append(Stream("etth1-abrupt", "regression", shifted, y, names, DRIFT))
    noisy = base.copy()
    j = names.index("HUFL")
    noisy[at:, j] += rng.normal(0, 3 * std[j], n - at)
    out.append(Stream("etth1-variance", "regression", noisy, y, names, DRIFT))
    ignored = base.copy()
    ignored[at:, -1] += 5.0
    out.append(Stream("etth1-ignored", "regression", ignored, y, names, None))
    out.append(Stream("etth1-none", "regression", base.copy(), y, names, None))
    return out


def air_streams(root: Path) -> list[Stream]:
    frame = pd.read_csv(root / "air_quality" / "PRSA_Data_Dongsi_20130301-20170228.csv")
    inputs = ["CO", "NO2", "PM10", "DEWP", "TEMP", "WSPM"]
    frame = frame[["PM2.5", *inputs]].interpolate(limit_direction="both")
    n = FIT + REFERENCE + LIVE
    rng = np.random.default_rng(10)
    rows = rng.choice(15_000, n, replace=False)
    x = frame[inputs].to_numpy(float)[rows]
    y = frame["PM2.5"].to_numpy(float)[rows]
    names = [*inputs, "aux"]
    base = np.column_stack([x, rng.normal(size=n)])
    at = FIT + REFERENCE + DRIFT
    out = []
    shuffled = y.copy()
    shuffled[at:] = rng.permutation(y[at:])
    out.append(Stream("air-concept", "regression", base.copy(), shuffled, names, DRIFT))
    chance = np.clip((np.arange(n) - at) / 1500.0, 0.0, 1.0)
    gradual = np.where(rng.uniform(size=n) < chance, shuffled, y)
    out.append(Stream("air-gradual", "regression", base.copy(), gradual, names, DRIFT))
    ramp = base.copy()
    j = names.index("TEMP")
    ramp[:, j] += chance * 2 * base[:FIT, j].std()
    out.append(Stream("air-incremental", "regression", ramp, y, names, DRIFT))
    ignored = base.copy()
    ignored[at:, -1] += 5.0
    out.append(Stream("air-ignored", "regression", ignored, y, names, None))
    return out


# -- the deployed model and its signals ------------------------------------------------------
@dataclass
class Signals:
    inputs: np.ndarray  # standardised inputs, reference + live
    errors: np.ndarray  # 0/1 or absolute residuals, reference + live
    attributions: np.ndarray  # error-weighted SHAP values, reference + live


def signals(stream: Stream) -> Signals:
    import shap
    from sklearn.linear_model import LogisticRegression, Ridge

    center, scale = stream.x[:FIT].mean(axis=0), stream.x[:FIT].std(axis=0) + 1e-12
    z = (stream.x - center) / scale
    fit = slice(0, FIT)
    watched = slice(FIT, None)
    if stream.task == "classification":
        model = LogisticRegression(max_iter=1000).fit(z[fit], stream.y[fit])
        coef, intercept = model.coef_[0], model.intercept_[0]
    else:
        model = Ridge(alpha=1.0).fit(z[fit], stream.y[fit])
        coef, intercept = model.coef_, model.intercept_
    explainer = shap.LinearExplainer((coef, intercept), z[fit])
    phi = np.asarray(explainer.shap_values(z[watched]))
    margin = z[watched] @ coef + intercept
    y = stream.y[watched]
    if stream.task == "classification":
        p = 1.0 / (1.0 + np.exp(-margin))
        errors = ((p > 0.5) != (y > 0.5)).astype(float)
        gradient = p - y  # d log-loss / d margin
    else:
        errors = np.abs(y - margin)
        gradient = -2.0 * (y - margin)  # d squared error / d prediction
    return Signals(z[watched], errors, gradient[:, None] * phi)


# -- detectors: each maps signals to alarm indices in the live part ---------------------------
def amml_attribution(s: Signals) -> list[int]:
    from amml.monitor.attribution_drift import AttributionDrift

    detector = AttributionDrift(s.attributions[:REFERENCE])
    return [e.detected_at for e in detector.update_many(s.attributions[REFERENCE:])]


def amml_input_ks(s: Signals) -> list[int]:
    from amml.monitor.feature_drift import FeatureDrift

    detector = FeatureDrift(s.inputs[:REFERENCE], statistic="ks", window=WINDOW,
                            stride=WINDOW // 2)
    return [e.detected_at for e in detector.update_many(s.inputs[REFERENCE:])]


def amml_mmd(s: Signals) -> list[int]:
    from amml.monitor.mmd import MMDDrift

    detector = MMDDrift(s.inputs[:REFERENCE], window=WINDOW, stride=WINDOW // 2,
                        max_reference=300)
    return [e.detected_at for e in detector.update_many(s.inputs[REFERENCE:])]


def amml_error_adwin(s: Signals) -> list[int]:
    from amml.monitor.error_drift import ErrorDrift

    detector = ErrorDrift("adwin")
    detector.update_many(s.errors[:REFERENCE])  # warm up on the reference period
    return [e.detected_at - REFERENCE for e in detector.update_many(s.errors[REFERENCE:])]


def _river_peer(make: Callable[[], object]) -> Callable[[Signals], list[int]]:
    def run(s: Signals) -> list[int]:
        detector = make()
        alarms = []
        for i, value in enumerate(s.errors):
            detector.update(float(value))  # type: ignore[attr-defined]
            if detector.drift_detected and i >= REFERENCE:  # type: ignore[attr-defined]
                alarms.append(i - REFERENCE)
        return alarms
    return run


def scipy_ks(s: Signals) -> list[int]:
    from scipy.stats import ks_2samp

    ref, live = s.inputs[:REFERENCE], s.inputs[REFERENCE:]
    alpha = 0.05 / ref.shape[1]
    alarms = []
    for end in range(WINDOW, len(live) + 1, WINDOW):
        window = live[end - WINDOW:end]
        if min(ks_2samp(ref[:, j], window[:, j]).pvalue for j in range(ref.shape[1])) < alpha:
            alarms.append(end - 1)
    return alarms


def detectors() -> dict[str, Callable[[Signals], list[int]]]:
    from river import drift

    return {
        "amml-attribution": amml_attribution,
        "amml-input-ks": amml_input_ks,
        "amml-mmd": amml_mmd,
        "amml-error-adwin": amml_error_adwin,
        "river-adwin": _river_peer(drift.ADWIN),
        "river-pagehinkley": _river_peer(drift.PageHinkley),
        "river-kswin": _river_peer(lambda: drift.KSWIN(seed=0)),
        "scipy-ks(alibi-detect not installed)": scipy_ks,
    }


# -- scoring ---------------------------------------------------------------------------------
def score(alarms: list[int], drift: int | None) -> tuple[bool, int | None, int]:
    if drift is None:
        return False, None, len(alarms)
    after = [a for a in alarms if a >= drift]
    return bool(after), (after[0] - drift if after else None), sum(a < drift for a in alarms)


def main() -> None:
    global FIT, REFERENCE, LIVE, DRIFT  # the stream builders and detectors read them
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--streams", default=None, help="comma-separated subset")
    parser.add_argument("--fit", type=int, default=FIT)
    parser.add_argument("--reference", type=int, default=REFERENCE)
    parser.add_argument("--live", type=int, default=LIVE)
    parser.add_argument("--drift", type=int, default=DRIFT)
    args = parser.parse_args()
    FIT, REFERENCE, LIVE, DRIFT = args.fit, args.reference, args.live, args.drift
    print(f"drift setup fit={FIT} reference={REFERENCE} live={LIVE} drift_at={DRIFT}",
          flush=True)
    streams = [*river_streams(), *etth1_streams(args.datasets), *air_streams(args.datasets)]
    if args.streams:
        wanted = set(args.streams.split(","))
        streams = [s for s in streams if s.name in wanted]
    runners = detectors()
    totals = {name: {"delays": [], "false": 0, "misses": 0, "points": 0, "seconds": 0.0}
              for name in runners}
    for stream in streams:
        s = signals(stream)
        for name, run in runners.items():
            started = time.perf_counter()
            alarms = run(s)
            seconds = time.perf_counter() - started
            detected, delay, false = score(alarms, stream.drift)
            t = totals[name]
            t["false"] += false
            t["points"] += LIVE
            t["seconds"] += seconds
            if stream.drift is not None:
                if detected:
                    t["delays"].append(delay)
                else:
                    t["misses"] += 1
            expected = "drift" if stream.drift is not None else "none"
            print(f"drift detector={name} stream={stream.name} expected={expected} "
                  f"detected={'yes' if detected else 'no'} "
                  f"delay={delay if delay is not None else '-'} false_alarms={false}",
                  flush=True)
    print()
    drifted = sum(s.drift is not None for s in streams)
    for name, t in totals.items():
        mean = float(np.mean(t["delays"])) if t["delays"] else math.nan
        rate = 10_000 * t["false"] / max(1, t["points"])
        print(f"drift summary detector={name} mean_delay={mean:.1f} "
              f"false_alarms_per_10k={rate:.2f} misses={t['misses']}/{drifted} "
              f"seconds={t['seconds']:.1f}", flush=True)
    ours = totals["amml-attribution"]
    ours_delay = float(np.mean(ours["delays"])) if ours["delays"] else math.inf
    for name, t in totals.items():
        if name == "amml-attribution":
            continue
        delay = float(np.mean(t["delays"])) if t["delays"] else math.inf
        print(f"drift versus peer={name} delay_ratio={ours_delay / delay:.2f} "
              f"false_alarms ours={ours['false']} peer={t['false']} "
              f"misses ours={ours['misses']} peer={t['misses']}", flush=True)


if __name__ == "__main__":
    main()
