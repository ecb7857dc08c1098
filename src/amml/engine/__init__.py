"""The engine: plan, cache, dispatch and record workflow runs.

Names are imported on first use (PEP 562): loading and validating a workflow must not pay
for the runner, the store, pandas or SQLAlchemy.
"""

import importlib as _importlib

_LAZY: dict[str, str] = {
    "Executor": "amml.engine.executors",
    "LocalExecutor": "amml.engine.executors",
    "SequentialExecutor": "amml.engine.executors",
    "RunHooks": "amml.engine.hooks",
    "compile_workflow": "amml.engine.loading",
    "load_workflow": "amml.engine.loading",
    "run_workflow": "amml.engine.loading",
    "Plan": "amml.engine.planner",
    "make_plan": "amml.engine.planner",
    "Runner": "amml.engine.runner",
    "RunResult": "amml.engine.runner",
    "StepOutcome": "amml.engine.runner",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'amml.engine' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value
