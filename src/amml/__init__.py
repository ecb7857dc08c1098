"""AMML: one workflow language for time-series forecasting and anomaly detection.

>>> import amml
>>> from amml import Workflow, ops
>>> with Workflow("doc-example", params={"periods": 300}) as wf:
...     raw = ops.source.synthetic(periods=wf.params.periods, seed=1)
...     clean = ops.preprocess(raw, scale="zscore", exclude=["is_anomaly"])
>>> print(wf.to_ir().to_yaml().splitlines()[4])
  periods: 300
"""

from amml import ops
from amml._exceptions import (
    AMMLError,
    ArtifactNotFoundError,
    ConfigurationError,
    OpError,
    OpNotFoundError,
    RunNotFoundError,
    StepFailedError,
    StoreError,
    ValidationIssue,
    WorkflowError,
    WorkflowValidationError,
)
from amml.engine import (
    Executor,
    LocalExecutor,
    RunHooks,
    RunResult,
    Runner,
    SequentialExecutor,
    compile_workflow,
    load_workflow,
    run_workflow,
)
from amml.lang import Input, Workflow, WorkflowIR
from amml.ops import Op, OpConfig, StepContext, op, register
from amml.store import Store, open_store
from amml.store.artifacts import SafetensorsModel
from amml.store.client import Client, TrackedRun

__version__ = "0.1.0"

__all__ = [
    "AMMLError",
    "ArtifactNotFoundError",
    "Client",
    "ConfigurationError",
    "Executor",
    "Input",
    "LocalExecutor",
    "Op",
    "OpConfig",
    "OpError",
    "OpNotFoundError",
    "RunHooks",
    "RunNotFoundError",
    "RunResult",
    "Runner",
    "SafetensorsModel",
    "SequentialExecutor",
    "StepContext",
    "StepFailedError",
    "Store",
    "StoreError",
    "TrackedRun",
    "ValidationIssue",
    "Workflow",
    "WorkflowError",
    "WorkflowIR",
    "WorkflowValidationError",
    "__version__",
    "compile_workflow",
    "load_workflow",
    "op",
    "open_store",
    "ops",
    "register",
    "run_workflow",
]
