"""``POST /v1/models/{name}/explain``: the forecast of each window and its attributions.

The body is a forecast's (``lookback`` rows: JSON, CSV or Arrow, in original units); the
answer gives, per window, the explained number (the forecast averaged over the horizon, or
``?step=K``), the base value it is measured from, and the attributions summed by input
channel and by lag band (``?full=true``: every input value's too). ``?format=png`` answers
the first window's picture instead. Keys, limits and the request log are the forecast's: the
scope is ``predict``, the log's endpoint ``explain``.

The background is the zero window in the model's units (the training mean, for a model whose
signature has a z-score scaler): attributions say how each input moves the forecast away
from the forecast of an average window. An explainer is built once per served version and
kept (the linear kinds' exact map is read off then); see :mod:`amml.ops.explain.attribution`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import Any

import numpy as np
from fastapi import FastAPI, Request, Response

from amml._exceptions import BodyError
from amml.ops.explain.attribution import Explanation, ModelExplainer, in_original_units
from amml.serve.answers import check_finite, to_json
from amml.serve.app import JSON, Reject, ServerState, _detail
from amml.serve.bodies import parse
from amml.serve.limits import LimitError, read_body
from amml.serve.models import ServedModel

PNG = "image/png"
log = logging.getLogger("amml.serve")


class Explainers:
    """One explainer per (model, version, step), built on first use (in the pool thread)."""

    def __init__(self, keep: int = 16) -> None:
        self._built: dict[tuple[str, int, int | None], ModelExplainer] = {}
        self._lock = threading.Lock()
        self.keep = keep

    def get(self, served: ServedModel, step: int | None) -> ModelExplainer:
        key = (served.name, served.version, step)
        with self._lock:
            found = self._built.get(key)
            if found is None:
                spec = served.spec
                zero = np.zeros((1, spec.lookback, len(spec.columns)))
                found = ModelExplainer(served.model, zero, step=step)
                if len(self._built) >= self.keep:  # old versions go first
                    self._built.pop(next(iter(self._built)))
                self._built[key] = found
            return found


def _options(request: Request, horizon: int) -> tuple[int | None, bool, str]:
    query = request.query_params
    step: int | None = None
    if "step" in query:
        try:
            step = int(query["step"])
        except ValueError:
            raise BodyError(f"step must be an integer, got '{query['step']}'") from None
        if not 1 <= step <= horizon:
            raise BodyError(f"step must be between 1 and the horizon {horizon}, got {step}")
    full = query.get("full", "false").lower() in ("1", "true", "yes")
    kind = query.get("format", "json").lower()
    if kind not in ("json", "png"):
        raise BodyError(f"format must be 'json' or 'png', got '{kind}'")
    return step, full, kind


def explain_answer(state: ServerState, explainers: Explainers, served: ServedModel,
                   body: bytes, ctype: str | None, step: int | None, full: bool,
                   kind: str) -> tuple[bytes, Any]:
    """Parse, explain and serialise one request (in the server's thread pool)."""
    spec, config = served.spec, state.config
    if served.task == "detect":
        raise BodyError(f"model '{served.name}' is an anomaly detector ({served.model.name}): "
                        "explanations are for forecasters")
    windows = parse(body, ctype, spec, max_windows=config.max_windows,
                    max_depth=config.max_json_depth)
    x = windows.values
    if served.scaler is not None:
        x = served.scaler.transform(x, list(spec.columns), missing="identity")
    explainer = explainers.get(served, step)
    with np.errstate(over="ignore", invalid="ignore"):
        explanation: Explanation = in_original_units(explainer.explain(x), served.scaler)
    check_finite(explanation.prediction[:, None, :], windows.values, spec.outputs,
                 "explained forecast")
    check_finite(explanation.values.reshape(len(x), -1, len(spec.outputs)), windows.values,
                 spec.outputs, "attribution")
    if kind == "png":
        from amml.ops.explain.plot import explanation_png

        return explanation_png(explanation, 0, title=None), windows
    payload: dict[str, Any] = {"model": served.name, "version": served.version,
                               "method": explanation.method, "target": explanation.target,
                               "columns": list(spec.columns), "outputs": list(spec.outputs),
                               "lag_bands": explanation.band_names}
    items = [explanation.to_json(i, full=full) for i in range(len(x))]
    if windows.batch:
        payload["explanations"] = items
    else:
        payload["explanation"] = items[0]
    try:
        return to_json(payload), windows
    except ValueError as exc:
        raise BodyError(f"the explanation held a non-finite number ({exc})") from None


def attach(app: FastAPI, state: ServerState) -> None:
    explainers = Explainers()

    @app.post("/v1/models/{name}/explain", tags=["predict"],
              summary="Attributions of each window's forecast (SHAP)")
    async def explain(name: str, request: Request) -> Response:
        """Per-prediction attributions by input channel and lag band; ``?step=K`` explains
        horizon step K (default: the horizon mean), ``?full=true`` adds every input value's,
        ``?format=png`` draws the first window."""
        started, received_at = time.perf_counter(), time.time()
        slot = state.slots.get(name)
        served = slot.current if slot is not None else None
        status, headers, media = 200, {}, JSON
        record: Any = None
        logged, entered = True, False
        try:
            state.require_served(name, slot, served, request, "explain", "predict")
            step, full, kind = _options(request, served.spec.horizon)
            state.in_flight.enter()
            entered = True
            body = await read_body(request, state.config.max_body_bytes)
            record = body
            content, windows = await asyncio.get_running_loop().run_in_executor(
                state.pool, explain_answer, state, explainers, served, body,
                request.headers.get("content-type"), step, full, kind)
            if kind == "png":
                media = PNG
            if not (request.headers.get("content-type") or "json").endswith("json"):
                record = windows.values
        except Reject as reject:
            status, content, headers = reject.status, _detail(reject.message), reject.headers
            logged = status != 401
        except LimitError as limit:
            status, content = limit.status, json.dumps(limit.to_json()).encode()
            logged = status != 503
        except BodyError as problem:
            status, content = problem.status, _detail(str(problem))
        except Exception as exc:  # the model or the explainer raised: answer, keep serving
            log.exception("amml serve: %s explain failed", name)
            status, content = 500, _detail(f"explanation failed: {type(exc).__name__}: {exc}")
        finally:
            if entered:
                state.in_flight.leave()
        if served is not None:
            headers["X-Model-Version"] = str(served.version)
        seconds = time.perf_counter() - started
        state.metrics.observe(slot.reference if slot else "-", "explain", status, seconds)
        if slot is not None and logged:
            state.predlog.add(slot.name, served.version if served else 0, "explain",
                              received_at, seconds * 1000.0, status,
                              record if record is not None else {},
                              content if media == JSON else b'{"png": true}',
                              served.spec.columns if served else ())
        return Response(content, status_code=status,
                        media_type=media if status == 200 else JSON, headers=headers)
