"""One short device check (on a lent GPU machine): the deep autoencoders trained on CUDA.

For ``conv_autoencoder`` and ``lstm_autoencoder`` on 20,000 reference rows of 8 channels
(seeded sines with noise; the test rows hold a broken phase relation at a known place):
fit on the CPU and on ``device="cuda"`` with the same seed, time both, and compare what they
give: the fitted weights are back on the CPU, saving and loading reproduce the scores exactly,
and the two fits find the same anomaly (the rank correlation of their scores, the top
test row of each, the alarm rows they share). Prints one ``gpu_ae`` line per detector.

    PYTHONPATH=src python3 scripts/gpu_autoencoder_check.py
"""

from __future__ import annotations

import time

import numpy as np
import torch
from scipy.stats import spearmanr

from amml.ops.detectors.base import make_detector
from amml.ops.detectors.fitted import detector_from_bytes, detector_to_bytes

ROWS, TEST, CHANNELS = 20_000, 4_000, 8
BREAK = slice(3_000, 3_040)


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(ROWS + TEST)
    phases = rng.uniform(0, 2 * np.pi, CHANNELS)
    rows = np.sin(t[:, None] / 12 + phases) + rng.normal(0, 0.05, (len(t), CHANNELS))
    test = rows[ROWS:].copy()
    test[BREAK, 1::2] *= -1  # half the channels flip: every value stays in its usual range
    return rows[:ROWS], test


def main() -> None:
    print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-",
          "cpu_threads", torch.get_num_threads())
    reference, test = data()
    for name, params in (("conv_autoencoder", {"window": 60, "epochs": 5, "batch_size": 256}),
                         ("lstm_autoencoder", {"window": 10, "epochs": 5, "batch_size": 256})):
        fits = {}
        for device in ("cpu", "cuda"):
            # one small fit first, untimed: library start-up and the CUDA context
            make_detector(name, device=device, **{**params, "epochs": 1}).fit(reference[:2000])
            detector = make_detector(name, device=device, **params)
            if device == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            detector.fit(reference)
            if device == "cuda":
                torch.cuda.synchronize()
            fits[device] = (detector, time.perf_counter() - started)
        (cpu, cpu_s), (gpu, gpu_s) = fits["cpu"], fits["cuda"]
        on_cpu = all(v.device.type == "cpu" for v in gpu._net.state_dict().values())
        saved = detector_to_bytes(gpu)  # before scoring: scoring moves the streaming state on
        gpu_scores, cpu_scores = gpu.score(test), cpu.score(test)
        reloaded = detector_from_bytes(saved).score(test)
        exact = bool(np.array_equal(reloaded, gpu_scores, equal_nan=True))
        finite = np.isfinite(gpu_scores) & np.isfinite(cpu_scores)
        rho = spearmanr(gpu_scores[finite], cpu_scores[finite]).statistic
        top_gpu, top_cpu = int(np.nanargmax(gpu_scores)), int(np.nanargmax(cpu_scores))
        in_break = [BREAK.start <= top < BREAK.stop + params["window"] for top in
                    (top_gpu, top_cpu)]
        alarms_gpu = set(np.flatnonzero(gpu_scores >= 0.5))
        alarms_cpu = set(np.flatnonzero(cpu_scores >= 0.5))
        shared = len(alarms_gpu & alarms_cpu) / max(len(alarms_gpu | alarms_cpu), 1)
        print(f"gpu_ae detector={name} rows={ROWS} channels={CHANNELS} epochs={params['epochs']}"
              f" fit_cpu_s={cpu_s:.2f} fit_cuda_s={gpu_s:.2f} speedup={cpu_s / gpu_s:.2f}"
              f" weights_on_cpu={on_cpu} reload_exact={exact} spearman={rho:.3f}"
              f" top_row_cuda={top_gpu} top_row_cpu={top_cpu} top_in_break={in_break}"
              f" alarms_cuda={len(alarms_gpu)} alarms_cpu={len(alarms_cpu)}"
              f" alarm_jaccard={shared:.2f}", flush=True)


if __name__ == "__main__":
    main()
