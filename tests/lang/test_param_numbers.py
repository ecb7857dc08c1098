"""``-p NAME=VALUE`` reads numbers as the workflow file would, plus YAML 1.2's exponent
floats (``1e-3``), so the same value works on the command line and in YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from amml.cli.main import app
from amml.lang.params import ParamProblem, coerce_override, parse_override

WORKFLOW = """\
name: numbers
params: {lr: 0.01, periods: 100, label: run}
steps:
  raw:
    op: source.synthetic
    with: {periods: "${params.periods}", seed: 1}
  model:
    op: train
    inputs: {train: raw}
    with: {model: dlinear, target: temperature, lookback: 8, horizon: 2, lr: "${params.lr}"}
"""


@pytest.mark.parametrize(("raw", "expected"), [
    ("1e-3", 0.001), ("1E5", 100000.0), ("+1.5e+3", 1500.0), ("5e2", 500.0),
    ("1.0e-3", 0.001), (".5", 0.5), ("-2", -2), ("1_000", 1000), ("96", 96)])
def test_scientific_notation_override_is_a_number(raw: str, expected: float) -> None:
    name, value = parse_override(f"x={raw}")
    assert (name, value) == ("x", expected)
    assert type(value) is type(expected)


def test_scientific_notation_override_validates_like_yaml(tmp_path: Path) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(WORKFLOW)
    runner = CliRunner()
    for override in ("lr=1e-3", "lr=1E-3", "lr=.001", "lr=0.001"):
        result = runner.invoke(app, ["validate", str(flow), "-p", override])
        assert result.exit_code == 0, (override, result.output)
    # a string parameter keeps the text as written
    assert coerce_override("label", "run", *parse_override("label=1e-3")[1:], "1e-3") == "1e-3"


def test_out_of_range_override_says_so(tmp_path: Path) -> None:
    name, value = parse_override("lr=1e400")
    with pytest.raises(ParamProblem, match="beyond the largest number"):
        coerce_override(name, 0.01, value, "1e400")
    flow = tmp_path / "flow.yaml"
    flow.write_text(WORKFLOW)
    result = CliRunner().invoke(app, ["validate", str(flow), "-p", "lr=1e400"])
    assert result.exit_code == 2 and "beyond the largest number" in result.output


def test_a_thousands_of_digits_override_is_a_clean_error() -> None:
    from amml.lang.params import ParamProblem, parse_override

    with pytest.raises(ParamProblem, match="5000-digit integer is beyond"):
        parse_override("periods=" + "9" * 5000)
