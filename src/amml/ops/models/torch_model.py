"""The PyTorch family's base: a network built per kind, trained by the ledgered trainer.

A :class:`TorchForecaster` holds one ``torch.nn.Module`` mapping ``(batch, lookback,
channels)`` to ``(batch, horizon, outputs)``; its tensors are the module's state dict. PyTorch
is imported when a network is built, never when this module or a kind module is imported, so
validating a workflow or listing kinds stays light.

Networks treat channels independently; for ``MS`` (all channels in, one out) they return the
channel ``target_index`` (see :func:`select_target`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from amml.ops.models.contract import ForecastModel, ModelContractError, Training


def select_target(out: Any, target_index: int | None) -> Any:
    """``(B, H, C)`` -> the target channel ``(B, H, 1)`` for MS; every channel otherwise."""
    if target_index is None:
        return out
    return out[:, :, target_index : target_index + 1]


class TorchForecaster(ForecastModel):
    """Base of the PyTorch kinds: subclasses implement :meth:`build_net`."""

    def __init__(self, lookback: int, horizon: int, columns: list[str] | None = None,
                 outputs: list[str] | None = None, options: dict[str, Any] | None = None
                 ) -> None:
        super().__init__(lookback, horizon, columns, outputs)
        self.options = dict(options or {})
        self.target_index: int | None = None
        if self.outputs != self.columns:
            if len(self.outputs) != 1:
                raise ValueError("outputs must be all the columns (S, M) or one of them (MS)")
            self.target_index = self.columns.index(self.outputs[0])
        self.net = self.build_net(len(self.columns), self.target_index)

    def build_net(self, channels: int, target_index: int | None) -> Any:  # pragma: no cover
        raise NotImplementedError

    def reset(self, seed: int) -> None:
        """Draw the initial weights again from ``seed``: they are part of what it fixes."""
        from amml.ops.models.torch_training import torch

        torch.manual_seed(seed)
        self.net = self.build_net(len(self.columns), self.target_index)

    def predict_windows(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        from amml.ops.models.torch_training import torch

        x = self.check_windows(x)
        self.net.eval()
        device = next(self.net.parameters()).device
        out = []
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                batch = torch.as_tensor(np.array(x[start : start + batch_size],
                                                 dtype=np.float32), device=device)
                out.append(self.net(batch).cpu().numpy())
        if not out:
            return np.empty((0, self.horizon, len(self.outputs)))
        return np.concatenate(out).astype(np.float64)

    def fit(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None, *, training: Training | None = None
            ) -> dict[str, float]:
        """Train the network in place (seeded, ledgered when ``training.ledger`` is given)."""
        from amml.ops.models.torch_training import TorchTrainer, restore_checkpoint, torch

        t = training or Training()
        if t.resume_checkpoint is not None:
            restore_checkpoint(t.resume_checkpoint, self.net)
        torch.manual_seed(t.seed)
        trainer = TorchTrainer(
            self.net, seed=t.seed, epochs=t.epochs, lr=t.lr, lr_schedule=t.lr_schedule,
            batch_size=t.batch_size, patience=t.patience, rollback_patience=t.rollback_patience,
            ledger=t.ledger, device=t.device, start_epoch=t.start_epoch,
            data_digest=t.data_digest, code_digest=t.code_digest,
            config_digest=t.config_digest, on_epoch=t.on_epoch, **t.extra)
        history = trainer.fit(self.check_windows(x), y,
                              None if x_val is None else self.check_windows(x_val), y_val)
        self.net.to("cpu")  # artifacts and predictions live on the CPU
        return {"best_epoch": history.best_epoch, "epochs_run": len(history.epochs),
                "best_val_loss": history.best_val_loss, "rollbacks": len(history.rollbacks)}

    def export_module(self) -> Any:
        """The network itself, on the CPU and in eval mode (dropout off)."""
        return self.net.to("cpu").eval()

    def get_tensors(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}

    def load_tensors(self, tensors: dict[str, np.ndarray]) -> None:
        from amml.ops.models.torch_training import torch

        try:
            self.net.load_state_dict({k: torch.as_tensor(np.array(v)) for k, v in
                                      tensors.items()})
        except RuntimeError as exc:  # missing, unexpected or misshapen tensors
            raise ModelContractError(f"{self.kind}: the tensors do not fit the network: "
                                     f"{exc}") from exc
