"""Content-addressed artifact stores: local folder, any fsspec URL."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from amml._lazy import lazy_attributes

if TYPE_CHECKING:  # serializers (pandas, pyarrow) and fsspec load on first use
    from amml.store.artifacts.base import ArtifactStore

_LAZY = {"ArtifactRef": "amml.store.artifacts.base", "ArtifactStore": "amml.store.artifacts.base",
         "LocalArtifactStore": "amml.store.artifacts.local",
         "SafetensorsModel": "amml.store.artifacts.model",
         "FsspecArtifactStore": "amml.store.artifacts.remote"}


__getattr__ = lazy_attributes(__name__, _LAZY)


def open_artifact_store(url: str | Path) -> ArtifactStore:
    """A local store for a path or ``file://`` URL, an fsspec store for anything else."""
    from amml.store.artifacts.local import LocalArtifactStore
    from amml.store.artifacts.remote import FsspecArtifactStore

    text = str(url)
    if text.startswith("file://"):
        return LocalArtifactStore(text[len("file://"):])
    if "://" not in text:
        return LocalArtifactStore(text)
    return FsspecArtifactStore(text)


__all__ = [
    "ArtifactRef",
    "ArtifactStore",
    "FsspecArtifactStore",
    "LocalArtifactStore",
    "SafetensorsModel",
    "open_artifact_store",
]
