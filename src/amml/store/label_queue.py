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
"""

from __future__ import annotations

from typing import Any

from amml.store.drift_events import DriftRecords
from amml.store.labels import add_task
from amml.store.served import ServedWindow, served_windows

MARGIN = 0.75


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


def refresh_queue(store: Any, model: str | None = None, *, since: float | None = None,
                  margin: float = MARGIN) -> dict[str, int]:
    """Run every producer; how many tasks each one has queued in all (new or not)."""
    answers = queue_detect_answers(store, model, since=since, margin=margin)
    return {"alarm": len(answers["alarm"]), "uncertain": len(answers["uncertain"]),
            "drift": len(queue_drift_events(store, model, since))}


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
        series[name] = [row[j] for row in window.window]
    return series
