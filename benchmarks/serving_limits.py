"""The server's limits under hostile load, on loopback: memory under oversized bodies, and
``/healthz`` latency while a maximal batch is scored.

Starts ``amml serve`` (one worker, keys on, the test suite's ``oil`` model: naive, lookback
8, horizon 4) with ``--max-windows`` set to the batch size, then

* sends 50 MB and 400 MB bodies (declared in ``Content-Length``) and 50 MB chunked ones,
  ``--rounds`` times each, and prints the worker's resident memory before and after;
* posts one batch of ``--windows`` windows (the issue's 60,000 by default) and samples
  ``GET /healthz`` every 10 ms until it is answered: median, p99 and max latency.

    python benchmarks/serving_limits.py [--windows 60000] [--rounds 3]

Machine-readable lines::

    serving_limits oversized statuses=413,... rss_before_mb=... rss_after_mb=... grown_mb=...
    serving_limits batch windows=... seconds=... healthz_n=... healthz_p50_ms=...
        healthz_p99_ms=... healthz_max_ms=... goal_ms=50 met=yes|no
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.serve.conftest import LOOKBACK, register_models, uvicorn_server
from tests.serve.loopback import (
    MB,
    batch_body,
    healthz_while,
    rss_mb,
    send_oversized,
)

from amml.serve.auth import create_key
from amml.store import open_store

FORECAST = "/v1/models/oil/forecast"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    home = str(Path(tempfile.mkdtemp(prefix="amml-limits-")) / ".amml")
    with open_store(home) as store:
        register_models(store)
        _, key = create_key(store, scope="predict")
    with uvicorn_server(home, "--model", "oil@champion", "--max-windows", str(args.windows),
                        "--no-log") as (base, process):
        with httpx.Client(base_url=base, headers={"X-API-Key": key}) as http:
            for _ in range(20):
                http.post(FORECAST, json={"window": [float(i) for i in range(LOOKBACK)]})
        before = rss_mb(process.pid)
        statuses = []
        for _ in range(args.rounds):
            statuses.append(send_oversized(base, FORECAST, key, 50 * MB))
            statuses.append(send_oversized(base, FORECAST, key, 400 * MB))
            statuses.append(send_oversized(base, FORECAST, key, 50 * MB, chunked=True))
        after = rss_mb(process.pid)
        print(f"serving_limits oversized statuses={','.join(map(str, statuses))} "
              f"rss_before_mb={before:.0f} rss_after_mb={after:.0f} "
              f"grown_mb={after - before:.1f}")

        body = batch_body(args.windows, LOOKBACK)

        def batch() -> httpx.Response:
            return httpx.post(f"{base}{FORECAST}", content=body, timeout=300, headers={
                "X-API-Key": key, "Content-Type": "application/json"})

        response, seconds, latencies = healthz_while(base, batch)
        ms = sorted(x * 1000 for x in latencies)
        p99 = ms[min(len(ms) - 1, int(0.99 * len(ms)))]
        print(f"serving_limits batch windows={args.windows} status={response.status_code} "
              f"body_mb={len(body) / MB:.1f} seconds={seconds:.2f} healthz_n={len(ms)} "
              f"healthz_p50_ms={statistics.median(ms):.1f} healthz_p99_ms={p99:.1f} "
              f"healthz_max_ms={ms[-1]:.1f} goal_ms=50 met={'yes' if ms[-1] < 50 else 'no'}")


if __name__ == "__main__":
    main()
