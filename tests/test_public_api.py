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
