"""Secrets never leak: not from a workflow's URL, a url_env, the store URL or a failing step.

Against the real servers (PostgreSQL, Redis, Mosquitto, InfluxDB) where a connection is made.
Every check looks for the whole secret, decoded and percent-encoded, in everything a user or
the metadata store can see: messages, ``amml validate``/``export``/``show`` output and the
``runs.error`` / ``steps.error`` columns.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from amml import (
    ConfigurationError,
    OpError,
    StepContext,
    StoreError,
    Workflow,
    WorkflowValidationError,
    compile_workflow,
    op,
    ops,
    run_workflow,
)
from amml.cli.main import app
from amml.ops.sources.influx import InfluxSource
from amml.ops.sources.mqtt import MqttSource
from amml.ops.sources.redis import RedisSource
from amml.ops.sources.sql import SqlSource
from amml.store import open_store
from amml.store.metadata import MetadataStore

SECRET = "S3cr/et@:Pw%2F"  # '/', '@', ':' and a percent-escape, all at once


def _hidden(secret: str, *texts: str | None) -> bool:
    """No text holds the secret, as written or percent-encoded either way."""
    forms = {secret, quote(secret, safe=""), quote(secret)}
    return not any(form in (t or "") for t in texts for form in forms)


def _cli(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env=env)


def _stored_errors(home: Path) -> list[str]:
    with sqlite3.connect(home / "amml.db") as conn:
        rows = conn.execute("SELECT error FROM runs UNION ALL SELECT error FROM steps")
        return [row[0] for row in rows if row[0]]


def _yaml(tmp_path: Path, op_name: str, url: str) -> Path:
    path = tmp_path / "wf.yaml"
    # single-quoted YAML: only a quote needs escaping, every other character is itself
    url = url.replace("'", "''")
    path.write_text(f"name: leak\nsteps:\n  readings:\n    op: {op_name}\n"
                    f"    with: {{url: '{url}', database: d, measurement: m, fields: [x], "
                    "all_time: true}\n"
                    if op_name == "source.influxdb" else
                    f"name: leak\nsteps:\n  readings:\n    op: {op_name}\n"
                    f"    with: {{url: '{url}', table: t, time: ts}}\n")
    return path


# -- the rule: a workflow's url carries no credentials, and saying so shows none -----------

QUERY_CREDENTIALS = [
    ("source.sql", f"postgresql+psycopg://postgres@127.0.0.1:5432/test?password={SECRET}"),
    ("source.sql", "postgresql+psycopg://postgres@127.0.0.1:5432/test?sslmode=disable"
                   f"&sslpassword={quote(SECRET, safe='')}"),
    ("source.sql", f"mysql+pymysql://root@127.0.0.1:3306/test?passwd={SECRET}"),
    ("source.influxdb", f"http://127.0.0.1:8086/?u=admin&p={quote(SECRET, safe='')}"),
    ("source.influxdb", f"http://127.0.0.1:8086/?token={SECRET}"),
]


@pytest.mark.parametrize(("op_name", "url"), QUERY_CREDENTIALS)
def test_query_string_password_is_refused_without_echoing_it(tmp_path: Path, op_name: str,
                                                             url: str) -> None:
    workflow = _yaml(tmp_path, op_name, url)
    for command in ("validate", "export"):
        result = _cli(command, str(workflow))
        assert result.exit_code == 2, result.output
        assert "url_env" in result.output and "credentials" in result.output
        assert _hidden(SECRET, result.output), result.output
    ran = _cli("run", str(workflow))
    assert ran.exit_code == 2 and _hidden(SECRET, ran.output)
    assert not (tmp_path / ".amml" / "amml.db").exists()  # nothing stored, secret or not


def test_password_with_slash_is_refused_and_redacted(tmp_path: Path, pg_url: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # in the workflow: refused, and the refusal does not quote it
    inline = pg_url.replace("postgres@", f"postgres:{SECRET}@")
    for command in ("validate", "export"):
        result = _cli(command, str(_yaml(tmp_path, "source.sql", inline)))
        assert result.exit_code == 2 and "url_env" in result.output, result.output
        assert _hidden(SECRET, result.output), result.output
    with pytest.raises(ValidationError) as refused:
        SqlSource(url=inline, table="t", time="ts")
    assert _hidden(SECRET, str(refused.value))

    # from the environment: the real PostgreSQL (trust auth) is read, the password never shown
    table = f"readings_{uuid.uuid4().hex[:8]}"
    frame = pd.DataFrame({"v": [1.0, 2.0, 3.0]},
                         index=pd.date_range("2024-01-01", periods=3, freq="h", name="ts"))
    engine = create_engine(pg_url)
    frame.to_sql(table, engine)
    try:
        monkeypatch.setenv("DB_URL", inline)
        result = SqlSource(url_env="DB_URL", table=table, time="ts").run(StepContext())
        assert result["out"]["v"].tolist() == [1.0, 2.0, 3.0]
        assert _hidden(SECRET, repr(result["report"]))
        # unreachable: an OpError naming host and port, never a raw ValueError, never the secret
        monkeypatch.setenv("DB_URL", inline.replace(":5432/", ":1/"))
        with pytest.raises(OpError) as failed:
            SqlSource(url_env="DB_URL", table=table, time="ts").run(StepContext())
        assert "127.0.0.1:1" in str(failed.value) and _hidden(SECRET, str(failed.value))
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE {table}"))
        engine.dispose()


def test_redis_password_with_slash_is_never_shown(redis_url: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # the real Redis has no password: the AUTH is refused, by host and port, secret unsaid
    monkeypatch.setenv("REDIS_URL", redis_url.replace("redis://", f"redis://:{SECRET}@"))
    with pytest.raises(OpError) as failed:
        RedisSource(url_env="REDIS_URL", key="k").run(StepContext())
    assert "127.0.0.1:6379" in str(failed.value) and _hidden(SECRET, str(failed.value))


def test_mqtt_password_with_slash_reaches_the_broker(mqtt_url: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # the real Mosquitto accepts any credentials: the URL is read whole, the secret unsaid
    monkeypatch.setenv("MQTT_URL", mqtt_url.replace("mqtt://", f"mqtt://amml:{SECRET}@"))
    topic = f"amml-test/{uuid.uuid4().hex[:12]}/quiet"
    with pytest.raises(OpError, match=f"127.0.0.1:1883: no messages on {topic}") as failed:
        MqttSource(url_env="MQTT_URL", topics=[topic], duration_s=0.3).run(StepContext())
    assert _hidden(SECRET, str(failed.value))


def test_influx_query_credentials_from_the_environment_are_used_not_shown(
        influx_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFLUX_URL", f"{influx_url}/?u=amml&p={quote(SECRET, safe='')}")
    with pytest.raises(OpError) as failed:  # the real server: no such database
        InfluxSource(url_env="INFLUX_URL", database=f"nodb_{uuid.uuid4().hex[:6]}",
                     measurement="m", fields=["x"], all_time=True).run(StepContext())
    assert "127.0.0.1:8086" in str(failed.value) and _hidden(SECRET, str(failed.value))


# -- url_env naming a variable that is not a URL --------------------------------------------

SOURCES = {
    "source.sql": {"table": "t", "time": "ts"},
    "source.influxdb": {"database": "d", "measurement": "m", "fields": ["x"],
                        "all_time": True},
    "source.redis": {"key": "k"},
    "source.mqtt": {"topics": ["amml-test/x"], "duration_s": 0.2},
}


@pytest.mark.parametrize("op_name", sorted(SOURCES))
def test_url_env_non_url_value_is_not_printed_or_stored(tmp_path: Path, op_name: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WRONG_VARIABLE", SECRET)  # a bare password, named by mistake
    with Workflow("wrong-variable") as wf:
        make = getattr(ops.source, op_name.split(".")[1])
        make(url_env="WRONG_VARIABLE", name="readings", **SOURCES[op_name])
    result = run_workflow(wf, raise_on_failure=False)
    outcome = result.steps["readings"]
    assert result.status == "failed"
    assert "WRONG_VARIABLE" in outcome.error and "does not hold a URL" in outcome.error
    home = tmp_path / ".amml"
    shown = _cli("show", result.run_id).output + _cli("runs").output
    assert _hidden(SECRET, outcome.error, outcome.traceback, shown, *_stored_errors(home))


# -- the store URL ---------------------------------------------------------------------------

def test_store_url_password_is_redacted_in_every_message(tmp_path: Path, pg_url: str) -> None:
    unreachable = [
        f"postgresql+psycopg://postgres@127.0.0.1:1/test?password={SECRET}",
        f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:1/test",
        f"postgresql+psycopg://postgres:{quote(SECRET, safe='')}@127.0.0.1:1/test"
        "?sslmode=disable&sslpassword=x" + quote(SECRET, safe=""),
    ]
    for url in unreachable:
        with pytest.raises((StoreError, ConfigurationError)) as failed:
            MetadataStore(url, migrate=True)
        # the first: an unescaped '@' in a query value, which SQLAlchemy cannot read at all
        assert _hidden(SECRET, str(failed.value)) and _hidden("Pw%2F", str(failed.value))
        shown = _cli("runs", env={"AMML_STORE_URL": url})
        assert shown.exit_code != 0 and _hidden(SECRET, shown.output), shown.output
    # the real server, trust auth: the password is ignored, never displayed
    store = MetadataStore(f"{pg_url}?password={quote(SECRET, safe='')}", migrate=True)
    try:
        assert "password=***" in store.display_url and _hidden(SECRET, store.display_url)
    finally:
        store.engine.dispose()


# -- errors recorded by the runner ----------------------------------------------------------

@op(name="secrets_test.leaky")
def leaky() -> pd.DataFrame:
    """Fails the way a driver does: quoting the URL it was given, credentials and all."""
    url = os.environ["LEAKY_URL"]
    raise ConnectionError(f"could not connect to {url}: connection refused "
                          f"(dsn: host=db password={os.environ['LEAKY_PASSWORD']})")


def _run_leaky(home: Path, password: str) -> tuple[object, list[str], str]:
    os.environ["LEAKY_URL"] = (f"postgresql://amml:{password}@db:5432/x"
                               f"?sslmode=require&token={quote(password, safe='')}")
    os.environ["LEAKY_PASSWORD"] = quote(password, safe="")
    try:
        with Workflow("leaky") as wf:
            leaky(name="extract")
        store = open_store(home)
        try:
            result = run_workflow(wf, store=store, raise_on_failure=False)
        finally:
            store.close()
    finally:
        del os.environ["LEAKY_URL"], os.environ["LEAKY_PASSWORD"]
    shown = _cli("show", result.run_id, env={"AMML_HOME": str(home)}).output
    return result, _stored_errors(home), shown


def test_stored_run_errors_are_redacted(tmp_path: Path) -> None:
    result, stored, shown = _run_leaky(tmp_path / ".amml", SECRET)
    outcome = result.steps["extract"]
    assert result.status == "failed" and "connection refused" in outcome.error
    assert "amml:***@db:5432" in outcome.error and any("db:5432" in e for e in stored)
    assert _hidden(SECRET, outcome.error, outcome.traceback, shown, *stored)


# -- property: any password, any form, never shown ------------------------------------------

_NO_SPACE = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp"))
PASSWORDS = st.text(_NO_SPACE, min_size=1, max_size=24).filter(
    lambda s: not any(c.isspace() for c in s)).map(lambda s: f"Zq{s}Xq")


def _forms(password: str) -> list[str]:
    encoded = quote(password, safe="")
    return [
        f"postgresql+psycopg://amml:{password}@127.0.0.1:5432/test",
        f"postgresql+psycopg://amml:{encoded}@127.0.0.1:5432/test",
        f"postgresql+psycopg://amml@127.0.0.1:5432/test?sslmode=require&password={encoded}",
        f"http://127.0.0.1:8086/?u=amml&p={encoded}",
        f"redis://:{password}@127.0.0.1:5432/0",
        f"mqtt://amml:{password}@127.0.0.1:5432",
    ]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PASSWORDS)
def test_no_password_appears_in_any_message(password: str) -> None:
    from urllib.parse import unquote

    from amml._urls import parse_url, redact
    from amml.ops.sources.connections import host_port

    for url in _forms(password):
        parsed = parse_url(url)
        assert password in parsed.secrets or unquote(password) in parsed.secrets
        assert host_port(url) == "127.0.0.1:5432" or url.startswith("http:")
        for quoted in (url, f"'{url}'", f'"{url}"', f"({url})"):
            assert _hidden(password, redact(f"failed: {quoted}: refused"))
        assert _hidden(password, redact(f"dsn: host=db password={password} port=5"))
        with pytest.raises(ValidationError) as refused:
            SqlSource(url=url, table="t", time="ts")
        assert _hidden(password, str(refused.value))
        with Workflow("secret") as wf:
            ops.source.sql(url=url, table="t", time="ts")
        with pytest.raises(WorkflowValidationError) as invalid:
            compile_workflow(wf)
        assert "url_env" in str(invalid.value) and _hidden(password, str(invalid.value))


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(PASSWORDS)
def test_no_password_appears_in_stored_errors_or_show(tmp_path: Path, password: str) -> None:
    home = tmp_path / uuid.uuid4().hex[:8]
    result, stored, shown = _run_leaky(home, password)
    outcome = result.steps["extract"]  # type: ignore[attr-defined]
    assert _hidden(password, outcome.error, outcome.traceback, shown, *stored)
