"""The sources example end to end against the real servers: the same series read from
PostgreSQL, MariaDB, Redis, InfluxDB, a log file and MQTT gives identical tables."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest

from amml import compile_workflow, run_workflow
from amml.store import open_store
from tests.conftest import require_server

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sources"


@pytest.fixture
def servers() -> None:
    for name, port in (("PostgreSQL", 5432), ("MariaDB", 3306), ("Redis", 6379),
                       ("InfluxDB", 8086), ("Mosquitto", 1883)):
        require_server(name, "127.0.0.1", port)


def test_every_source_gives_the_same_table(servers, tmp_path: Path) -> None:
    sys.path.insert(0, str(EXAMPLE))
    import fixtures

    suffix = uuid.uuid4().hex[:8]
    names = {"table": f"sensors_{suffix}", "redis_key": f"amml:sensors:{suffix}",
             "influx_db": f"amml_sensors_{suffix}"}
    frame = fixtures.sensor_series()
    log_path = tmp_path / "sensors.jsonl"
    fixtures.load_all(frame, names, log_path)
    params = {**names, "log_path": str(log_path), "topic": f"amml/test/{suffix}",
              "rows": len(frame)}
    try:
        workflow = compile_workflow(EXAMPLE / "workflow.yaml", params)
        with fixtures.Publisher(params["topic"], frame):
            result = run_workflow(workflow, store=open_store(tmp_path / "store"))
    finally:
        fixtures.drop_all(names)
    tables = {name: result[name] for name in result.steps if name.endswith("_ready")}
    assert len(tables) == 6
    expected = frame.copy()
    expected.index = expected.index.as_unit("ns")
    for name, table in tables.items():
        pd.testing.assert_frame_equal(table.rename_axis("time"), expected, check_freq=False,
                                      check_exact=True, obj=name)
