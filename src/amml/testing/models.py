"""The model contract's conformance checks, run over every registered kind (ours in
``tests/ops/models``; a plugin's kinds in its own tests)::

    from amml.testing import check_model
    check_model("my_kind")

Each check is a named function of :data:`MODEL_CHECKS` so a test suite can parametrize over
``(kind, check)`` and see every failure, not only the first. Data are tiny and training is
one or two epochs: the checks are about the contract, not accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from amml.ops.models.contract import ForecastModel, Training, make_model
from amml.store.artifacts.model import SafetensorsModel

LOOKBACK, HORIZON, SEED = 24, 6, 3
COLUMNS = ["a", "b", "c"]
#: setting -> (input columns, output columns)
SETTINGS = {"S": (["a"], ["a"]), "M": (COLUMNS, COLUMNS), "MS": (COLUMNS, ["b"])}


def model_check_data(n: int = 160, seed: int = 0) -> np.ndarray:
    """(n, 3) seasonal series with noise: columns a, b, c."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    return np.sin(2 * np.pi * t / 12 + np.arange(3)) + 0.1 * rng.normal(size=(n, 3))


def _windows(columns: list[str], outputs: list[str]) -> tuple[np.ndarray, np.ndarray]:
    data = model_check_data()
    index = [COLUMNS.index(c) for c in columns]
    picks = [COLUMNS.index(c) for c in outputs]
    starts = range(len(data) - LOOKBACK - HORIZON + 1)
    x = np.stack([data[s : s + LOOKBACK, index] for s in starts])
    y = np.stack([data[s + LOOKBACK : s + LOOKBACK + HORIZON, picks] for s in starts])
    return x, y


def fitted_model(kind: str, setting: str = "MS", seed: int = SEED, **params: Any
                 ) -> tuple[ForecastModel, np.ndarray]:
    """A ``kind`` fitted on the check data in ``setting``, and its windows."""
    columns, outputs = SETTINGS[setting]
    x, y = _windows(columns, outputs)
    model = make_model(kind, lookback=LOOKBACK, horizon=HORIZON, columns=columns,
                       outputs=outputs, season=12, **params)
    model.reset(seed)
    model.fit(x[:100], y[:100], x[100:], y[100:],
              training=Training(seed=seed, epochs=2, batch_size=32, patience=None,
                                device="cpu"))
    return model, x


def check_shapes(kind: str) -> None:
    """(N, lookback, len(columns)) -> (N, horizon, len(outputs)) in S, M and MS."""
    for setting, (columns, outputs) in SETTINGS.items():
        model, x = fitted_model(kind, setting)
        assert isinstance(model, ForecastModel) and model.kind == kind
        assert (model.lookback, model.horizon) == (LOOKBACK, HORIZON)
        assert (model.columns, model.outputs) == (columns, outputs)
        out = model.predict_windows(x[:5])
        assert out.shape == (5, HORIZON, len(outputs)), f"{kind} {setting}: {out.shape}"
        assert out.dtype == np.float64 and np.isfinite(out).all()


def check_round_trip(kind: str) -> None:
    """to_bytes -> from_bytes gives the same bytes and the same predictions, bit for bit."""
    model, x = fitted_model(kind)
    data = model.to_bytes()
    loaded = SafetensorsModel.from_bytes(data)
    assert type(loaded) is type(model), f"{kind}: loaded as {type(loaded).__name__}"
    assert loaded.to_bytes() == data, f"{kind}: bytes differ after a round trip"
    np.testing.assert_array_equal(loaded.predict_windows(x), model.predict_windows(x),
                                  err_msg=f"{kind}: predictions differ after a round trip")


def check_seeded(kind: str) -> None:
    """Two fits with the same seed give identical bytes."""
    assert fitted_model(kind)[0].to_bytes() == fitted_model(kind)[0].to_bytes(), (
        f"{kind}: two fits with one seed differ")


def check_batch_equals_single(kind: str) -> None:
    """Predicting a batch gives what predicting each window alone gives (to float32 noise:
    PyTorch kernels may sum in a batch-size dependent order)."""
    model, x = fitted_model(kind)
    batch = model.predict_windows(x[:16])
    single = np.concatenate([model.predict_windows(x[i : i + 1]) for i in range(16)])
    np.testing.assert_allclose(batch, single, rtol=1e-5, atol=1e-6,
                               err_msg=f"{kind}: batch and single-window predictions differ")


def check_weights(kind: str) -> None:
    """get_weights/set_weights move the whole state: a fresh model given another's weights
    serializes to the same bytes."""
    model, _ = fitted_model(kind)
    fresh = make_model(kind, lookback=LOOKBACK, horizon=HORIZON, columns=model.columns,
                       outputs=model.outputs, season=12)
    fresh.set_weights(model.get_weights())
    assert fresh.to_bytes() == model.to_bytes(), f"{kind}: set_weights lost state"
    assert len(model.get_weights()) == len(model.get_tensors())


MODEL_CHECKS: dict[str, Callable[[str], None]] = {
    "shapes": check_shapes, "round_trip": check_round_trip, "seeded": check_seeded,
    "batch_equals_single": check_batch_equals_single, "weights": check_weights}


def check_model(kind: str) -> None:
    """Every check of :data:`MODEL_CHECKS` on a registered kind; raises ``AssertionError``."""
    for check in MODEL_CHECKS.values():
        check(kind)
