"""Edge devices' routes: registration (one key per device), assignments per device group,
model delivery and reports.

Admin routes take an API key (``admin`` scope; ``read`` for listings), device routes the
device's own key (``Authorization: Bearer edge_<id>_<secret>``):

* ``POST /v1/edge/devices`` ``{"name", "group"}`` -> the device and its key (shown once) and
  the server's public key, which the device pins to verify models;
* ``GET /v1/edge/devices`` -> devices with their last report;
* ``PUT /v1/edge/assignments/{group}`` ``{"model": "oil@champion", "format": "int8"}``;
  ``GET /v1/edge/assignments``;
* ``GET /v1/edge/assignment`` (device) -> the resolved variant and its signed manifest;
* ``GET /v1/edge/artifacts/{digest}`` (device) -> the ONNX bytes of an edge variant;
* ``POST /v1/edge/report`` (device) -> 204; health and metrics, at most 64 KB of JSON.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from amml._exceptions import AMMLError, ConfigurationError, RegistryError
from amml.edge.delivery import assignment_for
from amml.store.devices import (
    EdgeDevice,
    authenticate_device,
    list_assignments,
    list_devices,
    record_report,
    register_device,
    set_assignment,
    variant_by_digest,
)
from amml.store.keys import KeyRing, public_hex

MAX_REPORT_BYTES = 64 * 1024


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


def attach(app: FastAPI, state: Any) -> None:
    from amml.serve.app import Reject

    store = state.store

    def admin(request: Request, scope: str = "admin") -> Response | None:
        try:
            state.authorize(request, scope)
        except Reject as reject:
            return JSONResponse({"detail": reject.message}, status_code=reject.status,
                                headers=reject.headers)
        return None

    def device_of(request: Request) -> EdgeDevice | None:
        kind, _, token = request.headers.get("authorization", "").partition(" ")
        if kind.lower() != "bearer" or not token:
            return None
        return authenticate_device(store, token)

    async def body_json(request: Request, limit: int = MAX_REPORT_BYTES) -> Any:
        raw = await request.body()
        if len(raw) > limit:
            raise ConfigurationError(f"body of {len(raw)} bytes, at most {limit}")
        try:
            value = json.loads(raw or b"{}")
        except ValueError as exc:
            raise ConfigurationError(f"the body is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ConfigurationError("the body must be a JSON object")
        return value

    @app.post("/v1/edge/devices", tags=["edge"], status_code=201)
    async def add_device(request: Request) -> Response:
        """Register a device in a group; its key is in the answer, once."""
        if (denied := admin(request)) is not None:
            return denied
        try:
            body = await body_json(request)
            device, token = register_device(store, str(body.get("name", "")),
                                            group=str(body.get("group", "")))
        except ConfigurationError as exc:
            return _error(422, str(exc))
        return JSONResponse({**device.to_json(), "token": token,
                             "public_key": public_hex(KeyRing().active().public)},
                            status_code=201)

    @app.get("/v1/edge/devices", tags=["edge"])
    def devices(request: Request, group: str | None = None) -> Response:
        if (denied := admin(request, "read")) is not None:
            return denied
        return JSONResponse({"devices": [d.to_json() for d in list_devices(store, group)]})

    @app.put("/v1/edge/assignments/{group}", tags=["edge"])
    async def assign(group: str, request: Request) -> Response:
        """Point a device group at ``model`` (NAME@ALIAS or NAME@VERSION) in ``format``."""
        if (denied := admin(request)) is not None:
            return denied
        try:
            body = await body_json(request)
            done = set_assignment(store, group, str(body.get("model", "")),
                                  str(body.get("format", "int8")),
                                  actor=str(body.get("actor", "api")))
        except ConfigurationError as exc:
            return _error(422, str(exc))
        return JSONResponse(done.to_json())

    @app.get("/v1/edge/assignments", tags=["edge"])
    def assignments(request: Request) -> Response:
        if (denied := admin(request, "read")) is not None:
            return denied
        return JSONResponse({"assignments": [a.to_json() for a in list_assignments(store)]})

    @app.get("/v1/edge/assignment", tags=["edge"])
    def my_assignment(request: Request) -> Response:
        """The calling device's model: version, variant digest, signed manifest."""
        device = device_of(request)
        if device is None:
            return _error(401, "missing, invalid or revoked device key")
        try:
            return JSONResponse(assignment_for(store, device))
        except RegistryError as exc:
            return _error(404, str(exc))

    @app.get("/v1/edge/artifacts/{digest}", tags=["edge"])
    def artifact(digest: str, request: Request) -> Response:
        """The ONNX bytes of an edge variant (nothing else of the artifact store)."""
        if device_of(request) is None:
            return _error(401, "missing, invalid or revoked device key")
        if variant_by_digest(store, digest) is None:
            return _error(404, f"no edge variant {digest[:12]}")
        try:
            data = store.artifacts.get_bytes(digest)
        except AMMLError as exc:
            return _error(500, f"edge variant {digest[:12]}: {exc}")
        return Response(data, media_type="application/octet-stream")

    @app.post("/v1/edge/report", tags=["edge"], status_code=204)
    async def report(request: Request) -> Response:
        device = device_of(request)
        if device is None:
            return _error(401, "missing, invalid or revoked device key")
        try:
            body = await body_json(request)
            record_report(store, device.device_id, body)
        except (ConfigurationError, ValueError) as exc:
            return _error(422, str(exc))
        return Response(status_code=204)
