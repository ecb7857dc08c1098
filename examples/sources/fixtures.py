"""Put one sensor series into every kind of source AMML reads, for the sources example.

``load_all`` writes the same generated series to PostgreSQL and MariaDB tables, a Redis
stream, an InfluxDB measurement and a JSON-lines log file; ``Publisher`` sends it over MQTT
again and again (one message per row) while a workflow captures it. Servers are the local
ones (see the README); nothing here needs a password.

Run as a program (``python examples/sources/fixtures.py``) it loads the data, runs the
workflow with the publisher going, prints whether the six tables are identical and cleans up
(``--keep`` leaves the data, ``--load-only`` only loads it).
"""

from __future__ import annotations

import json
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import pandas as pd
from sqlalchemy import create_engine, text

from amml.ops.sources.synthetic import make_sensor_frame

COLUMNS = ["temperature", "vibration", "load"]
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
INFLUX_URL = "http://127.0.0.1:8086"
MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883


def sensor_series(periods: int = 240, seed: int = 11) -> pd.DataFrame:
    frame = make_sensor_frame(periods=periods, seed=seed)[COLUMNS].astype("float64")
    return frame.rename_axis("time")


def _iso(stamp: pd.Timestamp) -> str:
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def load_sql(url: str, table: str, frame: pd.DataFrame) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    frame.rename_axis("ts").to_sql(table, engine, index=True)
    engine.dispose()


def load_redis(key: str, frame: pd.DataFrame) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.delete(key)
    pipe = client.pipeline()
    for stamp, row in frame.iterrows():
        fields = {"time": _iso(stamp), **{c: repr(float(row[c])) for c in COLUMNS}}
        pipe.xadd(key, fields)
    pipe.execute()
    client.close()


def load_influx(database: str, measurement: str, frame: pd.DataFrame) -> None:
    def post(path: str, params: dict[str, str], body: bytes = b"") -> None:
        url = f"{INFLUX_URL}{path}?{urllib.parse.urlencode(params)}"
        urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"),
                               timeout=30).read()

    post("/query", {"q": f'DROP DATABASE "{database}"'})
    post("/query", {"q": f'CREATE DATABASE "{database}"'})
    lines = []
    for stamp, row in frame.iterrows():
        values = ",".join(f"{c}={float(row[c])!r}" for c in COLUMNS)
        lines.append(f"{measurement},site=a {values} {stamp.value}")
    post("/write", {"db": database, "precision": "ns"}, "\n".join(lines).encode())


def write_log(path: Path, frame: pd.DataFrame) -> None:
    with open(path, "w") as handle:
        for stamp, row in frame.iterrows():
            handle.write(json.dumps({"time": _iso(stamp),
                                     **{c: float(row[c]) for c in COLUMNS}}) + "\n")


def load_all(frame: pd.DataFrame, names: dict[str, str], log_path: Path) -> None:
    load_sql(PG_URL, names["table"], frame)
    load_sql(MARIADB_URL, names["table"], frame)
    load_redis(names["redis_key"], frame)
    load_influx(names["influx_db"], "sensors", frame)
    write_log(log_path, frame)


def drop_all(names: dict[str, str]) -> None:
    import redis

    for url in (PG_URL, MARIADB_URL):
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {names['table']}"))
        engine.dispose()
    redis.Redis.from_url(REDIS_URL).delete(names["redis_key"])
    query = urllib.parse.urlencode({"q": f'DROP DATABASE "{names["influx_db"]}"'})
    urllib.request.urlopen(urllib.request.Request(f"{INFLUX_URL}/query?{query}", method="POST"),
                           timeout=30).read()


class Publisher:
    """Publishes the series over MQTT in a loop (QoS 1) until stopped: a capture of N
    consecutive messages then holds every row exactly once."""

    def __init__(self, topic: str, frame: pd.DataFrame) -> None:
        self.topic, self.frame = topic, frame
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import paho.mqtt.client as mqtt

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        client.connect(MQTT_HOST, MQTT_PORT)
        client.loop_start()
        messages = [json.dumps({"time": _iso(stamp), **{c: float(row[c]) for c in COLUMNS}})
                    for stamp, row in self.frame.iterrows()]
        while not self.stop.is_set():
            for message in messages:
                if self.stop.is_set():
                    break
                client.publish(self.topic, message, qos=1).wait_for_publish(timeout=5)
        client.loop_stop()
        client.disconnect()

    def __enter__(self) -> Publisher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def main(argv: list[str] | None = None) -> int:
    """``python examples/sources/fixtures.py``: load the series into every server, run the
    workflow while the MQTT publisher runs, say whether the six tables are equal, clean up.

    The MQTT source captures live messages, so loading alone (``--load-only``) is not enough
    for ``amml run examples/sources/workflow.yaml``: the publisher must run meanwhile.
    """
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--load-only", action="store_true",
                        help="load PostgreSQL, MariaDB, Redis, InfluxDB and the log file, "
                             "then stop (the MQTT capture then waits for a publisher)")
    parser.add_argument("--keep", action="store_true", help="leave the data in the servers")
    args = parser.parse_args(argv)

    from amml import compile_workflow, run_workflow

    folder = Path(__file__).resolve().parent
    workflow_file = folder / "workflow.yaml"
    defaults = compile_workflow(workflow_file).params
    names = {key: str(defaults[key]) for key in ("table", "redis_key", "influx_db")}
    # an absolute path, so the run reads this file from whichever folder it is started
    log_path = folder / str(defaults["log_path"])
    frame = sensor_series(periods=int(defaults["rows"]))
    load_all(frame, names, log_path)
    print(f"loaded {len(frame)} rows into PostgreSQL, MariaDB, Redis, InfluxDB and {log_path}")
    if args.load_only:
        return 0
    try:
        with Publisher(str(defaults["topic"]), frame):
            result = run_workflow(workflow_file, {"log_path": str(log_path)})
    finally:
        if not args.keep:
            drop_all(names)
            log_path.unlink(missing_ok=True)
    tables = [result[name].rename_axis("time") for name in result.steps
              if name.endswith("_ready")]
    same = all(table.equals(tables[0]) for table in tables[1:])
    print(f"run {result.run_id}: {len(tables)} sources, "
          f"{'identical tables' if same else 'tables DIFFER'}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
