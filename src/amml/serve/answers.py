"""The answers to prediction requests: forecasts, and forecast-residual anomaly scores, as
JSON-able payloads that hold only finite numbers (``Infinity`` and ``NaN`` are not JSON).

``/detect`` scores with the same detector object a workflow's ``detect`` op and ``amml bench``
use: :class:`~amml.ops.detectors.residual.ForecastResidualDetector` in ``window`` scoring
(:func:`detector_for`), fed the served model's forecasts."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from amml._exceptions import OpError
from amml.ops.detectors.base import make_detector
from amml.ops.detectors.residual import MIN_SCALE, SCALE_FLOOR, ForecastResidualDetector
from amml.serve.bodies import BodyError, Windows, future_timestamps
from amml.serve.models import ServedModel

#: ``/detect``'s scale is at least ``SCALE_FLOOR`` of the lookback's level (its median's
#: magnitude), this fraction of the training data's standard deviation (the signature's
#: scaler), and at least ``MIN_SCALE``: a constant lookback otherwise divides by ~0 and scores
#: ~1e7. (``SCALE_FLOOR`` and ``MIN_SCALE`` are the detector's.)
TRAINING_SCALE_FLOOR = 1e-2
#: ``?explain=true`` takes at most this many windows a request, and explains alarms worth at
#: most ``MAX_EXPLAIN_SCORES`` raw scores (each alarm costs 2**columns of them up to 12
#: columns: ``explain_cost``), so one request cannot hold a worker for minutes.
MAX_EXPLAINED = 256
MAX_EXPLAIN_SCORES = 65_536
__all__ = ["MAX_EXPLAINED", "MAX_EXPLAIN_SCORES", "MIN_SCALE", "SCALE_FLOOR",
           "TRAINING_SCALE_FLOOR", "check_finite", "detect_payload", "detector_for",
           "fitted_detector_payload", "forecast_payload", "to_json"]

def check_finite(values: np.ndarray, inputs: np.ndarray, outputs: tuple[str, ...],
                 what: str) -> None:
    """A non-finite forecast or score is a 422 naming where: the version passed its smoke
    test on a zero window, so it is this input (values so large the arithmetic overflows)
    that the model cannot answer, and ``Infinity`` is not JSON."""
    if np.isfinite(values).all():
        return
    window, step, column = (int(i) for i in np.argwhere(~np.isfinite(values))[0])
    kind = "NaN" if np.isnan(values[window, step, column]) else "infinite"
    largest = float(np.abs(inputs).max()) if inputs.size else 0.0
    raise BodyError(f"the {what} is {kind} at step {step} of {outputs[column]}"
                    f"{f' (window {window})' if len(values) > 1 else ''}: this model cannot "
                    f"answer for these inputs (largest magnitude {largest:.3g}; "
                    "values this large overflow)")


def _columns(values: np.ndarray, names: tuple[str, ...]) -> dict[str, list[float]]:
    return {name: values[:, j].tolist() for j, name in enumerate(names)}


def forecast_payload(served: ServedModel, windows: Windows) -> dict[str, Any]:
    spec = served.spec
    with np.errstate(over="ignore", invalid="ignore"):  # overflow: check_finite's 422
        y = served.forecast(windows.values)
    check_finite(y, windows.values, spec.outputs, "forecast")
    payload: dict[str, Any] = {"model": served.name, "version": served.version,
                               "horizon": spec.horizon, "outputs": list(spec.outputs)}
    stamps = windows.timestamps
    if windows.batch:
        payload["forecasts"] = [_columns(y[i], spec.outputs) for i in range(len(y))]
        if windows.ids is not None:
            payload["windows"] = windows.ids
        if stamps is not None:
            payload["timestamps"] = [None if s is None else
                                     future_timestamps(s, spec, spec.horizon) for s in stamps]
    else:
        payload["forecast"] = _columns(y[0], spec.outputs)
        if stamps is not None and stamps[0] is not None:
            payload["timestamps"] = future_timestamps(stamps[0], spec, spec.horizon)
    return payload


def fitted_detector_payload(served: ServedModel, windows: Windows, explain: bool = False
                            ) -> dict[str, Any]:
    """A registered fitted detector's answer: the calibrated score of each window's newest
    row (``FittedDetector.score_windows``: the frozen model and threshold, nothing learnt from
    the request) and an alarm where it reaches 0.5, the threshold frozen on the reference.
    With ``explain``, each alarm names its ``cause`` (the column with the largest
    contribution) and every column's signed ``shares`` of its score
    (:mod:`amml.ops.detectors.explain`)."""
    x = windows.values
    if explain and len(x) > MAX_EXPLAINED and windows.table is not None:
        longest = MAX_EXPLAINED + x.shape[1] - 1
        raise BodyError(f"?explain=true takes a table of at most {longest} rows (its "
                        f"{MAX_EXPLAINED} windows of {x.shape[1]}), got {len(windows.table)}: "
                        "send the rows to explain on their own")
    if explain and len(x) > MAX_EXPLAINED:
        raise BodyError(f"?explain=true takes at most {MAX_EXPLAINED} windows a request, got "
                        f"{len(x)}: send the windows to explain on their own")
    with np.errstate(over="ignore", invalid="ignore"):
        scores = np.asarray(served.predict(x), dtype=float)
    check_finite(scores[:, None, None], x, ("score",), "anomaly score")
    results: list[dict[str, Any]] = [{"score": float(s), "alarm": bool(s >= 0.5)}
                                     for s in scores]
    alarmed = np.flatnonzero(scores >= 0.5)
    if explain and len(alarmed):
        from amml.ops.detectors.explain import causes, column_contributions, explain_cost, shares

        names = served.spec.columns
        cost = len(alarmed) * explain_cost(len(names))
        if cost > MAX_EXPLAIN_SCORES:
            raise BodyError(f"explaining {len(alarmed)} alarms of {len(names)} columns takes "
                            f"{cost:,} scores, more than {MAX_EXPLAIN_SCORES:,} a request: "
                            "send fewer windows with ?explain=true")
        try:
            contributions = column_contributions(served.model, x[alarmed])
        except OpError as exc:
            raise BodyError(str(exc)) from None
        for i, top, row in zip(alarmed, causes(contributions), shares(contributions),
                               strict=True):
            # a score that overflowed has no finite shares: no cause rather than a guess
            results[i]["cause"] = None if top is None else names[top]
            if top is not None:
                results[i]["shares"] = dict(zip(names, row.tolist(), strict=True))
    for result, times in zip(results, _scored_times(windows, served.spec.lookback - 1),
                             strict=False):
        if times:  # the scored row's time, when it was sent
            result["timestamp"] = times[0]
    payload: dict[str, Any] = {"model": served.name, "version": served.version,
                               "detector": served.model.name,
                               "columns": list(served.spec.columns), "threshold": 0.5}
    return _with_results(payload, results, windows)


def _scored_times(windows: Windows, first: int) -> list[list[str] | None]:
    """Per window, the times of its rows from ``first`` on (the rows an answer scores), or
    None where the request dated none: a CSV or Arrow body is logged without its times, so
    the answer carries them to the label queue."""
    stamps = windows.timestamps or [None] * len(windows.values)
    return [None if s is None or len(s) <= first else [t.isoformat() for t in s[first:]]
            for s in stamps]


def _with_results(payload: dict[str, Any], results: list[dict[str, Any]], windows: Windows
                  ) -> dict[str, Any]:
    """A batch's answer lists its results (and names its windows, where the body did); a
    single window's answer holds its one result's fields."""
    if windows.batch:
        payload["results"] = results
        if windows.ids is not None:
            payload["windows"] = windows.ids
    else:
        payload.update(results[0])
    return payload


def detector_for(served: ServedModel, threshold: float) -> ForecastResidualDetector:
    """The detector ``/detect`` scores with: ``forecast_residual`` in ``window`` scoring at
    ``threshold``, with the served model's lookback (the same object a workflow's ``detect``
    step builds with ``detector: forecast_residual, params: {scoring: window}``)."""
    detector = make_detector("forecast_residual", scoring="window", threshold=threshold,
                             lookback=served.spec.lookback, scale_floor=SCALE_FLOOR,
                             warmup=served.spec.lookback + 2, history=served.spec.lookback + 2)
    assert isinstance(detector, ForecastResidualDetector)
    return detector


def detect_payload(served: ServedModel, windows: Windows, threshold: float
                   ) -> dict[str, Any]:
    """Forecast the last ``horizon`` rows from the first ``lookback``; score each actual
    value with :func:`detector_for`'s detector: its distance from the forecast in units of the
    lookback window's robust scale (1.4826 times the median absolute deviation; the standard
    deviation where that is 0), floored at ``SCALE_FLOOR`` of the lookback's level and
    ``TRAINING_SCALE_FLOOR`` of the training data's standard deviation (where the signature
    has a scaler). Alarms are raw scores above ``threshold`` (calibrated score above 0.5)."""
    spec = served.spec
    missing = [o for o in spec.outputs if o not in spec.columns]
    if missing:
        raise BodyError(f"detect needs the model's outputs among its input columns "
                        f"(missing: {', '.join(missing)})")
    picks = [spec.columns.index(o) for o in spec.outputs]
    x = windows.values
    history = x[:, : spec.lookback, :][:, :, picks]
    actual = x[:, spec.lookback :, :][:, :, picks]
    # overflow is found by check_finite and answered with a 422, not warned about
    with np.errstate(over="ignore", invalid="ignore"):
        forecast = served.forecast(np.ascontiguousarray(x[:, : spec.lookback, :]))
        check_finite(forecast, x, spec.outputs, "forecast")
        detector = detector_for(served, threshold)
        scores, scale = detector.score_windows(history, actual, forecast,
                                               _training_floor(served))
        check_finite(scale[:, None, :], x, spec.outputs, "lookback's scale")
        check_finite(scores, x, spec.outputs, "anomaly score")
    results = []
    for i in range(len(x)):
        alarms = {name: np.flatnonzero(scores[i, :, j] > threshold).tolist()
                  for j, name in enumerate(spec.outputs)}
        results.append({"scores": _columns(scores[i], spec.outputs),
                        "forecast": _columns(forecast[i], spec.outputs),
                        "scale": dict(zip(spec.outputs, scale[i].tolist(), strict=True)),
                        "alarms": alarms,
                        "anomalous": any(bool(v) for v in alarms.values())})
    for result, times in zip(results, _scored_times(windows, spec.lookback), strict=False):
        if times:  # the scored rows' times, when they were sent
            result["timestamps"] = times
    payload: dict[str, Any] = {"model": served.name, "version": served.version,
                               "horizon": spec.horizon, "outputs": list(spec.outputs),
                               "threshold": threshold}
    return _with_results(payload, results, windows)


def _training_floor(served: ServedModel) -> np.ndarray:
    """Per output: ``TRAINING_SCALE_FLOOR`` times the training data's standard deviation
    where the signature's scaler knows it, else ``MIN_SCALE``."""
    outputs = served.spec.outputs
    floor = np.full(len(outputs), MIN_SCALE)
    scaler = served.scaler
    if scaler is not None:
        for j, name in enumerate(outputs):
            if name in scaler.params:
                _, scale = scaler.offsets_scales([name])
                floor[j] = max(MIN_SCALE, TRAINING_SCALE_FLOOR * abs(float(scale[0])))
    return floor


#: A batch's answers are serialised this many at a time: ``json.dumps`` holds the GIL for
#: the whole call, and the event loop should not wait behind a 60,000-window answer.
DUMP_SLICE = 512


def to_json(payload: dict[str, Any]) -> bytes:
    """``payload`` as JSON, its ``forecasts`` or ``results`` list a slice at a time. Only
    finite numbers: a NaN or infinity that got this far is a ``ValueError``."""
    key = next((k for k in ("forecasts", "results") if len(payload.get(k, ())) > DUMP_SLICE),
               None)
    if key is None:
        return json.dumps(payload, allow_nan=False).encode()
    items = payload[key]
    head = json.dumps({k: v for k, v in payload.items() if k != key}, allow_nan=False)
    parts = [json.dumps(items[i:i + DUMP_SLICE], allow_nan=False)[1:-1]
             for i in range(0, len(items), DUMP_SLICE)]
    return f'{head[:-1]}, "{key}": [{", ".join(parts)}]}}'.encode()
