"""``amml monitor MODEL``: watch what a model served for drift; ``amml drift report MODEL``:
draw the timeline of drift scores and events as a PNG (``amml drift events MODEL`` lists
the events)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from amml.cli._options import HomeOption, JsonOption

drift_app = typer.Typer(name="drift", no_args_is_help=True,
                        help="Drift events and timelines recorded by amml monitor.")


def attach(main: typer.Typer) -> None:
    main.command("monitor")(monitor)
    main.add_typer(drift_app, name="drift")


def monitor(
    model: Annotated[str, typer.Argument(
        help="NAME (follows the newest version served), NAME@ALIAS (follows the alias) or "
             "NAME@VERSION.")],
    reference: Annotated[int, typer.Option(help="Forecasts that form the reference "
                                           "period (the first ones the watched version "
                                           "served; a new version starts a new one).")] = 200,
    window: Annotated[int, typer.Option(help="Forecasts per window of the window tests.")] = 50,
    detector: Annotated[list[str] | None, typer.Option(
        "--detector", help="Detectors to run (repeat; default: all).")] = None,
    interval: Annotated[float, typer.Option(help="Seconds between polls.")] = 1.0,
    webhook: Annotated[str | None, typer.Option(help="URL to POST each event to.")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        help="Serve Prometheus gauges on 127.0.0.1:PORT/metrics.")] = None,
    mqtt_url: Annotated[str | None, typer.Option(
        help="Watch rows arriving on MQTT (mqtt://host:port) instead of the prediction "
             "log.")] = None,
    mqtt_topic: Annotated[str | None, typer.Option(help="Topic (default amml/MODEL).")] = None,
    rounds: Annotated[int | None, typer.Option(help="Stop after N polls (default: run "
                                               "until interrupted).")] = None,
    home: HomeOption = None,
) -> None:
    """Score drift on every forecast MODEL served (the prediction log) or on live MQTT rows:
    input, prediction, attribution and error drift, each event with its drift point and
    confidence, stored, exposed as Prometheus gauges and posted to a webhook. An anomaly
    detector's answers are watched for input drift and for drift in its scores. When another
    version serves (a promotion, a moved alias), drift is measured against that version's
    own first forecasts: a new reference, logged and recorded."""
    from amml._exceptions import ConfigurationError
    from amml.cli.main import _fail, _open_store, err
    from amml.monitor.pipeline import DETECTORS
    from amml.monitor.service import MonitorConfig, MonitorService

    chosen = detector or list(DETECTORS)
    unknown = [d for d in chosen if d not in DETECTORS]
    if unknown:
        raise _fail(f"unknown detector {', '.join(unknown)} (known: {', '.join(DETECTORS)})", 2)
    if reference < 2 * window:
        raise _fail(f"--reference ({reference}) must be at least twice --window ({window})", 2)
    name, at, pointer = model.partition("@")
    if not name or (at and not pointer):
        raise _fail(f"invalid model reference '{model}' (NAME, NAME@ALIAS or NAME@VERSION)", 2)
    store = _open_store(home)
    config = MonitorConfig(model=model, reference=reference, window=window, detectors=chosen,
                           interval=interval, webhook=webhook, metrics_port=metrics_port,
                           mqtt_url=mqtt_url, mqtt_topic=mqtt_topic)
    service = MonitorService(store, config)
    signal.signal(signal.SIGTERM, lambda *_: service.stop())
    err.print(f"amml monitor: watching {model} ({', '.join(chosen)})", highlight=False)
    try:
        service.run(rounds=rounds)
    except KeyboardInterrupt:
        service.stop()
    except ConfigurationError as exc:  # what was asked for cannot be watched
        raise _fail(f"amml monitor: {exc}", 2) from None
    finally:
        store.close()
    switched = max(0, len(service.references) - 1)
    ran = service.pipeline.wanted if service.pipeline is not None else []
    left_out = [d for d in chosen if d not in ran] if service.pipeline is not None else []
    err.print(f"amml monitor: {service.events_raised} drift events, {switched} new "
              f"references (version {service.version or '-'} watched last"
              + (f"; an anomaly detector: {', '.join(left_out)} do not apply" if left_out
                 else "") + ")", highlight=False)


def _stamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


@drift_app.command("report")
def report(
    model: Annotated[str, typer.Argument(help="Model name.")],
    out_file: Annotated[Path, typer.Option("--out", help="PNG to write.")] = Path(
        "drift-report.png"),
    home: HomeOption = None,
) -> None:
    """Draw MODEL's drift scores and events over time as a PNG."""
    from amml.cli.main import _open_store, out
    from amml.monitor.report import timeline_png
    from amml.store.drift_events import DriftRecords

    store = _open_store(home, read_only=True)
    try:
        records = DriftRecords(store)
        scores, events = records.scores(model), records.events(model)
    finally:
        store.close()
    out_file.write_bytes(timeline_png(model, scores, events))
    out.print(f"drift report model={model} scores={len(scores)} events={len(events)} "
              f"png={out_file}", highlight=False)


@drift_app.command("events")
def events(
    model: Annotated[str | None, typer.Argument(help="Model name (default: all).")] = None,
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """List drift events: detector, when raised, estimated drift point, confidence."""
    from amml.cli.main import _open_store, out
    from amml.store.drift_events import DriftRecords

    store = _open_store(home, read_only=True)
    try:
        found = DriftRecords(store).events(model)
    finally:
        store.close()
    if json_output:
        out.print_json(json.dumps(found, default=float))
        return
    for e in found:
        out.print(f"{e['model']}@{e['version']} {e['detector']} raised={_stamp(e['detected_at'])}"
                  f" drift_point={_stamp(e['drift_point'])} confidence={e['confidence']:.3f} "
                  f"features={','.join(e['features']) or '-'}", highlight=False)


@drift_app.command("references")
def references(
    model: Annotated[str, typer.Argument(help="Model name.")],
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """The versions amml monitor has measured MODEL's drift against, newest first: each new
    reference (a swap to another served version) with when and why."""
    from amml.cli.main import _open_store, out
    from amml.store.operations import OperationsRecords

    store = _open_store(home, read_only=True)
    try:
        recorded = OperationsRecords(store).cursor(f"monitor:{model}"[:200], "reference")
    finally:
        store.close()
    rows = [] if recorded is None else [
        {k: v for k, v in recorded.items() if k != "history"},
        *reversed(recorded.get("history", []))]
    if json_output:
        out.print_json(json.dumps(rows, default=float))
        return
    if not rows:
        out.print(f"no reference recorded for {model} (amml monitor has not watched it)")
        return
    for row in rows:
        was = f" (was {row['previous']})" if row.get("previous") is not None else ""
        out.print(f"{model}@{row['version']}{was} since={_stamp(row['at'])} "
                  f"forecasts={row.get('reference', '-')} why={row.get('why', '-')}",
                  highlight=False)
