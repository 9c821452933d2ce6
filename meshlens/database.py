"""Where the database is: an external PostgreSQL URL, or meshlens's embedded server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from meshlens.settings import Settings


@dataclass(frozen=True)
class Database:
    """A PostgreSQL database meshlens uses; `url` is a libpq/psycopg URL (a secret)."""

    url: str

    @property
    def sqlalchemy_url(self) -> str:
        """The same database for SQLAlchemy, with the psycopg 3 driver."""
        scheme, _, rest = self.url.partition("://")
        if scheme not in {"postgresql", "postgres", "postgresql+psycopg"}:
            raise ValueError("the database URL must start with postgresql://")
        return f"postgresql+psycopg://{rest}"

    def sync_engine(self) -> Engine:
        """A synchronous engine (migrations)."""
        return create_engine(self.sqlalchemy_url, pool_pre_ping=True)

    def async_engine(self) -> AsyncEngine:
        """An asyncio engine (API queries, readiness)."""
        return create_async_engine(self.sqlalchemy_url, pool_pre_ping=True, pool_size=5)


@contextmanager
def open_database(settings: Settings) -> Iterator[Database]:
    """The configured database; starts (and on exit stops) the embedded one when none is set."""
    if settings.database_url is not None:
        yield Database(_plain_url(settings.database_url.get_secret_value()))
        return
    from meshlens.embedded_pg import EmbeddedPostgres  # only when no URL is configured

    with EmbeddedPostgres(settings.data_dir) as server:
        yield Database(server.url)


def _plain_url(url: str) -> str:
    """Accept SQLAlchemy-style URLs too: libpq wants plain postgresql://."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("MESHLENS_DATABASE_URL must look like postgresql://user@host:5432/db")
    if scheme.startswith("postgresql+") or scheme == "postgres":
        return f"postgresql://{rest}"
    return url


class DatabaseUnreachable(Exception):
    """meshlens could not use its database at start; the message holds no password."""


def unreachable(database: Database, exc: Exception) -> DatabaseUnreachable:
    """A start-up failure to reach `database`, said plainly and with any password masked."""
    cause = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
    message = " ".join(str(cause).split())
    try:
        password = conninfo_to_dict(database.url).get("password")
    except psycopg.ProgrammingError:
        password = None
    if password:
        message = message.replace(str(password), "***")
    return DatabaseUnreachable(
        f"cannot use the database ({message}); check MESHLENS_DATABASE_URL and that "
        "PostgreSQL is running"
    )
