"""The web dashboard: runs, compare, run detail, lineage, models, serving, ledger,
anomalies, drift and fleet, server-rendered (FastAPI + Jinja2) with Plotly.js charts served
from the installed ``plotly`` package.

``amml ui`` serves it alone; ``amml serve --ui`` mounts it under ``/ui`` of a model server
(:func:`attach`, named in ``ServeConfig.extensions``).
"""

from __future__ import annotations

from typing import Any


def attach(app: Any, state: Any) -> None:
    """Mount the dashboard on a model server's app (``amml serve --ui``)."""
    from amml.dashboard.app import attach as attach_dashboard

    attach_dashboard(app, state)


def create_app(*args: Any, **kwargs: Any) -> Any:
    """The dashboard as an app of its own (``amml ui``): see
    :func:`amml.dashboard.app.create_app`."""
    from amml.dashboard.app import create_app as create

    return create(*args, **kwargs)


__all__ = ["attach", "create_app"]
