"""The store: run metadata (SQL) plus content-addressed artifacts (files or fsspec).

Defaults: ``.amml/amml.db`` (SQLite) and ``.amml/artifacts/`` under the current folder, or
under ``AMML_HOME``. ``AMML_STORE_URL`` selects another database (PostgreSQL:
``postgresql+psycopg://user@host/db``) and ``AMML_ARTIFACTS_URL`` another artifact location.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from amml._lazy import lazy_attributes

if TYPE_CHECKING:  # SQLAlchemy and the artifact stores load when a store is opened
    from amml.store.artifacts import ArtifactRef, ArtifactStore
    from amml.store.metadata import MetadataStore

_LAZY = {"ArtifactRef": "amml.store.artifacts", "ArtifactStore": "amml.store.artifacts",
         "MetadataStore": "amml.store.metadata"}


__getattr__ = lazy_attributes(__name__, _LAZY)


def default_home() -> Path:
    return Path(os.environ.get("AMML_HOME") or ".amml")


@dataclass
class Store:
    metadata: MetadataStore
    artifacts: ArtifactStore

    def close(self) -> None:
        if self.metadata is not None:
            self.metadata.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def metadata_url(home: str | Path | None = None, url: str | None = None) -> str:
    """The metadata database a store opened with these arguments uses."""
    root = Path(home) if home is not None else default_home()
    return url or os.environ.get("AMML_STORE_URL") or f"sqlite:///{root / 'amml.db'}"


def open_store(home: str | Path | None = None, *, url: str | None = None,
               artifacts_url: str | None = None, migrate: bool | None = True,
               read_only: bool = False) -> Store:
    """Open the metadata and artifact stores.

    ``migrate=True`` creates or upgrades the schema on first use; ``None`` does that only for
    the embedded SQLite default, and a server store must then already be at the current
    revision (``amml store init`` / ``amml store upgrade``; the command line opens stores
    this way). ``read_only=True`` writes nothing at all: no schema, no migration, no marking
    of interrupted runs; a SQLite store that does not exist yet reads as empty.
    """
    from amml.store.artifacts import open_artifact_store
    from amml.store.metadata import MetadataStore

    root = Path(home) if home is not None else default_home()
    art_url = artifacts_url or os.environ.get("AMML_ARTIFACTS_URL") or str(root / "artifacts")
    metadata = MetadataStore(metadata_url(root, url), migrate=migrate, read_only=read_only)
    return Store(metadata, open_artifact_store(art_url))


__all__ = ["ArtifactRef", "ArtifactStore", "MetadataStore", "Store", "default_home",
           "metadata_url", "open_store"]
