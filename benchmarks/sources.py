"""Source throughput: PostgreSQL extraction and access-log parsing.

1. PostgreSQL: a table of ``--rows`` rows (timestamp + 3 float columns) is loaded into the
   real server, then read by ``source.sql`` and by ``pandas.read_sql`` (the peer) on the same
   table in the same run; rows/s of each and the ratio.
2. Access logs: a synthetic combined-format log of ``--log-mb`` MB parsed and aggregated per
   minute by ``source.logs``, beside a plain per-line ``re.match`` parser (the peer).

    python benchmarks/sources.py [--rows 1000000] [--log-mb 50]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, text

from amml.ops.base import StepContext
from amml.ops.sources.sql import SqlSource

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _load(engine, name: str, rows: int) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "ts": pd.date_range("2020-01-01", periods=rows, freq="s"),
        "temperature": rng.normal(60, 5, rows), "vibration": rng.normal(2, 0.3, rows),
        "load": rng.normal(50, 10, rows)})
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=False)
    buffer.seek(0)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {name} (ts timestamp PRIMARY KEY, temperature "
                          "double precision, vibration double precision, load double "
                          "precision)"))
        cursor = conn.connection.dbapi_connection.cursor()
        with cursor.copy(f"COPY {name} FROM STDIN (FORMAT csv)") as copy:
            copy.write(buffer.getvalue())


def bench_postgres(rows: int, repeats: int) -> dict[str, float]:
    engine = create_engine(PG_URL)
    name = f"amml_bench_{uuid.uuid4().hex[:8]}"
    _load(engine, name, rows)
    try:
        amml_s, pandas_s = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            out = SqlSource(url=PG_URL, table=name, time="ts", incremental=False,
                            columns=["temperature", "vibration", "load"]).run(StepContext())
            amml_s.append(time.perf_counter() - started)
            assert len(out["out"]) == rows
            started = time.perf_counter()
            peer = pd.read_sql(f"SELECT ts, temperature, vibration, load FROM {name} "
                               "ORDER BY ts", engine, index_col="ts")
            pandas_s.append(time.perf_counter() - started)
            assert len(peer) == rows
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE {name}"))
        engine.dispose()
    return {"amml_rows_s": rows / statistics.median(amml_s),
            "pandas_rows_s": rows / statistics.median(pandas_s)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--log-mb", type=float, default=50.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    pg = bench_postgres(args.rows, args.repeats)
    ratio = pg["amml_rows_s"] / pg["pandas_rows_s"]
    print(f"sources postgres rows={args.rows} amml_rows_s={pg['amml_rows_s']:.0f} "
          f"pandas_read_sql_rows_s={pg['pandas_rows_s']:.0f} ratio={ratio:.2f}")

    sys.path.insert(0, str(Path(__file__).parent))
    try:
        import _log_bench
    except ImportError:
        _log_bench = None
    if _log_bench is not None:
        with tempfile.TemporaryDirectory() as tmp:
            logs = _log_bench.run(args.log_mb, tmp)
        log_ratio = logs["amml_mb_s"] / logs["baseline_mb_s"]
        print(f"sources logs mb={logs['megabytes']:.1f} lines={logs['lines']:.0f} "
              f"amml_mb_s={logs['amml_mb_s']:.1f} baseline_mb_s={logs['baseline_mb_s']:.1f} "
              f"ratio={log_ratio:.2f}")
    print()
    print(f"PostgreSQL extraction, {args.rows:,} rows x 3 columns:")
    print(f"  AMML source.sql (COPY + Arrow)  {pg['amml_rows_s']:>12,.0f} rows/s")
    print(f"  pandas.read_sql (peer)          {pg['pandas_rows_s']:>12,.0f} rows/s")
    print(f"  ratio AMML / pandas             {ratio:>12.2f}x")
    if _log_bench is not None:
        print(f"Access-log parsing + per-minute aggregation, {logs['megabytes']:.0f} MB:")
        print(f"  AMML source.logs                {logs['amml_mb_s']:>12.1f} MB/s")
        print(f"  per-line re.match parser (peer) {logs['baseline_mb_s']:>12.1f} MB/s")
        print(f"  ratio AMML / peer               {log_ratio:>12.2f}x")


if __name__ == "__main__":
    main()
