"""Executors: how step tasks are dispatched."""

from amml.engine.executors.base import Executor
from amml.engine.executors.local import LocalExecutor, SequentialExecutor

__all__ = ["Executor", "LocalExecutor", "SequentialExecutor"]
