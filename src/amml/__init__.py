"""AMML: one workflow language for time-series forecasting and anomaly detection.

>>> import amml
>>> from amml import Workflow, ops
>>> with Workflow("doc-example", params={"periods": 300}) as wf:
...     raw = ops.source.synthetic(periods=wf.params.periods, seed=1)
...     clean = ops.preprocess(raw, scale="zscore", exclude=["is_anomaly"])
>>> list(wf.to_ir().steps)
['raw', 'clean']
>>> import tempfile
>>> result = amml.run_workflow(wf, store=amml.open_store(tempfile.mkdtemp()))
>>> result.status, result.count("ran"), len(result["clean"])
('succeeded', 2, 300)
"""

from amml import ops
from amml._exceptions import (
    AliasConflict,
    AMMLError,
    ApiKeyError,
    ArtifactNotFoundError,
    BodyError,
    ConfigurationError,
    LedgerError,
    OpError,
    OpNotFoundError,
    PayloadError,
    PluginClashError,
    PluginError,
    PluginNotFoundError,
    RegistryError,
    RunNotFoundError,
    ServeError,
    StepFailedError,
    StoreError,
    UnsupportedMediaType,
    ValidationIssue,
    WorkflowError,
    WorkflowValidationError,
)
from amml.engine import (
    Executor,
    LocalExecutor,
    RunHooks,
    Runner,
    RunResult,
    SequentialExecutor,
    compile_workflow,
    load_workflow,
    run_workflow,
)
from amml.lang import Input, Workflow, WorkflowIR
from amml.ops import Op, OpConfig, StepContext, op, register
from amml.registry import load_model
from amml.store import Store, open_store
from amml.store.artifacts import SafetensorsModel
from amml.store.client import Client, TrackedRun

__version__ = "0.1.0"

__all__ = [
    "AMMLError",
    "AliasConflict",
    "ApiKeyError",
    "ArtifactNotFoundError",
    "BodyError",
    "Client",
    "ConfigurationError",
    "Executor",
    "Input",
    "LedgerError",
    "LocalExecutor",
    "Op",
    "OpConfig",
    "OpError",
    "OpNotFoundError",
    "PayloadError",
    "PluginClashError",
    "PluginError",
    "PluginNotFoundError",
    "RegistryError",
    "RunHooks",
    "RunNotFoundError",
    "RunResult",
    "Runner",
    "SafetensorsModel",
    "SequentialExecutor",
    "ServeError",
    "StepContext",
    "StepFailedError",
    "Store",
    "StoreError",
    "TrackedRun",
    "UnsupportedMediaType",
    "ValidationIssue",
    "Workflow",
    "WorkflowError",
    "WorkflowIR",
    "WorkflowValidationError",
    "__version__",
    "compile_workflow",
    "load_model",
    "load_workflow",
    "op",
    "open_store",
    "ops",
    "register",
    "run_workflow",
]
