"""The engine: plan, cache, dispatch and record workflow runs."""

from amml.engine.executors import Executor, LocalExecutor, SequentialExecutor
from amml.engine.hooks import RunHooks
from amml.engine.loading import compile_workflow, load_workflow, run_workflow
from amml.engine.planner import Plan, make_plan
from amml.engine.runner import Runner, RunResult, StepOutcome

__all__ = [
    "Executor",
    "LocalExecutor",
    "Plan",
    "RunHooks",
    "RunResult",
    "Runner",
    "SequentialExecutor",
    "StepOutcome",
    "compile_workflow",
    "load_workflow",
    "make_plan",
    "run_workflow",
]
