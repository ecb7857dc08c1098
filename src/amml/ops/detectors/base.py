"""The detector contract: ``update(timestamp, value(s)) -> score in [0, 1]``, one point at a time.

Every detector is *causal* (a score depends only on the points up to and including the current
one) and returns a calibrated score in ``[0, 1]``, so that one threshold means the same thing
for every detector and an ensemble can combine them. ``score_series`` is the batch path: it
replays ``update`` on a fresh clone by default; a detector that overrides it with a vectorised
path must give the same scores (the shared checks in ``tests/ops/detectors`` hold it to that).

Parameters live in ``__init__`` and are read back from its signature (scikit-learn style), so
``clone()`` and the ``detect`` op's config need nothing more.

>>> import numpy as np
>>> from amml.ops.detectors.base import make_detector
>>> values = np.r_[np.random.default_rng(0).normal(0, 1, 600), 25.0, np.zeros(5)]
>>> scores = make_detector("amml").score_series(values)
>>> bool(scores[600] == np.nanmax(scores))
True
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np

from amml._exceptions import OpError
from amml._plugins import PluginRegistry, plugin_classes
from amml.lang.params import did_you_mean

Value = float | Sequence[float] | np.ndarray


class Detector:
    """Base class of every anomaly detector: subclasses implement ``update``.

    ``multivariate`` detectors take a vector of values per point (one per column); the others
    take one float and are run once per column by the ``detect`` op.
    """

    name: ClassVar[str] = "detector"
    multivariate: ClassVar[bool] = False
    #: Checks of :func:`amml.testing.check_detector` this detector skips, each with the reason
    #: (scikit-learn's ``_xfail_checks`` in spirit): ``{"check name": "why it does not apply"}``.
    skip_checks: ClassVar[dict[str, str]] = {}

    def skipped_checks(self) -> dict[str, str]:
        """The checks this detector (with these parameters) skips, with the reasons."""
        return dict(self.skip_checks)

    def update(self, timestamp: Any, value: Value) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [name for name, p in signature.parameters.items()
                if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, read back from attributes of the same name."""
        return {name: getattr(self, name) for name in self.param_names()}

    def clone(self) -> Detector:
        """A fresh detector with the same parameters and no state."""
        return type(self)(**self.get_params())

    def score_series(self, values: Iterable[Value] | np.ndarray,
                     timestamps: Iterable[Any] | None = None) -> np.ndarray:
        """Scores of a whole series (rows of a 2-D array for multivariate detectors), on a
        fresh clone: the same numbers ``update`` gives one point at a time."""
        detector = self.clone()
        array = np.asarray(values, dtype=float)
        if self.multivariate and array.ndim == 1:
            array = array[:, None]
        stamps = list(timestamps) if timestamps is not None else [None] * len(array)
        if len(stamps) != len(array):
            raise OpError(f"{len(stamps)} timestamps for {len(array)} values")
        if self.multivariate:
            return np.array([detector.update(t, row) for t, row in zip(stamps, array, strict=True)],
                            dtype=float)
        return np.array([detector.update(t, float(v)) for t, v in zip(stamps, array, strict=True)],
                        dtype=float)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def _detector_classes(obj: object) -> list[type[Detector]]:
    """The detectors an entry point provides: one class, or the named detector classes of a
    module or package (built-in modules register theirs with :func:`register_detector`)."""
    return plugin_classes(obj, Detector,
                          lambda cls: cls is not Detector and "name" in cls.__dict__,
                          error=lambda o: OpError(f"entry point object {o!r} is not a "
                                                  "Detector class or module"))


#: Detectors by name: built-ins, then the entry-point group ``amml.detectors``, then the rest.
#: The built-in detectors by name, with their modules (adding one adds a line here; a test
#: checks the table against the modules).
BUILTIN_DETECTORS: dict[str, str] = {
    "amml": "amml.ops.detectors.novelty",
    "autoencoder": "amml.ops.detectors.autoencoder",
    "conv_autoencoder": "amml.ops.detectors.deep_autoencoders",
    "ensemble": "amml.ops.detectors.ensemble",
    "forecast_residual": "amml.ops.detectors.residual",
    "isolation_forest": "amml.ops.detectors.isolation",
    "lstm_autoencoder": "amml.ops.detectors.deep_autoencoders",
    "matrix_profile": "amml.ops.detectors.matrix_profile",
    "mset": "amml.ops.detectors.multivariate",
    "pca_t2q": "amml.ops.detectors.multivariate",
    "pyod": "amml.ops.detectors.pyod_models",
    "rolling_mad": "amml.ops.detectors.robust",
    "seasonal": "amml.ops.detectors.seasonal",
    "windowed_gaussian": "amml.ops.detectors.windowed_gaussian",
}

DETECTORS: PluginRegistry[type[Detector]] = PluginRegistry(
    "detector", group="amml.detectors", name_of=lambda cls: cls.name,
    builtins=tuple(dict.fromkeys(BUILTIN_DETECTORS.values())), catalog=BUILTIN_DETECTORS,
    collect=_detector_classes)

D = TypeVar("D", bound=type[Detector])


def register_detector(cls: D | None = None, *, override: bool = False) -> Any:
    """Class decorator: make a detector available by its ``name`` (``make_detector``, ops);
    ``@register_detector(override=True)`` replaces a detector of the same name."""
    if cls is None:
        return lambda c: DETECTORS.register(c, override=override)
    return DETECTORS.register(cls, override=override)


def detector_names() -> list[str]:
    return DETECTORS.names()


def make_detector(name: str = "amml", **params: Any) -> Detector:
    """A detector by registered name, with parameters (unknown ones are an error)."""
    cls = DETECTORS.get(name)
    unknown = sorted(set(params) - set(cls.param_names()))
    if unknown:
        hint = did_you_mean(unknown[0], cls.param_names()) if len(unknown) == 1 else None
        raise OpError(f"detector '{name}' has no parameter {', '.join(map(repr, unknown))}"
                      + (f"; {hint}" if hint else "")
                      + f" (it takes: {', '.join(cls.param_names()) or 'none'})")
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:  # a value of the wrong kind, caught by Python
        raise OpError(f"detector '{name}': a parameter has a value of the wrong kind "
                      f"({exc}); given {params}") from None


# --------------------------------------------------------------------------- shared helpers


def clip01(score: float) -> float:
    """``score`` clipped to ``[0, 1]``; NaN (no score yet: a warm-up row) stays NaN."""
    if score != score:
        return math.nan
    return 0.0 if not score > 0.0 else (1.0 if score > 1.0 else float(score))


class RingBuffer:
    """A fixed-size ring buffer of floats with a running sum and sum of squares."""

    __slots__ = ("buf", "count", "pos", "sum", "sumsq")

    def __init__(self, size: int) -> None:
        self.buf = np.zeros(size)
        self.count = 0
        self.pos = 0
        self.sum = 0.0
        self.sumsq = 0.0

    def push(self, value: float) -> None:
        size = len(self.buf)
        if self.count == size:
            old = self.buf[self.pos]
            self.sum -= old
            self.sumsq -= old * old
        else:
            self.count += 1
        self.buf[self.pos] = value
        self.sum += value
        self.sumsq += value * value
        self.pos = (self.pos + 1) % size

    def values(self) -> np.ndarray:
        """The stored values, in ring order (not oldest first once full)."""
        return self.buf if self.count == len(self.buf) else self.buf[:self.count]

    def mean_std(self) -> tuple[float, float]:
        mean = self.sum / self.count
        return mean, math.sqrt(max(self.sumsq / self.count - mean * mean, 0.0))

