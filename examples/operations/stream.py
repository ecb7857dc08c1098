"""An oil-temperature-like hourly series, with drift injected on request, and its MQTT feed.

``OT`` = a level + a daily cycle + a weekly one + noise, like a transformer's oil
temperature. :func:`drifted` changes the regime from a given hour on: the cycle shortens from
24 to 12 hours (a new load pattern), the level rises and the swing grows, so the champion's
forecasts go wrong while the noise stays what it was (a model fitted to the new regime can
forecast as well as the old one did before).

:class:`Publisher` sends one row per ``1/rate`` seconds to ``amml/MODEL`` as JSON
``{"time": epoch seconds, "ts": ISO time, "OT": value}`` (each row one simulated hour), the
form ``amml monitor --mqtt-url`` reads.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

START = pd.Timestamp("2026-01-01")
NOISE = 0.4


@dataclass(frozen=True)
class Regime:
    level: float = 60.0
    swing: float = 4.0
    period: float = 24.0


BEFORE = Regime()
AFTER = Regime(level=64.0, swing=5.0, period=12.0)


def series(hours: int, *, drift_at: int | None = None, seed: int = 0, first: int = 0
           ) -> pd.DataFrame:
    """Rows ``first`` .. ``first + hours - 1`` of the series (hour 0 is ``START``), in the
    ``AFTER`` regime from hour ``drift_at`` on."""
    rng = np.random.default_rng(seed + first)
    t = np.arange(first, first + hours)
    values = np.empty(hours)
    for i, hour in enumerate(t):
        regime = AFTER if drift_at is not None and hour >= drift_at else BEFORE
        values[i] = (regime.level + regime.swing * np.sin(2 * np.pi * hour / regime.period)
                     + 1.0 * np.sin(2 * np.pi * hour / 168))
    values += rng.normal(0, NOISE, hours)
    return pd.DataFrame({"date": START + pd.to_timedelta(t, unit="h"), "OT": values})


class Publisher(threading.Thread):
    """Publishes ``frame``'s rows to MQTT, ``rate`` rows per second, until done or stopped."""

    def __init__(self, frame: pd.DataFrame, topic: str, *, rate: float = 10.0,
                 host: str = "127.0.0.1", port: int = 1883) -> None:
        super().__init__(daemon=True, name="amml-publisher")
        import paho.mqtt.client as mqtt

        self.frame, self.topic, self.rate = frame, topic, rate
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.connect(host, port)
        self.client.loop_start()
        self.stopped = threading.Event()
        self.sent = 0
        self.sent_at: dict[int, float] = {}  # row -> wall time it was published

    def run(self) -> None:
        started = time.monotonic()
        for i, (stamp, value) in enumerate(zip(self.frame["date"], self.frame["OT"],
                                               strict=True)):
            if self.stopped.is_set():
                break
            delay = started + i / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            payload = {"time": stamp.timestamp(), "ts": stamp.isoformat(), "OT": float(value)}
            self.sent_at[i] = time.time()
            self.client.publish(self.topic, json.dumps(payload), qos=0)
            self.sent = i + 1
        self.client.loop_stop()
        self.client.disconnect()

    def stop(self) -> None:
        self.stopped.set()
