"""The content-addressed step cache: reuse, targeted invalidation, overrides."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from amml import compile_workflow, run_workflow
from amml.engine.fingerprint import code_digest, fingerprint_value
from amml.lang import load_yaml_text
from amml.store import Store
from tests.helpers import SMALL_YAML


def _statuses(result) -> dict[str, str]:
    return {name: outcome.status for name, outcome in result.steps.items()}


def test_second_run_is_fully_cached_and_reuses_outputs(store: Store) -> None:
    workflow = compile_workflow(load_yaml_text(SMALL_YAML))
    first = run_workflow(workflow, store=store)
    assert set(_statuses(first).values()) == {"ran"}
    second = run_workflow(workflow, store=store)
    assert set(_statuses(second).values()) == {"cached"}
    assert second["score"] == first["score"]
    assert {n: o.outputs for n, o in first.steps.items()} == {
        n: o.outputs for n, o in second.steps.items()}


def test_a_cached_steps_first_output_is_its_ops_first_output(store: Store) -> None:
    """``splits`` (train, val, test) comes back from the cache with its outputs sorted by
    name: ``result["splits"]`` is still the train table, as in the run that made it."""
    workflow = compile_workflow(load_yaml_text(SMALL_YAML))
    first = run_workflow(workflow, store=store)
    second = run_workflow(workflow, store=store)
    assert _statuses(second)["splits"] == "cached"
    assert list(second.steps["splits"].outputs) != list(first.steps["splits"].outputs)
    pd.testing.assert_frame_equal(second["splits"], first.output("splits", "train"))
    pd.testing.assert_frame_equal(first["splits"], first.output("splits", "train"))


def test_changing_one_param_reruns_only_affected_steps(store: Store) -> None:
    run_workflow(compile_workflow(load_yaml_text(SMALL_YAML)), store=store)
    changed = run_workflow(compile_workflow(load_yaml_text(SMALL_YAML),
                                            {"target": "load"}), store=store)
    assert _statuses(changed) == {"raw": "cached", "clean": "cached", "splits": "cached",
                                  "model": "ran", "score": "ran", "alarms": "cached"}


def test_changing_one_step_config_reruns_it_and_dependents_only(store: Store) -> None:
    run_workflow(compile_workflow(load_yaml_text(SMALL_YAML)), store=store)
    edited = SMALL_YAML.replace("{train: 0.6, val: 0.2}", "{train: 0.5, val: 0.2}")
    result = run_workflow(compile_workflow(load_yaml_text(edited)), store=store)
    assert _statuses(result) == {"raw": "cached", "clean": "cached", "splits": "ran",
                                 "model": "ran", "score": "ran", "alarms": "cached"}


def test_same_output_downstream_stays_cached_after_forced_rerun(store: Store) -> None:
    workflow = compile_workflow(load_yaml_text(SMALL_YAML))
    run_workflow(workflow, store=store)
    result = run_workflow(workflow, store=store, rerun=["clean"])
    # clean ran again, produced identical bytes, so nothing downstream had to run
    assert _statuses(result)["clean"] == "ran"
    assert _statuses(result)["splits"] == "cached"


def test_no_cache_runs_everything(store: Store) -> None:
    workflow = compile_workflow(load_yaml_text(SMALL_YAML))
    run_workflow(workflow, store=store)
    result = run_workflow(workflow, store=store, use_cache=False)
    assert set(_statuses(result).values()) == {"ran"}


def test_deleted_artifact_is_recomputed_not_trusted(store: Store) -> None:
    workflow = compile_workflow(load_yaml_text(SMALL_YAML))
    first = run_workflow(workflow, store=store)
    ref = first.steps["model"].outputs["model"]
    store.artifacts.path(ref.digest).unlink()
    store.artifacts._memo.clear()
    second = run_workflow(workflow, store=store)
    assert _statuses(second)["model"] == "ran"
    assert store.artifacts.exists(ref.digest)


def test_dataframes_hash_by_content_not_identity() -> None:
    index = pd.date_range("2024-01-01", periods=50, freq="h", name="t")
    a = pd.DataFrame({"x": np.arange(50.0), "y": np.ones(50)}, index=index)
    b = pd.DataFrame({"x": np.arange(50.0), "y": np.ones(50)}, index=index)
    assert a is not b and fingerprint_value(a) == fingerprint_value(b)
    b.iloc[3, 0] = -1
    assert fingerprint_value(a) != fingerprint_value(b)


def test_dataframe_digest_is_stable_across_processes() -> None:
    code = ("import numpy as np, pandas as pd\n"
            "from amml.engine.fingerprint import fingerprint_value\n"
            "i = pd.date_range('2024-01-01', periods=30, freq='h', name='t')\n"
            "print(fingerprint_value(pd.DataFrame({'x': np.arange(30.0)}, index=i)))\n")
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout.strip() for _ in range(2)}
    assert len(digests) == 1 and len(digests.pop()) == 64


def helper(value: float) -> float:
    return value * 2


def user_op(value: float) -> float:
    return helper(value) + 1


def test_code_digest_covers_same_module_helpers() -> None:
    before = code_digest(user_op)
    assert len(before) == 64 and before == code_digest(user_op)
    assert code_digest(user_op) != code_digest(helper)


FLOW = """\
import pandas as pd
from amml import Workflow, op, ops


def factor():
    return {factor}


@op
def scaled(table: pd.DataFrame) -> pd.DataFrame:
    return table[["temperature"]] * factor()


with Workflow("code-change") as wf:
    raw = ops.source.synthetic(periods=200)
    out = scaled(raw)
    ops.preprocess(out, scale="zscore", name="after")
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "amml.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_editing_a_helper_function_invalidates_only_the_op_using_it(tmp_path: Path) -> None:
    import json

    flow = tmp_path / "flow.py"
    flow.write_text(FLOW.format(factor=2))
    first = json.loads(_cli("run", str(flow), "--json", cwd=tmp_path).stdout)
    again = json.loads(_cli("run", str(flow), "--json", cwd=tmp_path).stdout)
    flow.write_text(FLOW.format(factor=3))
    edited = _cli("run", str(flow), "--json", cwd=tmp_path)
    changed = json.loads(edited.stdout)
    assert first["counts"]["ran"] == 3
    assert again["counts"]["cached"] == 3
    assert {s["name"]: s["status"] for s in changed["steps"]} == {
        "raw": "cached", "out": "ran", "after": "ran"}


def test_a_new_op_version_reruns_that_op_and_what_follows(
        store: Store, monkeypatch) -> None:
    from amml.ops.transforms.preprocess import Preprocess

    workflow = compile_workflow(load_yaml_text(SMALL_YAML))
    run_workflow(workflow, store=store)
    monkeypatch.setattr(Preprocess, "version", Preprocess.version + "-next")
    again = _statuses(run_workflow(compile_workflow(load_yaml_text(SMALL_YAML)), store=store))
    assert again["raw"] == "cached" and again["clean"] == "ran"


HELPER_MODULE = '''\
def helper(value):
    return value * {factor}


def unrelated(value):
    return value - {unrelated}


def user_op(value):
    return helper(value) + 1
'''


def test_editing_a_same_module_helper_changes_the_digest_and_nothing_else_does(
        tmp_path: Path, monkeypatch) -> None:
    """The module keeps its name and path: only following ``helper`` from ``user_op`` can
    see the edit (a digest of the file or of the module name would not tell the two edits
    apart)."""
    import importlib

    path = tmp_path / "amml_digest_probe.py"
    monkeypatch.syspath_prepend(str(tmp_path))

    def digest_with(factor: int, unrelated: int) -> str:
        path.write_text(HELPER_MODULE.format(factor=factor, unrelated=unrelated))
        module = importlib.import_module("amml_digest_probe")
        module = importlib.reload(module)
        return code_digest(module.user_op)

    try:
        base = digest_with(2, 1)
        assert digest_with(2, 1) == base
        assert digest_with(33, 1) != base  # the helper it calls changed
        assert digest_with(2, 55) == base  # a function it never reaches changed
    finally:
        sys.modules.pop("amml_digest_probe", None)
