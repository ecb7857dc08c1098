"""Anomaly detectors: one per module, each registered by name (``base.DETECTORS``).

The registry imports a detector's module when the detector is first asked for by name (see
``base.BUILTIN_DETECTORS``), so importing this package, or one op of it, costs little.
"""
