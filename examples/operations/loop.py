"""The operations loop, unattended: an MQTT feed scored by a served champion; drift is
injected; the monitor detects it, the agent retrains on recent served data, the promotion
policy compares challenger and champion, and the server swaps versions. Every step leaves a
record: drift_events, trigger_runs, the promotions/oil-ops ledger, the alias audit trail.

    python examples/operations/loop.py [--home DIR] [--rate 10] [--keep]

What runs (each a real component on this machine; Mosquitto must listen on 127.0.0.1:1883):

1. ``history.csv`` (2,000 hours) -> ``bootstrap.yaml`` -> oil-ops@1, made champion by the
   promotion policy (a ledger entry);
2. ``servers`` x ``amml serve --model oil-ops@champion`` (subprocesses, request log on;
   the client and the load generator go round-robin over them);
3. ``amml monitor oil-ops --mqtt-url ...`` (a subprocess) watching the feed;
4. ``amml agent retrain.yaml --promote oil-ops`` (a subprocess): on a drift event, retrain
   and apply the policy;
5. in this process: the publisher (one simulated hour every ``1/rate`` s), a client that
   asks the server for a forecast of every new window and posts each row as the actual of
   the forecasts that covered it, and a load generator (``load`` requests/s) that counts
   every failed request.

Drift is injected ``pre_s`` seconds into the feed; the loop ends ``post_s`` seconds after
every server answered with a new version (or at ``timeout_s``). :func:`run` returns the figures
``benchmarks/operations.py`` prints.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from stream import Publisher, series  # noqa: E402

MODEL = "oil-ops"
LOOKBACK, HORIZON = 12, 4


@dataclass
class Feed:
    """The service's client: a forecast of each new window, and each row posted as the
    actual of the forecasts that covered it. ``http`` is an ``httpx.Client`` (or a FastAPI
    ``TestClient``) pointing at the server."""

    http: Any
    extra: list[Any] = field(default_factory=list)  # more servers: forecasts go round-robin
    model: str = MODEL
    lookback: int = LOOKBACK
    every: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    rows: deque = field(default_factory=lambda: deque(maxlen=LOOKBACK))
    pending: list[dict[str, Any]] = field(default_factory=list)
    versions: list[tuple[float, int]] = field(default_factory=list)  # (wall time, version)
    #: per server (0 = ``http``): when it first answered with each version
    by_server: dict[int, dict[int, float]] = field(default_factory=dict)
    failed: int = 0
    seen: int = 0
    turn: int = 0

    def add(self, stamp: str, value: float) -> None:
        self.pending.append({"ts": stamp, "column": "OT", "value": value})
        if len(self.pending) >= 4:
            self.flush()
        self.rows.append((stamp, value))
        self.seen += 1
        if len(self.rows) == self.lookback and self.seen % self.every == 0:
            self.forecast()

    def body(self) -> dict[str, Any]:
        return {"window": [[v] for _, v in self.rows], "columns": ["OT"],
                "timestamps": [s for s, _ in self.rows]}

    def forecast(self) -> int | None:
        clients = [self.http, *self.extra]
        server = self.turn % len(clients)
        self.turn += 1
        try:
            r = clients[server].post(f"/v1/models/{self.model}/forecast", json=self.body(),
                                     headers=self.headers)
        except Exception:  # a refused connection is a failed request too
            self.failed += 1
            return None
        if r.status_code != 200:
            self.failed += 1
            return None
        version, now = int(r.headers["X-Model-Version"]), time.time()
        if not self.versions or self.versions[-1][1] != version:
            self.versions.append((now, version))
        self.by_server.setdefault(server, {}).setdefault(version, now)
        return version

    def all_answer(self, version: int) -> float | None:
        """When the last of the servers first answered with ``version`` (None: not all yet)."""
        count = 1 + len(self.extra)
        times = [self.by_server.get(i, {}).get(version) for i in range(count)]
        return None if any(t is None for t in times) else max(times)

    def flush(self) -> None:
        if not self.pending:
            return
        rows, self.pending = self.pending, []
        try:
            r = self.http.post(f"/v1/models/{self.model}/actuals", json={"actuals": rows},
                               headers=self.headers)
            ok = r.status_code == 200
        except Exception:
            ok = False
        if not ok:
            self.failed += 1


class Load(threading.Thread):
    """``rate`` forecast requests per second on the feed's latest window; counts failures."""

    def __init__(self, bases: list[str], feed: Feed, rate: float) -> None:
        super().__init__(daemon=True, name="amml-load")
        import httpx

        self.clients = [httpx.Client(base_url=base, timeout=10.0) for base in bases]
        self.feed, self.rate = feed, rate
        self.sent = self.failed = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(1.0 / self.rate):
            if len(self.feed.rows) < self.feed.lookback:
                continue
            self.sent += 1
            try:
                client = self.clients[self.sent % len(self.clients)]
                r = client.post(f"/v1/models/{MODEL}/forecast", json=self.feed.body())
                if r.status_code != 200:
                    self.failed += 1
            except Exception:
                self.failed += 1


def _amml(*args: str, home: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "AMML_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "amml.cli", *args], env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bootstrap(home: Path, history_hours: int = 2000) -> None:
    """history.csv -> oil-ops@1, champion by the policy (there is none yet)."""
    from amml.engine.loading import run_workflow
    from amml.registry.policy import apply
    from amml.store import open_store

    home.mkdir(parents=True, exist_ok=True)
    csv = home / "history.csv"
    series(history_hours).to_csv(csv, index=False)
    with open_store(home) as store:
        run_workflow(HERE / "bootstrap.yaml", {"csv": str(csv)}, store=store)
        apply(store, MODEL, actor="bootstrap")


def live_mse(home: Path, version: int | None, start: float, end: float) -> float | None:
    """MSE of the served forecasts of ``version`` (None: any) whose targets fall in
    ``[start, end)`` (data time, epoch seconds), against the actuals."""
    from amml.store import open_store
    from amml.store.labels import live_window

    with open_store(home) as store:
        frame = live_window(store, MODEL)
    if version is not None:
        frame = frame[frame["version"] == version]
    chosen = frame[(frame["ts"] >= start) & (frame["ts"] < end)]
    if chosen.empty:
        return None
    return float(np.mean((chosen["predicted"] - chosen["actual"]) ** 2))


def run(home: Path | None = None, *, rate: float = 10.0, pre_s: float = 30.0,
        post_s: float = 20.0, timeout_s: float = 300.0, wait_s: float = 45.0,
        load: float = 10.0, servers: int = 2, mqtt_port: int = 1883, say=print
        ) -> dict[str, Any]:
    """Run the whole loop once; the figures (see ``benchmarks/operations.py``)."""
    import httpx

    home = Path(home or tempfile.mkdtemp(prefix="amml-ops-"))
    home.mkdir(parents=True, exist_ok=True)
    started = time.time()
    history = 2000
    bootstrap(home, history)
    say(f"bootstrap: oil-ops@1 is champion ({time.time() - started:.1f} s)")
    ports = [_free_port() for _ in range(servers)]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    topic = f"amml/{MODEL}"
    processes: list[subprocess.Popen] = []
    retrain = HERE / "retrain.yaml"  # the example's workflow (its code version on the card)
    if wait_s != 45:  # a copy that waits as asked
        retrain = home / "retrain.yaml"
        retrain.write_text((HERE / "retrain.yaml").read_text().replace(
            "wait_s: 45", f"wait_s: {wait_s:g}").replace('recent: "-45s"',
                                                         f'recent: "-{wait_s:g}s"'))
    publisher: Publisher | None = None
    loader: Load | None = None
    try:
        for i, port in enumerate(ports):  # every server follows oil-ops@champion
            processes.append(_amml("serve", "--model", f"{MODEL}@champion", "--port", str(port),
                                   "--no-auth", "--poll-interval", "0.25", home=home,
                                   log=home / f"serve-{i}.log"))
        clients = [httpx.Client(base_url=base, timeout=10.0) for base in bases]
        deadline = time.monotonic() + 180
        for i, http in enumerate(clients):
            while True:
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or processes[i].poll() is not None:
                    log = (home / f"serve-{i}.log").read_text()
                    raise RuntimeError(f"amml serve did not start: {log}")
                time.sleep(0.2)
        say(f"serving {MODEL}@champion on {', '.join(bases)}")
        window = max(20, int(rate * 3))
        processes.append(_amml("monitor", MODEL, "--mqtt-url", f"mqtt://127.0.0.1:{mqtt_port}",
                               "--mqtt-topic", topic, "--reference", str(4 * window),
                               "--window", str(window), "--detector", "input-ks",
                               "--detector", "error-page_hinkley", "--interval", "0.5",
                               home=home, log=home / "monitor.log"))
        processes.append(_amml("agent", str(retrain), "--promote", MODEL, "--interval", "1",
                               "--policy-window", f"{wait_s:g}", "--min-points", "50",
                               "--json", home=home, log=home / "agent.log"))
        time.sleep(3.0)  # the monitor and the agent subscribe and take their first look
        drift_row = int(pre_s * rate)
        total_rows = int(timeout_s * rate)
        frame = series(total_rows, drift_at=history + drift_row, first=history, seed=7)
        feed = Feed(clients[0], extra=clients[1:])
        publisher = Publisher(frame, topic, rate=rate, port=mqtt_port)
        consumer = _Consumer(feed, mqtt_port, topic)
        loader = Load(bases, feed, load)
        publisher.start()
        loader.start()
        drift_wall = None
        swap_wall = None
        while publisher.is_alive():
            time.sleep(0.2)
            if drift_wall is None and publisher.sent > drift_row:
                drift_wall = publisher.sent_at[drift_row]
                say(f"drift injected at row {drift_row} "
                    f"({frame['date'].iloc[drift_row]:%Y-%m-%d %H:%M})")
            newest = feed.versions[-1][1] if feed.versions else 1
            if swap_wall is None and newest != 1 and feed.all_answer(newest) is not None:
                swap_wall = feed.all_answer(newest)
                say(f"every server answers with {MODEL}@{newest}")
            if swap_wall is not None and time.time() - swap_wall > post_s:
                break
            if time.time() - started > timeout_s:
                break
        publisher.stop()
        loader.stopped.set()
        consumer.stop()
        feed.flush()
        time.sleep(1.0)  # the server's request log flushes
        return _figures(home, frame, drift_row, drift_wall, swap_wall, feed, loader, started)
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


class _Consumer:
    """Subscribes to the feed and hands each row to the :class:`Feed`, in order."""

    def __init__(self, feed: Feed, port: int, topic: str) -> None:
        import queue

        import paho.mqtt.client as mqtt

        self.feed, self.queue = feed, queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda _c, _u, m: self.queue.put(json.loads(m.payload))
        self.client.on_connect = lambda c, *_: c.subscribe(topic)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="amml-consumer")
        self.thread.start()

    def _run(self) -> None:
        import queue

        while not self.stopped.is_set():
            try:
                row = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self.feed.add(row["ts"], float(row["OT"]))

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.client.loop_stop()
        self.client.disconnect()


def _figures(home: Path, frame, drift_row: int, drift_wall: float | None,
             swap_wall: float | None, feed: Feed, loader: Load | None, started: float
             ) -> dict[str, Any]:
    from amml.registry import ModelRegistry
    from amml.store import open_store
    from amml.store.drift_events import DriftRecords
    from amml.store.operations import OperationsRecords

    with open_store(home) as store:
        events = DriftRecords(store).events(MODEL)
        runs = OperationsRecords(store).runs()
        decisions = OperationsRecords(store).decisions(MODEL)
        champion = ModelRegistry(store).alias_version(MODEL, "champion")
    drift_ts = frame["date"].iloc[drift_row].timestamp()
    first_ts = frame["date"].iloc[LOOKBACK].timestamp()
    detected = [e for e in events if drift_wall is not None and e["recorded_at"] >= drift_wall]
    succeeded = [r for r in runs if r["status"] == "succeeded"]
    promoted = [d for d in decisions if d["promoted"] and d["candidate_version"] != 1]
    new_version = champion if champion and champion != 1 else None
    # the new version's forecasts all came after the swap, on data of the new regime
    mse_after = live_mse(home, new_version, drift_ts, float("inf")) if new_version else None
    return {
        "drift_at": frame["date"].iloc[drift_row].strftime("%Y-%m-%dT%H:%M"),
        "detected_after_s": (detected[0]["recorded_at"] - drift_wall) if detected else None,
        "retrain_s": (succeeded[0]["ended_at"] - succeeded[0]["started_at"]) if succeeded
        else None,
        "promoted": bool(promoted),
        "swap_failed_requests": feed.failed + (loader.failed if loader else 0),
        "requests": (loader.sent if loader else 0),
        "mse_before": live_mse(home, 1, first_ts, drift_ts),
        "mse_drifted": live_mse(home, 1, drift_ts, float("inf")),
        "mse_after": mse_after,
        "recovery_s": (swap_wall - drift_wall) if swap_wall and drift_wall else None,
        "total_s": time.time() - started,
        "home": str(home),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--rate", type=float, default=10.0, help="rows (hours) per second")
    parser.add_argument("--load", type=float, default=10.0, help="extra requests per second")
    parser.add_argument("--servers", type=int, default=2, help="amml serve processes")
    args = parser.parse_args()
    figures = run(args.home, rate=args.rate, load=args.load, servers=args.servers)
    print(json.dumps(figures, indent=1, default=str))


if __name__ == "__main__":
    main()
