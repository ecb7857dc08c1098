"""The dashboard's pages. Each reads through the store's and the registry's functions
(:mod:`amml.store.dashboard_reads` for the batch reads a page of fifty rows needs) and renders
a template; ``X-Partial`` requests get the fragment that changed (filters, pagination, live
serving figures, artifact previews)."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from amml._exceptions import AMMLError
from amml.dashboard.app import PREFIX, Dashboard, Forbidden, render
from amml.dashboard.capabilities import read_capability
from amml.dashboard.graphs import (
    anomaly_figure,
    figure_json,
    line_figure,
    lineage_graph,
    step_graph,
)
from amml.dashboard.previews import preview
from amml.dashboard.serving import parse_metrics
from amml.dashboard.sessions import COOKIE
from amml.registry import ModelRegistry, RegistryError, promote
from amml.store import dashboard_reads as reads
from amml.store.lineage import lineage as lineage_of

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PAGE_SIZE = 50
STATUSES = ("succeeded", "failed", "running", "interrupted")
MAX_COMPARE = 8
MAX_CHARTS = 12


def _dashboard(request: Request) -> Dashboard:
    return request.app.state.amml_dashboard


def _int(value: str | None, default: int, low: int = 0, high: int = 10**9) -> int:
    try:
        return min(high, max(low, int(value))) if value is not None else default
    except ValueError:
        return default


# -- sign-in -------------------------------------------------------------------------------
@router.get("/login")
async def login_form(request: Request, next: str = PREFIX + "/runs") -> Response:
    return render(request, "login.html", next=_safe_next(next), error=None)


def _safe_next(target: str) -> str:
    # only a path of this dashboard: never an open redirect to another site
    return target if target.startswith(PREFIX + "/") and "//" not in target else PREFIX + "/runs"


@router.post("/login")
async def login(request: Request) -> Response:
    dashboard = _dashboard(request)
    form = await request.form()
    target = _safe_next(str(form.get("next") or ""))
    if dashboard.sessions is None:
        return RedirectResponse(target, status_code=303)
    key = dashboard.sessions.login(str(form.get("key") or ""))
    if key is None:
        # 200, not 401: the form is shown again (a 401 page reads as a failed resource load)
        return render(request, "login.html", next=target,
                      error="that key is not valid, was revoked, or has no read scope")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, dashboard.sessions.cookie_for(key), httponly=True,
                        samesite="strict", secure=dashboard.secure_cookie,
                        max_age=int(dashboard.sessions.lifetime_s), path=PREFIX)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    dashboard = _dashboard(request)
    form = dict(await request.form())
    if dashboard.sessions is not None and not dashboard.sessions.check_csrf(
            request.cookies.get(COOKIE), str(form.get("csrf") or "")):
        raise Forbidden("the sign-out form's CSRF token is missing or wrong")
    response = RedirectResponse(PREFIX + "/login", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


@router.get("")
@router.get("/")
async def home() -> Response:
    return RedirectResponse(PREFIX + "/runs", status_code=303)


# -- runs ------------------------------------------------------------------------------------
@router.get("/runs")
def runs(request: Request, workflow: str = "", status: str = "", q: str = "",
         page: str | None = None) -> Response:
    dashboard = _dashboard(request)
    viewer = dashboard.viewer(request)
    meta = dashboard.store.metadata
    number = _int(page, 0)
    found = reads.runs_page(meta, workflow=workflow or None, status=status or None,
                            search=q.strip() or None, offset=number * PAGE_SIZE,
                            limit=PAGE_SIZE)
    ids = [row["id"] for row in found.rows]
    last = reads.last_metrics_many(meta, ids)
    counts = reads.step_counts_many(meta, ids)
    frequency: dict[str, int] = {}
    for values in last.values():
        for key in values:
            frequency[key] = frequency.get(key, 0) + 1
    metric_columns = sorted(frequency, key=lambda k: (-frequency[k], k))[:4]
    filters = {"workflow": workflow, "status": status, "q": q}
    query = {k: v for k, v in filters.items() if v}
    pages = -(-found.total // PAGE_SIZE)
    return render(request, "runs.html", fragment="_runs_table.html", viewer=viewer,
                  page_name="runs", runs=found.rows, total=found.total, page=number,
                  pages=pages, last=last, counts=counts, metric_columns=metric_columns,
                  workflows=reads.workflow_names(meta), statuses=STATUSES, filters=filters,
                  prev_url=_page_url(query, number - 1) if number > 0 else None,
                  next_url=_page_url(query, number + 1) if number + 1 < pages else None)


def _page_url(query: dict[str, str], page: int) -> str:
    return f"{PREFIX}/runs?{urlencode({**query, 'page': page})}"


@router.get("/compare")
def compare(request: Request, ids: str = "") -> Response:
    dashboard = _dashboard(request)
    viewer = dashboard.viewer(request)
    meta = dashboard.store.metadata
    wanted = [i for i in dict.fromkeys(request.query_params.getlist("run") or ids.split(","))
              if i][:MAX_COMPARE]
    known = reads.runs_by_id(meta, wanted)
    run_ids = [i for i in wanted if i in known]
    params = reads.params_many(meta, run_ids)
    last = reads.last_metrics_many(meta, run_ids)
    param_keys = sorted({k for p in params.values() for k in p})
    metric_keys = sorted({k for m in last.values() for k in m})
    differs = {k for k in param_keys if len({json.dumps(params[r].get(k), sort_keys=True)
                                             for r in run_ids}) > 1}
    counts = reads.metric_keys_many(meta, run_ids)
    chart_keys = [k for k in metric_keys if counts.get(k, 0) > len(run_ids)][:MAX_CHARTS]
    series = reads.metric_series_many(meta, run_ids, chart_keys)
    charts = [figure_json(line_figure(key, [(run_id[:8], s["step"], s["value"])
                                            for run_id in run_ids
                                            if (s := series.get((run_id, key)))]))
              for key in chart_keys]
    return render(request, "compare.html", viewer=viewer, page_name="runs",
                  runs=[known[i] for i in run_ids], params=params, param_keys=param_keys,
                  differs=differs, last=last, metric_keys=metric_keys, charts=charts,
                  missing=[i for i in wanted if i not in known])


@router.get("/runs/{run_id}")
def run_detail(request: Request, run_id: str) -> Response:
    dashboard = _dashboard(request)
    viewer = dashboard.viewer(request)
    meta = dashboard.store.metadata
    try:
        run = meta.get_run(run_id)
    except AMMLError as exc:
        return render(request, "message.html", status_code=404, viewer=viewer,
                      title="No such run", message=str(exc))
    run_id = run["id"]
    steps = meta.run_steps(run_id)
    ir = json.loads(run["ir_json"]) if run.get("ir_json") else None
    graph = step_graph(ir, steps)
    summary = meta.metric_summary(run_id)
    points: dict[str, dict[str, list[Any]]] = {}
    for row in meta.metrics(run_id):
        label = f"{row['step_name']}/{row['key']}" if row["step_name"] else row["key"]
        entry = points.setdefault(label, {"step": [], "value": []})
        entry["step"].append(row["step"])
        entry["value"].append(row["value"])
    charts = [figure_json(line_figure(label, [(label, s["step"], s["value"])]))
              for label, s in ((k, reads.thin(v, reads.MAX_CHART_POINTS))
                               for k, v in points.items() if len(v["step"]) > 1)][:MAX_CHARTS]
    outputs = reads.run_outputs(meta, run_id)
    versions = [v for v in ModelRegistry(dashboard.store).versions() if v.run_id == run_id]
    cached = sum(1 for s in steps if s["status"] == "cached")
    return render(request, "run.html", viewer=viewer, page_name="runs", run=run,
                  params=meta.run_params(run_id), steps=steps, graph=graph, summary=summary,
                  charts=charts, outputs=outputs, versions=versions, cached=cached,
                  duration=(run["ended_at"] - run["started_at"]) if run["ended_at"] else None)


@router.get("/artifacts/{digest}/preview")
def artifact_preview(request: Request, digest: str) -> Response:
    dashboard = _dashboard(request)
    viewer = dashboard.viewer(request)
    return render(request, "_preview.html", viewer=viewer,
                  item=preview(dashboard.store, digest))


@router.get("/artifacts/{digest}/raw")
def artifact_raw(request: Request, digest: str) -> Response:
    """An image artifact's bytes (PNG), for ``<img>``; other types are not served raw."""
    dashboard = _dashboard(request)
    dashboard.viewer(request)
    info = dashboard.store.metadata.artifact_info([digest]).get(digest)
    if info is None or info["type"] != "image":
        return Response("not an image artifact", status_code=404)
    try:
        data = dashboard.store.artifacts.get_bytes(digest)
    except AMMLError as exc:
        return Response(str(exc), status_code=409)
    return Response(data, media_type="image/png",
                    headers={"Cache-Control": "private, max-age=86400"})  # content-addressed


# -- lineage ---------------------------------------------------------------------------------
@router.get("/lineage")
def lineage_page(request: Request, page: str | None = None, target: str = "") -> Response:
    dashboard = _dashboard(request)
    viewer = dashboard.viewer(request)
    meta = dashboard.store.metadata
    number = _int(page, 0)
    per_page = 15
    recent = reads.recent_runs(meta, limit=per_page, offset=number * per_page)
    ids = {r["id"] for r in recent}
    slices = reads.source_slices(meta, list(ids))
    versions = [v.to_json() for v in ModelRegistry(dashboard.store).versions()
                if v.run_id in ids]
    graph = lineage_graph(recent, slices, versions)
    tree, problem = None, None
    if target.strip():
        try:
            tree = lineage_of(meta, target.strip())
        except AMMLError as exc:
            problem = str(exc)
    return render(request, "lineage.html", viewer=viewer, page_name="lineage", graph=graph,
                  page=number, more=len(recent) == per_page, target=target, tree=tree,
                  problem=problem)


# -- models ----------------------------------------------------------------------------------
@router.get("/models")
def models(request: Request) -> Response:
    dashboard = _dashboard(request)
    viewer = dashboard.viewer(request)
    by_name: dict[str, list[Any]] = {}
    for version in ModelRegistry(dashboard.store).versions():
        if viewer.allows_model(version.name):
            by_name.setdefault(version.name, []).append(version)
    return render(request, "models.html", viewer=viewer, page_name="models", models=by_name)


@router.get("/models/{name}")
def model_detail(request: Request, name: str, message: str = "", ok: str = "") -> Response:
    dashboard = _dashboard(request)
    viewer = dashboard.viewer(request)
    if not viewer.allows_model(name):
        return render(request, "message.html", status_code=403, viewer=viewer,
                      title="Not allowed", message=f"this key may not see model '{name}'")
    registry = ModelRegistry(dashboard.store)
    versions = registry.versions(name)
    if not versions:
        return render(request, "message.html", status_code=404, viewer=viewer,
                      title="No such model", message=f"no model named '{name}'")
    aliases = registry.aliases(name)
    card = next((v for v in versions if "champion" in v.aliases), versions[-1])
    metric_names = sorted({k for v in versions for k, value in v.metrics.items()
                           if isinstance(value, (int, float))})
    chart = None
    if metric_names and len(versions) > 1:
        chart = figure_json(line_figure(
            "metrics by version", [(k, [v.version for v in versions],
                                    [v.metrics.get(k) for v in versions])
                                   for k in metric_names[:6]], x_title="version"))
    return render(request, "model.html", viewer=viewer, page_name="models", name=name,
                  versions=versions, aliases=aliases, card=card,
                  history=registry.alias_history(name), chart=chart, message=message,
                  ok=ok == "1", metric_names=metric_names)


def _back(name: str, message: str, ok: bool) -> Response:
    query = urlencode({"message": message, "ok": "1" if ok else "0"})
    return RedirectResponse(f"{PREFIX}/models/{name}?{query}", status_code=303)


@router.post("/models/{name}/promote")
async def model_promote(request: Request, name: str) -> Response:
    dashboard = _dashboard(request)
    form = dict(await request.form())
    key = dashboard.check_write(request, form)
    try:
        result = promote(ModelRegistry(dashboard.store), name,
                         candidate=str(form.get("candidate") or "challenger"),
                         target=str(form.get("target") or "champion"),
                         metric=str(form.get("metric") or "mse"),
                         mode="max" if form.get("mode") == "max" else "min",
                         actor=_actor(key), reason=str(form.get("reason") or ""),
                         force=form.get("force") == "on")
    except RegistryError as exc:
        return _back(name, str(exc), False)
    return _back(name, result.reason, result.promoted)


@router.post("/models/{name}/alias")
async def model_alias(request: Request, name: str) -> Response:
    dashboard = _dashboard(request)
    form = dict(await request.form())
    key = dashboard.check_write(request, form)
    alias = str(form.get("alias") or "").strip()
    version = _int(str(form.get("version") or ""), -1)
    if not alias or version < 1:
        return _back(name, "give an alias and a version number", False)
    try:
        before = ModelRegistry(dashboard.store).set_alias(
            name, alias, version, actor=_actor(key), reason=str(form.get("reason") or ""),
            same_signature=form.get("force") != "on")
    except RegistryError as exc:
        return _back(name, str(exc), False)
    moved = f"from version {before}" if before is not None else "(new)"
    return _back(name, f"{name}@{alias} now points at version {version} {moved}", True)


def _actor(key: Any) -> str:
    return f"dashboard:{key.label or key.key_id}"


# -- serving -----------------------------------------------------------------------------------
def _scrape(dashboard: Dashboard) -> tuple[str | None, str | None]:
    """The Prometheus text of the server shown, or why there is none."""
    if dashboard.local_metrics is not None:
        content, _ = dashboard.local_metrics()
        return content.decode(), None
    if not dashboard.server_url:
        return None, None
    import httpx

    headers = {"X-API-Key": dashboard.server_key} if dashboard.server_key else {}
    try:
        answer = httpx.get(dashboard.server_url.rstrip("/") + "/metrics", headers=headers,
                           timeout=2.0)
    except httpx.HTTPError as exc:
        return None, f"cannot reach {dashboard.server_url}: {type(exc).__name__}: {exc}"
    if answer.status_code != 200:
        return None, (f"{dashboard.server_url}/metrics answered {answer.status_code} "
                      "(a 401/403 needs a read key: --server-key)")
    return answer.text, None


@router.get("/serving")
def serving(request: Request) -> Response:
    dashboard = _dashboard(request)
    viewer = dashboard.viewer(request)
    text, problem = _scrape(dashboard)
    snap = rate = chart = None
    if text is not None:
        snap = parse_metrics(text, time.time())
        rate = dashboard.history.add(snap)
        points = dashboard.history.points()
        if points:
            start = points[0][0]
            chart = figure_json(line_figure("requests per second", [
                ("req/s", [round(t - start, 1) for t, _ in points], [r for _, r in points])],
                x_title="seconds"))
    since = time.time() - 3600
    logged = reads.prediction_summary(dashboard.store.metadata, since)
    source = ("this server" if dashboard.local_metrics is not None
              else dashboard.server_url)
    return render(request, "serving.html", fragment="_serving_live.html", viewer=viewer,
                  page_name="serving", snap=snap, rate=rate, chart=chart, problem=problem,
                  source=source, logged=logged,
                  latency=snap.latency() if snap is not None else {})


# -- ledger ------------------------------------------------------------------------------------
@router.get("/ledger")
def ledger(request: Request) -> Response:
    dashboard = _dashboard(request)
    viewer = dashboard.viewer(request)
    return render(request, "ledger.html", viewer=viewer, page_name="ledger",
                  ledgers=reads.ledger_summaries(dashboard.store.metadata))


@router.get("/verify-ledger/{name:path}")
def ledger_verify(request: Request, name: str) -> Response:
    """Verify one chain (every link and signature, every checkpoint re-hashed): loaded by
    the ledger page after it is shown, since it reads every checkpoint."""
    from amml.store.ledger import Ledger

    dashboard = _dashboard(request)
    viewer = dashboard.viewer(request)
    return render(request, "_verify.html", viewer=viewer,
                  report=Ledger(dashboard.store, name).verify())


@router.get("/ledger/{name:path}")
def ledger_detail(request: Request, name: str) -> Response:
    from amml.store.ledger import Ledger

    dashboard = _dashboard(request)
    viewer = dashboard.viewer(request)
    chain = Ledger(dashboard.store, name)
    entries = chain.entries()
    if not entries:
        return render(request, "message.html", status_code=404, viewer=viewer,
                      title="No such ledger", message=f"the store holds no ledger '{name}'")
    keys = sorted({k for e in entries for k, v in e.metrics.items()
                   if isinstance(v, (int, float))})
    epochs = [e for e in entries if e.kind == "epoch"]
    chart = figure_json(line_figure("metrics by epoch", [
        (k, [e.epoch for e in epochs], [e.metrics.get(k) for e in epochs]) for k in keys[:6]],
        x_title="epoch")) if epochs and keys else None
    return render(request, "ledger_detail.html", viewer=viewer, page_name="ledger", name=name,
                  entries=entries, chart=chart)


# -- anomalies, drift, fleet -------------------------------------------------------------------
@router.get("/anomalies")
def anomalies(request: Request, pick: str = "") -> Response:
    dashboard = _dashboard(request)
    viewer = dashboard.viewer(request)
    detections = reads.detection_outputs(dashboard.store.metadata)
    chosen = next((d for d in detections if f"{d['run_id']}:{d['name']}" == pick),
                  detections[0] if detections else None)
    chart, problem, alarms = None, None, 0
    if chosen is not None:
        chart, alarms, problem = _anomaly_chart(dashboard, chosen)
    labels = read_capability(dashboard.store, "amml.store.labels")
    return render(request, "anomalies.html", viewer=viewer, page_name="anomalies",
                  detections=detections, chosen=chosen, chart=chart, problem=problem,
                  alarms=alarms, labels=labels)


#: The anomaly chart shows the newest points of a series, lines thinned to a few thousand
#: (alarm and label markers are all kept): a browser draws that at once.
MAX_SERIES_POINTS = 50_000
MAX_LINE_POINTS = 5_000
#: Columns drawn: four, or as many alarm causes as there are, up to this many.
MAX_DRAWN_COLUMNS = 8


def _anomaly_chart(dashboard: Dashboard, chosen: dict[str, Any]
                   ) -> tuple[str | None, int, str | None]:
    from amml.store.artifacts import ArtifactRef

    try:
        frame = dashboard.store.artifacts.load(ArtifactRef(chosen["artifact_digest"], "table",
                                                           int(chosen["size"] or 0)))
    except AMMLError as exc:
        return None, 0, str(exc)
    if "alarm" not in frame.columns:
        return None, 0, "this detector's table has no 'alarm' column"
    frame = frame.iloc[-MAX_SERIES_POINTS:]
    label = next((c for c in ("is_anomaly", "label", "anomaly") if c in frame.columns), None)
    skip = ({"alarm", "score", "cause", label}
            | {c for c in frame.columns if str(c).startswith("score_")})
    values = {str(c): frame[c].astype(float).tolist() for c in frame.columns
              if c not in skip and frame[c].dtype.kind in "fiu"}
    x = [str(v) for v in frame.index] if frame.index.dtype.kind == "M" else list(
        range(len(frame)))
    causes = frame["cause"].astype(str).tolist() if "cause" in frame else []
    figure = anomaly_figure(f"{chosen['run_id'][:8]}:{chosen['name']} ({chosen['op']})", x,
                            {c: values[c] for c in drawn_columns(list(values), causes)},
                            frame["alarm"].astype(int).tolist(),
                            frame[label].astype(int).tolist() if label else None,
                            frame["score"].astype(float).tolist() if "score" in frame else None,
                            max_line_points=MAX_LINE_POINTS,
                            causes=causes or None)
    return figure_json(figure), int(frame["alarm"].astype(int).sum()), None


def drawn_columns(columns: list[str], causes: list[str]) -> list[str]:
    """The columns the anomaly chart draws: four, the ones named as alarms' causes first (up
    to ``MAX_DRAWN_COLUMNS`` of them), so that each explained alarm sits on its own line.

    >>> drawn_columns(["a", "b", "c", "d", "e", "f"], ["", "f", "", "c", "f"])
    ['f', 'c', 'a', 'b']
    """
    named = [c for c in dict.fromkeys(causes) if c in columns][:MAX_DRAWN_COLUMNS]
    rest = [c for c in columns if c not in named]
    return [*named, *rest][:max(4, len(named))]


CAPABILITY_PAGES = {
    "drift": ("Drift", ["amml.store.drift_events"],
              "Drift events appear here once the monitoring capability records them "
              "(module amml.store.drift_events): a monitor compares live data and "
              "predictions with the training reference and writes one event per detected "
              "shift, with its test, statistic and the model version it concerns."),
    "fleet": ("Fleet", ["amml.store.fleet", "amml.store.devices"],
              "Federated clients (module amml.store.fleet) and edge devices (module "
              "amml.store.devices) appear here once those capabilities record them: each "
              "with its last heartbeat, health and the model version it runs."),
}


@router.get("/drift")
def drift(request: Request) -> Response:
    return _capability_page(request, "drift")


@router.get("/fleet")
def fleet(request: Request) -> Response:
    return _capability_page(request, "fleet")


def _capability_page(request: Request, page: str) -> Response:
    dashboard = _dashboard(request)
    viewer = dashboard.viewer(request)
    title, modules, empty = CAPABILITY_PAGES[page]
    found = [read_capability(dashboard.store, m) for m in modules]
    charts = []
    for capability in found:
        for table in capability.tables:
            if table.time_column and table.rows:
                times = sorted(r[table.time_column] for r in table.rows
                               if isinstance(r.get(table.time_column), (int, float)))
                if times:
                    charts.append(figure_json(line_figure(
                        f"{table.name}: rows over time", [(table.name, [
                            _iso(t) for t in times], list(range(1, len(times) + 1)))],
                        x_title="time", y_title="cumulative rows")))
    return render(request, "capability.html", viewer=viewer, page_name=page, title=title,
                  capabilities=found, empty=empty, charts=charts)


def _iso(value: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(value, dt.UTC).isoformat()
