"""The store: run metadata (SQL) plus content-addressed artifacts (files or fsspec).

Defaults: ``.amml/amml.db`` (SQLite) and ``.amml/artifacts/`` under the current folder, or
under ``AMML_HOME``. ``AMML_STORE_URL`` selects another database (PostgreSQL:
``postgresql+psycopg://user@host/db``) and ``AMML_ARTIFACTS_URL`` another artifact location.
"""

from __future__ import annotations

import importlib as _importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # SQLAlchemy and the artifact stores load when a store is opened
    from amml.store.artifacts import ArtifactRef, ArtifactStore
    from amml.store.metadata import MetadataStore

_LAZY = {"ArtifactRef": "amml.store.artifacts", "ArtifactStore": "amml.store.artifacts",
         "MetadataStore": "amml.store.metadata"}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'amml.store' has no attribute {name!r}")
    return getattr(_importlib.import_module(module), name)


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
    from amml.store.artifacts import open_artifact_store
    from amml.store.metadata import MetadataStore

    root = Path(home) if home is not None else default_home()
    db_url = url or os.environ.get("AMML_STORE_URL") or f"sqlite:///{root / 'amml.db'}"
    art_url = artifacts_url or os.environ.get("AMML_ARTIFACTS_URL") or str(root / "artifacts")
    return Store(MetadataStore(db_url), open_artifact_store(art_url))


__all__ = ["ArtifactRef", "ArtifactStore", "MetadataStore", "Store", "default_home",
           "open_store"]
