"""Anomaly detectors: one per module, each registered by name (``base.DETECTORS``).

Importing this package imports every built-in detector, so ``make_detector`` sees them all.
"""

from amml.ops.detectors import (  # noqa: F401
    autoencoder,
    ensemble,
    isolation,
    novelty,
    residual,
    robust,
    seasonal,
    windowed_gaussian,
)
