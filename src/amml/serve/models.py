"""Served model versions and the watcher that swaps them without downtime.

A :class:`ServedModel` is one loaded version with its :class:`~amml.serve.bodies.Spec` and
scaler, immutable once built. A :class:`ModelSlot` holds the version in use for one
reference (``NAME@ALIAS``, ``NAME@3`` or ``NAME``) in a single attribute: a request reads it
once, at its start, and keeps that object to the end, so it finishes on the version it began
with however often the slot changes meanwhile. The :class:`Watcher` thread polls each slot's
target version; when it changes it loads the new version, smoke-tests it on a zero window of
the signature's shape, warms it, and only then assigns it to the slot. A registered fitted
anomaly detector (``task: detect``) is served too: its ``/detect`` scores the newest row of each
window of ``lookback`` rows with the detector's frozen model and threshold (a table of more rows
is every such window in it: a score per row from the ``lookback``-th on). A version that fails
to load or to pass the smoke test is not served (the old one stays) until the reference
moves again. A reference that comes to point at nothing (its version deleted: ``amml models
delete --force`` removes the version's aliases with it) is unloaded: the model answers 503
and ``/readyz`` is 503 until the reference points at a live version again. ``NAME`` (the
newest version) moves to the newest version still live instead.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from amml._exceptions import AMMLError, BodyError, ServeError
from amml.ops.detectors.fitted import FittedDetector
from amml.ops.models.contract import Forecasting
from amml.ops.transforms.scaling import Scaler
from amml.registry import (
    ModelRegistry,
    ModelVersion,
    RegistryError,
    detector_shape,
    model_scaler,
    model_shape,
    scaled_forecast,
)
from amml.serve.bodies import Spec
from amml.store import Store

log = logging.getLogger("amml.serve")


def _spec(version: ModelVersion, model: Forecasting) -> Spec:
    try:
        shape = model_shape(version, model)
    except RegistryError as exc:
        raise ServeError(str(exc)) from None
    return Spec(shape.lookback, shape.horizon, shape.columns, shape.outputs, shape.freq)


@dataclass(frozen=True)
class ServedModel:
    """One loaded, smoke-tested version (immutable: swapping replaces the whole object)."""

    name: str
    version: int
    spec: Spec
    model: Any
    predict: Callable[[np.ndarray], np.ndarray]
    scaler: Scaler | None  # of the input and output columns (missing ones pass as they are)
    loaded_at: float
    info: dict[str, Any] = field(default_factory=dict)
    #: "forecast", or "detect" for a fitted anomaly detector (``predict``: windows -> scores)
    task: str = "forecast"

    @classmethod
    def build(cls, version: ModelVersion, model: Any) -> ServedModel:
        if isinstance(model, FittedDetector):
            return cls._detector(version, model)
        if not isinstance(model, Forecasting):  # the model contract, checked once
            raise ServeError(f"{version.ref}: {type(model).__name__} is not a forecaster "
                             "(lookback, horizon, columns, outputs, predict_windows); cannot "
                             "tell the lookback and horizon")
        spec = _spec(version, model)
        return cls(version.name, version.version, spec, model, model.predict_windows,
                   model_scaler(version, spec.columns, spec.outputs), time.time(),
                   {"metrics": version.metrics, "artifact": version.artifact_digest,
                    "created_at": version.created_at, "created_by": version.created_by})

    @classmethod
    def _detector(cls, version: ModelVersion, detector: FittedDetector) -> ServedModel:
        try:
            shape = detector_shape(version, detector)
        except RegistryError as exc:
            raise ServeError(str(exc)) from None
        spec = Spec(shape.lookback, 0, shape.columns, shape.outputs, shape.freq)
        return cls(version.name, version.version, spec, detector, detector.score_windows, None,
                   time.time(), {"metrics": version.metrics, "artifact": version.artifact_digest,
                                 "created_at": version.created_at,
                                 "created_by": version.created_by, "detector": detector.name},
                   task="detect")

    def forecast(self, x: np.ndarray) -> np.ndarray:
        """(windows, lookback, columns) in original units -> (windows, horizon, outputs): the
        registry's code path, the one ``amml.load_model(...).forecast`` takes too."""
        if self.task == "detect":
            raise BodyError(f"model '{self.name}' is an anomaly detector "
                            f"({self.model.name}): it answers /v1/models/{self.name}/detect")
        return scaled_forecast(self.predict, self.scaler, self.spec.columns, self.spec.outputs,
                               x)

    def smoke_test(self, warm: int = 3) -> None:
        """Predict on a zero window of the signature's shape; the answer must be finite and
        (1, horizon, outputs). Then a few more calls to warm caches and lazy paths."""
        spec = self.spec
        x = np.zeros((1, spec.lookback, len(spec.columns)))
        if self.task == "detect":
            self._smoke_test_detector(x, warm)
            return
        if self.scaler is not None:  # zero in the model's (scaled) units
            x = self.scaler.inverse(x, list(spec.columns), missing="identity")
        try:
            y = self.forecast(x)
        except Exception as exc:
            raise ServeError(f"{self.name}@{self.version} failed its smoke test: "
                             f"{type(exc).__name__}: {exc}") from exc
        wanted = (1, spec.horizon, len(spec.outputs))
        if y.shape != wanted:
            raise ServeError(f"{self.name}@{self.version} smoke test: output shape {y.shape}, "
                             f"the signature says {wanted}")
        if not np.isfinite(y).all():
            raise ServeError(f"{self.name}@{self.version} smoke test: non-finite output")
        for _ in range(warm):
            self.forecast(x)

    def _smoke_test_detector(self, x: np.ndarray, warm: int) -> None:
        try:
            scores = self.predict(x)
        except Exception as exc:
            raise ServeError(f"{self.name}@{self.version} failed its smoke test: "
                             f"{type(exc).__name__}: {exc}") from exc
        if np.shape(scores) != (1,) or not np.isfinite(scores).all():
            raise ServeError(f"{self.name}@{self.version} smoke test: scores {scores!r}, "
                             "expected one finite score")
        for _ in range(warm):
            self.predict(x)


class ModelSlot:
    """The version in use for one model reference. ``current`` is read without a lock: one
    attribute assignment swaps it, so a reader sees the old or the new version, whole."""

    def __init__(self, reference: str) -> None:
        name, _, pointer = reference.partition("@")
        self.reference, self.name, self.pointer = reference, name, pointer
        self.mode = "latest" if not pointer else "pinned" if pointer.isdigit() else "alias"
        self.current: ServedModel | None = None
        self.error: str | None = None
        self.failed: set[int] = set()
        self.swaps = 0

    def target(self, registry: ModelRegistry) -> int | None:
        """The version this reference points at now (one small query)."""
        if self.mode == "pinned":  # a deleted version must stop being served
            try:
                return registry.get(self.name, int(self.pointer)).version
            except RegistryError:
                return None
        if self.mode == "alias":
            return registry.alias_version(self.name, self.pointer)
        return registry.latest_version(self.name)

    def status(self) -> dict[str, Any]:
        served = self.current
        return {"name": self.name, "reference": self.reference,
                "version": served.version if served else None,
                "ready": served is not None, "swaps": self.swaps, "error": self.error,
                "signature": served.spec.to_json() if served else None,
                "task": served.task if served else None,
                "loaded_at": served.loaded_at if served else None,
                **({"metrics": served.info.get("metrics", {})} if served else {})}


def default_references(registry: ModelRegistry) -> list[str]:
    """Every registered model: ``NAME@champion`` where that alias exists, else ``NAME``."""
    names = sorted({v.name for v in registry.versions()})
    return [f"{n}@champion" if registry.alias_version(n, "champion") is not None else n
            for n in names]


class Watcher:
    """A daemon thread: loads each slot's version, then follows its reference.

    ``on_swap(slot, old, new)`` runs after each swap (metrics); ``tick()`` runs every poll
    (refreshing the API key cache, say). ``poll_once`` does one round synchronously.
    """

    def __init__(self, store: Store, slots: list[ModelSlot], interval: float = 0.5,
                 on_swap: Callable[[ModelSlot, ServedModel | None, ServedModel], None]
                 | None = None,
                 on_failure: Callable[[ModelSlot, str], None] | None = None,
                 tick: Callable[[], None] | None = None, freeze_gc: bool = False,
                 on_unload: Callable[[ModelSlot, ServedModel], None] | None = None) -> None:
        self.store = store
        self.freeze_gc = freeze_gc
        self.registry = ModelRegistry(store)
        self.slots = slots
        self.interval = interval
        self.on_swap, self.on_failure, self.tick = on_swap, on_failure, tick
        self.on_unload = on_unload
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="amml-serve-watcher",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # the store blinked: keep serving, try again
                log.warning("amml serve: polling the registry failed: %s", exc)
            self._stop.wait(self.interval)

    def poll_once(self) -> None:
        for slot in self.slots:
            try:
                target = slot.target(self.registry)
            except Exception as exc:
                slot.error = f"cannot read the registry: {exc}"
                continue
            current = slot.current
            if target is None:
                if current is not None:  # deleted (or its alias removed): stop serving it
                    slot.current = None
                    log.warning("amml serve: %s no longer points at a version (version %s "
                                "was deleted or unaliased): not serving it", slot.reference,
                                current.version)
                    if self.on_unload is not None:
                        self.on_unload(slot, current)
                    slot.error = (f"'{slot.reference}' points at no version (version "
                                  f"{current.version} was deleted or its alias removed)")
                elif slot.error is None or "cannot read" in slot.error:
                    slot.error = f"'{slot.reference}' points at no version"
                continue
            if (current is not None and current.version == target) or target in slot.failed:
                continue
            self._swap(slot, target)
        if self.tick is not None:
            self.tick()

    def _swap(self, slot: ModelSlot, target: int) -> None:
        old = slot.current
        try:
            version = self.registry.get(slot.name, target)
            served = ServedModel.build(version, self.registry.load(version))
            served.smoke_test()
        except Exception as exc:
            slot.failed.add(target)
            message = str(exc) if isinstance(exc, AMMLError) else f"{type(exc).__name__}: {exc}"
            slot.error = f"version {target} not served: {message}"
            log.error("amml serve: %s: %s", slot.reference, slot.error)
            if self.on_failure is not None:
                self.on_failure(slot, slot.error)
            return
        _limit_torch_threads()
        if old is None and self.freeze_gc:
            # A server process holds a few hundred thousand long-lived objects (torch,
            # pandas, the app); a full collection walking them all stalls every request for
            # 50-150 ms. Freeze them once, when first loaded: later collections skip them.
            gc.collect()
            gc.freeze()
        slot.current = served  # the swap: requests already running keep the old object
        slot.error = None
        slot.failed.discard(target)
        if old is not None:
            slot.swaps += 1
        log.info("amml serve: %s now serves version %s (was %s)", slot.reference, target,
                 old.version if old else None)
        if self.on_swap is not None:
            self.on_swap(slot, old, served)


_THREADS = {"n": 1}


def set_torch_threads(n: int) -> None:
    _THREADS["n"] = max(1, int(n))
    _limit_torch_threads()


def _limit_torch_threads() -> None:
    """A small model's forward pass is fastest on one thread; several worker processes
    must not each spread over every core."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != _THREADS["n"]:
        torch.set_num_threads(_THREADS["n"])
