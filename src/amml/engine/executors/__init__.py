"""Executors: how step tasks are dispatched, looked up by name in :data:`EXECUTORS`."""

from amml.engine.executors.base import Executor, StepFuture
from amml.engine.executors.local import (
    LocalExecutor,
    ProcessExecutor,
    SequentialExecutor,
    ThreadExecutor,
)
from amml.engine.executors.registry import (
    EXECUTORS,
    executor_names,
    make_executor,
    register_executor,
)

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "ProcessExecutor", "SequentialExecutor",
           "StepFuture", "ThreadExecutor", "executor_names", "make_executor",
           "register_executor"]
