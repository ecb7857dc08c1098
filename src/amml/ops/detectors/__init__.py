"""Anomaly detectors: one per module, each registered by name (``base.DETECTORS``).

Importing this package imports every built-in detector, so ``make_detector`` sees them all.
"""

from amml.ops.detectors import streaming, windowed_gaussian  # noqa: F401
