"""Start-up time of the command line: ``amml --help``, ``amml validate`` and ``import amml``.

Each command runs in a fresh interpreter, ``--repeats`` times, and the median wall time is
reported beside the same commands run against a baseline revision of AMML (``--baseline``, a
git revision checked out in a temporary work tree and put first on ``PYTHONPATH``, same
interpreter and same installed libraries), beside the floor any Typer command line pays
(``python -c "import typer"``), and beside a bare interpreter. Ratios are this tree / baseline.

    python benchmarks/startup.py [--baseline 9275bce~1] [--repeats 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = "examples/sensors/workflow.yaml"
GOAL_S = 0.3
COMMANDS: dict[str, list[str]] = {
    "amml --help": ["-m", "amml.cli", "--help"],
    "amml validate": ["-m", "amml.cli", "validate", WORKFLOW],
    "import amml": ["-c", "import amml"],
}
FLOORS: dict[str, list[str]] = {
    "python (bare)": ["-c", "pass"],
    "import typer": ["-c", "import typer"],
    # what any Typer command costs before doing anything: parse, build, call a no-op
    "typer no-op cmd": ["-c", "import sys, typer; sys.argv = ['x']; typer.run(lambda: None)"],
    # what validating a workflow needs besides the CLI: typed configs, YAML, arrays
    "pydantic+yaml+np": ["-c", "import pydantic, yaml, numpy"],
}


def time_command(args: list[str], src: Path | None, repeats: int) -> float:
    env = dict(os.environ)
    # as a user runs it: bytecode cached (one untimed run writes it), not recompiled each time
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if src is not None:
        env["PYTHONPATH"] = str(src) + os.pathsep + env.get("PYTHONPATH", "")
    subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{args} failed: {done.stderr.decode()[-2000:]}")
    return statistics.median(times)


def checkout(revision: str, into: Path) -> Path:
    subprocess.run(["git", "worktree", "add", "--detach", str(into), revision], cwd=ROOT,
                   check=True, capture_output=True)
    return into / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="ece22aa",
                        help="git revision to compare with (default: before the lazy imports)")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()

    floors = {name: time_command(cmd, None, args.repeats) for name, cmd in FLOORS.items()}
    with tempfile.TemporaryDirectory() as tmp:
        baseline_src = checkout(args.baseline, Path(tmp) / "baseline")
        try:
            rows = []
            for name, cmd in COMMANDS.items():
                before = time_command(cmd, baseline_src, args.repeats)
                after = time_command(cmd, ROOT / "src", args.repeats)
                rows.append((name, before, after))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(Path(tmp) / "baseline")],
                           cwd=ROOT, capture_output=True)
    for name, before, after in rows:
        print(f"startup command={name.replace(' ', '_')} baseline_s={before:.3f} "
              f"now_s={after:.3f} ratio={after / before:.2f}")
    for name, value in floors.items():
        print(f"startup floor={name.replace(' ', '_')} s={value:.3f}")
    print()
    print(f"{'command':<18}{'baseline ' + args.baseline:>20}{'now':>9}{'now/baseline':>14}"
          f"{'goal':>8}")
    for name, before, after in rows:
        print(f"{name:<18}{before:>19.3f}s{after:>8.3f}s{after / before:>14.2f}"
              f"{'' if name == 'import amml' else f'<={GOAL_S}s':>8}")
    for name, value in floors.items():
        print(f"{name:<18}{'':>20}{value:>8.3f}s")
    print(f"(median of {args.repeats} fresh interpreters each; same Python and libraries)")


if __name__ == "__main__":
    main()
