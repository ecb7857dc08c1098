"""Compile a workflow to a Kubeflow Pipelines (v2) pipeline spec with the ``kfp`` SDK.

One KFP task per step, each running ``amml step WORKFLOW STEP --run-id <pipeline job id>``:
the tasks of one pipeline run make one AMML run. The workflow's parameters are pipeline
parameters (their defaults: the workflow's, with any ``-p`` given at compile time), passed to
every task (each step compiles the whole workflow, so its upstream cache keys agree). Data
never travels through KFP: every step reads its inputs from the AMML store and writes its
outputs there, so the store must be one every task reaches (``amml_home``, a shared volume;
or ``amml_store_url`` and ``amml_artifacts_url``: a database and an fsspec URL). KFP's own
caching is off: AMML's content-addressed cache decides what re-runs. A step's resource hints
become the task's CPU and memory requests and accelerator limit.

Two variants of the same pipeline:

* container components (default): ``amml step`` in ``image`` (the repository's
  ``Dockerfile``), for a Kubeflow cluster;
* ``lightweight=True``: lightweight Python components, each running the ``amml step``
  command in the interpreter it runs in (AMML installed beside kfp). kfp's local
  ``SubprocessRunner`` runs only these (container components need its Docker runner).
"""

from __future__ import annotations

import importlib.util
import inspect
import keyword
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amml._exceptions import ConfigurationError, WorkflowError
from amml.engine.planner import make_plan
from amml.lang.validate import ValidatedWorkflow

#: The image built from the repository's Dockerfile.
DEFAULT_IMAGE = "amml:latest"
#: The store folder a container task uses unless told otherwise (mount a shared volume).
CONTAINER_HOME = "/mnt/amml"
#: Pipeline parameters of AMML's own: the store every task reads and writes.
STORE_PARAMS = ("amml_home", "amml_store_url", "amml_artifacts_url")

_TYPES: dict[type, type] = {bool: bool, int: int, float: float, str: str, list: list,
                            dict: dict}


@dataclass(frozen=True)
class CompiledPipeline:
    path: Path
    pipeline_name: str
    steps: tuple[str, ...]
    parameters: Mapping[str, Any]  # pipeline parameter -> default
    lightweight: bool


def _kfp():
    try:
        from kfp import compiler, dsl
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ConfigurationError("compiling to Kubeflow Pipelines needs the kfp SDK: "
                                 "pip install kfp") from exc
    return compiler, dsl


def _parameters(workflow: ValidatedWorkflow) -> dict[str, tuple[type, Any]]:
    """The workflow's parameters as typed pipeline parameters."""
    found: dict[str, tuple[type, Any]] = {}
    for name, value in workflow.params.items():
        if name in STORE_PARAMS or name.startswith("amml_") or keyword.iskeyword(name) or (
                not name.isidentifier()):
            raise WorkflowError(f"parameter '{name}' cannot be a Kubeflow pipeline parameter "
                                f"(a Python identifier, not starting with 'amml_'); rename it")
        kind = _TYPES.get(type(value))
        if kind is None:
            raise WorkflowError(f"parameter '{name}' has a value of type "
                                f"{type(value).__name__}, which Kubeflow parameters cannot "
                                f"hold (bool, int, float, str, list, dict)")
        found[name] = (kind, value)
    return found


def _kfp_name(text: str) -> str:
    """A pipeline or component name KFP accepts (lowercase letters, digits, dashes)."""
    cleaned = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
    return cleaned or "amml"


def _signature(params: Mapping[str, tuple[type, Any]], leading: list[tuple[str, type, Any]],
               ) -> inspect.Signature:
    fields = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=t,
                                default=d) for n, t, d in leading]
    fields += [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=t,
                                 default=d) for n, (t, d) in params.items()]
    return inspect.Signature(fields)


def _container_component(dsl: Any, step: str, workflow_path: str, image: str,
                         params: Mapping[str, tuple[type, Any]]) -> Any:
    """A container component running ``amml step WORKFLOW STEP`` in ``image``."""
    leading = [("amml_run_id", str, ""), *((n, str, "") for n in STORE_PARAMS)]
    names = [n for n, _, _ in leading] + list(params)

    def spec(*values: Any) -> Any:
        given = dict(zip(names, values, strict=True))
        args: list[Any] = [workflow_path, step, "--run-id", given["amml_run_id"], "--json",
                           "--home", given["amml_home"],
                           "--store-url", given["amml_store_url"],
                           "--artifacts-url", given["amml_artifacts_url"]]
        for name in params:
            args += ["-p", dsl.ConcatPlaceholder([f"{name}=", given[name]])]
        return dsl.ContainerSpec(image=image, command=["amml", "step"], args=args)

    spec.__signature__ = _signature(params, leading)  # type: ignore[attr-defined]
    spec.__name__ = spec.__qualname__ = f"amml_step_{step}".replace("-", "_")
    spec.__doc__ = f"AMML step '{step}': amml step {workflow_path} {step}"
    return dsl.container_component(spec)


#: The lightweight component: kfp embeds its source, so it is written out as text with the
#: workflow's parameters in its signature, and imported from that file.
_LIGHTWEIGHT = '''\
def amml_step({signature}) -> str:
    """Run one AMML step: the 'amml step WORKFLOW STEP' command, in this interpreter."""
    import contextlib
    import io
    import json

    import click
    from amml.cli.main import app

    params = {{{params}}}
    args = ["step", workflow, step, "--run-id", amml_run_id, "--json", "--home", amml_home,
            "--store-url", amml_store_url, "--artifacts-url", amml_artifacts_url]
    for name, value in params.items():
        text = value if isinstance(value, str) else json.dumps(value)
        args += ["-p", f"{{name}}={{text}}"]
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            app(args, prog_name="amml", standalone_mode=False)
        code = 0
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        code = exc.exit_code
        print(exc.format_message())
    if code:
        raise RuntimeError(f"amml step {{step}} failed (exit {{code}}): {{printed.getvalue()}}")
    return printed.getvalue()
'''


def _lightweight_function(params: Mapping[str, tuple[type, Any]], folder: Path) -> Callable:
    parts = ["workflow: str", "step: str", "amml_run_id: str",
             *(f"{n}: str" for n in STORE_PARAMS)]
    parts += [f"{n}: {t.__name__}" for n, (t, _) in params.items()]
    source = _LIGHTWEIGHT.format(signature=", ".join(parts),
                                 params=", ".join(f"{n!r}: {n}" for n in params))
    path = folder / "amml_kfp_step.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"amml_kfp_step_{id(path)}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # kfp reads the function's source through its module
    spec.loader.exec_module(module)
    return module.amml_step


def compile_kfp(workflow: ValidatedWorkflow, output: str | Path, *,
                image: str = DEFAULT_IMAGE, lightweight: bool = False,
                workflow_path: str | None = None, home: str | None = None,
                store_url: str = "", artifacts_url: str = "") -> CompiledPipeline:
    """Write ``workflow`` as a KFP v2 pipeline spec (YAML) to ``output``.

    ``workflow_path``: where the tasks find the workflow file (default: the absolute path
    here for ``lightweight``, else the path as given, from the image's working folder);
    ``home``, ``store_url``, ``artifacts_url``: the defaults of the store parameters
    (``home`` defaults to this machine's store folder for ``lightweight``, else
    ``/mnt/amml``).
    """
    compiler, dsl = _kfp()
    if not workflow.source_file:
        raise WorkflowError("only a workflow read from a file can be compiled: each task "
                            "runs 'amml step FILE STEP'")
    plan = make_plan(workflow)
    params = _parameters(workflow)
    source = Path(workflow.source_file)
    if workflow_path is None:
        workflow_path = str(source.resolve()) if lightweight else workflow.source_file
    if home is None:
        if lightweight:
            from amml.store import default_home

            home = str(Path(default_home()).resolve())
        else:
            home = CONTAINER_HOME
    defaults = {"amml_home": home, "amml_store_url": store_url,
                "amml_artifacts_url": artifacts_url}
    with tempfile.TemporaryDirectory(prefix="amml-kfp-") as scratch:
        if lightweight:
            component = dsl.component(_lightweight_function(params, Path(scratch)),
                                      base_image=image)
            components = {name: component for name in plan.order}
        else:
            components = {name: _container_component(dsl, name, workflow_path, image, params)
                          for name in plan.order}

        def body(*values: Any) -> None:
            given = dict(zip([*STORE_PARAMS, *params], values, strict=True))
            tasks: dict[str, Any] = {}
            for name in plan.order:
                step = plan.steps[name]
                arguments = {key: given[key] for key in (*STORE_PARAMS, *params)}
                arguments["amml_run_id"] = dsl.PIPELINE_JOB_ID_PLACEHOLDER
                if lightweight:
                    arguments.update(workflow=workflow_path, step=name)
                task = components[name](**arguments)
                task.set_display_name(name)
                task.set_caching_options(False)  # AMML's cache decides
                _request_resources(task, step.resources)
                for up in sorted(step.upstream):
                    task.after(tasks[up])
                tasks[name] = task

        body.__signature__ = _signature(  # type: ignore[attr-defined]
            params, [(n, str, defaults[n]) for n in STORE_PARAMS])
        body.__name__ = body.__qualname__ = _kfp_name(workflow.ir.name).replace("-", "_")
        body.__doc__ = workflow.ir.description or f"AMML workflow '{workflow.ir.name}'"
        pipeline = dsl.pipeline(name=_kfp_name(workflow.ir.name),
                                description=body.__doc__)(body)
        compiler.Compiler().compile(pipeline, package_path=str(output))
    return CompiledPipeline(Path(output), _kfp_name(workflow.ir.name), tuple(plan.order),
                            {**defaults, **{n: d for n, (_, d) in params.items()}}, lightweight)


def _request_resources(task: Any, resources: Mapping[str, float | int]) -> None:
    """A step's hints as the task's requests (KFP spells CPU and memory as Kubernetes
    quantities)."""
    if "cpu" in resources:
        task.set_cpu_request(f"{resources['cpu']:g}")
    if "memory" in resources:
        task.set_memory_request(f"{int(resources['memory'])}")
    if "gpu" in resources:
        task.set_accelerator_type("nvidia.com/gpu")
        task.set_accelerator_limit(max(1, int(resources["gpu"])))
