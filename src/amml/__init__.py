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

from amml._exceptions import (
    AliasConflict,
    AMMLError,
    ApiKeyError,
    ArtifactCorruptError,
    ArtifactNotFoundError,
    BodyError,
    ClientUnavailable,
    ConfigurationError,
    CronError,
    LabelError,
    LedgerError,
    LimitError,
    ModelContractError,
    OpError,
    OpNotFoundError,
    PayloadError,
    PluginClashError,
    PluginError,
    PluginNotFoundError,
    RegistryError,
    RunNotFoundError,
    ServeError,
    SignatureMismatch,
    StepFailedError,
    StoreError,
    TriggerError,
    UnsupportedMediaType,
    ValidationIssue,
    WorkflowError,
    WorkflowValidationError,
)
from amml._lazy import lazy_attributes as _lazy_attributes

# Everything else is imported on first use (PEP 562), so that ``import amml``, ``amml --help``
# and ``amml validate`` do not pay for pandas, SQLAlchemy and the engine.
_LAZY: dict[str, str] = {
    "ops": "amml.ops",
    "Executor": "amml.engine",
    "LocalExecutor": "amml.engine",
    "RunHooks": "amml.engine",
    "Runner": "amml.engine",
    "RunResult": "amml.engine",
    "SequentialExecutor": "amml.engine",
    "compile_workflow": "amml.engine",
    "load_workflow": "amml.engine",
    "run_workflow": "amml.engine",
    "Input": "amml.lang",
    "Workflow": "amml.lang",
    "WorkflowIR": "amml.lang",
    "Op": "amml.ops",
    "OpConfig": "amml.ops",
    "StepContext": "amml.ops",
    "op": "amml.ops",
    "register": "amml.ops",
    "load_model": "amml.registry",
    "Store": "amml.store",
    "open_store": "amml.store",
    "SafetensorsModel": "amml.store.artifacts",
    "Client": "amml.store.client",
    "TrackedRun": "amml.store.client",
}


__getattr__ = _lazy_attributes(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__version__ = "0.1.0"

__all__ = [
    "AMMLError",
    "AliasConflict",
    "ApiKeyError",
    "ArtifactCorruptError",
    "ArtifactNotFoundError",
    "BodyError",
    "Client",
    "ClientUnavailable",
    "ConfigurationError",
    "CronError",
    "Executor",
    "Input",
    "LabelError",
    "LedgerError",
    "LimitError",
    "LocalExecutor",
    "ModelContractError",
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
    "SignatureMismatch",
    "StepContext",
    "StepFailedError",
    "Store",
    "StoreError",
    "TrackedRun",
    "TriggerError",
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
