"""Which edge variant a device runs: its group's assignment (``oil@champion`` in ``int8``),
resolved through the model registry to a version, then to that version's newest variant of
the format. Moving the alias (or the assignment) changes what the devices fetch next.
"""

from __future__ import annotations

from typing import Any

from amml._exceptions import RegistryError
from amml.registry import ModelRegistry
from amml.store import Store
from amml.store.devices import EdgeDevice, get_assignment, latest_variant


def assignment_for(store: Store, device: EdgeDevice) -> dict[str, Any]:
    """What ``GET /v1/edge/assignment`` answers a device: the resolved version, the variant's
    digest, its signed manifest text and signature. :class:`RegistryError` when the group has
    no assignment or the version no variant of the format."""
    assignment = get_assignment(store, device.group)
    if assignment is None:
        raise RegistryError(f"group '{device.group}' has no assignment yet: amml edge assign "
                            f"{device.group} MODEL@ALIAS")
    version = ModelRegistry(store).resolve(assignment.model)
    variant = latest_variant(store, version.name, version.version, assignment.format)
    return {"group": device.group, "assigned": assignment.model, "model": version.name,
            "version": version.version, "format": variant.format, "digest": variant.digest,
            "size": variant.size, "manifest": variant.manifest, "signature": variant.signature,
            "key_id": variant.key_id}
