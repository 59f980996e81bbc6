"""Alembic environment: runs on a connection handed over by crowdsky.db.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from crowdsky.db.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite ALTERs need table rewrites
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        _run(connection)


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; use `crowdsky db upgrade`")
run_migrations_online()
