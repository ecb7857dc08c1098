"""Run a streaming detector over every NAB series, the series spread over processes.

The detectors are pure-Python loops over the points of one series, so one process keeps one
core busy: the series go to a pool of worker processes instead (one task per series, the
longest first, so that the workers finish at about the same time). Each worker builds the
detector by name with :func:`~amml.ops.detectors.base.make_detector` and gets the series as
plain arrays: no model crosses a process boundary. The scores are the ones a sequential run
gives (a series is scored by the same code on a fresh detector either way), returned in the
corpus's order whatever order the workers finish in.

The pool starts its workers with ``forkserver`` (``spawn`` where there is none), never with
``fork``: a forked child of a process whose thread pools (torch, BLAS) hold a lock can hang.
Only detectors a fresh interpreter can build by name run in the workers: built-ins and
entry-point plugins (one registered at run time in the parent alone is unknown there).

>>> import numpy as np
>>> import pandas as pd
>>> from amml.bench.nab_run import run_detector
>>> ts = pd.date_range("2024-01-01", periods=300, freq="5min").strftime("%Y-%m-%d %H:%M:%S")
>>> rng = np.random.default_rng(0)
>>> series = {f"c/s{i}.csv": pd.DataFrame({"timestamp": ts, "value": rng.normal(0, 1, 300)})
...           for i in range(3)}
>>> parallel = run_detector(series, "amml", {}, workers=2)
>>> sequential = run_detector(series, "amml", {}, workers=1)
>>> list(parallel) == list(series)
True
>>> all(np.array_equal(parallel[n], sequential[n], equal_nan=True) for n in series)
True
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Mapping
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from amml.bench.nab import Corpus


def _score(detector: str, params: dict[str, Any], values: np.ndarray,
           timestamps: list[Any]) -> np.ndarray:
    """One series' scores on a fresh detector (run in a worker, or in-process)."""
    from amml.ops.detectors.base import make_detector

    return make_detector(detector, **params).score_series(values, timestamps)


def _context() -> multiprocessing.context.BaseContext:
    """``forkserver`` where the platform has it (POSIX), else ``spawn``; never ``fork``."""
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        # the server imports the detectors once; each worker forks from it ready to go (only
        # takes effect when this process starts its forkserver, which is then reused)
        context.set_forkserver_preload(["numpy", "amml.ops.detectors.base"])
    return context


def run_detector(corpus: Corpus | Mapping[str, pd.DataFrame], detector: str,
                 params: dict[str, Any], workers: int | None = None) -> dict[str, np.ndarray]:
    """Scores of ``detector`` (built with ``params``) for each series of ``corpus`` (a
    :class:`~amml.bench.nab.Corpus` or its ``series``: NAB relative path -> frame with
    ``timestamp`` and ``value``), keyed and ordered as the corpus's series.

    ``workers``: processes to use (default: every core, ``os.cpu_count()``), never more than
    there are series; with one, the series are scored here, in order, with no pool. An unknown
    detector or parameter raises :class:`~amml._exceptions.OpError` before any work starts;
    a series that fails in a worker raises its error here, and the queued series are dropped.
    """
    from amml.ops.detectors.base import make_detector

    series: Mapping[str, pd.DataFrame] = getattr(corpus, "series", corpus)
    if workers is None:
        workers = os.cpu_count() or 1
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    make_detector(detector, **params)  # the name and parameters checked here, not in a worker
    # plain arrays and lists only cross to the workers (and the same go to the in-process path,
    # so both paths score identical inputs)
    inputs = {name: (frame["value"].to_numpy(dtype=float), frame["timestamp"].tolist())
              for name, frame in series.items()}
    workers = min(workers, len(inputs))
    if workers <= 1:
        return {name: _score(detector, params, values, stamps)
                for name, (values, stamps) in inputs.items()}
    # longest first: the last tasks to start are the short ones, so no worker is left with a
    # long series while the others sit idle (longest-processing-time-first scheduling)
    longest_first = sorted(inputs, key=lambda name: len(inputs[name][0]), reverse=True)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_context())
    try:
        futures: dict[str, Future[np.ndarray]] = {
            name: pool.submit(_score, detector, params, *inputs[name]) for name in longest_first}
        for future in as_completed(futures.values()):  # a failure surfaces as soon as it happens
            future.result()
        scores = {name: future.result() for name, future in futures.items()}
    except BaseException:
        # a failed series (or Ctrl-C): drop the queued ones rather than wait for them to run
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return {name: scores[name] for name in inputs}
