"""``amml labels``: the label queue, versioned labels, Label Studio files, actuals and the
live error of a served model, on the store (the server's ``/v1/labels`` routes do the same
over HTTP)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from amml.cli._options import HomeOption, JsonOption

app = typer.Typer(name="labels", no_args_is_help=True,
                  help="Label queue, versioned labels, Label Studio import/export, actuals "
                       "and live error.")

ModelOption = Annotated[str | None, typer.Option("--model", help="Only this model.")]


def attach(main: typer.Typer) -> None:
    main.add_typer(app, name="labels")


def _when(seconds: float | None) -> str:
    if seconds is None:
        return ""
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def _moment(text: str | None, what: str) -> float | None:
    from amml.cli.main import _fail
    from amml.ops.sources.served_store import moment

    try:
        return moment(text, what)
    except Exception as exc:  # OpError: a clean message
        raise _fail(str(exc), 2) from None


@app.command()
def tasks(
    model: ModelOption = None,
    status: Annotated[str | None, typer.Option(help="open or labelled.")] = None,
    kind: Annotated[str | None, typer.Option(
        help="alarm, drift, uncertain, manual or import.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """List the label queue, oldest first, with each task's latest label."""
    from amml.cli.main import _fail, _open_store, out
    from amml.store.labels import LabelError
    from amml.store.labels import tasks as list_tasks

    store = _open_store(home, read_only=True)
    try:
        found = list_tasks(store, model=model, status=status, kind=kind, limit=limit)
    except LabelError as exc:
        raise _fail(str(exc), 2) from None
    finally:
        store.close()
    if json_output:
        out.print_json(json.dumps(found, default=float))
        return
    table = Table("id", "model", "kind", "column", "start (UTC)", "end (UTC)", "score",
                  "label", "version")
    for t in found:
        label = t["label"] or {}
        table.add_row(str(t["id"]), t["model"], t["kind"], t["column"] or "",
                      _when(t["start"]), _when(t["end"]),
                      "" if t["score"] is None else f"{t['score']:.3g}",
                      label.get("label", ""), str(label.get("version", "")))
    out.print(table)


@app.command()
def refresh(
    model: ModelOption = None,
    since: Annotated[str | None, typer.Option(
        help="Only what was served or detected since (date, epoch s, '-2h').")] = None,
    margin: Annotated[float, typer.Option(
        help="A /detect score of at least MARGIN x threshold without an alarm is a close "
             "call worth a label.")] = 0.75,
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Queue what is new: alarms and close calls of served /detect answers, drift events."""
    from amml.cli.main import _open_store, out
    from amml.store.label_queue import refresh_queue

    store = _open_store(home)
    try:
        counts = refresh_queue(store, model, since=_moment(since, "since"), margin=margin)
    finally:
        store.close()
    if json_output:
        out.print_json(json.dumps(counts))
    else:
        out.print(", ".join(f"{kind}: {n}" for kind, n in counts.items()), highlight=False)


@app.command()
def show(
    task_id: Annotated[int, typer.Argument(help="The task's id.")],
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """One task with every label version."""
    from amml.cli.main import _fail, _open_store, out
    from amml.store.labels import LabelError, get_task, label_history

    store = _open_store(home, read_only=True)
    try:
        task = get_task(store, task_id)
        history = label_history(store, task_id)
    except LabelError as exc:
        raise _fail(str(exc), 1) from None
    finally:
        store.close()
    if json_output:
        out.print_json(json.dumps({**task, "history": history}, default=float))
        return
    out.print(f"task {task['id']} ({task['kind']}) of {task['model']}"
              f"{' / ' + task['column'] if task['column'] else ''}: "
              f"{_when(task['start'])} .. {_when(task['end'])} UTC", highlight=False)
    table = Table("version", "label", "regions", "author", "source", "when (UTC)", "reason")
    for h in history:
        regions = "; ".join(f"{_when(r['start'])}..{_when(r['end'])} {r['label']}"
                            for r in h["regions"])
        table.add_row(str(h["version"]), h["label"], regions, h["author"], h["source"],
                      _when(h["created_at"]), h["reason"])
    out.print(table)


def _regions(texts: list[str] | None) -> list[dict[str, Any]]:
    from amml.cli.main import _fail

    found = []
    for text in texts or []:
        span, _, label = text.partition("=")
        start, sep, end = span.partition("..")
        if not sep or not start or not end:
            raise _fail(f"--region '{text}': expected START..END or START..END=LABEL", 2)
        found.append({"start": start, "end": end, **({"label": label} if label else {})})
    return found


@app.command(name="set")
def set_label(
    task_id: Annotated[int, typer.Argument(help="The task's id.")],
    label: Annotated[str, typer.Argument(help="The class, such as anomaly or normal.")],
    region: Annotated[list[str] | None, typer.Option(
        help="A part of the task's range: START..END or START..END=LABEL (dates or epoch "
             "seconds); repeat for more.")] = None,
    author: Annotated[str | None, typer.Option(help="Who labels (default: you).")] = None,
    reason: Annotated[str, typer.Option(help="Why, for the history.")] = "",
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Label a task: a new version; earlier ones are kept and the latest counts."""
    import getpass

    from amml.cli.main import _fail, _open_store, out
    from amml.store.labels import LabelError, add_label

    store = _open_store(home)
    try:
        made = add_label(store, task_id, label, regions=_regions(region),
                         author=author or getpass.getuser(), source="cli", reason=reason)
    except LabelError as exc:
        raise _fail(str(exc), 2) from None
    finally:
        store.close()
    if json_output:
        out.print_json(json.dumps(made, default=float))
    else:
        out.print(f"task {task_id}: version {made['version']} '{made['label']}'",
                  highlight=False)


@app.command()
def add(
    model: Annotated[str, typer.Argument(help="The model the item is about.")],
    start: Annotated[str, typer.Argument(help="Start (date or epoch seconds).")],
    end: Annotated[str, typer.Argument(help="End (date or epoch seconds).")],
    column: Annotated[str | None, typer.Option(help="The data column it is about.")] = None,
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Queue a time range of a model for labelling by hand (kind manual)."""
    from amml.cli.main import _fail, _open_store, out
    from amml.store.labels import LabelError, add_task

    store = _open_store(home)
    try:
        task_id = add_task(store, model=model, kind="manual", start=start, end=end,
                           column=column)
    except LabelError as exc:
        raise _fail(str(exc), 2) from None
    finally:
        store.close()
    if json_output:
        out.print_json(json.dumps({"id": task_id}))
    else:
        out.print(f"task {task_id}", highlight=False)


@app.command(name="export")
def export_(
    model: ModelOption = None,
    status: Annotated[str | None, typer.Option(help="open or labelled.")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write to this file (default: print).")] = None,
    config: Annotated[bool, typer.Option(
        "--config", help="Print the Label Studio labelling configuration instead.")] = False,
    home: HomeOption = None,
) -> None:
    """The queue as Label Studio JSON tasks (import them in Label Studio; its export comes
    back with 'amml labels import')."""
    from amml.cli.main import _fail, _open_store, out
    from amml.store import label_studio
    from amml.store.labels import LabelError

    store = _open_store(home, read_only=True)
    try:
        found = label_studio.export_tasks(store, model=model, status=status)
    except LabelError as exc:
        raise _fail(str(exc), 2) from None
    finally:
        store.close()
    if config:
        columns: list[str] = []
        for task in found:
            columns += [c for c in task["data"]["ts"] if c != "time" and c not in columns]
        text = label_studio.labeling_config(columns)
    else:
        text = json.dumps(found, indent=1, default=float)
    if output is None:
        out.print(text, markup=False, highlight=False)
    else:
        output.write_text(text + "\n")
        out.print(f"{len(found)} tasks written to {output}", markup=False, highlight=False)


@app.command(name="import")
def import_(
    file: Annotated[Path, typer.Argument(help="Label Studio's JSON export.")],
    model: Annotated[str | None, typer.Option(
        help="The model of tasks that do not name one.")] = None,
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Read Label Studio's JSON export: changed annotations become new label versions,
    tasks from elsewhere are queued."""
    from amml.cli.main import _fail, _open_store, out
    from amml.store import label_studio
    from amml.store.labels import LabelError

    try:
        items = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read {file}: {exc}", 2) from None
    store = _open_store(home)
    try:
        counts = label_studio.import_tasks(store, items, model=model)
    except LabelError as exc:
        raise _fail(str(exc), 2) from None
    finally:
        store.close()
    if json_output:
        out.print_json(json.dumps(counts))
    else:
        out.print(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items()),
                  highlight=False)


@app.command()
def actuals(
    model: Annotated[str, typer.Argument(help="The model whose forecasts they answer.")],
    file: Annotated[Path, typer.Argument(
        help="A CSV with a time column and value columns, or JSON rows {ts, column, value}.")],
    time_column: Annotated[str, typer.Option(help="The CSV's time column.")] = "timestamp",
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Record observed values (ground truth that arrived later) for a served model."""
    from amml.cli.main import _fail, _open_store, out
    from amml.store.labels import LabelError, record_actuals

    try:
        rows = _actual_rows(file, time_column)
    except (OSError, ValueError, KeyError) as exc:
        raise _fail(f"cannot read {file}: {exc}", 2) from None
    store = _open_store(home)
    try:
        stored = record_actuals(store, model, rows, source="cli")
    except LabelError as exc:
        raise _fail(str(exc), 2) from None
    finally:
        store.close()
    if json_output:
        out.print_json(json.dumps({"model": model, "stored": stored}))
    else:
        out.print(f"{stored} actuals of {model} stored", highlight=False)


def _actual_rows(file: Path, time_column: str) -> list[dict[str, Any]]:
    if file.suffix.lower() == ".json":
        rows = json.loads(file.read_text())
        if not isinstance(rows, list):
            raise ValueError("expected a JSON list of {ts, column, value}")
        return rows
    import pandas as pd

    frame = pd.read_csv(file)
    if time_column not in frame.columns:
        raise KeyError(f"no time column '{time_column}' (columns: "
                       f"{', '.join(map(str, frame.columns))}); pass --time-column")
    rows = []
    for name in frame.columns:
        if name == time_column:
            continue
        for ts, value in zip(frame[time_column], frame[name], strict=True):
            if value == value:  # an empty cell is no actual
                rows.append({"ts": str(ts), "column": str(name), "value": value})
    return rows


@app.command()
def live(
    model: Annotated[str, typer.Argument(help="The served model.")],
    since: Annotated[str | None, typer.Option(
        help="Served since (date, epoch s, '-2h').")] = None,
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """The live error: served forecasts joined with the actuals that arrived, per column
    and version (MSE, MAE, points)."""
    from amml.cli.main import _open_store, out
    from amml.store.labels import live_window

    store = _open_store(home, read_only=True)
    try:
        frame = live_window(store, model, since=_moment(since, "since"))
    finally:
        store.close()
    frame = frame.assign(error=frame["actual"] - frame["predicted"])
    summary = []
    for (column, version), part in frame.groupby(["column", "version"], sort=True):
        summary.append({"column": column, "version": int(version), "points": len(part),
                        "mse": float((part["error"] ** 2).mean()),
                        "mae": float(part["error"].abs().mean()),
                        "first": float(part["ts"].min()), "last": float(part["ts"].max())})
    if json_output:
        out.print_json(json.dumps({"model": model, "live": summary}))
        return
    if not summary:
        out.print(f"no served forecast of {model} has an actual yet", highlight=False)
        return
    table = Table("column", "version", "points", "MSE", "MAE", "from (UTC)", "to (UTC)")
    for s in summary:
        table.add_row(s["column"], str(s["version"]), str(s["points"]), f"{s['mse']:.4g}",
                      f"{s['mae']:.4g}", _when(s["first"]), _when(s["last"]))
    out.print(table)
