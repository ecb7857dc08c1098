"""Metric tracking throughput: 2,000 points logged one call at a time, then in one batch,
then read back, on the default SQLite store (or ``--store-url``).

"One call at a time" is timed until the points are committed, in three modes:

* ``queued`` (the default ``log_metric``): each call is queued and committed in groups;
  ``flush()`` is inside the timing. It does less work than MLflow, so it is printed, not judged;
* ``sync``: ``synchronous=True`` commits every call before returning (SQLite WAL with
  ``synchronous=NORMAL``, AMML's setting: durable against a crash of the process);
* ``sync+fsync``: the same with ``PRAGMA synchronous=FULL`` (every commit is fsynced, as
  SQLite does by default and as MLflow's SQLite backend runs): the like-for-like mode, on
  which the goal is judged.

The MLflow 3.17 figures are *cited*: measured on this kind of machine with MLflow's SQLite
backend by the session that filed the tracking issue (``mlflow.log_metric`` in a loop, and
``log_batch``); MLflow is not installed here. Ratios are AMML / MLflow.

    python benchmarks/tracking.py [--points 2000] [--store-url URL]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from amml import Client

MLFLOW_ONE_AT_A_TIME = 432.0  # points/s, cited
MLFLOW_BATCHED = 18_988.0  # points/s, cited
GOAL_ONE_AT_A_TIME = 50 * MLFLOW_ONE_AT_A_TIME
GOAL_BATCHED = 5 * MLFLOW_BATCHED


def _fsync_every_commit(client: Client) -> None:
    """``PRAGMA synchronous=FULL`` on every new connection (after AMML's own settings)."""
    from sqlalchemy import event

    engine = client.store.metadata.engine

    @event.listens_for(engine, "connect")
    def _full(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    engine.dispose()  # connections made before the listener are not reused


def measure_synchronous(client: Client, points: int) -> float:
    run = client.start_run("tracking-synchronous", synchronous=True)
    started = time.perf_counter()
    for i in range(points):
        run.log_metric("loss", 1.0 / (i + 1), step=i)
    rate = points / (time.perf_counter() - started)
    run.end()
    return rate


def measure(client: Client, points: int) -> dict[str, float]:
    results: dict[str, float] = {}

    run = client.start_run("tracking-one-at-a-time")
    started = time.perf_counter()
    for i in range(points):
        run.log_metric("loss", 1.0 / (i + 1), step=i)
    run.flush()
    results["one_at_a_time"] = points / (time.perf_counter() - started)
    run.end()

    results["one_at_a_time_synchronous"] = measure_synchronous(client, points)

    run = client.start_run("tracking-batch")
    batch = [("loss", 1.0 / (i + 1), i) for i in range(points)]
    started = time.perf_counter()
    run.log_batch(batch)
    results["batched"] = points / (time.perf_counter() - started)
    run.end()

    started = time.perf_counter()
    read = client.metrics(run.id)
    results["read_back"] = len(read) / (time.perf_counter() - started)
    assert len(read) == points and read[-1]["step"] == points - 1
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--store-url", default=None)
    args = parser.parse_args()

    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as home:
        client = Client(Path(home), url=args.store_url)
        for _ in range(args.repeats):
            for key, value in measure(client, args.points).items():
                samples.setdefault(key, []).append(value)
        backend = client.store.metadata.dialect
        if backend == "sqlite":
            _fsync_every_commit(client)
            for _ in range(args.repeats):
                samples.setdefault("one_at_a_time_fsync", []).append(
                    measure_synchronous(client, args.points))
        client.close()
    median = {k: statistics.median(v) for k, v in samples.items()}
    # the like-for-like mode: every call committed (and on SQLite fsynced) before it returns
    judged = median.get("one_at_a_time_fsync", median["one_at_a_time_synchronous"])

    print(f"tracking points={args.points} repeats={args.repeats} store={backend}")
    for key, value in median.items():
        print(f"tracking mode={key} points_per_s={value:.0f}")
    print()
    print(f"{'mode':<34}{'AMML pts/s':>12}{'MLflow pts/s':>14}{'ratio':>8}  peer")
    rows = [("one call at a time, queued", median["one_at_a_time"], MLFLOW_ONE_AT_A_TIME,
             "cited; less work than the peer, not judged"),
            ("one call at a time, sync", median["one_at_a_time_synchronous"],
             MLFLOW_ONE_AT_A_TIME, "cited")]
    if "one_at_a_time_fsync" in median:
        rows.append(("one call at a time, sync+fsync", median["one_at_a_time_fsync"],
                     MLFLOW_ONE_AT_A_TIME, "cited; like for like, judged"))
    rows.append(("one batch", median["batched"], MLFLOW_BATCHED, "cited; judged"))
    for label, amml, peer, note in rows:
        print(f"{label:<34}{amml:>12,.0f}{peer:>14,.0f}{amml / peer:>7.1f}x  {note}")
    print(f"{'read back':<34}{median['read_back']:>12,.0f}{'-':>14}")
    print("(peer: MLflow 3.17 on SQLite, cited: measured on this kind of machine by the session "
          "that filed the tracking issue; not measured in this run)")
    print()
    ok_one = judged >= GOAL_ONE_AT_A_TIME
    ok_batch = median["batched"] >= GOAL_BATCHED
    print(f"tracking judged_mode={'sync+fsync' if 'one_at_a_time_fsync' in median else 'sync'} "
          f"points_per_s={judged:.0f} ratio={judged / MLFLOW_ONE_AT_A_TIME:.1f} peer=cited")
    print(f"goal: one at a time (committed per call) >= {GOAL_ONE_AT_A_TIME:,.0f}/s -> "
          f"{'met' if ok_one else 'NOT met'}; "
          f"batched >= {GOAL_BATCHED:,.0f}/s -> {'met' if ok_batch else 'NOT met'}")


if __name__ == "__main__":
    main()
