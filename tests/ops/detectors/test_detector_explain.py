"""Which columns made a fitted detector's score: exact Shapley values over the columns (the
definition, checked by brute force over every ordering), the ``detect`` op's ``cause`` for
each alarm, and ``/detect?explain=true`` on the server."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from amml._exceptions import OpError
from amml.ops.base import StepContext
from amml.ops.detectors.base import make_detector
from amml.ops.detectors.detect import Detect
from amml.ops.detectors.explain import causes, column_contributions, shares
from amml.ops.models.register import model_signature
from amml.store import Store
from amml.store.model_registry import ModelRegistry
from tests.serve.conftest import serving

COLUMNS = ["flow", "pressure", "temperature", "noise"]
DRIFT = (300, 330)  # rows of the scored table where the pressure sensor reads high


def plant(rows: int, seed: int, drift: tuple[int, int] | None = None) -> pd.DataFrame:
    """Flow drives pressure and temperature; a fourth channel is noise. Within ``drift`` the
    pressure sensor reads 4 of its standard deviations high."""
    rng = np.random.default_rng(seed)
    drive = np.sin(np.arange(rows) / 9.0) + rng.normal(0, 0.05, rows)
    frame = pd.DataFrame({"flow": drive + rng.normal(0, 0.05, rows),
                          "pressure": 2.0 * drive + rng.normal(0, 0.05, rows),
                          "temperature": 40 - drive + rng.normal(0, 0.05, rows),
                          "noise": rng.normal(0, 1, rows)},
                         index=pd.date_range("2024-02-01", periods=rows, freq="h"))
    if drift is not None:
        lo, hi = drift
        frame.iloc[lo:hi, 1] += 4 * frame["pressure"].std()
    return frame


def shapley_by_orderings(value, players: int) -> np.ndarray:
    """The definition: each player's marginal value averaged over every ordering."""
    out = np.zeros(players)
    for order in itertools.permutations(range(players)):
        present = np.zeros(players)
        before = value(present)
        for player in order:
            present[player] = 1.0
            after = value(present)
            out[player] += after - before
            before = after
    return out / math.factorial(players)


@pytest.mark.parametrize(("name", "params"), [
    ("pca_t2q", {"smooth": 3}), ("mset", {}), ("pyod", {"model": "KNN"}),
    ("pyod", {"model": "ECOD"}),  # scores a row against the others scored with it
    ("conv_autoencoder", {"window": 4, "smooth": 2, "epochs": 2})])  # rows of windows
def test_contributions_are_the_shapley_values_of_the_raw_score(name: str, params: dict) -> None:
    detector = make_detector(name, **params).fit(plant(500, 1))
    rows = plant(400, 2, DRIFT).to_numpy()
    span = detector.context + 1
    windows = np.stack([rows[r + 1 - span:r + 1] for r in (100, 305, 320)])
    got = column_contributions(detector, windows)
    for window, contribution in zip(windows, got, strict=True):
        tail = (window[-span:] - detector.center_) / detector.scale_

        def value(present: np.ndarray, tail: np.ndarray = tail) -> float:
            features = detector._features(tail * present[None, :])
            return float(np.asarray(detector._raw(features))[-1])

        np.testing.assert_allclose(contribution, shapley_by_orderings(value, 4), rtol=1e-9,
                                   atol=1e-12)
        # efficiency: they add up to the score over that of the reference centre
        assert contribution.sum() == pytest.approx(value(np.ones(4)) - value(np.zeros(4)))
    assert causes(got[1:]) == [1, 1]  # pressure
    np.testing.assert_allclose(np.abs(shares(got)).sum(axis=1), 1.0)


def test_detect_names_the_column_behind_each_alarm() -> None:
    table = plant(400, 2, DRIFT)
    result = Detect(detector="pca_t2q", params={"smooth": 3}, explain=True).run(
        StepContext(), table, reference=plant(500, 1))
    out, report = result["out"], result["report"]
    alarms = out.index[out["alarm"] == 1]
    inside = [t for t in alarms if out.index[DRIFT[0]] <= t < out.index[DRIFT[1]]]
    assert len(inside) >= 0.8 * (DRIFT[1] - DRIFT[0])
    assert (out.loc[inside, "cause"] == "pressure").all()
    assert (out.loc[out["alarm"] == 0, "cause"] == "").all()
    listed = {entry["row"]: entry for entry in report["causes"]}
    assert sorted(listed) == [out.index.get_loc(t) for t in alarms]
    first = listed[out.index.get_loc(inside[0])]
    assert first["cause"] == "pressure" and first["timestamp"] == inside[0].isoformat()
    assert sum(abs(v) for v in first["shares"].values()) == pytest.approx(1.0, abs=1e-3)
    assert report["causes_truncated"] is False
    assert set(first["shares"]) == set(COLUMNS)
    # the window that ends at the alarm's row (the rows before it from the reference's end)
    fitted, row = result["detector"], out.index.get_loc(inside[0])
    window = np.concatenate([plant(500, 1).to_numpy(), table.to_numpy()])[500 + row - 2:
                                                                          500 + row + 1]
    expected = shares(column_contributions(fitted, window[None]))[0]
    np.testing.assert_allclose([first["shares"][c] for c in COLUMNS], expected, atol=1e-4)
    early = Detect(detector="pca_t2q", params={"smooth": 3}, explain=True).run(
        StepContext(), table.iloc[DRIFT[0]:], reference=plant(500, 1))["report"]["causes"][0]
    assert early["row"] == 0 and early["cause"] == "pressure"  # its look-back: the reference


def test_explain_needs_a_frozen_fitted_detector() -> None:
    with pytest.raises(OpError, match="'explain' names the columns behind a fitted detector"):
        Detect(detector="amml", explain=True).run(StepContext(), plant(200, 2))
    with pytest.raises(OpError, match="'explain' needs a frozen detector: this mset refits"):
        Detect(detector="mset", params={"refit": 100}, explain=True).run(
            StepContext(), plant(400, 2, DRIFT), reference=plant(500, 1))


def test_served_detector_explains_its_alarms(store: Store, tmp_path: Path) -> None:
    fitted = make_detector("pca_t2q", smooth=3).fit(plant(500, 1))
    ModelRegistry(store).register("plant", fitted, signature=model_signature(fitted))
    rows = plant(400, 2, DRIFT)
    windows = sliding_window_view(rows.to_numpy(), 3, axis=0).transpose(0, 2, 1)[290:320]
    with serving(store, tmp_path, models=("oil@champion", "plant")) as app:
        answer = app.post("/v1/models/plant/detect?explain=true",
                          json={"windows": windows.tolist()})
        plain = app.post("/v1/models/plant/detect", json={"windows": windows.tolist()})
        too_many = app.post("/v1/models/plant/detect?explain=true",
                            json={"windows": [windows[0].tolist()] * 257})
        forecaster = app.post("/v1/models/oil/detect?explain=true",
                              json={"window": list(range(12))})
        unreadable = app.post("/v1/models/plant/detect?explain=maybe",
                              json={"window": windows[0].tolist()})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    contributions = column_contributions(fitted, windows)
    for result, top, share, before in zip(results, causes(contributions), shares(contributions),
                                          plain.json()["results"], strict=True):
        assert result["score"] == before["score"]  # explaining changes no score
        if result["alarm"]:
            assert result["cause"] == COLUMNS[top]
            np.testing.assert_allclose([result["shares"][c] for c in COLUMNS], share)
        else:
            assert "cause" not in result and "shares" not in result
    assert sum(r["alarm"] for r in results) >= 15
    assert all(r["cause"] == "pressure" for r in results if r["alarm"])
    assert "cause" not in plain.json()["results"][-1]
    assert too_many.status_code == 422 and "at most 256 windows" in too_many.text
    assert forecaster.status_code == 422 and "/v1/models/oil/explain" in forecaster.text
    assert unreadable.status_code == 422 and "explain must be true or false" in unreadable.text


def test_many_columns_are_estimated_by_permutations(monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond ``EXACT_COLUMNS`` columns, shap's permutation estimate: close to the exact
    values (enumerated here for the check), and adding up to the same total."""
    from amml.ops.detectors import explain

    rng = np.random.default_rng(3)
    drive = rng.normal(0, 1, (600, 1))
    rows = drive * np.arange(1, 15) + rng.normal(0, 0.1, (600, 14))  # 14 sensors
    detector = make_detector("mset").fit(rows[:500])
    window = rows[550:551].copy()
    window[0, 9] += 4 * rows[:500, 9].std()
    estimated = column_contributions(detector, window[None])[0]
    monkeypatch.setattr(explain, "EXACT_COLUMNS", 14)
    exact = column_contributions(detector, window[None])[0]
    assert estimated.sum() == pytest.approx(exact.sum(), rel=1e-6)
    assert int(np.argmax(estimated)) == int(np.argmax(exact)) == 9
    np.testing.assert_allclose(estimated, exact, atol=0.05 * abs(exact.sum()))


def test_gaps_are_filled_as_scoring_fills_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """A gap is carried from the last reading when scoring, so it is when explaining: the
    rows whose window holds it keep their cause; beyond the listed alarms, no cause."""
    from amml.ops.detectors import detect

    table = plant(400, 2, DRIFT)
    table.iloc[305, 0] = np.nan
    step = Detect(detector="pca_t2q", params={"smooth": 3}, explain=True)
    result = step.run(StepContext(), table, reference=plant(500, 1))
    out, report = result["out"], result["report"]
    assert (out["cause"].iloc[305:308] == "pressure").all()
    listed = {entry["row"]: entry for entry in report["causes"]}
    assert all(listed[r]["shares"]["pressure"] > 0.5 for r in range(305, 308))
    monkeypatch.setattr(detect, "MAX_LISTED_ALARMS", 5)
    few = step.run(StepContext(), table, reference=plant(500, 1))
    assert few["report"]["causes_truncated"] is True and len(few["report"]["causes"]) == 5
    assert (few["out"]["cause"] != "").sum() == 5


def test_the_server_budgets_explanations_and_names_no_cause_for_an_overflow(
        store: Store, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    drive = rng.normal(0, 1, (600, 1))
    wide = pd.DataFrame(drive * np.arange(1, 13) + rng.normal(0, 0.1, (600, 12)),
                        columns=[f"s{i}" for i in range(12)])
    ModelRegistry(store).register("wide", make_detector("mset").fit(wide.iloc[:500]),
                                  signature={"task": "detect"})
    four = make_detector("mset").fit(plant(500, 1))
    ModelRegistry(store).register("plant", four, signature=model_signature(four))
    faulty = wide.to_numpy()[500:520] + 5.0 * wide.iloc[:500].std().to_numpy()  # alarms
    overflow = plant(3, 2).to_numpy(copy=True)
    overflow[-1, 0] = 1e200
    with serving(store, tmp_path, models=("oil@champion", "wide", "plant")) as app:
        costly = app.post("/v1/models/wide/detect?explain=true",
                          json={"windows": faulty[:, None, :].tolist()})
        affordable = app.post("/v1/models/wide/detect?explain=true",
                              json={"windows": faulty[:10, None, :].tolist()})
        overflowed = app.post("/v1/models/plant/detect?explain=true",
                              json={"window": overflow[-1:].tolist()})
    assert costly.status_code == 422
    assert re.search(r"explaining (1[7-9]|20) alarms of 12 columns takes [\d,]+ scores, "
                     r"more than 65,536", costly.text)
    explained = [r for r in affordable.json()["results"] if r["alarm"]]
    assert affordable.status_code == 200 and len(explained) >= 8
    assert all(r["cause"] in wide.columns for r in explained)
    assert overflowed.status_code == 200, overflowed.text
    answer = overflowed.json()
    assert answer["alarm"] is True and answer["cause"] is None and "shares" not in answer


def test_shares_are_signed_and_the_cause_is_the_largest_push() -> None:
    contributions = np.array([[1.0, -1.0, 2.0], [-0.4, 0.3, -0.5], [np.nan, 1.0, 0.0],
                              [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(shares(contributions)[:2], [[0.25, -0.25, 0.5],
                                                           [-1 / 3, 0.25, -5 / 12]])
    assert np.isnan(shares(contributions)[2]).all() and (shares(contributions)[3] == 0).all()
    # a negative total (the reference centre itself scored high) does not flip the cause
    assert causes(contributions) == [2, 1, None, 0]
