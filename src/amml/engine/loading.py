"""From a file or a Python object to a validated workflow, and from there to a run.

``compile_workflow`` accepts a YAML path, a ``.py`` path (``file.py`` or ``file.py:NAME``),
a :class:`~amml.lang.builder.Workflow` or an already loaded IR. Modules listed under
``imports:`` are imported first so the ops they define are registered.

Importing runs code: a ``.py`` workflow *is* code, and an imported module may do anything.
``compile_workflow(..., allow_imports=False)`` (what ``amml validate`` and ``amml export`` use
unless given ``--allow-imports``) checks a YAML workflow against the ops already registered and
refuses a ``.py`` workflow. A module that raises or calls ``sys.exit`` while being imported
fails the load with a :class:`WorkflowError`; it never ends the process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Iterable, Iterator, Mapping
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


#: How the command line asks for imports; named in the messages of refused imports.
ALLOW_IMPORTS_FLAG = "--allow-imports"


@contextlib.contextmanager
def _folder_on_path(folder: Path) -> Iterator[None]:
    """``folder`` first on ``sys.path`` while a workflow's code is imported, as ``python
    workflow.py`` would have it, so a workflow imports its sibling modules without
    ``PYTHONPATH=.``; taken off afterwards so loading leaves the process as it was."""
    entry = str(folder.resolve())
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)


def _import_python_file(path: Path) -> Any:
    # The name changes with the content, so an edited file is imported afresh.
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise WorkflowError(f"cannot read {path}: {exc}") from None
    digest = hashlib.sha256(str(path.resolve()).encode() + content).hexdigest()[:12]
    module_name = f"amml_user_{path.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise WorkflowError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        with _folder_on_path(path.parent):
            spec.loader.exec_module(module)
    except WorkflowError:
        sys.modules.pop(module_name, None)
        raise
    except (Exception, SystemExit) as exc:
        sys.modules.pop(module_name, None)
        raise WorkflowError(f"importing {path} failed: {_describe_failure(exc)}") from exc
    return module


def _describe_failure(exc: BaseException) -> str:
    # SystemExit is caught on purpose: a module that exits while imported would otherwise end
    # the whole command, with the module's exit code (0 included) instead of a failure.
    if isinstance(exc, SystemExit):
        return (f"it called sys.exit({exc.code!r}) while being imported; "
                f"a module imported for a workflow must not exit")
    return f"{type(exc).__name__}: {exc}"


def is_python_workflow(source: WorkflowSource) -> bool:
    """Whether loading ``source`` means running a ``.py`` file (``file.py[:NAME]``)."""
    if not isinstance(source, str | Path):
        return False
    text = str(source)
    return text.endswith(".py") or ".py:" in text


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
    if is_python_workflow(source):
        return load_python_workflow(str(source))
    return load_yaml_file(str(source))


def declared_imports(workflow: ValidatedWorkflow) -> tuple[str, ...]:
    """The workflow's ``imports`` as a worker elsewhere can import them: module names as
    they are, files as absolute paths; a ``.py`` workflow's own file too (its ops). Module
    names are found beside the workflow file, so its folder leads (an absolute folder:
    :func:`import_declared` puts it on ``sys.path`` while importing the rest)."""
    source = workflow.source_file
    base = Path(source).parent if source else Path.cwd()
    found = [name if not name.endswith(".py") else str((base / name).resolve())
             for name in workflow.ir.imports]
    if any(not name.endswith(".py") for name in workflow.ir.imports):
        found.insert(0, str(base.resolve()))
    if source and source.endswith(".py"):
        found.append(str(Path(source).resolve()))
    return tuple(found)


def import_declared(imports: Iterable[str]) -> None:
    """Import what :func:`declared_imports` listed (in a worker process)."""
    names = list(imports)
    folders = [name for name in names if Path(name).is_absolute() and Path(name).is_dir()]
    with contextlib.ExitStack() as stack:
        for folder in folders:
            stack.enter_context(_folder_on_path(Path(folder)))
        for name in names:
            if name in folders:
                continue
            if name.endswith(".py"):
                _import_python_file(Path(name))
                continue
            try:
                importlib.import_module(name)
            except SystemExit as exc:  # in a worker too: a failure, never a silent exit
                raise WorkflowError(
                    f"importing '{name}' failed: {_describe_failure(exc)}") from exc


def _import_modules(loaded: LoadedWorkflow) -> None:
    base = Path(loaded.source.file).parent if loaded.source.file else Path.cwd()
    issues = []
    for index, name in enumerate(loaded.ir.imports):
        try:
            if name.endswith(".py"):
                path = Path(name) if Path(name).is_absolute() else base / name
                _import_python_file(path)
            else:
                with _folder_on_path(base):  # a module beside the workflow, as for .py ones
                    importlib.import_module(name)
        except (Exception, SystemExit) as exc:
            line, column = loaded.source.locate(("imports", index))
            reason = _describe_failure(exc) if isinstance(exc, SystemExit) else str(exc)
            issues.append(ValidationIssue(f"cannot import '{name}': {reason}",
                                          loaded.source.file, line, column,
                                          field=f"imports.{index}"))
    if issues:
        raise WorkflowValidationError(issues)


def compile_workflow(source: WorkflowSource, params: Mapping[str, Any] | None = None, *,
                     allow_imports: bool = True) -> ValidatedWorkflow:
    """Load and validate; raises :class:`WorkflowValidationError` listing every problem.

    With ``allow_imports=False`` nothing of the user's runs: a ``.py`` workflow is refused and
    a YAML workflow's ``imports:`` are not imported (its steps are checked against the ops
    registered already; an op only an import would define is reported as unknown).
    """
    if not allow_imports and is_python_workflow(source):
        raise WorkflowError(
            f"{source} is a Python workflow: reading it runs its code, which this command does "
            f"not do unless asked; pass {ALLOW_IMPORTS_FLAG} to run the file (it may do "
            f"anything the file says), or check a YAML workflow instead")
    loaded = load_workflow(source)
    if allow_imports:
        _import_modules(loaded)
        return validate(loaded, REGISTRY, params or {})
    try:
        return validate(loaded, REGISTRY, params or {})
    except WorkflowValidationError as exc:
        if not loaded.ir.imports:
            raise
        raise WorkflowValidationError(_imports_hint(exc.issues, loaded.ir.imports)) from None


def export_imports(workflow: ValidatedWorkflow) -> list[str]:
    """The ``imports:`` a YAML copy of ``workflow`` needs to find its ops: its own, then the
    modules that define the ops its steps use, unless AMML's own (every process has those).

    A ``.py`` workflow imports its modules with Python's ``import``, which the IR does not
    see; without them the exported YAML would fail with "unknown op". A module is named as
    imported (found beside the YAML when it is saved next to the workflow); an op defined in
    a file imported by path (the workflow file itself) is named by that file, relative to the
    workflow's folder when inside it.
    """
    source = workflow.source_file
    base = Path(source).parent.resolve() if source else Path.cwd().resolve()
    found = list(workflow.ir.imports)
    for step in workflow.ir.steps.values():
        op_cls = REGISTRY.find(step.op)
        if op_cls is None:
            continue
        target = op_cls.fingerprint_target()
        module = getattr(target, "__module__", None) or op_cls.__module__
        if module == "amml" or module.startswith("amml."):
            continue
        if module.startswith("amml_user_"):  # imported by path: name the file
            try:
                path = Path(inspect.getfile(target)).resolve()
            except (TypeError, OSError):
                continue
            name = str(path.relative_to(base)) if path.is_relative_to(base) else str(path)
        else:
            name = module
        if name not in found:
            found.append(name)
    return found


def _imports_hint(issues: list[ValidationIssue], imports: list[str]) -> list[ValidationIssue]:
    """Point unknown ops at the imports that were not imported: they may define them."""
    named = ", ".join(imports)
    hint = (f"it may be defined by the workflow's imports ({named}), which were not imported: "
            f"pass {ALLOW_IMPORTS_FLAG} to import them (this runs their code)")
    return [dataclasses.replace(issue, hint=hint) if issue.message.startswith("unknown op")
            else issue for issue in issues]


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
