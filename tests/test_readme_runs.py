"""The README runs as written: every command of its ``bash`` blocks and every ``python``
snippet, in the README's order, on a fresh store in a temporary copy of the examples.

``PLAN`` names each README command (its text without the trailing comment) and what the test
does with it. ``test_every_readme_command_is_planned`` fails when the README gains, loses or
changes a command the plan does not name, so the document cannot drift from the product
again: a changed command must be run here or skipped here with a reason.

How the test keeps to about a minute and a half without rewriting the README's commands:

* ``amml run`` of the oil-temperature workflow gets ``OIL_OVERRIDES`` appended (the ETTh1 path
  with ``-p csv=``, as the README says to pass it, plus a short training); ``amml run`` of the
  sensors workflow gets ``SENSOR_OVERRIDES``. A later ``-p`` of one name wins, as for a user.
* A synopsis (``amml run FILE --no-cache | --rerun STEP ...``) or a placeholder (``RUN``,
  ``FILE``, ``[NAME]``, a digest, ``PUBKEY``, ``$KEY``, ``...`` in a JSON body) is run as the
  concrete commands in ``PLAN``, with values from the store the earlier commands filled.
* ``amml serve`` starts in the background on a free port and stops after the ``curl``.

ETTh1 is read from ``AMML_TEST_ETTH1``, else ``../shared/datasets/ett/ETTh1.csv`` beside the
repository (where the README puts it); when it is missing an ETTh1-shaped CSV is generated, so
the test never skips.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
ETTH1 = Path(os.environ.get("AMML_TEST_ETTH1", ROOT.parent / "shared/datasets/ett/ETTh1.csv"))
LOOKBACK = 48
OIL_OVERRIDES = (f"-p epochs=2 -p lookback={LOOKBACK} -p horizon=24 -p batch_size=256 "
                 "-p patience=5")
SENSOR_OVERRIDES = "-p periods=1500"
OIL = "examples/oil_temperature/workflow.yaml"
SENSORS = "examples/sensors/workflow.yaml"


# -- reading the README ------------------------------------------------------------------


def readme_blocks(language: str) -> list[str]:
    text = README.read_text()
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def readme_commands() -> list[str]:
    """Each shell command (continuation lines joined, comments cut), then each Python
    snippet by its first line, in the README's order."""
    found: list[tuple[int, str]] = []
    text = README.read_text()
    for match in re.finditer(r"^```(bash|python)\n(.*?)^```", text, flags=re.S | re.M):
        language, body = match.groups()
        if language == "python":
            found.append((match.start(), "python: " + body.splitlines()[0]))
            continue
        joined = re.sub(r"\\\n\s*", "", body)
        for line in joined.splitlines():
            command = re.sub(r"(^|\s+)#\s.*$", "", line).strip()
            if command:
                found.append((match.start(), command))
    return [command for _, command in found]


def python_snippet(first_line: str) -> str:
    return next(block for block in readme_blocks("python")
                if block.splitlines()[0] == first_line)


# -- the session the commands share -------------------------------------------------------


@dataclass
class Session:
    root: Path
    env: dict[str, str]
    etth1: Path
    values: dict[str, str] = field(default_factory=dict)
    server: subprocess.Popen | None = None

    def amml(self, command: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        args = shlex.split(command)
        assert args[0] == "amml", command
        done = subprocess.run([str(Path(sys.executable).parent / "amml"), *args[1:]],
                              cwd=self.root, env=self.env, capture_output=True, text=True,
                              timeout=300)
        if check:
            assert done.returncode == 0, (f"`{command}` exited {done.returncode}\n"
                                          f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def latest_run(self, workflow: str | None = None) -> str:
        where = f" --workflow {workflow}" if workflow else ""
        rows = json.loads(self.amml(f"amml runs --json --limit 1{where}").stdout)
        return rows[0]["id"]


def _etth1_like(path: Path) -> Path:
    """A generated stand-in with ETTh1's columns and 20 months of hours (the ETT split's)."""
    hours = 20 * 30 * 24
    rng = np.random.default_rng(0)
    t = np.arange(hours)
    daily, yearly = np.sin(2 * np.pi * t / 24), np.sin(2 * np.pi * t / (24 * 365))
    frame = pd.DataFrame({"date": pd.date_range("2016-07-01", periods=hours, freq="h")})
    for index, column in enumerate(("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL")):
        frame[column] = 5 + index + 2 * daily + rng.normal(0, 0.3, hours)
    frame["OT"] = 20 + 8 * yearly + 3 * daily + rng.normal(0, 0.5, hours)
    frame["date"] = frame["date"].dt.strftime("%Y-%m-%d %H:%M:%S")
    frame.to_csv(path, index=False, float_format="%.3f")
    return path


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "examples", root / "examples")
    etth1 = ETTH1 if ETTH1.is_file() else _etth1_like(root / "ETTh1.csv")
    env = {**os.environ, "AMML_HOME": str(root / ".amml"), "AMML_KEY_DIR": str(root / "keys"),
           "AMML_USER": "readme-test", "NO_COLOR": "1", "COLUMNS": "200",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for name in ("AMML_STORE_URL", "AMML_ARTIFACTS_URL", "AMML_PROFILES", "PYTHONPATH"):
        env.pop(name, None)
    state = Session(root, env, etth1)
    yield state
    if state.server is not None:
        state.server.terminate()
        state.server.wait(timeout=30)


# -- what each README command becomes -----------------------------------------------------

Action = Callable[[Session], None]


def run(*commands: str) -> Action:
    """Run these commands (``{name}`` filled from the session's values) and demand exit 0."""
    def action(s: Session) -> None:
        for command in commands:
            s.amml(command.format(**s.values, etth1=s.etth1))
    return action


def skip(reason: str) -> Action:
    def action(s: Session) -> None:
        pytest.skip(reason)
    return action


def _remember_oil_run(s: Session) -> None:
    s.values["oil_run"] = s.latest_run("oil-temperature")


def _digest(s: Session) -> None:
    names = [p.name for p in (s.root / ".amml" / "artifacts").glob("??/*")
             if re.fullmatch(r"[0-9a-f]{64}", p.name)]
    s.amml(f"amml lineage {sorted(names)[0][:6]}")


def _show_latest(s: Session) -> None:
    s.amml(f"amml show {s.latest_run()[:8]}")


def _python(first_line: str) -> Action:
    def action(s: Session) -> None:
        done = subprocess.run([sys.executable, "-c", python_snippet(first_line)], cwd=s.root,
                              env=s.env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return action


def _create_key(s: Session) -> None:
    done = s.amml("amml keys create --scope predict --model oil-temperature --label dashboard")
    s.values["key"] = done.stdout.strip().splitlines()[-1]


def _serve(s: Session) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    s.values["port"] = str(port)
    command = shlex.split(f"amml serve --model oil-temperature@champion --workers 2 "
                          f"--port {port}")
    s.server = subprocess.Popen([str(Path(sys.executable).parent / "amml"), *command[1:]],
                                cwd=s.root, env=s.env, stdout=subprocess.DEVNULL,
                                stderr=(s.root / "serve.log").open("wb"))
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert s.server.poll() is None, (s.root / "serve.log").read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("amml serve was not ready in 90 s:\n"
                         + (s.root / "serve.log").read_text()[-3000:])


def _curl(s: Session) -> None:
    # the README's "[[30.5], [30.1], ...]" is a window of `lookback` rows of OT
    window = pd.read_csv(s.etth1)["OT"].tail(LOOKBACK).round(3).tolist()
    body = json.dumps({"window": [[value] for value in window]})
    try:
        done = subprocess.run(
            ["curl", "-sS", "--fail-with-body", "-H", f"Authorization: Bearer {s.values['key']}",
             "-H", "Content-Type: application/json", "-d", body,
             f"http://127.0.0.1:{s.values['port']}/v1/models/oil-temperature/forecast"],
            capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        answer = json.loads(done.stdout)
        assert answer["version"] and answer["forecast"], answer
    finally:
        if s.server is not None:
            s.server.terminate()
            s.server.wait(timeout=30)
            s.server = None


def _ledger_trust(s: Session) -> None:
    shown = s.amml("amml ledger key").stdout
    public = re.search(r"public key\s+([0-9a-f]+)", shown)
    assert public, shown
    s.amml(f"amml ledger trust {public.group(1)}")
    s.amml("amml ledger rotate-key")


def _policy_dry_run(s: Session) -> None:
    # the README's model is the operations example's; here the oil model the README trained
    done = s.amml("amml models policy oil-temperature --dry-run", check=False)
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 1: not promoted, and why
    assert "promot" in (done.stdout + done.stderr), done.stdout + done.stderr


def _model_card(s: Session) -> None:
    done = s.amml("amml models card oil-temperature@champion --out card/", check=False)
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 1: a check failed
    card = s.root / "card"
    assert (card / "card.md").read_text().startswith("# Model card: oil-temperature@")
    assert {"card.html", "card.json"} <= {p.name for p in card.iterdir()}


def _as_written(command: str, extra: str = "") -> Action:
    return run(f"{command} {extra}".strip())


SENSOR_RUN = f"amml run {SENSORS}"
MAKE_REASON = "make creates .venv and installs AMML; its amml commands are run below"
OIL_EXTRA = "-p csv={etth1} " + OIL_OVERRIDES
FEDERATED_REASON = ("starts Flower's superlink and supernodes: tests/federated/test_deployment.py "
                    "runs a real federation, kills a client and checks the rounds")
EDGE_REASON = ("exports ONNX variants of the oil model (a minute of export and calibration): "
               "tests/edge/test_export.py checks every kind and format")

#: README command -> what the test does, in the README's order.
PLAN: list[tuple[str, Action]] = [
    ("make demo", skip(MAKE_REASON)),
    ("make test", skip("the whole suite, this test included")),
    (f"amml run {SENSORS}", _as_written(SENSOR_RUN, SENSOR_OVERRIDES)),
    (f"amml run {SENSORS} -p horizon=12",
     _as_written(f"{SENSOR_RUN} -p horizon=12", SENSOR_OVERRIDES)),
    ("amml run FILE --no-cache | --rerun STEP | --executor process | --json",
     run(f"{SENSOR_RUN} {SENSOR_OVERRIDES} --rerun evaluation --json",
         f"{SENSOR_RUN} {SENSOR_OVERRIDES} --executor process --rerun clean",
         # FILE is any workflow: --no-cache on the small anomaly one keeps the test short
         "amml run examples/anomaly/workflow.yaml --no-cache")),
    ("amml validate FILE", run(f"amml validate {SENSORS}")),
    ("amml export FILE", run(f"amml export {SENSORS}",
                             "amml export examples/sensors/workflow.py --allow-imports")),
    ("amml runs", run("amml runs")),
    ("amml show RUN", _show_latest),
    ("amml lineage evaluation", run("amml lineage evaluation")),
    ("amml lineage 3f2a9c", _digest),
    ("amml ops", run("amml ops")),
    ("amml ops detect", run("amml ops detect", "amml ops detect --json")),
    ("amml --version", run("amml --version")),
    ("amml executors", run("amml executors")),
    ("python: import amml, pandas as pd", _python("import amml, pandas as pd")),
    ("python: from amml import Client, run_workflow",
     _python("from amml import Client, run_workflow")),
    (f"amml run {OIL}", run(f"amml run {OIL} {OIL_EXTRA}")),
    (f"amml run {OIL} -p model=nlinear -p horizon=336",
     lambda s: (run(f"amml run {OIL} -p model=nlinear -p horizon=336 {OIL_EXTRA}")(s),
                _remember_oil_run(s))),
    ("amml models list [NAME]", run("amml models list", "amml models list oil-temperature")),
    ("amml models show oil-temperature@challenger",
     _as_written("amml models show oil-temperature@challenger")),
    ("amml models promote oil-temperature --from challenger --to champion --metric mse",
     _as_written("amml models promote oil-temperature --from challenger --to champion "
                 "--metric mse")),
    ("amml models show oil-temperature@champion",
     _as_written("amml models show oil-temperature@champion")),
    ('amml models alias oil-temperature baseline 1 --reason "the DLinear run, for comparison"',
     _as_written('amml models alias oil-temperature baseline 1 --reason '
                 '"the DLinear run, for comparison"')),
    ("amml models history oil-temperature", _as_written("amml models history oil-temperature")),
    ("amml models delete oil-temperature 1 --force",
     _as_written("amml models delete oil-temperature 1 --force")),
    ("amml keys create --scope predict --model oil-temperature --label dashboard", _create_key),
    ("amml serve --model oil-temperature@champion --workers 2 --port 8000", _serve),
    ('curl -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" '
     '-d \'{"window": [[30.5], [30.1], ...]}\' '
     "http://127.0.0.1:8000/v1/models/oil-temperature/forecast", _curl),
    ("amml run examples/anomaly/workflow.yaml", run("amml run examples/anomaly/workflow.yaml")),
    ("amml run examples/anomaly/workflow.yaml -p detector=seasonal",
     run("amml run examples/anomaly/workflow.yaml -p detector=seasonal")),
    ("amml artifact plot -o alarms.png", run("amml artifact plot -o alarms.png")),
    ("amml artifact anomalies.report -o report.json",
     run("amml artifact anomalies.report -o report.json")),
    ("amml run examples/anomaly/reference.yaml",
     run("amml run examples/anomaly/reference.yaml")),
    ("amml models card sensors-detector@champion",
     run("amml models card sensors-detector@champion")),
    ("amml ledger list", run("amml ledger list")),
    ("amml ledger show RUN/model", run("amml ledger show {oil_run}/model")),
    ("amml ledger verify [RUN]", run("amml ledger verify", "amml ledger verify {oil_run}")),
    ("amml ledger rollback RUN/model --to 1",  # epochs count from 0: the second one
     run("amml ledger rollback {oil_run}/model --to 1")),
    ("amml ledger head RUN/model --out head.json",
     run("amml ledger head {oil_run}/model --out head.json")),
    ("amml ledger verify --against head.json", run("amml ledger verify --against head.json")),
    ("amml ledger key | trust PUBKEY | rotate-key", _ledger_trust),
    ("amml labels add oil 2024-01-01T08:00 2024-01-01T12:00 --column OT",
     run("amml labels add oil 2024-01-01T08:00 2024-01-01T12:00 --column OT")),
    ('amml labels set 1 normal --region 2024-01-01T09:00..2024-01-01T10:00=anomaly '
     '--reason "pump trip"',
     run('amml labels set 1 normal --region 2024-01-01T09:00..2024-01-01T10:00=anomaly '
         '--reason "pump trip"')),
    ("amml labels export -o tasks.json", run("amml labels export -o tasks.json")),
    ("amml labels import tasks.json", run("amml labels import tasks.json")),
    ("amml labels show 1", run("amml labels show 1")),
    ("amml agent examples/operations/retrain.yaml --once",
     run("amml agent examples/operations/retrain.yaml --once")),
    ("amml agent examples/operations/retrain.yaml --promote oil-ops",
     skip("watches until stopped: tests/engine/test_agent.py runs the agent's loop")),
    ("amml agent --history", run("amml agent --history")),
    ("amml models policy oil-ops --dry-run", _policy_dry_run),
    ("amml models card oil-ops@champion --out card/", _model_card),
    ('curl -H "Authorization: Bearer $READ_KEY" '
     '"http://127.0.0.1:8000/v1/models/oil-ops/card?format=md"',
     skip("needs a running server: tests/serve/test_cards_api.py asks a real one for cards")),
    ("nice -n 10 python benchmarks/operations.py",
     skip("a benchmark of minutes: tests/test_operations_example.py runs the same loop")),
    ("amml run FILE --executor dask --workers 4",
     run(f"{SENSOR_RUN} {SENSOR_OVERRIDES} --executor dask --workers 2")),
    ("amml run FILE --executor dask --scheduler tcp://host:8786",
     skip("needs a running Dask cluster: tests/engine/test_dask_executor.py starts one")),
    ("amml step FILE STEP --run-id ID", run(f"amml step {SENSORS} sensors {SENSOR_OVERRIDES}")),
    ("amml compile kfp FILE -o pipeline.yaml --image amml:latest",
     run(f"amml compile kfp {SENSORS} -o pipeline.yaml --image amml:latest")),
    ("amml compile kfp FILE -o pipeline.yaml --lightweight",
     run(f"amml compile kfp {SENSORS} -o pipeline-light.yaml --lightweight")),
    *[(command, skip(FEDERATED_REASON)) for command in (
        "amml federated up workflow.yaml", "amml federated run workflow.yaml",
        "amml federated status NAME", "amml federated fleet [NAME] [--prometheus]",
        "amml federated down NAME")],
    ("amml edge export oil@champion --format int8 --data ETTh1.csv --train-rows 0:8640 "
     "--eval-rows 11184:14400", skip(EDGE_REASON)),
    ("amml edge register pump-7 --group pumps", run("amml edge register pump-7 --group pumps")),
    ("amml edge assign pumps oil@champion --format int8", skip(EDGE_REASON)),
    ("amml-edge --server URL --token KEY --trust-key HEX --broker host:1883 --topic "
     "plant/pump7 --out plant/pump7/forecast",
     skip("a long-running device process: tests/edge/test_runner_mqtt.py runs it against a "
          "real broker, restarts the broker and swaps its model")),
    ("amml edge devices", run("amml edge devices")),
    ("make bench", skip("benchmarks take minutes and need the servers; each benchmark's "
                        "fallbacks are its own concern")),
    ("make planted-bugs", skip("plants each bug and runs its tests: minutes, not part of "
                               "the suite")),
    ("make mutation", skip("mutation testing takes hours on 2 cores; not part of the suite")),
]

#: Python snippets that are excerpts of a file the plan runs, not programs.
EXCERPTS = {"python: # examples/sensors/workflow.py":
            "an excerpt ('...' in params) of examples/sensors/workflow.py, run by file above"}

#: Commands failing because of another open item of issue 19 (not this test's to fix).
KNOWN: dict[str, str] = {}


def test_every_readme_command_is_planned() -> None:
    planned = [command for command, _ in PLAN]
    found = [command for command in readme_commands() if command not in EXCERPTS]
    assert found == planned, (
        "the README's commands changed: run or skip each in PLAN, in the README's order\n"
        f"only in the README: {[c for c in found if c not in planned]}\n"
        f"only in PLAN: {[c for c in planned if c not in found]}")


@pytest.mark.parametrize("command, action", [
    pytest.param(command, action, id=f"{index:02d}",
                 marks=[pytest.mark.xfail(reason=KNOWN[command], strict=False)]
                 if command in KNOWN else [])
    for index, (command, action) in enumerate(PLAN)])
def test_readme_command_runs(session: Session, command: str, action: Action) -> None:
    action(session)
