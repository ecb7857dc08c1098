"""The Python and YAML forms of a workflow compile to byte-identical canonical IR."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from amml import Workflow, compile_workflow, ops
from amml.cli.main import app
from amml.lang import load_yaml_text

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_example_python_and_yaml_give_identical_ir() -> None:
    from_yaml = compile_workflow(EXAMPLES / "sensors" / "workflow.yaml")
    from_python = compile_workflow(EXAMPLES / "sensors" / "workflow.py")
    assert from_yaml.ir.canonical_json().encode() == from_python.ir.canonical_json().encode()
    assert from_yaml.ir.digest() == from_python.ir.digest()


def test_inline_workflow_matches_yaml_with_unqualified_and_qualified_refs() -> None:
    with Workflow("w", params={"n": 500}) as wf:
        raw = ops.source.synthetic(periods=wf.params.n)
        clean = ops.preprocess(raw["out"], scale="zscore")
        ops.split(clean, name="parts")
    yaml_text = """
name: w
params: {n: 500}
steps:
  raw: {op: source.synthetic, with: {periods: "${params.n}"}}
  clean: {op: preprocess, inputs: {table: raw}, with: {scale: zscore}}
  parts: {op: split, inputs: {table: clean.out}}
"""
    assert compile_workflow(wf).ir.canonical_json() == compile_workflow(
        load_yaml_text(yaml_text)).ir.canonical_json()


def test_export_yaml_round_trips_to_the_same_ir() -> None:
    result = CliRunner().invoke(app, ["export", str(EXAMPLES / "sensors" / "workflow.py"),
                                      "--allow-imports"])
    assert result.exit_code == 0, result.output
    exported = load_yaml_text(result.stdout, "exported.yaml")
    original = compile_workflow(EXAMPLES / "sensors" / "workflow.py")
    assert compile_workflow(exported).ir.canonical_json() == original.ir.canonical_json()
    assert "op: source.synthetic" in result.stdout


def test_param_references_stay_symbolic_in_the_ir() -> None:
    ir = compile_workflow(EXAMPLES / "sensors" / "workflow.py").ir
    assert ir.steps["model"].with_["horizon"] == "${params.horizon}"
    assert ir.params["horizon"] == 24


def test_steps_are_named_after_variables_then_ops() -> None:
    with Workflow("names") as wf:
        first = ops.source.synthetic(periods=100)
        ops.preprocess(first)
        ops.preprocess(first)
    names = list(wf.to_ir().steps)
    assert names == ["first", "preprocess", "preprocess_2"]
