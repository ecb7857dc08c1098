"""``amml.bench.nab_run``: the NAB series scored in worker processes give the sequential scores,
in the corpus's order, and a bad detector, parameter or series fails cleanly."""

from __future__ import annotations

import json
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from amml._exceptions import OpError
from amml.bench import nab_run
from amml.bench.nab import load_corpus
from amml.bench.nab_run import run_detector

# different lengths (so that a score array handed to the wrong name is seen) and the longest
# not first in the corpus's (sorted) order, so longest-first differs from the corpus's order
SERIES = [("artificial", "flat.csv", 300, None), ("realA", "one.csv", 700, 500),
          ("realA", "two.csv", 450, 300), ("realB", "three.csv", 900, 650)]


def _write_corpus(root: Path) -> Path:
    rng = np.random.default_rng(7)
    windows: dict[str, list[list[str]]] = {}
    for category, file, n, spike in SERIES:
        ts = pd.date_range("2023-05-01", periods=n, freq="5min")
        values = 10 + np.sin(np.arange(n) / 12) + rng.normal(0, 0.3, n)
        if spike is not None:
            values[spike] += 8
        values[n // 3] = np.nan  # a gap: NaN handling must not differ between the paths
        folder = root / "data" / category
        folder.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "value": values}).to_csv(
            folder / file, index=False)
        windows[f"{category}/{file}"] = ([[str(ts[spike - 20]), str(ts[spike + 20])]]
                                         if spike is not None else [])
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return load_corpus(_write_corpus(tmp_path_factory.mktemp("nab")))


@pytest.fixture(scope="module")
def sequential(corpus):
    return run_detector(corpus, "amml", {}, workers=1)


def _same(left: dict[str, np.ndarray], right: dict[str, np.ndarray]) -> None:
    assert set(left) == set(right)
    for name in left:
        assert np.array_equal(left[name], right[name], equal_nan=True), name


def test_parallel_scores_are_the_sequential_scores_in_the_corpus_order(corpus, sequential):
    assert list(sequential) == list(corpus.series)
    for name, frame in corpus.series.items():
        assert len(sequential[name]) == len(frame)
        assert np.isfinite(sequential[name]).any()  # real scores, not an empty run
    parallel = run_detector(corpus, "amml", {}, workers=2)
    assert list(parallel) == list(corpus.series)
    _same(parallel, sequential)
    # a series' scores are the detector's on that series alone (no state carried across)
    frame = corpus.series["realA/two.csv"]
    alone = nab_run._score("amml", {}, frame["value"].to_numpy(dtype=float),
                           frame["timestamp"].tolist())
    assert np.array_equal(parallel["realA/two.csv"], alone, equal_nan=True)


def test_scores_do_not_depend_on_the_series_order_or_the_worker_count(corpus, sequential):
    reordered = dict(reversed(list(corpus.series.items())))  # a mapping works as the corpus
    for workers in (3, None, 99):  # None: every core; more workers than series: one each
        scores = run_detector(reordered, "amml", {}, workers=workers)
        assert list(scores) == list(reordered)
        _same(scores, sequential)


def test_parameters_reach_the_workers(corpus):
    params = {"output": "alarm", "alarm": 0.45}
    parallel = run_detector(corpus, "amml", params, workers=2)
    _same(parallel, run_detector(corpus, "amml", params, workers=1))
    plain = run_detector(corpus, "amml", {}, workers=1)
    assert any(not np.array_equal(parallel[n], plain[n], equal_nan=True) for n in plain)


class _Recorder:
    """An in-process stand-in for ProcessPoolExecutor that records how it is used."""

    made: list[_Recorder] = []

    def __init__(self, max_workers: int, mp_context: Any) -> None:
        self.max_workers, self.method = max_workers, mp_context.get_start_method()
        self.submitted: list[int] = []
        self.shutdowns: list[dict[str, bool]] = []
        _Recorder.made.append(self)

    def submit(self, fn, *args) -> Future:
        self.submitted.append(len(args[2]))  # the series' length (values)
        future: Future = Future()
        future.set_result(fn(*args))
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self.shutdowns.append({"wait": wait, "cancel_futures": cancel_futures})


@pytest.fixture
def recorder(monkeypatch):
    _Recorder.made = []
    monkeypatch.setattr(nab_run, "ProcessPoolExecutor", _Recorder)
    return _Recorder.made


def test_the_pool_gets_the_longest_series_first_and_never_forks(corpus, sequential, recorder):
    scores = run_detector(corpus, "amml", {}, workers=2)
    _same(scores, sequential)
    (pool,) = recorder
    assert pool.max_workers == 2
    assert pool.submitted == sorted((n for _, _, n, _ in SERIES), reverse=True)
    assert pool.method in ("forkserver", "spawn")
    assert pool.shutdowns == [{"wait": True, "cancel_futures": False}]


def test_worker_count_defaults_to_the_cores_and_stops_at_the_series(corpus, recorder,
                                                                     monkeypatch):
    monkeypatch.setattr(nab_run.os, "cpu_count", lambda: 3)
    run_detector(corpus, "amml", {})
    run_detector(corpus, "amml", {}, workers=16)
    assert [pool.max_workers for pool in recorder] == [3, len(SERIES)]
    monkeypatch.setattr(nab_run.os, "cpu_count", lambda: 1)
    run_detector(corpus, "amml", {})  # one core: no pool at all
    run_detector(corpus, "amml", {}, workers=1)
    one = {k: v for k, v in list(corpus.series.items())[:1]}
    run_detector(one, "amml", {}, workers=4)  # one series: no pool either
    assert len(recorder) == 2


@pytest.mark.parametrize("workers", [1, 2])
def test_unknown_detector_and_bad_parameters_fail_before_any_work(corpus, recorder, workers):
    with pytest.raises(OpError, match="unknown detector 'nope'"):
        run_detector(corpus, "nope", {}, workers=workers)
    with pytest.raises(OpError, match="no parameter 'bogus'"):
        run_detector(corpus, "amml", {"bogus": 1}, workers=workers)
    with pytest.raises(OpError, match="'output' must be one of"):
        run_detector(corpus, "amml", {"output": "loud"}, workers=workers)
    with pytest.raises(ValueError, match="at least 1"):
        run_detector(corpus, "amml", {}, workers=0)
    assert recorder == []  # refused before a pool was made


def test_a_series_failing_in_a_worker_raises_here_and_drops_the_queued_ones(corpus,
                                                                            monkeypatch):
    """A detector registered in this process only is unknown in the (fresh) workers: each
    series fails there, the first failure comes back as the error, the rest are cancelled."""
    from amml.ops.detectors.base import DETECTORS, Detector

    class _HereOnly(Detector):
        name = "here_only_for_test"

        def update(self, timestamp: Any, value: float) -> float:
            return 0.0

    DETECTORS.find("amml")  # the registry's built-ins in, before the stand-in joins them
    monkeypatch.setitem(DETECTORS._items, _HereOnly.name, _HereOnly)
    assert len(run_detector(corpus, _HereOnly.name, {}, workers=1)) == len(SERIES)
    with pytest.raises(OpError, match="unknown detector 'here_only_for_test'"):
        run_detector(corpus, _HereOnly.name, {}, workers=2)
    # the pool context is never fork, even where fork is the platform's default
    assert nab_run._context().get_start_method() != "fork"
