"""Serving registered models over HTTP: FastAPI + uvicorn, zero-downtime version swaps.

``amml serve --model oil@champion`` answers ``POST /v1/models/oil/forecast`` (and
``/detect``) with the version the alias points at. A watcher polls the alias; when it moves,
the new version is loaded, smoke-tested on a zero window and warmed in the background, then
swapped in with one reference assignment. A request takes the (model, version) pair once when
it starts, so requests in flight finish on the version they began with, and every response
names the version that produced it (``X-Model-Version`` and the ``version`` field).

Modules: :mod:`~amml.serve.auth` (API keys, stored hashed), :mod:`~amml.serve.bodies`
(request bodies to validated windows), :mod:`~amml.serve.models` (served versions, the
watcher), :mod:`~amml.serve.app` (the FastAPI application), :mod:`~amml.serve.server`
(uvicorn, one or several worker processes). Only :mod:`~amml.serve.app` and
:mod:`~amml.serve.server` need the ``serve`` extra (FastAPI, uvicorn, prometheus-client).
"""

from amml.serve.config import ServeConfig

__all__ = ["ServeConfig"]
