"""``train.torch``: a PyTorch forecaster trained with the ledgered training loop.

``linear`` is NLinear (subtract the window's last value, one linear layer, add it back);
``mlp`` puts a hidden layer in between. Every epoch is a signed ledger entry with its
checkpoint (see :mod:`amml.store.ledger`); ``amml ledger rollback RUN/STEP --to EPOCH``
restores any of them.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from amml.lang.spec import Input
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.models.forecaster import windows
from amml.ops.registry import register


@register
class TrainTorch(Op):
    """Train a PyTorch forecaster; each epoch is checkpointed in the step's ledger."""

    name = "train.torch"
    inputs = {"train": Input("table"), "val": Input("table", required=False)}
    outputs = {"model": "model"}

    class Config(OpConfig):
        model: Literal["linear", "mlp"] = "linear"
        target: str
        lookback: int = Field(48, ge=1)
        horizon: int = Field(24, ge=1)
        hidden: int = Field(64, ge=1)
        epochs: int = Field(20, ge=1)
        lr: float = Field(1e-3, gt=0)
        batch_size: int = Field(64, ge=1)
        seed: int = 0
        patience: int | None = Field(None, ge=1)
        rollback_patience: int | None = Field(None, ge=1)

    def run(self, ctx: StepContext, train: pd.DataFrame,
            val: pd.DataFrame | None = None) -> object:
        from amml.ops.models.torch_nets import TorchForecaster
        from amml.ops.models.torch_training import TorchTrainer, torch

        c = self.config
        torch.manual_seed(c.seed)
        model = TorchForecaster(c.model, c.lookback, c.horizon, c.hidden)
        x, y = windows(train[c.target].to_numpy(np.float64), c.lookback, c.horizon)
        vx, vy = (windows(val[c.target].to_numpy(np.float64), c.lookback, c.horizon)
                  if val is not None else (None, None))
        trainer = TorchTrainer(
            model.net, epochs=c.epochs, lr=c.lr, batch_size=c.batch_size, seed=c.seed,
            patience=c.patience, rollback_patience=c.rollback_patience, ledger=ctx.ledger(),
            config_digest=hashlib.sha256(c.model_dump_json().encode()).hexdigest(),
            on_epoch=lambda epoch, m: ctx.log_metrics(m, step=epoch))
        history = trainer.fit(x, y, vx, vy)
        ctx.log_metrics({"best_epoch": history.best_epoch,
                         "best_val_loss": history.best_val_loss,
                         "rollbacks": len(history.rollbacks)})
        return model

