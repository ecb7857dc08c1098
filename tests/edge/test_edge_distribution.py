"""`packaging/amml-edge` builds the runner alone: the wheel holds `amml.edge` and the few
top-level modules it imports, needs only numpy, onnxruntime and paho-mqtt, and installs the
`amml-edge` command (a fresh venv with it measured 155 MB over a bare one; see README)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_edge_wheel_holds_the_runner_and_nothing_heavy(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT / "packaging" / "amml-edge")],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = tmp_path.glob("amml_edge-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(archive.read(n).decode() for n in names
                        if n.endswith(".dist-info/METADATA"))
        entry_points = next(archive.read(n).decode() for n in names
                            if n.endswith(".dist-info/entry_points.txt"))
    modules = {n for n in names if n.endswith(".py")}
    assert {"amml/__init__.py", "amml/_exceptions.py", "amml/_lazy.py",
            "amml/edge/runner.py", "amml/edge/ed25519.py", "amml/edge/memory.py"} <= modules
    assert not [n for n in modules if n.startswith(("amml/ops/", "amml/store/", "amml/serve/"))]
    requires = sorted(line.split(":", 1)[1].strip().split(">")[0].split("=")[0].strip()
                      for line in metadata.splitlines() if line.startswith("Requires-Dist:"))
    assert requires == ["numpy", "onnxruntime", "paho-mqtt"]
    assert "amml-edge = amml.edge.runner:main" in entry_points
