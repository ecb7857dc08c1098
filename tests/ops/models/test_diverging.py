"""Training that diverges stops with the epoch where the loss became NaN or infinite: a
cleanly failed step and run, the earlier epochs kept in the ledger and the metrics."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from amml import Client, compile_workflow, run_workflow
from amml._exceptions import OpError, StepFailedError
from amml.lang import load_yaml_text
from amml.ops.models.torch_training import TorchTrainer
from amml.store import Store
from amml.store.keys import KeyRing
from amml.store.ledger import Ledger


class _GoesNaN(torch.nn.Module):
    """A linear model whose output turns NaN after ``finite_calls`` training forwards, as a
    network whose activations blow up does; evaluation passes stay finite until then."""

    def __init__(self, finite_calls: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(8, 1)
        self.finite_calls, self.calls = finite_calls, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x)
        if self.training:
            self.calls += 1
        return out * math.nan if self.calls > self.finite_calls else out


def test_diverging_training_fails_with_the_epoch(store: Store) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    ledger = Ledger(store, "diverging", KeyRing())
    logged: list[tuple[int, dict[str, float]]] = []
    # 16 windows a batch: 4 batches an epoch, so the 10th forward is in epoch 2
    trainer = TorchTrainer(_GoesNaN(finite_calls=9), epochs=6, batch_size=16, device="cpu",
                           ledger=ledger, on_epoch=lambda e, m: logged.append((e, m)))
    with pytest.raises(OpError, match=r"loss became NaN at epoch 2") as caught:
        trainer.fit(x, y)
    assert "the ledger keeps epochs 0..1" in str(caught.value)
    assert [e.epoch for e in ledger.entries() if e.kind == "epoch"] == [0, 1]
    assert ledger.verify().ok
    assert [e for e, _ in logged] == [0, 1, 2]
    assert all(math.isfinite(m["train_loss"]) for _, m in logged[:2])
    assert math.isnan(logged[2][1]["train_loss"])


def test_diverging_train_step_is_a_clean_failed_run(tmp_path: Path, store: Store) -> None:
    # values near float32's limit: the first squared error is already infinite
    rows = "\n".join(f"2024-01-01T{h:02d}:00:00,{(h % 5 + 1) * 3e19}" for h in range(24))
    (tmp_path / "huge.csv").write_text("t,v\n" + rows + "\n")
    compiled = compile_workflow(load_yaml_text(f"""\
name: diverging
steps:
  raw:
    op: source.csv
    with: {{path: "{tmp_path / 'huge.csv'}", time: t}}
  model:
    op: train
    inputs: {{train: raw}}
    with: {{model: dlinear, target: v, lookback: 4, horizon: 1, epochs: 3, device: cpu}}
"""))
    with pytest.raises(StepFailedError, match="loss became infinite at epoch 0") as caught:
        run_workflow(compiled, store=store)
    run_id = caught.value.run_id
    client = Client(store=store)
    run = client.run(run_id)
    assert run["status"] == "failed"
    assert "training diverged: loss became infinite at epoch 0" in run["error"]
    assert "sqlalchemy" not in run["error"].lower() and "INSERT" not in run["error"]
    model = next(s for s in run["steps"] if s["name"] == "model")
    assert model["status"] == "failed" and "at epoch 0" in model["error"]
    assert client.metrics(run_id, "train_loss", "model")[0]["value"] == math.inf
