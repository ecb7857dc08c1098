"""What one explanation costs: AMML's ``explain`` beside shap's model-agnostic default.

For each model kind (ETTh1-shaped: one channel, lookback 336, horizon 96, untrained weights:
cost does not depend on what was learnt) the explainer is built once on 32 background
windows, then windows are explained one at a time on one CPU thread; the median of
``--repeat`` calls is reported per window. The peer, measured in the same run on the same
windows and model, is shap's ``PermutationExplainer`` (what ``shap.Explainer`` picks for a
black-box function) with its minimum budget of ``2 * 336 + 1`` evaluations. Goals: NLinear
at most 5 ms, PatchTST at most 200 ms per window.

    python benchmarks/explain.py [--repeat 20] [--kinds nlinear,patchtst,...]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

GOALS_MS = {"nlinear": 5.0, "patchtst": 200.0}


def timed(call, repeat: int) -> float:
    call()  # warm
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--peer-repeat", type=int, default=3)
    parser.add_argument("--kinds", default="nlinear,dlinear,linear,rlinear,lstm,patchtst")
    args = parser.parse_args()

    import shap
    import torch

    from amml.ops.explain.attribution import ModelExplainer
    from amml.ops.models.contract import make_model

    torch.set_num_threads(1)
    lookback, horizon = 336, 96
    rng = np.random.default_rng(0)
    background = rng.normal(size=(32, lookback, 1))
    windows = rng.normal(size=(args.repeat + 1, lookback, 1))
    for kind in args.kinds.split(","):
        model = make_model(kind, lookback=lookback, horizon=horizon, columns=["OT"],
                           outputs=["OT"])
        model.reset(0)
        started = time.perf_counter()
        explainer = ModelExplainer(model, background)
        build_ms = (time.perf_counter() - started) * 1000.0
        count = iter(range(10**9))

        def ours_call(explainer=explainer, count=count) -> None:
            explainer.explain(windows[next(count) % len(windows)][None])

        ours = timed(ours_call, args.repeat)

        def quantity(flat: np.ndarray, explainer=explainer) -> np.ndarray:
            return explainer.quantity(flat.reshape(-1, lookback, 1))[:, 0]

        masker = shap.maskers.Independent(background.reshape(32, -1), max_samples=32)
        peer = shap.explainers.Permutation(quantity, masker)
        flat = windows.reshape(len(windows), -1)
        def peer_call(peer=peer, flat=flat) -> None:
            peer(flat[:1], max_evals=2 * lookback + 1, silent=True)

        peer_ms = timed(peer_call, args.peer_repeat)
        goal = GOALS_MS.get(kind)
        verdict = "" if goal is None else f" goal_ms={goal:g} met={'yes' if ours <= goal else 'no'}"
        print(f"explain model={kind} method={explainer.method} window={lookback} "
              f"ms_per_window={ours:.3f} build_ms={build_ms:.1f} "
              f"peer=shap.PermutationExplainer peer_ms={peer_ms:.1f} "
              f"speedup={peer_ms / ours:.1f}x{verdict}", flush=True)


if __name__ == "__main__":
    main()
