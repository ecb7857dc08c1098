"""Ground truth and labels through the model server (issue 15: the operations loop).

=====================================  ======================================================
``POST /v1/models/{name}/actuals``     observed values, joined with served forecasts by
                                       timestamp (scope predict)
``GET /v1/labels/tasks``               the label queue: ``?model=&status=open|labelled&kind=
                                       &limit=&offset=`` (scope read)
``POST /v1/labels/refresh``            queue what is new: alarms and uncertain windows of
                                       ``/detect`` answers, drift events (scope predict)
``GET /v1/labels/{id}``                one task with every label version (scope read)
``POST /v1/labels/{id}``               label a task: a new version (scope predict)
``GET /v1/labels/export``              the queue as Label Studio JSON tasks (scope read)
``POST /v1/labels/import``             Label Studio's export back in (scope predict)
``GET /v1/labels/config``              the matching Label Studio labelling configuration
=====================================  ======================================================

Keys are the server's (:mod:`amml.serve.auth`); a key limited to some models sees and labels
only their tasks. Store work runs in a thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, Field, ValidationError

from amml._exceptions import BodyError
from amml.serve.app import JSON, Reject, ServerState, _detail
from amml.serve.limits import LimitError, read_body
from amml.store import label_studio
from amml.store.api_keys import ApiKey
from amml.store.label_queue import refresh_queue
from amml.store.labels import (
    KINDS,
    LabelError,
    add_label,
    get_task,
    label_history,
    record_actuals,
    tasks,
)

SECURITY = [{"bearer": []}, {"apiKey": []}]
_ERRORS = {401: {"description": "Missing, invalid or revoked API key"},
           403: {"description": "The key's scope or models do not allow this"},
           404: {"description": "No such model or task"},
           422: {"description": "The body cannot be read (the detail says why)"}}


class Actual(BaseModel):
    ts: float | str = Field(description="Epoch seconds (or milliseconds) or ISO 8601 text; "
                                        "without a time zone: UTC")
    column: str
    value: float


class ActualsBody(BaseModel):
    """Either ``actuals`` (rows) or ``timestamps`` with ``series`` (columns)."""

    actuals: list[Actual] | None = None
    timestamps: list[float | str] | None = None
    series: dict[str, list[float]] | None = None

    def rows(self) -> list[dict[str, Any]]:
        rows = [a.model_dump() for a in self.actuals or ()]
        if self.series is not None or self.timestamps is not None:
            if self.series is None or self.timestamps is None:
                raise BodyError("'timestamps' and 'series' come together")
            for name, values in self.series.items():
                if len(values) != len(self.timestamps):
                    raise BodyError(f"series '{name}' has {len(values)} values for "
                                    f"{len(self.timestamps)} timestamps")
                rows.extend({"ts": t, "column": name, "value": v}
                            for t, v in zip(self.timestamps, values, strict=True))
        if not rows:
            raise BodyError("no actuals: send 'actuals' rows or 'timestamps' with 'series'")
        return rows


class Region(BaseModel):
    start: float | str
    end: float | str | None = None
    label: str | None = None
    column: str | None = None


class LabelBody(BaseModel):
    label: str = Field(description="The class, such as 'anomaly' or 'normal'")
    regions: list[Region] = Field(default_factory=list,
                                  description="Parts of the task's range, each with a class")
    author: str | None = Field(None, description="Who labelled (default: the key)")
    reason: str = ""


def _body(model: type[BaseModel], example: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": _inline(model.model_json_schema()), "example": example}}},
        "security": SECURITY}


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema with its ``$defs`` written in place (the OpenAPI document
    resolves ``$ref`` from its own root)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(dict(defs[ref.rsplit("/", 1)[1]]))
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


def attach(app: FastAPI, state: ServerState) -> None:
    async def answer(request: Request, scope: str, work: Callable[[ApiKey, bytes], Any],
                     body: bool = False, status: int = 200) -> Response:
        started = time.perf_counter()
        headers: dict[str, str] = {}
        try:
            key = state.authorize_counted(request, "labels", scope)
            raw = await read_body(request, state.config.max_body_bytes) if body else b""
            result = await asyncio.to_thread(work, key, raw)
            content = json.dumps(result, default=float).encode()
        except Reject as reject:
            status, content, headers = reject.status, _detail(reject.message), reject.headers
        except LimitError as limit:
            status, content = limit.status, json.dumps(limit.to_json()).encode()
        except (BodyError, LabelError) as problem:
            status, content = 422, _detail(str(problem))
        state.metrics.observe("-", "labels", status, time.perf_counter() - started)
        return Response(content, status_code=status, media_type=JSON, headers=headers)

    def parse(model: type[BaseModel], raw: bytes) -> Any:
        try:
            return model.model_validate_json(raw or b"{}")
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                                 for e in exc.errors()[:5])
            raise BodyError(f"the body does not fit: {problems}") from None

    def visible(key: ApiKey, task: dict[str, Any]) -> dict[str, Any]:
        if not key.allows_model(task["model"]):
            raise Reject(403, f"this key may not use model '{task['model']}'")
        return task

    def find(key: ApiKey, task_id: int) -> dict[str, Any]:
        try:
            return visible(key, get_task(state.store, task_id))
        except LabelError:
            raise Reject(404, f"no label task {task_id}") from None

    def allowed_models(key: ApiKey, model: str | None) -> list[str] | None:
        if model is not None and not key.allows_model(model):
            raise Reject(403, f"this key may not use model '{model}'")
        return None if key.models is None else list(key.models)

    # -- actuals ---------------------------------------------------------------------------
    @app.post("/v1/models/{name}/actuals", tags=["labels"], responses=_ERRORS,
              openapi_extra=_body(ActualsBody, {"actuals": [
                  {"ts": "2024-01-01T08:00:00", "column": "OT", "value": 7.2}]}),
              summary="Send observed values for served forecasts")
    async def post_actuals(name: str, request: Request) -> Response:
        """Ground truth that arrived after the forecast: joined with the prediction log by
        timestamp (live error, the labelled window a challenger is compared on)."""
        slot = state.slots.get(name)
        if slot is None:
            return Response(_detail(f"no model '{name}' is served here"), status_code=404,
                            media_type=JSON)

        def work(key: ApiKey, raw: bytes) -> dict[str, Any]:
            if not key.allows_model(slot.name):
                raise Reject(403, f"this key may not use model '{slot.name}'")
            rows = parse(ActualsBody, raw).rows()
            stored = record_actuals(state.store, slot.name, rows, source="api")
            return {"model": slot.name, "stored": stored}

        return await answer(request, "predict", work, body=True)

    # -- the queue -------------------------------------------------------------------------
    @app.get("/v1/labels/tasks", tags=["labels"], responses=_ERRORS,
             openapi_extra={"security": SECURITY}, summary="The label queue")
    async def list_tasks(request: Request, model: str | None = None,
                         status: str | None = None, kind: str | None = None,
                         limit: int = 100, offset: int = 0) -> Response:
        """Tasks oldest first, each with its latest label (``status``: open or labelled;
        ``kind``: alarm, drift, uncertain, manual, import)."""
        def work(key: ApiKey, _: bytes) -> dict[str, Any]:
            if kind is not None and kind not in KINDS:
                raise BodyError(f"kind must be one of {', '.join(KINDS)}, got '{kind}'")
            if not 1 <= limit <= 10_000 or offset < 0:
                raise BodyError("limit must be 1 to 10000 and offset at least 0")
            found = tasks(state.store, model=model, status=status, kind=kind,
                          models=allowed_models(key, model), limit=limit, offset=offset)
            return {"tasks": found, "count": len(found)}

        return await answer(request, "read", work)

    @app.post("/v1/labels/refresh", tags=["labels"], responses=_ERRORS,
              openapi_extra={"security": SECURITY}, summary="Queue new items for labelling")
    async def refresh(request: Request, model: str | None = None,
                      since: float | None = None, margin: float = 0.75) -> Response:
        """Queue alarms and uncertain windows (a score of at least ``margin`` times the
        threshold, no alarm) of ``/detect`` answers, and drift events; already queued items
        are not queued again."""
        def work(key: ApiKey, _: bytes) -> dict[str, Any]:
            names = [model] if model is not None else (
                None if key.models is None else list(key.models))
            allowed_models(key, model)
            counts = {"alarm": 0, "uncertain": 0, "drift": 0}
            for name in names or [None]:
                for kind, n in refresh_queue(state.store, name, since=since,
                                             margin=margin).items():
                    counts[kind] += n
            open_tasks = tasks(state.store, model=model, status="open",
                               models=None if key.models is None else key.models)
            return {"queued": counts, "open": len(open_tasks)}

        return await answer(request, "predict", work)

    # -- Label Studio ----------------------------------------------------------------------
    @app.get("/v1/labels/export", tags=["labels"], responses=_ERRORS,
             openapi_extra={"security": SECURITY},
             summary="The queue as Label Studio JSON tasks")
    async def export(request: Request, model: str | None = None,
                     status: str | None = None) -> Response:
        """Label Studio tasks: ``data.ts`` (epoch ms ``time`` and one list per column), every
        label version as an annotation, what queued the task as a prediction."""
        def work(key: ApiKey, _: bytes) -> list[dict[str, Any]]:
            return label_studio.export_tasks(state.store, model=model, status=status,
                                             models=allowed_models(key, model))

        return await answer(request, "read", work)

    @app.post("/v1/labels/import", tags=["labels"], responses=_ERRORS,
              openapi_extra={"security": SECURITY, "requestBody": {
                  "required": True, "content": {"application/json": {"schema": {
                      "type": "array", "items": {"type": "object"},
                      "description": "Label Studio's JSON export: tasks with 'data' and "
                                     "'annotations' (each with a 'result' list)"}}}}},
              summary="Label Studio's JSON export back in")
    async def import_(request: Request, model: str | None = None) -> Response:
        """Tasks exported here come back to their task (a changed latest annotation adds a
        label version); others are queued as new tasks of ``model``."""
        def work(key: ApiKey, raw: bytes) -> dict[str, Any]:
            try:
                items = json.loads(raw or b"null")
            except ValueError as exc:
                raise BodyError(f"the body is not JSON: {exc}") from None
            listed = items.get("tasks", [items]) if isinstance(items, dict) else items
            for item in listed if isinstance(listed, list) else []:
                meta = (item.get("data") or {}).get("amml") if isinstance(item, dict) else None
                name = (meta or {}).get("model") or model
                if name is not None and not key.allows_model(str(name)):
                    raise Reject(403, f"this key may not use model '{name}'")
            return label_studio.import_tasks(state.store, items, model=model,
                                             author=key.label or f"key {key.key_id}")

        return await answer(request, "predict", work, body=True)

    @app.get("/v1/labels/config", tags=["labels"], responses=_ERRORS,
             openapi_extra={"security": SECURITY},
             summary="The Label Studio labelling configuration for exported tasks")
    async def config(request: Request, model: str | None = None) -> Response:
        def work(key: ApiKey, _: bytes) -> dict[str, Any]:
            allowed_models(key, model)
            columns: list[str] = []
            for slot in state.ordered:
                if (model is None or slot.name == model) and slot.current is not None:
                    columns += [c for c in slot.current.spec.columns if c not in columns]
            return {"label_config": label_studio.labeling_config(columns)}

        return await answer(request, "read", work)

    # -- one task --------------------------------------------------------------------------
    @app.get("/v1/labels/{task_id}", tags=["labels"], responses=_ERRORS,
             openapi_extra={"security": SECURITY},
             summary="One task with every label version")
    async def show(task_id: int, request: Request) -> Response:
        def work(key: ApiKey, _: bytes) -> dict[str, Any]:
            task = find(key, task_id)
            return {**task, "history": label_history(state.store, task_id)}

        return await answer(request, "read", work)

    @app.post("/v1/labels/{task_id}", tags=["labels"], responses=_ERRORS, status_code=201,
              openapi_extra=_body(LabelBody, {"label": "anomaly", "regions": [
                  {"start": "2024-01-01T08:00:00", "end": "2024-01-01T10:00:00",
                   "label": "anomaly"}], "reason": "pump failure"}),
              summary="Label a task (a new version; the latest counts)")
    async def label(task_id: int, request: Request) -> Response:
        def work(key: ApiKey, raw: bytes) -> dict[str, Any]:
            body = parse(LabelBody, raw)
            find(key, task_id)
            author = body.author or key.label or f"key {key.key_id}"
            return add_label(state.store, task_id, body.label,
                             regions=[r.model_dump(exclude_none=True) for r in body.regions],
                             author=author, source="api", reason=body.reason)

        return await answer(request, "predict", work, body=True, status=201)
