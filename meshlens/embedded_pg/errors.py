"""The embedded PostgreSQL's one error."""

from __future__ import annotations


class EmbeddedPostgresError(Exception):
    """The embedded PostgreSQL could not be set up, started or stopped; the message says why."""
