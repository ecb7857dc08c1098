"""The label queue in Label Studio's JSON task format, both ways.

An exported task is what Label Studio imports: ``data`` holds the time series to show
(``data["ts"]``: ``time`` in epoch milliseconds and one list per column, for a
``<TimeSeries valueType="json" value="$ts" timeColumn="time">``) and, under
``data["amml"]``, where the task came from; every label version is an annotation, oldest
first, and what put the task in the queue is a prediction. A label's class is a
``choices`` result (``from_name="verdict"``) and its regions are ``timeserieslabels``
results (``from_name="label"``) with ``start`` and ``end`` in the time column's units;
:func:`labeling_config` writes the matching labelling configuration.

Importing reads Label Studio's export (a list of tasks, or one): a task that names an
AMML task of this store is matched to it, any other is queued as a new ``import`` task. For
a matched task the latest annotation (by ``updated_at``, else its place in the list) adds a
label version only when it differs from the current label, so exporting and importing
again changes nothing; a new task gets every annotation as a version, oldest first, so
its history comes along. Cancelled annotations are skipped.

>>> import tempfile
>>> from amml.store import open_store
>>> from amml.store.labels import add_label, add_task
>>> with open_store(tempfile.mkdtemp()) as store:
...     task = add_task(store, model="oil", kind="alarm", start=3600.0, end=7200.0)
...     _ = add_label(store, task, "anomaly", author="ana")
...     exported = export_tasks(store)
...     counts = import_tasks(store, exported)
...     [r["type"] for r in exported[0]["annotations"][0]["result"]], counts["labels_added"]
(['choices'], 0)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from amml.store.labels import (
    LabelError,
    actuals_frame,
    add_label,
    add_task,
    get_task,
    label_history,
    tasks,
)
from amml.store.served import to_epoch

CHOICES = "verdict"
REGIONS = "label"
SERIES = "ts"
DEFAULT_CLASSES = ("anomaly", "normal")


def labeling_config(columns: Iterable[str], classes: Iterable[str] = DEFAULT_CLASSES) -> str:
    """The Label Studio labelling configuration for exported tasks with these columns."""
    names = list(classes)
    labels = "\n".join(f'    <Label value="{c}"/>' for c in names)
    choices = "\n".join(f'    <Choice value="{c}"/>' for c in names)
    channels = "\n".join(f'    <Channel column="{c}"/>' for c in columns)
    return (f'<View>\n  <TimeSeriesLabels name="{REGIONS}" toName="{SERIES}">\n{labels}\n'
            f'  </TimeSeriesLabels>\n  <TimeSeries name="{SERIES}" valueType="json" '
            f'value="${SERIES}" timeColumn="time" timeDisplayFormat="%Y-%m-%d %H:%M:%S">\n'
            f'{channels}\n  </TimeSeries>\n  <Choices name="{CHOICES}" toName="{SERIES}" '
            f'choice="single">\n{choices}\n  </Choices>\n</View>\n')


# -- export ---------------------------------------------------------------------------------
def export_tasks(store: Any, *, model: str | None = None, status: str | None = None,
                 models: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The tasks (of ``model``; ``status`` open or labelled) as Label Studio tasks."""
    return [export_task(store, task) for task in tasks(store, model=model, status=status,
                                                       models=models)]


def export_task(store: Any, task: dict[str, Any]) -> dict[str, Any]:
    meta = {k: task[k] for k in ("id", "key", "model", "kind", "start", "end", "column",
                                 "score")}
    annotations = [{"id": version["version"], "result": _result(version),
                    "created_at": _iso(version["created_at"]),
                    "updated_at": _iso(version["created_at"]),
                    "was_cancelled": False, "ground_truth": False, "lead_time": 0,
                    "meta": {"amml_version": version["version"], "author": version["author"],
                             "reason": version["reason"]}}
                   for version in label_history(store, task["id"])]
    predicted = {"kind": task["kind"], "score": task["score"]}
    prediction = {"model_version": f"amml-{task['kind']}", "score": task["score"] or 0.0,
                  "result": [_region_result({"start": task["start"], "end": task["end"],
                                             "label": "anomaly"}, "p0")]} \
        if task["kind"] in ("alarm", "drift", "uncertain") else None
    out: dict[str, Any] = {"id": task["id"],
                           "data": {SERIES: _series(store, task),
                                    "amml": {**meta, "task_id": task["id"],
                                             "predicted": predicted}},
                           "annotations": annotations,
                           "predictions": [prediction] if prediction else []}
    return out


def _series(store: Any, task: dict[str, Any]) -> dict[str, list[Any]]:
    """What to show: the window the task was raised on, or the actuals around its range."""
    series = (task["details"] or {}).get("series")
    if not series:
        pad = max((task["end"] - task["start"]) * 0.5, 1.0)
        frame = actuals_frame(store, task["model"], start=task["start"] - pad,
                              end=task["end"] + pad)
        if frame.empty:
            series = {"time": [task["start"], task["end"]]}
        else:
            wide = frame.pivot_table(index="ts", columns="column", values="value")
            series = {"time": [float(t) for t in wide.index]}
            for name in wide.columns:
                series[str(name)] = [None if v != v else float(v) for v in wide[name]]
    return {**series, "time": [round(float(t) * 1000.0) for t in series["time"]]}


def _result(version: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"id": "verdict", "from_name": CHOICES, "to_name": SERIES,
                                  "type": "choices", "origin": "manual",
                                  "value": {"choices": [version["label"]]}}]
    out.extend(_region_result(region, f"r{i}") for i, region in enumerate(version["regions"]))
    return out


def _region_result(region: dict[str, Any], rid: str) -> dict[str, Any]:
    value: dict[str, Any] = {"start": round(region["start"] * 1000.0),
                             "end": round(region["end"] * 1000.0),
                             "instant": region["start"] == region["end"],
                             "timeserieslabels": [region["label"]]}
    if region.get("column"):
        value["channel"] = region["column"]
    return {"id": rid, "from_name": REGIONS, "to_name": SERIES, "type": "timeserieslabels",
            "origin": "manual", "value": value}


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


# -- import ---------------------------------------------------------------------------------
def import_tasks(store: Any, items: Any, *, model: str | None = None,
                 author: str = "label-studio") -> dict[str, int]:
    """Read Label Studio tasks (a list, one task, or ``{"tasks": [...]}``) into the queue and
    the labels: ``{"tasks_created", "labels_added", "unchanged", "skipped"}``. ``model``
    names the model of tasks that do not say which (required for those)."""
    if isinstance(items, dict):
        items = items.get("tasks", [items])
    if not isinstance(items, list):
        raise LabelError("a Label Studio import is a list of tasks (or one task object)")
    counts = {"tasks_created": 0, "labels_added": 0, "unchanged": 0, "skipped": 0}
    for n, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("data"), dict):
            raise LabelError(f"task {n}: a Label Studio task is an object with 'data'")
        annotations = _annotations(item, n)
        task_id, created = _task_for(store, item, n, model)
        counts["tasks_created"] += created
        if not annotations:
            counts["skipped"] += 1
            continue
        if not created:
            annotations = annotations[-1:]
        for label, regions, who, reason in annotations:
            current = get_task(store, task_id)["label"]
            if current is not None and (current["label"], current["regions"]) == (
                    label, [_normal_region(r) for r in regions]):
                counts["unchanged"] += 1
                continue
            add_label(store, task_id, label, regions=regions, author=who or author,
                      source="label-studio", reason=reason)
            counts["labels_added"] += 1
    return counts


def _task_for(store: Any, item: dict[str, Any], n: int, model: str | None
              ) -> tuple[int, bool]:
    data = item["data"]
    meta = data.get("amml") if isinstance(data.get("amml"), dict) else {}
    if meta.get("task_id") is not None:
        found = tasks(store, ids=[int(meta["task_id"])])
        if found and found[0]["key"] == meta.get("key"):
            return found[0]["id"], False
    name = meta.get("model") or model
    if not name:
        raise LabelError(f"task {n}: it does not say which model it is about: pass the model "
                         "name (amml labels import --model NAME)")
    if meta.get("key"):
        key = str(meta["key"])
    else:
        digest = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode())
        key = f"import:{digest.hexdigest()[:32]}"
    start, end = meta.get("start"), meta.get("end")
    if start is None or end is None:
        stamps = [to_epoch(t) for t in (data.get(SERIES) or {}).get("time", [])]
        regions = [r for a in _annotations(item, n) for r in a[1]]
        stamps += [r["start"] for r in regions] + [r["end"] for r in regions]
        if not stamps:
            raise LabelError(f"task {n}: no time range: neither data.{SERIES}.time nor "
                             "labelled regions")
        start, end = min(stamps), max(stamps)
    existing = tasks(store, model=name)
    before = {t["key"]: t["id"] for t in existing}
    if key in before:
        return before[key], False
    kind = meta.get("kind") if meta.get("kind") in ("alarm", "drift", "uncertain",
                                                      "manual") else "import"
    details: dict[str, Any] = {"label_studio_id": item.get("id")}
    series = data.get(SERIES)
    if isinstance(series, dict) and isinstance(series.get("time"), list):
        details["series"] = {**series, "time": [to_epoch(t) for t in series["time"]]}
    task_id = add_task(store, model=str(name), kind=kind, start=start, end=end,
                       column=meta.get("column"), score=meta.get("score"), key=key,
                       details=details)
    return task_id, True


def _annotations(item: dict[str, Any], n: int
                 ) -> list[tuple[str, list[dict[str, Any]], str, str]]:
    """(label, regions, author, reason) per annotation that was not cancelled, oldest
    first."""
    found = []
    raw = item.get("annotations") or item.get("completions") or []
    for place, annotation in enumerate(raw):
        if not isinstance(annotation, dict) or annotation.get("was_cancelled"):
            continue
        label, regions = None, []
        for i, result in enumerate(annotation.get("result") or []):
            value = result.get("value") or {}
            kind = result.get("type")
            if kind == "choices" and value.get("choices"):
                label = str(value["choices"][0])
            elif kind == "timeserieslabels":
                try:
                    region = {"start": to_epoch(value["start"]),
                              "end": to_epoch(value.get("end", value["start"])),
                              "label": str((value.get("timeserieslabels") or ["anomaly"])[0])}
                except (KeyError, ValueError) as exc:
                    raise LabelError(f"task {n}, annotation {place}, result {i}: a region "
                                     f"needs 'start' and 'end' ({exc})") from None
                if value.get("channel"):
                    region["column"] = str(value["channel"])
                regions.append(region)
        if label is None:  # regions only: those are marked, the rest of the range is not
            label = regions[0]["label"] if regions else "normal"
        meta = annotation.get("meta") if isinstance(annotation.get("meta"), dict) else {}
        when = annotation.get("updated_at") or annotation.get("created_at") or ""
        who = meta.get("author") or _who(annotation.get("completed_by"))
        found.append((str(when), place, (label, regions, who, str(meta.get("reason", "")))))
    found.sort(key=lambda entry: (entry[0], entry[1]))
    return [entry[2] for entry in found]


def _who(completed_by: Any) -> str:
    if isinstance(completed_by, dict):
        return str(completed_by.get("email") or completed_by.get("id") or "")
    return "" if completed_by is None else f"label-studio user {completed_by}"


def _normal_region(region: dict[str, Any]) -> dict[str, Any]:
    """A region as :func:`amml.store.labels.add_label` stores it."""
    out = {"start": float(region["start"]), "end": float(region["end"]),
           "label": str(region["label"])}
    if region.get("column"):
        out["column"] = region["column"]
    return out
