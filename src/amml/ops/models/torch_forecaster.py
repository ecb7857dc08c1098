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

from amml._exceptions import OpError
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
        device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
        resume_from: str | None = Field(
            None, pattern=r"^.+@\d+$",
            description="LEDGER@SEQ: continue from that entry's checkpoint (e.g. the rollback "
                        "entry 'amml ledger rollback' printed), appending to that ledger")

    def run(self, ctx: StepContext, train: pd.DataFrame,
            val: pd.DataFrame | None = None) -> object:
        from amml.ops.models.torch_nets import TorchForecaster
        from amml.ops.models.torch_training import TorchTrainer, restore_checkpoint, torch

        c = self.config
        torch.manual_seed(c.seed)
        model = TorchForecaster(c.model, c.lookback, c.horizon, c.hidden)
        x, y = windows(train[c.target].to_numpy(np.float64), c.lookback, c.horizon)
        vx, vy = (windows(val[c.target].to_numpy(np.float64), c.lookback, c.horizon)
                  if val is not None else (None, None))
        ledger = ctx.ledger()
        start_epoch = 0
        checkpoint = None
        if c.resume_from:
            name, seq = c.resume_from.rsplit("@", 1)
            ledger = ctx.ledger(name)
            if ledger is None:
                raise OpError("resume_from needs a store with a ledger")
            checkpoint, entry = ledger.checkpoint_at(int(seq))
            start_epoch = (entry.epoch or 0) + 1
        trainer = TorchTrainer(
            model.net, epochs=c.epochs, lr=c.lr, batch_size=c.batch_size, seed=c.seed,
            patience=c.patience, rollback_patience=c.rollback_patience, ledger=ledger,
            config_digest=hashlib.sha256(c.model_dump_json().encode()).hexdigest(),
            data_digest=ctx.data_digest(), code_digest=ctx.code_digest or None,
            start_epoch=start_epoch, device=c.device,
            on_epoch=lambda epoch, m: ctx.log_metrics(m, step=epoch))
        if checkpoint is not None:
            restore_checkpoint(checkpoint, model.net, trainer.optimizer)
        history = trainer.fit(x, y, vx, vy)
        model.net.to("cpu")  # artifacts and predictions live on the CPU
        ctx.log_metrics({"best_epoch": history.best_epoch,
                         "best_val_loss": history.best_val_loss,
                         "rollbacks": len(history.rollbacks)})
        return model

