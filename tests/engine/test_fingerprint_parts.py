"""The parts a cache key is made of, one at a time: canonical JSON, the key formats, literal
constants, bytecode for code with no file, the source of each definition, wrappers, class
members, and the caches that keep a digest from re-reading unchanged files.

``test_code_digest.py`` and ``test_cache.py`` check the digest end to end through runs; these
tests pin each rule so that breaking one of them fails here, by name.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import itertools
import os
import sys
import textwrap
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest

from amml.engine import fingerprint
from amml.engine.fingerprint import (
    cache_key,
    code_dependencies,
    code_digest,
    fingerprint_value,
    partial_key,
)
from amml.engine.hashing import canonical, sha256_hex

_COUNTER = itertools.count()


# ---------------------------------------------------------------- formats
def test_canonical_json_is_sorted_compact_and_keeps_unicode() -> None:
    assert canonical({"b": 1, "a": [1.5, "é", None, True]}) == '{"a":[1.5,"é",null,true],"b":1}'
    assert sha256_hex("abc") == sha256_hex(b"abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


class _Window(pydantic.BaseModel):
    start: dt.date
    size: int


def test_numpy_scalars_and_pydantic_models_enter_by_value_other_objects_are_refused() -> None:
    assert canonical({"x": np.float32(1.5), "n": np.int64(3)}) == '{"n":3,"x":1.5}'
    # JSON mode: a date becomes its ISO text (python mode would leave a date json can't write)
    assert canonical(_Window(start=dt.date(2024, 5, 1), size=3)) == (
        '{"size":3,"start":"2024-05-01"}')
    with pytest.raises(TypeError, match="cannot fingerprint object"):
        canonical({"x": object()})


def test_cache_key_formats_are_stable() -> None:
    # Every store's cache entries are keyed by these: a format change silently reruns all.
    partial = partial_key("scale", "2", "c0de", {"method": "standard", "fit_fraction": 0.7})
    assert partial == sha256_hex(
        '{"code":"c0de","config":{"fit_fraction":0.7,"method":"standard"},"op":"scale",'
        '"version":"2"}')
    assert cache_key(partial, {"table": "d1", "fit": ["d2", "d3"]}) == sha256_hex(
        '{"inputs":{"fit":["d2","d3"],"table":"d1"},"partial":"' + partial + '"}')


def test_array_digest_covers_dtype_shape_and_bytes() -> None:
    a = np.arange(6, dtype=np.int64)
    assert fingerprint_value(a) == fingerprint_value(a.copy())
    assert fingerprint_value(a) != fingerprint_value(a.reshape(2, 3))
    assert fingerprint_value(a) != fingerprint_value(a.astype(np.float64))
    assert fingerprint_value(a[::2]) == fingerprint_value(np.array([0, 2, 4]))  # contiguous


# ---------------------------------------------------------------- literal constants
@pytest.mark.parametrize("value", [None, True, 3, 2.5, "text"])
def test_plain_literals_are_themselves(value: Any) -> None:
    assert fingerprint._literal(value) == value


def test_containers_of_literals_become_json_and_sets_are_sorted() -> None:
    literal = fingerprint._literal
    assert literal(b"\x00\xff") == {"bytes": "00ff"}
    assert literal((3, "a", None, (1.5,))) == [3, "a", None, [1.5]]
    assert literal([3, 1, 2]) == [3, 1, 2]  # a sequence keeps its order
    assert literal({3, 1, 2}) == [1, 2, 3]
    assert literal(frozenset({"b", "a"})) == ["a", "b"]
    assert literal({"k": (1, None), "j": b"\x01"}) == {"k": [1, None], "j": {"bytes": "01"}}


def test_anything_that_is_not_a_literal_is_refused_whole() -> None:
    literal = fingerprint._literal
    assert literal(object()) is None
    assert literal((1, object())) is None
    assert literal([1, [2, object()]]) is None
    assert literal({"a": 1, "b": object()}) is None
    assert literal({1: "int key"}) is None


# ---------------------------------------------------------------- code with no file
def _compiled(source: str, name: str = "step") -> types.FunctionType:
    namespace: dict[str, Any] = {"__name__": "nowhere_defined"}
    exec(compile(textwrap.dedent(source), "<typed in>", "exec"), namespace)
    return namespace[name]


def test_a_function_with_no_source_is_digested_by_bytecode_and_constants() -> None:
    one = _compiled("def step(x):\n    return x * 2\n")
    same = _compiled("def step(x):\n    return x * 2\n")
    other_constant = _compiled("def step(x):\n    return x * 3\n")
    other_code = _compiled("def step(x):\n    return x + 2\n")
    assert code_digest(one) == code_digest(same)  # no address enters
    assert code_digest(one) != code_digest(other_constant)
    assert code_digest(one) != code_digest(other_code)


def test_nested_code_with_no_source_is_expanded() -> None:
    outer = "def step(x):\n    def inner(y):\n        return y * {k}\n    return inner(x)\n"
    assert code_digest(_compiled(outer.format(k=2))) == code_digest(_compiled(outer.format(k=2)))
    assert code_digest(_compiled(outer.format(k=2))) != code_digest(_compiled(outer.format(k=5)))


def test_an_object_with_neither_source_nor_code_is_named() -> None:
    made = type("Made", (), {"__module__": "nowhere_defined"})
    assert fingerprint._source(made) == "nowhere_defined.Made"
    assert fingerprint._source(len) == "builtins.len"


# ---------------------------------------------------------------- source from files
MODULE = '''\
import functools

LIMIT = 3


def helper(x):
    return x + LIMIT


def decorate(func):
    @functools.wraps(func)
    def wrapper(*args):
        return func(*args)
    return wrapper


@decorate
def step(x):
    def inner(y):
        return helper(y)
    return inner(x)


class Base:
    def base_method(self):
        return 1


class Model(Base):
    class Options:
        depth = 2

    def fit(self):
        return helper(1)

    @property
    def size(self):
        return 1

    @size.setter
    def size(self, value):
        pass

    @staticmethod
    def make():
        return 0


MODEL = Model()
'''


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write a module under a fresh name, import it, and give a way to edit and re-import."""
    name = f"scratch_fp_{next(_COUNTER)}"
    path = tmp_path / f"{name}.py"
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(text: str, age_s: float = 10.0) -> types.ModuleType:
        path.write_text(text)
        past = time.time() - age_s  # older than the two-second "racy" window
        os.utime(path, (past, past))
        sys.modules.pop(name, None)
        importlib.invalidate_caches()
        fingerprint.clear_caches()
        return importlib.import_module(name)

    yield write, path
    sys.modules.pop(name, None)


def test_each_definition_is_found_by_qualified_name_with_its_decorators(scratch) -> None:
    write, path = scratch
    write(MODULE)
    found = fingerprint._definitions(str(path))
    assert {"helper", "decorate", "decorate.<locals>.wrapper", "step", "step.<locals>.inner",
            "Base", "Base.base_method", "Model", "Model.Options", "Model.fit", "Model.size",
            "Model.make"} <= set(found)
    assert found["step"].startswith("@decorate\ndef step(x):")
    assert found["helper"] == "def helper(x):\n    return x + LIMIT\n"
    assert found["Model.size"].startswith("    @property")  # the first of two: the getter


def test_a_file_that_does_not_parse_has_no_definitions(tmp_path: Path) -> None:
    bad = tmp_path / "broken_fp.py"
    bad.write_text("def broken(:\n")
    assert fingerprint._definitions(str(bad)) == {}
    assert fingerprint._definitions(str(tmp_path / "missing_fp.py")) == {}


def test_a_file_is_parsed_once_per_version(scratch, monkeypatch: pytest.MonkeyPatch) -> None:
    write, path = scratch
    write(MODULE)
    parses: list[str] = []
    real_parse = fingerprint.ast.parse

    def counting_parse(text: str, *args: Any, **kwargs: Any) -> Any:
        parses.append(text)
        return real_parse(text, *args, **kwargs)

    monkeypatch.setattr(fingerprint.ast, "parse", counting_parse)
    first = fingerprint._definitions(str(path))
    assert fingerprint._definitions(str(path)) == first
    assert len(parses) == 1
    write(MODULE.replace("LIMIT = 3", "LIMIT = 30"))
    assert fingerprint._definitions(str(path))["helper"] == first["helper"]
    assert len(parses) == 2  # a new version of the file is parsed again


def test_source_comes_from_the_parsed_file_not_from_inspect(
        scratch, monkeypatch: pytest.MonkeyPatch) -> None:
    write, _ = scratch
    module = write(MODULE)

    def refuse(obj: Any) -> str:
        raise AssertionError("inspect.getsource parses the whole module per class")

    monkeypatch.setattr(fingerprint.inspect, "getsource", refuse)
    assert fingerprint._source(module.helper) == "def helper(x):\n    return x + LIMIT\n"
    assert fingerprint._source(module.Model.Options).startswith("    class Options:")
    assert fingerprint._source(module.step.__wrapped__).startswith("@decorate\n")


def _edited_digest(write, text: str, obj_name: str) -> str:
    module = write(text)
    return code_digest(getattr(module, obj_name))


def test_the_digest_follows_wrappers_members_bases_and_constants(scratch) -> None:
    write, _ = scratch
    base = {"step": _edited_digest(write, MODULE, "step"),
            "Model": _edited_digest(write, MODULE, "Model")}
    edits = {
        # the wrapped function, not the decorator's wrapper
        ("step", "        return helper(y)", "        return helper(y) + 0"),
        # a same-module helper reached from the wrapped function's nested function
        ("step", "    return x + LIMIT", "    return x - LIMIT"),
        # a module constant, by value
        ("step", "LIMIT = 3", "LIMIT = 4"),
        # a base class, a nested class, a property setter, a static method
        ("Model", "        return 1\n\n\nclass Model", "        return 2\n\n\nclass Model"),
        ("Model", "        depth = 2", "        depth = 3"),
        ("Model", "        pass", "        return None"),
        ("Model", "        return 0", "        return -1"),
    }
    for obj_name, old, new in edits:
        assert old in MODULE
        edited = MODULE.replace(old, new)
        assert _edited_digest(write, edited, obj_name) != base[obj_name], (old, new)
    unrelated = MODULE + "\n\ndef unused():\n    return 42\n"
    assert _edited_digest(write, unrelated, "step") == base["step"]
    assert _edited_digest(write, unrelated, "Model") == base["Model"]


def test_an_instance_of_a_class_of_the_same_module_brings_its_class(scratch) -> None:
    write, _ = scratch
    text = MODULE + "\n\ndef uses_model():\n    return MODEL.fit()\n"
    before = _edited_digest(write, text, "uses_model")
    after = _edited_digest(write, text.replace("return helper(1)", "return helper(2)"),
                           "uses_model")
    assert before != after
    objects = code_dependencies(write(text).uses_model)["objects"]
    assert any(key.endswith(":Model") for key in objects)


def test_an_instance_of_a_class_elsewhere_enters_by_its_module(scratch) -> None:
    write, _ = scratch
    text = "from fractions import Fraction\nHALF = Fraction(1, 2)\n\n\n" \
           "def halve(x):\n    return x * HALF\n"
    module = write(text)
    covered = code_dependencies(module.halve)
    assert set(covered) == {"objects", "modules", "libraries", "missing"}
    assert "fractions" in covered["modules"] or any(
        lib.startswith("python==") for lib in covered["libraries"])
    assert not any("HALF" in key for key in covered["objects"])  # never its repr


def test_a_function_of_another_module_enters_by_that_module(scratch) -> None:
    write, _ = scratch
    module = write("from os.path import join\n\n\ndef where(x):\n    return join('a', x)\n")
    assert not any(key.endswith(":join") for key in code_dependencies(module.where)["objects"])


def test_a_third_party_function_enters_by_name_and_version() -> None:
    covered = code_dependencies(np.median)
    (only,) = covered["objects"]  # numpy's implementation module, by name only
    assert only.startswith("numpy") and only.endswith(":median")
    assert covered["libraries"] == [f"numpy=={np.__version__}"]


def test_editing_the_op_module_in_place_gives_a_new_digest_without_clearing_caches(
        scratch) -> None:
    write, path = scratch
    module = write(MODULE)
    before = code_digest(module.helper)
    assert code_digest(module.helper) == before
    path.write_text(MODULE.replace("return x + LIMIT", "return x * LIMIT"))
    past = time.time() - 5
    os.utime(path, (past, past + 1))
    assert code_digest(module.helper) != before  # the file's stamp changed: not the cached one


def test_a_digest_is_cached_until_a_file_changes(scratch, monkeypatch: pytest.MonkeyPatch
                                                 ) -> None:
    write, _ = scratch
    module = write(MODULE)
    walks: list[Any] = []
    real_walk = fingerprint._walk

    def counting_walk(obj: Any, *args: Any) -> None:
        walks.append(obj)
        real_walk(obj, *args)

    monkeypatch.setattr(fingerprint, "_walk", counting_walk)
    first = code_digest(module.Model)
    assert code_digest(module.Model) == first
    assert len(walks) == 1


def test_an_unhashable_reference_is_digested_without_the_cache() -> None:
    digest = code_digest(test_an_unhashable_reference_is_digested_without_the_cache,
                         references=[{"unhashable": 1}])
    assert len(digest) == 64


# ---------------------------------------------------------------- wrappers
def test_unwrap_follows_wraps_and_stops_at_what_is_not_a_wrapper() -> None:
    def inner() -> int:
        return 1

    @functools.wraps(inner)
    def outer() -> int:
        return inner()

    @functools.wraps(outer)
    def outermost() -> int:
        return outer()

    assert fingerprint._unwrap(outermost) is inner
    assert fingerprint._unwrap(inner) is inner

    class NotCallable:
        __wrapped__ = 3

    assert fingerprint._unwrap(NotCallable) is NotCallable

    def loop() -> None: ...
    loop.__wrapped__ = loop  # type: ignore[attr-defined]
    assert fingerprint._unwrap(loop) is loop


# ---------------------------------------------------------------- reaching other modules
@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A small project of several files under fresh names; ``write`` (re)writes them all and
    re-imports, so each digest sees exactly the files given."""
    prefix = f"scratch_proj_{next(_COUNTER)}"
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(files: dict[str, str]) -> str:
        for name, text in files.items():
            path = tmp_path / name.replace("PKG", prefix)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text.replace("PKG", prefix))
            past = time.time() - 10
            os.utime(path, (past, past))
        for loaded in [m for m in sys.modules if m.startswith(prefix)]:
            sys.modules.pop(loaded)
        importlib.invalidate_caches()
        fingerprint.clear_caches()
        return prefix

    yield write
    for loaded in [m for m in sys.modules if m.startswith(prefix)]:
        sys.modules.pop(loaded)


def _digest_after(write, files: dict[str, str], module: str, name: str) -> str:
    prefix = write(files)
    return code_digest(getattr(importlib.import_module(module.replace("PKG", prefix)), name))


def _changes_digest(write, files: dict[str, str], edit: tuple[str, str, str], module: str,
                    name: str) -> bool:
    before = _digest_after(write, files, module, name)
    file, old, new = edit
    assert old in files[file], old
    edited = {**files, file: files[file].replace(old, new)}
    return _digest_after(write, edited, module, name) != before


PACKAGE_FILES = {
    "PKG/__init__.py": "def step(x):\n    from .helper import factor\n    return x * factor()\n",
    "PKG/helper.py": "def factor():\n    return 2\n",
}


def test_a_relative_import_inside_a_package_init_function_is_followed(project) -> None:
    assert _changes_digest(project, PACKAGE_FILES, ("PKG/helper.py", "return 2", "return 3"),
                           "PKG", "step")


FLAT_FILES = {
    "PKG_ops.py": (
        "from PKG_tools import factor, Thing\n"
        "from amml._lazy import LazyModule\n"
        "lazy_tools = LazyModule('PKG_lazy')\n"
        "THING = Thing()\n\n\n"
        "def by_name(x):\n    return x * factor()\n\n\n"
        "def by_instance(x):\n    return THING.scale(x)\n\n\n"
        "def by_lazy_module(x):\n    return lazy_tools.shift(x)\n"),
    "PKG_tools.py": ("def factor():\n    return 2\n\n\n"
                     "class Thing:\n    def scale(self, x):\n        return x * 2\n"),
    "PKG_lazy.py": "def shift(x):\n    return x + 1\n",
}


@pytest.mark.parametrize(("name", "edit"), [
    ("by_name", ("PKG_tools.py", "return 2\n", "return 3\n")),
    ("by_instance", ("PKG_tools.py", "return x * 2", "return x * 4")),
    ("by_lazy_module", ("PKG_lazy.py", "x + 1", "x + 5")),
])
def test_another_project_module_is_reached_by_function_instance_and_lazy_module(
        project, name: str, edit: tuple[str, str, str]) -> None:
    assert _changes_digest(project, FLAT_FILES, edit, "PKG_ops", name)


def test_an_unrelated_project_module_changes_nothing(project) -> None:
    assert not _changes_digest(project, FLAT_FILES, ("PKG_lazy.py", "x + 1", "x + 5"),
                               "PKG_ops", "by_name")


MEMBERS_FILE = {"PKG_model.py": '''\
def for_static():
    return 1


def for_setter():
    return 1


def for_nested():
    return 1


def for_method():
    return 1


def for_outer():
    return 1


class Model:
    class Options:
        def depth(self):
            return for_nested()

    def fit(self):
        return for_method()

    @property
    def size(self):
        return 1

    @size.setter
    def size(self, value):
        for_setter()

    @staticmethod
    def make():
        return for_static()


def with_nested_code(x):
    def inner(y):
        return y
    return for_outer() + inner(x)
'''}


@pytest.mark.parametrize(("name", "helper"), [
    ("Model", "for_static"), ("Model", "for_setter"), ("Model", "for_nested"),
    ("Model", "for_method"), ("with_nested_code", "for_outer")])
def test_helpers_reached_from_every_member_are_covered(project, name: str, helper: str) -> None:
    edit = ("PKG_model.py", f"def {helper}():\n    return 1", f"def {helper}():\n    return 7")
    assert _changes_digest(project, MEMBERS_FILE, edit, "PKG_model", name)


def test_sets_of_mixed_literals_sort_by_their_json() -> None:
    assert fingerprint._literal({1, "a"}) == ["a", 1]  # '"a"' sorts before '1'


def test_definitions_inside_blocks_and_lambdas_have_their_source(project) -> None:
    files = {"PKG_blocks.py": ("try:\n    import json\nexcept ImportError:\n    json = None\n"
                               "else:\n    def in_else():\n        return 1\n"
                               "if True:\n    def in_if():\n        return 2\n"
                               "SQUARE = lambda x: x * x  # noqa: E731\n")}
    prefix = project(files)
    module = importlib.import_module(f"{prefix}_blocks")
    found = fingerprint._definitions(module.__file__)
    assert found["in_else"] == "    def in_else():\n        return 1\n"
    assert found["in_if"] == "    def in_if():\n        return 2\n"
    assert fingerprint._source(module.SQUARE) == "SQUARE = lambda x: x * x  # noqa: E731\n"


def test_a_relative_import_in_a_package_submodule_resolves_beside_it(project) -> None:
    files = {"PKG/__init__.py": "",
             "PKG/steps.py": ("def step(x):\n    from .helper import factor\n"
                              "    return x * factor()\n"),
             "PKG/helper.py": "def factor():\n    return 2\n"}
    assert _changes_digest(project, files, ("PKG/helper.py", "return 2", "return 3"),
                           "PKG.steps", "step")


def test_names_after_a_lazy_module_are_still_followed(project) -> None:
    files = {"PKG_mixed.py": ("from amml._lazy import LazyModule\n"
                              "aa_lazy = LazyModule('json')\n\n\n"
                              "def zz_helper():\n    return 2\n\n\n"
                              "def step(x):\n    return aa_lazy.dumps(x) * zz_helper()\n")}
    assert _changes_digest(project, files, ("PKG_mixed.py", "return 2", "return 3"),
                           "PKG_mixed", "step")


def test_an_op_function_used_as_a_helper_is_followed(project) -> None:
    files = {"PKG_opfns.py": ("from amml import op\n\n\n"
                              "@op(name='PKG_inner_op', override=True)\n"
                              "def inner(x: float) -> float:\n    return x * 2\n\n\n"
                              "def outer(x):\n    return inner(x) + 1\n")}
    assert _changes_digest(project, files, ("PKG_opfns.py", "return x * 2", "return x * 5"),
                           "PKG_opfns", "outer")
