"""The ``amml`` command line (Typer + Rich).

Exit codes: 0 success, 1 a step or the store failed, 2 the workflow or the command line is
invalid (nothing was run and nothing written).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from amml._exceptions import AMMLError, WorkflowError, WorkflowValidationError

if TYPE_CHECKING:
    from amml.store.client import Client

# Plain (click) help text: Typer's Rich help pulls in a Markdown parser that alone costs more
# than the rest of ``amml --help``; plain text also keeps brackets ("amml[torch]") intact.
# Typer still escapes an option's "[default: ...]" for Rich whenever Rich is installed, which
# plain help then prints as "\[default: ...]"; that escaping is all this flag still decides
# once the markup mode is None.
typer.core.HAS_RICH = False
app = typer.Typer(name="amml", no_args_is_help=True, add_completion=False,
                  help="AMML: workflows for time-series forecasting and anomaly detection.",
                  pretty_exceptions_enable=False, rich_markup_mode=None)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

HomeOption = Annotated[Path | None, typer.Option(
    "--home", envvar="AMML_HOME", help="Folder of the default store (default: ./.amml).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ParamOption = Annotated[list[str] | None, typer.Option(
    "--param", "-p", help="Override a workflow parameter: NAME=VALUE (repeatable).")]


def _print_version(value: bool) -> None:
    if not value:
        return
    # the installed distribution's metadata, not ``import amml``: that loads the engine, and
    # --version is as cheap as --help
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = version("amml")
    except PackageNotFoundError:  # run from a source tree that was never installed
        text = "unknown (not installed)"
    out.print(f"amml {text}", markup=False, highlight=False)
    raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the AMML version and exit.")] = False,
) -> None:
    """AMML: workflows for time-series forecasting and anomaly detection."""


def _fail(message: str, code: int) -> typer.Exit:
    # messages quote paths, user values and other libraries' errors: brackets in them
    # ("pip install 'amml[torch]'") are text, never Rich markup
    err.print(f"[red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


def _report_invalid(exc: WorkflowValidationError) -> typer.Exit:
    count = len(exc.issues)
    err.print(f"[red bold]invalid workflow[/] ({count} problem{'s' if count != 1 else ''}):")
    for issue in exc.issues:
        err.print(issue.format(), highlight=False, markup=False)
    return typer.Exit(2)


def _parse_params(values: list[str] | None) -> dict[str, Any]:
    from amml.lang.params import ParamProblem, parse_override

    parsed: dict[str, Any] = {}
    for text in values or []:
        try:
            name, value = parse_override(text)
        except ParamProblem as problem:
            hint = f" ({problem.hint})" if problem.hint else ""
            raise _fail(f"{problem}{hint}", 2) from None
        parsed[name] = (value, text.split("=", 1)[1])
    return parsed


AllowImportsOption = Annotated[bool, typer.Option(
    "--allow-imports", help="Import the workflow's 'imports:' and run a .py workflow to read "
    "it. This runs their code; without it nothing of the workflow's runs.")]


def _compile(file: str, params: list[str] | None, *, allow_imports: bool = True):
    from amml.engine import compile_workflow

    overrides = _parse_params(params)
    try:
        return compile_workflow(file, overrides, allow_imports=allow_imports)
    except WorkflowValidationError as exc:
        raise _report_invalid(exc) from None
    except WorkflowError as exc:
        raise _fail(str(exc), 2) from None


def _open_store(home: Path | None, *, read_only: bool = False):
    """The store for a command. Commands that only read pass ``read_only``: they never
    create, migrate or otherwise write to it. Commands that write create and upgrade the
    embedded SQLite store on first use, but never a server store: that takes
    ``amml store init`` / ``amml store upgrade``, and the error says so."""
    from amml.store import open_store

    try:
        return open_store(home, migrate=None, read_only=read_only)
    except AMMLError as exc:
        raise _fail(str(exc), 1) from None


@contextmanager
def _client(home: Path | None, *, read_only: bool = True) -> Iterator[Client]:
    """A client on the store (read-only unless asked); store errors become a clean message
    and exit code 1."""
    from amml.store.client import Client

    client = Client(store=_open_store(home, read_only=read_only))
    try:
        yield client
    except AMMLError as exc:
        raise _fail(str(exc), 1) from None
    finally:
        client.close()


# Static on purpose: listing the registry here would import the engine for every command,
# ``amml --help`` included; ``amml executors`` lists it, and a wrong name lists it too.
EXECUTOR_HELP = ("How steps are dispatched: a registered executor, built in: thread, process, "
                 "sequential, dask ('amml executors' lists all, plugins included).")


@app.command()
def run(
    file: Annotated[str, typer.Argument(help="Workflow: a .yaml file, or a .py file[:NAME].")],
    param: ParamOption = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every step.")] = False,
    rerun: Annotated[list[str] | None, typer.Option(
        "--rerun", help="Run this step even if cached (repeatable).")] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel steps (default: CPUs).")] = None,
    executor: Annotated[str, typer.Option(help=EXECUTOR_HELP)] = "thread",
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", envvar="AMML_DASK_SCHEDULER",
        help="With --executor dask: an existing cluster's scheduler, tcp://HOST:PORT.")] = None,
    traceback: Annotated[bool, typer.Option("--traceback", help="Show failed steps' "
                                            "tracebacks.")] = False,
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Validate and run a workflow; unchanged steps are reused from the cache."""
    from amml.cli.progress import RichProgress
    from amml.engine import Runner
    from amml.engine.executors import make_executor

    workflow = _compile(file, param)
    try:
        # the variable may be set for every command; only the Dask executor takes it
        extra = {"scheduler": scheduler} if scheduler and executor == "dask" else {}
        chosen = make_executor(executor, workers=workers, **extra)
    except AMMLError as exc:
        raise _fail(f"--executor: {exc}", 2) from None
    store = _open_store(home)
    hooks = [] if json_output else [RichProgress(err)]
    try:
        with chosen:
            result = Runner(store, chosen, hooks).run(workflow, use_cache=not no_cache,
                                                      rerun=rerun or [])
    except AMMLError as exc:
        raise _fail(str(exc), 2 if "--rerun" in str(exc) else 1) from None
    finally:
        store.close()
    if json_output:
        out.print_json(json.dumps(_result_json(result)))
    else:
        _print_summary(result, traceback)
    if result.status != "succeeded":
        raise typer.Exit(1)


def _result_json(result) -> dict[str, Any]:
    return {
        "run_id": result.run_id, "workflow": result.workflow, "status": result.status,
        "duration_s": round(result.duration_s, 6),
        "counts": {s: result.count(s) for s in ("ran", "cached", "failed", "skipped")},
        "steps": [{"name": o.name, "op": o.op, "status": o.status,
                   "duration_s": round(o.duration_s, 6), "cache_key": o.cache_key,
                   "outputs": {k: v.digest for k, v in o.outputs.items()}, "error": o.error}
                  for o in result.steps.values()],
    }


def _print_summary(result, show_traceback: bool) -> None:
    # the summary is the command's result: stdout (progress went to stderr), so
    # 'amml run F > summary.txt' keeps it
    table = Table(title=escape(f"run {result.run_id} · {result.workflow}"), title_justify="left")
    for column in ("step", "op", "status", "duration"):
        table.add_column(column, justify="right" if column == "duration" else "left")
    from amml.cli.progress import STYLES

    for outcome in result.steps.values():
        style = STYLES.get(outcome.status, ("", "white"))[1]
        duration = f"{outcome.duration_s:.3f}s" if outcome.status in ("ran", "failed") else "-"
        table.add_row(escape(outcome.name), escape(outcome.op), f"[{style}]{outcome.status}[/]",
                      duration)
    out.print(table)
    counts = ", ".join(f"{result.count(s)} {s}" for s in ("ran", "cached", "failed", "skipped")
                       if result.count(s) or s in ("ran", "cached"))
    style = "green" if result.status == "succeeded" else "red"
    out.print(f"[{style} bold]{result.status}[/] in {result.duration_s:.3f}s: {counts}")
    if show_traceback:
        for outcome in result.steps.values():
            if outcome.traceback:
                err.print(f"[red]traceback of step '{escape(outcome.name)}':[/]\n"
                          f"{escape(outcome.traceback)}", highlight=False)
    elif result.status == "failed":
        err.print("[dim]add --traceback to see where the failing steps raised[/]")


@app.command()
def validate(
    file: Annotated[str, typer.Argument(help="Workflow file (.yaml or .py[:NAME]).")],
    param: ParamOption = None,
    json_output: JsonOption = False,
    allow_imports: AllowImportsOption = False,
) -> None:
    """Check a workflow without running it or touching the store."""
    workflow = _compile(file, param, allow_imports=allow_imports)
    if workflow.ir.imports and not allow_imports:
        skipped = escape(", ".join(workflow.ir.imports))
        err.print(f"[yellow]note:[/] imports not imported ({skipped}); "
                  "--allow-imports checks with them (runs their code)", highlight=False)
    if json_output:
        out.print_json(json.dumps({"valid": True, "workflow": workflow.ir.name,
                                   "steps": list(workflow.order),
                                   "ir_digest": workflow.ir.digest()}))
    else:
        out.print(f"[green]valid[/]: workflow '{escape(workflow.ir.name)}', "
                  f"{len(workflow.order)} steps ({', '.join(workflow.order)})")


@app.command()
def export(
    file: Annotated[str, typer.Argument(help="Workflow file (.py[:NAME] or .yaml).")],
    format: Annotated[str, typer.Option("--format", help="yaml or json (canonical IR).")
                      ] = "yaml",
    allow_imports: AllowImportsOption = False,
) -> None:
    """Print a workflow as YAML (or canonical JSON IR), e.g. to turn Python into YAML."""
    from amml.engine.loading import export_imports

    workflow = _compile(file, None, allow_imports=allow_imports)
    # a .py workflow's ops may come from modules it imported itself: name them under imports:
    imports = export_imports(workflow) if allow_imports else list(workflow.ir.imports)
    loaded_ir = workflow.ir.model_copy(update={"imports": imports})
    if format == "json":
        sys.stdout.write(loaded_ir.canonical_json() + "\n")
    elif format == "yaml":
        from amml.engine import load_workflow

        written = load_workflow(file).ir
        sys.stdout.write(written.model_copy(update={"imports": imports}).to_yaml())
    else:
        raise _fail("--format must be yaml or json", 2)


@app.command()
def runs(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    workflow: Annotated[str | None, typer.Option(help="Only this workflow.")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """List recorded runs."""
    with _client(home) as client:
        rows = client.runs(limit=limit, workflow=workflow, status=status)
    if json_output:
        out.print_json(json.dumps(rows))
        return
    table = Table()
    # the commit column only when some run was made inside git: narrow terminals keep ids whole
    commits = any(row.get("code_commit") for row in rows)
    for column in ("run", "workflow", "status", "started", "duration",
                   *(("commit",) if commits else ())):
        table.add_column(column, no_wrap=column in ("run", "commit"))
    for row in rows:
        duration = (f"{row['ended_at'] - row['started_at']:.3f}s" if row["ended_at"] else "-")
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["started_at"]))
        cells = [row["id"], row["workflow"], _status(row["status"]), started, duration]
        if commits:
            cells.append(_short_commit(row.get("code_commit"), row.get("code_dirty")))
        table.add_row(*cells)
    out.print(table)


def _short_commit(commit: str | None, dirty: bool | None) -> str:
    """``3f2a9c1d`` (``+`` when the tree had uncommitted changes); empty outside git."""
    if not commit:
        return ""
    return commit[:8] + ("+" if dirty else "")


def _status(status: str) -> str:
    style = {"succeeded": "green", "failed": "red", "interrupted": "yellow",
             "running": "cyan", "ran": "green", "cached": "cyan",
             "skipped": "yellow"}.get(status, "white")
    return f"[{style}]{status}[/]"


@app.command()
def show(
    run_id: Annotated[str | None, typer.Argument(
        help="Run id (a unique prefix is enough); default: the latest run.")] = None,
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Show one run: its code version, params, steps and the last value of each metric."""
    from amml.store.code_version import CodeVersion

    with _client(home) as client:
        if run_id is None:
            latest = client.runs(limit=1)
            if not latest:
                raise _fail("no runs recorded yet: try 'amml run FILE'", 1)
            run_id = latest[0]["id"]
        info = client.run(run_id)
    if json_output:
        import math

        # JSON has no NaN or Infinity: a non-finite metric is printed as "nan", "inf", "-inf"
        for m in info["metrics"]:
            if not math.isfinite(m["value"]):
                m["value"] = str(m["value"])
        out.print_json(json.dumps(info, default=str))
        return
    out.print(f"[bold]run[/] {info['id']} · workflow [bold]{escape(str(info['workflow']))}[/] · "
              f"{_status(info['status'])}")
    if info.get("error"):
        out.print(f"[red]error:[/] {escape(str(info['error']))}", highlight=False)
    out.print(f"code: {CodeVersion.from_json(info['code_version']).describe()}",
              highlight=False)
    if info["params"]:
        out.print("params: " + ", ".join(f"{k}={v!r}" for k, v in info["params"].items()))
    steps = Table(title="steps", title_justify="left")
    for column in ("step", "op", "status", "duration", "cache key"):
        steps.add_column(column)
    for step in info["steps"]:
        steps.add_row(step["name"], step["op"], _status(step["status"]),
                      f"{step['duration_s']:.3f}s", (step["cache_key"] or "")[:12])
    out.print(steps)
    if info["metrics"]:
        metrics = Table(title="metrics (last value)", title_justify="left")
        # a cached step logged nothing here: its metrics are those of the run it reused
        cached = any(m.get("cached_from") for m in info["metrics"])
        for column in ("step", "metric", "value", "points") + (("cached from",) if cached
                                                               else ()):
            metrics.add_column(column)
        for m in info["metrics"]:
            row = [m["step_name"], m["key"], f"{m['value']:.6g}", str(m["points"])]
            metrics.add_row(*row, *([m.get("cached_from") or ""] if cached else []))
        out.print(metrics)


@app.command()
def lineage(
    target: Annotated[str, typer.Argument(help="Artifact digest (prefix), STEP or RUN:STEP.")],
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Show where an artifact or a step's outputs came from, and who used them."""
    with _client(home) as client:
        graph = client.lineage(target)
    if json_output:
        out.print_json(json.dumps(graph, default=str))
        return
    if graph["kind"] == "artifact":
        tree = Tree(_artifact_label(graph["artifact"]))
        if "produced_by" in graph:
            _add_step(tree, graph["produced_by"], set())
        _add_consumers(tree, graph["consumed_by"])
    else:
        tree = Tree(f"[bold]step {graph['step']}[/] ({graph['op']}) · run {graph['run_id']}")
        outputs = tree.add("[bold]outputs[/]")
        for output in graph["outputs"]:
            node = outputs.add(f"{output['port']}: " + _artifact_label(output["artifact"]))
            _add_consumers(node, output["consumed_by"])
        inputs = tree.add("[bold]inputs[/]")
        seen: set[tuple[str, str]] = set()
        for child in graph["inputs"]:
            _add_input(inputs, child, seen)
    out.print(tree)


def _artifact_label(artifact: dict[str, Any]) -> str:
    size = artifact.get("size")
    return (f"[cyan]{artifact['digest'][:12]}[/] {artifact.get('type') or '?'}"
            + (f" {size:,} B" if size is not None else ""))


def _add_step(parent: Tree, step: dict[str, Any], seen: set[tuple[str, str]]) -> None:
    label = f"← [bold]{step['step']}[/] ({step['op']}) · run {step['run_id'][:8]}"
    key = (step["run_id"], step["step"])
    if key in seen:  # a shared ancestor: its history is already drawn above
        parent.add(label + " [dim](shown above)[/]")
        return
    seen.add(key)
    node = parent.add(label)
    for child in step.get("inputs", []):
        _add_input(node, child, seen)


def _add_input(parent: Tree, child: dict[str, Any], seen: set[tuple[str, str]]) -> None:
    node = parent.add(f"{child['port']}: " + _artifact_label(child["artifact"]))
    if "produced_by" in child:
        _add_step(node, child["produced_by"], seen)


def _add_consumers(parent: Tree, consumers: list[dict[str, Any]]) -> None:
    if consumers:
        used = parent.add("[dim]used by[/]")
        for c in consumers:
            used.add(f"→ {c['step']} ({c['op']}) · run {c['run_id'][:8]} · {c['status']}")


@app.command("executors")
def list_executors(json_output: JsonOption = False) -> None:
    """List the registered executors (built-in and from plugins) for 'amml run --executor'."""
    from amml.engine.executors import EXECUTORS

    rows = [{"name": name, "class": f"{cls.__module__}.{cls.__qualname__}",
             "description": cls.describe()} for name, cls in EXECUTORS.items()]
    if json_output:
        out.print_json(json.dumps(rows))
        return
    table = Table()
    for column in ("executor", "description", "class"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], row["description"], row["class"])
    out.print(table)
    for name, problem in EXECUTORS.plugin_errors.items():
        err.print(f"[yellow]plugin '{name}' failed to load:[/] {escape(str(problem))}")


#: Command modules; each has ``attach(app)`` adding its commands or command group.
#: A module not written yet is skipped (one capability per module: step, compile, monitor,
#: ui, federated, edge each add theirs without touching this file).
COMMAND_MODULES = ("amml.cli.ledger", "amml.cli.models", "amml.cli.keys", "amml.cli.serve",
                   "amml.cli.bench", "amml.cli.artifact", "amml.cli.store", "amml.cli.ops",
                   "amml.cli.step", "amml.cli.compile", "amml.cli.monitor", "amml.cli.labels",
                   "amml.cli.ui", "amml.cli.federated", "amml.cli.edge", "amml.cli.agent")


def _add_subcommands() -> None:
    import importlib

    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # not written yet
                continue
            raise
        module.attach(app)


_add_subcommands()


def main() -> None:
    if os.environ.get("AMML_DEBUG"):
        app()
        return
    try:
        app()
    except AMMLError as exc:  # anything that slipped through: a message, never a traceback
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(1)
