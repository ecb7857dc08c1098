"""``amml compile kfp WORKFLOW -o pipeline.yaml``: a workflow as another engine's pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from amml.cli._options import JsonOption

app = typer.Typer(name="compile", no_args_is_help=True,
                  help="Compile a workflow for another engine (Kubeflow Pipelines).")

ParamOption = Annotated[list[str] | None, typer.Option(
    "--param", "-p", help="Override a workflow parameter's default: NAME=VALUE (repeatable).")]


def attach(main: typer.Typer) -> None:
    main.add_typer(app, name="compile")


@app.command("kfp")
def kfp(
    file: Annotated[str, typer.Argument(help="Workflow: a .yaml file, or a .py file[:NAME].")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Pipeline spec to write "
                                         "(YAML).")] = Path("pipeline.yaml"),
    image: Annotated[str, typer.Option(help="Image with AMML (the repository's Dockerfile) "
                                       "the steps run in.")] = "amml:latest",
    lightweight: Annotated[bool, typer.Option(
        "--lightweight", help="Lightweight Python components (each calls 'amml step'), "
        "which kfp's local SubprocessRunner runs; default: container components.")] = False,
    workflow_path: Annotated[str | None, typer.Option(
        "--workflow-path", help="Where the tasks find the workflow file (default: the path "
        "as given, in the image's working folder; --lightweight: its absolute path).")] = None,
    home: Annotated[str | None, typer.Option(
        "--store-home", help="Default of the amml_home pipeline parameter: the store folder "
        "every task shares (default: /mnt/amml; --lightweight: this store's).")] = None,
    param: ParamOption = None,
    json_output: JsonOption = False,
) -> None:
    """Compile a workflow to a Kubeflow Pipelines v2 spec: one task per step running
    'amml step', the workflow's parameters as pipeline parameters, artifacts through the
    store."""
    import json

    from amml._exceptions import AMMLError
    from amml.cli.main import _compile, _fail, out
    from amml.engine.compilers.kfp import compile_kfp

    workflow = _compile(file, param)
    try:
        compiled = compile_kfp(workflow, output, image=image, lightweight=lightweight,
                               workflow_path=workflow_path, home=home)
    except AMMLError as exc:
        raise _fail(str(exc), 2) from None
    if json_output:
        out.print_json(json.dumps({"output": str(compiled.path), "pipeline": compiled.pipeline_name,
                                   "steps": list(compiled.steps),
                                   "parameters": dict(compiled.parameters),
                                   "lightweight": compiled.lightweight}))
    else:
        kind = "lightweight Python" if lightweight else f"container ({image})"
        out.print(f"wrote {compiled.path}: pipeline '{compiled.pipeline_name}', "
                  f"{len(compiled.steps)} {kind} steps, parameters "
                  f"{', '.join(compiled.parameters)}", markup=False, highlight=False)
