"""``amml step WORKFLOW STEP``: run one step, inputs from the store, outputs to it.

The unit a Kubeflow component runs (``amml compile kfp``); several invocations with one
``--run-id`` make one recorded run.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from amml.cli._options import JsonOption

ParamOption = Annotated[list[str] | None, typer.Option(
    "--param", "-p", help="Override a workflow parameter: NAME=VALUE (repeatable).")]


def attach(main: typer.Typer) -> None:
    main.command("step")(step)


def step(
    file: Annotated[str, typer.Argument(help="Workflow: a .yaml file, or a .py file[:NAME].")],
    name: Annotated[str, typer.Argument(help="The step to run.")],
    param: ParamOption = None,
    run_id: Annotated[str | None, typer.Option(
        "--run-id", help="Record the step in this run (created by its first step); "
        "default: a run of its own.")] = None,
    no_cache: Annotated[bool, typer.Option(
        "--no-cache", help="Run the step even if its outputs are stored.")] = False,
    traceback: Annotated[bool, typer.Option(
        "--traceback", help="Show the traceback of a failed step.")] = False,
    json_output: JsonOption = False,
    home: Annotated[str | None, typer.Option(
        "--home", envvar="AMML_HOME",
        help="Folder of the default store (default: ./.amml).")] = None,
    store_url: Annotated[str | None, typer.Option(
        "--store-url", envvar="AMML_STORE_URL",
        help="Metadata store URL (default: the home's SQLite).")] = None,
    artifacts_url: Annotated[str | None, typer.Option(
        "--artifacts-url", envvar="AMML_ARTIFACTS_URL",
        help="Artifact store: a folder or fsspec URL (default: the home's artifacts/).")] = None,
) -> None:
    """Run one step of a workflow: its inputs are read from the store (recorded in the same
    run, or cached), its outputs written to it, and the step recorded under the run."""
    from amml._exceptions import AMMLError, WorkflowError
    from amml.cli.main import _compile, _fail, _print_summary, _result_json, out
    from amml.engine.step_runner import run_step
    from amml.store import open_store

    workflow = _compile(file, param)
    # a value equal to the workflow's own default is that default, not a value typed here: a
    # compiled pipeline passes every parameter, and a relative path among them must still
    # resolve from the workflow file's folder, as 'amml run' without -p resolves it
    given = [text for text in param or [] if not _is_default(text, workflow.ir.params)]
    if len(given) != len(param or []):
        workflow = _compile(file, given)
    try:  # an empty value (a pipeline parameter left blank) means the default
        store = open_store(home or None, url=store_url or None,
                           artifacts_url=artifacts_url or None, migrate=None)
    except AMMLError as exc:
        raise _fail(str(exc), 1) from None
    try:
        result = run_step(workflow, name, store, run_id=run_id, use_cache=not no_cache)
    except WorkflowError as exc:
        raise _fail(str(exc), 2) from None
    except AMMLError as exc:
        raise _fail(str(exc), 1) from None
    finally:
        store.close()
    if json_output:
        out.print_json(json.dumps(_result_json(result)))
    else:
        _print_summary(result, traceback)
    if result.status != "succeeded":
        raise typer.Exit(1)


def _is_default(text: str, defaults: dict) -> bool:
    from amml.lang.params import ParamProblem, parse_override

    try:
        name, value = parse_override(text)
    except ParamProblem:
        return False  # reported by the compile
    return name in defaults and type(defaults[name]) is type(value) and (
        defaults[name] == value)
