"""Content-addressed artifact stores: local folder, any fsspec URL."""

from __future__ import annotations

from pathlib import Path

from amml.store.artifacts.base import ArtifactRef, ArtifactStore
from amml.store.artifacts.local import LocalArtifactStore
from amml.store.artifacts.model import SafetensorsModel
from amml.store.artifacts.remote import FsspecArtifactStore


def open_artifact_store(url: str | Path) -> ArtifactStore:
    """A local store for a path or ``file://`` URL, an fsspec store for anything else."""
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
