"""Run metadata on SQLAlchemy 2 with Alembic migrations."""

from amml.store.metadata.store import MetadataStore, redact

__all__ = ["MetadataStore", "redact"]
