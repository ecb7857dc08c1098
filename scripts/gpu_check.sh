#!/usr/bin/env bash
# One short device check (run on a lent GPU machine through the device tool): the ledgered
# training loop on CUDA — rollbacks bit-identical to what GPU training recorded — and the
# same training run timed on the GPU and on the CPU. The GPU image has PyTorch; AMML's other
# dependencies travel as wheels in .whl/ (see the device tool's README).
set -uo pipefail
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH="$PWD/src:/tmp/site"
else
  export PYTHONPATH="$PWD/src"
fi
export PYTHONUNBUFFERED=1
python3 - <<'PY' 2>&1 | tee "${OUT:-/tmp}/gpu_check.txt"
import random, tempfile, time
import numpy as np
import torch
from amml.ops.models.torch_training import TorchTrainer, checkpoint_bytes, restore_checkpoint
from amml.store import open_store
from amml.store.keys import KeyRing
from amml.store.ledger import Ledger

print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
rng = np.random.default_rng(0)
x = rng.normal(size=(20000, 336)).astype(np.float32)
y = (x[:, -96:] * 0.5 + 0.1 * rng.normal(size=(20000, 96))).astype(np.float32)


def net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(336, 512), torch.nn.ReLU(),
                               torch.nn.Linear(512, 96))


for device in ("cuda", "cpu"):
    model = net()
    home = tempfile.mkdtemp()
    store = open_store(home)
    ledger = Ledger(store, f"gpu-{device}", KeyRing(home + "/keys"))
    recorded = {}
    trainer = TorchTrainer(model, epochs=10, lr=1e-3, batch_size=256, ledger=ledger,
                           restore_best=False, device=device)
    trainer.on_epoch = lambda e, m: recorded.__setitem__(
        e, checkpoint_bytes(model, trainer.optimizer, {"epoch": e}))
    started = time.perf_counter()
    history = trainer.fit(x[:16000], y[:16000], x[16000:], y[16000:])
    took = time.perf_counter() - started
    identical = 0
    for _ in range(10):
        epoch = random.randrange(10)
        data, _, _ = ledger.rollback(to_epoch=epoch)
        identical += data == recorded[epoch]
    fresh = net().to(device)
    optimizer = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    info = restore_checkpoint(data, fresh, optimizer)
    round_trip = checkpoint_bytes(fresh, optimizer, info) == data
    print(f"gpu_check device={device} train_s={took:.2f} epochs=10 "
          f"val_loss={history.epochs[-1]['val_loss']:.5f} "
          f"rollbacks_bit_identical={identical}/10 restore_round_trip={round_trip} "
          f"verify_ok={ledger.verify().ok}")
    store.close()
PY
