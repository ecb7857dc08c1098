"""Text AMML did not write (errors, workflow names, reasons) prints as written: Rich markup
would eat "[torch]" in "pip install 'amml[torch]'"."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from amml import compile_workflow, run_workflow
from amml.cli.main import app
from amml.store import open_store

FLOW = """\
name: "brackets[torch]"
imports: [failing_ops.py]
steps:
  raw: {op: source.synthetic, with: {periods: 50}}
  boom: {op: tests.markup.boom, inputs: {table: raw}}
"""

OPS = """\
import amml

@amml.op(name="tests.markup.boom")
def boom(table):
    raise RuntimeError("install it with pip install 'amml[torch]' first")
"""


def test_show_prints_a_stored_error_and_name_with_brackets_intact(tmp_path: Path) -> None:
    (tmp_path / "failing_ops.py").write_text(OPS)
    (tmp_path / "flow.yaml").write_text(FLOW)
    home = tmp_path / ".amml"
    store = open_store(home)
    try:
        result = run_workflow(compile_workflow(tmp_path / "flow.yaml"), store=store,
                              raise_on_failure=False)
    finally:
        store.close()
    assert result.status == "failed"
    shown = CliRunner().invoke(app, ["show", result.run_id, "--home", str(home)],
                               env={"COLUMNS": "300"})
    assert "amml[torch]" in shown.output, shown.output
    assert "brackets[torch]" in shown.output
