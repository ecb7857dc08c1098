"""Model cards: one page per registered version that says what the model is, where it came
from, how well it does and where it does worse, generated from the store with no hand editing.

:func:`build_card` reads everything from the store:

* **intended use**: the question the signature answers (columns over ``lookback`` rows at
  ``freq`` -> ``horizon`` rows of outputs), the description, the aliases;
* **data lineage and time ranges**: the run and step that registered it, every source step
  of that run with its artifact, rows and first/last timestamp, and the evaluation data;
* **training configuration and code version**: the run's parameters, the train step's
  configuration, the workflow digest, git commit and AMML version;
* **metrics** on the test split as recorded, and **per slice** recomputed on the test data
  the version was registered with: per hour of day of the forecast time and per station or
  device column when the table has one (the fairness question asked of a time series);
* an **explanation summary** when the run explained the model (an ``explain`` step);
* **drift history** (:mod:`amml.store.drift_events`), the **ledger head and signature** of its
  training ledger and of the promotions ledger, **known limits**;
* **checks**, each passed, failed or skipped with its reason. The promotion policy
  (:mod:`amml.registry.policy`) never promotes a version whose card has a failed check.

``card.to_markdown()``, ``card.to_html()`` (plots inlined) and ``card.to_json()``; the PNG
plots are ``card.plots`` (name -> bytes). ``amml models card NAME@ALIAS`` writes them;
``GET /v1/models/{name}/card`` serves them.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from amml._exceptions import AMMLError
from amml.registry.promotion import flatten_metrics
from amml.store import Store
from amml.store.drift_events import DriftRecords
from amml.store.ledger import Ledger
from amml.store.model_registry import ModelRegistry, ModelVersion

#: Table columns that name a station, a device or a site: each value is a slice.
SLICE_COLUMN = re.compile(r"(station|device|site|sensor|region|plant|meter|unit)(_?id)?$",
                          re.IGNORECASE)
#: A slice whose MSE is more than this many times the other slices' fails the check.
SLICE_RATIO = 3.0
#: Slices with fewer forecast points than this are shown, not judged.
MIN_SLICE_POINTS = 50
PROMOTIONS_LEDGER = "promotions/{name}"


@dataclass(frozen=True)
class Check:
    """One check of a card: ``status`` is ``pass``, ``fail`` or ``skip``."""

    name: str
    status: str
    detail: str

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


@dataclass
class ModelCard:
    name: str
    version: int
    aliases: list[str]
    created_at: float
    created_by: str
    intended_use: str
    signature: dict[str, Any]
    lineage: dict[str, Any]
    training: dict[str, Any]
    metrics: dict[str, Any]
    slices: dict[str, list[dict[str, Any]]]
    explanation: dict[str, Any] | None
    drift: list[dict[str, Any]]
    ledgers: list[dict[str, Any]]
    limits: list[str]
    checks: list[Check]
    generated_at: float = field(default_factory=time.time)
    plots: dict[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def passed(self) -> bool:
        """No check failed (skipped ones do not count)."""
        return not any(c.failed for c in self.checks)

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if c.failed]

    def to_json(self) -> dict[str, Any]:
        return {"model": self.name, "version": self.version, "ref": self.ref,
                "aliases": self.aliases, "created_at": self.created_at,
                "created_by": self.created_by, "intended_use": self.intended_use,
                "signature": self.signature, "lineage": self.lineage,
                "training": self.training, "metrics": self.metrics, "slices": self.slices,
                "explanation": self.explanation, "drift": self.drift,
                "ledgers": self.ledgers, "limits": self.limits,
                "checks": [c.to_json() for c in self.checks], "passed": self.passed,
                "plots": sorted(f"{n}.png" for n in self.plots),
                "generated_at": self.generated_at}

    # -- Markdown ------------------------------------------------------------------------
    def to_markdown(self, plot_link: str | None = "{name}.png") -> str:
        """The card as Markdown; each plot is linked as ``plot_link`` with its name filled
        in (None: no plot links)."""
        lines = [f"# Model card: {self.ref}", ""]
        status = "all checks pass" if self.passed else \
            f"{len(self.failed_checks)} check(s) FAILED"
        aliases = ", ".join(self.aliases) or "none"
        lines += [f"Aliases: {aliases} · registered {_iso(self.created_at)} by "
                  f"{self.created_by} · {status}", ""]
        lines += ["## Intended use", "", self.intended_use, ""]
        lines += ["## Data lineage and time ranges", ""]
        lin = self.lineage
        if lin.get("run_id"):
            lines.append(f"Registered by run `{lin['run_id']}`, step `{lin.get('step')}` "
                         f"(workflow `{lin.get('workflow')}`).")
            lines.append("")
        rows = [[s["step"], s["op"], str(s.get("rows", "")), s.get("start") or "",
                 s.get("end") or "", (s.get("digest") or "")[:12]]
                for s in lin.get("sources", []) + lin.get("evaluation", [])]
        if rows:
            lines += _md_table(["data", "op", "rows", "from", "to", "artifact"], rows)
        else:
            lines.append("No lineage recorded (registered outside a workflow run).")
        lines.append("")
        lines += ["## Training configuration and code version", ""]
        train = self.training
        if train.get("step"):
            config = ", ".join(f"{k}={v}" for k, v in sorted(train.get("config", {}).items()))
            lines.append(f"Step `{train['step']}` (`{train.get('op')}`): {config or '-'}")
        if train.get("params"):
            params = ", ".join(f"{k}={v}" for k, v in sorted(train["params"].items()))
            lines.append(f"Run parameters: {params}")
        lines.append(f"Code: {train.get('code', 'unknown')}")
        lines.append("")
        scored = "the scored table" if self.signature.get("task") == "detect" else "the test split"
        lines += [f"## Metrics on {scored}", ""]
        metric_rows = [[k, _fmt(v)] for k, v in self.metrics.items()
                       if isinstance(v, int | float) and not isinstance(v, bool)]
        lines += _md_table(["metric", "value"], metric_rows) if metric_rows else \
            ["No metrics recorded."]
        lines.append("")
        for title, rows_ in self.slices.items():
            lines += [f"### Per {title.replace('_', ' ')}", ""]
            shown = rows_
            if len(rows_) > 8:  # one page: the three worst and the three best
                ranked = sorted(rows_, key=lambda r: -r["ratio"])
                shown = ranked[:3] + ranked[-3:]
                lines += [f"{len(rows_)} slices; the three worst and the three best (all in "
                          "the JSON card and the plot):", ""]
            lines += _md_table(["slice", "points", "mse", "mae", "vs the rest"],
                               [[str(r["slice"]), str(r["points"]), _fmt(r["mse"]),
                                 _fmt(r["mae"]), f"{r['ratio']:.2f}x"] for r in shown])
            if plot_link is not None and title in self.plots:
                lines += ["", f"![{title}]({plot_link.format(name=title)})"]
            lines.append("")
        if self.explanation:
            lines += ["## Explanation summary", ""]
            top = self.explanation.get("channels", {})
            if top:
                lines.append("Mean absolute attribution by input channel: " + ", ".join(
                    f"{k} {_fmt(v)}" for k, v in top.items()))
            bands = self.explanation.get("lag_bands", {})
            if bands:
                lines.append("By lag band: " + ", ".join(f"{k} {_fmt(v)}"
                                                          for k, v in bands.items()))
            lines.append("")
        lines += ["## Drift history", ""]
        if self.drift:
            lines += _md_table(["detected", "version", "detector", "confidence", "drift point"],
                               [[_iso(e["detected_at"]), str(e["version"]), e["detector"],
                                 _fmt(e["confidence"]), _iso(e["drift_point"])]
                                for e in self.drift[-10:]])
            if plot_link is not None and "drift" in self.plots:
                lines += ["", f"![drift]({plot_link.format(name='drift')})"]
        else:
            lines.append("No drift events recorded.")
        lines.append("")
        lines += ["## Ledger", ""]
        if self.ledgers:
            lines += _md_table(["ledger", "entries", "head", "signature", "key", "verified"],
                               [[g["ledger"], str(g["entries"]), g["head_hash"][:16],
                                 g["signature"][:16] + "…", g["key_id"],
                                 "yes" if g["verified"] else f"NO: {g.get('problem')}"]
                                for g in self.ledgers])
            for ledger in self.ledgers:
                promotion = ledger.get("promotion")
                if promotion:
                    lines += ["", f"Promoted {_iso(promotion['at'])} by {promotion['actor']} "
                              f"(entry {promotion['seq']} of {ledger['ledger']}, "
                              f"{promotion['hash'][:12]}): {promotion['reason']}"]
        else:
            lines.append("No ledger entries for this version.")
        lines.append("")
        lines += ["## Known limits", ""] + [f"- {limit}" for limit in self.limits] + [""]
        lines += ["## Checks", ""]
        lines += _md_table(["check", "result", "detail"],
                           [[c.name, c.status.upper(), c.detail] for c in self.checks])
        lines += ["", f"_Generated {_iso(self.generated_at)} by AMML from the store; not "
                      "edited by hand._", ""]
        return "\n".join(lines)

    # -- HTML ----------------------------------------------------------------------------
    def to_html(self) -> str:
        """One self-contained page: the Markdown's content, plots inlined as data URLs."""
        body: list[str] = []
        in_table = False
        for line in self.to_markdown(plot_link=None).splitlines():
            if line.startswith("|"):
                cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
                if set("".join(cells)) <= set("-: "):
                    continue
                if not in_table:
                    body.append("<table>")
                    in_table = True
                    body.append("<tr>" + "".join(f"<th>{c}</th>" for c in cells) + "</tr>")
                    continue
                body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
                continue
            if in_table:
                body.append("</table>")
                in_table = False
            if line.startswith("### "):
                title = line[4:]
                body.append(f"<h3>{html.escape(title)}</h3>")
            elif line.startswith("## "):
                body.append(f"<h2>{html.escape(line[3:])}</h2>")
                key = {"Drift history": "drift"}.get(line[3:])
                if key:
                    body.append(self._img(key))
            elif line.startswith("# "):
                body.append(f"<h1>{html.escape(line[2:])}</h1>")
            elif line.startswith("- "):
                body.append(f"<li>{html.escape(line[2:])}</li>")
            elif line:
                body.append(f"<p>{html.escape(line)}</p>")
        if in_table:
            body.append("</table>")
        for name in self.slices:  # the slice plots after the card's text
            body.append(self._img(name))
        style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}"
                 "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
                 "img{max-width:100%}")
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>Model card "
                f"{html.escape(self.ref)}</title><style>{style}</style></head><body>"
                + "\n".join(body) + "</body></html>")

    def _img(self, name: str) -> str:
        if name not in self.plots:
            return ""
        data = base64.b64encode(self.plots[name]).decode()
        return f"<img alt='{html.escape(name)}' src='data:image/png;base64,{data}'>"


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows])


def _iso(stamp: float | None) -> str:
    if stamp is None or not math.isfinite(stamp):
        return ""
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# -- building -------------------------------------------------------------------------------
def build_card(store: Store, reference: str, *, max_windows: int = 2000,
               plots: bool = True) -> ModelCard:
    """The card of ``reference`` (``NAME``, ``NAME@VERSION``, ``NAME@ALIAS``)."""
    registry = ModelRegistry(store)
    version = registry.resolve(reference)
    model = registry.load(version)
    lineage, run, ir = _lineage(store, version)
    training = _training(store, version, run, ir)
    metrics = {k: v for k, v in flatten_metrics(version.metrics).items()
               if isinstance(v, int | float) and not isinstance(v, bool)
               and k not in ("lookback", "horizon")}
    evaluation = _evaluation_data(store, version)
    slices, overall, naive = ({}, None, None)
    if evaluation is not None and not _is_detector(version):
        slices, overall, naive = _slices(model, evaluation, max_windows)
    drift = [e for e in DriftRecords(store).events(version.name)]
    ledgers = _ledgers(store, version, training.get("step"))
    card = ModelCard(
        name=version.name, version=version.version, aliases=list(version.aliases),
        created_at=version.created_at, created_by=version.created_by,
        intended_use=_intended_use(version), signature=_public_signature(version.signature),
        lineage=lineage, training=training, metrics=metrics, slices=slices,
        explanation=_explanation(store, version, run, ir), drift=drift, ledgers=ledgers,
        limits=[], checks=[])
    card.limits = _limits(version, card, evaluation)
    card.checks = _checks(version, card, overall, naive)
    if plots:
        card.plots = _plots(card, store)
    return card


def _is_detector(version: ModelVersion) -> bool:
    """A fitted anomaly detector (the ``register`` op's ``task: detect`` signature)."""
    return (version.signature or {}).get("task") == "detect"


def _intended_use(version: ModelVersion) -> str:
    sig = version.signature or {}
    columns = ", ".join(sig.get("columns") or []) or "?"
    if _is_detector(version):
        freq = f"frequency {sig['freq']}" if sig.get("freq") else "an unrecorded frequency"
        text = (f"Scores each row of {columns} (sampled at {freq}) for anomalies with a fitted "
                f"{sig.get('detector') or '?'} detector, from the last {sig.get('lookback', '?')} "
                f"rows; a score of 0.5 is the threshold frozen on its reference period. An "
                f"alarm names the column behind it with a detect step's `explain: true` or "
                f"the server's `/detect?explain=true`.")
        return text + (f" {version.description}" if version.description else "")
    outputs = ", ".join(sig.get("outputs") or []) or "?"
    freq = f"frequency {sig['freq']}" if sig.get("freq") else "an unrecorded frequency"
    text = (f"Forecasts the next {sig.get('horizon', '?')} steps of {outputs} from the last "
            f"{sig.get('lookback', '?')} rows of {columns}, sampled at {freq} "
            f"(model kind {sig.get('model_kind') or '?'}).")
    if sig.get("scaler"):
        text += " Inputs and outputs are in original units; the served model applies the " \
                "training scaler."
    if version.description:
        text += f" {version.description}"
    return text


def _public_signature(signature: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in (signature or {}).items() if k != "scaler"}


def _lineage(store: Store, version: ModelVersion
             ) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any]]:
    meta = store.metadata
    found: dict[str, Any] = {"run_id": version.run_id, "step": version.step_name,
                             "sources": [], "evaluation": []}
    if not version.run_id:
        return found, None, {}
    try:
        run = meta.get_run(version.run_id)
    except AMMLError:
        return found, None, {}
    found["workflow"] = run.get("workflow")
    ir = json.loads(run.get("ir_json") or "{}")
    steps = ir.get("steps", {})
    sources = [name for name, step in steps.items() if str(step.get("op", "")).startswith(
        "source.")]
    edges = meta.edges_for_steps([(version.run_id, s) for s in sources])
    for name in sources:
        outs = [e for e in edges if e["step_name"] == name and e["direction"] == "out"]
        for edge in outs[:1]:
            found["sources"].append({"step": name, "op": steps[name]["op"],
                                     **_table_range(store, edge["artifact_digest"])})
    if version.step_name:
        for edge in meta.edges_for_steps([(version.run_id, version.step_name)]):
            if edge["direction"] == "in" and edge["port"] == "data":
                found["evaluation"].append({"step": f"{version.step_name}.data",
                                            "op": ("scored table" if _is_detector(version)
                                                   else "test split"),
                                            **_table_range(store, edge["artifact_digest"])})
    return found, run, ir


def _load(store: Store, digest: str) -> Any:
    from amml.store.artifacts import ArtifactRef

    info = store.metadata.artifact_info([digest]).get(digest)
    if info is None or int(info["size"]) > 200_000_000:
        return None
    return store.artifacts.load(ArtifactRef(digest, info["type"], int(info["size"])))


def _table_range(store: Store, digest: str) -> dict[str, Any]:
    found: dict[str, Any] = {"digest": digest}
    try:
        table = _load(store, digest)
    except AMMLError:
        return found
    import pandas as pd

    if isinstance(table, pd.DataFrame):
        found["rows"] = len(table)
        if isinstance(table.index, pd.DatetimeIndex) and len(table):
            found["start"] = str(table.index.min())
            found["end"] = str(table.index.max())
    return found


def _training(store: Store, version: ModelVersion, run: dict[str, Any] | None,
              ir: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {"code": version.code_version.describe()}
    if run is None:
        return found
    found["params"] = store.metadata.run_params(run["id"])
    steps = ir.get("steps", {})
    register = steps.get(version.step_name or "", {})
    model_ref = (register.get("inputs") or {}).get("model")
    if isinstance(model_ref, str):
        name = model_ref.split(".")[0]
        step = steps.get(name, {})
        found.update(step=name, op=step.get("op"), config=_resolved(step.get("with") or {},
                                                                    found["params"]))
    return found


def _resolved(config: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """``${params.x}`` placeholders shown with the value the run used."""
    out = {}
    for key, value in config.items():
        if isinstance(value, str):
            match = re.fullmatch(r"\$\{params\.(\w+)\}", value)
            if match and match.group(1) in params:
                value = params[match.group(1)]
        out[key] = value
    return out


def _evaluation_data(store: Store, version: ModelVersion) -> Any:
    if not version.run_id or not version.step_name:
        return None
    for edge in store.metadata.edges_for_steps([(version.run_id, version.step_name)]):
        if edge["direction"] == "in" and edge["port"] == "data":
            try:
                return _load(store, edge["artifact_digest"])
            except AMMLError:
                return None
    return None


def _windows(model: Any, table: Any, max_windows: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Any]]:
    """Forecasts, targets and last inputs of strided windows of ``table``, with the
    forecast times (a list of index slices)."""
    from numpy.lib.stride_tricks import sliding_window_view

    lookback, horizon = int(model.lookback), int(model.horizon)
    columns, outputs = list(model.columns), list(model.outputs)
    values = table[columns].to_numpy(np.float64)
    targets = table[outputs].to_numpy(np.float64)
    count = len(table) - lookback - horizon + 1
    if count < 1:
        return (np.empty((0, horizon, len(outputs))),) * 2 + (np.empty((0, len(outputs))),
                                                             [])
    stride = max(1, math.ceil(count / max_windows))
    x = sliding_window_view(values[: len(values) - horizon], lookback, axis=0)
    x = x.transpose(0, 2, 1)[::stride]
    y = sliding_window_view(targets[lookback:], horizon, axis=0).transpose(0, 2, 1)[::stride]
    pred = np.asarray(model.predict_windows(x.astype(np.float32)), dtype=np.float64)
    last = np.stack([x[:, -1, columns.index(o)] if o in columns else
                     np.full(len(x), np.nan) for o in outputs], axis=1)
    starts = range(lookback, lookback + count, stride)
    times = [table.index[s:s + horizon] for s in starts][: len(x)]
    return pred, y, last, times


def _slices(model: Any, table: Any, max_windows: int
            ) -> tuple[dict[str, list[dict[str, Any]]], float | None, float | None]:
    """Per-slice errors (hour of day, and each station/device column), the overall MSE and a
    naive forecast's (repeat the last value) on the same windows."""
    import pandas as pd

    if not isinstance(table, pd.DataFrame) or not len(table):
        return {}, None, None
    slice_columns = [c for c in table.columns if SLICE_COLUMN.search(str(c))
                     and c not in set(model.columns) | set(model.outputs)]
    groups = ([(None, table)] if not slice_columns else
              list(table.groupby(slice_columns[0], sort=True)))
    errors, naive_errors, hours, labels = [], [], [], []
    for label, part in groups:
        pred, y, last, times = _windows(model, part, max(1, max_windows // len(groups)))
        if not len(pred):
            continue
        error = (pred - y) ** 2
        errors.append(error.mean(axis=2).ravel())
        naive_errors.append(((last[:, None, :] - y) ** 2).mean(axis=2).ravel())
        if isinstance(part.index, pd.DatetimeIndex):
            hours.append(np.concatenate([np.asarray(t.hour) for t in times]))
        labels.append(np.full(error.shape[0] * error.shape[1], str(label), dtype=object))
    if not errors:
        return {}, None, None
    squared = np.concatenate(errors)
    overall = float(squared.mean())
    naive_all = np.concatenate(naive_errors)
    naive = float(naive_all.mean()) if np.isfinite(naive_all).all() else None
    found: dict[str, list[dict[str, Any]]] = {}
    if hours:
        found["hour_of_day"] = _group(squared, np.concatenate(hours))
    if slice_columns:
        found[str(slice_columns[0])] = _group(squared, np.concatenate(labels))
    return found, overall, naive


def _group(squared: np.ndarray, keys: np.ndarray) -> list[dict[str, Any]]:
    """Per key: points, MSE, MAE and ``ratio``, the slice's MSE over that of all the other
    slices' points (with two stations, one twice as bad as the other reads 2, not 1.33)."""
    rows = []
    total, count = float(squared.sum()), len(squared)
    for key in sorted(set(keys.tolist())):
        chosen = squared[keys == key]
        mse = float(chosen.mean())
        rest_n = count - len(chosen)
        rest = (total - float(chosen.sum())) / rest_n if rest_n else mse
        rows.append({"slice": key if not isinstance(key, np.generic) else key.item(),
                     "points": len(chosen), "mse": mse,
                     "mae": float(np.sqrt(chosen).mean()),
                     "ratio": mse / rest if rest > 0 else 1.0})
    return rows


def _explanation(store: Store, version: ModelVersion, run: dict[str, Any] | None,
                 ir: dict[str, Any]) -> dict[str, Any] | None:
    if run is None:
        return None
    explained = [n for n, s in ir.get("steps", {}).items() if s.get("op") == "explain"]
    if not explained:
        return None
    edges = store.metadata.edges_for_steps([(run["id"], explained[0])])
    for edge in edges:
        if edge["direction"] == "out" and edge["port"] == "attributions":
            try:
                data = _load(store, edge["artifact_digest"])
            except AMMLError:
                return None
            return _summarise_attributions(data)
    return None


def _summarise_attributions(data: Any) -> dict[str, Any] | None:
    """Mean absolute attribution per channel and lag band over the explained windows."""
    if not isinstance(data, dict):
        return None
    items = data.get("explanations") or data.get("windows") or []
    channels: dict[str, list[float]] = {}
    bands: dict[str, list[float]] = {}
    for item in items if isinstance(items, list) else []:
        for key, target in (("channels", channels), ("by_channel", channels),
                            ("lag_bands", bands), ("by_lag_band", bands)):
            values = item.get(key) if isinstance(item, dict) else None
            if isinstance(values, dict):
                for name, value in values.items():
                    if isinstance(value, int | float):
                        target.setdefault(str(name), []).append(abs(float(value)))
    if not channels and not bands:
        return {"method": data.get("method"), "windows": len(items)}
    return {"method": data.get("method"), "windows": len(items),
            "channels": {k: float(np.mean(v)) for k, v in channels.items()},
            "lag_bands": {k: float(np.mean(v)) for k, v in bands.items()}}


def _ledgers(store: Store, version: ModelVersion, train_step: str | None
             ) -> list[dict[str, Any]]:
    names = []
    if version.run_id and train_step:
        names.append(f"{version.run_id}/{train_step}")
    names.append(PROMOTIONS_LEDGER.format(name=version.name))
    found = []
    for name in names:
        ledger = Ledger(store, name)
        head = ledger.head()
        if head is None:
            continue
        try:
            report = ledger.verify(check_checkpoints=False)
            verified, problem = report.ok, report.problem
        except AMMLError as exc:
            verified, problem = False, str(exc)
        item = {"ledger": name, "entries": head.seq + 1, "head_seq": head.seq,
                 "head_hash": head.entry_hash, "signature": head.signature,
                 "key_id": head.key_id, "verified": verified, "problem": problem}
        if name.startswith("promotions/"):  # this version's promotion, and why
            mine = [e for e in ledger.entries() if e.kind == "promotion"
                    and (e.body.get("extra") or {}).get("to_version") == version.version]
            if mine:
                extra = mine[-1].body["extra"]
                item["promotion"] = {"seq": mine[-1].seq, "hash": mine[-1].entry_hash,
                                     "at": mine[-1].created_at, "actor": extra.get("actor"),
                                     "from_version": extra.get("from_version"),
                                     "reason": extra.get("reason")}
        found.append(item)
    return found


def _limits(version: ModelVersion, card: ModelCard, evaluation: Any) -> list[str]:
    sig = version.signature or {}
    if _is_detector(version):
        limits = [f"Scores exactly the columns {', '.join(sig.get('columns') or []) or '?'} "
                  f"(by name). Model and threshold were frozen on the reference period: a new "
                  f"normal (a changed process, a recalibrated sensor) alarms until the detector "
                  f"is fitted again."]
    else:
        limits = [f"Forecasts exactly {sig.get('horizon', '?')} steps from exactly "
                  f"{sig.get('lookback', '?')} rows; other shapes are refused."]
    ranges = [s for s in card.lineage.get("sources", []) if s.get("start")]
    if ranges:
        start = min(s["start"] for s in ranges)
        end = max(s["end"] for s in ranges)
        limits.append(f"Trained on data from {start} to {end}; behaviour outside the "
                      "range of values seen then is unknown.")
    if evaluation is None and not _is_detector(version):
        limits.append("No test data was registered with the version: per-slice errors "
                      "could not be computed.")
    for title, rows in card.slices.items():
        judged = [r for r in rows if r["points"] >= MIN_SLICE_POINTS]
        if judged:
            worst = max(judged, key=lambda r: r["ratio"])
            if worst["ratio"] > 1.2:
                limits.append(f"Least accurate {title.replace('_', ' ')}: {worst['slice']} "
                              f"(MSE {worst['ratio']:.2f}x the other slices').")
    own = [e for e in card.drift if e["version"] == version.version]
    if own:
        limits.append(f"{len(own)} drift event(s) recorded while this version served; the "
                      f"last on {_iso(own[-1]['detected_at'])}.")
    limits.append(("Alarms are calibrated scores, not certainties" if _is_detector(version)
                   else "Point forecasts without uncertainty")
                  + "; not for safety-critical decisions without a human in the loop.")
    return limits


def _checks(version: ModelVersion, card: ModelCard, overall: float | None,
            naive: float | None) -> list[Check]:
    sig = version.signature or {}
    checks: list[Check] = []
    if _is_detector(version):
        return _detector_checks(version, card)
    missing = [k for k in ("lookback", "horizon", "columns", "outputs") if not sig.get(k)]
    checks.append(Check("signature complete", "fail" if missing else "pass",
                        f"missing {', '.join(missing)}" if missing else
                        "lookback, horizon, columns and outputs recorded"))
    finite = {k: v for k, v in card.metrics.items() if k in ("mse", "mae")}
    bad = [k for k, v in finite.items() if not math.isfinite(v)]
    if not finite:
        checks.append(Check("test metrics recorded", "fail", "no mse or mae recorded"))
    else:
        checks.append(Check("test metrics recorded", "fail" if bad else "pass",
                            f"not finite: {', '.join(bad)}" if bad else
                            ", ".join(f"{k} {_fmt(v)}" for k, v in finite.items())))
    checks.append(_lineage_check(version, card))
    if overall is None:
        checks.append(Check("beats a naive forecast", "skip", "no test data registered"))
    elif naive is None:
        checks.append(Check("beats a naive forecast", "skip",
                            "outputs are not inputs: no naive forecast"))
    else:
        beats = overall <= naive
        checks.append(Check("beats a naive forecast", "pass" if beats else "fail",
                            f"test MSE {_fmt(overall)} {'<=' if beats else '>'} naive "
                            f"{_fmt(naive)} (repeat the last value)"))
    for title, rows in card.slices.items():
        judged = [r for r in rows if r["points"] >= MIN_SLICE_POINTS]
        worse = [r for r in judged if r["ratio"] > SLICE_RATIO]
        checks.append(Check(f"no {title.replace('_', ' ')} slice far worse",
                            "fail" if worse else "pass" if judged else "skip",
                            (f"{', '.join(str(r['slice']) for r in worse)} over "
                             f"{SLICE_RATIO:g}x the other slices' MSE") if worse else
                            f"every slice within {SLICE_RATIO:g}x the other slices' MSE"
                            if judged else "too few points per slice"))
    return checks + _ledger_checks(card)


def _detector_checks(version: ModelVersion, card: ModelCard) -> list[Check]:
    """A fitted detector's checks: what it scores, how it did on labelled rows, where it came
    from (no forecast to compare with a naive one)."""
    sig = version.signature or {}
    missing = [k for k in ("detector", "lookback", "columns") if not sig.get(k)]
    checks = [Check("signature complete", "fail" if missing else "pass",
                    f"missing {', '.join(missing)}" if missing else
                    "detector, lookback and columns recorded")]
    # the detect report's metrics, registered whole or as its 'metrics' section
    found = {k: v for k, v in card.metrics.items()
             if k.rsplit(".", 1)[-1] in ("precision", "recall", "f1")}
    bad = [k for k, v in found.items() if not math.isfinite(v)]
    checks.append(Check("detection metrics recorded", "fail" if bad or not found else "pass",
                        f"not finite: {', '.join(bad)}" if bad else
                        ", ".join(f"{k} {_fmt(v)}" for k, v in found.items()) if found else
                        "no precision, recall or f1 recorded (register the detect step's "
                        "report metrics, with a label column)"))
    checks.append(_lineage_check(version, card))
    return checks + _ledger_checks(card)


def _lineage_check(version: ModelVersion, card: ModelCard) -> Check:
    return Check("lineage recorded", "pass" if card.lineage.get("workflow") else "fail",
                 f"run {version.run_id}, step {version.step_name}"
                 if card.lineage.get("workflow") else "not registered by a recorded run")


def _ledger_checks(card: ModelCard) -> list[Check]:
    return [Check(f"ledger {ledger['ledger']} verifies", "pass" if ledger["verified"] else "fail",
                  f"{ledger['entries']} entries, head {ledger['head_hash'][:12]}"
                  if ledger["verified"] else str(ledger["problem"]))
            for ledger in card.ledgers]


def _plots(card: ModelCard, store: Store) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    plots: dict[str, bytes] = {}
    for title, rows in card.slices.items():
        figure = Figure(figsize=(7, 2.6), dpi=90)
        axis = figure.subplots()
        names = [str(r["slice"]) for r in rows]
        axis.bar(names, [r["mse"] for r in rows], color="#4477aa")
        overall = card.metrics.get("mse")
        axis.axhline(sum(r["mse"] * r["points"] for r in rows)
                     / max(1, sum(r["points"] for r in rows)), color="#cc3311", lw=1,
                     label="overall")
        axis.set_title(f"{card.ref}: test MSE per {title.replace('_', ' ')}"
                       + (f" (recorded mse {overall:.4g})" if isinstance(overall, float)
                          else ""), fontsize=9)
        axis.tick_params(labelsize=7)
        axis.legend(fontsize=7)
        figure.tight_layout()
        plots[title] = _png(figure)
    scores = DriftRecords(store).scores(card.name)
    if scores:
        figure = Figure(figsize=(7, 2.6), dpi=90)
        axis = figure.subplots()
        for detector in sorted({s["detector"] for s in scores}):
            chosen = [s for s in scores if s["detector"] == detector]
            axis.plot([datetime.fromtimestamp(s["at"], UTC) for s in chosen],
                      [s["score"] / s["threshold"] if s["threshold"] else s["score"]
                       for s in chosen], lw=1, label=detector)
        axis.axhline(1.0, color="#cc3311", lw=1, ls="--")
        for event in card.drift:
            axis.axvline(datetime.fromtimestamp(event["detected_at"], UTC), color="#999",
                         lw=0.8)
        axis.set_title(f"{card.name}: drift score / threshold", fontsize=9)
        axis.tick_params(labelsize=7)
        axis.legend(fontsize=7)
        figure.tight_layout()
        plots["drift"] = _png(figure)
    return plots


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
