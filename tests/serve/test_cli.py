"""``amml keys`` and ``amml serve``'s checks before it starts uvicorn."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from amml.cli.main import app
from amml.serve.auth import KeyCache
from amml.store import open_store


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_keys_create_list_revoke(tmp_path):
    home = str(tmp_path / ".amml")
    with open_store(home) as store:  # a key may name only a model that exists
        from amml.ops.models.forecaster import Forecaster
        from amml.registry import ModelRegistry

        ModelRegistry(store).register("oil", Forecaster("naive", 24, 6))
    created = _invoke("keys", "create", "--scope", "read", "--model", "oil", "--label", "ci",
                      "--json", "--home", home)
    assert created.exit_code == 0, created.output
    info = json.loads(created.stdout)
    assert info["scope"] == "read" and info["models"] == ["oil"]
    token = info["key"]
    with open_store(home) as store:
        assert KeyCache(store).authenticate(token).key_id == info["key_id"]
    plain = _invoke("keys", "create", "--home", home)
    assert plain.exit_code == 0 and plain.stdout.strip().startswith("amml_")
    listed = json.loads(_invoke("keys", "list", "--json", "--home", home).stdout)
    assert {k["key_id"] for k in listed} >= {info["key_id"]}
    assert all("key" not in k and "secret_hash" not in k for k in listed)
    revoked = _invoke("keys", "revoke", info["key_id"], "--home", home)
    assert revoked.exit_code == 0 and info["key_id"] in revoked.stdout
    active = json.loads(_invoke("keys", "list", "--json", "--home", home).stdout)
    assert info["key_id"] not in {k["key_id"] for k in active}
    assert _invoke("keys", "revoke", "nope", "--home", home).exit_code == 1
    assert _invoke("keys", "create", "--scope", "root", "--home", home).exit_code == 2


def test_serve_refuses_unknown_models(tmp_path):
    home = str(tmp_path / ".amml")
    empty = _invoke("serve", "--home", home)
    assert empty.exit_code == 2 and "no models registered" in empty.output
    missing = _invoke("serve", "--model", "oil@champion", "--home", home)
    assert missing.exit_code == 2 and "oil" in missing.output


def test_serve_limit_defaults_match_the_configuration():
    """The CLI writes ServeConfig's limit defaults out (so loading it imports no amml.serve)."""
    from amml.cli import serve as cli
    from amml.serve import ServeConfig

    config = ServeConfig()
    written = (cli.MAX_BODY_BYTES, cli.MAX_WINDOWS, cli.MAX_JSON_DEPTH, cli.MAX_IN_FLIGHT)
    assert written == (config.max_body_bytes, config.max_windows, config.max_json_depth,
                       config.max_in_flight)
