"""A real ``amml serve`` (uvicorn, one worker) on loopback under hostile load: oversized
bodies are refused before they are read, so memory stays flat; ``/healthz`` answers while a
maximal batch is scored in the thread pool; a client that hangs up mid-body is a 499 in the
metrics and a one-line log, not a 500 with a traceback.

The timing bounds here are generous on purpose (this runs on 2 shared cores beside other test
runs): they separate "answers at once" from "waits for the whole batch" (seconds, before);
``benchmarks/serving_limits.py`` gives the precise figures."""

from __future__ import annotations

import statistics
from collections.abc import Iterator

import httpx
import pytest

from amml.serve.auth import create_key
from amml.store import open_store
from tests.serve.conftest import LOOKBACK, WINDOW, register_models, uvicorn_server
from tests.serve.loopback import (
    MB,
    abandon_body,
    batch_body,
    healthz_while,
    rss_mb,
    send_oversized,
)

FORECAST = "/v1/models/oil/forecast"
#: The issue's batch: 60,000 windows (4 MB of JSON here); the server is started with
#: --max-windows 60000, so it is a maximal batch.
MAXIMAL = 60_000


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, object, dict[str, str]]]:
    home = str(tmp_path_factory.mktemp("serve") / ".amml")
    with open_store(home) as store:
        register_models(store)
        keys = {scope: create_key(store, scope=scope)[1] for scope in ("read", "predict")}
    with uvicorn_server(home, "--model", "oil@champion", "--max-windows", str(MAXIMAL),
                        "--no-log") as (base, process):
        yield base, process, keys


def test_oversized_body_is_413_and_memory_stays_flat(server):
    base, process, keys = server
    with httpx.Client(base_url=base, headers={"X-API-Key": keys["predict"]}) as http:
        for _ in range(20):  # warm: the first requests allocate what every request reuses
            assert http.post(FORECAST, json={"window": WINDOW}).status_code == 200
    before = rss_mb(process.pid)
    statuses = []
    for _ in range(3):
        statuses.append(send_oversized(base, FORECAST, keys["predict"], 50 * MB))
        statuses.append(send_oversized(base, FORECAST, keys["predict"], 400 * MB))
        statuses.append(send_oversized(base, FORECAST, keys["predict"], 50 * MB, chunked=True))
    grown = rss_mb(process.pid) - before
    assert statuses == [413] * 9
    # Before this was bounded, 50 MB and 400 MB bodies grew a worker by ~840 MB. A chunked
    # body is read up to the 8 MiB limit before the 413; allow for that and allocator slack.
    assert grown < 48, f"worker grew by {grown:.0f} MiB"
    with httpx.Client(base_url=base, headers={"X-API-Key": keys["predict"]}) as http:
        assert http.post(FORECAST, json={"window": WINDOW}).status_code == 200


def test_healthz_answers_while_a_maximal_batch_is_scored(server):
    base, _, keys = server
    body = batch_body(MAXIMAL, LOOKBACK)

    def batch() -> httpx.Response:
        return httpx.post(f"{base}{FORECAST}", content=body, timeout=120, headers={
            "X-API-Key": keys["predict"], "Content-Type": "application/json"})

    response, seconds, latencies = healthz_while(base, batch)
    assert response.status_code == 200, response.text[:300]
    assert len(response.json()["forecasts"]) == MAXIMAL
    assert len(latencies) >= 5, f"the batch took {seconds:.2f} s: too short to sample"
    # Scored on the event loop, /healthz waited for the whole batch (5.5 s in the issue,
    # ~1-3 s here); the goal is < 50 ms. 0.5 s leaves room for a loaded 2-core machine.
    assert max(latencies) < 0.5, (f"/healthz max {max(latencies) * 1000:.0f} ms, median "
                                  f"{statistics.median(latencies) * 1000:.0f} ms")


def test_client_disconnect_is_logged_as_such_not_500(server):
    base, process, keys = server
    for _ in range(2):
        abandon_body(base, FORECAST, keys["predict"])
    metrics = httpx.get(f"{base}/metrics", headers={"X-API-Key": keys["read"]}).text
    assert 'endpoint="forecast",model="oil@champion",status="499"} 2.0' in metrics
    assert 'status="500"' not in metrics
    process.terminate()  # the module's last test: read what the worker printed
    output = process.communicate(timeout=30)[0]
    assert "Traceback" not in output and "Exception" not in output
    assert "the client disconnected before sending its whole body" in output
