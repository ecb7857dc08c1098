"""A seeded PyTorch training loop that records every epoch in the ledger.

Each epoch's model and optimizer state is saved as a safetensors checkpoint and appended to a
:class:`~amml.store.ledger.Ledger` with the epoch's metrics, so any epoch can be restored
bit-exactly later. Options:

* ``patience``: stop when validation loss has not improved for that many epochs;
* ``rollback_patience``: when validation loss has not improved for that many epochs, roll back
  to the best recorded epoch, multiply the learning rate by ``rollback_lr_factor`` and go on
  (at most ``max_rollbacks`` times);
* ``restore_best``: end on the best epoch's weights (a rollback entry records it);
* ``proximal_mu``: FedProx's proximal term, ``mu/2 * ||w - w_start||^2`` added to the loss,
  which keeps a federated client's update near the global weights it started from;
* ``resume_checkpoint``: continue a training from a checkpoint (``train``'s ``resume_from``):
  weights, Adam's moments and step counts, and the learning-rate schedule (its position, its
  cosine span and the reductions of earlier rollbacks, which the checkpoint's info records)
  all carry on, and the shuffle continues where that epoch left it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from amml._exceptions import OpError

try:
    import torch
    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save
except ImportError as exc:  # pragma: no cover - torch is installed by `make`
    raise OpError("PyTorch is needed for training: pip install 'amml[torch]'") from exc


def checkpoint_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                     info: dict[str, Any] | None = None) -> bytes:
    """Model and optimizer state as safetensors bytes (deterministic for equal state)."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous()
               for k, v in model.state_dict().items()}
    meta: dict[str, Any] = {"info": info or {}}
    if optimizer is not None:
        state = optimizer.state_dict()
        scalars: dict[str, Any] = {}
        for index, values in state["state"].items():
            for key, value in values.items():
                if torch.is_tensor(value):
                    tensors[f"optim.{index}.{key}"] = value.detach().cpu().contiguous()
                else:
                    scalars[f"{index}.{key}"] = value
        meta["optimizer"] = {"param_groups": state["param_groups"], "scalars": scalars}
    # one metadata key: safetensors keeps metadata in a hash map with varying order
    return st_save(tensors, metadata={"amml": json.dumps(meta, sort_keys=True)})


def restore_checkpoint(data: bytes, model: torch.nn.Module,
                       optimizer: torch.optim.Optimizer | None = None) -> dict[str, Any]:
    """Load a checkpoint made by :func:`checkpoint_bytes`; returns its ``info``."""
    tensors = st_load(data)
    header_len = int.from_bytes(data[:8], "little")
    meta = json.loads(json.loads(data[8 : 8 + header_len])["__metadata__"]["amml"])
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    device = next(model.parameters(), torch.zeros(0)).device
    tensors = {k: v.to(device) for k, v in tensors.items()}
    if optimizer is not None and "optimizer" in meta:
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value
        for key, value in meta["optimizer"]["scalars"].items():
            index, name = key.split(".", 1)
            state.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": state,
                                   "param_groups": meta["optimizer"]["param_groups"]})
    return meta.get("info", {})


def resolve_device(device: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else the CPU. A CUDA device that is not here (no CUDA, or
    ``cuda:N`` past the GPUs there are) is an :class:`OpError` now, not a failure later."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise OpError(f"device '{device}' requested but CUDA is not available here")
        index = int(device[5:]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise OpError(f"device '{device}' requested but PyTorch sees "
                          f"{torch.cuda.device_count()} CUDA device(s) here")
    return torch.device(device)


@dataclass
class TrainHistory:
    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = math.inf
    rollbacks: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False


class TorchTrainer:
    """Mini-batch training with Adam, MSE loss, a seeded shuffle and ledger checkpoints."""

    def __init__(self, model: torch.nn.Module, *, epochs: int = 10, lr: float = 1e-3,
                 batch_size: int = 32, seed: int = 0, patience: int | None = None,
                 rollback_patience: int | None = None, rollback_lr_factor: float = 0.5,
                 max_rollbacks: int = 3, restore_best: bool = True, ledger: Any = None,
                 config_digest: str | None = None, data_digest: str | None = None,
                 code_digest: str | None = None, start_epoch: int = 0,
                 device: str = "auto", lr_schedule: str = "constant",
                 on_epoch: Callable[[int, dict[str, float]], None] | None = None,
                 resume_checkpoint: bytes | None = None, proximal_mu: float = 0.0) -> None:
        self.model, self.epochs, self.lr = model, epochs, lr
        self.proximal_mu = float(proximal_mu)
        self.batch_size, self.seed = batch_size, seed
        self.patience, self.rollback_patience = patience, rollback_patience
        self.rollback_lr_factor, self.max_rollbacks = rollback_lr_factor, max_rollbacks
        self.restore_best, self.ledger = restore_best, ledger
        self.config_digest, self.data_digest = config_digest, data_digest
        self.code_digest, self.start_epoch = code_digest, start_epoch
        if lr_schedule not in ("constant", "halve", "cosine"):
            raise OpError(f"unknown lr_schedule '{lr_schedule}' (constant, halve, cosine)")
        self.lr_schedule = lr_schedule
        self._lr_scale = 1.0  # lowered by each automatic rollback
        self.on_epoch = on_epoch
        torch.manual_seed(seed)
        self.device = resolve_device(device)
        model.to(self.device)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self._best_state: bytes | None = None
        #: epochs the cosine schedule spans; a resumed training keeps the original span
        #: (or stretches it to its own last epoch, so the rate never reaches zero)
        self._lr_span = start_epoch + epochs
        if resume_checkpoint is not None:
            info = restore_checkpoint(resume_checkpoint, model, self.optimizer)
            self._lr_scale = float(info.get("lr_scale", 1.0))
            self._lr_span = max(int(info.get("lr_span", 0)), self._lr_span)

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> float:
        self.model.eval()
        with torch.no_grad():
            total = 0.0
            for start in range(0, len(x), 1024):
                pred = self.model(x[start : start + 1024])
                total += float(((pred - y[start : start + 1024]) ** 2).sum())
        return total / max(y.numel(), 1)

    def _set_lr(self, done: int) -> None:
        """Learning rate for the epoch after ``done`` epochs (counted from the first epoch of
        the training, not of this resumed part): the schedule times the reductions of
        automatic rollbacks. ``halve`` is the DLinear reference schedule."""
        if self.lr_schedule == "halve":
            factor = 0.5**done
        elif self.lr_schedule == "cosine":
            factor = 0.5 * (1 + math.cos(math.pi * done / max(self._lr_span, 1)))
        else:
            factor = 1.0
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr * self._lr_scale * factor

    def _info(self, epoch: int) -> dict[str, Any]:
        """A checkpoint's info: its epoch, and what a resumed training needs to go on with
        the schedule where it differs from the plain case (rollback reductions; the cosine
        schedule's span), so checkpoints of plain trainings stay as they were."""
        info: dict[str, Any] = {"epoch": epoch}
        if self._lr_scale != 1.0:
            info["lr_scale"] = self._lr_scale
        if self.lr_schedule == "cosine":
            info["lr_span"] = self._lr_span
        return info

    def _restore(self, epoch: int, reason: str) -> None:
        if self.ledger is not None:
            data, _, _ = self.ledger.rollback(to_epoch=epoch, reason=reason)
        else:
            data = self._best_state or b""
        restore_checkpoint(data, self.model, self.optimizer)

    def _diverged(self, epoch: int, name: str, value: float,
                  metrics: dict[str, float] | None = None) -> None:
        """Stop training: a loss became NaN or infinite. The epoch's point is logged as it was
        (the curve shows where it went wrong) but never appended to the ledger: its weights are
        useless, and the ledger keeps every earlier epoch to restore or resume from."""
        if self.on_epoch is not None:
            self.on_epoch(epoch, metrics or {name: value,
                                             "lr": self.optimizer.param_groups[0]["lr"]})
        what = "NaN" if math.isnan(value) else "infinite"
        done = epoch - self.start_epoch
        kept = (f"; the ledger keeps epochs {self.start_epoch}..{epoch - 1}"
                if done and self.ledger is not None else "")
        raise OpError(f"training diverged: loss became {what} at epoch {epoch} ({name}="
                      f"{value}){kept}; lower lr (now {self.lr:g}) or scale the inputs "
                      "(preprocess with scale: zscore)")

    def fit(self, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> TrainHistory:
        def tensor(values: np.ndarray) -> torch.Tensor:
            # a copy: windows are read-only views, and torch wants writable memory
            return torch.as_tensor(np.array(values, dtype=np.float32), device=self.device)

        xt, yt = tensor(x_train), tensor(y_train)
        xv = tensor(x_val) if x_val is not None else xt
        yv = tensor(y_val) if y_val is not None else yt
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(self.start_epoch):  # resumed: the shuffles the earlier epochs drew
            torch.randperm(len(xt), generator=generator)
        # FedProx: the weights training starts from (the global model) anchor the update
        anchor = ([p.detach().clone() for p in self.model.parameters()]
                  if self.proximal_mu > 0 else [])
        history = TrainHistory()
        since_best = 0
        at_best = False  # whether the model now holds the best epoch's weights
        for epoch in range(self.start_epoch, self.start_epoch + self.epochs):
            self._set_lr(epoch)
            self.model.train()
            # the shuffle is drawn on the CPU: the same order on every device
            order = torch.randperm(len(xt), generator=generator).to(self.device)
            running, seen = 0.0, 0
            for start in range(0, len(xt), self.batch_size):
                batch = order[start : start + self.batch_size]
                self.optimizer.zero_grad(set_to_none=True)
                loss = torch.mean((self.model(xt[batch]) - yt[batch]) ** 2)
                value = float(loss.detach())
                if not math.isfinite(value):
                    # stop before the step: one NaN gradient turns every weight into NaN
                    self._diverged(epoch, "train_loss", value)
                if anchor:
                    loss = loss + self.proximal_mu / 2 * sum(
                        torch.sum((p - a) ** 2)
                        for p, a in zip(self.model.parameters(), anchor, strict=True))
                loss.backward()
                self.optimizer.step()
                running += value * len(batch)
                seen += len(batch)
            metrics = {"train_loss": running / max(seen, 1), "val_loss": self._loss(xv, yv),
                       "lr": self.optimizer.param_groups[0]["lr"]}
            if not math.isfinite(metrics["val_loss"]):
                self._diverged(epoch, "val_loss", metrics["val_loss"], metrics)
            history.epochs.append(metrics)
            data = checkpoint_bytes(self.model, self.optimizer, self._info(epoch))
            if self.ledger is not None:
                self.ledger.append("epoch", epoch=epoch, checkpoint=data, metrics=metrics,
                                   config_digest=self.config_digest,
                                   data_digest=self.data_digest, code_digest=self.code_digest)
            if self.on_epoch is not None:
                self.on_epoch(epoch, metrics)
            if metrics["val_loss"] < history.best_val_loss:
                history.best_val_loss, history.best_epoch = metrics["val_loss"], epoch
                self._best_state = data
                since_best, at_best = 0, True
                continue
            at_best = False
            since_best += 1
            if (self.rollback_patience is not None and since_best >= self.rollback_patience
                    and len(history.rollbacks) < self.max_rollbacks):
                self._restore(history.best_epoch, f"validation loss worse for {since_best} "
                              f"epochs; back to best epoch {history.best_epoch}")
                self._lr_scale *= self.rollback_lr_factor
                self._set_lr(epoch)
                history.rollbacks.append({"at_epoch": epoch, "to_epoch": history.best_epoch,
                                          "lr": self.optimizer.param_groups[0]["lr"]})
                since_best, at_best = 0, True
                continue
            if self.patience is not None and since_best >= self.patience:
                history.stopped_early = True
                break
        if self.restore_best and history.best_epoch >= 0 and not at_best:
            self._restore(history.best_epoch, "end of training: keep the best epoch")
        return history
