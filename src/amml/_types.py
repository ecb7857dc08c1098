"""Artifact types: the names ops use to declare what flows along the workflow's edges.

Each type has one serializer in :mod:`amml.store.artifacts.serializers`. ``any`` accepts every
type on an input; an output must name a concrete type.
"""

from __future__ import annotations

from typing import Literal, get_args

ArtifactType = Literal["table", "json", "array", "model", "image", "text", "any"]
ARTIFACT_TYPES: frozenset[str] = frozenset(get_args(ArtifactType))


def is_compatible(produced: str, expected: str) -> bool:
    """Whether an output of type ``produced`` may feed an input of type ``expected``.

    >>> is_compatible("table", "table"), is_compatible("model", "table")
    (True, False)
    >>> is_compatible("json", "any")
    True
    """
    return expected == "any" or produced == "any" or produced == expected
