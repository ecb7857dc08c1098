"""The executor interface. Executors differ only in how they dispatch a :class:`StepTask`;
planning, caching and recording live once in the runner.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import Future

from amml.engine.task import StepResult, StepTask
from amml.store import Store


class Executor(ABC):
    #: Whether a task may run in the calling thread (same process, shared artifact memo).
    in_process: bool = False
    max_workers: int = 1

    @abstractmethod
    def submit(self, task: StepTask, store: Store) -> Future[StepResult]:
        """Start ``task``; in-process executors may use ``store`` directly, others open the
        store from the URLs in the task."""

    def shutdown(self) -> None:  # noqa: B027 - optional for executors without resources
        pass

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
