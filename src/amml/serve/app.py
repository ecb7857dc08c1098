"""The FastAPI application: forecast and detect endpoints, model listing, health, metrics.

=================================  ==========================================================
``POST /v1/models/{name}/forecast``  a window (or a batch) in, the forecast out (scope predict)
``POST /v1/models/{name}/detect``    lookback + horizon rows in, residual anomaly scores out
                                     (a fitted detector: lookback rows or more, a score a row)
``GET /v1/models``                   the served models, their versions and signatures (read)
``GET /v1/models/{name}``            one of them
``GET /healthz``                     the process is up (no key)
``GET /readyz``                      every model is loaded: 200, else 503 (no key)
``GET /metrics``                     Prometheus text (read; no key with ``metrics_open``)
``GET /openapi.json``, ``/docs``     the OpenAPI document
=================================  ==========================================================

``{name}`` is a model name (its first ``--model`` reference) or a full reference such as
``oil@challenger``. Every prediction response carries the version that produced it, in the
``X-Model-Version`` header and the ``version`` field. The hot path does no database work:
keys are checked against a cached copy of the key table, and the request log is queued and
written in batches by a background thread. Bodies are parsed and scored in a small thread
pool, never on the event loop, so ``/healthz`` and small requests answer while a large batch
is scored; what one request may cost is bounded by :mod:`amml.serve.limits`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from starlette.requests import ClientDisconnect
from starlette.routing import Route

from amml._exceptions import ServeError
from amml.registry import ModelRegistry
from amml.serve.answers import (
    detect_payload,
    fitted_detector_payload,
    forecast_payload,
    to_json,
)
from amml.serve.auth import ApiKey, KeyCache
from amml.serve.bodies import ARROW_TYPES, BodyError, Windows, parse
from amml.serve.config import ServeConfig
from amml.serve.limits import InFlight, LimitError, read_body
from amml.serve.metrics import ServerMetrics
from amml.serve.models import (
    ModelSlot,
    ServedModel,
    Watcher,
    default_references,
    set_torch_threads,
)
from amml.serve.predlog import PredictionLog, SlidTable
from amml.store import Store, open_store

log = logging.getLogger("amml.serve")
JSON = "application/json"
DEFAULT_THRESHOLD = 4.0
#: The status a request gets when its client went away before sending its body (nginx's
#: "client closed request"); it only reaches metrics, nobody is left to read it.
CLIENT_CLOSED = 499


# Internal control flow, not part of the error tree: a handler raises it and the route turns it
# into an HTTP error response at once, so it never reaches a caller.
class Reject(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None,
                 reason: str = ""):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}
        self.reason = reason


_NO_AUTH = ApiKey("no-auth", "admin", None, "auth disabled", 0.0, None)


class ServerState:
    """Everything one worker process serves with: slots, keys, metrics, the request log."""

    def __init__(self, config: ServeConfig, store: Store | None = None) -> None:
        self.config = config
        self.own_store = store is None
        self.store = store or open_store(config.home, url=config.store_url,
                                         artifacts_url=config.artifacts_url)
        references = config.models or default_references(ModelRegistry(self.store))
        self.slots: dict[str, ModelSlot] = {}
        self.ordered: list[ModelSlot] = []
        for reference in references:
            slot = ModelSlot(reference)
            self.ordered.append(slot)
            self.slots.setdefault(slot.name, slot)
            self.slots[slot.reference] = slot
        self.keys = KeyCache(self.store, refresh_s=config.keys_refresh) if config.auth else None
        self.metrics = ServerMetrics(config.metrics_multiprocess or None)
        self.predlog = PredictionLog(self.store, interval=config.log_flush_interval,
                                     enabled=config.log_requests)
        self.watcher = Watcher(self.store, self.ordered, config.poll_interval,
                               on_swap=self._swapped, on_failure=self._failed,
                               tick=self._tick, freeze_gc=config.freeze_gc,
                               on_unload=self._unloaded)
        self.in_flight = InFlight(config.max_in_flight)
        self.pool = ThreadPoolExecutor(max(1, config.inference_threads),
                                       thread_name_prefix="amml-serve-predict")
        set_torch_threads(config.threads)

    # -- lifecycle -----------------------------------------------------------------------
    def initial_load(self) -> None:
        try:
            self.watcher.poll_once()
        except Exception as exc:  # the watcher thread tries again
            log.warning("amml serve: first load failed: %s", exc)

    def start(self) -> None:
        if self.keys is not None:
            self.keys.refresh()
        self.predlog.start()
        self.watcher.start()

    def stop(self) -> None:
        self.watcher.stop()
        self.pool.shutdown(wait=True)
        self.predlog.stop()
        self.metrics.process_exit()
        if self.own_store:
            self.store.close()

    def _tick(self) -> None:
        if self.keys is not None:
            try:
                self.keys.refresh_if_stale()
            except Exception as exc:
                log.warning("amml serve: refreshing API keys failed: %s", exc)

    def _swapped(self, slot: ModelSlot, old: ServedModel | None, new: ServedModel) -> None:
        self.metrics.version.labels(slot.reference).set(new.version)
        if old is not None:
            self.metrics.swaps.labels(slot.reference).inc()

    def _unloaded(self, slot: ModelSlot, _old: ServedModel) -> None:
        self.metrics.version.labels(slot.reference).set(0)

    def _failed(self, slot: ModelSlot, _message: str) -> None:
        self.metrics.swap_failures.labels(slot.reference).inc()

    @property
    def ready(self) -> bool:
        return all(slot.current is not None for slot in self.ordered)

    # -- auth ----------------------------------------------------------------------------
    def authorize(self, request: Request, scope: str, model: str | None = None) -> ApiKey:
        if self.keys is None:
            return _NO_AUTH
        headers = request.headers
        token = headers.get("authorization")
        if token is not None:
            kind, _, token = token.partition(" ")
            if kind.lower() != "bearer":
                token = None
        if not token:
            token = headers.get("x-api-key")
        if not token:
            raise Reject(401, "missing API key: send 'Authorization: Bearer <key>' or "
                              "'X-API-Key: <key>'", {"WWW-Authenticate": "Bearer"},
                         "missing_key")
        key = self.keys.authenticate(token)
        if key is None:
            raise Reject(401, "invalid or revoked API key", {"WWW-Authenticate": "Bearer"},
                         "invalid_key")
        if not key.allows(scope):
            raise Reject(403, f"this key's scope is '{key.scope}'; this needs '{scope}'")
        if model is not None and not key.allows_model(model):
            raise Reject(403, f"this key may not use model '{model}'")
        return key

    def authorize_counted(self, request: Request, endpoint: str, scope: str,
                          model: str | None = None) -> ApiKey:
        """:meth:`authorize`, counting each 401 in ``amml_unauthenticated_requests``: anyone
        can send those, so they are never written to the request log row by row."""
        try:
            return self.authorize(request, scope, model)
        except Reject as reject:
            if reject.status == 401:
                self.metrics.unauthenticated.labels(endpoint, reject.reason).inc()
            raise

    def require_served(self, name: str, slot: ModelSlot | None, served: ServedModel | None,
                       request: Request, endpoint: str, scope: str) -> None:
        """Raise the :class:`Reject` a request for ``name`` gets, if any: no such model
        (404), a key that may not use it (401/403), or no version loaded yet (503). Every
        route about a served model checks in this order."""
        if slot is None:
            raise Reject(404, f"no model '{name}' is served here (served: "
                              f"{', '.join(s.reference for s in self.ordered)})")
        self.authorize_counted(request, endpoint, scope, slot.name)
        if served is None:
            raise Reject(503, f"model '{name}' is not loaded"
                         + (f" ({slot.error})" if slot.error else " yet"))

    # -- predictions ---------------------------------------------------------------------
    async def predict(self, name: str, request: Request, endpoint: str) -> Response:
        started = time.perf_counter()
        received_at = time.time()
        slot = self.slots.get(name)
        served = slot.current if slot is not None else None
        status, request_record, windows, logged = 200, None, None, True
        headers: dict[str, str] = {}
        entered = False
        try:
            self.require_served(name, slot, served, request, endpoint, "predict")
            self.in_flight.enter()
            entered = True
            body = await read_body(request, self.config.max_body_bytes)
            request_record = body
            threshold = _threshold(request) if endpoint == "detect" else DEFAULT_THRESHOLD
            if (served.task == "detect" and "threshold" in request.query_params
                    and threshold != 0.5):
                raise BodyError(f"model '{name}' is a fitted detector: it alarms at the "
                                "threshold frozen on its reference (score 0.5); drop "
                                "?threshold=")
            explain = _explain(request)
            if explain and served.task != "detect":
                raise BodyError(f"?explain=true names the columns behind a fitted detector's "
                                f"alarms; model '{name}' forecasts: POST "
                                f"/v1/models/{name}/explain for its forecasts' attributions")
            content, windows = await asyncio.get_running_loop().run_in_executor(
                self.pool, self._answer, served, endpoint, body,
                request.headers.get("content-type"), threshold, explain)
        except Reject as reject:
            status, content, headers = reject.status, _detail(reject.message), reject.headers
            logged = status != 401
        except LimitError as limit:
            status, content = limit.status, json.dumps(limit.to_json()).encode()
            if status == 503:  # overload: shed it cheaply, the metrics count it
                headers, logged = {"Retry-After": "1"}, False
            elif request_record is None:
                request_record = {"bytes": request.headers.get("content-length")}
        except BodyError as problem:
            status, content = problem.status, _detail(str(problem))
        except ClientDisconnect:
            log.warning("amml serve: %s %s: the client disconnected before sending its whole "
                     "body", name, endpoint)
            status, content, logged = CLIENT_CLOSED, b"", False
        except Exception as exc:  # the model raised: answer, log, keep serving
            log.exception("amml serve: %s %s failed", name, endpoint)
            status, content = 500, _detail(f"prediction failed: {type(exc).__name__}: {exc}")
        finally:
            if entered:
                self.in_flight.leave()
        if served is not None:
            headers["X-Model-Version"] = str(served.version)
        seconds = time.perf_counter() - started
        label = slot.reference if slot is not None else "-"
        self.metrics.observe(label, endpoint, status, seconds)
        if slot is not None and logged:
            if windows is not None and windows.slid:
                # a table slid into windows: logged as the rows sent, with the look-back the
                # monitor and the label queue slide them by again (not look-back times over)
                request_record = SlidTable(windows.table, windows.table_times,
                                           served.spec.lookback)
            elif windows is not None and not _is_json(request):
                request_record = windows.values  # CSV or Arrow: log the parsed windows
            elif isinstance(request_record, bytes) and _is_arrow(request):
                request_record = {"content_type": "arrow", "bytes": len(request_record)}
            self.predlog.add(slot.name, served.version if served else 0, endpoint,
                             received_at, seconds * 1000.0, status,
                             request_record if request_record is not None else {}, content,
                             served.spec.columns if served else ())
        return Response(content, status_code=status, media_type=JSON, headers=headers)

    def _answer(self, served: ServedModel, endpoint: str, body: bytes, ctype: str | None,
                threshold: float, explain: bool = False) -> tuple[bytes, Windows]:
        """Parse, score and serialise one request (in the thread pool, off the event loop)."""
        spec, config = served.spec, self.config
        limits = {"max_windows": config.max_windows, "max_depth": config.max_json_depth}
        if served.task == "detect":
            if endpoint != "detect":
                raise BodyError(f"model '{served.name}' is an anomaly detector "
                                f"({served.model.name}): it answers "
                                f"/v1/models/{served.name}/detect")
            windows = parse(body, ctype, spec, spec.lookback,
                            f"the detector scores the newest of {spec.lookback} rows", **limits,
                            slide=True, max_values=config.max_body_bytes // 8)
            payload = fitted_detector_payload(served, windows, explain)
        elif endpoint == "forecast":
            windows = parse(body, ctype, spec, **limits)
            payload = forecast_payload(served, windows)
        else:
            rows = spec.lookback + spec.horizon
            windows = parse(body, ctype, spec, rows,
                            f"detect needs lookback + horizon = {spec.lookback} + "
                            f"{spec.horizon} = {rows}", **limits)
            payload = detect_payload(served, windows, threshold)
        # allow_nan=False: Infinity and NaN are not JSON; the payloads are checked above, this
        # makes any value that slipped through a 500 rather than a body clients cannot read
        try:
            return to_json(payload), windows
        except ValueError as exc:
            raise ServeError(f"the answer held a non-finite number ({exc})") from None


def _is_json(request: Request) -> bool:
    kind = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    return kind in ("application/json", "") or kind.endswith("+json")


def _is_arrow(request: Request) -> bool:
    kind = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    return kind in ARROW_TYPES


def _detail(message: str) -> bytes:
    return json.dumps({"detail": message}).encode()


def _explain(request: Request) -> bool:
    text = request.query_params.get("explain")
    if text is None or text.lower() in ("false", "0"):
        return False
    if text.lower() in ("true", "1"):
        return True
    raise BodyError(f"explain must be true or false, got '{text}'")


def _threshold(request: Request) -> float:
    text = request.query_params.get("threshold")
    if text is None:
        return DEFAULT_THRESHOLD
    try:
        value = float(text)
    except ValueError:
        raise BodyError(f"threshold must be a number, got '{text}'") from None
    if not math.isfinite(value) or value <= 0:
        raise BodyError(f"threshold must be a positive number, got '{text}'")
    return value


# -- the application ------------------------------------------------------------------------
_WINDOW_SCHEMA = {
    "type": "object",
    "description": "One window (lookback rows; detect: lookback + horizon rows), or a batch.",
    "properties": {
        "window": {"type": "array", "description": "Rows of values in the model's column "
                   "order (or in the order of 'columns'); a flat list for one column.",
                   "items": {"oneOf": [{"type": "number"},
                                       {"type": "array", "items": {"type": "number"}}]}},
        "series": {"type": "object", "description": "Column name to its values.",
                   "additionalProperties": {"type": "array", "items": {"type": "number"}}},
        "windows": {"type": "array", "description": "A batch: row lists or objects with "
                    "'window' or 'series' (and 'timestamps').", "items": {}},
        "columns": {"type": "array", "items": {"type": "string"}},
        "timestamps": {"type": "array", "items": {"type": "string"},
                       "description": "Optional; checked against the model's frequency."},
    },
}
_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": _WINDOW_SCHEMA,
                         "example": {"window": [[1.0], [1.1], [0.9]]}},
    "text/csv": {"schema": {"type": "string"}, "example": "timestamp,OT\n...\n"},
    "application/vnd.apache.arrow.stream": {"schema": {"type": "string", "format": "binary"}},
}}, "security": [{"bearer": []}, {"apiKey": []}]}
_ERRORS = {401: {"description": "Missing, invalid or revoked API key"},
           403: {"description": "The key's scope or models do not allow this"},
           404: {"description": "No such model is served"},
           415: {"description": "Unsupported content type"},
           422: {"description": "The body does not fit the model's signature (the detail "
                 "names the problem)"},
           503: {"description": "The model is not loaded yet"}}


def create_app(config: ServeConfig | None = None, *, store: Store | None = None) -> FastAPI:
    """The application serving ``config.models`` (default: read from ``AMML_SERVE_CONFIG``,
    which ``amml serve`` sets for its worker processes)."""
    config = config or ServeConfig.from_env()
    state = ServerState(config, store)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The first load runs before uvicorn accepts connections: with several workers on
        # one socket, a worker must not take requests (and answer 503) while a sibling
        # already reports ready. A model that fails to load leaves /readyz at 503.
        await asyncio.to_thread(state.initial_load)
        state.start()
        try:
            yield
        finally:
            state.stop()

    import amml

    app = FastAPI(title="AMML model server", version=getattr(amml, "__version__", "0"),
                  lifespan=lifespan,
                  description="Forecasts and anomaly scores from registered AMML models. "
                              "Send an API key as 'Authorization: Bearer <key>' or "
                              "'X-API-Key' (unless the server runs with --no-auth).")
    app.state.amml = state

    @app.post("/v1/models/{name}/forecast", tags=["predict"], openapi_extra=_BODY,
              responses=_ERRORS, summary="Forecast the next horizon steps")
    async def forecast(name: str, request: Request) -> Response:
        """Forecast ``horizon`` steps after each window of ``lookback`` rows."""
        return await state.predict(name, request, "forecast")

    @app.post("/v1/models/{name}/detect", tags=["predict"], openapi_extra=_BODY,
              responses=_ERRORS, summary="Score the last horizon rows for anomalies")
    async def detect(name: str, request: Request, threshold: float = DEFAULT_THRESHOLD
                     ) -> Response:
        """Forecast-residual anomaly scores: ``|actual - forecast| / robust scale``;
        scores above ``threshold`` are alarms."""
        return await state.predict(name, request, "detect")

    # The two prediction routes above document the API; these plain Starlette routes, put
    # first in the routing table, answer the requests: the same handler without FastAPI's
    # per-request parameter solving (about a fifth of the time of a small forecast).
    async def forecast_fast(request: Request) -> Response:
        return await state.predict(request.path_params["name"], request, "forecast")

    async def detect_fast(request: Request) -> Response:
        return await state.predict(request.path_params["name"], request, "detect")

    app.router.routes[:0] = [
        Route("/v1/models/{name}/forecast", forecast_fast, methods=["POST"],
              include_in_schema=False),
        Route("/v1/models/{name}/detect", detect_fast, methods=["POST"],
              include_in_schema=False)]

    def _listing(request: Request, name: str | None = None) -> Response:
        started = time.perf_counter()
        try:
            key = state.authorize_counted(request, "models", "read")
            if name is None:
                body: Any = {"models": [s.status() for s in state.ordered
                                        if key.allows_model(s.name)]}
            else:
                slot = state.slots.get(name)
                if slot is None:
                    raise Reject(404, f"no model '{name}' is served here")
                if not key.allows_model(slot.name):
                    raise Reject(403, f"this key may not use model '{slot.name}'")
                body = slot.status()
            status, content, headers = 200, json.dumps(body).encode(), {}
        except Reject as reject:
            status, content, headers = reject.status, _detail(reject.message), reject.headers
        state.metrics.observe("-", "models", status, time.perf_counter() - started)
        return Response(content, status_code=status, media_type=JSON, headers=headers)

    @app.get("/v1/models", tags=["models"], responses=_ERRORS,
             openapi_extra={"security": [{"bearer": []}, {"apiKey": []}]})
    async def list_models(request: Request) -> Response:
        """The served models with the version in use, signature and swap count."""
        return _listing(request)

    @app.get("/v1/models/{name}", tags=["models"], responses=_ERRORS,
             openapi_extra={"security": [{"bearer": []}, {"apiKey": []}]})
    async def describe_model(name: str, request: Request) -> Response:
        return _listing(request, name)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "Not ready"}})
    async def readyz() -> Response:
        """200 when every served model is loaded, else 503 with what is missing."""
        models = {s.reference: {"version": s.current.version if s.current else None,
                                "error": s.error} for s in state.ordered}
        ready = state.ready
        return Response(json.dumps({"ready": ready, "models": models}).encode(),
                        status_code=200 if ready else 503, media_type=JSON)

    @app.get("/metrics", tags=["health"], responses=_ERRORS)
    async def metrics(request: Request) -> Response:
        """Prometheus metrics (all worker processes); needs a ``read`` key unless the server
        runs with ``--metrics-open``."""
        if not state.config.metrics_open:
            try:
                state.authorize_counted(request, "metrics", "read")
            except Reject as reject:
                return Response(_detail(reject.message), status_code=reject.status,
                                media_type=JSON, headers=reject.headers)
        content, ctype = await asyncio.to_thread(state.metrics.render)
        return Response(content, media_type=ctype)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    _attach_extensions(app, state)
    return app


#: Route modules beside the prediction routes, each with ``attach(app, state)``; one not
#: written yet is skipped, so a capability (explanations, labels, edge devices) adds its
#: routes in its own module without touching this file.
EXTENSIONS = ("amml.serve.explain", "amml.serve.labels", "amml.serve.devices",
              "amml.serve.cards")


def _attach_extensions(app: FastAPI, state: ServerState) -> None:
    import importlib

    for name in (*EXTENSIONS, *state.config.extensions):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.attach(app, state)


def app_from_env() -> FastAPI:
    """The factory uvicorn's worker processes call (``amml.serve.app:app_from_env``).

    A worker hands the GIL between threads every 0.5 ms rather than 5 ms: the request log
    and the registry watcher run in background threads, and a request should not wait a
    whole default interval behind one of them."""
    import os
    import sys

    sys.setswitchinterval(float(os.environ.get("AMML_SERVE_SWITCH_INTERVAL", "0.0005")))
    config = ServeConfig.from_env()
    config.freeze_gc = True
    return create_app(config)
