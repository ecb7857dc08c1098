"""Local executors: a thread pool (default), a process pool, or one step at a time."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Literal

from amml.engine.executors.base import Executor
from amml.engine.executors.registry import register_executor
from amml.engine.task import StepResult, StepTask, execute_task
from amml.store import Store


class LocalExecutor(Executor):
    """Runs independent steps in parallel on this machine.

    ``kind="thread"`` shares the process (numpy, pandas and PyTorch release the GIL in their
    kernels) and hands values between steps without re-reading them; ``kind="process"``
    isolates steps in worker processes, started with ``start_method`` (the platform's default
    unless given; with ``spawn`` a worker imports the workflow's ``imports`` itself).
    """

    def __init__(self, max_workers: int | None = None,
                 kind: Literal["thread", "process"] = "thread", *,
                 start_method: str | None = None) -> None:
        self.max_workers = max_workers or min(8, os.cpu_count() or 1)
        self.kind = kind
        self.start_method = start_method
        self.in_process = kind == "thread"
        self._pool: ThreadPoolExecutor | ProcessPoolExecutor | None = None

    def _get_pool(self) -> ThreadPoolExecutor | ProcessPoolExecutor:
        if self._pool is None:
            if self.kind == "thread":
                self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="amml-step")
            else:
                context = (multiprocessing.get_context(self.start_method)
                           if self.start_method else None)
                self._pool = ProcessPoolExecutor(self.max_workers, mp_context=context)
        return self._pool

    def submit(self, task: StepTask, store: Store) -> Future[StepResult]:
        if self.kind == "thread":
            return self._get_pool().submit(execute_task, task, store)
        return self._get_pool().submit(execute_task, task)

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


@register_executor
class ThreadExecutor(LocalExecutor):
    """Steps in a thread pool of this process (the default)."""

    name = "thread"

    def __init__(self, workers: int | None = None) -> None:
        super().__init__(workers, "thread")


@register_executor
class ProcessExecutor(LocalExecutor):
    """Steps in a pool of worker processes (start_method: fork, spawn or forkserver)."""

    name = "process"

    def __init__(self, workers: int | None = None, start_method: str | None = None) -> None:
        super().__init__(workers, "process", start_method=start_method)


@register_executor
class SequentialExecutor(Executor):
    """One step at a time in the calling thread (for debugging with breakpoints)."""

    name = "sequential"
    in_process = True
    max_workers = 1

    def __init__(self, workers: int | None = None) -> None:
        pass  # one at a time whatever is asked: the option is accepted for uniformity

    def submit(self, task: StepTask, store: Store) -> Future[StepResult]:
        future: Future[StepResult] = Future()
        future.set_result(execute_task(task, store))
        return future
