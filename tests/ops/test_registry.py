"""Op plugins: the registry, entry points, function ops and the shared conformance checks."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from amml import Input, Op, OpConfig, OpNotFoundError, Workflow, compile_workflow, op, ops
from amml.ops.registry import REGISTRY, OpRegistry
from amml.store.artifacts import LocalArtifactStore
from amml.testing import check_artifact_store, check_op


@pytest.mark.parametrize("name", sorted(REGISTRY.names()))
def test_every_registered_op_passes_the_conformance_checks(name: str) -> None:
    check_op(REGISTRY.get(name))


def test_local_artifact_store_passes_its_checks(tmp_path: Path) -> None:
    check_artifact_store(LocalArtifactStore(tmp_path))


def test_unknown_op_suggests_the_closest() -> None:
    with pytest.raises(OpNotFoundError, match="did you mean 'preprocess'"):
        REGISTRY.get("preproces")
    with pytest.raises(OpNotFoundError, match=r"source\.synthetic"):
        _ = ops.source.synthetc


def test_third_party_ops_load_from_the_entry_point_group(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    package = tmp_path / "amml_plugin_demo"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import pandas as pd\n"
        "from amml import Input, Op, OpConfig\n\n"
        "class Clip(Op):\n"
        "    name = 'plugin.clip'\n"
        "    inputs = {'table': Input('table')}\n"
        "    outputs = {'out': 'table'}\n\n"
        "    class Config(OpConfig):\n"
        "        upper: float = 1.0\n\n"
        "    def run(self, ctx, table):\n"
        "        return table.clip(upper=self.config.upper)\n")
    dist = tmp_path / "amml_plugin_demo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: amml-plugin-demo\n"
                                   "Version: 1.0\n")
    (dist / "entry_points.txt").write_text("[amml.ops]\nclip = amml_plugin_demo:Clip\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = OpRegistry()
    assert registry.find("plugin.clip") is not None
    assert "preprocess" in registry.names()  # built-ins are there too
    check_op(registry.get("plugin.clip"))
    sys.modules.pop("amml_plugin_demo", None)


def test_broken_plugin_is_reported_not_fatal(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[amml.ops]\nbroken = no_such_module_xyz:Op\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = OpRegistry()
    assert "preprocess" in registry.names()
    assert "broken" in registry.plugin_errors


@op(name="tests.scale")
def scale(table: pd.DataFrame, *, factor: float = 2.0) -> pd.DataFrame:
    """Multiply every column."""
    return table * factor


def test_function_op_declares_inputs_config_and_outputs() -> None:
    op_cls = scale.op_class
    assert op_cls.inputs == {"table": Input("table")}
    assert op_cls.outputs == {"out": "table"}
    assert op_cls.Config(factor=3).factor == 3
    check_op(op_cls)


def test_function_op_runs_directly_outside_a_workflow() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    assert scale(frame, factor=3.0)["x"].tolist() == [3.0, 6.0]


def test_function_op_inside_a_workflow_records_a_step() -> None:
    with Workflow("fn") as wf:
        raw = ops.source.synthetic(periods=100)
        bigger = scale(raw, factor=0.5)
    ir = compile_workflow(wf).ir
    assert ir.steps["bigger"].op == "tests.scale"
    assert ir.steps["bigger"].with_ == {"factor": 0.5}
    assert bigger.ref() == "bigger"


def test_op_called_eagerly_outside_a_workflow() -> None:
    frame = ops.source.synthetic(periods=48, seed=2)
    assert len(frame) == 48
    clean = ops.preprocess(frame, scale="zscore")
    assert abs(float(clean["out"]["temperature"].mean())) < 1e-9


def test_class_op_with_constraints_is_validated_before_running() -> None:
    class Window(OpConfig):
        size: int

    class Windowed(Op):
        name = "tests.windowed"
        inputs = {"table": Input("table")}
        outputs = {"out": "table"}
        Config = Window

        def run(self, ctx, table):
            return table.rolling(self.config.size).mean()

    REGISTRY.register(Windowed)
    try:
        check_op(Windowed)
        with Workflow("cls") as wf:
            raw = ops.source.synthetic(periods=100)
            ops.tests.windowed(raw, size=4)
        assert compile_workflow(wf).steps["windowed"].config.size == 4
    finally:
        REGISTRY.unregister("tests.windowed")
