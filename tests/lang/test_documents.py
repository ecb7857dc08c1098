"""Hostile workflow documents: size, nesting, alias and integer limits give a located error
with exit code 2 (never a traceback, never a memory blow-up), and ``validate`` / ``export``
run none of the workflow's code unless given ``--allow-imports``."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from amml._exceptions import WorkflowValidationError
from amml.cli.main import app
from amml.lang import load_yaml_text

STEPS = "steps:\n  raw:\n    op: source.synthetic\n    with: {periods: 200}\n"


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _rejected(result, *expected: str) -> str:
    """The output of a command that must have failed cleanly with exit code 2."""
    output = result.output
    assert result.exit_code == 2, output
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert "Traceback" not in output
    for text in expected:
        assert text in output, f"{text!r} not in:\n{output}"
    return output


def _bomb(levels: int) -> str:
    """The "billion laughs": each level is nine aliases of the one before."""
    lines = ["name: bomb", "params:", '  l0: &l0 ["lol","lol","lol","lol","lol","lol","lol",'
             '"lol","lol"]']
    for level in range(1, levels):
        lines.append(f"  l{level}: &l{level} [" + ",".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n" + STEPS


def test_yaml_alias_bomb_is_refused(tmp_path: Path) -> None:
    # 9**6 = 531,441 values once expanded; a real bomb (9**9) is refused just as fast.
    for levels in (6, 9):
        path = tmp_path / f"bomb{levels}.yaml"
        path.write_text(_bomb(levels))
        _rejected(_invoke("validate", str(path)), f"bomb{levels}.yaml:",
                  "with its aliases expanded the document has more than 100,000 values",
                  "AMML_MAX_WORKFLOW_NODES")


def test_alias_count_is_limited() -> None:
    document = ("name: many\nparams:\n  a: &a 1\n  b: [" + ", ".join(["*a"] * 1001) + "]\n"
                + STEPS)
    with pytest.raises(WorkflowValidationError) as caught:
        load_yaml_text(document, "many.yaml")
    issue = caught.value.issues[0]
    assert "more than 1,000 aliases" in issue.message and issue.line == 4
    assert "AMML_MAX_WORKFLOW_ALIASES" in (issue.hint or "")


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("name: loop\nparams:\n  a: &a [1, *a]\n" + STEPS)
    _rejected(_invoke("validate", str(path)), "loop.yaml:3:", "recursive structure")


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    depth = 100_000
    path.write_text("name: deep\nparams:\n  a: " + "[" * depth + "]" * depth + "\n" + STEPS)
    _rejected(_invoke("validate", str(path)), "deep.yaml:3:", "nesting deeper than 64 levels",
              "AMML_MAX_WORKFLOW_DEPTH")
    block = tmp_path / "block.yaml"  # the same in block style: indentation, not brackets
    block.write_text("name: deep\nparams:\n" + "".join(f"{'  ' * (i + 1)}k{i}:\n"
                                                       for i in range(200)) + STEPS)
    _rejected(_invoke("validate", str(block)), "nesting deeper than 64 levels")


def test_deep_nesting_through_aliases_is_refused() -> None:
    # Each anchor is shallow; chained aliases stack them 30 levels at a time.
    lines = ["name: chain", "params:", "  a0: &a0 " + "[" * 30 + "1" + "]" * 30]
    lines += [f"  a{i}: &a{i} " + "[" * 29 + f"*a{i - 1}" + "]" * 29 for i in range(1, 4)]
    with pytest.raises(WorkflowValidationError) as caught:
        load_yaml_text("\n".join(lines) + "\n" + STEPS, "chain.yaml")
    assert "with its aliases expanded the document nests deeper than 64 levels" in str(
        caught.value)


def test_oversized_document_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("name: big\n# " + "x" * 1_100_000 + "\n" + STEPS)
    _rejected(_invoke("validate", str(path)), "big.yaml: the document is 1,100,",
              "over the limit of 1,000,000",
              "AMML_MAX_WORKFLOW_BYTES")


def test_document_limits_can_be_raised_or_lowered_by_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "small_bomb.yaml"
    path.write_text(_bomb(4))  # 6,561 values: within the default limit
    assert _invoke("validate", str(path)).exit_code == 0
    monkeypatch.setenv("AMML_MAX_WORKFLOW_NODES", "1000")
    _rejected(_invoke("validate", str(path)), "more than 1,000 values",
              "AMML_MAX_WORKFLOW_NODES=N (now 1000)")
    monkeypatch.setenv("AMML_MAX_WORKFLOW_NODES", "lots")
    _rejected(_invoke("validate", str(path)), "AMML_MAX_WORKFLOW_NODES must be a positive")
    from amml.lang.yaml_limits import DocumentLimits

    assert DocumentLimits(max_depth=5).hint("max_depth").endswith("=N (now 5)")


@pytest.mark.parametrize(("value", "expected"), [
    ("9" * 5000, "5,000-character integer is out of range"),
    ("9223372036854775808", "integer 9223372036854775808 is out of range"),
    ("-0x" + "f" * 200, "integer is out of range"),
    (":".join(["59"] * 40), "integer is out of range"),  # YAML 1.1 base 60
])
def test_huge_integer_is_a_validation_error(tmp_path: Path, value: str, expected: str) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text(f"name: huge\nparams:\n  n: {value}\n" + STEPS)
    _rejected(_invoke("validate", str(path)), "huge.yaml:3:", expected, "64 bits")


def test_huge_integer_in_a_python_workflow_is_a_validation_error(tmp_path: Path) -> None:
    path = tmp_path / "huge.py"
    path.write_text("from amml import Workflow, ops\n\n"
                    "with Workflow('huge', params={'n': 10**5000}) as wf:\n"
                    "    raw = ops.source.synthetic(periods=10**30)\n")
    output = _rejected(_invoke("validate", str(path), "--allow-imports"), "field 'params.n'",
                       "huge.py:4:", "field 'with.periods'", "out of range")
    assert "2 problems" in output


def test_a_yaml_date_is_read_as_its_text(tmp_path: Path) -> None:
    path = tmp_path / "dates.yaml"
    path.write_text(STEPS.replace("steps:\n", "name: dates\nparams: {day: 2024-01-01}\nsteps:\n")
                    + "  parts:\n    op: split\n    inputs: {table: raw}\n"
                    "    with: {mode: dates, val_start: 2024-01-01, test_start: 2024-02-01}\n")
    result = _invoke("validate", str(path), "--json")
    assert result.exit_code == 0, result.output
    loaded = load_yaml_text(path.read_text())
    assert loaded.ir.params["day"] == "2024-01-01"


@pytest.mark.parametrize("tagged", ["!!binary aGVsbG8=", "!!set {a, b}"])
def test_non_json_yaml_types_are_refused(tmp_path: Path, tagged: str) -> None:
    path = tmp_path / "tags.yaml"
    path.write_text(f"name: tags\nparams:\n  a: {tagged}\n" + STEPS)
    _rejected(_invoke("validate", str(path)), "tags.yaml:3:", "is not allowed in a workflow")


# -- imports run code: validate and export do not, unless asked ---------------------------------

MARKER_MODULE = ("from pathlib import Path\n"
                 "Path(__file__).with_name('imported.marker').write_text('ran')\n")


def _workflow_with_import(tmp_path: Path, extra_step: str = "") -> Path:
    (tmp_path / "side_effect.py").write_text(MARKER_MODULE)
    path = tmp_path / "flow.yaml"
    path.write_text("name: flow\nimports: [side_effect.py]\n" + STEPS + extra_step)
    return path


def test_validate_does_not_import_workflow_modules(tmp_path: Path) -> None:
    path = _workflow_with_import(tmp_path)
    marker = tmp_path / "imported.marker"
    result = _invoke("validate", str(path))
    assert result.exit_code == 0, result.output
    assert "imports not imported (side_effect.py)" in result.output
    assert not marker.exists(), "validate ran an imported module"
    exported = _invoke("export", str(path), "--format", "json")
    assert exported.exit_code == 0 and '"imports":["side_effect.py"]' in exported.stdout
    assert not marker.exists(), "export ran an imported module"
    assert _invoke("validate", str(path), "--allow-imports").exit_code == 0
    assert marker.exists()


def test_an_op_only_an_import_defines_points_at_allow_imports(tmp_path: Path) -> None:
    path = _workflow_with_import(tmp_path, "  more:\n    op: local.thing\n")
    _rejected(_invoke("validate", str(path)), "unknown op 'local.thing'",
              "which were not imported: pass --allow-imports")
    assert not (tmp_path / "imported.marker").exists()


def test_validate_of_a_python_workflow_requires_allow_imports(tmp_path: Path) -> None:
    path = tmp_path / "flow.py"
    path.write_text(MARKER_MODULE + "from amml import Workflow, ops\n\n"
                    "with Workflow('py') as wf:\n    raw = ops.source.synthetic(periods=100)\n")
    for command in ("validate", "export"):
        _rejected(_invoke(command, str(path)), "is a Python workflow", "runs its code",
                  "--allow-imports")
        _rejected(_invoke(command, f"{path}:py"), "--allow-imports")
    assert not (tmp_path / "imported.marker").exists()
    allowed = _invoke("validate", str(path), "--allow-imports")
    assert allowed.exit_code == 0, allowed.output
    assert (tmp_path / "imported.marker").exists()


EXITS = "import sys\nsys.exit(0)\n"
TYPO_STEP = "  typo:\n    op: detect.zscore\n    inputs: {table: raw}\n    with: {windw: 3}\n"


def test_sys_exit_in_an_import_fails_the_command(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "exits_file.py").write_text(EXITS)
    (tmp_path / "exits_module.py").write_text(EXITS)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("exits_file.py", "exits_module"):
        path = tmp_path / "flow.yaml"
        path.write_text(f"name: flow\nimports: [{name}]\n" + STEPS + TYPO_STEP)
        for args in (("run", str(path)), ("validate", str(path), "--allow-imports"),
                     ("export", str(path), "--allow-imports")):
            _rejected(_invoke(*args), "flow.yaml:2:", f"cannot import '{name}'",
                      "called sys.exit(0) while being imported")
    assert not (tmp_path / ".amml").exists(), "a failed import must not touch the store"


def test_sys_exit_in_a_python_workflow_fails_the_command(tmp_path: Path) -> None:
    path = tmp_path / "flow.py"
    path.write_text(EXITS)
    for args in (("run", str(path)), ("validate", str(path), "--allow-imports")):
        _rejected(_invoke(*args), "flow.py failed", "called sys.exit(0)")
    assert not (tmp_path / ".amml").exists()


def test_an_import_that_raises_fails_the_command(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("raise RuntimeError('no database here')\n")
    path = tmp_path / "flow.yaml"
    path.write_text("name: flow\nimports: [broken.py]\n" + STEPS)
    _rejected(_invoke("run", str(path)), "flow.yaml:2:", "RuntimeError: no database here")
    folder = tmp_path / "folder.py"
    folder.mkdir()  # a .py workflow that is not a file
    _rejected(_invoke("run", str(folder)), "cannot read")


def test_an_integer_override_out_of_range_is_a_validation_error(tmp_path: Path) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text("name: flow\nparams:\n  seed: 1\n" + STEPS)
    _rejected(_invoke("validate", str(path), "-p", "seed=99999999999999999999"),
              "flow.yaml:3:", "field 'params.seed'", "out of range")
