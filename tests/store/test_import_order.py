"""Every store module imports on its own, first, in a fresh interpreter.

The schema imports the capability table modules (devices, fleet, drift events...), and those
import store modules back: an import at module level in the wrong place is a circular import
that only shows when a particular module happens to be imported first (the dashboard hit
``import amml.store.api_keys`` failing that way)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import amml.store


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(amml.store.__path__, "amml.store.")
                  if ".migrations" not in m.name)


def test_every_store_module_imports_first_in_a_fresh_interpreter() -> None:
    modules = _modules()
    assert "amml.store.api_keys" in modules and "amml.store.metadata.schema" in modules
    script = ("import subprocess, sys\n"
              "failed = []\n"
              "for name in sys.argv[1:]:\n"
              "    done = subprocess.run([sys.executable, '-c', f'import {name}'],\n"
              "                          capture_output=True, text=True)\n"
              "    if done.returncode:\n"
              "        failed.append(f'{name}: {done.stderr.strip().splitlines()[-1]}')\n"
              "print('\\n'.join(failed))\n")
    done = subprocess.run([sys.executable, "-c", script, *modules], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"modules that fail when imported first:\n{done.stdout}"
