"""One window's explanation as a PNG: the attribution of every input value (lag by channel),
and the sums by channel and by lag band.

>>> import numpy as np
>>> from amml.ops.explain.attribution import Explanation, lag_bands
>>> e = Explanation(np.ones((1, 8, 1, 1)), np.zeros(1), np.full((1, 1), 8.0), ["a"], ["a"],
...                 "linear", "mean over the horizon", lag_bands(8))
>>> explanation_png(e)[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
True
"""

from __future__ import annotations

import io

import numpy as np

from amml.ops.explain.attribution import Explanation


def explanation_png(explanation: Explanation, index: int = 0, output: int = 0,
                    title: str | None = None) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = explanation.values[index, :, :, output]  # (lookback, columns), row 0 the oldest
    lookback = values.shape[0]
    name = explanation.outputs[output]
    figure = plt.figure(figsize=(11, 5.5))
    grid = figure.add_gridspec(2, 2, height_ratios=(1.3, 1))
    heat = figure.add_subplot(grid[0, :])
    limit = float(np.abs(values).max()) or 1.0
    image = heat.imshow(values.T, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit,
                        extent=(lookback + 0.5, 0.5, len(explanation.columns) - 0.5, -0.5))
    heat.set_yticks(range(len(explanation.columns)), explanation.columns)
    heat.set_xlabel("lag (1 = most recent row)")
    figure.colorbar(image, ax=heat, label=f"attribution ({name})")
    heat.set_title(title or (f"{explanation.method} attributions of {name} "
                             f"({explanation.target}): base {explanation.base[output]:.4g}, "
                             f"prediction {explanation.prediction[index, output]:.4g}"))
    channel = figure.add_subplot(grid[1, 0])
    sums = explanation.by_channel()[index, :, output]
    channel.barh(explanation.columns, sums, color=np.where(sums >= 0, "tab:red", "tab:blue"))
    channel.set_title("by input channel")
    band = figure.add_subplot(grid[1, 1])
    sums = explanation.by_band()[index, :, output]
    band.barh(explanation.band_names, sums, color=np.where(sums >= 0, "tab:red", "tab:blue"))
    band.set_title("by lag band")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()
