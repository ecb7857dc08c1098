"""Per-prediction attributions of a forecaster with the ``shap`` library.

What is explained is one number per output column: the forecast averaged over the horizon
(or the forecast at one horizon ``step``). Its attribution to every input value of the
window, ``(lookback, columns)``, sums with the base value (the expected forecast over the
background windows) to the forecast itself. Which explainer runs depends on the model, found
out once per model, not per kind:

* **linear** (exact): a model whose forecast is an affine map of its window (``linear``,
  ``naive``, ``seasonal_naive``, ``nlinear``, ``dlinear``) has its map read off (one forward
  pass per input value), checked to be affine on random windows, and is explained exactly
  by ``shap.LinearExplainer`` (interventional: ``coef * (x - background mean)``).
* **gradient**: a PyTorch net that is not affine (``rlinear``, ``patchtst``, ``lstm``) by
  ``shap.GradientExplainer`` (expected gradients over the background). ``shap.DeepExplainer``
  is not used: it does not know ``LayerNorm`` (PatchTST) and its values then stop adding up.
* **kernel** (fallback, any model): ``shap.KernelExplainer`` over groups of inputs (one per
  channel and lag band), each group's value spread evenly over its inputs.

Lag 1 is the window's last row (the most recent value).

>>> import numpy as np
>>> from amml.ops.models.contract import make_model
>>> model = make_model("naive", lookback=8, horizon=2, columns=["a"], outputs=["a"])
>>> explainer = ModelExplainer(model, np.zeros((1, 8, 1)))
>>> explanation = explainer.explain(np.arange(8.0).reshape(1, 8, 1))
>>> explainer.method, explanation.values[0, :, 0, 0].tolist()
('linear', [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 7.0])
>>> explanation.by_band()[0, :, 0].tolist(), explanation.band_names
([7.0, 0.0, 0.0, 0.0], ['lags 1-1', 'lags 2-2', 'lags 3-4', 'lags 5-8'])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from amml._exceptions import OpError

Method = Literal["auto", "linear", "gradient", "kernel"]
#: Relative tolerance of the affinity check (float32 nets are affine to about 1e-6).
AFFINE_TOLERANCE = 1e-4


def lag_bands(lookback: int, edges: Sequence[int] | None = None) -> list[tuple[int, int]]:
    """Bands of lags ``(first, last)``, lag 1 the most recent row. By default the window is
    halved from its oldest end three times: lags 1..L/8, L/8..L/4, L/4..L/2, L/2..L."""
    if edges is None:
        edges = sorted({max(1, lookback // 8), max(1, lookback // 4), max(1, lookback // 2),
                        lookback})
    bounds = sorted({int(e) for e in edges if 0 < int(e) <= lookback} | {lookback})
    bands, first = [], 1
    for last in bounds:
        if last >= first:
            bands.append((first, last))
            first = last + 1
    return bands


@dataclass(frozen=True)
class Explanation:
    """Attributions of ``N`` windows: ``values`` ``(N, lookback, columns, outputs)`` (row 0
    the oldest), ``base`` ``(outputs,)`` and ``prediction`` ``(N, outputs)``, with
    ``base + values.sum((1, 2)) == prediction`` (exactly for ``linear``, approximately
    for ``gradient`` and ``kernel``)."""

    values: np.ndarray
    base: np.ndarray
    prediction: np.ndarray
    columns: list[str]
    outputs: list[str]
    method: str
    target: str
    bands: list[tuple[int, int]] = field(default_factory=list)

    @property
    def band_names(self) -> list[str]:
        return [f"lags {a}-{b}" for a, b in self.bands]

    def by_channel(self) -> np.ndarray:
        """``(N, columns, outputs)``: each input column's share, over all its lags."""
        return self.values.sum(axis=1)

    def by_band(self) -> np.ndarray:
        """``(N, bands, outputs)``: each lag band's share, over all columns."""
        lookback = self.values.shape[1]
        return np.stack([self.values[:, lookback - last: lookback - first + 1].sum(axis=(1, 2))
                         for first, last in self.bands], axis=1)

    def features(self) -> np.ndarray:
        """``(N, columns * bands)``: per channel and lag band, summed over the outputs: the
        compact vector attribution-drift monitoring watches."""
        lookback = self.values.shape[1]
        parts = [self.values[:, lookback - last: lookback - first + 1].sum(axis=(1, 3))
                 for first, last in self.bands]  # each (N, columns)
        return np.stack(parts, axis=2).reshape(len(self.values), -1)

    def feature_names(self) -> list[str]:
        return [f"{c}:{b}" for c in self.columns for b in self.band_names]

    def to_json(self, index: int = 0, full: bool = False) -> dict[str, Any]:
        """One window's explanation as JSON-able data."""
        channel, band = self.by_channel()[index], self.by_band()[index]
        out: dict[str, Any] = {
            "method": self.method, "target": self.target,
            "base": dict(zip(self.outputs, self.base.tolist(), strict=True)),
            "prediction": dict(zip(self.outputs, self.prediction[index].tolist(), strict=True)),
            "by_channel": {o: dict(zip(self.columns, channel[:, j].tolist(), strict=True))
                           for j, o in enumerate(self.outputs)},
            "by_lag_band": {o: dict(zip(self.band_names, band[:, j].tolist(), strict=True))
                            for j, o in enumerate(self.outputs)},
        }
        if full:
            out["values"] = {o: {c: self.values[index, :, i, j].tolist()
                                 for i, c in enumerate(self.columns)}
                             for j, o in enumerate(self.outputs)}
        return out


class ModelExplainer:
    """Explains a forecaster's windows against ``background`` windows ``(B, lookback,
    columns)`` in the model's units. Built once per model (the method and, for affine
    models, the map are found here); :meth:`explain` is then cheap."""

    def __init__(self, model: Any, background: np.ndarray, *, step: int | None = None,
                 method: Method = "auto", nsamples: int = 32,
                 bands: Sequence[int] | None = None, seed: int = 0) -> None:
        self.model = model
        self.lookback, self.horizon = int(model.lookback), int(model.horizon)
        self.columns, self.outputs = list(model.columns), list(model.outputs)
        background = np.asarray(background, dtype=np.float64)
        shape = (self.lookback, len(self.columns))
        if background.ndim != 3 or background.shape[1:] != shape or not len(background):
            raise OpError(f"explain: background must be windows of shape (N, {shape[0]}, "
                          f"{shape[1]}), got {background.shape}")
        if step is not None and not 1 <= step <= self.horizon:
            raise OpError(f"explain: step must be between 1 and the horizon {self.horizon}, "
                          f"got {step}")
        self.step, self.nsamples, self.seed = step, int(nsamples), seed
        self.background = background
        self.bands = lag_bands(self.lookback, bands)
        self.target = "mean over the horizon" if step is None else f"horizon step {step}"
        self.features = self.lookback * len(self.columns)
        self.method = self._choose(method)

    # -- what is explained ------------------------------------------------------------------
    def _reduce(self, y: np.ndarray) -> np.ndarray:
        return y.mean(axis=1) if self.step is None else y[:, self.step - 1]

    def quantity(self, x: np.ndarray) -> np.ndarray:
        """``(N, lookback, columns)`` -> ``(N, outputs)``: the explained number per output."""
        return self._reduce(np.asarray(self.model.predict_windows(x), dtype=np.float64))

    # -- choosing the explainer -------------------------------------------------------------
    def _choose(self, method: Method) -> str:
        import shap

        if method in ("auto", "linear"):
            affine = self._affine_map()
            if affine is not None:
                coef, intercept = affine
                flat = self.background.reshape(len(self.background), -1)
                self._linear = [shap.LinearExplainer((coef[j], intercept[j]), flat)
                                for j in range(len(self.outputs))]
                self._mean = flat.mean(axis=0)
                self._coef, self._intercept = coef, intercept
                return "linear"
            if method == "linear":
                raise OpError(f"explain: the '{getattr(self.model, 'kind', '?')}' model is not "
                              "an affine map of its window; use method 'gradient' or 'kernel'")
        net = getattr(self.model, "net", None)
        if method in ("auto", "gradient") and net is not None:
            self._gradient = self._gradient_explainer(net)
            return "gradient"
        if method == "gradient":
            raise OpError("explain: method 'gradient' needs a PyTorch model")
        self._kernel_setup()
        return "kernel"

    def _affine_map(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(coef (outputs, features), intercept (outputs,))`` if the explained quantity is
        affine in the window (checked on random windows), else None. Costs one forward pass
        per input value, batched."""
        if self.features > 20_000:  # too many probes to be worth it
            return None
        shape = (self.lookback, len(self.columns))
        scale = float(np.abs(self.background).max()) or 1.0
        zero = np.zeros((1, *shape))
        probes = np.concatenate([zero, np.eye(self.features).reshape(-1, *shape) * scale])
        try:
            y = self.quantity(probes)
        except Exception:  # a model that cannot take such windows: not provably affine
            return None
        intercept = y[0]
        coef = ((y[1:] - intercept) / scale).T  # (outputs, features)
        rng = np.random.default_rng(self.seed)
        check = rng.normal(0.0, scale, size=(8, *shape))
        wanted = self.quantity(check)
        got = check.reshape(8, -1) @ coef.T + intercept
        tolerance = AFFINE_TOLERANCE * max(1.0, float(np.abs(wanted).max()))
        if not np.all(np.isfinite(got)) or np.abs(got - wanted).max() > tolerance:
            return None
        return coef, intercept

    def _gradient_explainer(self, net: Any) -> Any:
        import shap

        from amml.ops.models.torch_training import torch

        reduce_step = self.step

        class Quantity(torch.nn.Module):
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, x: Any) -> Any:
                y = self.inner(x)
                return y.mean(dim=1) if reduce_step is None else y[:, reduce_step - 1]

        wrapped = Quantity(net).eval()
        device = next(net.parameters()).device
        self._torch, self._device = torch, device
        return shap.GradientExplainer(wrapped, torch.as_tensor(
            self.background.astype(np.float32), device=device))

    def _kernel_setup(self) -> None:
        """Kernel SHAP over groups (channel x lag band): a group's inputs come from the
        window when present, else from the background's mean window."""
        groups = []
        for c in range(len(self.columns)):
            for first, last in self.bands:
                mask = np.zeros((self.lookback, len(self.columns)), dtype=bool)
                mask[self.lookback - last: self.lookback - first + 1, c] = True
                groups.append(mask)
        self._groups = np.stack(groups)  # (G, lookback, columns)
        self._baseline = self.background.mean(axis=0)

    # -- explaining -------------------------------------------------------------------------
    def explain(self, x: np.ndarray) -> Explanation:
        """Attributions of windows ``x`` ``(N, lookback, columns)`` in the model's units."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 3 or x.shape[1:] != (self.lookback, len(self.columns)):
            raise OpError(f"explain: expected windows of shape (N, {self.lookback}, "
                          f"{len(self.columns)}), got {x.shape}")
        n, outputs = len(x), len(self.outputs)
        if self.method == "linear":
            flat = x.reshape(n, -1)
            values = np.stack([np.asarray(e.shap_values(flat)).reshape(n, -1)
                               for e in self._linear], axis=-1)
            base = self._mean @ self._coef.T + self._intercept
            prediction = flat @ self._coef.T + self._intercept
        elif self.method == "gradient":
            values, base, prediction = self._explain_gradient(x)
        else:
            values, base, prediction = self._explain_kernel(x)
        values = values.reshape(n, self.lookback, len(self.columns), outputs)
        return Explanation(values, np.asarray(base, dtype=np.float64).reshape(outputs),
                           np.asarray(prediction, dtype=np.float64).reshape(n, outputs),
                           self.columns, self.outputs, self.method, self.target, self.bands)

    def _explain_gradient(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        torch = self._torch
        torch.manual_seed(self.seed)  # expected gradients draw random points: repeatable
        tensor = torch.as_tensor(x.astype(np.float32), device=self._device)
        raw = self._gradient.shap_values(tensor, nsamples=self.nsamples)
        values = np.asarray(raw, dtype=np.float64)  # (N, lookback, columns, outputs)
        if values.ndim == 3:
            values = values[..., None]
        base = self.quantity(self.background).mean(axis=0)
        return values.reshape(len(x), -1, values.shape[-1]), base, self.quantity(x)

    def _explain_kernel(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import shap

        groups, baseline = self._groups, self._baseline
        out_values = []
        base = self.quantity(baseline[None])[0]
        for window in x:
            def masked(z: np.ndarray, window: np.ndarray = window) -> np.ndarray:
                present = np.tensordot(z, groups, axes=1).astype(bool)  # (M, L, C)
                return self.quantity(np.where(present, window, baseline))

            explainer = shap.KernelExplainer(masked, np.zeros((1, len(groups))))
            phi = np.asarray(explainer.shap_values(np.ones((1, len(groups))),
                                                   nsamples=min(2048, 2 * len(groups) + 2048),
                                                   silent=True), dtype=np.float64)
            phi = phi.reshape(len(groups), -1)  # (G, outputs)
            sizes = groups.reshape(len(groups), -1).sum(axis=1)
            spread = (groups.reshape(len(groups), -1).T[:, :, None]
                      * (phi / sizes[:, None])[None])  # (features, G, outputs)
            out_values.append(spread.sum(axis=1))
        return np.stack(out_values), base, self.quantity(x)


def in_original_units(explanation: Explanation, scaler: Any) -> Explanation:
    """The explanation of a model trained on scaled data, in the outputs' original units:
    an input's attribution does not depend on its own scaling, an output's scales with it."""
    if scaler is None:
        return explanation
    offset, scale = scaler.offsets_scales(explanation.outputs, missing="identity")
    return Explanation(explanation.values * scale, explanation.base * scale + offset,
                       explanation.prediction * scale + offset, explanation.columns,
                       explanation.outputs, explanation.method, explanation.target,
                       explanation.bands)


#: What callers may pass to build an explainer lazily (the server caches one per version).
ExplainerFactory = Callable[[], ModelExplainer]
