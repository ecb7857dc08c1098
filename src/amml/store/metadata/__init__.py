"""Run metadata on SQLAlchemy 2 with Alembic migrations."""

# the dashboard's indexes (migration 0010) are part of the declared schema
import amml.store.dashboard_indexes  # noqa: F401
from amml.store.metadata.store import MetadataStore, redact

__all__ = ["MetadataStore", "redact"]
