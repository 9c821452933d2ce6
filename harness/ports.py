"""Free TCP ports on the loopback address, for servers the tests and benchmarks start."""

from __future__ import annotations

import random
import socket

LISTEN_PORTS = range(20_000, 32_000)
"""Below Linux's ephemeral range (32768-60999): a port found free here is not taken a moment
later by some outgoing connection's source port, as ports the kernel picks (bind to 0) were."""


def free_port() -> int:
    """A port of LISTEN_PORTS nothing listens on now (chosen at random, so parallel test
    workers rarely pick the same one; the servers' start helpers retry when they did)."""
    for _ in range(100):
        port = random.choice(LISTEN_PORTS)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found for a test server")
