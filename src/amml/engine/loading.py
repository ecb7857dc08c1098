"""From a file or a Python object to a validated workflow, and from there to a run.

``compile_workflow`` accepts a YAML path, a ``.py`` path (``file.py`` or ``file.py:NAME``),
a :class:`~amml.lang.builder.Workflow` or an already loaded IR. Modules listed under
``imports:`` are imported first so the ops they define are registered.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amml._exceptions import ValidationIssue, WorkflowError, WorkflowValidationError
from amml.lang.builder import Workflow, collect_declared
from amml.lang.ir import LoadedWorkflow
from amml.lang.validate import ValidatedWorkflow, validate
from amml.lang.yaml_loader import load_yaml_file
from amml.ops.registry import REGISTRY

if TYPE_CHECKING:  # running needs the runner and the store; loading and validating do not
    from amml.engine.executors import Executor
    from amml.engine.hooks import RunHooks
    from amml.engine.runner import RunResult
    from amml.store import Store

WorkflowSource = str | Path | Workflow | LoadedWorkflow


def _import_python_file(path: Path) -> Any:
    # The name changes with the content, so an edited file is imported afresh.
    digest = hashlib.sha256(str(path.resolve()).encode() + path.read_bytes()).hexdigest()[:12]
    module_name = f"amml_user_{path.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise WorkflowError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except WorkflowError:
        sys.modules.pop(module_name, None)
        raise
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise WorkflowError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    return module


def load_python_workflow(spec: str | Path) -> LoadedWorkflow:
    """Run a ``.py`` file and take the workflow it declares (``file.py:NAME`` picks one)."""
    text = str(spec)
    path_text, _, wanted = text.partition(".py:")
    path = Path(path_text + ".py" if wanted else text)
    if not path.exists():
        raise WorkflowError(f"workflow file not found: {path}")
    collect_declared()
    module = _import_python_file(path)
    declared = collect_declared() or [v for v in vars(module).values()
                                      if isinstance(v, Workflow)]
    if wanted:
        chosen = [w for w in declared if w.name == wanted] or [
            v for k, v in vars(module).items() if k == wanted and isinstance(v, Workflow)]
    else:
        chosen = declared
    if not chosen:
        names = ", ".join(w.name for w in declared) or "none"
        raise WorkflowError(f"{path} declares no workflow" + (f" named '{wanted}'" if wanted
                                                              else "") + f" (found: {names})")
    if len(chosen) > 1:
        names = ", ".join(w.name for w in chosen)
        raise WorkflowError(f"{path} declares several workflows ({names}); "
                            f"pick one with {path}:NAME")
    return chosen[0].to_loaded()


def load_workflow(source: WorkflowSource) -> LoadedWorkflow:
    if isinstance(source, LoadedWorkflow):
        return source
    if isinstance(source, Workflow):
        return source.to_loaded()
    text = str(source)
    if text.endswith(".py") or ".py:" in text:
        return load_python_workflow(text)
    return load_yaml_file(text)


def declared_imports(workflow: ValidatedWorkflow) -> tuple[str, ...]:
    """The workflow's ``imports`` as a worker elsewhere can import them: module names as
    they are, files as absolute paths; a ``.py`` workflow's own file too (its ops)."""
    source = workflow.source_file
    base = Path(source).parent if source else Path.cwd()
    found = [name if not name.endswith(".py") else str((base / name).resolve())
             for name in workflow.ir.imports]
    if source and source.endswith(".py"):
        found.append(str(Path(source).resolve()))
    return tuple(found)


def import_declared(imports: Iterable[str]) -> None:
    """Import what :func:`declared_imports` listed (in a worker process)."""
    for name in imports:
        if name.endswith(".py"):
            _import_python_file(Path(name))
        else:
            importlib.import_module(name)


def _import_modules(loaded: LoadedWorkflow) -> None:
    base = Path(loaded.source.file).parent if loaded.source.file else Path.cwd()
    issues = []
    for index, name in enumerate(loaded.ir.imports):
        try:
            if name.endswith(".py"):
                path = Path(name) if Path(name).is_absolute() else base / name
                _import_python_file(path)
            else:
                importlib.import_module(name)
        except Exception as exc:
            line, column = loaded.source.locate(("imports", index))
            issues.append(ValidationIssue(f"cannot import '{name}': {exc}",
                                          loaded.source.file, line, column,
                                          field=f"imports.{index}"))
    if issues:
        raise WorkflowValidationError(issues)


def compile_workflow(source: WorkflowSource,
                     params: Mapping[str, Any] | None = None) -> ValidatedWorkflow:
    """Load and validate; raises :class:`WorkflowValidationError` listing every problem."""
    loaded = load_workflow(source)
    _import_modules(loaded)
    return validate(loaded, REGISTRY, params or {})


def run_workflow(source: WorkflowSource | ValidatedWorkflow,
                 params: Mapping[str, Any] | None = None, *, store: Store | None = None,
                 executor: Executor | None = None, use_cache: bool = True,
                 rerun: Iterable[str] = (), hooks: Iterable[RunHooks] = (),
                 raise_on_failure: bool = True) -> RunResult:
    """Validate and run a workflow; the store defaults to ``.amml/`` (or ``AMML_HOME``)."""
    from amml.engine.runner import Runner
    from amml.store import open_store

    workflow = (source if isinstance(source, ValidatedWorkflow)
                else compile_workflow(source, params))
    own_store = store is None
    store = store or open_store()
    try:
        result = Runner(store, executor, hooks).run(workflow, use_cache=use_cache,
                                                    rerun=rerun)
    finally:
        if own_store:
            store.metadata.writer.close()
    if raise_on_failure:
        result.raise_for_status()
    return result
