"""The Dask executor: steps as tasks on a Dask cluster.

By default a :class:`distributed.LocalCluster` of ``workers`` single-threaded worker
processes on this machine; with ``scheduler="tcp://HOST:PORT"`` (or ``AMML_DASK_SCHEDULER``)
an existing cluster. Each task is :func:`amml.engine.task.execute_task` on a
:class:`StepTask`: artifact references in, artifact references out. Artifacts therefore
travel through the store, never through Dask: on a cluster of several machines the store
must be one they all reach (a shared folder, or an fsspec URL in ``AMML_ARTIFACTS_URL``).

A step's resource hints (``resources: {memory: 4GB, gpu: 1}``) become Dask resources
(``MEMORY`` in bytes, ``GPU``, ``CPU``): the scheduler places the task only on a worker that
declares enough of them. The local cluster declares each worker's memory limit, its share of
the GPUs this machine has and one CPU per worker thread; a hint no worker can satisfy fails
the step at once instead of waiting for ever.

A worker that dies mid-step (killed, out of memory) loses its task; the scheduler runs it
again on another worker (up to ``distributed.scheduler.allowed-failures`` times, 3 by
default), and the local cluster's nanny starts a fresh worker in its place. Steps write their
artifacts under content names with an atomic rename, so a half-run attempt leaves nothing
another attempt could mistake for its output.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from amml._exceptions import AMMLError
from amml.engine.executors.base import Executor
from amml.engine.executors.registry import register_executor
from amml.engine.task import StepResult, StepTask, execute_task
from amml.store import Store

if TYPE_CHECKING:
    from distributed import Client, Future

#: Environment variable naming an existing scheduler (``amml run --executor dask`` reads it).
SCHEDULER_ENV = "AMML_DASK_SCHEDULER"
#: AMML resource hint -> Dask resource name.
DASK_RESOURCES = {"memory": "MEMORY", "gpu": "GPU", "cpu": "CPU"}


def dask_resources(hints: Mapping[str, float | int]) -> dict[str, float]:
    """A step's hints as Dask resources.

    >>> dask_resources({"memory": 2_000_000_000, "gpu": 1.0})
    {'MEMORY': 2000000000.0, 'GPU': 1.0}
    """
    return {DASK_RESOURCES[name]: float(value) for name, value in hints.items()}


class _DaskStepFuture:
    """A Dask future that answers with a :class:`StepResult` whatever happened: a task the
    cluster gave up on (``KilledWorker``, a lost scheduler) is a failed step, not an
    exception out of the runner."""

    def __init__(self, future: Future, task: StepTask) -> None:
        self.future = future
        self.task = task

    def done(self) -> bool:
        return self.future.done()

    def add_done_callback(self, fn: Any) -> None:
        self.future.add_done_callback(lambda _f: fn(self))

    def result(self) -> StepResult:
        try:
            return self.future.result()
        except Exception as exc:  # the cluster's failure, not the op's (execute_task never raises)
            return StepResult(self.task.step_name, error=f"on the Dask cluster: {exc}",
                              error_type=type(exc).__name__)


class _FailedFuture:
    """A step refused before it reached the cluster (no worker has what it asks for)."""

    def __init__(self, result: StepResult) -> None:
        self._result = result

    def done(self) -> bool:
        return True

    def result(self) -> StepResult:
        return self._result


def _gpu_count() -> int:
    """GPUs on this machine, without importing a GPU library: ``CUDA_VISIBLE_DEVICES`` if
    set, else the lines of ``nvidia-smi -L``."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    smi = shutil.which("nvidia-smi")
    if not smi:
        return 0
    try:
        listed = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in listed.stdout.splitlines() if line.startswith("GPU "))


@register_executor
class DaskExecutor(Executor):
    """Steps on a Dask cluster: a local cluster of worker processes, or a scheduler's."""

    name = "dask"
    in_process = False

    def __init__(self, workers: int | None = None, scheduler: str | None = None, *,
                 memory_limit: str | int = "auto", gpus: int | None = None,
                 retries: int = 0, address: str | None = None) -> None:
        """``workers``: local worker processes (default: CPUs); ``scheduler``: an existing
        cluster's address (default: ``$AMML_DASK_SCHEDULER``; then ``workers`` is only the
        number of steps the runner keeps in flight); ``memory_limit``: each local worker's
        (Dask's spelling: ``"2GB"``, ``"auto"``); ``gpus``: GPUs the local cluster shares out
        (default: this machine's); ``retries``: Dask retries of a task that raised (a step's
        own failure is a result, not a raise, so this matters only for infrastructure)."""
        self.scheduler = scheduler or address or os.environ.get(SCHEDULER_ENV) or None
        self.max_workers = workers or os.cpu_count() or 1
        self.memory_limit = memory_limit
        self.gpus = gpus
        self.retries = retries
        self._client: Client | None = None
        self._cluster: Any = None
        self._worker_resources: list[dict[str, float]] | None = None

    # -- the cluster ---------------------------------------------------------------------
    @property
    def client(self) -> Client:
        """The Dask client, starting the local cluster (or connecting) on first use."""
        if self._client is None:
            try:
                from distributed import Client, LocalCluster
            except ImportError as exc:  # pragma: no cover - declared dependency
                raise AMMLError("the Dask executor needs distributed: "
                                "pip install 'dask[distributed]'") from exc
            try:
                if self.scheduler:
                    self._client = Client(self.scheduler, timeout="30s")
                else:
                    self._cluster = LocalCluster(
                        n_workers=self.max_workers, threads_per_worker=1, processes=True,
                        memory_limit=self.memory_limit, dashboard_address=":0",
                        resources=self._local_resources())
                    self._client = Client(self._cluster)
            except OSError as exc:
                where = self.scheduler or "a local cluster"
                raise AMMLError(f"cannot reach the Dask scheduler at {where}: {exc}") from exc
        return self._client

    def _local_resources(self) -> dict[str, float]:
        """What each local worker declares, so hinted steps can be placed on it."""
        import logging

        from distributed.worker_memory import parse_memory_limit

        # the limit Dask itself gives each worker ("auto": this machine's memory / workers)
        limit = parse_memory_limit(self.memory_limit, 1, total_cores=self.max_workers,
                                   logger=logging.getLogger("distributed.worker"))
        resources: dict[str, float] = {"CPU": 1.0}
        if limit:
            resources["MEMORY"] = float(limit)
        gpus = _gpu_count() if self.gpus is None else self.gpus
        if gpus:
            resources["GPU"] = gpus / self.max_workers
        return resources

    def worker_resources(self) -> list[dict[str, float]]:
        """The resources each worker of the cluster declares."""
        info = self.client.scheduler_info()
        return [dict(worker.get("resources") or {}) for worker in info["workers"].values()]

    def _unplaceable(self, wanted: Mapping[str, float]) -> str | None:
        """Why no worker can run a task that wants ``wanted`` (None: one can, or no worker
        has joined yet, when the task waits in the scheduler's queue as any task does)."""
        if not wanted:
            return None

        def fits() -> bool:
            return any(all(have.get(k, 0.0) >= v for k, v in wanted.items())
                       for have in self._worker_resources or ())

        if self._worker_resources is None or not fits():  # workers come and go: look again
            self._worker_resources = self.worker_resources()
        if not self._worker_resources:
            try:  # a cluster still starting, or a restarting worker
                self.client.wait_for_workers(1, timeout=60)
            except TimeoutError:
                return None
            self._worker_resources = self.worker_resources()
        if not self._worker_resources or fits():
            return None
        offered = "; ".join(sorted({", ".join(f"{k}={v:g}" for k, v in sorted(have.items()))
                                    or "nothing" for have in self._worker_resources}))
        return (f"no Dask worker offers the resources the step asks for "
                f"({', '.join(f'{k}={v:g}' for k, v in sorted(wanted.items()))}); "
                f"the workers offer: {offered or 'no workers'}")

    # -- dispatch ------------------------------------------------------------------------
    def submit(self, task: StepTask, store: Store) -> _DaskStepFuture | _FailedFuture:
        wanted = dask_resources(task.resources)
        problem = self._unplaceable(wanted)
        if problem:
            return _FailedFuture(StepResult(task.step_name, error=problem,
                                            error_type="ResourceError"))
        # a key per attempt of a step: the same step of another run is another task
        key = f"amml-{task.step_name}-{task.run_id}-{uuid.uuid4().hex[:8]}"
        future = self.client.submit(execute_task, task, key=key, pure=False,
                                    resources=wanted or None, retries=self.retries)
        return _DaskStepFuture(future, task)

    def wait_any(self, futures: Sequence[Any]) -> list[Any]:
        dask_futures = [f.future for f in futures if isinstance(f, _DaskStepFuture)]
        ready = [f for f in futures if f.done()]
        if ready or len(dask_futures) != len(futures):
            return ready or super().wait_any(futures)
        from distributed import wait

        wait(dask_futures, return_when="FIRST_COMPLETED")
        return [f for f in futures if f.done()]

    def shutdown(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
        self._worker_resources = None
