"""An input port that takes several steps (``Input(many=True)``), from YAML and Python."""

from __future__ import annotations

import pandas as pd

from amml import Input, Op, OpConfig, Workflow, compile_workflow, ops, run_workflow
from amml.lang import load_yaml_text
from amml.ops.registry import REGISTRY
from amml.store import Store


class Concat(Op):
    name = "tests.concat"
    inputs = {"tables": Input("table", many=True)}
    outputs = {"out": "table"}
    Config = OpConfig

    def run(self, ctx, tables):
        return pd.concat([t[["load"]] for t in tables], axis=1, keys=range(len(tables)))


def test_many_input_port_from_yaml_and_python(store: Store) -> None:
    REGISTRY.register(Concat)
    try:
        loaded = load_yaml_text("name: m\nsteps:\n"
                                "  a: {op: source.synthetic, with: {periods: 50, seed: 1}}\n"
                                "  b: {op: source.synthetic, with: {periods: 50, seed: 2}}\n"
                                "  both: {op: tests.concat, inputs: {tables: [a, b]}}\n")
        from_yaml = compile_workflow(loaded)
        with Workflow("m") as wf:
            a = ops.source.synthetic(periods=50, seed=1)
            b = ops.source.synthetic(periods=50, seed=2)
            both = ops.tests.concat(tables=[a, b])
        assert both.ref() == "both"
        assert compile_workflow(wf).ir.canonical_json() == from_yaml.ir.canonical_json()
        result = run_workflow(from_yaml, store=store)
        assert result["both"].shape == (50, 2)
        assert store.metadata.edges_for_steps([(result.run_id, "both")])[0]["port"] == "tables"
    finally:
        REGISTRY.unregister("tests.concat")
