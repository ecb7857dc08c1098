"""Honest code digests: every project module an op reaches, libraries by version, the same
key in every process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from amml.engine import code_modules, fingerprint
from amml.engine.fingerprint import code_dependencies, code_digest
from amml.ops.registry import REGISTRY

ALL_DIGESTS = """\
import json
from amml.engine.fingerprint import code_digest
from amml.ops.registry import REGISTRY
out = {}
for name in REGISTRY.names():
    op = REGISTRY.get(name)
    out[name] = code_digest(op.fingerprint_target(), op.depends_on)
print(json.dumps(out))
"""


def _python(code: str, **env: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_builtin_op_has_the_same_digest_in_two_processes() -> None:
    # two fresh interpreters with different hash seeds: no address, no set order may leak in
    first = json.loads(_python(ALL_DIGESTS, PYTHONHASHSEED="1"))
    second = json.loads(_python(ALL_DIGESTS, PYTHONHASHSEED="2"))
    builtins = {name for name in REGISTRY.names()  # other tests register ops of their own
                if REGISTRY.get(name).__module__.startswith("amml.")}
    assert "source.sql" in first and builtins <= set(first)
    assert first == second


class _AnswersEverything:
    """Like SQLAlchemy's ``func``: any attribute exists, and its repr holds an address."""

    def __getattr__(self, name: str) -> object:
        made = _AnswersEverything()
        _KEEP.append(made)  # alive, so the next one gets another address
        return made


_KEEP: list[object] = []


anything = _AnswersEverything()


def _uses_anything() -> object:
    return anything.now()


def test_an_object_answering_every_attribute_does_not_put_its_address_in_the_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    before = code_digest(_uses_anything)
    fingerprint.clear_caches()
    monkeypatch.setitem(globals(), "anything", _AnswersEverything())
    assert code_digest(_uses_anything) == before


def test_a_declared_package_is_covered_module_by_module_and_libraries_by_version() -> None:
    # what the train op declares (its model kinds are looked up by name)
    from amml.ops.models.train import Train

    covered = code_dependencies(Train, ("amml.ops.models",))
    package = Path(code_modules._module_file("amml.ops.models")).parent
    expected = {".".join(("amml.ops.models", *p.relative_to(package).with_suffix("").parts))
                for p in package.rglob("*.py") if p.name != "__init__.py"}
    assert expected and expected <= set(covered["modules"])
    libraries = " ".join(covered["libraries"])
    assert "numpy==" in libraries and "python==" in libraries
    # libraries are never followed into their source
    assert not [m for m in covered["modules"] if m.split(".")[0] in ("torch", "numpy")]


def test_an_import_inside_a_function_is_followed() -> None:
    def lazy() -> object:
        from amml.ops.transforms import scaling

        return scaling

    assert "amml.ops.transforms.scaling" in code_dependencies(lazy)["modules"]


def test_detect_covers_every_builtin_detector() -> None:
    detect = REGISTRY.get("detect")
    covered = code_dependencies(detect, detect.depends_on)["modules"]
    assert {"amml.ops.detectors.robust", "amml.ops.detectors.novelty",
            "amml.ops.detectors.ensemble"} <= set(covered)


# ---------------------------------------------------------------- a scratch op package
PACKAGE = {
    "scratchops/__init__.py": "",
    "scratchops/helper.py": "def factor():\n    return 2.0\n",
    "scratchops/unrelated.py": "# nothing uses this module\nVALUE = 1\n",
    "scratchops/steps.py": textwrap.dedent("""\
        import pandas as pd
        from amml import op
        from scratchops.helper import factor


        @op(name="scratch.scaled")
        def scaled(table: pd.DataFrame) -> pd.DataFrame:
            return table[["temperature"]] * factor()


        @op(name="scratch.shifted")
        def shifted(table: pd.DataFrame) -> pd.DataFrame:
            return table[["temperature"]] + 1.0
        """),
    "scratchops/more.py": textwrap.dedent("""\
        import pandas as pd
        from amml import op
        from scratchops import helper


        @op(name="scratch.doubled")
        def doubled(table: pd.DataFrame) -> pd.DataFrame:
            return table[["temperature"]] * helper.factor() * 2
        """),
}

SCRATCH_FLOW = """\
name: scratch
imports: [scratchops.steps, scratchops.more]
steps:
  raw: {op: source.synthetic, with: {periods: 200}}
  scaled: {op: scratch.scaled, inputs: {table: raw}}
  shifted: {op: scratch.shifted, inputs: {table: raw}}
  doubled: {op: scratch.doubled, inputs: {table: raw}}
  after: {op: preprocess, inputs: {table: scaled}, with: {fill: linear}}
"""


def _run(folder: Path) -> dict[str, str]:
    done = subprocess.run([sys.executable, "-m", "amml.cli", "run", "flow.yaml", "--json",
                           "--executor", "sequential"], cwd=folder, capture_output=True,
                          text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(folder),
                               "AMML_HOME": str(folder / ".amml")})
    assert done.returncode == 0, done.stderr
    return {s["name"]: s["status"] for s in json.loads(done.stdout)["steps"]}


def _write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def test_editing_a_helper_module_reruns_exactly_the_steps_that_reach_it(
        tmp_path: Path) -> None:
    _write(tmp_path, {**PACKAGE, "flow.yaml": SCRATCH_FLOW})
    assert set(_run(tmp_path).values()) == {"ran"}
    assert set(_run(tmp_path).values()) == {"cached"}

    # a comment in a module no op reaches: nothing runs
    (tmp_path / "scratchops/unrelated.py").write_text("# edited\nVALUE = 1\n")
    assert set(_run(tmp_path).values()) == {"cached"}

    # the helper, imported by name in one module and as a module in another
    (tmp_path / "scratchops/helper.py").write_text("def factor():\n    return 3.0\n")
    assert _run(tmp_path) == {"raw": "cached", "scaled": "ran", "shifted": "cached",
                              "doubled": "ran", "after": "ran"}


# ---------------------------------------------------------------- third-party packages
def _distribution(site: Path, version: str, body: str) -> None:
    for old in site.glob("fakeops-*.dist-info"):
        for file in old.iterdir():
            file.unlink()
        old.rmdir()
    info = site / f"fakeops-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fakeops\nVersion: {version}\n")
    (info / "top_level.txt").write_text("fakeops\n")
    (site / "fakeops").mkdir(exist_ok=True)
    (site / "fakeops" / "__init__.py").write_text(f"def smooth(x):\n    return {body}\n")


def test_a_third_party_package_enters_by_version_not_source(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    _distribution(site, "1.0", "x")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "fakeops", raising=False)
    import fakeops

    user = types.ModuleType("user_ops_for_test")
    exec("import fakeops\ndef step(x):\n    return fakeops.smooth(x)\n", vars(user))
    monkeypatch.setitem(sys.modules, "user_ops_for_test", user)

    def digests() -> tuple[str, str]:
        fingerprint.clear_caches()
        return code_digest(fakeops.smooth), code_digest(user.step)

    first = digests()
    assert "fakeops==1.0" in code_dependencies(user.step)["libraries"]
    _distribution(site, "1.0", "x * 2")   # its source changed, its version did not
    assert digests() == first
    _distribution(site, "1.1", "x * 2")   # a version bump
    bumped = digests()
    assert bumped[0] != first[0] and bumped[1] != first[1]
    assert "fakeops==1.1" in code_dependencies(user.step)["libraries"]
