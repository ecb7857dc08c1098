"""The op contract: a typed configuration, declared inputs and outputs, and ``run``.

An op is a class; its parameters live in a pydantic ``Config`` (validated before anything
runs), its inputs and outputs are declared with artifact types, and ``run`` receives the
loaded input values and returns the outputs::

    class Double(Op):
        name = "example.double"
        inputs = {"table": Input("table")}
        outputs = {"out": "table"}

        class Config(OpConfig):
            factor: float = 2.0

        def run(self, ctx, table):
            return table * self.config.factor

One output may be returned bare; several are returned as a dict (or a tuple in declared order).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from amml._exceptions import OpError
from amml._types import ARTIFACT_TYPES
from amml.lang.spec import Input

__all__ = ["Input", "MetricPoint", "Op", "OpConfig", "StepContext", "metric_listener"]

#: Who hears metrics as a step logs them (a progress display showing a training's epochs), by
#: run id, with the process that registered it: a forked worker inherits this dict but must
#: not call into its parent's display.
_LISTENERS: dict[str, tuple[int, Callable[[str, dict[str, float], int], None]]] = {}


@contextmanager
def metric_listener(run_id: str,
                    listener: Callable[[str, dict[str, float], int], None]) -> Iterator[None]:
    """While open, ``listener(step_name, values, step)`` hears every metric that a step of
    ``run_id`` logs in this process (thread and sequential executors), as it is logged."""
    _LISTENERS[run_id] = (os.getpid(), listener)
    try:
        yield
    finally:
        _LISTENERS.pop(run_id, None)


class OpConfig(BaseModel):
    """Base of every op's configuration: unknown fields are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class MetricPoint:
    key: str
    value: float
    step: int = 0
    timestamp: float = 0.0


@dataclass
class StepContext:
    """What a running op may use besides its inputs: identity and metric logging."""

    run_id: str = ""
    step_name: str = ""
    metrics: list[MetricPoint] = field(default_factory=list)
    #: Opens a ledger by name; set by the engine when the step has a store.
    ledger_factory: Callable[[str], Any] | None = None
    #: Gives the model registry (amml.store.model_registry); set by the engine.
    registry_factory: Callable[[], Any] | None = None
    #: The token the engine keyed this step by (``Op.state_token``): an op that resolves
    #: something in the store (a registry alias) uses what the key holds, not a later state.
    state_token: str = ""

    def model_registry(self) -> Any:
        """The store's model registry, or None when the step runs without a store."""
        return None if self.registry_factory is None else self.registry_factory()
    #: What the step cache knows of this step: its code, its key and its inputs' digests.
    code_digest: str = ""
    cache_key: str = ""
    input_digests: dict[str, Any] = field(default_factory=dict)
    #: For incremental ops: loads an output of the previous run of this step, or None.
    previous_loader: Callable[[str], Any] | None = None
    #: Config fields whose value is a workflow parameter, whole (field -> parameter name):
    #: an op's message about such a value can say how to pass another (``-p NAME=...``).
    param_fields: Mapping[str, str] = field(default_factory=dict)

    def param_hint(self, config_field: str, what: str = "PATH") -> str:
        """``" (pass -p NAME=PATH ...)"`` if ``config_field`` came from a parameter, else ``""``."""
        name = self.param_fields.get(config_field)
        return f" (pass -p {name}={what} to read another)" if name else ""

    def previous(self, output: str) -> Any:
        """The value of ``output`` from the last run of this step with the same config."""
        return None if self.previous_loader is None else self.previous_loader(output)

    def data_digest(self) -> str:
        """One digest of all input artifacts (for provenance records such as the ledger)."""
        text = json.dumps(self.input_digests, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def ledger(self, name: str | None = None) -> Any:
        """This step's training ledger (default name: ``RUN/STEP``), or None without a store."""
        if self.ledger_factory is None:
            return None
        return self.ledger_factory(name or f"{self.run_id}/{self.step_name}")

    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        self.metrics.append(MetricPoint(key, float(value), int(step), time.time()))
        self._tell({key: float(value)}, int(step))

    def log_metrics(self, values: Mapping[str, float], step: int = 0) -> None:
        now = time.time()
        self.metrics.extend(MetricPoint(k, float(v), int(step), now) for k, v in values.items())
        self._tell({k: float(v) for k, v in values.items()}, int(step))

    def _tell(self, values: dict[str, float], step: int) -> None:
        entry = _LISTENERS.get(self.run_id)
        if entry is None or entry[0] != os.getpid():
            return
        with suppress(Exception):  # a display that fails must never fail the training
            entry[1](self.step_name, values, step)

    def log_batch(self, points: Iterable[tuple[str, float, int]]) -> None:
        """Log many ``(key, value, step)`` points; they reach the store in one batch."""
        now = time.time()
        self.metrics.extend(MetricPoint(k, float(v), int(s), now) for k, v, s in points)


class Op:
    """Base class of every op. Subclasses set ``name``, ``inputs``, ``outputs``, ``Config``."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    inputs: ClassVar[dict[str, Input]] = {}
    outputs: ClassVar[dict[str, str]] = {"out": "table"}
    #: Outputs the op makes only in some cases (``detect``'s fitted ``detector``): ``run`` may
    #: leave them out, and a step bound to one that was not made fails, naming it.
    optional_outputs: ClassVar[frozenset[str]] = frozenset()
    Config: ClassVar[type[OpConfig]] = OpConfig
    #: What the step cache fingerprints as this op's code (a class or a function).
    code_object: ClassVar[Any] = None
    #: Modules or packages (dotted names) this op's code reaches without importing them,
    #: such as plugins it looks up by name; the step cache covers their source too (what the
    #: op imports or refers to is followed without being declared).
    depends_on: ClassVar[tuple[str, ...]] = ()
    #: Incremental sources get their previous output (same op, same config) through
    #: ``ctx.previous(name)`` and read only what is new since then.
    incremental: ClassVar[bool] = False
    #: Config fields holding paths (field -> "file" or "sqlite_url", see
    #: :mod:`amml.ops.paths`): the planner makes relative ones absolute against the workflow
    #: file's folder before the cache key is computed, so ``run`` sees absolute paths.
    path_fields: ClassVar[Mapping[str, str]] = {}

    #: A sink that writes what its ``source_state`` reads (a table): the engine also caches
    #: its step under the state the write leaves behind. Only then: for an op that only
    #: reads, a state that moved while it ran (rows logged meanwhile, an alias moved) is not
    #: what it read, and caching under it would serve stale outputs.
    writes_what_it_reads: ClassVar[bool] = False

    def source_state(self) -> str | None:
        """A token for the state of what this op reads from outside its inputs.

        The engine adds it to the step's cache key, so a source whose data changed (new rows
        in a table, a grown log file) runs again. ``""`` (the default) means the op reads
        nothing external; ``None`` means the state cannot be known cheaply (a live stream):
        the step then always runs.
        """
        return ""

    def store_state(self, store: Any) -> str | None:
        """A token for what this op reads from the workflow's own store (``store``: a
        registered model's version, the prediction log, the labels), which ``source_state``
        cannot see: the engine opens the store only when a run starts. Joined to it by
        :meth:`state_token`; ``""`` (the default): nothing, ``None``: unknown (always run).
        """
        return ""

    def state_code(self, store: Any) -> tuple[Any, ...]:
        """Code that what ``store_state`` found selects (the detector class a registered
        version names): the engine adds its code digest, with everything it imports, to the
        step's key, as it does for ``code_references`` (which cannot see the store)."""
        return ()

    def state_token(self, store: Any) -> str | None:
        """``source_state`` and ``store_state`` together: what the step cache and data
        triggers compare (``None`` when either cannot tell)."""
        outside = self.source_state()
        if outside is None:
            return None
        own = self.store_state(store)
        if own is None:
            return None
        return f"{outside}|{own}" if outside and own else outside or own

    def code_references(self) -> tuple[Any, ...]:
        """Code this step's configuration selects (a detector named in it, say): the step
        cache covers these objects' code, and what they reach, like the op's own."""
        return ()

    def __init__(self, config: OpConfig | None = None, **params: Any) -> None:
        if config is not None and params:
            raise TypeError("pass either a Config instance or keyword parameters, not both")
        self.config = config if config is not None else self.Config(**params)

    def run(self, ctx: StepContext, **inputs: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def fingerprint_target(cls) -> Any:
        return cls.code_object if cls.code_object is not None else cls

    @classmethod
    def check_declaration(cls) -> None:
        """Raise :class:`OpError` if the class is not a well-formed op."""
        if not cls.name or not all(part.isidentifier() for part in cls.name.split(".")):
            raise OpError(f"{cls.__qualname__}: op name {cls.name!r} must be dotted identifiers")
        if not cls.outputs:
            raise OpError(f"op '{cls.name}' declares no outputs")
        unknown = sorted(set(cls.optional_outputs) - set(cls.outputs))
        if unknown:
            raise OpError(f"op '{cls.name}': optional outputs {unknown} are not declared "
                          f"outputs")
        for output, kind in cls.outputs.items():
            if kind not in ARTIFACT_TYPES:
                raise OpError(f"op '{cls.name}': output '{output}' has unknown type '{kind}' "
                              f"(known: {', '.join(sorted(ARTIFACT_TYPES))})")
        for port, spec in cls.inputs.items():
            if not isinstance(spec, Input) or spec.type not in ARTIFACT_TYPES:
                raise OpError(f"op '{cls.name}': input '{port}' must be Input(<artifact type>)")
        if not (isinstance(cls.Config, type) and issubclass(cls.Config, BaseModel)):
            raise OpError(f"op '{cls.name}': Config must be a pydantic model")

    def normalize_outputs(self, result: Any) -> dict[str, Any]:
        names = list(self.outputs)
        if len(names) == 1 and not (isinstance(result, dict) and set(result) == set(names)):
            return {names[0]: result}
        if isinstance(result, tuple) and len(result) == len(names):
            return dict(zip(names, result, strict=True))
        if isinstance(result, dict):
            missing = [n for n in names if n not in result and n not in self.optional_outputs]
            extra = [n for n in result if n not in names]
            if not missing and not extra:
                return result
            raise OpError(f"op '{self.name}' returned outputs {sorted(result)}, "
                          f"declared {names}")
        raise OpError(f"op '{self.name}' declares outputs {names}: return a dict or a tuple "
                      f"in that order, got {type(result).__name__}")
