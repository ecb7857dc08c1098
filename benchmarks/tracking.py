"""Metric tracking throughput: 2,000 points logged one call at a time, then in one batch,
then read back, on the default SQLite store (or ``--store-url``).

"One call at a time" is timed until the points are committed: the default mode queues each
call and commits in groups (``flush()`` is inside the timing); ``synchronous=True`` commits
every call before returning. The MLflow 3.17 figures are cited from the issue (measured on
this kind of machine with its SQLite backend); ratios are AMML / MLflow.

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


def measure(client: Client, points: int) -> dict[str, float]:
    results: dict[str, float] = {}

    run = client.start_run("tracking-one-at-a-time")
    started = time.perf_counter()
    for i in range(points):
        run.log_metric("loss", 1.0 / (i + 1), step=i)
    run.flush()
    results["one_at_a_time"] = points / (time.perf_counter() - started)
    run.end()

    run = client.start_run("tracking-synchronous", synchronous=True)
    started = time.perf_counter()
    for i in range(points):
        run.log_metric("loss", 1.0 / (i + 1), step=i)
    results["one_at_a_time_synchronous"] = points / (time.perf_counter() - started)
    run.end()

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
        client.close()
    median = {k: statistics.median(v) for k, v in samples.items()}

    print(f"tracking points={args.points} repeats={args.repeats} store={backend}")
    for key, value in median.items():
        print(f"tracking mode={key} points_per_s={value:.0f}")
    print()
    print(f"{'mode':<30}{'AMML pts/s':>14}{'MLflow pts/s':>15}{'ratio':>10}")
    print(f"{'one call at a time':<30}{median['one_at_a_time']:>14,.0f}"
          f"{MLFLOW_ONE_AT_A_TIME:>15,.0f}{median['one_at_a_time'] / MLFLOW_ONE_AT_A_TIME:>9.1f}x")
    print(f"{'one call at a time, sync':<30}{median['one_at_a_time_synchronous']:>14,.0f}"
          f"{MLFLOW_ONE_AT_A_TIME:>15,.0f}"
          f"{median['one_at_a_time_synchronous'] / MLFLOW_ONE_AT_A_TIME:>9.1f}x")
    print(f"{'one batch':<30}{median['batched']:>14,.0f}{MLFLOW_BATCHED:>15,.0f}"
          f"{median['batched'] / MLFLOW_BATCHED:>9.1f}x")
    print(f"{'read back':<30}{median['read_back']:>14,.0f}{'-':>15}{'':>10}")
    print("(MLflow 3.17 on SQLite: cited figures measured on this kind of machine)")
    print()
    ok_one = median["one_at_a_time"] >= GOAL_ONE_AT_A_TIME
    ok_batch = median["batched"] >= GOAL_BATCHED
    print(f"goal: one at a time >= {GOAL_ONE_AT_A_TIME:,.0f}/s -> "
          f"{'met' if ok_one else 'NOT met'}; "
          f"batched >= {GOAL_BATCHED:,.0f}/s -> {'met' if ok_batch else 'NOT met'}")


if __name__ == "__main__":
    main()
