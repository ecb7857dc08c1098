"""``amml ui``: the web dashboard (runs, compare, run detail, lineage, models, serving,
ledger, anomalies, drift, fleet) over the store, signing in with API keys."""

from __future__ import annotations

from typing import Annotated

import typer

from amml.cli._options import HomeOption


def attach(main: typer.Typer) -> None:
    main.command("ui")(ui)


def ui(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    no_auth: Annotated[bool, typer.Option(
        "--no-auth", help="No sign-in (local use only: anyone who can reach the port can "
        "read the store and move aliases).")] = False,
    server_url: Annotated[str | None, typer.Option(
        "--server-url", envvar="AMML_UI_SERVER_URL",
        help="A model server whose /metrics the Serving page shows (http://HOST:PORT).")
    ] = None,
    server_key: Annotated[str | None, typer.Option(
        "--server-key", envvar="AMML_UI_SERVER_KEY",
        help="A 'read' API key for that server's /metrics.")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    home: HomeOption = None,
) -> None:
    """Serve the dashboard at http://HOST:PORT/ui. Sign in with an API key
    ('amml keys create --scope read'; promoting and moving aliases need 'admin')."""
    from amml.cli.main import _fail, _open_store, err

    try:
        import uvicorn

        from amml.dashboard import create_app
    except ImportError as exc:
        raise _fail(f"the dashboard needs the 'ui' and 'serve' extras "
                    f"(pip install 'amml[ui,serve]'): {exc}", 2) from None
    store = _open_store(home)
    try:
        app = create_app(store, auth=not no_auth, server_url=server_url,
                         server_key=server_key)
        err.print(f"dashboard on http://{host}:{port}/ui"
                  f"{' (no sign-in)' if no_auth else ' (sign in with an API key)'}",
                  highlight=False)
        uvicorn.run(app, host=host, port=port, log_level=log_level, server_header=False)
    finally:
        store.close()
