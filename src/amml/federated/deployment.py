"""Flower's Deployment Runtime on this machine: one ``flower-superlink``, one
``flower-supernode`` per client, and ``flwr run`` to submit AMML's app to them.

Everything lives under one folder: ``flwr-home/`` (``FLWR_HOME``: Flower's configuration
naming the SuperLink, and the installed apps), ``app/`` (the app's ``pyproject.toml``, whose
components are :mod:`amml.federated.flower_app`), ``nodes/NAME/`` (a client's node config and
its own store), ``server/`` (the server's store) and ``logs/``. ``deployment.json`` records
the ports and process ids, so ``amml federated status`` and ``run`` find a deployment that
``amml federated up`` left running.

Verified with flwr 1.32 (see the shared recipes): the SuperLink serves the Fleet, Control and
ServerAppIo APIs on three addresses; each SuperNode needs a ClientAppIo address of its own;
``--disable-runtime-dependency-installation`` keeps it offline; each process is started in a
session of its own so that stopping it also stops the ``flower-superexec`` and app processes
it started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from amml._exceptions import ConfigurationError, StoreError
from amml.federated.spec import ClientSpec, FederationSpec

FEDERATION_NAME = "local-deployment"
APP_PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "amml-federated"
version = "1.0.0"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "amml"

[tool.flwr.app.components]
serverapp = "amml.federated.flower_app:server"
clientapp = "amml.federated.flower_app:client"

[tool.flwr.app.config]
plan = ""
store = ""
results = ""
wire-log = ""
"""


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on loopback right now."""
    sockets, ports = [], []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def flower_binary(name: str) -> str:
    """The path of a Flower executable beside this Python (the venv's ``bin/``)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise ConfigurationError(f"'{name}' not found beside {sys.executable}: install Flower "
                                 "(pip install 'amml[federated]')")
    return str(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not alive
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


def stop_process(pid: int, *, kill: bool = False, grace: float = 15.0) -> None:
    """Stop the process group of ``pid`` (a process this module started in a session of its
    own): SIGTERM and up to ``grace`` seconds, then SIGKILL; ``kill`` sends SIGKILL at once."""
    sig = signal.SIGKILL if kill else signal.SIGTERM
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    deadline = time.monotonic() + grace
    while _alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if _alive(pid) or not kill:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


@dataclass
class NodeInfo:
    client: str
    pid: int
    port: int
    home: str
    started_at: float


@dataclass
class DeploymentState:
    folder: str
    fleet_port: int
    control_port: int
    serverappio_port: int
    superlink_pid: int | None = None
    nodes: dict[str, NodeInfo] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeploymentState:
        nodes = {k: NodeInfo(**v) for k, v in (data.get("nodes") or {}).items()}
        return cls(**{**data, "nodes": nodes})


class Deployment:
    """A SuperLink and SuperNodes on loopback, rooted at ``folder``."""

    def __init__(self, folder: str | Path, state: DeploymentState | None = None, *,
                 env: dict[str, str] | None = None) -> None:
        self.folder = Path(folder).resolve()
        self.extra_env = dict(env or {})
        if state is None:
            fleet, control, serverappio = free_ports(3)
            state = DeploymentState(str(self.folder), fleet, control, serverappio)
        self.state = state

    # -- state -----------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.folder / "deployment.json"

    @classmethod
    def open(cls, folder: str | Path) -> Deployment:
        """The deployment ``amml federated up`` left in ``folder``."""
        path = Path(folder).resolve() / "deployment.json"
        try:
            state = DeploymentState.from_json(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigurationError(f"no deployment in {path.parent} ({exc}); start one with "
                                     "'amml federated up'") from None
        return cls(folder, state)

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(self.state.to_json(), indent=1))

    def env(self) -> dict[str, str]:
        """Flower's environment: its home here, no telemetry, the venv's binaries first on
        ``PATH`` (the SuperLink starts ``flower-superexec`` and the apps by name)."""
        env = {**os.environ, **self.extra_env}
        env["FLWR_HOME"] = str(self.folder / "flwr-home")
        env["FLWR_TELEMETRY_ENABLED"] = "0"
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        return env

    @property
    def server_home(self) -> Path:
        return self.folder / "server"

    def node_home(self, client: str) -> Path:
        return self.folder / "nodes" / client

    # -- processes -------------------------------------------------------------------------
    def _spawn(self, argv: list[str], log_name: str) -> int:
        logs = self.folder / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / log_name).open("ab") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=self.env(),
                                       cwd=self.folder, start_new_session=True)
        return process.pid

    def _wait_port(self, port: int, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port),
                                                                         timeout=0.5):
                return
            time.sleep(0.2)
        raise StoreError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:g} s; "
                         f"see {self.folder / 'logs'}")

    def start_superlink(self) -> None:
        s = self.state
        home = self.folder / "flwr-home"
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(
            f'[superlink]\ndefault = "{FEDERATION_NAME}"\n\n[superlink.{FEDERATION_NAME}]\n'
            f'address = "127.0.0.1:{s.control_port}"\ninsecure = true\n')
        s.superlink_pid = self._spawn([
            flower_binary("flower-superlink"), "--insecure",
            "--fleet-api-address", f"127.0.0.1:{s.fleet_port}",
            "--control-api-address", f"127.0.0.1:{s.control_port}",
            "--serverappio-api-address", f"127.0.0.1:{s.serverappio_port}",
            "--disable-runtime-dependency-installation"], "superlink.log")
        self.save()
        self._wait_port(s.fleet_port, "the SuperLink's Fleet API")
        self._wait_port(s.control_port, "the SuperLink's Control API")

    def start_supernode(self, client: ClientSpec) -> NodeInfo:
        """Start (or restart: it rejoins under its name) the SuperNode of ``client``."""
        home = self.node_home(client.name)
        home.mkdir(parents=True, exist_ok=True)
        lines = [f"client = {_toml_value(client.name)}", f"home = {_toml_value(home)}"]
        if client.available:
            lines.append(f"available = {_toml_value(client.available)}")
        if client.params:
            lines.append("[params]")
            lines += [f"{key} = {_toml_value(value)}" for key, value in client.params.items()]
        config = home / "node-config.toml"
        config.write_text("\n".join(lines) + "\n")
        (port,) = free_ports(1)
        pid = self._spawn([
            flower_binary("flower-supernode"), "--insecure",
            "--superlink", f"127.0.0.1:{self.state.fleet_port}",
            "--clientappio-api-address", f"127.0.0.1:{port}",
            "--node-config", str(config)], f"supernode-{client.name}.log")
        info = NodeInfo(client.name, pid, port, str(home), time.time())
        self.state.nodes[client.name] = info
        self.save()
        return info

    def up(self, clients: list[ClientSpec]) -> None:
        """A SuperLink and one SuperNode per client."""
        self.start_superlink()
        for client in clients:
            self.start_supernode(client)
        for client in clients:
            self._wait_port(self.state.nodes[client.name].port,
                            f"SuperNode '{client.name}'")

    def stop_node(self, client: str, *, kill: bool = False) -> None:
        """Stop a client's SuperNode; ``kill`` is a crash (SIGKILL, no goodbye)."""
        info = self.state.nodes.get(client)
        if info is None:
            raise ConfigurationError(f"no SuperNode for client '{client}' (known: "
                                     f"{', '.join(self.state.nodes) or 'none'})")
        stop_process(info.pid, kill=kill)

    def down(self) -> None:
        """Stop every process of the deployment (SuperNodes first)."""
        for info in list(self.state.nodes.values()):
            stop_process(info.pid)
        if self.state.superlink_pid:
            stop_process(self.state.superlink_pid)

    def processes(self) -> dict[str, dict[str, Any]]:
        """Each process: its pid and whether it is alive."""
        rows = {"superlink": {"pid": self.state.superlink_pid,
                              "alive": bool(self.state.superlink_pid)
                              and _alive(self.state.superlink_pid)}}
        for name, info in self.state.nodes.items():
            rows[f"supernode:{name}"] = {"pid": info.pid, "alive": _alive(info.pid),
                                         "port": info.port}
        return rows

    # -- runs ------------------------------------------------------------------------------
    def write_app(self) -> Path:
        app = self.folder / "app"
        app.mkdir(parents=True, exist_ok=True)
        (app / "pyproject.toml").write_text(APP_PYPROJECT)
        return app

    def run_config_file(self, plan: FederationSpec, *, results: Path,
                        wire_log: Path | None = None, store: Path | None = None) -> Path:
        values = {"plan": plan.to_json(), "store": str(store or self.server_home),
                  "results": str(results), "wire-log": str(wire_log or "")}
        path = self.folder / "run-config.toml"
        path.write_text("".join(f"{k} = {_toml_value(v)}\n" for k, v in values.items()))
        return path

    def submit(self, plan: FederationSpec, *, results: Path, wire_log: Path | None = None,
               store: Path | None = None, app: Path | None = None,
               run_config: Path | None = None) -> subprocess.Popen:
        """``flwr run APP local-deployment --stream`` in the background; the process ends
        when the run does (its output: ``logs/run.log``)."""
        app = app or self.write_app()
        config = run_config or self.run_config_file(plan, results=results, wire_log=wire_log,
                                                    store=store)
        logs = self.folder / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / "run.log").open("ab") as log:
            return subprocess.Popen(
                [flower_binary("flwr"), "run", str(app), FEDERATION_NAME,
                 "--run-config", str(config), "--stream"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env(), cwd=self.folder, start_new_session=True)

    def run(self, plan: FederationSpec, *, results: Path, wire_log: Path | None = None,
            store: Path | None = None, timeout: float | None = None) -> dict[str, Any]:
        """Submit and wait; returns the results document the ServerApp wrote."""
        process = self.submit(plan, results=results, wire_log=wire_log, store=store)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_process(process.pid)
            raise StoreError(f"the federated run did not finish within {timeout:g} s; see "
                             f"{self.folder / 'logs'}") from None
        return read_results(results, self.folder / "logs" / "run.log")


def read_results(path: Path, log: Path | None = None) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        tail = ""
        if log is not None and log.exists():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise StoreError(f"the federated run wrote no results to {path}"
                         + (f"; the end of its log:\n{tail}" if tail else "")) from None
