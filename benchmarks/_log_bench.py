"""``source.logs`` throughput on a synthetic combined access log, beside the usual approach.

The baseline is what one writes by hand: ``re.match`` per line into a list of dicts, then a
DataFrame and ``resample``. Both compute the same metrics from the same file in the same
process; the two tables are checked to agree before the speeds are reported.

    python benchmarks/_log_bench.py [MEGABYTES]
"""

from __future__ import annotations

import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from amml.ops.base import StepContext
from amml.ops.sources.logs import LogSource

METRICS = ["count", "error_rate", "status_5xx", "bytes_sum", "p99:request_time"]
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_PATHS = ("/", "/index.html", "/api/v1/orders", "/api/v1/users/{}", "/static/app.{}.js",
          "/login", "/search?q={}", "/health", "/api/v1/cart/{}/items")
_AGENTS = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/120.0.0.0 Safari/537.36",
           "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
           "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
           "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
           "curl/8.4.0", "python-requests/2.31.0", "Googlebot/2.1 (+http://www.google.com/bot.html)",
           "-")
_REFERERS = ("-", "https://example.com/", "https://www.google.com/", "https://example.com/cart")
_STATUSES = (200, 201, 204, 301, 304, 400, 401, 403, 404, 500, 502, 503)
_WEIGHTS = (70, 3, 2, 2, 8, 2, 1, 1, 5, 2, 2, 2)


def write_access_log(path: Path, megabytes: float, seed: int = 0) -> int:
    """Write about ``megabytes`` MB of nginx combined log with $request_time; returns lines."""
    rng = random.Random(seed)
    target, size, lines = int(megabytes * 1e6), 0, 0
    moment = 1_704_067_200.0  # 2024-01-01, about 80 requests a second
    offsets = ("+0000", "+0100", "-0500")
    with path.open("w") as out:
        batch: list[str] = []
        while size < target:
            moment += rng.expovariate(80.0)
            zone = offsets[lines // 100_000 % len(offsets)]  # a few servers' zones
            shift = (1 if zone[0] == "+" else -1) * (int(zone[1:3]) * 3600)
            t = time.gmtime(moment + shift)
            stamp = (f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
                     f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {zone}")
            status = rng.choices(_STATUSES, _WEIGHTS)[0]
            body = "-" if status in (204, 304) else str(int(rng.lognormvariate(8, 1.5)))
            page = rng.choice(_PATHS).format(rng.randint(1, 99_999))
            ip = (f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}."
                  f"{rng.randint(1, 254)}")
            user = "-" if rng.random() < 0.95 else f"user{rng.randint(1, 500)}"
            line = (f'{ip} - {user} [{stamp}] "{rng.choice(("GET", "GET", "GET", "POST", "PUT"))}'
                    f' {page} HTTP/1.1" {status} {body} "{rng.choice(_REFERERS)}" '
                    f'"{rng.choice(_AGENTS)}" {rng.lognormvariate(-3.0, 1.0):.3f}\n')
            batch.append(line)
            size += len(line)
            lines += 1
            if len(batch) == 10_000:
                out.write("".join(batch))
                batch.clear()
        out.write("".join(batch))
    return lines


_LINE = re.compile(r'(\S+) \S+ \S+ \[([^\]]+)\] "([^"]*)" (\d{3}) (\S+) "([^"]*)" "([^"]*)"'
                   r'(?: (\S+))?')


def baseline(path: Path, interval: str = "1min") -> pd.DataFrame:
    """The peer approach: a Python loop of ``re.match``, dicts, a DataFrame, ``resample``."""
    rows = []
    with path.open() as lines:
        for line in lines:
            match = _LINE.match(line)
            if match is None:
                continue
            rows.append({"time": match[2], "status": int(match[4]),
                         "bytes": 0 if match[5] == "-" else int(match[5]),
                         "request_time": float(match[8]) if match[8] else np.nan})
    frame = pd.DataFrame(rows)
    frame.index = pd.to_datetime(frame.pop("time"), format="%d/%b/%Y:%H:%M:%S %z", utc=True)
    bins = frame.resample(interval)
    return pd.DataFrame({
        "count": bins.size(),
        "error_rate": (frame["status"] >= 500).resample(interval).mean(),
        "status_5xx": (frame["status"] >= 500).resample(interval).sum(),
        "bytes_sum": bins["bytes"].sum(),
        "p99_request_time": bins["request_time"].quantile(0.99),
    })


def run(megabytes: float = 50.0, tmpdir: str | None = None) -> dict[str, float]:
    """Write the log, time both readers on it (best of two), check they agree."""
    with tempfile.TemporaryDirectory(dir=tmpdir) as folder:
        path = Path(folder) / "access.log"
        lines = write_access_log(path, megabytes)
        size_mb = os.path.getsize(path) / 1e6
        source = LogSource(path=str(path), format="combined", interval="1min", metrics=METRICS)
        amml_s = base_s = float("inf")
        for _ in range(2):  # the first pass also warms the page cache for both
            started = time.perf_counter()
            ours = source.run(StepContext())["out"]
            amml_s = min(amml_s, time.perf_counter() - started)
            started = time.perf_counter()
            theirs = baseline(path)
            base_s = min(base_s, time.perf_counter() - started)
        theirs.index = theirs.index.tz_localize(None).as_unit(ours.index.unit).rename("time")
        pd.testing.assert_frame_equal(ours, theirs, check_dtype=False, check_freq=False)
    return {"amml_mb_s": size_mb / amml_s, "baseline_mb_s": size_mb / base_s,
            "lines": float(lines), "megabytes": size_mb}


if __name__ == "__main__":
    figures = run(float(sys.argv[1]) if len(sys.argv) > 1 else 50.0)
    print(f"logs mb={figures['megabytes']:.1f} amml_mb_s={figures['amml_mb_s']:.1f} "
          f"baseline_mb_s={figures['baseline_mb_s']:.1f} "
          f"ratio={figures['amml_mb_s'] / figures['baseline_mb_s']:.2f}")
