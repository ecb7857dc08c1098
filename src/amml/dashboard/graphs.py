"""Layouts for the dashboard's graphs (drawn as SVG by the templates) and Plotly figures
(plain JSON for Plotly.js: importing plotly's Python package would cost a second a worker).

>>> graph = step_graph({"steps": {"raw": {"op": "source.synthetic"},
...                               "clean": {"op": "preprocess", "inputs": {"table": "raw"}}}},
...                    [{"name": "raw", "status": "cached", "duration_s": 0.1},
...                     {"name": "clean", "status": "ran", "duration_s": 0.5}])
>>> [(n["name"], n["column"]) for n in graph["nodes"]], len(graph["edges"])
([('raw', 0), ('clean', 1)], 1)
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 170, 46, 60, 18, 10

STATUS_COLORS = {"ran": "#2e7d32", "cached": "#1565c0", "failed": "#c62828",
                 "skipped": "#757575", "running": "#ef6c00", "succeeded": "#2e7d32",
                 "interrupted": "#6a1b9a"}


def _inputs(step: dict[str, Any]) -> list[str]:
    names = []
    for refs in (step.get("inputs") or {}).values():
        for ref in [refs] if isinstance(refs, str) else refs:
            names.append(str(ref).partition(".")[0])
    return names


def step_graph(ir: dict[str, Any] | None, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Nodes (one per step, in columns by depth) and edges of a run's workflow, each node
    with the step's status, duration and whether it was a cache hit."""
    by_name = {row["name"]: row for row in rows}
    spec = (ir or {}).get("steps") or {name: {"op": row.get("op")} for name, row in
                                        by_name.items()}
    parents = {name: [p for p in _inputs(step) if p in spec] for name, step in spec.items()}
    depth: dict[str, int] = {}

    def depth_of(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name not in depth:
            if name in seen:  # a cycle cannot be in a valid IR; draw it flat
                return 0
            depth[name] = 1 + max((depth_of(p, seen | {name}) for p in parents[name]),
                                  default=-1)
        return depth[name]

    columns: dict[int, list[str]] = {}
    for name in spec:
        columns.setdefault(depth_of(name), []).append(name)
    nodes, where = [], {}
    for column, names in sorted(columns.items()):
        for row_index, name in enumerate(names):
            x = PAD + column * (NODE_W + GAP_X)
            y = PAD + row_index * (NODE_H + GAP_Y)
            where[name] = (x, y)
            row = by_name.get(name, {})
            status = row.get("status", "not run")
            nodes.append({"name": name, "op": spec[name].get("op") or row.get("op", ""),
                          "status": status, "duration_s": row.get("duration_s"),
                          "cache_hit": status == "cached", "column": column,
                          "x": x, "y": y, "w": NODE_W, "h": NODE_H,
                          "color": STATUS_COLORS.get(status, "#9e9e9e")})
    edges = [{"x1": where[p][0] + NODE_W, "y1": where[p][1] + NODE_H / 2,
              "x2": where[c][0], "y2": where[c][1] + NODE_H / 2}
             for c, ps in parents.items() for p in ps]
    width = PAD * 2 + max(columns, default=0) * (NODE_W + GAP_X) + NODE_W
    height = PAD * 2 + max((len(v) for v in columns.values()), default=1) * (NODE_H + GAP_Y)
    return {"nodes": nodes, "edges": edges, "width": width, "height": height}


def lineage_graph(runs: Sequence[dict[str, Any]], slices: Sequence[dict[str, Any]],
                  versions: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Three columns: data slices (source outputs) -> runs -> model versions; a slice read by
    several runs is one node with an edge to each."""
    data: dict[str, dict[str, Any]] = {}
    data_edges: list[tuple[str, str]] = []
    for item in slices:
        digest = item["artifact_digest"]
        data.setdefault(digest, {"label": f"{item['op']} {digest[:8]}", "digest": digest,
                                 "size": item.get("size"), "step": item["step_name"]})
        if (digest, item["run_id"]) not in data_edges:
            data_edges.append((digest, item["run_id"]))
    column_x = (PAD, PAD + NODE_W + GAP_X * 2, PAD + 2 * (NODE_W + GAP_X * 2))
    nodes: list[dict[str, Any]] = []
    where: dict[str, tuple[float, float]] = {}

    def place(key: str, column: int, index: int, **fields: Any) -> None:
        x, y = column_x[column], PAD + index * (NODE_H + GAP_Y)
        where[key] = (x, y)
        nodes.append({"x": x, "y": y, "w": NODE_W, "h": NODE_H, "column": column, **fields})

    for index, (digest, info) in enumerate(data.items()):
        place("d:" + digest, 0, index, kind="data", label=info["label"],
              title=f"{info['step']} wrote {digest} ({info['size']} bytes)", href=None,
              color="#8d6e63")
    for index, run in enumerate(runs):
        place("r:" + run["id"], 1, index, kind="run",
              label=f"{run['workflow'][:16]} {run['id'][:8]}",
              title=f"run {run['id']} ({run['status']})", href=("run", run["id"]),
              color=STATUS_COLORS.get(run["status"], "#9e9e9e"))
    for index, version in enumerate(versions):
        aliases = ", ".join(version.get("aliases") or [])
        place(f"m:{version['name']}@{version['version']}", 2, index, kind="model",
              label=f"{version['name']}@{version['version']}" + (f" ({aliases})" if aliases
                                                                  else ""),
              title=f"model {version['name']} version {version['version']} from run "
                    f"{version['run_id']}", href=("model", version["name"]), color="#6a1b9a")
    links = [("d:" + d, "r:" + r) for d, r in data_edges]
    links += [("r:" + v["run_id"], f"m:{v['name']}@{v['version']}") for v in versions]
    edges = [{"x1": where[a][0] + NODE_W, "y1": where[a][1] + NODE_H / 2,
              "x2": where[b][0], "y2": where[b][1] + NODE_H / 2}
             for a, b in links if a in where and b in where]
    rows = max(len(data), len(runs), len(versions), 1)
    return {"nodes": nodes, "edges": edges, "width": column_x[2] + NODE_W + PAD,
            "height": PAD * 2 + rows * (NODE_H + GAP_Y)}


def _finite(values: Sequence[Any]) -> list[Any]:
    """None for NaN and +-Inf (a gap in the line): JSON has neither."""
    return [v if isinstance(v, (int, float)) and math.isfinite(v) else None for v in values]


def line_figure(title: str, traces: Sequence[tuple[str, Sequence[Any], Sequence[Any]]],
                x_title: str = "step", y_title: str = "") -> dict[str, Any]:
    """A Plotly figure of one line per (name, x, y), zoomable, legend on top."""
    return {
        "data": [{"type": "scatter", "mode": "lines+markers" if len(x) <= 60 else "lines",
                  "name": name, "x": list(x), "y": _finite(y)} for name, x, y in traces],
        "layout": {"title": {"text": title, "font": {"size": 14}}, "height": 280,
                   "margin": {"l": 50, "r": 10, "t": 40, "b": 40},
                   "xaxis": {"title": {"text": x_title}},
                   "yaxis": {"title": {"text": y_title}},
                   "legend": {"orientation": "h", "y": -0.25}},
    }


def anomaly_figure(title: str, x: Sequence[Any], columns: dict[str, Sequence[Any]],
                   alarms: Sequence[int], labels: Sequence[int] | None,
                   scores: Sequence[Any] | None, max_line_points: int = 5000,
                   causes: Sequence[str] | None = None) -> dict[str, Any]:
    """The series, alarms as red markers, labelled anomalies as open circles, the score on a
    second axis below; zoom and pan are Plotly's. Lines are thinned to ``max_line_points``
    (every n-th point); every alarm and label marker is kept at its exact point. Where the
    detector named each alarm's ``causes`` (``detect``'s ``explain``), an alarm sits on its
    cause's line and says it on hover."""
    x = list(x)
    stride = max(1, -(-len(x) // max_line_points))
    line_x = x[::stride]
    data: list[dict[str, Any]] = [{"type": "scattergl", "mode": "lines", "name": name,
                                   "x": line_x, "y": _finite(list(values)[::stride])}
                                  for name, values in columns.items()]
    first = next(iter(columns.values()), [])
    alarm_at = [i for i, a in enumerate(alarms) if a]
    alarm_y = [columns[causes[i]][i] if causes is not None and causes[i] in columns
               else first[i] for i in alarm_at]
    # an alarm whose cause is not drawn sits on the first line: its hover says which it was
    marker: dict[str, Any] = {"type": "scattergl", "mode": "markers", "name": "alarm",
                              "x": [x[i] for i in alarm_at], "y": _finite(alarm_y),
                              "marker": {"color": "#c62828", "size": 8, "symbol": "x"}}
    if causes is not None:
        marker["text"] = [str(causes[i]) for i in alarm_at]
        marker["hovertemplate"] = "%{x}<br>cause: %{text}<extra>alarm</extra>"
    data.append(marker)
    if labels is not None:
        label_at = [i for i, v in enumerate(labels) if v]
        data.append({"type": "scattergl", "mode": "markers", "name": "labelled anomaly",
                     "x": [x[i] for i in label_at],
                     "y": _finite([first[i] for i in label_at]),
                     "marker": {"color": "rgba(0,0,0,0)", "size": 13,
                                "line": {"color": "#ef6c00", "width": 2}}})
    layout: dict[str, Any] = {"title": {"text": title, "font": {"size": 14}}, "height": 420,
                              "margin": {"l": 50, "r": 10, "t": 40, "b": 40},
                              "legend": {"orientation": "h", "y": -0.15},
                              "yaxis": {"domain": [0.35, 1.0]}}
    if scores is not None:
        data.append({"type": "scattergl", "mode": "lines", "name": "score", "x": line_x,
                     "y": _finite(list(scores)[::stride]), "yaxis": "y2",
                     "line": {"color": "#555"}})
        layout["yaxis2"] = {"domain": [0.0, 0.28], "title": {"text": "score"}}
    return {"data": data, "layout": layout}


def figure_json(figure: dict[str, Any]) -> str:
    return json.dumps(figure, allow_nan=False, default=str)
