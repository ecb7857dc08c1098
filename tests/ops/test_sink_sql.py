"""``sink.sql`` against the real PostgreSQL and MariaDB: tables past the parameter limit, and
errors that never carry the statement (and its data) they failed on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from amml import OpError, StepContext
from amml.ops.sinks.sql import MESSAGE_CHARS, SqlSink
from amml.ops.sources.sql import SqlSource

#: 20,000 rows of 8 columns (7 values and the time) = 160,000 parameters in one INSERT: more
#: than the 65,535 PostgreSQL and MariaDB accept
ROWS, VALUES = 20_000, 7


def _big_frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    index = pd.date_range("2016-07-01", periods=ROWS, freq="h", name="date").as_unit("ns")
    frame = pd.DataFrame(rng.normal(size=(ROWS, VALUES)), index=index,
                         columns=["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"])
    frame.iloc[5, 2] = np.nan  # a missing value travels as NULL and comes back as NaN
    return frame


@pytest.fixture(params=["postgresql", "mariadb"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(url, fresh table name) on each real server; the table is dropped afterwards."""
    url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "mariadb_url")
    name = f"sink_{uuid.uuid4().hex[:8]}"
    yield url, name
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
    engine.dispose()


def test_sink_sql_writes_more_rows_than_the_parameter_limit_to_postgres(server) -> None:
    # (and to MariaDB: chunked under its limit) -- read back with source.sql, identical
    url, name = server
    frame = _big_frame()
    report = SqlSink(url=url, table=name).run(StepContext(), frame)["report"]
    assert report["rows"] == ROWS
    back = SqlSource(url=url, table=name, time="date", columns=list(frame.columns),
                     on_bad_rows="quarantine").run(StepContext())["out"]
    back.index.name = "date"
    pd.testing.assert_frame_equal(back, frame, check_freq=False)

    # append goes through the same path and adds the rows
    SqlSink(url=url, table=name, if_exists="append").run(
        StepContext(), frame.set_axis(frame.index + pd.Timedelta(days=10_000)))
    with create_engine(url).connect() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {name}")).scalar() == 2 * ROWS


def test_sink_sql_error_is_cut_to_size(server) -> None:
    url, name = server
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {name} (date TIMESTAMP, value INTEGER)"))
    engine.dispose()
    secret_cell = "x" * 200_000  # a value the database quotes back in its message
    rows = 3
    frame = pd.DataFrame({"value": [secret_cell] * rows},
                         index=pd.date_range("2024-01-01", periods=rows, freq="h", name="date"))
    with pytest.raises(OpError) as caught:
        SqlSink(url=url, table=name, if_exists="append").run(StepContext(), frame)
    message = str(caught.value)
    assert message.startswith(f"sink.sql: writing {name} at 127.0.0.1:")
    assert len(message) < MESSAGE_CHARS + 200, message[:500]
    assert "\n" not in message and "INSERT" not in message and "COPY" not in message
