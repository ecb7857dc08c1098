"""``amml edge``: devices (register, list), group assignments, and edge exports of versions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from amml.cli._options import HomeOption, JsonOption

app = typer.Typer(name="edge", no_args_is_help=True,
                  help="Edge devices: ONNX/int8 exports, device keys, assignments.")


def attach(main: typer.Typer) -> None:
    main.add_typer(app, name="edge")


@app.command()
def devices(
    group: Annotated[str | None, typer.Option(help="Only this group.")] = None,
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """List edge devices with their group, last report and model."""
    from amml.cli.main import _open_store, out
    from amml.store.devices import list_devices

    store = _open_store(home)
    try:
        found = list_devices(store, group)
    finally:
        store.close()
    if json_output:
        out.print_json(json.dumps([d.to_json() for d in found]))
        return
    table = Table("device", "name", "group", "model", "rss MB", "forecasts", "revoked")
    for d in found:
        report = d.last_report or {}
        table.add_row(d.device_id, d.name, d.group, str(report.get("model") or ""),
                      str(report.get("rss_mb") or ""), str(report.get("forecasts") or ""),
                      "yes" if d.revoked_at else "")
    out.print(table)


@app.command()
def register(
    name: Annotated[str, typer.Argument(help="The device's name.")],
    group: Annotated[str, typer.Option(help="Its device group (assignments are per group).")],
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Register a device; its key is printed once (only its hash is stored), with the public
    key the device pins to verify the models it gets."""
    from amml.cli.main import _fail, _open_store, err, out
    from amml.edge.export import public_key_hex
    from amml.store.devices import ConfigurationError, register_device

    store = _open_store(home)
    try:
        device, token = register_device(store, name, group=group)
    except ConfigurationError as exc:
        raise _fail(str(exc), 2) from None
    finally:
        store.close()
    public = public_key_hex()
    if json_output:
        out.print_json(json.dumps({**device.to_json(), "token": token, "public_key": public}))
        return
    typer.echo(token)
    err.print(f"device {device.device_id} in group {group}; run it with: amml-edge --server "
              f"URL --token <key> --trust-key {public}")


@app.command()
def assign(
    group: Annotated[str, typer.Argument(help="Device group.")],
    model: Annotated[str, typer.Argument(help="NAME@ALIAS (followed) or NAME@VERSION.")],
    fmt: Annotated[str, typer.Option("--format", help="fp32, fp16, int8 or int8-static.")
                   ] = "int8",
    home: HomeOption = None,
) -> None:
    """Point a device group at a model; its devices swap at their next poll."""
    from amml.cli.main import _fail, _open_store, out
    from amml.registry import current_actor
    from amml.store.devices import ConfigurationError, set_assignment

    store = _open_store(home)
    try:
        done = set_assignment(store, group, model, fmt, actor=current_actor())
    except ConfigurationError as exc:
        raise _fail(str(exc), 2) from None
    finally:
        store.close()
    out.print(f"group {done.group} runs {done.model} ({done.format})")


@app.command("export")
def export(
    reference: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@ALIAS.")],
    fmt: Annotated[str, typer.Option("--format", help="fp32, fp16, int8 or int8-static.")
                   ] = "int8",
    data: Annotated[Path | None, typer.Option(
        help="CSV with the model's columns (original units) for calibration and checks.")
    ] = None,
    train_rows: Annotated[str, typer.Option(
        help="START:END rows of --data for calibration windows (the training split).")
    ] = "",
    eval_rows: Annotated[str, typer.Option(
        help="START:END rows of --data to measure the accuracy change on.")] = "",
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Export a version as a signed edge variant (its child), checked against it."""
    from amml.cli.main import _fail, _open_store, out
    from amml.edge.export import Evaluation, export_variant, windows_from_csv

    store = _open_store(home)
    try:
        calibration = evaluation = None
        if data is not None:
            if train_rows:
                calibration = windows_from_csv(store, reference, data, train_rows)[0]
            if eval_rows:
                evaluation = Evaluation(*windows_from_csv(store, reference, data, eval_rows))
        result = export_variant(store, reference, fmt, calibration=calibration,
                                evaluation=evaluation)
    except Exception as exc:  # every failure is the user's to read, as one line
        from amml._exceptions import AMMLError

        if not isinstance(exc, AMMLError):
            raise
        raise _fail(str(exc), 1) from None
    finally:
        store.close()
    variant = result.variant
    if json_output:
        out.print_json(json.dumps(variant.to_json()))
        return
    delta = ("" if variant.mse_delta_pct is None
             else f", MSE {variant.mse_delta_pct:+.3f}% vs fp32")
    out.print(f"{variant.ref}: {variant.size} bytes, parity max abs "
              f"{variant.parity_max_abs:.3g}{delta}, signed by {variant.key_id}")
