"""The dashboard's application pieces: its context (store, sign-in, serving source), the
Jinja2 environment, sign-in and CSRF checks, static files, and ``attach(app, state)``.

``amml ui`` builds a FastAPI app of its own (:func:`create_app`); ``amml serve --ui`` names
this package in ``ServeConfig.extensions`` and the server calls :func:`attach`, so the same
pages appear under ``/ui`` beside the prediction routes, reading the server's own metrics.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from amml.dashboard.serving import RateHistory
from amml.dashboard.sessions import COOKIE, Sessions
from amml.serve.auth import ApiKey
from amml.store import Store

PREFIX = "/ui"
#: Signed-in as nobody in particular: ``--no-auth`` (local use only).
NO_AUTH_KEY = ApiKey("no-auth", "admin", None, "auth disabled", 0.0, None)


class LoginRequired(Exception):
    """No valid session: pages redirect to the sign-in form, partial updates answer 401."""


class Forbidden(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Dashboard:
    """What every page reads from."""

    store: Store
    sessions: Sessions | None  # None: no sign-in (``--no-auth``)
    server_url: str | None = None  # a server whose /metrics the serving page shows
    server_key: str | None = None  # a read key for that server's /metrics
    local_metrics: Callable[[], tuple[bytes, str]] | None = None  # mounted in ``amml serve``
    history: RateHistory = field(default_factory=RateHistory)
    secure_cookie: bool = False

    def viewer(self, request: Request) -> ApiKey:
        if self.sessions is None:
            return NO_AUTH_KEY
        key = self.sessions.key_for(request.cookies.get(COOKIE))
        if key is None:
            raise LoginRequired()
        return key

    def check_write(self, request: Request, form: dict[str, Any]) -> ApiKey:
        """A write action: an admin session and its CSRF token."""
        key = self.viewer(request)
        if self.sessions is not None:
            if not self.sessions.check_csrf(request.cookies.get(COOKIE), form.get("csrf")):
                raise Forbidden("the form's CSRF token is missing or wrong: reload the page "
                                "and try again")
            if not key.allows("admin"):
                raise Forbidden(f"this needs an admin key; you signed in with a "
                                f"'{key.scope}' key")
        return key

    def csrf(self, request: Request) -> str:
        if self.sessions is None:
            return ""
        return self.sessions.csrf_token(request.cookies.get(COOKIE) or "")


def _when(value: float | None) -> str:
    if value is None:
        return ""
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "" if value is None else str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.6g}"


def _size(value: int | None) -> str:
    if value is None:
        return ""
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)


def environment() -> Environment:
    env = Environment(loader=PackageLoader("amml.dashboard", "templates"),
                      autoescape=select_autoescape(["html"]), trim_blocks=True,
                      lstrip_blocks=True)
    env.filters.update(when=_when, duration=_duration, number=_number, size=_size)
    env.globals["prefix"] = PREFIX
    return env


_ENV: Environment | None = None


def render(request: Request, template: str, status_code: int = 200, **context: Any
           ) -> HTMLResponse:
    """A page, or only its fragment ``_<name>`` when the page's script asks for a partial
    update (header ``X-Partial``)."""
    global _ENV
    if _ENV is None:
        _ENV = environment()
    dashboard: Dashboard = request.app.state.amml_dashboard
    partial = request.headers.get("x-partial")
    name = template
    if partial and "fragment" in context:
        name = context["fragment"]
    viewer = context.pop("viewer", None)
    page = _ENV.get_template(name).render(
        request=request, viewer=viewer, auth=dashboard.sessions is not None,
        csrf=dashboard.csrf(request) if viewer is not None else "", **context)
    return HTMLResponse(page, status_code=status_code)


def _static_folder() -> Path:
    return Path(str(resources.files("amml.dashboard") / "static"))


def plotly_js() -> Path:
    """plotly.min.js from the installed ``plotly`` package: no CDN, works offline."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def install(app: FastAPI, dashboard: Dashboard) -> None:
    """Add the dashboard's routes to ``app``."""
    from amml.dashboard import pages

    app.state.amml_dashboard = dashboard

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _exc: LoginRequired) -> Response:
        if request.headers.get("x-partial"):
            return Response("sign in again", status_code=401)
        return RedirectResponse(f"{PREFIX}/login?next={request.url.path}", status_code=303)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        return render(request, "message.html", status_code=403, title="Not allowed",
                      message=exc.message, viewer=None)

    static = _static_folder()
    cache = {"Cache-Control": "public, max-age=86400"}

    @app.get(PREFIX + "/static/plotly.min.js", include_in_schema=False)
    async def _plotly() -> Response:
        from fastapi.responses import FileResponse

        return FileResponse(plotly_js(), media_type="text/javascript", headers=cache)

    @app.get(PREFIX + "/static/{name}", include_in_schema=False)
    async def _static(name: str) -> Response:
        from fastapi.responses import FileResponse

        path = static / name
        if "/" in name or not path.is_file():
            return Response("not found", status_code=404)
        media = "text/javascript" if name.endswith(".js") else "text/css"
        return FileResponse(path, media_type=media, headers=cache)

    app.include_router(pages.router)


def attach(app: FastAPI, state: Any) -> None:
    """``amml serve --ui``: the dashboard under ``/ui`` of a model server, over its store,
    signing in with its API keys (none with ``--no-auth``), showing its own metrics."""
    sessions = Sessions(state.store) if state.config.auth else None
    install(app, Dashboard(state.store, sessions, local_metrics=state.metrics.render))


def create_app(store: Store, *, auth: bool = True, server_url: str | None = None,
               server_key: str | None = None, secret: bytes | None = None) -> FastAPI:
    """The dashboard alone (``amml ui``): ``/`` redirects to ``/ui/runs``."""
    import amml

    app = FastAPI(title="AMML dashboard", version=getattr(amml, "__version__", "0"),
                  docs_url=None, redoc_url=None, openapi_url=None)
    sessions = Sessions(store, secret=secret) if auth else None
    install(app, Dashboard(store, sessions, server_url=server_url, server_key=server_key))

    @app.get("/", include_in_schema=False)
    async def _root() -> Response:
        return RedirectResponse(f"{PREFIX}/runs", status_code=303)

    return app
