"""Edge export per model kind on the ETTh1 test split: size, one-thread latency, int8 accuracy,
the runner's memory and the install footprint.

For each kind: train on ETTh1's training rows (0..8639, z-scored on them, all 7 channels,
lookback 336 -> horizon 96; the PyTorch kinds for ``--epochs`` epochs on every ``--stride``-th
window), export fp32 ONNX, int8 (dynamic; and static, calibrated on training windows) and
fp16, then measure on the test split (rows 11520..14399, windows starting 336 rows early):

* size: the PyTorch state (the model's tensors as stored), ONNX fp32, int8, int8-static, fp16;
* single-window latency p50/p99 with one thread: PyTorch eager (numpy for the numpy kinds),
  ONNX Runtime fp32 and int8 (the same window, after a warm-up);
* relative MSE change of int8 against fp32 on every test window (scaled values);
* the runner's resident memory: a fresh process that imports ``amml.edge.runner`` and paho,
  verifies and loads the int8 model and forecasts 200 windows (``/proc/self/status``);
* install footprint: the summed installed sizes of the distributions ``amml[edge]`` pulls in
  (its dependency closure, from this venv's metadata) beside all of AMML's extras: measured
  on the existing venv, labelled ``venv-sum``, not a fresh install.

Goals (issue 21): int8 >= 3x smaller than the PyTorch state with <= 1% relative MSE loss, >= 2x
faster per window than eager; runner <= 60 MB resident, <= 150 MB installed.

    python benchmarks/edge.py [--data ../shared/datasets/ett/ETTh1.csv] [--kinds a,b]
        [--epochs 2] [--stride 4] [--runs 300]

Machine-readable lines::

    edge model=NAME format=int8 size_ratio=... latency_ratio=... mse_delta_pct=...
        rss_mb=... footprint_mb=...   (one line; also format=int8-static and fp16)
    edge model=NAME detail ...
    edge footprint extra=edge mb=... distributions=...  (and extra=full)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from amml.edge.export import DYNAMIC, STATIC, convert, run_onnx, session
from amml.ops.models.contract import Training, make_model
from amml.ops.models.onnx_export import INPUT, onnx_bytes
from amml.ops.models.torch_model import TorchForecaster

LOOKBACK, HORIZON = 336, 96
TRAIN_END, VAL_END, TEST_END = 8640, 11520, 14400
DEFAULT_DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "ett"
                / "ETTh1.csv")
KINDS = ("naive", "seasonal_naive", "linear", "nlinear", "dlinear", "rlinear", "lstm",
         "patchtst")


def load_splits(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    import pandas as pd

    frame = pd.read_csv(path)
    columns = [c for c in frame.columns if c != "date"]
    values = frame[columns].to_numpy(dtype=np.float64)[:TEST_END]
    mean, std = values[:TRAIN_END].mean(axis=0), values[:TRAIN_END].std(axis=0)
    values = (values - mean) / std
    return (values[:TRAIN_END], values[TRAIN_END - LOOKBACK : VAL_END],
            values[VAL_END - LOOKBACK : TEST_END], columns)


def windows(values: np.ndarray, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    view = np.lib.stride_tricks.sliding_window_view(values, LOOKBACK + HORIZON, axis=0)
    view = view.transpose(0, 2, 1)[::stride]
    return (np.ascontiguousarray(view[:, :LOOKBACK], dtype=np.float32),
            np.ascontiguousarray(view[:, LOOKBACK:], dtype=np.float32))


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = np.sort(np.asarray(samples))
    return float(np.percentile(ordered, 50)), float(np.percentile(ordered, 99))


def time_calls(calls: dict[str, object], runs: int) -> dict[str, tuple[float, float]]:
    """p50/p99 microseconds of each call, measured round-robin (one call of each in turn),
    so that load from elsewhere on the machine falls on all of them alike."""
    for _ in range(max(10, runs // 10)):
        for call in calls.values():
            call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            samples[name].append((time.perf_counter() - started) * 1e6)
    return {name: percentiles(values) for name, values in samples.items()}


def eager_call(model, window: np.ndarray):
    """One window through the model as it runs without export: the PyTorch module in eager
    mode (no_grad), or the numpy kinds' own predict_windows."""
    if isinstance(model, TorchForecaster):
        import torch

        net = model.export_module()
        tensor = torch.from_numpy(window)

        def call() -> None:
            with torch.no_grad():
                net(tensor)

        return call
    return lambda: model.predict_windows(window)


def state_bytes(model) -> int:
    return int(sum(np.asarray(v).nbytes for v in model.get_tensors().values()))


RSS_PROBE = """
import hashlib, json, sys
import numpy as np
import paho.mqtt.client
from amml.edge.runner import load_verified, rss_mb
data = open(sys.argv[1], "rb").read()
manifest = json.dumps({"model": "bench", "version": 1, "format": "int8", "sha256":
    hashlib.sha256(data).hexdigest(), "lookback": int(sys.argv[2]), "columns": ["c"] *
    int(sys.argv[3]), "outputs": ["c"] * int(sys.argv[3])}, sort_keys=True)
model = load_verified(data, manifest, sys.argv[4], [bytes.fromhex(sys.argv[5])])
window = np.zeros((int(sys.argv[2]), int(sys.argv[3])))
for _ in range(200):
    model.forecast(window)
print(rss_mb())
"""


def runner_rss(model_bytes: bytes, channels: int) -> float:
    """Resident MB of a fresh process holding the runner with the int8 model loaded."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw).hex()
    import hashlib

    manifest = json.dumps({"model": "bench", "version": 1, "format": "int8",
                           "sha256": hashlib.sha256(model_bytes).hexdigest(),
                           "lookback": LOOKBACK, "columns": ["c"] * channels,
                           "outputs": ["c"] * channels}, sort_keys=True)
    with tempfile.NamedTemporaryFile(suffix=".onnx", delete=False) as handle:
        handle.write(model_bytes)
    try:
        out = subprocess.run([sys.executable, "-c", RSS_PROBE, handle.name, str(LOOKBACK),
                              str(channels), key.sign(manifest.encode()).hex(), public],
                             capture_output=True, text=True, check=True)
    finally:
        os.unlink(handle.name)
    return float(out.stdout.strip().splitlines()[-1])


def _closure(requirements: list[str]) -> dict[str, int]:
    """Installed size (bytes) of each distribution in the dependency closure."""
    from importlib import metadata

    from packaging.requirements import Requirement

    seen: dict[str, int] = {}
    stack = [Requirement(r) for r in requirements]
    while stack:
        req = stack.pop()
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        if name in seen:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        size = 0
        for file in dist.files or []:
            with contextlib.suppress(OSError):
                size += os.path.getsize(dist.locate_file(file))
        seen[name] = size
        for text in dist.requires or []:
            sub = Requirement(text)
            if sub.marker is None or sub.marker.evaluate({"extra": ""}):
                stack.append(sub)
    return seen


def footprints() -> dict[str, tuple[float, int]]:
    """MB and distribution count for ``amml[edge]`` and for AMML with every extra."""
    from importlib import metadata

    amml = metadata.distribution("amml")
    base, extras = [], {}
    for text in amml.requires or []:
        match = re.search(r'extra\s*==\s*"([^"]+)"', text)
        requirement = text.split(";")[0].strip()
        if match:
            extras.setdefault(match.group(1), []).append(requirement)
        else:
            base.append(requirement)
    edge = _closure(extras.get("edge", []))
    edge_mb = sum(edge.values()) / 2**20
    everything = [r for name, reqs in extras.items() if name != "dev" for r in reqs]
    full = _closure(base + everything)
    full["amml"] = sum(os.path.getsize(amml.locate_file(f)) for f in amml.files or []
                       if os.path.exists(amml.locate_file(f)))
    return {"edge": (edge_mb, len(edge)), "full": (sum(full.values()) / 2**20, len(full))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    train, val, test, columns = load_splits(args.data.resolve())
    x_train, y_train = windows(train, args.stride)
    x_val, y_val = windows(val, 8)
    x_test, y_test = windows(test)
    calibration = x_train[np.random.default_rng(0).permutation(len(x_train))[:128]]
    single = x_test[:1]
    feet = footprints()
    for name, (mb, count) in feet.items():
        print(f"edge footprint extra={name} mb={mb:.1f} distributions={count} "
              "measure=venv-sum", flush=True)
    print(f"edge data={args.data.name} train_windows={len(x_train)} test_windows="
          f"{len(x_test)} lookback={LOOKBACK} horizon={HORIZON} channels={len(columns)}",
          flush=True)

    misses = []
    for kind in args.kinds.split(","):
        started = time.perf_counter()
        model = make_model(kind, lookback=LOOKBACK, horizon=HORIZON, columns=columns,
                           outputs=columns)
        model.fit(x_train.astype(np.float64), y_train.astype(np.float64),
                  x_val.astype(np.float64), y_val.astype(np.float64),
                  training=Training(epochs=args.epochs, seed=0, patience=None))
        trained_s = time.perf_counter() - started
        fp32 = onnx_bytes(model)
        forms = {"fp32": fp32, DYNAMIC: convert(fp32, DYNAMIC),
                 STATIC: convert(fp32, STATIC, calibration), "fp16": convert(fp32, "fp16")}
        fp32_pred = run_onnx(fp32, x_test)
        mse_fp32 = float(np.mean((fp32_pred - y_test) ** 2))
        state = state_bytes(model)
        rss = runner_rss(forms[DYNAMIC], len(columns))
        sessions = {fmt: session(data, threads=1) for fmt, data in forms.items()}
        timings = time_calls({"eager": eager_call(model, single), **{
            fmt: (lambda s=sess: s.run(None, {INPUT: single})) for fmt, sess in
            sessions.items()}}, args.runs)
        eager_p50, eager_p99 = timings["eager"]
        results = {}
        for fmt, data in forms.items():
            pred = run_onnx(sessions[fmt], x_test)
            mse = float(np.mean((pred - y_test) ** 2))
            p50, p99 = timings[fmt]
            results[fmt] = dict(size=len(data), p50=p50, p99=p99, mse=mse,
                                delta=100 * (mse - mse_fp32) / mse_fp32)
        print(f"edge model={kind} detail trained_s={trained_s:.1f} mse_fp32={mse_fp32:.4f} "
              f"state_bytes={state} eager_p50_us={eager_p50:.1f} eager_p99_us={eager_p99:.1f} "
              + " ".join(f"{fmt}_bytes={r['size']} {fmt}_p50_us={r['p50']:.1f} "
                         f"{fmt}_p99_us={r['p99']:.1f} {fmt}_mse_delta_pct={r['delta']:.3f}"
                         for fmt, r in results.items()), flush=True)
        for fmt in (DYNAMIC, STATIC, "fp16"):
            r = results[fmt]
            size_ratio = state / r["size"] if state else 0.0
            latency_ratio = eager_p50 / r["p50"]
            print(f"edge model={kind} format={fmt} size_ratio={size_ratio:.2f} "
                  f"latency_ratio={latency_ratio:.2f} mse_delta_pct={r['delta']:.3f} "
                  f"rss_mb={rss:.1f} footprint_mb={feet['edge'][0]:.1f}", flush=True)
            if fmt == DYNAMIC:
                missed = [goal for goal, ok in (
                    ("size>=3x", size_ratio >= 3), ("mse<=1%", r["delta"] <= 1.0),
                    ("latency>=2x", latency_ratio >= 2), ("rss<=60MB", rss <= 60))
                    if not ok]
                if missed:
                    misses.append(f"{kind}: {', '.join(missed)}")
    print("edge goals_missed " + ("; ".join(misses) if misses else "none"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
