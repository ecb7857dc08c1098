"""The curated public API: everything in ``__all__`` exists and nothing public is missing."""

from __future__ import annotations

import subprocess
import sys

import amml


def test_all_names_exist() -> None:
    for name in amml.__all__:
        assert hasattr(amml, name), name


def test_public_classes_and_functions_are_exported() -> None:
    public = {name for name, value in vars(amml).items()
              if not name.startswith("_") and (isinstance(value, type) or callable(value))}
    assert public <= set(amml.__all__), public - set(amml.__all__)


def test_exceptions_share_one_base() -> None:
    for name in amml.__all__:
        value = getattr(amml, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, amml.AMMLError), name


def test_import_amml_pulls_no_heavy_library() -> None:
    """Start-up: ``import amml`` (and so ``amml --help``) loads pandas, SQLAlchemy, numpy and
    PyTorch only when something needs them."""
    script = ("import sys, amml; from amml import AMMLError; "
              "print(sorted(m for m in ('pandas', 'sqlalchemy', 'numpy', 'torch', 'amml.engine')"
              " if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


#: Exception classes allowed outside ``amml._exceptions`` (its docstring says why): internal
#: control flow that never reaches a user, and the edge runner's own error (it imports
#: nothing of AMML, being installed alone on devices).
OUTSIDE_THE_TREE = {
    "amml.lang.params.ParamProblem",
    "amml.serve.app.Reject",
    "amml.dashboard.app.LoginRequired",
    "amml.dashboard.app.Forbidden",
    "amml.edge.runner.EdgeError",
}


def _exception_classes_defined_outside_the_tree() -> set[str]:
    """Every class in ``src/amml`` (outside ``_exceptions.py``) whose bases name an exception:
    a built-in one, or any class of the tree. Read from the source, so a module that is never
    imported by the tests is checked too."""
    import ast
    import builtins
    from pathlib import Path

    import amml._exceptions as tree

    exception_names = {name for name, value in vars(builtins).items()
                       if isinstance(value, type) and issubclass(value, BaseException)}
    exception_names |= {name for name, value in vars(tree).items()
                        if isinstance(value, type) and issubclass(value, BaseException)}
    root = Path(amml.__file__).parent
    found: set[str] = set()
    for path in sorted(root.rglob("*.py")):
        if path.name == "_exceptions.py":
            continue
        module = ".".join(("amml", *path.relative_to(root).with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = {base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
                     for base in node.bases}
            if bases & exception_names:
                found.add(f"{module}.{node.name}")
    return found


def test_every_exception_lives_in_the_one_tree() -> None:
    """One exceptions module (httpx's way): an exception class defined anywhere else fails
    here, unless it is one of the documented few."""
    stray = _exception_classes_defined_outside_the_tree()
    # equal, not a subset: the list stays true when one of the few moves or goes
    assert stray == OUTSIDE_THE_TREE, {"stray": sorted(stray - OUTSIDE_THE_TREE),
                                       "gone": sorted(OUTSIDE_THE_TREE - stray)}


def test_every_exception_of_the_tree_is_public() -> None:
    import amml._exceptions as tree

    defined = {name for name, value in vars(tree).items()
               if isinstance(value, type) and issubclass(value, Exception)
               and value.__module__ == tree.__name__}
    assert defined <= set(amml.__all__), sorted(defined - set(amml.__all__))


def test_moved_exceptions_are_one_class_with_their_old_names() -> None:
    """Modules that raise an error re-import it, so code that imported it from there still
    catches what is raised."""
    from amml.engine.triggers import TriggerError
    from amml.federated.client import ClientUnavailable
    from amml.lang.cron import CronError
    from amml.ops.models.contract import ModelContractError
    from amml.serve.limits import LimitError
    from amml.store.model_registry import SignatureMismatch

    assert (TriggerError, ClientUnavailable, CronError, ModelContractError, LimitError,
            SignatureMismatch) == (amml.TriggerError, amml.ClientUnavailable, amml.CronError,
                                   amml.ModelContractError, amml.LimitError,
                                   amml.SignatureMismatch)
    assert issubclass(CronError, ValueError) and issubclass(LimitError, ValueError)
    error = LimitError("batch has 9 windows", "max_windows", 413, 8)
    assert str(error) == "batch has 9 windows (max_windows; amml serve --max-windows)"
    assert error.to_json() == {"detail": str(error), "limit": "max_windows", "max": 8}
