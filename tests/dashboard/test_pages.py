"""The dashboard's pages, sign-in, CSRF and batch reads in process (no browser): fast checks
of what the browser tests cannot see (cookie flags, forged and revoked sessions, refused
writes, escaping, the last-value rule)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

import amml.store.metadata  # noqa: F401  (the schema before the key modules)
from amml.dashboard import create_app
from amml.dashboard.sessions import COOKIE, Sessions
from amml.ops.models.forecaster import Forecaster
from amml.registry import ModelRegistry
from amml.serve.auth import create_key, revoke_key
from amml.store import Store
from amml.store import dashboard_reads as reads

SIGNATURE = {"freq": "h", "lookback": 8, "horizon": 4, "columns": ["OT"], "outputs": ["OT"]}


@pytest.fixture
def filled(store: Store) -> Store:
    registry = ModelRegistry(store)
    for kind in ("naive", "seasonal_naive"):
        registry.register("oil", Forecaster(kind, 8, 4, 4, columns=["OT"], outputs=["OT"]),
                          metrics={"mse": 0.5}, signature=SIGNATURE)
    registry.set_alias("oil", "champion", 1, actor="test", reason="first")
    return store


def _tracked(store: Store, count: int, workflow: str = "exp", status: str = "succeeded"
             ) -> list[str]:
    from amml.store.client import TrackedRun

    ids = []
    for i in range(count):
        run_id = f"{workflow[:4]}{i:012x}"
        store.metadata.create_run(run_id=run_id, workflow=workflow, kind="tracking",
                                  params={"i": i})
        run = TrackedRun(store, run_id, synchronous=True)
        run.log_batch([("loss", 1.0 / (s + 1), s) for s in range(3)])
        store.metadata.finish_run(run_id, status)
        ids.append(run_id)
        time.sleep(0.001)  # distinct start times: newest first is well defined
    return ids


@pytest.fixture
def app(filled: Store) -> Iterator[tuple[TestClient, dict[str, str]]]:
    keys = {scope: create_key(filled, scope=scope, label=f"{scope}-user")[1]
            for scope in ("read", "predict", "admin")}
    with TestClient(create_app(filled, secret=b"k" * 32)) as client:
        yield client, keys


def sign_in(client: TestClient, token: str) -> None:
    answer = client.post("/ui/login", data={"key": token, "next": "/ui/models"},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text


def csrf_of(client: TestClient) -> str:
    import re

    page = client.get("/ui/models/oil").text
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)


def test_pages_need_a_session_and_partials_answer_401(app) -> None:
    client, _ = app
    answer = client.get("/ui/runs", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/login")
    assert client.get("/ui/runs", headers={"X-Partial": "1"}).status_code == 401
    assert client.get("/ui/static/plotly.min.js").status_code == 200  # assets need none


def test_sign_in_sets_a_strict_http_only_cookie_and_refuses_bad_keys(app) -> None:
    client, keys = app
    refused = client.post("/ui/login", data={"key": "amml_x_y"}, follow_redirects=False)
    assert refused.status_code == 200 and "not valid" in refused.text
    assert COOKIE not in client.cookies
    answer = client.post("/ui/login", data={"key": keys["read"], "next": "//evil.example/x"},
                         follow_redirects=False)
    assert answer.headers["location"] == "/ui/runs"  # never an open redirect
    flags = answer.headers["set-cookie"].lower()
    assert "httponly" in flags and "samesite=strict" in flags and "path=/ui" in flags
    assert client.get("/ui/runs").status_code == 200


def test_a_forged_or_revoked_session_is_refused(filled: Store) -> None:
    key, token = create_key(filled, scope="read")
    sessions = Sessions(filled, secret=b"s" * 32, refresh_s=0.0)
    cookie = sessions.cookie_for(sessions.login(token))
    assert sessions.key_for(cookie) is not None
    key_id, expires, mac = cookie.split(".")
    assert sessions.key_for(f"{key_id}.{int(expires) + 999}.{mac}") is None  # longer life
    other = Sessions(filled, secret=b"t" * 32, refresh_s=0.0)  # another installation
    assert other.key_for(cookie) is None
    revoke_key(filled, key.key_id)
    assert sessions.key_for(cookie) is None


def test_writes_need_an_admin_session_and_its_csrf_token(app, filled: Store) -> None:
    client, keys = app
    registry = ModelRegistry(filled)
    sign_in(client, keys["read"])
    page = client.get("/ui/models/oil").text
    assert 'id="alias-form"' not in page  # no write form for a read key
    token = csrf_of(client)
    answer = client.post("/ui/models/oil/alias", data={"alias": "x", "version": "2",
                                                       "csrf": token})
    assert answer.status_code == 403 and "admin" in answer.text
    client.cookies.clear()
    sign_in(client, keys["admin"])
    without = client.post("/ui/models/oil/alias", data={"alias": "x", "version": "2"})
    assert without.status_code == 403 and "CSRF" in without.text
    wrong = client.post("/ui/models/oil/alias",
                        data={"alias": "x", "version": "2", "csrf": "0" * 64})
    assert wrong.status_code == 403
    assert registry.alias_version("oil", "x") is None
    moved = client.post("/ui/models/oil/alias", follow_redirects=False, data={
        "alias": "x", "version": "2", "reason": "from the dashboard", "csrf": csrf_of(client)})
    assert moved.status_code == 303
    assert registry.alias_version("oil", "x") == 2
    history = registry.alias_history("oil", "x")
    assert history[-1]["actor"] == "dashboard:admin-user"
    promoted = client.post("/ui/models/oil/promote", follow_redirects=True, data={
        "candidate": "2", "target": "champion", "metric": "mse", "force": "on",
        "csrf": csrf_of(client)})
    assert promoted.status_code == 200 and registry.alias_version("oil", "champion") == 2


def test_runs_filter_paginate_and_escape(app, filled: Store) -> None:
    client, keys = app
    ids = _tracked(filled, 55, "exp")
    _tracked(filled, 3, "<script>alert(1)</script>", status="failed")
    sign_in(client, keys["read"])
    first = client.get("/ui/runs").text
    assert '<span id="runs-total">58</span>' in first
    assert "<script>alert(1)</script>" not in first and "&lt;script&gt;" in first
    assert first.count('class="run-row"') == 50
    second = client.get("/ui/runs?page=1", headers={"X-Partial": "1"}).text
    assert second.count('class="run-row"') == 8 and "<header>" not in second  # a fragment
    failed = client.get("/ui/runs?status=failed").text
    assert failed.count('class="run-row"') == 3
    prefix = client.get(f"/ui/runs?q={ids[7][:-1]}").text  # a run-id prefix: 16 ids share it
    assert prefix.count('class="run-row"') == 16


def test_last_metric_values_follow_the_store_rule(store: Store) -> None:
    from amml.store.client import TrackedRun

    store.metadata.create_run(run_id="r1", workflow="w", kind="tracking")
    run = TrackedRun(store, "r1", synchronous=True)
    run.log_batch([("loss", 0.1, 3)])
    run.log_metric("loss", 0.9, step=1)  # committed later, lower step: not the last value
    run.log_metric("acc", 0.5, step=2)
    run.log_metric("acc", 0.6, step=2)  # same step, later: the last value
    found = reads.last_metrics_many(store.metadata, ["r1"])["r1"]
    summary = {m["key"]: m["value"] for m in store.metadata.metric_summary("r1")}
    assert found == summary == {"loss": 0.1, "acc": 0.6}


def test_every_page_answers_on_an_empty_store(app) -> None:
    client, keys = app
    sign_in(client, keys["read"])
    for page in ("runs", "compare", "lineage", "models", "serving", "ledger", "anomalies",
                 "drift", "fleet"):
        answer = client.get(f"/ui/{page}")
        assert answer.status_code == 200, (page, answer.text[:300])
    assert "No runs match" in client.get("/ui/runs").text
    assert 'id="anomalies-empty"' in client.get("/ui/anomalies").text
    assert 'id="serving-empty"' in client.get("/ui/serving").text


def _steps_with_outputs(store: Store, steps: list[tuple[str, str, str, float, str]]) -> None:
    """Rows written straight into the store: (run, step, op, started_at, output type) per
    step, each step writing one artifact of its own (port "out")."""
    from sqlalchemy import insert

    from amml.store.metadata import schema

    with store.metadata.engine.begin() as conn:
        for run_id in sorted({s[0] for s in steps}):
            conn.execute(insert(schema.runs), [dict(
                id=run_id, workflow="w", kind="workflow", status="succeeded", started_at=0.0,
                host="h", pid=1)])
        for run_id, name, op, started, kind in steps:
            digest = f"{run_id}-{name}".ljust(64, "0")
            conn.execute(insert(schema.steps), [dict(
                run_id=run_id, name=name, op=op, op_version="1", status="ran",
                started_at=started, duration_s=0.0)])
            conn.execute(insert(schema.artifacts), [dict(
                digest=digest, type=kind, size=1, uri="u", created_at=started)])
            conn.execute(insert(schema.lineage), [dict(
                run_id=run_id, step_name=name, direction="out", port="out",
                artifact_digest=digest)])


def _plans(store: Store, call) -> list[str]:
    """SQLite's query plan of every statement ``call`` runs."""
    from sqlalchemy import event

    statements = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append((statement, parameters))

    engine = store.metadata.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        call()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    with engine.connect() as conn:
        return ["\n".join(row[-1] for row in conn.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {statement}", parameters))
            for statement, parameters in statements if statement.lstrip().startswith("SELECT")]


def test_detections_are_the_newest_of_every_detector_op_from_the_index(store: Store) -> None:
    # interleaved in time across three detector ops; lookalike ops, an image output and
    # another op's step that are not detections
    ops = ("detect", "detect.iforest", "detect.zscore")
    steps = [(f"r{i:03d}", "anomalies", ops[i % 3 if i % 5 else 0], float(i), "table")
             for i in range(60)]
    steps += [("x001", "d1", "detector", 100.0, "table"), ("x001", "d2", "Detect.x", 101.0,
              "table"), ("x001", "d3", "detect", 102.0, "image"),
              ("x001", "d4", "detect.", 103.0, "table"), ("x001", "d5", "train", 104.0,
                                                          "table")]
    _steps_with_outputs(store, steps)
    expected = [(r, op, t) for r, _, op, t, kind in sorted(steps, key=lambda s: -s[3])
                if (op == "detect" or (op.startswith("detect.") and op != "detect."))
                and kind == "table"]
    for limit in (1, 7, 30, 100):
        found = reads.detection_outputs(store.metadata, limit=limit)
        assert [(d["run_id"], d["op"], d["started_at"]) for d in found] == expected[:limit]
    assert len(expected) == 60 and reads.detector_ops(store.metadata) == list(ops)
    # each query walks the (op, started_at) index: no scan of the steps, no sort of them all
    plans = _plans(store, lambda: reads.detection_outputs(store.metadata))
    assert plans and not [p for p in plans if "SCAN" in p or "TEMP B-TREE" in p], plans


def test_lineage_trace_finds_cache_reusers_through_an_index(store: Store) -> None:
    import json

    from sqlalchemy import insert

    from amml.store.lineage import lineage
    from amml.store.metadata import schema

    # run b2 wrote 'clean'; runs a1 and a10 reused it from the cache and trained on it. Run
    # a1's id is a prefix of a10's: its IR must still be read (by the exact id)
    ir = json.dumps({"name": "w", "steps": {"clean": {"op": "preprocess", "inputs": {}},
                                            "model": {"op": "train",
                                                      "inputs": {"train": "clean.out"}}}})
    digest = "d" * 64
    order = ("b2", "a1", "a10")
    with store.metadata.engine.begin() as conn:
        conn.execute(insert(schema.runs), [dict(
            id=r, workflow="w", kind="workflow", status="succeeded", started_at=float(i),
            host="h", pid=1, ir_json=ir) for i, r in enumerate(order)])
        conn.execute(insert(schema.steps), [dict(
            run_id=r, name=name, op=op, op_version="1", cache_key="k1" if name == "clean"
            else None, status="cached" if name == "clean" and r != "b2" else "ran",
            started_at=float(i), duration_s=0.0)
            for i, r in enumerate(order) for name, op in (("clean", "preprocess"),
                                                           ("model", "train"))])
        conn.execute(insert(schema.artifacts), [dict(digest=digest, type="table", size=1,
                                                     uri="u", created_at=0.0)])
        conn.execute(insert(schema.lineage), [dict(
            run_id=r, step_name=step, direction=direction, port=port, artifact_digest=digest)
            for r in order for step, direction, port in (("clean", "out", "out"),
                                                         ("model", "in", "train"))])
        conn.execute(insert(schema.cache_entries), [dict(
            cache_key="k1", partial_key="p1", op="preprocess", outputs="{}", run_id="b2",
            step_name="clean", created_at=0.0)])
    meta = store.metadata
    assert meta.cached_users("b2", "clean") == [("a1", "clean"), ("a10", "clean")]
    assert meta.cached_users("a1", "clean") == []
    used_by = lineage(meta, "b2:clean")["outputs"][0]["consumed_by"]
    assert [(c["run_id"], c["step"]) for c in used_by] == [
        ("b2", "model"), ("a1", "model"), ("a10", "model")]
    assert meta.run_ir_json("a1") == ir and meta.run_ir_json("a") is None
    # the entries a step wrote come from the (run_id, step_name) index, not a scan of steps
    plans = _plans(store, lambda: meta.cached_users("b2", "clean"))
    assert "SEARCH cache_entries USING INDEX ix_cache_entries_run_step" in plans[0], plans
    assert "SCAN" not in plans[0], plans


def test_the_anomaly_chart_puts_each_explained_alarm_on_its_cause(app, filled: Store) -> None:
    """A detect step with ``explain`` names each alarm's cause: the chart draws the alarm on
    that column's line and says it on hover."""
    import html
    import json
    import re

    from amml import compile_workflow, run_workflow
    from amml.lang import load_yaml_text

    workflow = load_yaml_text("""
name: explained
steps:
  normal:
    op: source.synthetic
    with: {periods: 600, seed: 3, anomalies: 0}
  production:
    op: source.synthetic
    with: {periods: 600, seed: 7, anomalies: 6}
  scored:
    op: detect
    inputs: {table: production, reference: normal}
    with: {detector: mset, label: is_anomaly, explain: true}
""")
    result = run_workflow(compile_workflow(workflow), store=filled).raise_for_status()
    out = result.output("scored", "out")
    client, keys = app
    sign_in(client, keys["read"])
    page = client.get("/ui/anomalies").text
    figure = json.loads(html.unescape(re.search(r'data-figure="([^"]*)"', page).group(1)))
    alarms = next(trace for trace in figure["data"] if trace["name"] == "alarm")
    flagged = out[out["alarm"] == 1]
    assert len(flagged) and alarms["text"] == flagged["cause"].tolist()
    assert alarms["y"] == [row[row["cause"]] for _, row in flagged.iterrows()]
    assert "cause: %{text}" in alarms["hovertemplate"]
    assert "cause" not in {trace["name"] for trace in figure["data"]}  # not drawn as a line
