"""The operations loop, unattended, under load: drift injected into a live MQTT feed of
oil-temperature-like data, detected by ``amml monitor``, retrained by ``amml agent`` on
recent served data, compared by the promotion policy, swapped in by ``amml serve``.

Runs ``examples/operations/loop.py`` (Mosquitto on 127.0.0.1:1883; everything else is
started here) and prints exactly one line::

    operations drift_at=... detected_after_s=... retrain_s=... promoted=yes|no
        swap_failed_requests=N mse_before=... mse_drifted=... mse_after=... total_s=...

``detected_after_s``: from the injection to the first drift event in the store;
``retrain_s``: the triggered run (train, evaluate, register); ``swap_failed_requests``:
non-200 answers and refused connections of the client and the load generator over the whole
run, against every server (``--servers``, default 2, each an ``amml serve`` following
oil-ops@champion); MSEs are of the served forecasts against the actuals posted later
(before the drift, drifted with the old champion, after with the new one); ``total_s``:
recovery, from the injection to the moment every server has answered with the new version.
Goals: total_s <= 180 on 2 cores, 0 failed requests, mse_after within 10% of mse_before.

    nice -n 10 python benchmarks/operations.py [--rate 10] [--load 10] [--servers 2]
        [--wait 45] [--home DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "operations"))

from loop import run


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1 else f"{value:.1f}"
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=10.0, help="rows (hours) per second")
    parser.add_argument("--load", type=float, default=10.0, help="extra requests per second")
    parser.add_argument("--wait", type=float, default=45.0,
                        help="seconds the agent lets the new regime accumulate")
    parser.add_argument("--servers", type=int, default=2, help="amml serve processes")
    parser.add_argument("--home", type=Path, default=None)
    args = parser.parse_args()
    f = run(args.home, rate=args.rate, load=args.load, wait_s=args.wait, servers=args.servers,
            say=lambda text: print(text, file=sys.stderr))
    keys = ("drift_at", "detected_after_s", "retrain_s", "promoted", "swap_failed_requests",
            "mse_before", "mse_drifted", "mse_after")
    line = " ".join(f"{k}={_fmt(f[k])}" for k in keys)
    print(f"operations {line} total_s={_fmt(f['recovery_s'])}")


if __name__ == "__main__":
    main()
