"""The executor interface. Executors differ only in how they dispatch a :class:`StepTask`;
planning, caching and recording live once in the runner.

What the runner needs of a submitted task is the small :class:`StepFuture` protocol, not
``concurrent.futures.Future``: an executor may hand back its own futures (Dask's, a Kubeflow
pipeline run's) and, if ``done()`` polling is not good enough, override :meth:`wait_any`.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, ClassVar, Protocol, runtime_checkable

from amml.engine.task import StepResult, StepTask
from amml.store import Store


@runtime_checkable
class StepFuture(Protocol):
    """A submitted task: ``done()`` without blocking, ``result()`` (a :class:`StepResult`)
    blocking. ``add_done_callback(fn)``, where a future has it, lets waiting wake at once."""

    def done(self) -> bool: ...

    def result(self) -> StepResult: ...


class Executor(ABC):
    #: The name the executor is registered under (``amml run --executor NAME``).
    name: ClassVar[str] = ""
    #: Whether a task may run in the calling thread (same process, shared artifact memo).
    in_process: bool = False
    max_workers: int = 1

    @abstractmethod
    def submit(self, task: StepTask, store: Store) -> StepFuture:
        """Start ``task``; in-process executors may use ``store`` directly, others open the
        store from the URLs in the task."""

    def wait_any(self, futures: Sequence[StepFuture]) -> list[StepFuture]:
        """Block until at least one of ``futures`` is done; return the done ones.

        ``concurrent.futures`` futures are waited on natively; any other future is woken by
        its ``add_done_callback`` when it has one, and polled with ``done()`` otherwise.
        """
        if all(isinstance(f, Future) for f in futures):
            done, _ = wait(futures, return_when=FIRST_COMPLETED)  # type: ignore[arg-type]
            return [f for f in futures if f in done]
        wake = threading.Event()
        for future in futures:
            add: Callable[[Callable[[Any], None]], None] | None = getattr(
                future, "add_done_callback", None)
            if add is not None:
                add(lambda _future: wake.set())
        delay = 0.001
        while True:
            done = [f for f in futures if f.done()]
            if done:
                return done
            wake.wait(delay)
            wake.clear()
            delay = min(delay * 2, 0.1)

    def shutdown(self) -> None:  # noqa: B027 - optional for executors without resources
        pass

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    @classmethod
    def describe(cls) -> str:
        """The first line of the executor's docstring (``amml executors``)."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
