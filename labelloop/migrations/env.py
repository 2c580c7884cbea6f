"""Alembic environment: runs on the connection the store hands over."""

from alembic import context

from labelloop.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("labelloop migrations run through labelloop.store.Store.create(), not the alembic CLI")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
