"""``amml keys``: API keys for ``amml serve`` (create, list, revoke)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer
from rich.table import Table

from amml.cli._options import HomeOption, JsonOption

app = typer.Typer(name="keys", no_args_is_help=True,
                  help="API keys for the model server: created once, stored hashed.")


def attach(main: typer.Typer) -> None:
    main.add_typer(app, name="keys")


def _stamp(when: float | None) -> str:
    return "" if when is None else dt.datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M")


@app.command()
def create(
    scope: Annotated[str, typer.Option(
        help="read (list models), predict (also forecast and detect) or admin.")] = "predict",
    model: Annotated[list[str] | None, typer.Option(
        "--model", "-m", help="Only this model (repeatable); default: every model.")] = None,
    label: Annotated[str, typer.Option(help="What the key is for.")] = "",
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Create a key and print it once: only its hash is stored. Each --model must be a
    registered model (a typo would make a key that opens nothing)."""
    from amml.cli.main import _fail, _open_store, err, out
    from amml.registry import ModelRegistry
    from amml.serve.auth import ApiKeyError, create_key

    store = _open_store(home)
    try:
        if model:
            known = ModelRegistry(store).names()
            unknown = [m for m in dict.fromkeys(model) if m not in known]
            if unknown:
                listed = ", ".join(known) if known else "none registered yet"
                raise _fail(f"no model named {', '.join(map(repr, unknown))} (models: "
                            f"{listed})", 1)
        key, token = create_key(store, scope=scope, models=model, label=label)
    except ApiKeyError as exc:
        raise _fail(str(exc), 2) from None
    finally:
        store.close()
    if json_output:
        out.print_json(json.dumps({**key.to_json(), "key": token}))
        return
    typer.echo(token)
    err.print(f"key id {key.key_id}, scope {key.scope}, models "
              f"{'*' if key.models is None else ', '.join(key.models)}: this is the only time "
              "the key is shown", highlight=False)


@app.command("list")
def list_(
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """List keys (ids, scopes, models; never the secrets)."""
    from amml.cli.main import _open_store, out
    from amml.serve.auth import list_keys

    store = _open_store(home, read_only=True)
    try:
        keys = list_keys(store, include_revoked=all_keys)
    finally:
        store.close()
    if json_output:
        out.print_json(json.dumps([k.to_json() for k in keys]))
        return
    table = Table()
    for column in ("key id", "scope", "models", "label", "created", "revoked"):
        table.add_column(column)
    for k in keys:
        table.add_row(k.key_id, k.scope, "*" if k.models is None else ", ".join(k.models),
                      k.label, _stamp(k.created_at), _stamp(k.revoked_at))
    out.print(table)


@app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (or a unique prefix).")],
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Revoke a key: servers refuse it within a few seconds."""
    from amml.cli.main import _fail, _open_store, out
    from amml.serve.auth import ApiKeyError, revoke_key

    store = _open_store(home)
    try:
        key = revoke_key(store, key_id)
    except ApiKeyError as exc:
        raise _fail(str(exc), 1) from None
    finally:
        store.close()
    if json_output:
        out.print_json(json.dumps(key.to_json()))
    else:
        out.print(f"revoked key {key.key_id}")
