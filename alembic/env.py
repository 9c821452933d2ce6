"""Alembic environment: migrations run on the connection meshlens hands over.

`meshlens migrate` and `meshlens serve` call `meshlens.migrations.upgrade_to_head`, which passes
a live connection in `config.attributes["connection"]`; running `alembic` by hand works too with
`-x url=postgresql+psycopg://...`.
"""

from __future__ import annotations

from sqlalchemy import create_engine

from alembic import context
from meshlens.schema import metadata

config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("pass the database with -x url=postgresql+psycopg://...")
    engine = create_engine(url)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported")
run_migrations_online()
