"""The drift timeline as a PNG: each detector's score over time (its alarm threshold as a
dashed line), each event as a red line where it was raised and a shaded span from its
estimated drift point to then."""

from __future__ import annotations

import io
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any


def timeline_png(model: str, scores: list[dict[str, Any]], events: list[dict[str, Any]]
                 ) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_detector: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in scores:
        by_detector[row["detector"]].append(row)
    for event in events:
        by_detector.setdefault(event["detector"], [])
    names = sorted(by_detector) or ["(no scores yet)"]
    figure, axes = plt.subplots(len(names), 1, figsize=(12, 1.9 * len(names) + 0.6),
                                sharex=True, squeeze=False)

    def when(seconds: float) -> datetime:
        return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)

    for axis, name in zip(axes[:, 0], names, strict=True):
        rows = by_detector.get(name, [])
        if rows:
            axis.plot([when(r["at"]) for r in rows], [r["score"] for r in rows], lw=1,
                      color="tab:blue")
            axis.axhline(rows[-1]["threshold"], color="0.4", ls="--", lw=0.8)
        for event in (e for e in events if e["detector"] == name):
            axis.axvspan(when(event["drift_point"]), when(event["detected_at"]),
                         color="tab:red", alpha=0.15)
            axis.axvline(when(event["detected_at"]), color="tab:red", lw=1.2)
        axis.set_ylabel(name, rotation=0, ha="right", fontsize=8)
    axes[0, 0].set_title(f"drift of {model}: scores (dashed: alarm threshold), events (red: "
                         f"raised; shaded: from the estimated drift point), {len(events)} "
                         "events")
    axes[-1, 0].set_xlabel("time (UTC)")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()
