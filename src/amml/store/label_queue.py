"""What puts items in the label queue: anomaly alarms and uncertain windows the server
answered, and drift events the monitor raised.

Each producer reads what is new and adds one task per item, keyed by where it came from
(``alarm:LOG_ID:WINDOW:COLUMN``, ``uncertain:...``, ``drift:EVENT_ID``), so running it
again adds nothing twice. An alarm or uncertain task keeps the window it was raised on
(``details["series"]``: ``time`` in epoch seconds and one list per column), which is what a
labelling tool shows.

* **alarm**: a ``/detect`` answer with steps over its threshold: the task spans those steps.
* **uncertain**: a ``/detect`` answer with no alarm on a column whose largest score is at
  least ``margin`` times the threshold (default 0.75): close calls, where a label teaches
  the threshold the most.
* **drift**: a drift event: the task spans the estimated drift point to the detection.
* served ``/forecast`` answers whose actuals arrived: a point whose error is more than ``k``
  robust deviations (1.4826 x the median absolute deviation of the errors) from the median
  error is an **alarm**, one over ``margin`` x ``k`` an **uncertain** item; neighbouring
  points of one column make one task.
"""

from __future__ import annotations

from typing import Any

from amml.store.drift_events import DriftRecords
from amml.store.labels import add_task, served_points
from amml.store.served import ServedWindow, served_windows

MARGIN = 0.75
#: Robust deviations of the live error that make an alarm.
ERROR_K = 4.0
#: Fewest points with an actual before the live error's spread is trusted.
MIN_POINTS = 8


def queue_drift_events(store: Any, model: str | None = None, since: float | None = None
                       ) -> list[int]:
    """One task per drift event (of ``model``, detected at or after ``since``); returns the
    tasks' ids, new or already queued."""
    ids = []
    for event in DriftRecords(store).events(model, since):
        start = min(event["drift_point"], event["detected_at"])
        ids.append(add_task(
            store, model=event["model"], kind="drift", start=start,
            end=event["detected_at"], score=event["score"], key=f"drift:{event['id']}",
            details={"version": event["version"], "detector": event["detector"],
                     "confidence": event["confidence"], "threshold": event["threshold"],
                     "features": event["features"]}))
    return ids


def queue_detect_answers(store: Any, model: str | None = None, *, since: float | None = None,
                         until: float | None = None, margin: float = MARGIN
                         ) -> dict[str, list[int]]:
    """Alarm and uncertain tasks from the ``/detect`` answers received in ``[since, until)``:
    ``{"alarm": [ids], "uncertain": [ids]}``."""
    found: dict[str, list[int]] = {"alarm": [], "uncertain": []}
    for window in served_windows(store, model, since=since, until=until,
                                 endpoints=("detect",)):
        threshold = window.threshold
        for column, scores in window.scores.items():
            if not scores:
                continue
            steps = window.alarms.get(column) or []
            top = max(scores)
            if steps:
                kind, picked = "alarm", steps
            elif threshold is not None and top >= margin * threshold:
                kind, picked = "uncertain", [scores.index(top)]
            else:
                continue
            start, end = _span(window, picked)
            found[kind].append(add_task(
                store, model=window.model, kind=kind, start=start, end=end, column=column,
                score=top, key=f"{kind}:{window.log_id}:{window.index}:{column}",
                details={"version": window.version, "threshold": threshold,
                         "steps": picked, "received_at": window.received_at,
                         "scores": scores, "forecast": window.forecast.get(column),
                         "series": _series(window)}))
    return found


def queue_forecast_errors(store: Any, model: str, *, since: float | None = None,
                          k: float = ERROR_K, margin: float = MARGIN
                          ) -> dict[str, list[int]]:
    """Alarm and uncertain tasks from the live error of ``model``'s served forecasts
    (received at or after ``since``): ``{"alarm": [ids], "uncertain": [ids]}``."""
    import numpy as np

    found: dict[str, list[int]] = {"alarm": [], "uncertain": []}
    points = served_points(store, model, since=since)
    points = points[(points["endpoint"] == "forecast") & points["actual"].notna()]
    for column, part in points.groupby("column", sort=True):
        if len(part) < MIN_POINTS:
            continue
        error = (part["actual"] - part["predicted"]).to_numpy(float)
        centre = float(np.median(error))
        scale = 1.4826 * float(np.median(np.abs(error - centre)))
        scale = scale if scale > 0 else float(np.std(error)) or 1e-12
        score = np.abs(error - centre) / scale
        level = np.where(score > k, 2, np.where(score >= margin * k, 1, 0))
        stamps = part["ts"].to_numpy(float)
        i = 0
        while i < len(level):  # runs of one level make one task
            if level[i] == 0:
                i += 1
                continue
            j = i
            while j + 1 < len(level) and level[j + 1] == level[i]:
                j += 1
            kind = "alarm" if level[i] == 2 else "uncertain"
            found[kind].append(add_task(
                store, model=model, kind=kind, start=stamps[i], end=stamps[j],
                column=str(column), score=float(score[i:j + 1].max()),
                key=f"error-{kind}:{model}:{column}:{stamps[i]:.3f}",
                details={"source": "live error", "k": k, "median_error": centre,
                         "scale": scale, "errors": error[i:j + 1].tolist(),
                         "versions": sorted({int(v) for v in
                                             part["version"].iloc[i:j + 1]})}))
            i = j + 1
    return found


def refresh_queue(store: Any, model: str | None = None, *, since: float | None = None,
                  margin: float = MARGIN) -> dict[str, int]:
    """Run every producer; how many tasks each one has queued in all (new or not)."""
    answers = queue_detect_answers(store, model, since=since, margin=margin)
    counts = {"alarm": len(answers["alarm"]), "uncertain": len(answers["uncertain"]),
              "drift": len(queue_drift_events(store, model, since))}
    for name in [model] if model is not None else _served_models(store):
        errors = queue_forecast_errors(store, name, since=since, margin=margin)
        counts["alarm"] += len(errors["alarm"])
        counts["uncertain"] += len(errors["uncertain"])
    return counts


def _served_models(store: Any) -> list[str]:
    from sqlalchemy import select

    from amml.store.metadata.schema import prediction_log

    query = (select(prediction_log.c.model).where(prediction_log.c.endpoint == "forecast")
             .distinct())
    with store.metadata.engine.connect() as conn:
        return sorted(conn.execute(query).scalars().all())


def _span(window: ServedWindow, steps: list[int]) -> tuple[float, float]:
    stamps = window.forecast_ts
    if not stamps:  # no timestamps were sent: the time it was served
        return window.received_at, window.received_at
    return stamps[min(steps)], stamps[max(steps)]


def _series(window: ServedWindow) -> dict[str, list[float]] | None:
    if window.timestamps is None or window.columns is None:
        return None
    series: dict[str, list[float]] = {"time": list(window.timestamps)}
    for j, name in enumerate(window.columns):
        series[name] = window.window[:, j].tolist()
    return series
