"""The ``detect`` op's reference-fitted life: fit on a ``reference`` table, score the table with
everything frozen, output the fitted detector as a ``model`` artifact, and score later rows
with it (``fitted`` input), in one run or the next."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from amml import load_model, open_store, run_workflow
from amml._exceptions import OpError, RegistryError, StepFailedError, StoreError
from amml.lang import load_yaml_text
from amml.ops.base import StepContext
from amml.ops.detectors.base import make_detector
from amml.ops.detectors.detect import Detect
from amml.ops.detectors.fitted import (
    LEGACY_METADATA_KEY,
    FittedDetector,
    detector_from_bytes,
    detector_to_bytes,
)
from amml.ops.models.register import model_signature
from amml.registry.cards import build_card
from amml.store.artifacts.serializers import deserialize, serialize
from amml.store.model_registry import ModelRegistry

BREAK = (200, 260)  # rows of the scored table where the channels stop moving together


def pump(rows: int, seed: int, broken: tuple[int, int] | None = None) -> pd.DataFrame:
    """Two channels that move together (plus a third of noise), hourly; within ``broken`` the
    second channel turns against the first while each stays in its usual range."""
    rng = np.random.default_rng(seed)
    drive = np.sin(np.arange(rows) / 7.0) + rng.normal(0, 0.05, rows)
    frame = pd.DataFrame({
        "flow": drive + rng.normal(0, 0.05, rows),
        "pressure": 2.0 * drive + rng.normal(0, 0.05, rows),
        "noise": rng.normal(0, 1, rows),
    }, index=pd.date_range("2024-05-01", periods=rows, freq="h", name="time"))
    frame["is_anomaly"] = 0
    if broken is not None:
        lo, hi = broken
        frame.iloc[lo:hi, 1] = -frame.iloc[lo:hi, 1]
        frame.iloc[lo:hi, 3] = 1
    return frame


def test_fit_on_the_reference_then_score_frozen_as_the_python_api_does() -> None:
    reference, table = pump(500, 1), pump(400, 2, BREAK)
    result = Detect(detector="pca_t2q", label="is_anomaly").run(
        StepContext(), table, reference=reference)
    out, report, fitted = result["out"], result["report"], result["detector"]
    # the same detector object and numbers as the Python API (issue 13, item 5)
    columns = ["flow", "pressure", "noise"]
    expected = make_detector("pca_t2q").fit(reference[columns]).score(table[columns].to_numpy())
    np.testing.assert_array_equal(out["score"].to_numpy(), expected)
    assert report["columns"] == columns and report["threshold"] == 0.5
    assert report["fitted"] == {"on": "reference", "reference_rows": 500,
                                "threshold_raw": fitted.threshold_raw_}
    alarm = out["alarm"].to_numpy()
    # frozen: the whole broken stretch alarms (a moving calibration would absorb it)
    assert alarm[BREAK[0]:BREAK[1]].mean() >= 0.95
    assert alarm[:BREAK[0]].sum() + alarm[BREAK[1]:].sum() <= 4
    assert report["metrics"]["recall"] >= 0.95
    assert isinstance(fitted, FittedDetector) and fitted.columns_ == columns
    # the output is the detector as fitted (not as the table left it): same reference and
    # settings, same artifact, so registering it again registers nothing new
    assert detector_to_bytes(fitted) == detector_to_bytes(
        make_detector("pca_t2q").fit(reference[columns]))


def test_without_a_reference_the_detector_streams_as_before() -> None:
    table = pump(600, 3)
    plain = Detect(detector="pca_t2q", params={"warmup": 300}).run(StepContext(), table)
    assert "detector" not in plain and "fitted" not in plain["report"]
    assert plain["out"]["score"].iloc[:300].isna().all()


def test_a_stored_detector_scores_later_rows_as_the_fitted_one_would() -> None:
    reference, first, later = pump(500, 4), pump(300, 5), pump(400, 6, BREAK)
    fitted = Detect(detector="mset").run(StepContext(), first, reference=reference)["detector"]
    kind, data = serialize(fitted, "model")  # what the engine stores for the output
    assert kind == "model"
    stored = deserialize(kind, data)
    assert isinstance(stored, FittedDetector) and stored.columns_ == fitted.columns_
    again = Detect().run(StepContext(), later, fitted=stored)
    # the output is the detector as fitted: scoring `first` did not move it
    twin = make_detector("mset").fit(reference[fitted.columns_])
    np.testing.assert_array_equal(again["out"]["score"].to_numpy(),
                                  twin.score(later[fitted.columns_].to_numpy()))
    assert again["report"]["detector"] == "mset"
    assert again["report"]["fitted"]["on"] == "fitted input"
    # the input is left as it was stored: scoring moved a copy
    assert detector_to_bytes(stored) == data
    assert again["out"]["alarm"].to_numpy()[BREAK[0]:BREAK[1]].mean() >= 0.9


def _pump_fit(tmp_path: Path, train: float = 0.6, detect_extra: str = "") -> Any:
    """Fit ``pca_t2q`` on a training split of ``history.csv``, score the test split and
    register the detector as ``pump-detector@champion``."""
    return load_yaml_text(f"""
name: pump-fit
steps:
  raw:
    op: source.csv
    with: {{path: {tmp_path / 'history.csv'}, time: time}}
  parts:
    op: split
    inputs: {{table: raw}}
    with: {{train: {train}, val: 0.1}}
  scored:
    op: detect
    inputs: {{table: parts.test, reference: parts.train}}
    with: {{detector: pca_t2q, label: is_anomaly{detect_extra}}}
  registered:
    op: register
    inputs: {{model: scored.detector, data: parts.test, metrics: scored.report}}
    with: {{name: pump-detector, aliases: [champion]}}
""")


def test_the_reference_life_in_a_workflow_across_two_runs(tmp_path: Path) -> None:
    """Run 1 fits on a training split, stores and registers the detector; run 2 scores new
    rows with the version the alias points at: the numbers of one object."""
    pump(900, 7, (750, 800)).to_csv(tmp_path / "history.csv")
    pump(300, 8, (100, 140)).to_csv(tmp_path / "today.csv")
    fit = _pump_fit(tmp_path)
    score = load_yaml_text(f"""
name: pump-score
steps:
  today:
    op: source.csv
    with: {{path: {tmp_path / 'today.csv'}, time: time}}
  scored:
    op: detect
    inputs: {{table: today}}
    with: {{model: pump-detector@champion, label: is_anomaly}}
""")
    with open_store(tmp_path / "home") as store:
        first = run_workflow(fit, store=store).raise_for_status()
        report = first.output("scored", "report")
        assert report["fitted"]["reference_rows"] == 540
        assert report["metrics"]["recall"] >= 0.9
        ref = first.steps["scored"].outputs["detector"]
        assert ref.type == "model"
        stored = store.artifacts.load(ref)
        registered = first.output("registered")
        assert registered["artifact"] == ref.digest  # the stored artifact, not a copy
        assert registered["signature"] == {
            "task": "detect", "detector": "pca_t2q", "model_kind": "pca_t2q", "freq": "h",
            "lookback": 1, "columns": ["flow", "pressure", "noise"], "outputs": ["score"]}
        refit = run_workflow(fit, store=store).raise_for_status()
        assert refit.count("cached") == len(refit.steps)  # the fitted detector too
        assert refit.steps["scored"].outputs["detector"] == ref
        second = run_workflow(score, store=store).raise_for_status()
        result = second.output("scored", "report")
        scores = second.output("scored")["score"].to_numpy()
        card = build_card(store, "pump-detector@champion", plots=False)
        assert card.intended_use.startswith(
            "Scores each row of flow, pressure, noise (sampled at frequency h) for anomalies "
            "with a fitted pca_t2q detector, from the last 1 rows")
        assert {c.name: c.status for c in card.checks} == {
            "signature complete": "pass", "detection metrics recorded": "pass",
            "lineage recorded": "pass"}
        assert "metrics.recall" in card.metrics
        assert "`/detect?explain=true`" in card.intended_use  # how to ask which column
        text = card.to_markdown(plot_link=None)
        assert "## Metrics on the scored table" in text and "test split" not in text
        assert [e["op"] for e in card.lineage["evaluation"]] == ["scored table"]
        # a detector version is not a forecaster: load_model (and the server) say so

        with pytest.raises(RegistryError, match="PCAT2QDetector is not a forecaster"):
            load_model("pump-detector@champion", store=store)
        again = run_workflow(score, store=store).raise_for_status()
        # cached by the version the alias resolves to, which has not moved
        assert again.steps["today"].status == "cached"
        assert again.steps["scored"].status == "cached"
        # the alias moves to another version (a fit on less of the reference): it runs again
        registry = ModelRegistry(store)
        other = make_detector("pca_t2q").fit(pump(300, 5)[stored.columns_])
        moved = registry.register("pump-detector", other)
        registry.set_alias("pump-detector", "champion", moved.version)
        third = run_workflow(score, store=store).raise_for_status()
        assert third.steps["scored"].status == "ran"
        assert not np.array_equal(third.output("scored")["score"].to_numpy(), scores)
        assert run_workflow(score, store=store).steps["scored"].status == "cached"
        registry.set_alias("pump-detector", "champion", registered["version"])
        back = run_workflow(score, store=store).raise_for_status()
        assert back.steps["scored"].status == "cached"  # the first version's run, found again
        np.testing.assert_array_equal(back.output("scored")["score"].to_numpy(), scores)
    assert isinstance(stored, FittedDetector) and stored.columns_ == ["flow", "pressure", "noise"]
    today = pd.read_csv(tmp_path / "today.csv", index_col="time", parse_dates=True)
    np.testing.assert_array_equal(scores, stored.score(today[stored.columns_].to_numpy()))
    assert result["fitted"]["on"] == "model pump-detector@champion"
    assert result["metrics"]["recall"] >= 0.9


def test_a_register_step_run_again_with_the_same_model_registers_nothing_new(
        tmp_path: Path) -> None:
    """Turning ``explain`` on changes the detect report, not the detector or its metrics:
    the register step runs again and finds the version it made; a new fit is a new one."""
    pump(900, 7, (750, 800)).to_csv(tmp_path / "history.csv")

    with open_store(tmp_path / "home") as store:
        first = run_workflow(_pump_fit(tmp_path), store=store).raise_for_status()
        first = first.output("registered")
        assert first["version"] == 1 and first["new"] is True
        explained = run_workflow(_pump_fit(tmp_path, detect_extra=", explain: true"),
                                 store=store).raise_for_status()
        assert explained.steps["registered"].status == "ran"
        again = explained.output("registered")
        assert (again["version"], again["new"], again["artifact"]) == (1, False,
                                                                       first["artifact"])
        refit = run_workflow(_pump_fit(tmp_path, train=0.5), store=store).raise_for_status()
        assert refit.output("registered")["version"] == 2
        assert refit.output("registered")["new"] is True
        registry = ModelRegistry(store)
        assert [v.version for v in registry.versions("pump-detector")] == [1, 2]
        assert registry.aliases("pump-detector") == {"champion": 2}


def test_an_alias_moved_by_the_run_itself_does_not_put_old_scores_under_the_new_version(
        tmp_path: Path) -> None:
    """``live`` scores with champion while ``registered`` (same run, not upstream of it)
    moves champion: ``live`` used the version its key holds, and the next run, keyed by the
    new version, scores with the new version (not the old scores, cached under its key)."""
    from amml.engine.executors.local import SequentialExecutor

    pump(900, 7, (750, 800)).to_csv(tmp_path / "history.csv")

    def workflow(train: float) -> Any:
        return load_yaml_text(f"""
name: pump
steps:
  raw: {{op: source.csv, with: {{path: {tmp_path / 'history.csv'}, time: time}}}}
  parts: {{op: split, inputs: {{table: raw}}, with: {{train: {train}, val: 0.1}}}}
  fit:
    op: detect
    inputs: {{table: parts.test, reference: parts.train}}
    with: {{detector: pca_t2q, label: is_anomaly}}
  live:
    op: detect
    inputs: {{table: fit.out}}
    with: {{model: pump-detector@champion}}
  registered:
    op: register
    inputs: {{model: fit.detector}}
    with: {{name: pump-detector, aliases: [champion]}}
""")

    with open_store(tmp_path / "home") as store:
        run = SequentialExecutor()
        first = run_workflow(workflow(0.6), store=store, executor=run, raise_on_failure=False)
        assert first.steps["live"].status == "failed"  # no champion yet
        moved = run_workflow(workflow(0.5), store=store, executor=run).raise_for_status()
        assert moved.output("live", "report")["fitted"]["version"] == 1  # before the move
        assert ModelRegistry(store).aliases("pump-detector") == {"champion": 2}
        after = run_workflow(workflow(0.5), store=store, executor=run).raise_for_status()
        assert after.steps["live"].status == "ran"
        assert after.output("live", "report")["fitted"]["version"] == 2
        second = store.artifacts.load(after.steps["fit"].outputs["detector"])
        table = after.output("fit")
        np.testing.assert_array_equal(after.output("live")["score"].to_numpy(),
                                      second.score(table[second.columns_].to_numpy()))


def test_the_step_scores_with_the_version_its_key_holds(store) -> None:
    """The engine keys a ``model:`` step by the version the alias resolves to when the step
    is submitted and hands that token to the step: the alias moving before the step starts
    does not change what it scores with."""
    registry = ModelRegistry(store)
    columns = ["flow", "pressure", "noise"]
    versions = [registry.register("pump", make_detector("pca_t2q").fit(pump(400, seed)[columns]))
                for seed in (1, 2)]
    registry.set_alias("pump", "champion", 2)
    table = pump(200, 3)
    token = json.dumps(["pump", 1, versions[0].artifact_digest])
    ctx = StepContext(registry_factory=lambda: registry, state_token=token)
    result = Detect(model="pump@champion").run(ctx, table)
    first = registry.load(versions[0])
    np.testing.assert_array_equal(result["out"]["score"].to_numpy(),
                                  first.score(table[columns].to_numpy()))
    assert result["report"]["fitted"]["version"] == 1
    unpinned = Detect(model="pump@champion").run(
        StepContext(registry_factory=lambda: registry), table)
    assert "version" not in unpinned["report"]["fitted"]
    assert not np.array_equal(unpinned["out"]["score"].to_numpy(),
                              result["out"]["score"].to_numpy())
    assert Detect(model="pump@champion").store_state(None) is None  # no store: it runs
    assert Detect(model="pump@champion").store_state(store) == json.dumps(
        ["pump", 2, versions[1].artifact_digest])
    stale = json.dumps(["pump", 1, versions[1].artifact_digest])
    with pytest.raises(OpError, match="version 1 changed as the step started"):
        Detect(model="pump@champion").run(
            StepContext(registry_factory=lambda: registry, state_token=stale), table)


def test_a_users_detector_edited_after_registering_runs_the_step_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The step's code digest covers AMML's detectors; a registered version of a user's
    (imported by the workflow) is keyed by its code too, what it imports included."""
    monkeypatch.syspath_prepend(str(tmp_path))
    helper = tmp_path / "cache_test_helper.py"
    helper.write_text("FACTOR = 1.0\n")
    module = tmp_path / "cache_test_detector.py"
    module.write_text(
        "import cache_test_helper\n"
        "from amml.ops.detectors.base import register_detector\n"
        "from amml.ops.detectors.multivariate import PCAT2QDetector\n\n\n"
        "@register_detector\n"
        "class CacheTestPCA(PCAT2QDetector):\n"
        "    name = 'cache_test_pca'\n\n"
        "    def _raw(self, features):\n"
        "        return cache_test_helper.FACTOR * super()._raw(features)\n")
    pump(600, 7).to_csv(tmp_path / "history.csv")
    pump(200, 8).to_csv(tmp_path / "today.csv")
    fit = load_yaml_text(f"""
name: user-fit
imports: [{module}]
steps:
  raw: {{op: source.csv, with: {{path: {tmp_path / 'history.csv'}, time: time}}}}
  scored:
    op: detect
    inputs: {{table: raw, reference: raw}}
    with: {{detector: cache_test_pca}}
  registered:
    op: register
    inputs: {{model: scored.detector}}
    with: {{name: user-detector, aliases: [champion]}}
""")
    score = load_yaml_text(f"""
name: user-score
imports: [{module}]
steps:
  today: {{op: source.csv, with: {{path: {tmp_path / 'today.csv'}, time: time}}}}
  live:
    op: detect
    inputs: {{table: today}}
    with: {{model: user-detector@champion}}
""")
    with open_store(tmp_path / "home") as store:
        run_workflow(fit, store=store).raise_for_status()
        ran = run_workflow(score, store=store)
        assert ran.steps["live"].status == "ran"
        # the key holds the code's digest beside the version: the step still finds its version
        assert ran.output("live", "report")["fitted"]["version"] == 1
        assert run_workflow(score, store=store).steps["live"].status == "cached"
        module.write_text(module.read_text() + "    # scores differently now\n")
        assert run_workflow(score, store=store).steps["live"].status == "ran"
        assert run_workflow(score, store=store).steps["live"].status == "cached"
        helper.write_text("FACTOR = 3.0  # what the detector imports changed\n")
        assert run_workflow(score, store=store).steps["live"].status == "ran"


def test_a_registered_reference_needs_a_store_and_a_fitted_detector(tmp_path: Path) -> None:
    table = pump(100, 13)
    with pytest.raises(OpError, match="run the workflow with a store"):
        Detect(model="pump@champion").run(StepContext(), table)


def test_saved_detectors_of_the_earlier_format_still_load() -> None:
    from safetensors.numpy import save as st_save

    fitted = make_detector("pca_t2q").fit(pump(400, 9)[["flow", "pressure"]])
    meta, arrays = fitted.state()
    legacy = st_save({k: np.ascontiguousarray(v) for k, v in sorted(arrays.items())},
                     metadata={LEGACY_METADATA_KEY: json.dumps(meta, sort_keys=True)})
    loaded = detector_from_bytes(legacy)
    rows = pump(100, 10)[["flow", "pressure"]].to_numpy()
    np.testing.assert_array_equal(loaded.score(rows), fitted.score(rows))
    with pytest.raises(StoreError, match="cannot be loaded from the store"):
        detector_from_bytes(st_save({"x": np.zeros(1)}, metadata={
            LEGACY_METADATA_KEY: json.dumps({"detector": "amml", "params": {}})}))


def test_errors_name_the_problem() -> None:
    reference, table = pump(400, 11), pump(200, 12)
    with pytest.raises(OpError, match=r"learns as it streams.*pca_t2q"):
        Detect(detector="rolling_mad").run(StepContext(), table, reference=reference)
    fitted = Detect(detector="pca_t2q", label="is_anomaly").run(
        StepContext(), table, reference=reference)["detector"]
    with pytest.raises(OpError, match="not 'reference' and 'fitted'"):
        Detect().run(StepContext(), table, reference=reference, fitted=fitted)
    with pytest.raises(OpError, match="not 'reference' and 'model'"):
        Detect(model="pump@champion").run(StepContext(), table, reference=reference)
    with pytest.raises(OpError, match="not a fitted detector"):
        Detect().run(StepContext(), table, fitted={"not": "a detector"})
    with pytest.raises(OpError, match="not a fitted detector"):
        Detect().run(StepContext(), table, fitted=make_detector("pca_t2q"))  # never fitted
    with pytest.raises(OpError, match="configured, but input 'fitted' is a fitted 'pca_t2q'"):
        Detect(detector="mset").run(StepContext(), table, fitted=fitted)
    with pytest.raises(OpError, match="keeps the parameters it was fitted with"):
        Detect(params={"window": 64}).run(StepContext(), table, fitted=fitted)
    with pytest.raises(OpError, match=r"columns \['flow', 'pressure'\] are not the ones the "
                                      r"pca_t2q detector was fitted on: \['flow', 'pressure', "
                                      r"'noise'\]"):
        Detect(columns=["flow", "pressure"]).run(StepContext(), table, fitted=fitted)
    with pytest.raises(OpError, match=r"the table lacks \['noise'\], which the pca_t2q detector "
                                      r"was fitted on"):
        Detect().run(StepContext(), table.drop(columns="noise"), fitted=fitted)
    with pytest.raises(OpError, match=r"^reference: columns \['noise'\] not found"):
        Detect(detector="pca_t2q", columns=["flow", "noise"]).run(
            StepContext(), table, reference=reference.drop(columns="noise"))
    for threshold in ({"kind": "quantile"}, {"kind": "fixed", "value": 0.9},
                      {"kind": "labels"}):
        with pytest.raises(OpError, match="threshold is frozen on its reference"):
            Detect(threshold=threshold, label="is_anomaly").run(StepContext(), table,
                                                                fitted=fitted)


def test_columns_are_matched_by_name_not_position() -> None:
    """A configured list in another order, or a table with its columns in another order,
    scores the same: the detector takes its columns by the names it was fitted on."""
    reference, table = pump(500, 15), pump(300, 16, BREAK)
    fitted = Detect(detector="pca_t2q", label="is_anomaly").run(
        StepContext(), table, reference=reference)["detector"]
    plain = Detect(label="is_anomaly").run(StepContext(), table, fitted=fitted)["out"]
    shuffled = table[["noise", "is_anomaly", "pressure", "flow"]]
    for other in (Detect(label="is_anomaly", columns=["pressure", "noise", "flow"]).run(
                      StepContext(), table, fitted=fitted)["out"],
                  Detect(label="is_anomaly").run(StepContext(), shuffled, fitted=fitted)["out"]):
        np.testing.assert_array_equal(other["score"].to_numpy(), plain["score"].to_numpy())
    assert plain["alarm"].to_numpy()[:BREAK[0]].sum() <= 2


def test_gaps_at_the_start_of_a_reference_are_not_zeros() -> None:
    """Missing values before a column's first reading are carried back from it, not read as
    0 in the data's units (which would inflate the scale and hide every anomaly)."""
    reference, table = pump(500, 17), pump(300, 18, BREAK)
    reference[["flow", "pressure"]] += 100.0
    table[["flow", "pressure"]] += 100.0
    gappy = reference.copy()
    gappy.iloc[:3, 0] = np.nan
    clean = Detect(detector="pca_t2q", label="is_anomaly").run(
        StepContext(), table, reference=reference)
    with_gaps = Detect(detector="pca_t2q", label="is_anomaly").run(
        StepContext(), table, reference=gappy)
    assert with_gaps["detector"].scale_[0] == pytest.approx(clean["detector"].scale_[0],
                                                            rel=0.05)
    assert with_gaps["report"]["metrics"]["recall"] >= 0.9


def test_a_stored_detector_names_no_module_to_import(tmp_path: Path) -> None:
    """The artifact names the FittedDetector base: a fresh interpreter that has imported no
    detector module (``amml models card``, ``amml serve``) rebuilds it, the base's module
    imported from the store's own table and the detector looked up by its registered name."""
    import subprocess
    import sys

    fitted = make_detector("pca_t2q").fit(pump(300, 14)[["flow", "pressure"]])
    path = tmp_path / "detector.safetensors"
    path.write_bytes(serialize(fitted, "model")[1])
    script = (
        "import sys\n"
        "from amml.store.artifacts.serializers import deserialize\n"
        "before = any(m.startswith('amml.ops.detectors') for m in sys.modules)\n"
        f"detector = deserialize('model', open({str(path)!r}, 'rb').read())\n"
        "print(before, type(detector).__name__, detector.columns_)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == ["False", "PCAT2QDetector", "['flow',", "'pressure']"]


def streaming(name: str, periods: int, seed: int) -> str:
    """A workflow whose detect step streams (no reference: no fitted detector is made)."""
    return f"""
name: {name}
steps:
  raw:
    op: source.synthetic
    with: {{periods: {periods}, seed: {seed}}}
  scored:
    op: detect
    inputs: {{table: raw}}
    with: {{detector: rolling_mad, label: is_anomaly}}"""


def test_a_step_bound_to_a_detector_that_was_not_fitted_fails_naming_it(tmp_path: Path) -> None:
    """``detector`` is an optional output: a streaming detect step makes none, and a step
    bound to it fails with the reason (the rest of the run is unaffected)."""
    workflow = load_yaml_text(streaming("no-fit", periods=300, seed=3) + """
  registered:
    op: register
    inputs: {model: scored.detector}
    with: {name: nothing}
""")
    with open_store(tmp_path / "home") as store, pytest.raises(StepFailedError) as failed:
        run_workflow(workflow, store=store)
    assert failed.value.step == "registered"
    assert str(failed.value).endswith(
        "OpError: input 'model': step 'scored' made no 'detector' output this run (op 'detect' "
        "makes it only in some cases)")
    with open_store(tmp_path / "home") as store:  # the detect step ran and is kept
        steps = {row["name"]: row for row in store.metadata.run_steps(failed.value.run_id)}
    assert steps["scored"]["status"] == "ran"


def test_only_declared_outputs_may_be_optional() -> None:
    from amml.ops.base import Op

    class Odd(Op):
        name = "odd"
        outputs = {"out": "table"}
        optional_outputs = frozenset({"other"})

    with pytest.raises(OpError, match=r"optional outputs \['other'\] are not declared"):
        Odd.check_declaration()


def test_amml_ops_says_the_detector_output_is_made_in_some_runs_only() -> None:
    from amml.cli.ops import describe

    info = describe(Detect)
    assert [(p["name"], p["optional"]) for p in info["outputs"]] == [
        ("out", False), ("report", False), ("detector", True)]
    assert [(p["name"], p["required"]) for p in info["inputs"]] == [
        ("table", True), ("reference", False), ("fitted", False)]


def test_asking_a_run_for_an_output_that_was_not_made_says_so(tmp_path: Path) -> None:
    workflow = load_yaml_text(streaming("stream-only", periods=200, seed=5))
    with open_store(tmp_path / "home") as store:
        result = run_workflow(workflow, store=store)
        with pytest.raises(KeyError, match="step 'scored' made no 'detector' output in this run "
                                           r"\(it made: out, report\)"):
            result.output("scored", "detector")


def test_integer_column_names_and_a_detector_fitted_on_a_plain_array() -> None:
    """Column names are kept as text (what a signature and a server speak) and matched to
    the table's by text; a detector fitted on an array scores the table's numeric columns
    but the label and the timestamp."""
    rng = np.random.default_rng(19)
    reference = pd.DataFrame(rng.normal(0, 1, (300, 2)))  # columns 0 and 1
    table = pd.DataFrame(rng.normal(0, 1, (100, 2)))
    table.iloc[60, 1] += 12.0
    result = Detect(detector="pca_t2q").run(StepContext(), table, reference=reference)
    fitted = result["detector"]
    assert fitted.columns_ == ["0", "1"]
    assert model_signature(fitted)["columns"] == ["0", "1"]
    again = Detect().run(StepContext(), table[[1, 0]], fitted=fitted)
    np.testing.assert_array_equal(again["out"]["score"].to_numpy(),
                                  result["out"]["score"].to_numpy())
    assert int(np.argmax(again["out"]["score"].to_numpy())) == 60

    plain = make_detector("pca_t2q").fit(reference.to_numpy())  # no names
    stamped = table.assign(t=np.arange(len(table)) * 3_600_000_000_000)[["t", 0, 1]]
    scored = Detect(timestamp="t").run(StepContext(), stamped, fitted=plain)
    assert scored["report"]["columns"] == [0, 1]  # the timestamp column is not a feature
    np.testing.assert_array_equal(scored["out"]["score"].to_numpy(),
                                  plain.score(table.to_numpy()))


def test_streaming_and_batch_lives_agree_on_gaps_before_a_first_reading() -> None:
    rows = pump(600, 20)[["flow", "pressure"]].to_numpy() + 100.0
    rows[:3, 0] = np.nan
    batch = make_detector("pca_t2q", warmup=200).score_series(rows)
    streaming = make_detector("pca_t2q", warmup=200)
    one_by_one = np.array([streaming.update(i, row) for i, row in enumerate(rows)])
    np.testing.assert_allclose(one_by_one, batch, rtol=1e-9, atol=1e-12)  # row vs batch sums
    assert streaming.scale_[0] < 2.0  # carried back from the first reading, not from 0


def test_amml_models_list_shows_a_detector_without_a_horizon() -> None:
    from amml.cli.models import _signature_text

    assert _signature_text({"task": "detect", "detector": "pca_t2q", "model_kind": "pca_t2q",
                            "lookback": 3, "freq": "h"}) == "pca_t2q detect L3 h"
    assert _signature_text({"model_kind": "linear", "lookback": 96, "horizon": 24}) == (
        "linear L96→H24")
