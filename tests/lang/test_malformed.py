"""Malformed workflows: each gets a precise error (file, line, field), exit code 2, no
traceback, and the store is left untouched (not even created)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from amml.cli.main import app

GOOD_HEAD = """\
name: broken
params:
  periods: 500
  label: is_anomaly
steps:
  raw:
    op: source.synthetic
    with: {periods: "${params.periods}"}
"""

# (id, document, expected line, substrings that must appear in the error, extra CLI args)
CASES: list[tuple[str, str, int | None, list[str], list[str]]] = [
    ("yaml-syntax", "name: x\nsteps:\n  a: [1, 2\n", 4, ["YAML syntax error"], []),
    ("tab-indent", "name: x\nsteps:\n\traw:\n", 3, ["YAML syntax error"], []),
    ("bad-indentation", "name: x\nsteps:\n  raw:\n    op: source.synthetic\n   with: {}\n",
     5, ["YAML syntax error"], []),
    ("empty-document", "", 1, ["empty"], []),
    ("comment-only", "# nothing here\n", 1, ["empty"], []),
    ("top-level-list", "- name: x\n", 1, ["must be a mapping", "a list"], []),
    ("two-documents", "name: a\nsteps: {}\n---\nname: b\n", 3, ["single document"], []),
    ("missing-name", "steps:\n  raw: {op: source.synthetic}\n", 1, ["missing required key 'name'"],
     []),
    ("missing-steps", "name: x\n", 1, ["missing required key 'steps'"], []),
    ("empty-steps", "name: x\nsteps: {}\n", 2, ["'steps' is empty"], []),
    ("steps-as-list", "name: x\nsteps:\n  - op: source.synthetic\n", 2,
     ["'steps' must be a mapping", "a list"], []),
    ("unknown-top-key", "name: x\nstep:\n  raw: {op: source.synthetic}\n", 2,
     ["unknown top-level key 'step'", "did you mean 'steps'"], []),
    ("name-not-string", "name: [a]\nsteps:\n  raw: {op: source.synthetic}\n", 1,
     ["'name' must be a non-empty string"], []),
    ("bad-version", "amml: 7\nname: x\nsteps:\n  raw: {op: source.synthetic}\n", 1,
     ["unsupported workflow format version 7"], []),
    ("params-not-mapping", "name: x\nparams: [1, 2]\nsteps:\n  raw: {op: source.synthetic}\n",
     2, ["'params' must be a mapping"], []),
    ("bad-param-name", "name: x\nparams: {2fast: 1}\nsteps:\n  raw: {op: source.synthetic}\n",
     2, ["invalid parameter name '2fast'"], []),
    ("step-not-mapping", GOOD_HEAD + "  clean: preprocess\n", 9,
     ["step 'clean'", "must be a mapping"], []),
    ("missing-op", GOOD_HEAD + "  clean:\n    inputs: {table: raw}\n", 9,
     ["missing required key 'op'"], []),
    ("unknown-op", GOOD_HEAD + "  clean:\n    op: preprocss\n    inputs: {table: raw}\n", 10,
     ["unknown op 'preprocss'", "did you mean 'preprocess'", "field 'op'"], []),
    ("unknown-step-key", GOOD_HEAD + "  clean:\n    op: preprocess\n    input: {table: raw}\n",
     11, ["unknown key 'input'", "did you mean 'inputs'"], []),
    ("invalid-step-name", GOOD_HEAD + "  my step:\n    op: preprocess\n", 9,
     ["invalid step name 'my step'"], []),
    ("duplicate-step", GOOD_HEAD + "  raw:\n    op: source.synthetic\n", 9,
     ["duplicate key 'raw'", "first at line 6"], []),
    ("with-not-mapping", GOOD_HEAD + "  clean:\n    op: preprocess\n    inputs: {table: raw}\n"
     "    with: linear\n", 12, ["'with' must be a mapping"], []),
    ("inputs-not-mapping", GOOD_HEAD + "  clean:\n    op: preprocess\n    inputs: raw\n", 11,
     ["'inputs' must be a mapping", "inputs: {table: other_step}"], []),
    ("input-ref-not-string", GOOD_HEAD + "  clean:\n    op: preprocess\n"
     "    inputs: {table: 3}\n", 11, ["input 'table' must name a step"], []),
    ("unknown-config-field", GOOD_HEAD + "  clean:\n    op: preprocess\n"
     "    inputs: {table: raw}\n    with: {fil: linear}\n", 12,
     ["no configuration field 'fil'", "did you mean 'fill'", "with.fil"], []),
    ("bad-enum-value", GOOD_HEAD + "  clean:\n    op: preprocess\n    inputs: {table: raw}\n"
     "    with:\n      fill: lineer\n", 13, ["got 'lineer'", "did you mean 'linear'",
                                            "with.fill"], []),
    ("wrong-config-type", GOOD_HEAD + "  clean:\n    op: preprocess\n    inputs: {table: raw}\n"
     "    with:\n      fit_fraction: most\n", 13, ["fit_fraction", "valid number"], []),
    ("out-of-range", GOOD_HEAD + "  spikes:\n    op: detect.zscore\n    inputs: {table: raw}\n"
     "    with:\n      window: 1\n", 13, ["with.window", "greater than or equal to 3"], []),
    ("missing-required-config", GOOD_HEAD + "  model:\n    op: train\n"
     "    inputs: {train: raw}\n", 9, ["missing required field 'target'"], []),
    ("cross-field-rule", GOOD_HEAD + "  parts:\n    op: split\n    inputs: {table: raw}\n"
     "    with: {train: 0.8, val: 0.3}\n", 12, ["train + val must leave rows for test"], []),
    ("unknown-input-step", GOOD_HEAD + "  clean:\n    op: preprocess\n    inputs: {table: rwa}\n",
     11, ["unknown step 'rwa'", "did you mean 'raw'"], []),
    ("unknown-output", GOOD_HEAD + "  parts:\n    op: split\n    inputs: {table: raw}\n"
     "  clean:\n    op: preprocess\n    inputs: {table: parts.trian}\n", 14,
     ["has no output 'trian'", "did you mean 'train'"], []),
    ("unknown-input-port", GOOD_HEAD + "  clean:\n    op: preprocess\n    inputs: {tabel: raw}\n",
     11, ["has no input 'tabel'", "did you mean 'table'"], []),
    ("missing-required-input", GOOD_HEAD + "  clean:\n    op: preprocess\n", 9,
     ["missing required input 'table'"], []),
    ("list-for-single-input", GOOD_HEAD + "  clean:\n    op: preprocess\n"
     "    inputs: {table: [raw, raw]}\n", 11, ["takes one step, got a list of 2"], []),
    ("type-mismatch", GOOD_HEAD + "  model:\n    op: train\n    inputs: {train: raw}\n"
     "    with: {target: temperature}\n  clean:\n    op: preprocess\n    inputs: {table: model}\n",
     15, ["type mismatch", "expects table", "'model.model' is model"], []),
    ("cycle", "name: x\nsteps:\n  a:\n    op: preprocess\n    inputs: {table: b}\n"
     "  b:\n    op: preprocess\n    inputs: {table: a}\n", None, ["cycle:", "a -> b"], []),
    ("self-reference", "name: x\nsteps:\n  a:\n    op: preprocess\n    inputs: {table: a}\n", 5,
     ["uses its own output"], []),
    ("undefined-param", GOOD_HEAD + "  spikes:\n    op: detect.zscore\n    inputs: {table: raw}\n"
     "    with: {label: \"${params.lable}\"}\n", 12, ["unknown parameter 'lable'",
                                                     "did you mean 'label'"], []),
    ("malformed-placeholder", GOOD_HEAD + "  spikes:\n    op: detect.zscore\n"
     "    inputs: {table: raw}\n    with: {label: \"${param.label}\"}\n", 12,
     ["malformed placeholder"], []),
    ("param-type-into-field", "name: x\nparams: {w: wide}\nsteps:\n  raw:\n"
     "    op: source.synthetic\n  s:\n    op: detect.zscore\n    inputs: {table: raw}\n"
     "    with: {window: \"${params.w}\"}\n", 9, ["with.window", "valid integer"], []),
    ("override-unknown-param", GOOD_HEAD, None, ["--param 'perods' is not a parameter",
                                                 "did you mean 'periods'"],
     ["--param", "perods=10"]),
    ("override-bad-type", GOOD_HEAD, 3, ["parameter 'periods' expects an integer"],
     ["--param", "periods=many"]),
    ("override-violates-constraint", GOOD_HEAD, 8, ["with.periods", "greater than or equal"],
     ["--param", "periods=3"]),
    ("override-no-equals", GOOD_HEAD, None, ["has no '='"], ["--param", "periods"]),
    ("bad-import", "name: x\nimports: [no_such_module_here]\nsteps:\n  raw:\n"
     "    op: source.synthetic\n", 2, ["cannot import 'no_such_module_here'"], []),
]


@pytest.mark.parametrize(("document", "line", "expected", "args"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_workflow_is_rejected_precisely(tmp_path: Path, document: str,
                                                  line: int | None, expected: list[str],
                                                  args: list[str]) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(document)
    result = CliRunner().invoke(app, ["run", str(path), *args])
    message = result.output
    assert result.exit_code == 2, message
    assert "Traceback" not in message
    for text in expected:
        assert text in message, f"{text!r} not in:\n{message}"
    if line is not None:
        assert f"broken.yaml:{line}:" in message, message
    assert not (tmp_path / ".amml").exists(), "a rejected workflow must not touch the store"


def test_there_are_at_least_30_malformed_cases() -> None:
    assert len(CASES) >= 30
    assert len({c[0] for c in CASES}) == len(CASES)


def test_all_problems_are_reported_in_one_pass(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(GOOD_HEAD + "  clean:\n    op: preprocess\n    inputs: {table: rwa}\n"
                    "    with: {fill: lineer}\n  more:\n    op: nope\n")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "3 problems" in result.output
    lines = [int(part.split(":")[1]) for part in result.output.splitlines()
             if part.startswith(str(path))]
    assert lines == sorted(lines)


def test_python_workflow_errors_point_at_the_calling_line(tmp_path: Path) -> None:
    path = tmp_path / "flow.py"
    path.write_text("from amml import Workflow, ops\n\nwith Workflow('p') as wf:\n"
                    "    raw = ops.source.synthetic(periods=100)\n"
                    "    clean = ops.preprocess(raw, fill='lineer')\n")
    result = CliRunner().invoke(app, ["validate", str(path), "--allow-imports"])
    assert result.exit_code == 2
    assert "flow.py:5:" in result.output and "did you mean 'linear'" in result.output


def test_unknown_op_attribute_in_python_names_the_closest_op(tmp_path: Path) -> None:
    path = tmp_path / "flow.py"
    path.write_text("from amml import Workflow, ops\n\nwith Workflow('p') as wf:\n"
                    "    raw = ops.source.synthtic(periods=100)\n")
    result = CliRunner().invoke(app, ["validate", str(path), "--allow-imports"])
    assert result.exit_code == 2
    assert "source.synthtic" in result.output and "source.synthetic" in result.output
    assert "Traceback" not in result.output
