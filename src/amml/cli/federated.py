"""``amml federated``: Flower's Deployment Runtime around AMML workflows.

``up`` starts a SuperLink and one SuperNode per client of a plan and leaves them running;
``run`` runs the plan's rounds (on the deployment ``up`` left, or on one it starts and stops);
``status`` shows the processes and the rounds recorded; ``fleet`` the clients' health;
``down`` stops the deployment. The plan is the ``federated:`` section of
``WORKFLOW.federated.yaml`` beside the workflow (or ``--plan FILE``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from amml.cli._options import HomeOption, JsonOption

app = typer.Typer(name="federated", no_args_is_help=True,
                  help="Federated training with Flower (superlink, supernodes, rounds, fleet).")

PlanOption = Annotated[Path | None, typer.Option(
    "--plan", help="YAML file with the 'federated:' section (default: WORKFLOW.federated.yaml "
                   "beside the workflow).")]
FolderOption = Annotated[Path | None, typer.Option(
    "--folder", help="Deployment folder (default: HOME/federated/NAME).")]


def attach(main: typer.Typer) -> None:
    main.add_typer(app, name="federated")


def _home(home: Path | None) -> Path:
    from amml.store import default_home

    return Path(home or default_home())


def _plan(workflow: Path, plan: Path | None) -> Any:
    from amml.cli.main import _fail
    from amml.federated.spec import default_plan_path, load_plan

    try:
        return load_plan(plan or default_plan_path(workflow), workflow)
    except Exception as exc:  # configuration problems are the user's to fix: exit 2
        raise _fail(str(exc), 2) from None


def _folder(folder: Path | None, home: Path | None, name: str) -> Path:
    return Path(folder or _home(home) / "federated" / name)


@app.command("up")
def up(workflow: Annotated[Path, typer.Argument(help="The workflow every client runs.")],
       plan: PlanOption = None, folder: FolderOption = None, home: HomeOption = None) -> None:
    """Start a SuperLink and one SuperNode per client of the plan, on loopback; they keep
    running (stop them with 'amml federated down')."""
    from amml.cli.main import _fail, out
    from amml.federated.deployment import Deployment

    spec = _plan(workflow, plan)
    if not spec.clients:
        raise _fail("the plan lists no clients: add them under 'federated.clients'", 2)
    where = _folder(folder, home, spec.name)
    deployment = Deployment(where)
    try:
        deployment.up(spec.clients)
    except Exception as exc:
        deployment.down()
        raise _fail(str(exc), 1) from None
    s = deployment.state
    out.print(f"superlink on 127.0.0.1:{s.fleet_port} (fleet), :{s.control_port} (control); "
              f"{len(s.nodes)} supernodes: {', '.join(escape(n) for n in s.nodes)}")
    out.print(f"folder: {escape(str(where))}")


@app.command("down")
def down(name: Annotated[str, typer.Argument(help="The federation's name.")],
         folder: FolderOption = None, home: HomeOption = None) -> None:
    """Stop the SuperNodes and the SuperLink of a deployment started with 'up'."""
    from amml.cli.main import _fail, out
    from amml.federated.deployment import Deployment

    try:
        deployment = Deployment.open(_folder(folder, home, name))
    except Exception as exc:
        raise _fail(str(exc), 2) from None
    deployment.down()
    out.print(f"stopped {len(deployment.state.nodes)} supernodes and the superlink")


@app.command("run")
def run(workflow: Annotated[Path, typer.Argument(help="The workflow every client runs.")],
        plan: PlanOption = None, folder: FolderOption = None,
        timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 3600,
        json_output: JsonOption = False, home: HomeOption = None) -> None:
    """Run the plan's rounds on Flower's Deployment Runtime; each round's global model is a
    ledger entry and a registered version (promoted when it beats the champion)."""
    from amml.cli.main import _fail, out
    from amml.federated.deployment import Deployment

    spec = _plan(workflow, plan)
    where = _folder(folder, home, spec.name)
    started_here = False
    try:
        deployment = Deployment.open(where)
        if not deployment.processes()["superlink"]["alive"]:
            raise RuntimeError("not running")
    except Exception:
        if not spec.clients:
            raise _fail("no deployment is running and the plan lists no clients", 2) from None
        deployment, started_here = Deployment(where), True
    results = where / f"results-{int(time.time())}.json"
    try:
        if started_here:
            deployment.up(spec.clients)
        document = deployment.run(spec, results=results, store=_home(home), timeout=timeout)
    except Exception as exc:
        raise _fail(str(exc), 1) from None
    finally:
        if started_here:
            deployment.down()
    if json_output:
        out.print_json(json.dumps(document, default=str))
        return
    table = Table("round", "status", "clients", "mse", "mae", "version", "promoted",
                  "seconds", "bytes")
    for r in document["rounds"]:
        table.add_row(str(r["round"]), r["status"], f"{r['answered']}/{r['asked']}",
                      _num(r.get("mse")), _num(r.get("mae")), str(r.get("version", "")),
                      "yes" if r.get("promoted") else "no", _num(r.get("seconds")),
                      str(r.get("bytes", "")))
    out.print(table)


def _num(value: Any) -> str:
    return "" if value is None else f"{float(value):.4g}"


@app.command("status")
def status(name: Annotated[str, typer.Argument(help="The federation's name.")],
           folder: FolderOption = None, json_output: JsonOption = False,
           home: HomeOption = None) -> None:
    """The deployment's processes and the rounds recorded in the ledger."""
    from amml.cli.main import out
    from amml.store import open_store
    from amml.store.ledger import Ledger

    processes: dict[str, Any] = {}
    try:
        from amml.federated.deployment import Deployment

        processes = Deployment.open(_folder(folder, home, name)).processes()
    except Exception:
        processes = {}
    with open_store(_home(home)) as store:
        rounds = [{"seq": e.seq, "round": e.epoch, "model": e.body.get("extra", {}).get("model"),
                   "clients": len(e.body.get("extra", {}).get("clients", [])),
                   "missing": e.body.get("extra", {}).get("missing", []),
                   "promoted": e.body.get("extra", {}).get("promoted"), "metrics": e.metrics}
                  for e in Ledger(store, f"federated-{name}").entries() if e.kind == "round"]
    if json_output:
        out.print_json(json.dumps({"processes": processes, "rounds": rounds}, default=str))
        return
    if processes:
        for process, info in processes.items():
            state = "[green]up[/]" if info["alive"] else "[red]down[/]"
            out.print(f"{escape(process)}: {state} (pid {info['pid']})")
    else:
        out.print("no deployment running")
    table = Table("ledger seq", "round", "model", "clients", "missing", "mse", "promoted")
    for r in rounds:
        table.add_row(str(r["seq"]), str(r["round"]), escape(str(r["model"])),
                      str(r["clients"]), escape(", ".join(r["missing"])),
                      _num(r["metrics"].get("mse")), "yes" if r["promoted"] else "no")
    out.print(table)


@app.command("fleet")
def fleet(name: Annotated[str | None, typer.Argument(help="The federation (default: all).")]
          = None,
          prometheus: Annotated[bool, typer.Option(
              "--prometheus", help="Print Prometheus' text exposition format.")] = False,
          json_output: JsonOption = False, home: HomeOption = None) -> None:
    """Each client's newest health report: status, CPU, memory, rows, data age, local loss,
    model version, last seen."""
    from amml.cli.main import out
    from amml.federated.fleet import prometheus_text
    from amml.store import open_store
    from amml.store.fleet import FleetTable

    with open_store(_home(home)) as store:
        rows = FleetTable(store).latest(name)
    if prometheus:
        typer.echo(prometheus_text(rows), nl=False)
        return
    if json_output:
        out.print_json(json.dumps(rows, default=str))
        return
    now = time.time()
    table = Table("federation", "client", "status", "round", "cpu %", "memory MiB", "rows",
                  "new rows", "data age", "local loss", "model", "last seen")
    for r in rows:
        age = _ago(now - r["newest_row_at"]) if r["newest_row_at"] else ""
        table.add_row(escape(r["federation"]), escape(r["client"]), r["status"], str(r["round"]),
                      _num(r["cpu_percent"]), _num(r["memory_mb"]), _num(r["rows"]),
                      _num(r["new_rows"]), age, _num(r["local_loss"]),
                      "" if r["model_version"] is None else
                      "initial" if r["model_version"] == 0 else f"v{r['model_version']}",
                      _ago(now - r["reported_at"]) + " ago")
    out.print(table)


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"
