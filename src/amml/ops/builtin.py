"""Imports every built-in op module so their ops register. Add one line per new module."""

from amml.ops.detectors import zscore  # noqa: F401
from amml.ops.models import train  # noqa: F401
from amml.ops.sources import files, synthetic  # noqa: F401
from amml.ops.transforms import preprocess, split  # noqa: F401
