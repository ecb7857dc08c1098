"""``source.logs``: time series from log files (access logs, syslog, JSON lines, any regex).

Each interval (``1min``, ``5min``, ``1h``...) gets the aggregates named in ``metrics``:
``count``, ``error_rate`` (share of requests with status >= ``error_status``),
``status_4xx``, ``status_5xx``, ``bytes_sum``, and ``p50:F``/``p90:F``/``p99:F`` (any ``pNN``),
``mean:F``, ``sum:F``, ``max:F``, ``min:F`` of a numeric field ``F`` (a named group, a JSON key,
or an access log's trailing ``$request_time``, alias ``latency``). In a workflow::

    steps:
      traffic:
        op: source.logs
        with: {path: /var/log/nginx/access.log, format: combined, interval: 1min,
               metrics: [count, error_rate, "p99:latency"]}

How it stays fast: a file is read in chunks of whole lines; Arrow's RE2 extracts the groups
of a whole chunk in C++ (Python's ``re`` takes patterns RE2 lacks, such as lookarounds),
timestamps are parsed once per distinct value, and each chunk is reduced to per-interval
partial sums before the next is read, so a log bigger than memory works; only percentiles
keep their field's values (16 bytes a line). Rotated files (``access.log.2.gz``,
``access.log.1``, ``access.log``) are read oldest first, gzip, bzip2 and xz transparently.
Lines that do not parse are counted and reported with examples, never dropped silently.

One module per concern: :mod:`.formats` (line patterns, timestamps), :mod:`.parsers` (a chunk
to columns), :mod:`.files` (discovery, rotation, decompression, chunked reading),
:mod:`.aggregate` (metrics per interval) and :mod:`.op` (the op and its configuration).

>>> import pathlib, tempfile
>>> from amml.ops.base import StepContext
>>> tmp = tempfile.TemporaryDirectory()
>>> folder = pathlib.Path(tmp.name)
>>> _ = (folder / "access.log").write_text(
...     '10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 2326 "-" "curl" 0.120\\n'
...     '10.0.0.2 - - [10/Oct/2000:13:55:50 -0700] "GET /a HTTP/1.1" 503 12 "-" "curl" 0.480\\n'
...     'this line is not an access log line\\n'
...     '10.0.0.1 - - [10/Oct/2000:13:57:02 -0700] "GET / HTTP/1.1" 200 2326 "-" "curl" 0.100\\n')
>>> source = LogSource(path=str(folder / "access.log"), format="combined", interval="1min",
...                    metrics=["count", "error_rate", "p50:request_time"])
>>> result = source.run(StepContext())
>>> result["out"]
                     count  error_rate  p50_request_time
time
2000-10-10 20:55:00      2         0.5               0.3
2000-10-10 20:56:00      0         NaN               NaN
2000-10-10 20:57:00      1         0.0               0.1
>>> report = result["report"]
>>> report["rows_read"], report["bad_rows"], report["problems"]["malformed_line"]["examples"]
(4, 1, [{'file': '.../access.log', 'line': 3, 'text': 'this line is not an access log line'}])
>>> tmp.cleanup()
"""

from amml.ops.sources.logs.aggregate import Metric, parse_metric
from amml.ops.sources.logs.files import find_log_files
from amml.ops.sources.logs.op import LogSource, LogSourceConfig

__all__ = ["LogSource", "LogSourceConfig", "Metric", "find_log_files", "parse_metric"]
