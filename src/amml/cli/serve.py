"""``amml serve``: registered models over HTTP (FastAPI + uvicorn), swapping versions when an
alias moves, with no downtime."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# ServeConfig's defaults, written out so that loading the CLI does not import amml.serve
# (tests/serve/test_cli.py checks they agree)
MAX_BODY_BYTES, MAX_WINDOWS, MAX_JSON_DEPTH, MAX_IN_FLIGHT = 8 * 2**20, 10_000, 32, 32


def attach(main: typer.Typer) -> None:
    main.command("serve")(serve)


def serve(
    model: Annotated[list[str] | None, typer.Option(
        "--model", "-m", help="NAME@ALIAS (follows the alias), NAME@VERSION (pinned) or NAME "
        "(newest); repeatable. Default: every model, at @champion where it has one.")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (uvicorn).", min=1)] = 1,
    poll_interval: Annotated[float, typer.Option(
        "--poll-interval", help="Seconds between checks of the aliases.", min=0.05)] = 0.5,
    no_auth: Annotated[bool, typer.Option(
        "--no-auth", help="Serve without API keys (local use only: anyone who can reach the "
        "port can predict).")] = False,
    no_log: Annotated[bool, typer.Option(
        "--no-log", help="Do not log requests and predictions to the store.")] = False,
    threads: Annotated[int, typer.Option(help="PyTorch threads per worker.", min=1)] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request line "
                                             "to stdout (slower).")] = False,
    max_body_bytes: Annotated[int, typer.Option(
        "--max-body-bytes", help="Largest request body; larger ones get 413 before they are "
        "read.", min=1)] = MAX_BODY_BYTES,
    max_windows: Annotated[int, typer.Option(
        "--max-windows", help="Most windows in one request (422 beyond).", min=1)
    ] = MAX_WINDOWS,
    max_json_depth: Annotated[int, typer.Option(
        "--max-json-depth", help="Deepest nesting of a JSON body (422 beyond).", min=4)
    ] = MAX_JSON_DEPTH,
    max_in_flight: Annotated[int, typer.Option(
        "--max-in-flight", help="Prediction requests read or scored at once per worker "
        "(503 beyond). With --max-body-bytes it bounds a worker's memory.", min=1)
    ] = MAX_IN_FLIGHT,
    metrics_open: Annotated[bool, typer.Option(
        "--metrics-open", help="Serve /metrics without a key (by default it needs a 'read' "
        "key, sent by the scraper as a bearer token).")] = False,
    home: Annotated[Path | None, typer.Option(
        "--home", envvar="AMML_HOME", help="Folder of the default store (default: ./.amml).")
    ] = None,
    ui: Annotated[bool, typer.Option(
        "--ui", help="Also serve the web dashboard under /ui (sign in with an API key).")
    ] = False,
) -> None:
    """Serve registered models: POST /v1/models/NAME/forecast and /detect, GET /v1/models,
    /healthz, /readyz, /metrics and /docs. Requests need an API key ('amml keys create')
    unless --no-auth."""
    from amml.cli.main import _fail, _open_store, err

    try:
        from amml.serve.server import serve as run_server
    except ImportError as exc:
        raise _fail(f"serving needs the 'serve' extra (pip install 'amml[serve]'): {exc}",
                    2) from None
    from amml.registry import ModelRegistry, RegistryError
    from amml.serve import ServeConfig
    from amml.serve.models import default_references

    store = _open_store(home)
    try:
        registry = ModelRegistry(store)
        references = list(model or []) or default_references(registry)
        for reference in references:
            name, _, pointer = reference.partition("@")
            if pointer and not pointer.isdigit() and registry.alias_version(name,
                                                                           pointer) is None:
                raise _fail(f"model '{name}' has no alias '{pointer}'", 2)
            if not pointer or pointer.isdigit():
                registry.resolve(reference)
    except RegistryError as exc:
        raise _fail(str(exc), 2) from None
    finally:
        store.close()
    if not references:
        raise _fail("no models registered yet: register one first (amml models register)", 2)
    config = ServeConfig(models=references, home=str(home) if home else None,
                         auth=not no_auth, poll_interval=poll_interval,
                         log_requests=not no_log, threads=threads,
                         max_body_bytes=max_body_bytes, max_windows=max_windows,
                         max_json_depth=max_json_depth, max_in_flight=max_in_flight,
                         metrics_open=metrics_open,
                         extensions=["amml.dashboard"] if ui else [])
    err.print(f"serving {', '.join(references)} on http://{host}:{port} "
              f"({workers} worker{'s' if workers != 1 else ''}"
              f"{', no auth' if no_auth else ''}); docs at /docs", highlight=False)
    run_server(config, host=host, port=port, workers=workers, log_level=log_level,
               access_log=access_log)
