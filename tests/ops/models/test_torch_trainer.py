"""The PyTorch training loop on its own: checkpoints, schedules, early stopping, automatic
rollbacks, keeping the best epoch, FedProx's proximal term, and divergence. A linear model on
64 rows keeps each test well under a second."""

from __future__ import annotations

import math
import tempfile

import numpy as np
import pytest
import torch

from amml._exceptions import OpError
from amml.ops.models.torch_training import (
    TorchTrainer,
    checkpoint_bytes,
    resolve_device,
    restore_checkpoint,
)
from amml.store import open_store
from amml.store.keys import KeyRing
from amml.store.ledger import Ledger


def _data(seed: int = 0, rows: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3)).astype(np.float32)
    y = (x @ np.array([[1.5], [-2.0], [0.5]], dtype=np.float32) + 0.1).astype(np.float32)
    return x, y


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Linear(3, 1)


def _weights(model: torch.nn.Module) -> list[np.ndarray]:
    return [p.detach().cpu().numpy().copy() for p in model.parameters()]


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


# ---------------------------------------------------------------- checkpoints
def test_a_checkpoint_restores_weights_adam_state_and_info() -> None:
    x, y = _data()
    model = _model()
    trainer = TorchTrainer(model, epochs=2, lr=0.01, batch_size=16, device="cpu")
    trainer.fit(x, y)
    data = checkpoint_bytes(model, trainer.optimizer, {"epoch": 1, "lr_scale": 0.5})
    assert data == checkpoint_bytes(model, trainer.optimizer, {"lr_scale": 0.5, "epoch": 1})

    other = _model(seed=9)
    optimizer = torch.optim.Adam(other.parameters(), lr=0.5)
    info = restore_checkpoint(data, other, optimizer)
    assert info == {"epoch": 1, "lr_scale": 0.5}
    assert _same(_weights(other), _weights(model))
    restored, original = optimizer.state_dict(), trainer.optimizer.state_dict()
    assert restored["param_groups"][0]["lr"] == original["param_groups"][0]["lr"]
    for index, state in original["state"].items():
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(restored["state"][index][key]),
                               torch.as_tensor(value)), key


def test_a_checkpoint_without_optimizer_restores_only_the_weights() -> None:
    model = _model()
    data = checkpoint_bytes(model, None)
    other = _model(seed=3)
    optimizer = torch.optim.Adam(other.parameters(), lr=0.25)
    assert restore_checkpoint(data, other, optimizer) == {}
    assert _same(_weights(other), _weights(model))
    assert optimizer.param_groups[0]["lr"] == 0.25 and not optimizer.state


def test_devices() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(OpError, match="device 'cuda:1' requested but CUDA is not available"):
            resolve_device("cuda:1")


# ---------------------------------------------------------------- the loop
def test_training_is_seeded_and_learns() -> None:
    x, y = _data()
    runs = []
    for seed in (0, 0, 1):
        model = _model()
        history = TorchTrainer(model, epochs=5, lr=0.05, batch_size=8, seed=seed,
                               device="cpu").fit(x, y)
        runs.append((_weights(model), history))
    assert _same(runs[0][0], runs[1][0])  # same seed: the same shuffles, bit for bit
    assert not _same(runs[0][0], runs[2][0])
    losses = [epoch["val_loss"] for epoch in runs[0][1].epochs]
    assert len(losses) == 5 and losses[-1] < losses[0] / 4
    assert runs[0][1].best_epoch == int(np.argmin(losses))
    assert runs[0][1].best_val_loss == min(losses)


def test_validation_loss_is_the_mean_squared_error_over_every_value() -> None:
    x, y = _data(rows=2100)  # more rows than one evaluation batch of 1024
    model = _model()
    trainer = TorchTrainer(model, epochs=1, lr=0.0, batch_size=64, device="cpu")
    history = trainer.fit(x[:64], y[:64], x, y)
    with torch.no_grad():
        expected = float(((model(torch.as_tensor(x)) - torch.as_tensor(y)) ** 2).mean())
    assert history.epochs[0]["val_loss"] == pytest.approx(expected, rel=1e-5)
    x_train = np.repeat(x[:4], 2, axis=0)
    y_train = np.repeat(y[:4], 2, axis=0)
    fitted = TorchTrainer(_model(), epochs=1, lr=0.0, batch_size=3, device="cpu")
    first = fitted.fit(x_train, y_train).epochs[0]
    with torch.no_grad():
        train_mse = float(((fitted.model(torch.as_tensor(x_train))
                            - torch.as_tensor(y_train)) ** 2).mean())
    # with lr 0 the weights never move: the running train loss is the plain mean over rows
    assert first["train_loss"] == pytest.approx(train_mse, rel=1e-5)
    assert first["val_loss"] == pytest.approx(train_mse, rel=1e-5)  # no val set: train rows


@pytest.mark.parametrize(("schedule", "expected"), [
    ("constant", [0.1, 0.1, 0.1, 0.1]),
    ("halve", [0.1, 0.05, 0.025, 0.0125]),
    ("cosine", [0.1 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]),
])
def test_learning_rate_schedules(schedule: str, expected: list[float]) -> None:
    x, y = _data()
    history = TorchTrainer(_model(), epochs=4, lr=0.1, lr_schedule=schedule,
                           device="cpu").fit(x, y)
    assert [e["lr"] for e in history.epochs] == pytest.approx(expected)


def test_an_unknown_schedule_is_refused() -> None:
    with pytest.raises(OpError, match="unknown lr_schedule 'steps'"):
        TorchTrainer(_model(), lr_schedule="steps", device="cpu")


def test_patience_stops_after_that_many_epochs_without_improvement() -> None:
    x, y = _data()
    trainer = TorchTrainer(_model(), epochs=20, lr=0.05, patience=2, device="cpu",
                           restore_best=False)
    history = trainer.fit(x, y, x, -y)  # learning y makes the loss against -y worse
    assert history.stopped_early
    assert len(history.epochs) == history.best_epoch + 3
    full = TorchTrainer(_model(), epochs=6, lr=0.05, device="cpu").fit(x, y, x, -y)
    assert not full.stopped_early and len(full.epochs) == 6


def test_restore_best_ends_on_the_best_epochs_weights_and_optimizer() -> None:
    x, y = _data()
    model = _model()
    seen: list[list[np.ndarray]] = []
    moments: list[dict] = []

    def record(epoch: int, metrics: dict) -> None:
        seen.append(_weights(model))
        moments.append({k: v.clone() for k, v in trainer.optimizer.state_dict()["state"][0]
                        .items()})

    trainer = TorchTrainer(model, epochs=5, lr=0.05, device="cpu", on_epoch=record)
    history = trainer.fit(x, y, x, -y)
    assert history.best_epoch == 0
    assert _same(_weights(model), seen[0])
    restored = trainer.optimizer.state_dict()["state"][0]
    assert all(torch.equal(restored[k], moments[0][k]) for k in moments[0])  # Adam too
    kept = _model()
    TorchTrainer(kept, epochs=5, lr=0.05, device="cpu", restore_best=False).fit(x, y, x, -y)
    assert _same(_weights(kept), seen[-1])


def test_rollbacks_go_back_to_the_best_epoch_and_lower_the_rate(tmp_path) -> None:
    x, y = _data()
    store = open_store(tmp_path / "store")
    ledger = Ledger(store, "trainer", KeyRing(tempfile.mkdtemp()))
    model = _model()
    trainer = TorchTrainer(model, epochs=12, lr=0.08, rollback_patience=2,
                           rollback_lr_factor=0.25, max_rollbacks=2, ledger=ledger,
                           device="cpu", restore_best=False)
    history = trainer.fit(x, y, x, -y)
    assert [(r["at_epoch"], r["to_epoch"]) for r in history.rollbacks] == [(2, 0), (4, 0)]
    assert [r["lr"] for r in history.rollbacks] == pytest.approx([0.02, 0.005])
    assert history.epochs[3]["lr"] == pytest.approx(0.02)
    assert history.epochs[-1]["lr"] == pytest.approx(0.005)  # no third rollback
    kinds = [(e.kind, e.epoch) for e in ledger.entries()]
    assert kinds[:4] == [("epoch", 0), ("epoch", 1), ("epoch", 2), ("rollback", 0)]
    assert sum(kind == "rollback" for kind, _ in kinds) == 2
    first = next(e for e in ledger.entries() if e.kind == "rollback")
    assert first.body["extra"]["reason"] == ("validation loss worse for 2 epochs; back to best "
                                             "epoch 0")
    assert ledger.verify().ok
    # the checkpoint of the epoch after a rollback records the lowered rate for a resume
    after = next(e for e in ledger.entries() if e.kind == "epoch" and e.epoch == 3)
    info = restore_checkpoint(store.artifacts.get_bytes(after.checkpoint["digest"]),
                              _model(), None)
    assert info == {"epoch": 3, "lr_scale": 0.25}
    store.close()


def test_plain_checkpoints_record_only_the_epoch_and_cosine_its_span(tmp_path) -> None:
    x, y = _data()
    for schedule, extra in (("constant", {}), ("cosine", {"lr_span": 3})):
        store = open_store(tmp_path / schedule)
        ledger = Ledger(store, "plain", KeyRing(tempfile.mkdtemp()))
        TorchTrainer(_model(), epochs=3, lr=0.01, ledger=ledger, lr_schedule=schedule,
                     device="cpu").fit(x, y)
        entry = ledger.entries()[1]
        info = restore_checkpoint(store.artifacts.get_bytes(entry.checkpoint["digest"]),
                                  _model(), None)
        assert info == {"epoch": 1, **extra}, schedule
        store.close()


def test_the_proximal_term_keeps_weights_near_where_they_started() -> None:
    x, y = _data()
    start = _weights(_model())

    def trained(mu: float, epochs: int = 3) -> list[np.ndarray]:
        model = _model()
        TorchTrainer(model, epochs=epochs, lr=0.05, proximal_mu=mu, device="cpu").fit(x, y)
        return _weights(model)

    def distance(weights: list[np.ndarray]) -> float:
        return sum(float(np.sum((w - s) ** 2)) for w, s in zip(weights, start, strict=True))

    assert distance(trained(50.0)) < distance(trained(0.0)) / 3
    # a strong pull holds the weights at the start (a squared distance, not a drift) ...
    assert distance(trained(1e4, epochs=10)) < 0.01 < distance(trained(0.0, epochs=10))
    # ... and a weak one still changes the update
    assert not _same(trained(0.5), trained(0.0))


def test_an_infinite_validation_loss_stops_with_the_epochs_metrics(tmp_path) -> None:
    # (a NaN training loss is tests/ops/models/test_diverging.py's)
    x, y = _data()
    store = open_store(tmp_path / "store")
    ledger = Ledger(store, "diverging", KeyRing(tempfile.mkdtemp()))
    logged: list[tuple[int, dict[str, float]]] = []
    trainer = TorchTrainer(_model(), epochs=5, lr=0.01, ledger=ledger, device="cpu",
                           on_epoch=lambda epoch, metrics: logged.append((epoch, metrics)))
    with pytest.raises(OpError) as info:
        trainer.fit(x, y, x, np.full_like(y, 3e19))  # its squared error overflows float32
    assert str(info.value).startswith(
        "training diverged: loss became infinite at epoch 0 (val_loss=inf); lower lr (now 0.01)")
    assert "the ledger keeps" not in str(info.value)  # no epoch finished
    assert ledger.entries() == []
    ((epoch, metrics),) = logged
    assert epoch == 0 and math.isfinite(metrics["train_loss"]) and metrics["lr"] == 0.01
    store.close()


def test_each_epoch_entry_records_its_metrics_and_digests(tmp_path) -> None:
    x, y = _data()
    store = open_store(tmp_path / "store")
    ledger = Ledger(store, "digests", KeyRing(tempfile.mkdtemp()))
    history = TorchTrainer(_model(), epochs=2, lr=0.01, ledger=ledger, device="cpu",
                           config_digest="cfg", data_digest="data",
                           code_digest="code").fit(x, y)
    for entry, metrics in zip(ledger.entries(), history.epochs, strict=True):
        body = entry.body
        assert (body["config_digest"], body["data_digest"], body["code_digest"]) == (
            "cfg", "data", "code")
        assert body["metrics"] == pytest.approx(metrics)
    store.close()


def test_an_equal_validation_loss_is_no_improvement() -> None:
    x, y = _data()
    history = TorchTrainer(_model(), epochs=4, lr=0.0, patience=2, device="cpu").fit(x, y)
    assert history.best_epoch == 0 and history.stopped_early and len(history.epochs) == 3


def test_a_rollback_keeps_to_the_schedule(tmp_path) -> None:
    x, y = _data()
    history = TorchTrainer(_model(), epochs=3, lr=0.08, lr_schedule="halve",
                           rollback_patience=1, rollback_lr_factor=0.5, max_rollbacks=1,
                           device="cpu", restore_best=False).fit(x, y, x, -y)
    assert history.rollbacks[0]["at_epoch"] == 1
    assert history.rollbacks[0]["lr"] == pytest.approx(0.08 * 0.5 * 0.5 ** 1)
    assert history.epochs[2]["lr"] == pytest.approx(0.08 * 0.5 * 0.5 ** 2)


def test_the_end_of_training_restore_is_a_ledger_rollback_only_when_needed(tmp_path) -> None:
    x, y = _data()
    store = open_store(tmp_path / "store")
    keys = KeyRing(tempfile.mkdtemp())
    ended = Ledger(store, "ended", keys)
    TorchTrainer(_model(), epochs=3, lr=0.05, ledger=ended, device="cpu").fit(x, y, x, -y)
    rollbacks = [e for e in ended.entries() if e.kind == "rollback"]
    assert [(e.epoch, e.body["extra"]["reason"]) for e in rollbacks] == [
        (0, "end of training: keep the best epoch")]
    # a rollback in the last epoch already holds the best weights: no second one
    rolled = Ledger(store, "rolled", keys)
    TorchTrainer(_model(), epochs=3, lr=0.05, ledger=rolled, rollback_patience=2,
                 device="cpu").fit(x, y, x, -y)
    assert [e.kind for e in rolled.entries()].count("rollback") == 1
    store.close()


def test_a_resumed_training_keeps_the_rate_reductions_and_the_cosine_span() -> None:
    x, y = _data()
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    checkpoint = checkpoint_bytes(model, optimizer, {"epoch": 3, "lr_scale": 0.25,
                                                     "lr_span": 10})
    history = TorchTrainer(_model(), epochs=2, lr=0.1, lr_schedule="cosine", start_epoch=4,
                           resume_checkpoint=checkpoint, device="cpu").fit(x, y)
    expected = [0.1 * 0.25 * 0.5 * (1 + math.cos(math.pi * e / 10)) for e in (4, 5)]
    assert [e["lr"] for e in history.epochs] == pytest.approx(expected)


def test_non_tensor_optimizer_state_survives_a_checkpoint() -> None:
    # Adam keeps tensors only; some optimizers keep counters and flags beside them
    x, y = _data()
    model = _model()
    trainer = TorchTrainer(model, epochs=1, lr=0.01, device="cpu")
    trainer.fit(x, y)
    params = list(model.parameters())
    trainer.optimizer.state[params[0]]["func_evals"] = 7
    trainer.optimizer.state[params[1]]["converged"] = True
    other = _model(seed=5)
    optimizer = torch.optim.Adam(other.parameters(), lr=0.5)
    restore_checkpoint(checkpoint_bytes(model, trainer.optimizer), other, optimizer)
    restored = optimizer.state_dict()["state"]
    assert restored[0]["func_evals"] == 7 and restored[1]["converged"] is True
    assert torch.equal(restored[1]["exp_avg"], trainer.optimizer.state[params[1]]["exp_avg"])


def test_the_documented_defaults() -> None:
    trainer = TorchTrainer(_model())
    assert (trainer.epochs, trainer.lr, trainer.batch_size, trainer.seed) == (10, 1e-3, 32, 0)
    assert (trainer.patience, trainer.rollback_patience) == (None, None)
    assert (trainer.rollback_lr_factor, trainer.max_rollbacks) == (0.5, 3)
    assert trainer.restore_best and trainer.lr_schedule == "constant"
    assert trainer.device == torch.device("cuda" if torch.cuda.is_available() else "cpu")
