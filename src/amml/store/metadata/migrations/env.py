"""Alembic environment: AMML passes an open connection in ``config.attributes``."""

from __future__ import annotations

from alembic import context

from amml.store.metadata.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # invoked by the alembic CLI
    from sqlalchemy import create_engine

    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as connection:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
