"""One plugin path: built-ins first, then entry points, then the rest; clashes name both."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from amml._exceptions import PluginClashError, PluginNotFoundError
from amml._plugins import PluginRegistry
from amml.ops.detectors.base import BUILTIN_DETECTORS, DETECTORS, Detector, make_detector
from amml.ops.registry import REGISTRY, OpRegistry


def _dist(tmp_path: Path, name: str, entry_points: str) -> None:
    """A minimal installed distribution whose entry points importlib.metadata sees."""
    dist = tmp_path / f"{name}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(entry_points)


def test_a_user_op_named_like_a_builtin_before_the_first_lookup_names_both() -> None:
    """The bug this replaces: defining 'select' first made the registry half-load, so
    find('split') raised, then returned None, and a built-in went missing."""
    script = textwrap.dedent("""
        import amml
        from amml._exceptions import PluginClashError
        from amml.ops.registry import REGISTRY
        try:
            @amml.op(name="select")
            def select(table):
                return table
        except PluginClashError as exc:
            print("CLASH", exc)
        print("SPLIT", REGISTRY.find("split") is not None)
        print("COUNT", len(REGISTRY.names()))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "CLASH op 'select' is defined twice" in out
    assert "amml.ops.transforms.select:Select" in out and "__main__:select" in out
    assert "override=True" in out
    assert "SPLIT True" in out
    builtins = [name for name in REGISTRY.names()  # other tests register ops of their own
                if REGISTRY.get(name).__module__.startswith("amml.")]
    assert f"COUNT {len(builtins)}" in out


def test_every_builtin_op_module_registers_all_its_ops() -> None:
    import importlib

    from amml.ops import builtin
    from amml.ops.registry import op_classes

    declared = {cls.name: cls.__module__ for module in builtin.MODULES
                for cls in op_classes(importlib.import_module(module))}
    assert declared == builtin.CATALOG  # the catalog names every built-in op and its module
    registered_builtins = {name for name in REGISTRY.names()
                           if REGISTRY.get(name).__module__.startswith("amml.")}
    assert set(declared) == registered_builtins  # packages (source.logs, source.redis) included
    assert set(declared) <= set(OpRegistry().names())  # a fresh registry finds them all too
    assert {"select", "split", "train", "evaluate", "detect", "source.sql", "source.logs",
            "source.redis"} <= set(declared)
    assert len(declared) >= 26


def test_override_replaces_and_same_file_reimport_is_not_a_clash() -> None:
    import amml

    @amml.op(name="tests.plugins.twice")
    def first(table):
        return table

    try:
        with pytest.raises(PluginClashError, match=r"tests\.plugins\.twice.*defined twice"):
            @amml.op(name="tests.plugins.twice")
            def second(table):
                return table

        @amml.op(name="tests.plugins.twice", override=True)
        def third(table):
            return table

        assert REGISTRY.get("tests.plugins.twice") is third.op_class
        REGISTRY.register(third.op_class)  # the same definition again: fine
    finally:
        REGISTRY.unregister("tests.plugins.twice")


def test_loading_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "amml_half_builtins.py").write_text(
        "from amml_half_registry import REG\n"
        "def good(): ...\n"
        "REG.register(good)\n"
        "raise RuntimeError('boom half-way')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry: PluginRegistry = PluginRegistry(
        "thing", group="amml.tests-none", name_of=lambda f: f.__name__,
        builtins=("amml_half_builtins",), collect=lambda module: [])
    module = type(sys)("amml_half_registry")
    module.REG = registry
    monkeypatch.setitem(sys.modules, "amml_half_registry", module)
    for _ in range(2):  # a second look fails the same way: never a half-loaded registry
        with pytest.raises(RuntimeError, match="boom half-way"):
            registry.names()
        assert registry._items == {}
        sys.modules.pop("amml_half_builtins", None)


def test_entry_points_load_after_builtins_and_a_clash_is_reported(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "amml_clash_plugin.py"
    package.write_text(textwrap.dedent("""
        from amml import Input, Op, OpConfig

        class Select(Op):
            name = "select"
            inputs = {"table": Input("table")}
            outputs = {"out": "table"}

            class Config(OpConfig):
                pass

            def run(self, ctx, table):
                return table
    """))
    _dist(tmp_path, "amml-clash-plugin", "[amml.ops]\nselect = amml_clash_plugin:Select\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = OpRegistry()
    assert "select" in registry.names()  # everything loaded: built-ins, then entry points
    assert registry.get("select").__module__ == "amml.ops.transforms.select"  # built-in kept
    assert "select" in registry.plugin_errors
    assert "amml_clash_plugin:Select" in registry.plugin_errors["select"]
    assert "amml.ops.transforms.select:Select" in registry.plugin_errors["select"]
    sys.modules.pop("amml_clash_plugin", None)


def test_detectors_come_from_the_entry_point_group(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "amml_detector_plugin.py").write_text(textwrap.dedent("""
        from amml.ops.detectors.base import Detector

        class Constant(Detector):
            name = "plugin_constant"

            def __init__(self, level: float = 0.25) -> None:
                self.level = level

            def update(self, timestamp, value):
                return self.level
    """))
    _dist(tmp_path, "amml-detector-plugin",
          "[amml.detectors]\nconstant = amml_detector_plugin:Constant\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry: PluginRegistry[type[Detector]] = PluginRegistry(
        "detector", group="amml.detectors", name_of=lambda cls: cls.name,
        builtins=tuple(BUILTIN_DETECTORS.values()), collect=DETECTORS._collect)
    assert {"amml", "plugin_constant"} <= set(registry.names())
    assert registry.get("plugin_constant")(level=0.5).update(None, 1.0) == 0.5
    sys.modules.pop("amml_detector_plugin", None)


def test_unknown_names_list_what_is_registered() -> None:
    with pytest.raises(PluginNotFoundError, match=r"unknown detector 'nope' \(known: amml, "):
        make_detector("nope")
    with pytest.raises(PluginClashError, match="detector 'amml' is defined twice"):
        class Impostor(Detector):
            name = "amml"

        DETECTORS.register(Impostor)


def test_finding_a_builtin_imports_only_its_module() -> None:
    """``amml validate`` pays for the ops a workflow uses: no SQL driver for a CSV workflow."""
    script = ("import sys; from amml.ops.registry import REGISTRY; "
              "assert REGISTRY.find('split') is not None; "
              "print(sorted(m for m in ('amml.ops.sources.sql', 'sqlalchemy', 'pandas', "
              "'amml.ops.detectors.detect') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_builtin_detector_table_matches_the_modules() -> None:
    import importlib
    import pkgutil

    import amml.ops.detectors as package
    from amml.ops.detectors.base import BUILTIN_DETECTORS, _detector_classes

    found = {cls.name: cls.__module__
             for info in pkgutil.iter_modules(package.__path__)
             for cls in _detector_classes(importlib.import_module(f"{package.__name__}."
                                                                  f"{info.name}"))}
    assert found == BUILTIN_DETECTORS
