#!/usr/bin/env bash
# One short device check: the ledgered training loop on CUDA (bit-exact rollback from GPU
# training) and one timed training run on GPU vs CPU. Writes results to $OUT.
set -uo pipefail
python3 -m venv /tmp/venv >/dev/null && /tmp/venv/bin/pip install -q torch==2.13.0 2>&1 | tail -1
/tmp/venv/bin/pip install -q -e '.[dev]' 2>&1 | tail -1
/tmp/venv/bin/python - <<'PY' 2>&1 | tee "${OUT:-/tmp}/gpu_check.txt"
import hashlib, random, tempfile, time
import numpy as np
import torch
from amml.ops.models.torch_training import TorchTrainer, checkpoint_bytes, restore_checkpoint
from amml.store import open_store
from amml.store.keys import KeyRing
from amml.store.ledger import Ledger
print("cuda", torch.cuda.is_available(), torch.version.cuda,
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
rng = np.random.default_rng(0)
x = rng.normal(size=(20000, 336)).astype(np.float32)
y = (x[:, -96:] * 0.5).astype(np.float32)
for device in ("cuda", "cpu"):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(336, 512), torch.nn.ReLU(), torch.nn.Linear(512, 96))
    home = tempfile.mkdtemp()
    store = open_store(home)
    ledger = Ledger(store, f"gpu-{device}", KeyRing(home + "/keys"))
    recorded = {}
    trainer = TorchTrainer(model, epochs=10, lr=1e-3, batch_size=256, ledger=ledger,
                           restore_best=False, device=device)
    trainer.on_epoch = lambda e, m: recorded.__setitem__(e, checkpoint_bytes(model, trainer.optimizer, {"epoch": e}))
    started = time.perf_counter()
    history = trainer.fit(x[:16000], y[:16000], x[16000:], y[16000:])
    took = time.perf_counter() - started
    ok = 0
    for _ in range(10):
        epoch = random.randrange(10)
        data, target, _ = ledger.rollback(to_epoch=epoch)
        ok += data == recorded[epoch]
    fresh = torch.nn.Sequential(torch.nn.Linear(336, 512), torch.nn.ReLU(), torch.nn.Linear(512, 96)).to(device)
    opt = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    info = restore_checkpoint(data, fresh, opt)
    same = checkpoint_bytes(fresh, opt, info) == data
    print(f"device={device} train_s={took:.2f} epochs=10 val_loss={history.epochs[-1]['val_loss']:.5f} "
          f"rollbacks_bit_identical={ok}/10 restore_round_trip={same} verify={ledger.verify().ok}")
    store.close()
PY
