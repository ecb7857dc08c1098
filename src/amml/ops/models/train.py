"""``train`` and ``evaluate``: forecasters on windows of a table, scored as the literature does.

Models are the registered kinds of :mod:`amml.ops.models.contract` (built-ins in
:mod:`amml.ops.models.kinds`): ``naive``, ``seasonal_naive`` and ``linear`` (closed-form
ridge) need nothing but numpy; ``dlinear``, ``nlinear``, ``rlinear``, ``patchtst`` and ``lstm``
train with PyTorch (seeded, early stopping on the validation table, a learning-rate schedule,
CPU or CUDA, every epoch a signed ledger entry). The op builds a kind by name and calls its
``fit``: it has no per-kind code. Settings: ``S`` (the target only), ``M`` (every feature
in, every feature out), ``MS`` (every feature in, the target out).

``evaluate`` scores every stride-1 window of the test table (none dropped), in the scaled
units the literature reports and, given the scaler, in original units; it also draws the
forecast against the actual values as a PNG artifact (in original units when the scaler is
given; otherwise its axis says the units are the model's).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from amml._exceptions import OpError
from amml._lazy import pandas as pd
from amml.lang.params import did_you_mean
from amml.lang.spec import Input
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.models.contract import (
    MODEL_KINDS,
    ForecastModel,
    Training,
    kind_names,
    make_model,
)
from amml.ops.registry import register
from amml.ops.transforms.scaling import Scaler
from amml.ops.transforms.windows import sliding_windows as make_windows

Setting = Literal["S", "M", "MS"]


def setting_columns(table: pd.DataFrame, setting: str, target: str,
                    features: list[str] | None) -> tuple[list[str], list[str]]:
    """(input columns, output columns) of a setting."""
    if target not in table.columns:
        raise OpError(f"target column '{target}' not found (columns: "
                      f"{', '.join(map(str, table.columns))})")
    if setting == "S":
        return [target], [target]
    columns = features or [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])
                           and not pd.api.types.is_bool_dtype(table[c])]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise OpError(f"feature columns {missing} not found")
    if target not in columns:
        columns = [*columns, target]
    return columns, (list(columns) if setting == "M" else [target])


@register
class Train(Op):
    """Fit a forecaster of a registered kind on ``train``; early-stop and select on ``val``."""

    name = "train"
    version = "3"
    # kinds are looked up by name, so the key must cover every kind, network and the trainer
    depends_on = ("amml.ops.models",)
    inputs = {"train": Input("table"), "val": Input("table", required=False)}
    outputs = {"model": "model"}

    class Config(OpConfig):
        model: str = Field("dlinear", description="a registered model kind (amml.models)")
        target: str
        setting: Setting = "S"
        features: list[str] | None = None
        lookback: int = Field(336, ge=1)
        horizon: int = Field(96, ge=1)
        season: int = Field(24, ge=1)
        alpha: float = Field(1e-3, ge=0)
        individual: bool = False
        options: dict[str, Any] = Field(default_factory=dict)
        epochs: int = Field(10, ge=1)
        lr: float = Field(0.005, gt=0)
        lr_schedule: Literal["constant", "halve", "cosine"] = "halve"
        batch_size: int = Field(32, ge=1)
        patience: int | None = Field(3, ge=1)
        rollback_patience: int | None = Field(None, ge=1)
        seed: int = 2021
        device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
        resume_from: str | None = Field(
            None, pattern=r"^.+@\d+$",
            description="LEDGER@SEQ: continue from that entry's checkpoint (e.g. the rollback "
                        "entry 'amml ledger rollback' printed): weights, optimizer state, "
                        "learning-rate schedule and epoch numbers carry on, in this run's own "
                        "ledger, whose first entry references LEDGER@SEQ")

        @field_validator("model")
        @classmethod
        def _known_kind(cls, value: str) -> str:
            if value not in MODEL_KINDS:
                hint = did_you_mean(value, kind_names())
                raise ValueError(f"expected one of {', '.join(map(repr, kind_names()))}, got "
                                 f"{value!r}" + (f"; {hint}" if hint else ""))
            return value

    def run(self, ctx: StepContext, train: pd.DataFrame,
            val: pd.DataFrame | None = None) -> ForecastModel:
        c = self.config
        columns, outputs = setting_columns(train, c.setting, c.target, c.features)
        x, y = make_windows(train, columns, outputs, c.lookback, c.horizon)
        vx, vy = (make_windows(val, columns, outputs, c.lookback, c.horizon)
                  if val is not None else (None, None))
        model = make_model(c.model, lookback=c.lookback, horizon=c.horizon, columns=columns,
                           outputs=outputs, season=c.season, alpha=c.alpha,
                           individual=c.individual, options=c.options)
        model.reset(c.seed)  # the initial weights are part of what the seed fixes
        metrics = model.fit(x, y, vx, vy, training=self._training(ctx))
        if metrics:
            ctx.log_metrics(metrics)
        else:  # nothing iterative to report: the fit itself
            ctx.log_metric("train_mse", float(np.mean((model.predict_windows(x) - y) ** 2)))
            if vx is not None:
                ctx.log_metric("val_mse", float(np.mean((model.predict_windows(vx) - vy) ** 2)))
        return model

    def _training(self, ctx: StepContext) -> Training:
        c = self.config
        ledger, start_epoch, checkpoint = ctx.ledger(), 0, None
        extra: dict[str, Any] = {}
        if c.resume_from:
            name, seq = c.resume_from.rsplit("@", 1)
            source = ctx.ledger(name)
            if source is None or ledger is None:
                raise OpError("resume_from needs a store with a ledger")
            checkpoint, entry = source.checkpoint_at(int(seq))
            start_epoch = (entry.epoch or 0) + 1
            # this run's epochs go to its own ledger (the source is another run's record);
            # its first entry says where it continues from
            ledger.record_resume(source, entry)
            extra["resume_checkpoint"] = checkpoint  # the optimizer and schedule too
        return Training(
            seed=c.seed, epochs=c.epochs, lr=c.lr, lr_schedule=c.lr_schedule,
            batch_size=c.batch_size, patience=c.patience, rollback_patience=c.rollback_patience,
            device=c.device, ledger=ledger, start_epoch=start_epoch,
            resume_checkpoint=checkpoint, data_digest=ctx.data_digest(),
            code_digest=ctx.code_digest or None,
            config_digest=hashlib.sha256(c.model_dump_json().encode()).hexdigest(),
            on_epoch=lambda epoch, metrics: ctx.log_metrics(metrics, step=epoch), extra=extra)


@register
class Evaluate(Op):
    """MSE and MAE over every stride-1 window of ``table`` (scaled units, and original units
    when the ``scaler`` is given), per horizon step, and a plot of forecast vs actual."""

    name = "evaluate"
    version = "3"  # 3: the plot is in original units when the scaler is given
    depends_on = ("amml.ops.models",)  # predictions run the kinds' code
    inputs = {"model": Input("model"), "table": Input("table"),
              "scaler": Input("json", required=False)}
    outputs = {"metrics": "json", "plot": "image"}

    class Config(OpConfig):
        target: str | None = Field(None, description="column to plot (default: the first "
                                                     "output)")
        plot_windows: int = Field(3, ge=1, le=12)

    def run(self, ctx: StepContext, model: ForecastModel, table: pd.DataFrame,
            scaler: dict | None = None) -> dict[str, Any]:
        if not isinstance(model, ForecastModel):
            raise OpError(f"evaluate needs a ForecastModel, got {type(model).__name__}")
        outputs = model.outputs
        x, y = make_windows(table, model.columns, outputs, model.lookback, model.horizon)
        pred = model.predict_windows(x)
        error = pred - y
        metrics: dict[str, Any] = {
            "mse": float(np.mean(error**2)), "mae": float(np.mean(np.abs(error))),
            "windows": len(x), "horizon": model.horizon, "lookback": model.lookback,
            "outputs": outputs, "model": model.kind}
        if scaler:
            unscale = Scaler(scaler)
            original = unscale.inverse(pred, outputs) - unscale.inverse(y, outputs)
            metrics["mse_original"] = float(np.mean(original**2))
            metrics["mae_original"] = float(np.mean(np.abs(original)))
        ctx.log_metrics({k: v for k, v in metrics.items() if isinstance(v, float)})
        per_step = np.mean(error**2, axis=(0, 2))
        ctx.log_batch(("mse_by_horizon", float(v), i + 1) for i, v in enumerate(per_step))
        target = self.config.target or outputs[0]
        channel = outputs.index(target) if target in outputs else 0
        plot = _plot(table, pred, y, channel, outputs[channel], model.lookback,
                     self.config.plot_windows, metrics, scaler)
        return {"metrics": metrics, "plot": plot}


@dataclass(frozen=True)
class PlotPanel:
    """One window of the evaluation plot: what is drawn, in the units ``label`` names."""

    history_index: Any
    history: np.ndarray
    times: Any
    actual: np.ndarray
    forecast: np.ndarray
    label: str


def plot_panels(table: pd.DataFrame, pred: np.ndarray, y: np.ndarray, channel: int,
                name: str, lookback: int, count: int, scaler: dict | None = None
                ) -> list[PlotPanel]:
    """The evaluation plot's windows. With the ``scaler`` the table, the actual values and
    the forecast are drawn in original units (the axis then means what it says: ``OT``);
    without it in the units the model works in, and the axis says so."""
    starts = np.linspace(0, len(pred) - 1, count).astype(int)
    history_values = table[name].to_numpy(dtype=np.float64)
    label = f"{name} (model units)"
    unscale = Scaler(scaler) if scaler and name in Scaler(scaler).columns else None
    if unscale is not None:
        history_values = unscale.inverse(history_values[:, None], [name])[:, 0]
        pred = unscale.inverse(pred[:, :, channel : channel + 1], [name])[:, :, 0]
        y = unscale.inverse(y[:, :, channel : channel + 1], [name])[:, :, 0]
        label = f"{name} (original units)"
    else:
        pred, y = pred[:, :, channel], y[:, :, channel]
    index = table.index
    return [PlotPanel(index[start : start + lookback], history_values[start : start + lookback],
                      index[lookback + start : lookback + start + pred.shape[1]],
                      y[start], pred[start], label) for start in starts]


def _plot(table: pd.DataFrame, pred: np.ndarray, y: np.ndarray, channel: int, name: str,
          lookback: int, count: int, metrics: dict[str, Any], scaler: dict | None = None
          ) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = plot_panels(table, pred, y, channel, name, lookback, count, scaler)
    figure, axes = plt.subplots(count, 1, figsize=(10, 2.6 * count), squeeze=False)
    for axis, panel in zip(axes[:, 0], panels, strict=True):
        axis.plot(panel.history_index, panel.history, color="0.6", lw=1, label="history")
        axis.plot(panel.times, panel.actual, color="black", lw=1.2, label="actual")
        axis.plot(panel.times, panel.forecast, color="tab:red", lw=1.2, label="forecast")
        axis.set_ylabel(panel.label)
        axis.legend(loc="upper left", fontsize=8)
    axes[0, 0].set_title(f"{metrics['model']}: forecast vs actual, horizon {pred.shape[1]} "
                         f"(MSE {metrics['mse']:.4f}, MAE {metrics['mae']:.4f} in model units, "
                         f"{metrics['windows']} windows)")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()
