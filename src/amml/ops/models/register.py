"""``register``: put a trained model into the model registry as the next version of a name.

The version points at the model artifact the workflow already stored (by digest: no second
copy; safetensors + JSON, never pickle) and records where it came from (this run and step;
``amml lineage RUN:STEP`` walks back to the data), its evaluation metrics and a signature for
time series: frequency, lookback, horizon, input and output columns, the scaler and the kind
of model. Aliases given in the config are set once the version exists::

    registered:
      op: register
      inputs: {model: model, metrics: evaluation.metrics, scaler: train_scaled.scaler,
               data: test_scaled}
      with: {name: oil-temperature, aliases: [challenger]}

A fitted anomaly detector (a ``detect`` step's ``detector`` output) registers the same way;
its signature says what it scores: ``task: detect``, the detector, its columns, the rows one
score needs (``lookback``) and the frequency. A ``detect`` step then scores with it by name
(``model: pump@champion``).

The step is cached like any other: running the workflow again with the same model registers
nothing new; a new model (new data, new parameters) becomes the next version. A step that runs
again with the very model the name's newest version holds (same artifact, metrics, signature
and description: only something beside the model changed) registers nothing new either, and
says so (``new: false``); its aliases are set as configured.
"""

from __future__ import annotations

import json
import math
import numbers
import warnings
from typing import Annotated, Any

from pydantic import Field

from amml._exceptions import OpError, RegistryError
from amml._lazy import pandas as pd
from amml.lang.spec import Input
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.models.contract import ForecastModel
from amml.ops.registry import register
from amml.ops.transforms.scaling import Scaler
from amml.store.model_names import ALIAS, NAME

AliasName = Annotated[str, Field(pattern=ALIAS.pattern)]


@register
class Register(Op):
    """Register ``model`` (with its metrics, scaler and the data's frequency) in the registry."""

    name = "register"
    inputs = {"model": Input("model"), "metrics": Input("json", required=False),
              "scaler": Input("json", required=False), "data": Input("table", required=False)}
    outputs = {"out": "json"}

    class Config(OpConfig):
        name: str = Field(pattern=NAME.pattern, description="the model's registry name")
        aliases: list[AliasName] = Field(
            default_factory=list, description="aliases to point at the new version "
                                              "(e.g. challenger)")
        description: str = ""
        force: bool = Field(False, description="move the aliases even when the new version "
                                               "answers another question (another signature)")
        freq: str | None = Field(None, description="the series frequency (default: inferred "
                                                   "from the 'data' input)")

    def run(self, ctx: StepContext, model: Any, metrics: dict[str, Any] | None = None,
            scaler: dict[str, Any] | None = None,
            data: pd.DataFrame | None = None) -> dict[str, Any]:
        c = self.config
        registry = ctx.model_registry()
        if registry is None:
            raise OpError("register needs the model registry: run the workflow with a store "
                          "(amml run, or run_workflow(..., store=open_store()))")
        signature = model_signature(model, scaler=scaler, data=data, freq=c.freq)
        digest = ctx.input_digests.get("model")
        numbers_ = numeric_metrics(metrics or {})
        try:
            version = _unchanged_latest(registry, c, digest, numbers_, signature)
            new = version is None
            if version is None:
                version = registry.register(
                    c.name, digest if isinstance(digest, str) else model,
                    metrics=numbers_, signature=signature,
                    run_id=ctx.run_id or None, step_name=ctx.step_name or None,
                    description=c.description)
            reason = (f"{'registered' if new else 'found unchanged'} by "
                      f"{ctx.run_id}/{ctx.step_name}")
            for alias in c.aliases:
                # whoever follows an alias (a server, a client) must keep getting answers to
                # the same question; 'challenger' is the try-out slot every run moves
                registry.set_alias(c.name, alias, version.version, reason=reason,
                                   same_signature=alias != "challenger" and not c.force)
        except RegistryError as exc:
            raise OpError(f"register: {exc}") from None
        ctx.log_metric("version", version.version)
        return {"name": version.name, "version": version.version, "ref": version.ref, "new": new,
                "aliases": list(c.aliases), "artifact": version.artifact_digest,
                "run_id": version.run_id, "step": version.step_name,
                "signature": signature, "metrics": version.metrics,
                "inputs": dict(sorted(ctx.input_digests.items()))}


def _unchanged_latest(registry: Any, c: Register.Config, digest: Any,
                      metrics: dict[str, float], signature: dict[str, Any]) -> Any:
    """The name's newest version when it is this very model (same artifact), with the same
    metrics, signature and description: a step that runs again only because something beside
    the model changed (a report's wording, say) then registers nothing new."""
    latest = registry.latest_version(c.name) if isinstance(digest, str) else None
    if latest is None:
        return None
    version = registry.get(c.name, latest)

    def same(a: Any, b: Any) -> bool:  # as stored: JSON
        return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)

    if (version.artifact_digest == digest and same(version.metrics, metrics)
            and same(version.signature, signature) and version.description == c.description):
        return version
    return None


def model_signature(model: Any, *, scaler: dict[str, Any] | None = None,
                    data: pd.DataFrame | None = None, freq: str | None = None) -> dict[str, Any]:
    """What a caller must send and gets back: frequency, lookback, horizon, columns, outputs,
    the scaler of those columns and the model kind.

    >>> from amml.ops.models.forecaster import Forecaster
    >>> sig = model_signature(Forecaster("naive", 24, 6),
    ...                       data=pd.DataFrame(index=pd.date_range("2024", periods=5, freq="h")))
    >>> sig["freq"], sig["lookback"], sig["horizon"], sig["model_kind"]
    ('h', 24, 6, 'naive')
    """
    from amml.ops.detectors.fitted import FittedDetector

    frequency = freq or (infer_frequency(data) if data is not None else None)
    if isinstance(model, FittedDetector) and model.fitted_:
        width = len(model.center_)
        return {"task": "detect", "freq": frequency, "lookback": model.context + 1,
                "columns": list(model.columns_ or [f"c{i}" for i in range(width)]),
                "outputs": ["score"], "model_kind": model.name, "detector": model.name}
    if not isinstance(model, ForecastModel):
        raise OpError(f"register needs a ForecastModel (a trained kind) or a fitted "
                      f"detector, got {type(model).__name__}")
    columns, outputs = list(model.columns), list(model.outputs)
    kept = None
    if scaler:
        fitted = Scaler(scaler)
        wanted = dict.fromkeys([*columns, *outputs])
        # a univariate shorthand's placeholder column ('value') names nothing in the data:
        # then the whole scaler describes what the caller sends
        kept = (fitted.subset(wanted) if fitted.covers(wanted) else fitted).to_json() or None
    return {"freq": frequency,
            "lookback": model.lookback, "horizon": model.horizon,
            "columns": columns, "outputs": outputs, "scaler": kept,
            "model_kind": model.kind}


def infer_frequency(table: pd.DataFrame) -> str | None:
    """The frequency of a table's time index (or first datetime column) as a pandas alias:
    :func:`pandas.infer_freq` when the steps are regular, else the median step; None when
    there is no time axis.

    >>> index = pd.date_range("2024-01-01", periods=6, freq="15min")
    >>> infer_frequency(pd.DataFrame({"x": range(6)}, index=index))
    '15min'
    >>> infer_frequency(pd.DataFrame({"x": range(5)}, index=index.delete(2)))  # a gap
    '15min'
    >>> infer_frequency(pd.DataFrame({"x": range(3)})) is None
    True
    """
    index = table.index
    if not isinstance(index, pd.DatetimeIndex):
        found = [c for c in table.columns if pd.api.types.is_datetime64_any_dtype(table[c])]
        if not found:
            return None
        index = pd.DatetimeIndex(table[found[0]])
    index = index.dropna().unique().sort_values()
    if len(index) < 2:
        return None
    if len(index) >= 3:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas 3 announces an offset return value
            try:
                inferred = pd.infer_freq(index)
            except (TypeError, ValueError):
                inferred = None
        if inferred is not None:
            return str(getattr(inferred, "freqstr", inferred))
    step = pd.Series(index).diff().dropna().median()
    if pd.isna(step) or step <= pd.Timedelta(0):
        return None
    return pd.tseries.frequencies.to_offset(step).freqstr


def numeric_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The finite numbers of a metrics document (nested sections kept, lists and text
    dropped: those belong to the signature).

    >>> numeric_metrics({"mse": 0.5, "windows": 10, "model": "naive", "outputs": ["OT"],
    ...                  "val": {"mse": 0.4, "bad": float("nan")}, "ok": True})
    {'mse': 0.5, 'windows': 10, 'val': {'mse': 0.4}}
    """
    kept: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            nested = numeric_metrics(value)
            if nested:
                kept[str(key)] = nested
        elif isinstance(value, bool):
            continue
        elif isinstance(value, numbers.Integral):
            kept[str(key)] = int(value)
        elif isinstance(value, numbers.Real) and math.isfinite(value):
            kept[str(key)] = float(value)
    return kept
