"""The store: run metadata (SQL) plus content-addressed artifacts (files or fsspec).

Defaults: ``.amml/amml.db`` (SQLite) and ``.amml/artifacts/`` under the current folder, or
under ``AMML_HOME``. ``AMML_STORE_URL`` selects another database (PostgreSQL:
``postgresql+psycopg://user@host/db``) and ``AMML_ARTIFACTS_URL`` another artifact location.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from amml.store.artifacts import ArtifactRef, ArtifactStore, open_artifact_store
from amml.store.metadata import MetadataStore


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


def open_store(home: str | Path | None = None, *, url: str | None = None,
               artifacts_url: str | None = None) -> Store:
    """Open (creating on first use) the metadata and artifact stores."""
    root = Path(home) if home is not None else default_home()
    db_url = url or os.environ.get("AMML_STORE_URL") or f"sqlite:///{root / 'amml.db'}"
    art_url = artifacts_url or os.environ.get("AMML_ARTIFACTS_URL") or str(root / "artifacts")
    return Store(MetadataStore(db_url), open_artifact_store(art_url))


__all__ = ["ArtifactRef", "ArtifactStore", "MetadataStore", "Store", "default_home",
           "open_store"]
