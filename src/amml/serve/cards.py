"""``GET /v1/models/{name}/card``: the model card of the version being served.

``?format=json`` (default), ``md``, ``html`` (plots inlined) or ``png`` with ``&plot=NAME``
(one of the card's ``plots``). The card is the one ``amml models card NAME@VERSION`` writes
(:mod:`amml.registry.cards`), of the version this server answers with now: after a swap the
card follows. Cards are built in the server's thread pool and kept per version for
``CARD_TTL_S`` seconds (drift events and ledger entries keep arriving). Scope ``read``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time

from fastapi import FastAPI, Request, Response

from amml.registry.cards import ModelCard, build_card
from amml.serve.app import JSON, Reject, ServerState, _detail

log = logging.getLogger("amml.serve")
CARD_TTL_S = 60.0
MEDIA = {"json": JSON, "md": "text/markdown; charset=utf-8",
         "html": "text/html; charset=utf-8", "png": "image/png"}


class Cards:
    """Built cards per (model, version), kept ``ttl_s`` seconds."""

    def __init__(self, ttl_s: float = CARD_TTL_S) -> None:
        self._built: dict[tuple[str, int], tuple[float, ModelCard]] = {}
        self._lock = threading.Lock()
        self.ttl_s = ttl_s

    def get(self, state: ServerState, name: str, version: int) -> ModelCard:
        key = (name, version)
        with self._lock:
            found = self._built.get(key)
        if found is not None and time.monotonic() - found[0] < self.ttl_s:
            return found[1]
        card = build_card(state.store, f"{name}@{version}")
        with self._lock:
            self._built = {k: v for k, v in self._built.items() if k[0] != name}
            self._built[key] = (time.monotonic(), card)
        return card


def render(card: ModelCard, kind: str, plot: str | None) -> bytes:
    if kind == "md":
        return card.to_markdown(plot_link="card?format=png&plot={name}").encode()
    if kind == "html":
        return card.to_html().encode()
    if kind == "png":
        if plot not in card.plots:
            known = ", ".join(sorted(card.plots)) or "none"
            raise Reject(404, f"card of {card.ref} has no plot '{plot}' (plots: {known})")
        return card.plots[plot]
    return json.dumps(card.to_json(), default=str).encode()


def attach(app: FastAPI, state: ServerState) -> None:
    cards = Cards()

    @app.get("/v1/models/{name}/card", tags=["models"],
             summary="The model card of the served version",
             openapi_extra={"security": [{"bearer": []}, {"apiKey": []}]})
    async def model_card(name: str, request: Request) -> Response:
        """Intended use, lineage and time ranges, training configuration, test metrics per
        slice, explanation summary, drift history, ledger heads, known limits and checks of
        the version served now. ``?format=json|md|html|png`` (``png`` with ``&plot=NAME``)."""
        slot = state.slots.get(name)
        served = slot.current if slot is not None else None
        headers: dict[str, str] = {}
        try:
            state.require_served(name, slot, served, request, "card", "read")
            kind = request.query_params.get("format", "json").lower()
            if kind not in MEDIA:
                raise Reject(400, f"format must be json, md, html or png, got '{kind}'")
            plot = request.query_params.get("plot")
            if kind == "png" and not plot:
                raise Reject(400, "format=png needs plot=NAME (the JSON card lists them)")
            headers["X-Model-Version"] = str(served.version)
            card = await asyncio.get_running_loop().run_in_executor(
                state.pool, cards.get, state, slot.name, served.version)
            content = render(card, kind, plot)
            return Response(content, media_type=MEDIA[kind], headers=headers)
        except Reject as reject:
            return Response(_detail(reject.message), status_code=reject.status,
                            media_type=JSON, headers={**headers, **reject.headers})
        except Exception as exc:  # the card could not be built: say so, keep serving
            log.exception("amml serve: card of %s failed", name)
            return Response(_detail(f"card failed: {type(exc).__name__}: {exc}"),
                            status_code=500, media_type=JSON, headers=headers)
