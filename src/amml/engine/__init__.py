"""The engine: plan, cache, dispatch and record workflow runs.

Names are imported on first use (PEP 562): loading and validating a workflow must not pay
for the runner, the store, pandas or SQLAlchemy.
"""

from amml._lazy import lazy_attributes

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


__getattr__ = lazy_attributes(__name__, _LAZY)
