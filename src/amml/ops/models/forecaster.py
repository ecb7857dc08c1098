"""``Forecaster(kind, lookback, horizon)``: a numpy kind for one series, in one call.

The univariate shorthand used by the model registry's examples, the residual detector and
scripts: the model's column is ``value`` unless ``columns`` say otherwise, ``fit(series)``
fits on a 1-D series and ``predict(window)`` forecasts after one window or a batch of them.
It is a :class:`~amml.ops.models.contract.ForecastModel` like every other kind.

>>> import numpy as np
>>> model = Forecaster("naive", lookback=4, horizon=2)
>>> model.kind, model.columns, model.predict(np.arange(4.0)).tolist()
('naive', ['value'], [3.0, 3.0])
"""

from __future__ import annotations

from typing import Any

from amml._exceptions import OpError
from amml.ops.models.channel import ChannelForecaster
from amml.ops.models.contract import make_model, model_kind
from amml.ops.models.windows import windows

__all__ = ["Forecaster", "make_forecaster", "windows"]


def make_forecaster(kind: str = "linear", lookback: int = 48, horizon: int = 24,
                    season: int = 24, alpha: float = 1e-3, columns: list[str] | None = None,
                    outputs: list[str] | None = None, **params: Any) -> ChannelForecaster:
    """A numpy kind (``naive``, ``seasonal_naive``, ``linear``, or any registered
    :class:`ChannelForecaster`) with the parameters it takes."""
    if not issubclass(model_kind(kind), ChannelForecaster):
        raise OpError(f"Forecaster makes numpy kinds; '{kind}' is trained with the train op "
                      "(or amml.ops.models.contract.make_model)")
    model = make_model(kind, lookback=lookback, horizon=horizon, columns=columns or ["value"],
                       outputs=outputs or columns or ["value"], season=season, alpha=alpha,
                       **params)
    assert isinstance(model, ChannelForecaster)
    return model


#: The name older code and examples use.
Forecaster = make_forecaster
