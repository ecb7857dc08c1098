"""Credentials against servers that check them (``tests/auth_servers.py``).

For every source that takes credentials, and for the metadata store: the right password
from the environment reads the data; a wrong one is a real refusal by the server, reported
as an error that names the server and says the credentials were refused, and never shows
either password. Against the machine's shared servers (trust auth, no passwords) these
refusals could not happen, so the earlier redaction tests never met one.
"""

from __future__ import annotations

import threading
import time
import uuid

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from amml import OpError, StoreError
from amml.ops.base import StepContext
from amml.ops.sources.influx import InfluxSource
from amml.ops.sources.mqtt import MqttSource
from amml.ops.sources.redis.op import RedisSource
from amml.ops.sources.sql import SqlSource
from amml.store import open_store
from tests.auth_servers import PASSWORD, USER, WRONG, AuthServer, influx_write


def _shows_no_password(*texts: str) -> None:
    for shown in texts:
        for secret in (PASSWORD, WRONG):
            assert secret not in shown, f"a password appears in: {shown}"
            assert secret.split("/")[0] not in shown, shown  # nor a recognisable part


def _refused(error: BaseException, server: AuthServer) -> str:
    message = str(error)
    _shows_no_password(message, repr(error))
    assert server.address in message, message
    return message.lower()


# -- SQL: PostgreSQL (scram-sha-256) and MariaDB ------------------------------------------

@pytest.mark.parametrize("server_name", ["postgres_auth", "mariadb_auth"])
def test_sql_source_reads_with_the_right_password_and_reports_a_wrong_one(
        server_name: str, request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server: AuthServer = request.getfixturevalue(server_name)
    table = f"readings_{uuid.uuid4().hex[:8]}"
    frame = pd.DataFrame({"v": [1.0, 2.0, 3.0]},
                         index=pd.date_range("2024-01-01", periods=3, freq="h", name="ts"))
    engine = create_engine(server.right_url)
    frame.to_sql(table, engine)
    try:
        monkeypatch.setenv("DB_URL", server.right_url)
        result = SqlSource(url_env="DB_URL", table=table, time="ts").run(StepContext())
        assert result["out"]["v"].tolist() == [1.0, 2.0, 3.0]
        _shows_no_password(repr(result["report"]))

        monkeypatch.setenv("DB_URL", server.wrong_url)
        with pytest.raises(OpError) as failed:
            SqlSource(url_env="DB_URL", table=table, time="ts").run(StepContext())
        message = _refused(failed.value, server)
        assert "password" in message or "access denied" in message or "auth" in message
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE {table}"))
        engine.dispose()


def test_metadata_store_on_a_password_protected_postgresql(postgres_auth: AuthServer,
                                                           tmp_path) -> None:
    with open_store(tmp_path / "home", url=postgres_auth.right_url) as store:
        assert store.metadata.current_revision() is not None
    with pytest.raises(StoreError) as failed:
        open_store(tmp_path / "home", url=postgres_auth.wrong_url)
    _refused(failed.value, postgres_auth)


# -- Redis (requirepass) ---------------------------------------------------------------------

def test_redis_source_reads_with_the_right_password_and_reports_a_wrong_one(
        redis_auth: AuthServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import redis

    key = f"amml-auth-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_auth.right_url)
    stamps = pd.date_range("2024-01-01", periods=3, freq="h")
    for stamp, value in zip(stamps, (1.0, 2.0, 3.0), strict=True):
        client.xadd(key, {"v": value}, id=f"{stamp.value // 10**6}-0")
    try:
        monkeypatch.setenv("REDIS_URL", redis_auth.right_url)
        result = RedisSource(url_env="REDIS_URL", key=key).run(StepContext())
        assert result["out"]["v"].tolist() == [1.0, 2.0, 3.0]

        monkeypatch.setenv("REDIS_URL", redis_auth.wrong_url)
        with pytest.raises(OpError) as failed:
            RedisSource(url_env="REDIS_URL", key=key).run(StepContext())
        message = _refused(failed.value, redis_auth)
        assert "credentials" in message or "password" in message
    finally:
        client.delete(key)
        client.close()


# -- MQTT (password file, no anonymous clients) ---------------------------------------------

def test_mqtt_source_reads_with_the_right_password_and_reports_a_wrong_one(
        mqtt_auth: AuthServer, monkeypatch: pytest.MonkeyPatch) -> None:
    import paho.mqtt.client as paho

    topic = f"amml-auth/{uuid.uuid4().hex[:8]}"
    publisher = paho.Client(paho.CallbackAPIVersion.VERSION2)
    publisher.username_pw_set(USER, PASSWORD)
    publisher.connect("127.0.0.1", mqtt_auth.port)
    publisher.loop_start()

    def publish() -> None:
        time.sleep(0.3)
        for value in (1.0, 2.0, 3.0):
            publisher.publish(topic, f'{{"v": {value}}}', qos=1).wait_for_publish(5)

    try:
        monkeypatch.setenv("MQTT_URL", mqtt_auth.right_url)
        thread = threading.Thread(target=publish, daemon=True)
        thread.start()
        result = MqttSource(url_env="MQTT_URL", topics=[topic], max_messages=3,
                            duration_s=10).run(StepContext())
        thread.join()
        assert result["out"]["v"].tolist() == [1.0, 2.0, 3.0]

        monkeypatch.setenv("MQTT_URL", mqtt_auth.wrong_url)
        with pytest.raises(OpError) as failed:
            MqttSource(url_env="MQTT_URL", topics=[topic], duration_s=1).run(StepContext())
        message = _refused(failed.value, mqtt_auth)
        assert "not authori" in message or "bad user name or password" in message
    finally:
        publisher.loop_stop()
        publisher.disconnect()


# -- InfluxDB 1.x (auth-enabled) -------------------------------------------------------------

def test_influx_source_reads_with_the_right_password_and_reports_a_wrong_one(
        influx_auth: AuthServer, monkeypatch: pytest.MonkeyPatch) -> None:
    database = f"amml_auth_{uuid.uuid4().hex[:6]}"
    start = int(pd.Timestamp("2024-01-01", tz="UTC").timestamp())
    influx_write(influx_auth, database,
                 "\n".join(f"m v={v} {start + 3600 * i}" for i, v in enumerate((1.0, 2.0, 3.0))))
    monkeypatch.setenv("INFLUX_URL", influx_auth.right_url)
    result = InfluxSource(url_env="INFLUX_URL", database=database, measurement="m",
                          fields=["v"], all_time=True).run(StepContext())
    assert result["out"]["v"].tolist() == [1.0, 2.0, 3.0]

    monkeypatch.setenv("INFLUX_URL", influx_auth.wrong_url)
    with pytest.raises(OpError) as failed:
        InfluxSource(url_env="INFLUX_URL", database=database, measurement="m", fields=["v"],
                     all_time=True).run(StepContext())
    message = _refused(failed.value, influx_auth)
    assert "401" in message or "authori" in message or "credentials" in message
