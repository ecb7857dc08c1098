"""The ops of ``benchmarks/scale.py``: a CPU-bound training and an aggregation.

A module of its own so that worker processes (process pool, Dask workers) import the same
functions the parent registered: the workflow names this file under ``imports:``. The plain
functions (``fit_ridge_gd``, ``combine``) are what raw Dask maps, so both sides run the same
code.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from amml.lang.spec import Input
from amml.ops.base import Op, OpConfig, StepContext
from amml.ops.registry import REGISTRY, register


def fit_ridge_gd(seed: int, rows: int, features: int, epochs: int) -> dict[str, Any]:
    """Fit a ridge regression by full-batch gradient descent on seeded synthetic data:
    CPU-bound, deterministic, and small in what it returns (the weights and the loss)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, features))
    true = rng.standard_normal(features)
    y = x @ true + 0.1 * rng.standard_normal(rows)
    weights = np.zeros(features)
    step, alpha = 0.05, 1e-3
    for _ in range(epochs):  # a small matrix per epoch: the interpreter loop does the work
        residual = x @ weights - y
        weights -= step * (x.T @ residual / rows + alpha * weights)
    loss = float(np.mean((x @ weights - y) ** 2))
    return {"seed": seed, "weights": [round(float(w), 12) for w in weights],
            "loss": round(loss, 12)}


def combine(models: list[dict[str, Any]]) -> dict[str, Any]:
    """Average the weights and report the losses."""
    weights = np.mean([m["weights"] for m in models], axis=0)
    return {"models": len(models), "mean_weights": [round(float(w), 12) for w in weights],
            "losses": [m["loss"] for m in models]}


if "scale.train" not in REGISTRY:  # imported again by a worker that already has it

    @register
    class Train(Op):
        """One CPU-bound training (ridge by gradient descent)."""

        name = "scale.train"
        inputs: dict[str, Input] = {}
        outputs = {"out": "json"}

        class Config(OpConfig):
            seed: int = 0
            rows: int = 2000
            features: int = 16
            epochs: int = 1000

        def run(self, ctx: StepContext) -> dict[str, Any]:
            c = self.config
            return fit_ridge_gd(c.seed, c.rows, c.features, c.epochs)

    @register
    class Aggregate(Op):
        """Average the trained models."""

        name = "scale.aggregate"
        inputs = {"models": Input("json", many=True)}
        outputs = {"out": "json"}

        class Config(OpConfig):
            pass

        def run(self, ctx: StepContext, models: list[dict[str, Any]]) -> dict[str, Any]:
            return combine(models)
