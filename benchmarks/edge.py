"""Edge export per model kind on the ETTh1 test split: size, one-thread latency, int8 accuracy,
the runner's memory and the install footprint.

For each kind: train on ETTh1's training rows (0..8639, z-scored on them, all 7 channels,
lookback 336 -> horizon 96; the PyTorch kinds for ``--epochs`` epochs on every ``--stride``-th
window), export fp32 ONNX, int8 (dynamic; and static, calibrated on training windows) and
fp16, then measure on the test split (rows 11520..14399, windows starting 336 rows early):

* size: the PyTorch state (the model's tensors as stored), ONNX fp32, int8, int8-static, fp16;
* single-window latency p50/p99 with one thread: PyTorch eager (numpy for the numpy kinds),
  ONNX Runtime fp32 and int8 (the same window, after a warm-up), measured round-robin;
* batched latency per window (``--batch`` windows in one call), for eager and each format:
  ``batch_latency_ratio`` is eager one window at a time over ONNX Runtime batched (what the
  runner gains by batching windows that arrive together), ``batch_vs_eager_batch`` eager
  batched alike over ONNX Runtime batched;
* relative MSE change of int8 against fp32 on every test window (scaled values);
* the runner's resident memory, measured on the real ``amml-edge`` process: a real AMML
  server (uvicorn in a thread, scratch store and key) delivers the signed int8 variant, a
  Mosquitto broker on a spare port carries ``--runner-windows`` rows (one per message, then a
  burst in one message that the runner batches), and ``/proc/PID/status`` is read once their
  forecasts are all out: ``rss_mb`` (VmRSS, steady state); the detail line adds the peak
  (VmHWM), the anonymous part, the MB of library pages it released, its largest batch and the
  RSS of a second runner started with ``--keep-pages``;
* install footprint: the summed installed sizes of the distributions ``amml[edge]`` pulls in
  (its dependency closure, from this venv's metadata) beside all of AMML's extras: measured
  on the existing venv, labelled ``venv-sum``, not a fresh install.

Then the detectors with an ONNX path (``--detectors``; :mod:`amml.edge.detector_export`):
fitted on the last 2000 training rows, exported fp32 and int8, the graph's scores checked
against the PyTorch detector on the last 1000 test rows (``parity_max_abs``, and for int8 the
share of rows whose alarm, score >= 0.5, agrees) and timed against the graph's own module in
eager PyTorch.

Goals (issue 21): int8 >= 3x smaller than the PyTorch state with <= 1% relative MSE loss, >= 2x
faster per window than eager; runner <= 60 MB resident, <= 150 MB installed. ``goals_missed``
lists, per kind, what its int8 form misses (size is not judged for the kinds without weights:
``size_ratio=nan``).

    python benchmarks/edge.py [--data ../shared/datasets/ett/ETTh1.csv] [--kinds a,b]
        [--epochs 2] [--stride 4] [--runs 300] [--batch 32] [--detectors a,b]

Machine-readable lines::

    edge model=NAME format=int8 size_ratio=... latency_ratio=... mse_delta_pct=...
        rss_mb=... footprint_mb=... batch=32 batch_latency_ratio=... batch_vs_eager_batch=...
        (one line; also format=int8-static and fp16)
    edge model=NAME detail ...
    edge detector=NAME format=fp32|int8 size_ratio=... latency_ratio=... parity_max_abs=...
    edge footprint extra=edge mb=... distributions=...  (and extra=full)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from amml.edge.export import DYNAMIC, STATIC, convert, run_onnx, session
from amml.edge.memory import status_mb
from amml.ops.models.contract import Training, make_model
from amml.ops.models.onnx_export import INPUT, onnx_bytes
from amml.ops.models.torch_model import TorchForecaster

LOOKBACK, HORIZON = 336, 96
TRAIN_END, VAL_END, TEST_END = 8640, 11520, 14400
DEFAULT_DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "ett"
                / "ETTh1.csv")
#: Detectors with an ONNX path (amml.edge.detector_export), as benchmarked: on all channels
#: for the autoencoders, on the target column OT for forecast residuals.
DETECTORS = ("conv_autoencoder", "lstm_autoencoder", "forecast_residual")
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


class RunnerBench:
    """The real ``amml-edge`` process, measured from outside: a real AMML server (uvicorn in a
    thread, a scratch store and signing key), a Mosquitto broker on a spare port (the one on
    127.0.0.1:1883 when the binary is missing) and, per measurement, a fresh runner that
    fetches and verifies its int8 model, then forecasts ``windows`` windows sent over MQTT
    (half one row per message, half in one message of many rows: a burst it batches). Its
    ``/proc/PID/status`` is read once they are all published."""

    def __init__(self, folder: Path) -> None:
        import threading

        import paho.mqtt.client as mqtt
        import uvicorn

        from amml.registry import ModelRegistry
        from amml.serve.app import create_app
        from amml.serve.config import ServeConfig
        from amml.store import open_store
        from amml.store.keys import KeyRing

        self.folder = folder
        self.store = open_store(folder / "home")
        self.keyring = KeyRing(folder / "keys")
        self.registry = ModelRegistry(self.store)
        probe = make_model("naive", lookback=4, horizon=1, columns=["v"], outputs=["v"])
        self.registry.register("probe", probe)
        self.port = _free_port()
        app = create_app(ServeConfig(models=["probe@1"], auth=True), store=self.store)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        _wait_port(self.port)
        self.broker_proc = None
        binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if
                                               Path("/usr/sbin/mosquitto").exists() else None)
        if binary:
            self.broker_port = _free_port()
            config = folder / "mosquitto.conf"
            config.write_text(f"listener {self.broker_port} 127.0.0.1\nallow_anonymous true\n")
            self.broker_proc = subprocess.Popen([binary, "-c", str(config)],
                                                stdout=subprocess.DEVNULL,
                                                stderr=subprocess.DEVNULL)
        else:
            self.broker_port = 1883
        _wait_port(self.broker_port)
        self.counts: dict[str, int] = {}
        self.health: dict[str, dict] = {}
        self.lock = threading.Lock()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{os.getpid()}")
        client.on_connect = lambda c, *_: c.subscribe("amml-bench/#")
        client.on_message = self._message
        client.connect("127.0.0.1", self.broker_port)
        client.loop_start()
        self.client = client
        self.exported: set[str] = set()

    def _message(self, _client: object, _userdata: object, message) -> None:
        prefix = message.topic.rsplit("/out", 1)[0]
        with self.lock:
            if message.topic.endswith("/health"):
                self.health[prefix] = json.loads(message.payload)
            elif message.topic.endswith("/out"):
                self.counts[prefix] = self.counts.get(prefix, 0) + 1

    def _count(self, prefix: str) -> int:
        with self.lock:
            return self.counts.get(prefix, 0)

    def measure(self, kind: str, model, rows: np.ndarray, keep_pages: bool = False,
                windows: int = 200) -> dict[str, float]:
        from amml.edge.export import export_variant, public_key_hex
        from amml.store.devices import register_device, set_assignment

        if kind not in self.exported:
            self.registry.register(kind, model)
            export_variant(self.store, f"{kind}@1", DYNAMIC, keyring=self.keyring)
            set_assignment(self.store, kind, f"{kind}@1", DYNAMIC, actor="bench")
            self.exported.add(kind)
        tag = "keep" if keep_pages else "default"
        _, token = register_device(self.store, f"bench-{kind}-{tag}", group=kind)
        prefix = f"amml-bench/{kind}/{tag}"
        command = [sys.executable, "-m", "amml.edge.runner", "--server",
                   f"http://127.0.0.1:{self.port}", "--token", token, "--trust-key",
                   public_key_hex(self.keyring), "--broker", f"127.0.0.1:{self.broker_port}",
                   "--topic", f"{prefix}/in", "--out", f"{prefix}/out", "--poll", "60",
                   "--report-every", "1"] + (["--keep-pages"] if keep_pages else [])
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        lookback = model.lookback
        try:
            at, deadline = 0, time.monotonic() + 60
            while self._count(prefix) == 0:  # rows before it subscribed are lost
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"amml-edge ({kind}) gave no forecast: "
                                       f"{proc.stderr.read1().decode()[-2000:]}")
                self._send(f"{prefix}/in", rows[at % len(rows)])
                at += 1
                time.sleep(0.01)
            start = self._count(prefix)
            half = windows - min(windows // 2, 48)  # a burst the runner's queue holds
            for i in range(half):
                self._send(f"{prefix}/in", rows[(at + i) % len(rows)])
                time.sleep(0.002)
            at += half
            burst = [rows[(at + i) % len(rows)].tolist() for i in range(windows - half)]
            self.client.publish(f"{prefix}/in", json.dumps({"rows": burst}), qos=0)
            deadline = time.monotonic() + 120
            while self._count(prefix) < start + windows and time.monotonic() < deadline:
                time.sleep(0.05)
            forecasts = self._count(prefix) - start
            time.sleep(1.5)  # one more health report, with the burst in it
            status = status_mb(proc.pid)
            with self.lock:  # before it stops: its last word is {"status": "offline"}
                health = dict(self.health.get(prefix, {}))
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        del lookback
        return {"rss_mb": status.get("VmRSS", float("nan")),
                "hwm_mb": status.get("VmHWM", float("nan")),
                "anon_mb": status.get("RssAnon", float("nan")), "forecasts": forecasts,
                "largest_batch": health.get("largest_batch") or 0,
                "released_mb": health.get("released_mb") or 0.0}

    def _send(self, topic: str, row: np.ndarray) -> None:
        self.client.publish(topic, json.dumps({"values": [float(v) for v in row]}), qos=0)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
        self.server.should_exit = True
        self.thread.join(10)
        if self.broker_proc is not None:
            self.broker_proc.terminate()
            self.broker_proc.wait(10)
        self.store.close()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, timeout: float = 15.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


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
    parser.add_argument("--batch", type=int, default=32,
                        help="windows per call for the batched latencies")
    parser.add_argument("--runner-windows", type=int, default=200,
                        help="windows the real runner forecasts before its memory is read")
    parser.add_argument("--detectors", default=",".join(DETECTORS),
                        help="detectors exported and timed ('' for none)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    train, val, test, columns = load_splits(args.data.resolve())
    x_train, y_train = windows(train, args.stride)
    x_val, y_val = windows(val, 8)
    x_test, y_test = windows(test)
    calibration = x_train[np.random.default_rng(0).permutation(len(x_train))[:128]]
    single = x_test[:1]
    batch = np.ascontiguousarray(x_test[: args.batch])
    feet = footprints()
    for name, (mb, count) in feet.items():
        print(f"edge footprint extra={name} mb={mb:.1f} distributions={count} "
              "measure=venv-sum", flush=True)
    print(f"edge data={args.data.name} train_windows={len(x_train)} test_windows="
          f"{len(x_test)} lookback={LOOKBACK} horizon={HORIZON} channels={len(columns)} "
          f"batch={args.batch} load={os.getloadavg()[0]:.2f}", flush=True)

    misses = []
    with tempfile.TemporaryDirectory(prefix="amml-bench-edge-") as scratch:
        bench = RunnerBench(Path(scratch))
        try:
            for kind in [k for k in args.kinds.split(",") if k]:
                misses += bench_kind(kind, args, bench, columns, (x_train, y_train),
                                     (x_val, y_val), (x_test, y_test), calibration, single,
                                     batch, test, feet)
            for name in [d for d in args.detectors.split(",") if d]:
                bench_detector(name, train, test, args)
        finally:
            bench.close()
    print("edge goals_missed " + ("; ".join(misses) if misses else "none"), flush=True)
    return 0


def bench_kind(kind: str, args: argparse.Namespace, bench: RunnerBench, columns: list[str],
               trainset: tuple, valset: tuple, testset: tuple, calibration: np.ndarray,
               single: np.ndarray, batch: np.ndarray, test: np.ndarray,
               feet: dict) -> list[str]:
    """One kind's lines; returns the goals it misses."""
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = trainset, valset, testset
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
    sessions = {fmt: session(data, threads=1) for fmt, data in forms.items()}
    # 256 windows a call: an LSTM over all 2785 test windows x 7 channels at once held
    # gigabytes of hidden states
    fp32_pred = run_onnx(sessions["fp32"], x_test, batch=256)
    mse_fp32 = float(np.mean((fp32_pred - y_test) ** 2))
    eager_parity = float(np.max(np.abs(fp32_pred[:64] - model.predict_windows(
        x_test[:64].astype(np.float64)))))
    state = state_bytes(model)
    runner = bench.measure(kind, model, test, windows=args.runner_windows)
    kept = bench.measure(kind, model, test, keep_pages=True, windows=args.runner_windows)
    calls = {"eager": eager_call(model, single), "eager_batch": eager_call(model, batch)}
    for fmt, sess in sessions.items():
        calls[fmt] = (lambda s=sess: s.run(None, {INPUT: single}))
        calls[f"{fmt}_batch"] = (lambda s=sess: s.run(None, {INPUT: batch}))
    timings = time_calls(calls, args.runs)
    eager_p50, eager_p99 = timings["eager"]
    eager_batch = timings["eager_batch"][0] / len(batch)
    results = {}
    for fmt, data in forms.items():
        pred = run_onnx(sessions[fmt], x_test, batch=256)
        mse = float(np.mean((pred - y_test) ** 2))
        p50, p99 = timings[fmt]
        results[fmt] = dict(size=len(data), p50=p50, p99=p99, mse=mse,
                            per_window=timings[f"{fmt}_batch"][0] / len(batch),
                            delta=100 * (mse - mse_fp32) / mse_fp32)
    print(f"edge model={kind} detail trained_s={trained_s:.1f} mse_fp32={mse_fp32:.4f} "
          f"parity_fp32_max_abs={eager_parity:.2e} state_bytes={state} "
          f"eager_p50_us={eager_p50:.1f} eager_p99_us={eager_p99:.1f} "
          f"eager_batch_us_per_window={eager_batch:.1f} "
          + " ".join(f"{fmt}_bytes={r['size']} {fmt}_p50_us={r['p50']:.1f} "
                     f"{fmt}_p99_us={r['p99']:.1f} {fmt}_batch_us_per_window="
                     f"{r['per_window']:.1f} {fmt}_mse_delta_pct={r['delta']:.3f}"
                     for fmt, r in results.items())
          + f" runner_rss_mb={runner['rss_mb']:.1f} runner_hwm_mb={runner['hwm_mb']:.1f} "
          f"runner_anon_mb={runner['anon_mb']:.1f} runner_released_mb="
          f"{runner['released_mb']:.1f} runner_forecasts={runner['forecasts']} "
          f"runner_largest_batch={runner['largest_batch']} runner_keep_pages_rss_mb="
          f"{kept['rss_mb']:.1f} load={os.getloadavg()[0]:.2f}", flush=True)
    missed: list[str] = []
    for fmt in (DYNAMIC, STATIC, "fp16"):
        r = results[fmt]
        size_ratio = state / r["size"] if state else float("nan")  # nan: no weights
        latency_ratio = eager_p50 / r["p50"]
        # batched: per window against eager one window at a time (what batching the windows
        # that arrive together gains over eager as it runs), and against eager batched alike
        batch_ratio = eager_p50 / r["per_window"]
        batch_vs_batch = eager_batch / r["per_window"]
        print(f"edge model={kind} format={fmt} size_ratio={size_ratio:.2f} "
              f"latency_ratio={latency_ratio:.2f} mse_delta_pct={r['delta']:.3f} "
              f"rss_mb={runner['rss_mb']:.1f} footprint_mb={feet['edge'][0]:.1f} "
              f"batch={len(batch)} batch_latency_ratio={batch_ratio:.2f} "
              f"batch_vs_eager_batch={batch_vs_batch:.2f}", flush=True)
        if fmt == DYNAMIC:
            missed = [goal for goal, ok in (
                ("size>=3x", not state or size_ratio >= 3), ("mse<=1%", r["delta"] <= 1.0),
                ("latency>=2x", latency_ratio >= 2),
                (f"batch{len(batch)}>=2x-eager-single", batch_ratio >= 2),
                (f"batch{len(batch)}>=2x-eager-batched", batch_vs_batch >= 2),
                ("rss<=60MB", runner["rss_mb"] <= 60),
                ("installed<=150MB", feet["edge"][0] <= 150)) if not ok]
    return [f"{kind}: {', '.join(missed)}"] if missed else []


def bench_detector(name: str, train: np.ndarray, test: np.ndarray,
                   args: argparse.Namespace) -> None:
    """One detector's lines: fitted on the last 2000 training rows, exported (fp32 and int8),
    its graph checked against the PyTorch detector on the test rows, and timed per window
    (the graph's PyTorch module in eager mode against ONNX Runtime), single and batched."""
    import torch

    from amml.edge.detector_export import (
        detector_module,
        detector_onnx,
        detector_parity,
        score_windows,
    )
    from amml.ops.detectors.base import make_detector

    reference = train[-2000:]
    started = time.perf_counter()
    if name == "forecast_residual":
        reference, rows = reference[:, -1], test[:, -1]  # OT, the target
        detector = make_detector(name, forecaster="nlinear", lookback=LOOKBACK,
                                 scoring="window", warmup=len(reference),
                                 history=len(reference), refit=0, epochs=args.epochs)
        for i, value in enumerate(reference):
            detector.update(i, float(value))
    else:
        rows = test
        params = {"conv_autoencoder": dict(window=60), "lstm_autoencoder": dict(window=10)}
        detector = make_detector(name, epochs=max(1, args.epochs), **params[name])
        detector.fit(reference)
    fitted_s = time.perf_counter() - started
    fp32 = detector_onnx(detector)
    int8 = convert(fp32, DYNAMIC)
    scored = rows[len(rows) - 1000:]
    context = np.concatenate([reference, rows[: len(rows) - 1000]])
    error, graph_scores, _ = detector_parity(detector, fp32, context, scored)
    error8, int8_scores, _ = detector_parity(detector, int8, context, scored)
    agree = float(np.mean((graph_scores >= 0.5) == (int8_scores >= 0.5)))
    windows_in = score_windows(detector, context, scored)
    single, batch = windows_in[:1], np.ascontiguousarray(windows_in[: args.batch])
    module = detector_module(detector).eval()

    def eager(x: np.ndarray):
        tensor = torch.from_numpy(x)

        def call() -> None:
            with torch.no_grad():
                module(tensor)

        return call

    sessions = {"fp32": session(fp32), DYNAMIC: session(int8)}
    calls = {"eager": eager(single), "eager_batch": eager(batch)}
    for fmt, sess in sessions.items():
        calls[fmt] = (lambda s=sess: s.run(None, {INPUT: single}))
        calls[f"{fmt}_batch"] = (lambda s=sess: s.run(None, {INPUT: batch}))
    timings = time_calls(calls, args.runs)
    state = sum(int(v.nbytes) for v in module.state_dict().values())
    for fmt, data in (("fp32", fp32), (DYNAMIC, int8)):
        print(f"edge detector={name} format={fmt} size_ratio={state / len(data):.2f} "
              f"latency_ratio={timings['eager'][0] / timings[fmt][0]:.2f} "
              f"batch={len(batch)} batch_latency_ratio="
              f"{timings['eager'][0] * len(batch) / timings[f'{fmt}_batch'][0]:.2f} "
              f"batch_vs_eager_batch="
              f"{timings['eager_batch'][0] / timings[f'{fmt}_batch'][0]:.2f} "
              f"parity_max_abs={(error if fmt == 'fp32' else error8):.2e} "
              f"alarm_agreement={(1.0 if fmt == 'fp32' else agree):.4f} "
              f"bytes={len(data)} p50_us={timings[fmt][0]:.1f} eager_p50_us="
              f"{timings['eager'][0]:.1f} fitted_s={fitted_s:.1f} "
              f"load={os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
