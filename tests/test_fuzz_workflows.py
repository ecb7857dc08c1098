"""Property-based fuzzing of workflow documents through ``amml validate``.

Random YAML/JSON structures, a valid workflow with one field replaced by junk, adversarial
text (alias bombs, deep nesting, huge numbers, unknown tags, binary bytes): whatever comes in,
``validate`` ends with exit code 0 or 2 and a message, never a traceback, and never writes to
the store. A few documents also go through real ``amml validate`` / ``amml run`` processes.
Derandomized so CI sees the same examples every time.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import typer
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amml.cli.main import app

BASE: dict[str, Any] = {
    "name": "fuzz",
    "params": {"periods": 200, "label": "is_anomaly"},
    "steps": {
        "raw": {"op": "source.synthetic",
                "with": {"periods": "${params.periods}", "anomalies": 3}},
        "clean": {"op": "preprocess", "inputs": {"table": "raw"},
                  "with": {"fill": "linear", "scale": "zscore", "exclude": ["is_anomaly"]}},
        "spikes": {"op": "detect.zscore", "inputs": {"table": "clean"},
                   "with": {"window": 24, "label": "${params.label}"}},
    },
}
OPS = ["source.synthetic", "preprocess", "detect.zscore", "split", "train", "evaluate",
       "no.such.op", "", "source.csv", "train "]
FUZZ = settings(max_examples=100, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

huge_ints = st.sampled_from(["9" * 5000, "-" + "1" * 400, "0x" + "f" * 100, "9223372036854775808",
                             ":".join(["59"] * 50), "1e400", "-.inf", ".nan", "1_000_000"])
scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
           | st.sampled_from(["${params.periods}", "${params.nope}", "${param.x}", "${", "*a",
                              "&a", "!!binary", "2024-01-01", "~", "yes", "NO"]))
json_like = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                         max_leaves=12)
#: Every place of the valid workflow, as a path of keys; the fuzzer replaces one with junk.
PATHS: list[tuple[str, ...]] = []


def _collect(value: Any, path: tuple[str, ...]) -> None:
    PATHS.append(path)
    if isinstance(value, dict):
        for key, child in value.items():
            _collect(child, (*path, key))


_collect(BASE, ())


def _replaced(path: tuple[str, ...], junk: Any) -> Any:
    document = json.loads(json.dumps(BASE))
    if not path:
        return junk
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = junk
    return document


def _dump(document: Any, as_json: bool) -> str:
    if as_json:
        return json.dumps(document, allow_nan=True)
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


def _bomb(levels: int) -> str:
    lines = ["name: bomb", "params:", "  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\nsteps:\n  raw: {op: source.synthetic}\n"


ADVERSARIAL = [
    _bomb(9), _bomb(5),
    "name: x\nparams: {a: " + "[" * 100_000 + "]" * 100_000 + "}\nsteps: {r: {op: x}}\n",
    "name: x\nparams: {a: " + "{a: " * 5000 + "1" + "}" * 5000 + "}\n",
    "name: x\nparams: {a: &a [*a]}\nsteps:\n  raw: {op: source.synthetic}\n",
    "name: x\nsteps:\n  raw: {op: source.synthetic, with: {periods: " + "9" * 5000 + "}}\n",
    "name: !!python/object/apply:os.system [echo pwned]\nsteps: {}\n",
    "name: x\nparams: {b: !!binary aGVsbG8=, s: !!set {a}}\nsteps: {r: {op: x}}\n",
    "name: x\nsteps:\n  ? [a, b]\n  : {op: source.synthetic}\n",
    "name: x\nsteps:\n  raw: {op: source.synthetic, with: {periods: 2024-01-01}}\n",
    "name: [1]\nsteps: {1: {op: 2, with: 3, inputs: 4}}\n",
    "name: x\nimports: [os, '', '../x', 5]\nsteps: {r: {op: source.synthetic}}\n",
    "name: x\nsteps:\n  raw: {op: source.synthetic}\n  <<: {a: 1}\n",
    '{"name": "x", "steps": {"raw": {"op": "source.synthetic", "with": {"periods": 1e999}}}}',
    "\ufeffname: x\nsteps: {raw: {op: source.synthetic}}\n",
    "name: x\x00\nsteps: {}\n",
    "%YAML 1.1\n---\nname: x\n...\n---\nname: y\n",
]


class Checked:
    """Runs ``amml validate`` in-process on one document and checks the outcome."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="amml-fuzz-"))
        atexit.register(shutil.rmtree, self.folder, True)
        self.runner = CliRunner()
        # Built once: Typer's own runner rebuilds the whole command tree on every call.
        self.command = typer.main.get_command(app)
        self.count = 0

    def check(self, content: str | bytes, suffix: str = ".yaml") -> None:
        self.count += 1
        path = self.folder / f"doc{self.count}{suffix}"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", errors="surrogatepass")
        result = self.runner.invoke(self.command, ["validate", str(path)])
        output = result.output
        unexpected = result.exception is not None and not isinstance(result.exception,
                                                                      SystemExit)
        assert not unexpected, f"{result.exception!r} for {content[:300]!r}"
        assert result.exit_code in (0, 2), f"exit {result.exit_code}: {output}"
        assert "Traceback" not in output, output
        if result.exit_code == 0:
            assert "valid" in output
        else:
            assert "invalid workflow" in output or "error:" in output, output
        path.unlink()


CHECKED = Checked()


def _store_untouched(tmp_path: Path) -> None:
    assert not (tmp_path / ".amml").exists(), "validate wrote to the store"
    assert not Path(os.environ["AMML_HOME"]).exists(), "validate wrote to the store"


@FUZZ
@given(path=st.sampled_from(PATHS), junk=json_like, as_json=st.booleans())
def test_a_valid_workflow_with_one_field_replaced_by_junk(tmp_path: Path, path: tuple[str, ...],
                                                         junk: Any, as_json: bool) -> None:
    CHECKED.check(_dump(_replaced(path, junk), as_json), ".json" if as_json else ".yaml")
    _store_untouched(tmp_path)


@FUZZ
@given(document=st.fixed_dictionaries(
    {"name": scalars, "steps": st.dictionaries(
        st.text(max_size=6) | st.integers(), st.fixed_dictionaries(
            {"op": st.sampled_from(OPS) | scalars},
            optional={"with": json_like, "inputs": json_like}), max_size=4)},
    optional={"params": json_like, "imports": json_like, "amml": scalars, "extra": json_like}))
def test_random_workflow_shaped_documents(tmp_path: Path, document: dict[str, Any]) -> None:
    CHECKED.check(_dump(document, as_json=False))
    _store_untouched(tmp_path)


@FUZZ
@given(data=st.binary(max_size=200) | st.text(max_size=200),
       cut=st.integers(0, 400), number=huge_ints, depth=st.integers(1, 3000))
def test_junk_and_mangled_text(tmp_path: Path, data: bytes | str, cut: int, number: str,
                               depth: int) -> None:
    CHECKED.check(data)  # raw junk: bytes or any text
    text = _dump(BASE, as_json=False)  # a valid document cut short, a number spliced in
    CHECKED.check(text[:cut] + (number if isinstance(data, bytes) else data) + text[cut:])
    CHECKED.check(text.replace("200", number))
    CHECKED.check(text.replace("200", "[" * depth + number + "]" * depth))
    _store_untouched(tmp_path)


def test_adversarial_documents(tmp_path: Path) -> None:
    for document in ADVERSARIAL:
        CHECKED.check(document)
    _store_untouched(tmp_path)


def test_adversarial_documents_in_real_processes(tmp_path: Path) -> None:
    """The console entry point, not just the Typer app: exit code 2 and no traceback, for
    ``validate`` and for ``run`` (which must stop before opening the store)."""
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(0)\n")
    cases = {"bomb.yaml": (_bomb(9), "validate"), "deep.yaml": (ADVERSARIAL[2], "run"),
             "exits.yaml": ("name: x\nimports: [exits.py]\nsteps:\n"
                            "  raw: {op: source.synthetic, with: {periodz: 3}}\n", "run")}
    env = {**os.environ, "AMML_HOME": str(tmp_path / ".amml")}
    for name, (content, command) in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        done = subprocess.run([sys.executable, "-m", "amml.cli", command, str(path)],
                              capture_output=True, text=True, timeout=120, cwd=tmp_path,
                              env=env)
        assert done.returncode == 2, (name, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr + done.stdout, done.stderr
        assert done.stderr.strip(), f"{name}: no message"
    _store_untouched(tmp_path)
