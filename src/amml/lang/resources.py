"""Per-step resource hints: what a step needs of the worker that runs it.

A hint never changes what a step computes (it is not part of the cache key); executors that
place work on a cluster read it (the Dask executor turns it into Dask worker resources).
Written in a workflow as ``resources: {memory: 4GB, gpu: 1, cpu: 2}``.

>>> parse_resources({"memory": "1.5GiB", "gpu": 1})
{'memory': 1610612736, 'gpu': 1.0}
>>> parse_resources({"ram": 1})
Traceback (most recent call last):
...
ValueError: unknown resource 'ram'; did you mean 'memory'? (known: cpu, gpu, memory)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from amml.lang.params import did_you_mean

#: Resource names a step may ask for.
RESOURCE_KINDS = ("cpu", "gpu", "memory")
_ALIASES = {"ram": "memory", "mem": "memory"}  # only for the did-you-mean hint

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
          "tib": 2**40}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")


def parse_bytes(value: Any) -> int:
    """``"4GB"``, ``"512MiB"`` or a number of bytes, as bytes."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 4GB or 512MiB, got {value!r}")
    if isinstance(value, int | float):
        size = float(value)
    else:
        match = _SIZE.match(str(value))
        unit = match.group(2).lower() if match else ""
        if not match or unit not in _UNITS:
            raise ValueError(f"expected a size such as 4GB or 512MiB, got {value!r}")
        size = float(match.group(1)) * _UNITS[unit]
    if size <= 0:
        raise ValueError(f"a size must be positive, got {value!r}")
    return int(size)


def parse_resources(data: Mapping[str, Any]) -> dict[str, float | int]:
    """Check and normalize a step's hints: memory in bytes, cpu and gpu as counts."""
    parsed: dict[str, float | int] = {}
    for key, value in data.items():
        if key not in RESOURCE_KINDS:
            hint = did_you_mean(str(key), RESOURCE_KINDS) or (
                f"did you mean '{_ALIASES[key]}'?" if key in _ALIASES else "")
            raise ValueError(f"unknown resource '{key}'" + (f"; {hint}" if hint else "")
                             + f" (known: {', '.join(RESOURCE_KINDS)})")
        if key == "memory":
            parsed[key] = parse_bytes(value)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ValueError(f"resource '{key}' must be a positive number, got {value!r}")
        parsed[key] = float(value)
    return parsed
